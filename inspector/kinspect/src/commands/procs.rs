//! `kinspect procs [--all]`: the kernel's process table, read by DWARF
//! name from `proc[]` and `cpus[]` through [`crate::model`].
//!
//! One consistent read: the backend halts a running machine before the
//! first read, the whole `proc` array comes in one bulk read, and the
//! machine resumes when the command ends. Kernel stacks are translated
//! through the page table each process runs on in the kernel (its own
//! when the kernel has per-process kernel page tables).

use kinspect_sv39::Satp;

use super::Run;
use super::{need_debug, read_kernel, Ctx};
use crate::error::Result;
use crate::model::{KernelState, PhysCache};
use crate::views;

/// The process table, read from the kernel's `proc[]` by DWARF name.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One line per process: slot, pid, state, name, parent pid, the hart running
it (from cpus[]), its kernel stack's virtual and physical address (through
the kernel page table it runs on) and whether the guard page below is
unmapped, the user page-table root, the per-process kernel page-table root
when the kernel has one, size, trapframe, the saved context's ra and sp,
what it sleeps on, and whether it was killed. The machine is halted for
one read of the whole table and resumed afterwards if it was running.

  kinspect procs
  kinspect procs --all            UNUSED slots too
  kinspect --json procs

The per-process kernel page-table field is found by name (kpagetable,
kernel_pagetable, k_pagetable, kernelpt, kpt); name it with --kpt-field.")]
pub struct Args {
    /// Show UNUSED slots too.
    #[arg(long)]
    pub all: bool,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, self.all)
    }
}


pub fn run(ctx: &mut Ctx<'_>, all: bool) -> Result<()> {
    let debug = need_debug(ctx, "procs")?;
    let ram = ctx.ram;
    let profile = ctx.profile.clone();
    let mut phys = PhysCache::new(ctx.target()?);
    let (kernel, state) = read_kernel(debug, &profile, &mut phys, ram)?;
    let sym = |a: u64| views::procs::symbolize(debug, &state, a);
    let mut rows = Vec::new();
    for p in state.procs.iter().filter(|p| all || p.is_live()) {
        let ks = kernel.kstack(&mut phys, &state, p, ram)?;
        rows.push(views::procs::row(&state, p, &ks, &sym));
    }
    drop(phys);
    let kpt_warning = kpt_warning(ctx, &state)?;
    let view = views::procs::procs(&state, rows, kpt_warning);
    if ctx.json {
        return ctx.json(&view);
    }
    if let Some(w) = &view.kpt_warning {
        writeln!(ctx.warn, "kinspect: warning: {w}")?;
    }
    for l in view.lines() {
        writeln!(ctx.out, "{l}")?;
    }
    Ok(())
}

/// The harts' satp against the tables the model knows: a warning when
/// some hart runs on a table nobody owns and no per-process field was
/// recognised (see [`crate::model::kpt::unrecognised_note`]).
pub fn kpt_warning(ctx: &mut Ctx<'_>, state: &KernelState) -> Result<Option<String>> {
    if state.kpt.field.is_some() {
        return Ok(None);
    }
    let t = ctx.target()?;
    let mut satps = Vec::new();
    for h in t.harts()? {
        if let Ok(v) = t.csr(h, crate::target::Csr::Satp) {
            satps.push((h, Satp(v)));
        }
    }
    Ok(crate::model::kpt::unrecognised_note(
        &state.kpt,
        &state.unexplained_roots(&satps),
    ))
}
