//! `kinspect serve FILE`: a snapshot or QEMU ELF core as a GDB remote
//! protocol server ([`crate::serve`]).

use std::path::PathBuf;

use super::{Ctx, Needs, Run};
use crate::error::Result;

/// Serve a snapshot or QEMU ELF core to gdb (GDB remote protocol).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect serve crash.kisnap --port 1235
  gdb-multiarch target/kernel/kernel.elf -ex 'target remote :1235'

Harts are threads; memory is virtual through the selected hart's satp
(our own Sv39 walk), or physical after `monitor phys on`. `monitor help`
lists the kinspect views gdb can run (`monitor maps --hart 0`).")]
pub struct Args {
    /// A .kisnap snapshot or a QEMU ELF core.
    pub file: PathBuf,
    /// TCP port on 127.0.0.1 (0: any free port, printed).
    #[arg(long, value_name = "N", default_value_t = 1235)]
    pub port: u16,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let t = crate::snapshot::open::open(ctx.session, &self.file, ctx.warn)?;
        crate::serve::serve(ctx.session, t, self.port, ctx.out, ctx.warn)
    }
}
