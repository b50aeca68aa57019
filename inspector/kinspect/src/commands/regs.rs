//! `kinspect regs [--hart N]`: one hart's registers, decoded.
//!
//! x1..x31 by ABI name with their x-numbers, pc, the privilege level, and
//! the supervisor CSRs with their bits named (sstatus SIE SPIE SPP SUM MXR,
//! scause as `load page fault` or `supervisor timer interrupt`, satp's
//! mode and root). pc, ra, sepc and stvec get `func+0xoff` from the ELF.


use super::Ctx;
use super::Run;
use crate::error::{Error, Result};
use crate::target::{Csr, TargetError};
use crate::views;

/// General registers and supervisor CSRs of one hart, decoded.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints x1..x31 by ABI name (ra sp gp tp t0..t6 s0..s11 a0..a7) with their
x-numbers, pc, the privilege level (U/S/M), and the supervisor CSRs decoded:
sstatus bits by name (SIE SPIE SPP SUM MXR ...), scause as a name
(`load page fault`, `supervisor timer interrupt`), satp's mode and root.
pc, ra, sepc and stvec are shown as func+0xoff when the ELF has symbols.

  kinspect regs            hart 0
  kinspect regs --hart 2")]
pub struct Args {
    /// The hart (0-based, as the kernel's cpuid() numbers them).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub hart: usize,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, self.hart)
    }
}

pub fn run(ctx: &mut Ctx<'_>, hart: usize) -> Result<()> {
    ctx.check_hart(hart)?;
    let target = ctx.target()?;
    let regs = target.regs(hart)?;
    let mut csrs = Vec::new();
    for csr in Csr::ALL {
        let v = match target.csr(hart, csr) {
            Ok(v) => Some(v),
            Err(TargetError::Unsupported(_)) => None,
            Err(e) => return Err(Error::from(e)),
        };
        csrs.push((csr, v));
    }
    let syms = ctx.symbols();
    let view = views::regs::regs(hart, &regs, &csrs, &|a| {
        crate::symbolize::name(syms, a)
    });
    if ctx.json {
        return ctx.json(&view);
    }
    for l in view.lines() {
        writeln!(ctx.out, "{l}")?;
    }
    Ok(())
}
