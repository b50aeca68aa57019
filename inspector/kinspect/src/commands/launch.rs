//! `kinspect launch`: start QEMU with xv6's command line, then the TUI
//! ([`crate::tui`]).

use std::path::PathBuf;

use super::{Ctx, Needs, Run};
use crate::error::Result;
use crate::session::DEFAULT_ELF;

/// Start QEMU with the kernel (xv6's command line) and attach the TUI.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Starts qemu-system-riscv64 exactly as xv6-riscv does, with a gdb stub on a
free port; the guest's console is the TUI's Console tab (i to type into it,
Esc to leave it). Builds nothing: run `cargo xtask build` first, or simply
`cargo xtask run`, which builds and then launches.

  kinspect launch
  kinspect --elf path/to/kernel.elf launch --fs-img path/to/fs.img")]
pub struct Args {
    /// The file-system image [default: fs.img beside the kernel ELF].
    #[arg(long, value_name = "PATH")]
    pub fs_img: Option<PathBuf>,
    /// Harts (QEMU's -smp).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub smp: u32,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let kernel = ctx
            .session
            .elf
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ELF));
        let fs_img = self
            .fs_img
            .clone()
            .unwrap_or_else(|| kernel.with_file_name("fs.img"));
        let opts = crate::tui::LaunchOptions {
            kernel,
            fs_img,
            smp: self.smp,
        };
        crate::tui::launch(ctx.session, &opts)
    }
}
