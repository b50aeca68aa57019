//! One translation as a view: the result of `kinspect translate` (its
//! `--json` as is), its one-line summary, the level-by-level `--explain`,
//! and the TUI's `:translate` pop-up, all from a
//! [`Translation`](kinspect_sv39::Translation) already walked.

use kinspect_sv39::pte::flag_names;
use kinspect_sv39::{
    page_size, page_size_name, PhysAddr, Pte, PteKind, Step, StepOutcome, Translation, VirtAddr,
};
use serde::Serialize;

use super::Root;
use crate::model::Owner;

/// `kinspect translate`: where a virtual address goes (`--json` as is).
#[derive(Debug, Serialize)]
pub struct Translate {
    #[serde(flatten)]
    pub root: Root,
    pub va: VirtAddr,
    /// The physical address, null when the address does not translate.
    pub pa: Option<PhysAddr>,
    /// The walk: steps (level, table, index, pte_addr, pte, kind,
    /// problems) and outcome (mapped or fault with level and reason);
    /// null when satp is Bare (no translation).
    pub translation: Option<Translation>,
    /// What the physical page is, from the kernel model (needs the ELF
    /// with debug info): kernel text/data, kernel stack, trapframe,
    /// page-table page, user page, free page.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner: Vec<Owner>,
    /// `func+0xoff` of the virtual address, for the summary line.
    #[serde(skip)]
    pub symbol: Option<String>,
}

impl Translate {
    /// satp mode Bare: the address is its own physical address.
    pub fn bare(root: Root, va: VirtAddr) -> Translate {
        Translate {
            root,
            va,
            // Bare: the virtual address is the physical one.
            pa: Some(PhysAddr(va.0)),
            translation: None,
            owner: Vec::new(),
            symbol: None,
        }
    }

    /// A walk through `root`, with the page's owners and the address's symbol.
    pub fn walked(
        root: Root,
        t: Translation,
        owner: Vec<Owner>,
        symbol: Option<String>,
    ) -> Translate {
        Translate {
            root,
            va: t.va,
            pa: t.pa(),
            translation: Some(t),
            owner,
            symbol,
        }
    }

    /// Why the hart would fault, as one line; `None` when it translates.
    pub fn fault(&self) -> Option<String> {
        match &self.translation.as_ref()?.outcome {
            StepOutcome::Fault { level, reason } => Some(format!(
                "{:#x} does not translate (level {level}): {reason}",
                self.va
            )),
            StepOutcome::Mapped { .. } => None,
        }
    }

    /// `   page: kernel stack of pid 1; ...`, when the model knows the page.
    fn page_line(&self) -> Option<String> {
        (!self.owner.is_empty()).then(|| {
            let names: Vec<String> = self.owner.iter().map(|o| o.to_string()).collect();
            format!("   page: {}", names.join("; "))
        })
    }

    /// The text of `kinspect translate [--explain]`: nothing for a fault
    /// without `--explain` (the error line says it).
    pub fn lines(&self, explain: bool) -> Vec<String> {
        let va = self.va;
        let Some(t) = &self.translation else {
            return vec![format!(
                "{va:#018x} -> {va:#018x}  (satp mode Bare: no translation)"
            )];
        };
        let mut out = if explain {
            explain_lines(&self.root, t)
        } else if let StepOutcome::Mapped {
            pa, page_size, pte, ..
        } = &t.outcome
        {
            let sym = self
                .symbol
                .as_ref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default();
            vec![format!(
                "{va:#018x} -> {pa:#018x}  ({}{sym})",
                page_desc(*page_size, *pte)
            )]
        } else {
            return Vec::new();
        };
        out.extend(self.page_line());
        out
    }
}

/// `VPN[2] = 255  VPN[1] = 511  VPN[0] = 507  offset = 0x000`.
pub fn vpn_line(va: VirtAddr) -> String {
    format!(
        "VPN[2] = {}  VPN[1] = {}  VPN[0] = {}  offset = {:#05x}",
        va.vpn(2),
        va.vpn(1),
        va.vpn(0),
        va.page_offset()
    )
}

/// `4 KiB page, rw---ad`.
pub fn page_desc(size: u64, pte: Pte) -> String {
    format!("{} page, {}", page_size_name(size), pte.attr_letters())
}

/// `--explain`: the indices, every level's entry and why the walk ended.
pub fn explain_lines(root: &Root, t: &Translation) -> Vec<String> {
    let mut out = vec![
        format!("translate {:#018x} through {}", t.va, root.describe()),
        format!("  {}", vpn_line(t.va)),
    ];
    for s in &t.steps {
        let head = format!(
            "level {}: table {:#018x} [{}] at {:#018x}",
            s.level, s.table, s.index, s.pte_addr
        );
        let Some(pte) = s.pte else {
            out.push(format!("{head}: not read"));
            continue;
        };
        let what = match s.kind {
            Some(PteKind::Pointer) if s.level > 0 => format!(
                "pointer to the level-{} table {:#018x}",
                s.level - 1,
                pte.pa()
            ),
            Some(PteKind::Pointer) => "pointer, but there is no level below".into(),
            Some(PteKind::Leaf) => format!(
                "leaf: {} page at {:#018x}",
                page_size_name(page_size(s.level)),
                pte.pa()
            ),
            _ => "invalid".into(),
        };
        out.push(format!(
            "{head}  pte {:#018x}  {}  {what}",
            pte.0,
            flag_names(pte)
        ));
        for p in &s.problems {
            out.push(format!("         ! {p}"));
        }
    }
    out.push(match &t.outcome {
        StepOutcome::Mapped { pa, .. } => format!("=> {:#018x} -> {pa:#018x}", t.va),
        StepOutcome::Fault { level, reason } => {
            format!("=> page fault: the walk stops at level {level}: {reason}")
        }
    });
    out
}

/// The TUI's `:translate EXPR` window through `what` (a table's name):
/// the one-line result for the message line, and the walk step by step.
pub fn popup_lines(expr: &str, what: &str, t: &Translation) -> (String, Vec<String>) {
    let (va, root) = (t.va, t.root);
    let mut lines = vec![
        format!("translate {expr} = {va:#018x}"),
        format!("through {what} (root {root:#x})"),
        vpn_line(va),
    ];
    lines.extend(t.steps.iter().map(popup_step));
    let msg = match &t.outcome {
        StepOutcome::Mapped {
            pa, page_size, pte, ..
        } => format!(
            "{expr} = {va:#x} -> {pa:#x}  ({})",
            page_desc(*page_size, *pte)
        ),
        StepOutcome::Fault { level, reason } => {
            format!("{expr} = {va:#x}: page fault at level {level}: {reason}")
        }
    };
    lines.push(format!("=> {msg}"));
    (msg, lines)
}

/// One level of the pop-up's walk.
fn popup_step(s: &Step) -> String {
    let head = format!("level {}: table {:#x} [{}]", s.level, s.table, s.index);
    let Some(pte) = s.pte else {
        return format!("{head}: not read");
    };
    let what = match s.kind {
        Some(PteKind::Pointer) => format!(
            "-> level-{} table {:#x}",
            s.level.saturating_sub(1),
            pte.pa()
        ),
        Some(PteKind::Leaf) => format!(
            "leaf, {} page at {:#x}",
            page_size_name(page_size(s.level)),
            pte.pa()
        ),
        _ => "invalid".into(),
    };
    format!("{head} pte {:#018x} {} {what}", pte.0, flag_names(pte))
}

#[cfg(test)]
mod tests {
    use kinspect_sv39::SatpMode;

    use super::*;

    /// A kernel stack page through a three-level table, as the pgtbl lab
    /// maps it: two pointers, then a 4 KiB rw leaf.
    fn walk() -> Translation {
        let step = |level, table: u64, index, pte: u64, kind| Step {
            level,
            table: PhysAddr(table),
            index,
            pte_addr: PhysAddr(table + index as u64 * 8),
            pte: Some(Pte(pte)),
            kind: Some(kind),
            problems: Vec::new(),
        };
        let leaf = Pte(0x21fc_80c7);
        Translation {
            va: VirtAddr(0x3f_ffff_b000),
            root: PhysAddr(0x87f0_5000),
            steps: vec![
                step(2, 0x87f0_5000, 255, 0x21fc_1801, PteKind::Pointer),
                step(1, 0x87f0_6000, 511, 0x21fc_1c01, PteKind::Pointer),
                step(0, 0x87f0_7000, 507, leaf.0, PteKind::Leaf),
            ],
            outcome: StepOutcome::Mapped {
                pa: PhysAddr(0x87f2_0000),
                level: 0,
                page_va: VirtAddr(0x3f_ffff_b000),
                page_pa: PhysAddr(0x87f2_0000),
                page_size: 4096,
                pte: leaf,
            },
        }
    }

    fn root() -> Root {
        Root {
            hart: Some(0),
            satp: Some((8 << 60) | 0x87f05),
            mode: SatpMode::Sv39,
            root: PhysAddr(0x87f0_5000),
            table: None,
        }
    }

    #[test]
    fn summary_explain_and_bare() {
        let v = Translate::walked(root(), walk(), Vec::new(), Some("kstack".into()));
        assert_eq!(v.pa, Some(PhysAddr(0x87f2_0000)));
        assert_eq!(v.fault(), None);
        assert_eq!(
            v.lines(false),
            ["0x0000003fffffb000 -> 0x0000000087f20000  (4 KiB page, rw---ad, kstack)"]
        );
        let e = v.lines(true);
        assert_eq!(
            e[0],
            "translate 0x0000003fffffb000 through hart 0 satp 0x8000000000087f05 (Sv39, root 0x87f05000)"
        );
        assert_eq!(
            e[1],
            "  VPN[2] = 255  VPN[1] = 511  VPN[0] = 507  offset = 0x000"
        );
        assert!(
            e[2].ends_with("pointer to the level-1 table 0x0000000087f06000"),
            "{}",
            e[2]
        );
        assert_eq!(e[5], "=> 0x0000003fffffb000 -> 0x0000000087f20000");
        let b = Translate::bare(root(), VirtAddr(0x8000_0000));
        assert_eq!(
            b.lines(false),
            ["0x0000000080000000 -> 0x0000000080000000  (satp mode Bare: no translation)"]
        );
    }

    #[test]
    fn a_fault_is_one_error_line_and_no_summary() {
        let mut t = walk();
        t.steps.truncate(1);
        t.outcome = StepOutcome::Fault {
            level: 2,
            reason: "the PTE is not valid".into(),
        };
        let v = Translate::walked(root(), t, Vec::new(), None);
        assert!(v.lines(false).is_empty());
        assert_eq!(
            v.fault().as_deref(),
            Some("0x3fffffb000 does not translate (level 2): the PTE is not valid")
        );
        let (msg, lines) = popup_lines("x", "the kernel", &v.translation.unwrap());
        assert_eq!(
            msg,
            "x = 0x3fffffb000: page fault at level 2: the PTE is not valid"
        );
        assert_eq!(lines.last().unwrap(), &format!("=> {msg}"));
    }
}
