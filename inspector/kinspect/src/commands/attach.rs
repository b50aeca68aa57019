//! `kinspect attach`: the TUI over QEMU's gdb stub, or over a snapshot
//! with `--snapshot FILE` ([`crate::tui`]).

use super::{Ctx, Needs, Run};
use crate::error::Result;

/// The TUI: attach to a running kernel through QEMU's gdb stub (--gdb).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A full-screen view of the machine: harts and their privilege, processes,
their page tables (expand level by level), maps, registers, memory and
the call chain (backtrace). Keys: c continue, h halt, s step, Tab move,
Enter expand, / filter, : command (translate, goto, vmprint, break), ? help,
q quit (leave the guest running or halted). With QEMU on this host (the
RAM fast path), a running guest's processes and page tables are read live,
about ten times a second, without halting it; L turns that off and on.
See docs/tui.md.

  kinspect --gdb localhost:1234 attach")]
pub struct Args {}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        crate::tui::attach(ctx.session)
    }
}
