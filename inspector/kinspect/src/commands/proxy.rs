//! `kinspect proxy --listen [HOST]:PORT`: QEMU's one gdb stub connection
//! shared by any number of clients ([`crate::proxy`]).

use kinspect_rsp::ConnectOptions;

use super::{Ctx, Needs, Run};
use crate::error::Result;
use crate::proxy::{bind, Proxy};

/// Share QEMU's gdb stub: gdb, kinspect commands and the TUI at once.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
QEMU's gdb stub takes one client. The proxy holds that connection (--gdb)
and serves every client that connects to --listen: gdb-multiarch steps
while `kinspect attach` shows each stop and one-shot commands read the
machine. Each client keeps its own PhyMemMode, selected hart, no-ack mode
and breakpoints; `k` from a client never kills QEMU. See docs/proxy.md.

  kinspect --gdb localhost:1234 proxy --listen :1240
  gdb-multiarch target/kernel/kernel.elf -ex 'target remote :1240'
  kinspect --gdb :1240 attach
  kinspect --gdb :1240 procs")]
pub struct Args {
    /// Where clients connect: [HOST]:PORT (host 127.0.0.1 when left out;
    /// port 0 picks a free one, printed).
    #[arg(long, value_name = "[HOST]:PORT")]
    pub listen: String,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let listener = bind(&self.listen)?;
        let proxy = Proxy::connect(&ctx.session.gdb, &ConnectOptions::default())?;
        let local = listener
            .local_addr()
            .map_or_else(|_| self.listen.clone(), |a| a.to_string());
        writeln!(
            ctx.out,
            "listening on {local} for QEMU's gdb stub at {}",
            ctx.session.gdb
        )?;
        ctx.out.flush()?;
        proxy.serve(listener, ctx.warn)
    }
}
