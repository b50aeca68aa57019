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
use crate::cli::{Error, Result};
use crate::target::{Csr, TargetError};

/// ABI names of x0..x31.
pub const ABI: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

/// A privilege level by its encoding (QEMU's `priv` register).
pub fn priv_name(p: u64) -> &'static str {
    match p {
        0 => "U",
        1 => "S",
        3 => "M",
        _ => "?",
    }
}

/// scause as the privileged spec names it.
pub fn scause_name(scause: u64) -> String {
    let interrupt = scause >> 63 != 0;
    let code = scause & !(1 << 63);
    let name = if interrupt {
        match code {
            1 => "supervisor software interrupt",
            5 => "supervisor timer interrupt",
            9 => "supervisor external interrupt",
            13 => "counter-overflow interrupt",
            _ => "",
        }
    } else {
        match code {
            0 => "instruction address misaligned",
            1 => "instruction access fault",
            2 => "illegal instruction",
            3 => "breakpoint",
            4 => "load address misaligned",
            5 => "load access fault",
            6 => "store/AMO address misaligned",
            7 => "store/AMO access fault",
            8 => "environment call from U-mode",
            9 => "environment call from S-mode",
            12 => "instruction page fault",
            13 => "load page fault",
            15 => "store/AMO page fault",
            18 => "software check",
            19 => "hardware error",
            _ => "",
        }
    };
    if name.is_empty() {
        format!(
            "reserved {} {code}",
            if interrupt { "interrupt" } else { "exception" }
        )
    } else {
        name.to_string()
    }
}

/// sstatus with each set field named: `SIE SPIE SPP=S SUM FS=dirty`.
pub fn sstatus_names(v: u64) -> String {
    let ext = |bits: u64| ["off", "initial", "clean", "dirty"][(bits & 3) as usize];
    let mut n = Vec::new();
    let flag = |n: &mut Vec<String>, bit: u32, name: &str| {
        if v >> bit & 1 != 0 {
            n.push(name.to_string());
        }
    };
    flag(&mut n, 1, "SIE");
    flag(&mut n, 5, "SPIE");
    flag(&mut n, 6, "UBE");
    n.push(format!("SPP={}", if v >> 8 & 1 != 0 { "S" } else { "U" }));
    if v >> 9 & 3 != 0 {
        n.push(format!("VS={}", ext(v >> 9)));
    }
    if v >> 13 & 3 != 0 {
        n.push(format!("FS={}", ext(v >> 13)));
    }
    if v >> 15 & 3 != 0 {
        n.push(format!("XS={}", ext(v >> 15)));
    }
    flag(&mut n, 18, "SUM");
    flag(&mut n, 19, "MXR");
    match v >> 32 & 3 {
        1 => n.push("UXL=32".into()),
        2 => n.push("UXL=64".into()),
        3 => n.push("UXL=128".into()),
        _ => {}
    }
    flag(&mut n, 63, "SD");
    n.join(" ")
}

/// sie/sip: SSIE/SSIP, STIE/STIP, SEIE/SEIP, LCOFIE/LCOFIP.
fn interrupt_bits(v: u64, suffix: &str) -> String {
    let mut n = Vec::new();
    for (bit, name) in [(1, "SS"), (5, "ST"), (9, "SE"), (13, "LCOF")] {
        if v >> bit & 1 != 0 {
            n.push(format!("{name}{suffix}"));
        }
    }
    if n.is_empty() {
        "-".into()
    } else {
        n.join(" ")
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
    let sym = |a: u64| ctx.symbols.and_then(|s| s.symbolize(a));
    match csr {
        Csr::Sstatus => Some(sstatus_names(v)),
        Csr::Scause => Some(scause_name(v)),
        Csr::Satp => {
            let s = Satp(v);
            Some(format!(
                "{} asid {} root {:#x}",
                s.mode(),
                s.asid(),
                s.root_pa()
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
    let sym = |a: u64| ctx.symbols.and_then(|s| s.symbolize(a));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scause() {
        assert_eq!(scause_name(13), "load page fault");
        assert_eq!(scause_name(15), "store/AMO page fault");
        assert_eq!(scause_name(8), "environment call from U-mode");
        assert_eq!(scause_name((1 << 63) | 5), "supervisor timer interrupt");
        assert_eq!(scause_name((1 << 63) | 9), "supervisor external interrupt");
        assert_eq!(scause_name(10), "reserved exception 10");
        assert_eq!(scause_name((1 << 63) | 3), "reserved interrupt 3");
    }

    #[test]
    fn names_sstatus_bits() {
        assert_eq!(sstatus_names(0), "SPP=U");
        assert_eq!(
            sstatus_names((1 << 1) | (1 << 5) | (1 << 8) | (1 << 18) | (1 << 19)),
            "SIE SPIE SPP=S SUM MXR"
        );
        assert_eq!(
            sstatus_names((3 << 13) | (2 << 32) | (1 << 63)),
            "SPP=U FS=dirty UXL=64 SD"
        );
    }

    #[test]
    fn names_privilege_and_interrupt_bits() {
        assert_eq!(priv_name(0), "U");
        assert_eq!(priv_name(1), "S");
        assert_eq!(priv_name(3), "M");
        assert_eq!(interrupt_bits(0x222, "IE"), "SSIE STIE SEIE");
        assert_eq!(interrupt_bits(0, "IP"), "-");
    }
}
