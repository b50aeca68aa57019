//! One hart's registers as a view: x1..x31 by ABI name, pc, the privilege
//! level, and the supervisor CSRs decoded ([`crate::arch`]), with
//! `func+0xoff` for the registers that hold code addresses.
//!
//! [`regs`] builds the [`Regs`] struct (the `--json` of `kinspect regs`)
//! from values already read; [`Regs::lines`] is the command's text and
//! [`Regs::compact_lines`] the TUI's Registers tab.

use kinspect_sv39::Satp;
use serde::Serialize;

use crate::arch::{interrupt_bits, priv_name, scause_name, sstatus_names, ABI};
use crate::target::{Csr, GeneralRegs, Hart};

/// One general register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gpr {
    pub abi: &'static str,
    pub x: usize,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub value: u64,
    /// `func+0xoff` when the value is inside a symbol (pc-like registers).
    pub symbol: Option<String>,
}

/// One CSR; `value` is null when unavailable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsrRow {
    pub name: &'static str,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub value: Option<u64>,
    pub decoded: Option<String>,
}

/// A hart's registers, decoded (`kinspect regs`, `--json` as is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Regs {
    pub hart: Hart,
    /// "U", "S" or "M"; null when the backend has no priv register.
    #[serde(rename = "priv")]
    pub privilege: Option<&'static str>,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub pc: u64,
    pub pc_symbol: Option<String>,
    /// x1..x31.
    pub gprs: Vec<Gpr>,
    /// Every CSR but `priv` (which is [`Regs::privilege`]).
    pub csrs: Vec<CsrRow>,
}

/// A CSR's value in words: sstatus bits, scause's name, satp's mode and
/// root, sie/sip bits, the privilege level, `func+0xoff` for sepc, mepc
/// and stvec (`sym` names an address); `None` for plain numbers.
pub fn decode_csr(csr: Csr, v: u64, sym: &dyn Fn(u64) -> Option<String>) -> Option<String> {
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
        Csr::Stvec => sym(v & !3),
        Csr::Sepc | Csr::Mepc => sym(v),
        Csr::Sie => Some(interrupt_bits(v, "IE")),
        Csr::Sip => Some(interrupt_bits(v, "IP")),
        Csr::Priv => Some(priv_name(v).to_string()),
        Csr::Stval | Csr::Sscratch => None,
    }
}

/// The view of one hart from its general registers and CSRs (`None`: the
/// backend has no value); `sym` names an address (`func+0xoff`).
pub fn regs(
    hart: Hart,
    regs: &GeneralRegs,
    csrs: &[(Csr, Option<u64>)],
    sym: &dyn Fn(u64) -> Option<String>,
) -> Regs {
    let privilege = csrs
        .iter()
        .find(|(c, _)| *c == Csr::Priv)
        .and_then(|(_, v)| v.map(priv_name));
    Regs {
        hart,
        privilege,
        pc: regs.pc,
        pc_symbol: sym(regs.pc),
        gprs: (1..32)
            .map(|i| Gpr {
                abi: ABI[i],
                x: i,
                value: regs.x[i],
                symbol: if i == 1 { sym(regs.x[i]) } else { None },
            })
            .collect(),
        csrs: csrs
            .iter()
            .filter(|(c, _)| *c != Csr::Priv)
            .map(|&(c, v)| CsrRow {
                name: c.name(),
                value: v,
                decoded: v.and_then(|v| decode_csr(c, v, sym)),
            })
            .collect(),
    }
}

impl Regs {
    /// `kinspect regs`: one register a line, ABI name and x-number, value,
    /// and what it means.
    pub fn lines(&self) -> Vec<String> {
        let pname = match self.privilege {
            Some("U") => "U (user)",
            Some("S") => "S (supervisor)",
            Some("M") => "M (machine)",
            Some(_) => "? (unknown)",
            None => "unavailable",
        };
        let mut out = vec![format!("hart {}  priv {pname}", self.hart)];
        let pc = format!(
            "pc            {:#018x}  {}",
            self.pc,
            self.pc_symbol.as_deref().unwrap_or("")
        );
        out.push(pc.trim_end().to_string());
        for g in &self.gprs {
            let line = format!(
                "{:<4} {:<4}     {:#018x}  {}",
                g.abi,
                format!("x{}", g.x),
                g.value,
                g.symbol.as_deref().unwrap_or("")
            );
            out.push(line.trim_end().to_string());
        }
        for c in &self.csrs {
            out.push(csr_line(c, 13));
        }
        out
    }

    /// The TUI's Registers tab: two general registers a line, then the
    /// CSRs, narrower than [`Regs::lines`].
    pub fn compact_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "hart {}  priv {}   pc {:#018x}  {}",
            self.hart,
            self.privilege.unwrap_or("?"),
            self.pc,
            self.pc_symbol.as_deref().unwrap_or("")
        )];
        for pair in self.gprs.chunks(2) {
            let cell = |g: &Gpr| format!("{:<4}{:#018x}", g.abi, g.value);
            let a = cell(&pair[0]);
            let b = pair.get(1).map(cell).unwrap_or_default();
            let note = if pair[0].x == 1 {
                format!("  ra = {}", pair[0].symbol.as_deref().unwrap_or(""))
            } else {
                String::new()
            };
            out.push(format!("{a}   {b}{note}").trim_end().to_string());
        }
        for c in &self.csrs {
            out.push(csr_line(c, 9));
        }
        out
    }
}

/// `name  value  decoded`, the name padded to `width`.
fn csr_line(c: &CsrRow, width: usize) -> String {
    let line = match c.value {
        Some(v) => format!(
            "{:<width$} {:#018x}  {}",
            c.name,
            v,
            c.decoded.as_deref().unwrap_or("")
        ),
        None => format!("{:<width$} unavailable", c.name),
    };
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Regs {
        let mut x = [0u64; 32];
        x[1] = 0x8000_1040;
        x[2] = 0x8000_9fe0;
        let gr = GeneralRegs { x, pc: 0x8000_2020 };
        let csrs = [
            (Csr::Sstatus, Some((1 << 8) | (1 << 5))),
            (Csr::Scause, Some(13)),
            (Csr::Satp, Some((8 << 60) | 0x87f05)),
            (Csr::Sie, Some(0x222)),
            (Csr::Stvec, Some(0x8000_3001)),
            (Csr::Stval, None),
            (Csr::Priv, Some(1)),
        ];
        let sym = |a: u64| match a {
            0x8000_2020 => Some("scheduler+0x20".to_string()),
            0x8000_1040 => Some("main+0x40".to_string()),
            0x8000_3000 => Some("kernelvec".to_string()),
            _ => None,
        };
        regs(0, &gr, &csrs, &sym)
    }

    #[test]
    fn decodes_from_values() {
        let r = sample();
        assert_eq!(r.privilege, Some("S"));
        assert_eq!(r.pc_symbol.as_deref(), Some("scheduler+0x20"));
        assert_eq!(r.gprs.len(), 31);
        assert_eq!(r.gprs[0].symbol.as_deref(), Some("main+0x40"));
        assert_eq!(r.gprs[1].symbol, None, "only ra is symbolised");
        let names: Vec<_> = r.csrs.iter().map(|c| c.name).collect();
        assert!(!names.contains(&"priv"));
        let decoded = |n: &str| r.csrs.iter().find(|c| c.name == n).unwrap().decoded.clone();
        assert_eq!(decoded("scause").as_deref(), Some("load page fault"));
        assert_eq!(decoded("stvec").as_deref(), Some("kernelvec"));
        assert_eq!(decoded("sie").as_deref(), Some("SSIE STIE SEIE"));
        assert_eq!(
            decoded("satp").as_deref(),
            Some("Sv39 asid 0 root 0x87f05000")
        );
    }

    #[test]
    fn lines_for_the_cli_and_the_tui() {
        let r = sample();
        let l = r.lines();
        assert_eq!(l[0], "hart 0  priv S (supervisor)");
        assert_eq!(l[1], "pc            0x0000000080002020  scheduler+0x20");
        assert_eq!(l[2], "ra   x1       0x0000000080001040  main+0x40");
        assert_eq!(l[3], "sp   x2       0x0000000080009fe0");
        assert!(l.contains(&"stval         unavailable".to_string()));
        assert!(l.contains(&"scause        0x000000000000000d  load page fault".to_string()));
        let c = r.compact_lines();
        assert_eq!(
            c[0],
            "hart 0  priv S   pc 0x0000000080002020  scheduler+0x20"
        );
        assert_eq!(
            c[1],
            "ra  0x0000000080001040   sp  0x0000000080009fe0  ra = main+0x40"
        );
        assert_eq!(c[16], "t6  0x0000000000000000");
        assert_eq!(c[17], "sstatus   0x0000000000000120  SPIE SPP=S");
    }
}
