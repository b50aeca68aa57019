//! `kinspect regs [--hart N]`: one hart's registers, decoded.
//!
//! x1..x31 by ABI name with their x-numbers, pc, the privilege level, and
//! the supervisor CSRs with their bits named (sstatus SIE SPIE SPP SUM MXR,
//! scause as `load page fault` or `supervisor timer interrupt`, satp's
//! mode and root). pc, ra, sepc and stvec get `func+0xoff` from the ELF.

use std::io::Write;

use kinspect_sv39::Satp;
use serde::Serialize;

use super::Ctx;
use super::Run;
use crate::error::{Error, Result};
use crate::arch::{interrupt_bits, priv_name, scause_name, sstatus_names, ABI};
use crate::target::{Csr, TargetError};

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



/// `--json` fields of one general register.
#[derive(Debug, Serialize)]
pub struct GprJson {
    pub abi: &'static str,
    pub x: usize,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub value: u64,
    /// `func+0xoff` when the value is inside a symbol (pc-like registers).
    pub symbol: Option<String>,
}

/// `--json` fields of one CSR; `value` is null when unavailable.
#[derive(Debug, Serialize)]
pub struct CsrJson {
    pub name: &'static str,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub value: Option<u64>,
    pub decoded: Option<String>,
}

/// `--json` output of `regs`.
#[derive(Debug, Serialize)]
pub struct RegsJson {
    pub hart: usize,
    /// "U", "S" or "M"; null when the backend has no priv register.
    #[serde(rename = "priv")]
    pub privilege: Option<&'static str>,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub pc: u64,
    pub pc_symbol: Option<String>,
    pub gprs: Vec<GprJson>,
    pub csrs: Vec<CsrJson>,
}

fn decode_csr(ctx: &Ctx<'_>, csr: Csr, v: u64) -> Option<String> {
    let sym = |a: u64| crate::symbolize::name(ctx.symbols, a);
    match csr {
        Csr::Sstatus => Some(sstatus_names(v)),
        Csr::Scause => Some(scause_name(v)),
        Csr::Satp => {
            let s = Satp(v);
            Some(format!(
                "{} asid {} root {:#x}",
                s.mode(),
                s.asid(),
                s.root()
            ))
        }
        Csr::Sepc | Csr::Mepc | Csr::Stvec => sym(if csr == Csr::Stvec { v & !3 } else { v }),
        Csr::Sie => Some(interrupt_bits(v, "IE")),
        Csr::Sip => Some(interrupt_bits(v, "IP")),
        Csr::Priv => Some(priv_name(v).to_string()),
        Csr::Stval | Csr::Sscratch => None,
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
    let sym = |a: u64| crate::symbolize::name(ctx.symbols, a);
    let privilege = csrs
        .iter()
        .find(|(c, _)| *c == Csr::Priv)
        .and_then(|(_, v)| v.map(priv_name));
    let out = RegsJson {
        hart,
        privilege,
        pc: regs.pc,
        pc_symbol: sym(regs.pc),
        gprs: (1..32)
            .map(|i| GprJson {
                abi: ABI[i],
                x: i,
                value: regs.x[i],
                symbol: if i == 1 { sym(regs.x[i]) } else { None },
            })
            .collect(),
        csrs: csrs
            .iter()
            .filter(|(c, _)| *c != Csr::Priv)
            .map(|&(c, v)| CsrJson {
                name: c.name(),
                value: v,
                decoded: v.and_then(|v| decode_csr(ctx, c, v)),
            })
            .collect(),
    };
    if ctx.json {
        return ctx.json(&out);
    }
    let w = &mut ctx.out;
    let pname = match out.privilege {
        Some("U") => "U (user)",
        Some("S") => "S (supervisor)",
        Some("M") => "M (machine)",
        Some(_) => "? (unknown)",
        None => "unavailable",
    };
    writeln!(w, "hart {hart}  priv {pname}")?;
    let pc = format!(
        "pc            {:#018x}  {}",
        out.pc,
        out.pc_symbol.as_deref().unwrap_or("")
    );
    writeln!(w, "{}", pc.trim_end())?;
    for g in &out.gprs {
        let line = format!(
            "{:<4} {:<4}     {:#018x}  {}",
            g.abi,
            format!("x{}", g.x),
            g.value,
            g.symbol.as_deref().unwrap_or("")
        );
        writeln!(w, "{}", line.trim_end())?;
    }
    for c in &out.csrs {
        let line = match c.value {
            Some(v) => format!(
                "{:<13} {:#018x}  {}",
                c.name,
                v,
                c.decoded.as_deref().unwrap_or("")
            ),
            None => format!("{:<13} unavailable", c.name),
        };
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}
