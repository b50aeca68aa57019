//! Finding the per-process kernel page table of a pgtbl-lab kernel by what
//! it is, not by its name.
//!
//! The 2020 lab ("a kernel page table per process") has students add a
//! field to `struct proc`, and they name it freely: `kpagetable`,
//! `kernelpgtbl`, `prockpt`, `kernel_pt`, ... So the model looks for it in
//! two steps, the way a person reading the kernel would:
//!
//! 1. **By type** ([`candidates`]): every member of `struct proc` whose
//!    type is the type of `pagetable` (a pointer to the same thing, seen
//!    through typedefs: `pagetable_t`, `uint64 *`, `*mut PageTable`), other
//!    than `pagetable` itself, is a candidate. The profile's names only
//!    order them.
//! 2. **By memory** ([`confirm`]): a candidate's value in a live process
//!    must be the root of a table that maps the kernel's text the way
//!    `kernel_pagetable` does (KERNBASE to the same physical page). A user
//!    page table never maps KERNBASE, so a second user table or any other
//!    pointer is told apart.
//!
//! `--kpt-field NAME` overrides both; `--kpt-field none` says there is none.

use kinspect_sv39::{translate, PhysAddr, Ram, StepOutcome, VirtAddr};
use kinspect_symbols::{Symbols, TypeId, TypeKind, Value};
use serde::Serialize;

use super::mem::PhysCache;
use super::state::ProcState;

/// KERNBASE: where every xv6-riscv kernel's text starts, identity-mapped
/// in `kernel_pagetable` and in every per-process copy of it.
pub const KERNBASE: VirtAddr = VirtAddr(0x8000_0000);

/// How the per-process kernel page-table field was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KptHow {
    /// Named with `--kpt-field` (or the profile); with no field, the
    /// search was turned off (`--kpt-field none`).
    Named,
    /// The only member of the right type, and a live process's value of it
    /// maps the kernel text like `kernel_pagetable`.
    Memory,
    /// The only member of the right type; no live process has it set yet,
    /// so memory could not confirm it.
    Type,
}

/// What the model knows about the per-process kernel page table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KptDetection {
    /// The field in use, when there is one.
    pub field: Option<String>,
    pub how: Option<KptHow>,
    /// Members of `struct proc` of the page-table type (besides
    /// `pagetable`), in the order they were tried.
    pub candidates: Vec<String>,
    /// Candidates memory ruled out, with the reason.
    pub rejected: Vec<(String, String)>,
}

impl KptDetection {
    /// One line for headers and notes: `kernelpgtbl (found by type,
    /// confirmed from memory)`.
    pub fn describe(&self) -> String {
        match (&self.field, self.how) {
            (Some(f), Some(KptHow::Named)) => format!("{f} (named with --kpt-field)"),
            (Some(f), Some(KptHow::Memory)) => {
                format!("{f} (found by type; its root maps the kernel like kernel_pagetable)")
            }
            (Some(f), _) => format!(
                "{f} (found by type; no live process has one yet, so memory did not confirm it)"
            ),
            (None, Some(KptHow::Named)) => {
                "none (the search is off: --kpt-field none or --profile xv6-riscv)".into()
            }
            (None, _) if self.candidates.is_empty() => {
                "none (struct proc has no second page-table field)".into()
            }
            (None, _) => format!(
                "none recognised (candidates by type: {}; name yours with --kpt-field)",
                self.candidates.join(", ")
            ),
        }
    }
}

/// The warning for harts running on a table nobody owns while no
/// per-process field was recognised (`unexplained`: hart, root).
pub fn unrecognised_note(d: &KptDetection, unexplained: &[(usize, PhysAddr)]) -> Option<String> {
    if d.field.is_some() || unexplained.is_empty() {
        return None;
    }
    let harts: Vec<String> = unexplained
        .iter()
        .map(|(h, r)| format!("hart {h} on {r:#x}"))
        .collect();
    let fix = if d.candidates.is_empty() {
        "no member of struct proc has the page-table type; name the field with --kpt-field".into()
    } else {
        let why: Vec<String> = d
            .rejected
            .iter()
            .map(|(c, w)| format!("{c}: {w}"))
            .collect();
        format!(
            "candidates by type: {}{}; name the field with --kpt-field",
            d.candidates.join(", "),
            if why.is_empty() {
                String::new()
            } else {
                format!(" (ruled out: {})", why.join("; "))
            }
        )
    };
    Some(format!(
        "{} a page table that is neither kernel_pagetable nor a process's user table: a per-process kernel page table kinspect did not recognise? {fix}",
        harts.join(", ")
    ))
}

/// Whether two member types are "the same page-table pointer": both
/// pointers (through typedefs and qualifiers) whose pointees resolve to
/// the same type, or to base types of the same size.
fn same_pointer(syms: &Symbols, a: TypeId, b: TypeId) -> bool {
    let (Ok(ta), Ok(tb)) = (syms.resolve(a), syms.resolve(b)) else {
        return false;
    };
    let (
        TypeKind::Pointer {
            pointee: Some(pa), ..
        },
        TypeKind::Pointer {
            pointee: Some(pb), ..
        },
    ) = (&ta.kind, &tb.kind)
    else {
        return false;
    };
    let (Ok(ra), Ok(rb)) = (syms.resolve(*pa), syms.resolve(*pb)) else {
        return false;
    };
    if ra.id == rb.id {
        return true;
    }
    match (&ra.kind, &rb.kind) {
        (TypeKind::Base(_), TypeKind::Base(_)) => {
            syms.size_of(ra.id).ok() == Some(8) && syms.size_of(rb.id).ok() == Some(8)
        }
        _ => ra.name.is_some() && ra.name == rb.name,
    }
}

/// The members of `struct proc` (type `proc_ty`) of the same pointer type
/// as `pagetable`, other than `pagetable`; names in `hints` first, then
/// declaration order.
pub fn candidates(syms: &Symbols, proc_ty: TypeId, hints: &[String]) -> Vec<String> {
    let Ok(pt) = syms.member(proc_ty, "pagetable") else {
        return Vec::new();
    };
    let Ok(t) = syms.resolve(proc_ty) else {
        return Vec::new();
    };
    let TypeKind::Struct(s) = &t.kind else {
        return Vec::new();
    };
    let mut found: Vec<String> = s
        .members
        .iter()
        .filter_map(|m| {
            let name = m.name.as_deref()?;
            (name != "pagetable" && same_pointer(syms, m.ty, pt.ty)).then(|| name.to_string())
        })
        .collect();
    found.sort_by_key(|n| hints.iter().position(|h| h == n).unwrap_or(usize::MAX));
    found
}

/// Where `va` leads through the table at `root`: the physical page, or
/// `None` when it does not translate (or the table is unreadable).
fn page_through(
    phys: &mut PhysCache<'_>,
    root: PhysAddr,
    va: VirtAddr,
    ram: Ram,
) -> Option<PhysAddr> {
    match translate(phys, root, va, ram).ok()?.outcome {
        StepOutcome::Mapped { pa, .. } => Some(pa.page_down()),
        StepOutcome::Fault { .. } => None,
    }
}

/// Why `root` is not a kernel page table like `kernel_pagetable`, or `None`
/// when it is one.
pub fn not_a_kernel_table(
    phys: &mut PhysCache<'_>,
    root: PhysAddr,
    kernel_pagetable: PhysAddr,
    ram: Ram,
) -> Option<String> {
    if root.page_offset() != 0 {
        return Some(format!("{root:#x} is not page-aligned"));
    }
    if !ram.contains_page(root) {
        return Some(format!("{root:#x} is outside RAM"));
    }
    let want = page_through(phys, kernel_pagetable, KERNBASE, ram);
    let have = page_through(phys, root, KERNBASE, ram);
    match (want, have) {
        (Some(w), Some(h)) if w == h => None,
        (_, None) => Some(format!(
            "the table at {root:#x} does not map the kernel text (KERNBASE {KERNBASE:#x})"
        )),
        (Some(w), Some(h)) => Some(format!(
            "the table at {root:#x} maps KERNBASE to {h:#x}, kernel_pagetable to {w:#x}"
        )),
        (None, Some(_)) => None,
    }
}

/// Decide among `candidates` from the live processes' values (`items` are
/// the `proc[]` elements as loaded).
pub fn confirm(
    phys: &mut PhysCache<'_>,
    ram: Ram,
    kernel_pagetable: PhysAddr,
    items: &[Value],
    candidates: Vec<String>,
) -> KptDetection {
    let mut d = KptDetection {
        candidates: candidates.clone(),
        ..KptDetection::default()
    };
    let live: Vec<&Value> = items
        .iter()
        .filter(|v| {
            v.field("state")
                .map(|s| ProcState::from_value(s) != ProcState::Unused)
                .unwrap_or(false)
        })
        .collect();
    let mut unset = Vec::new();
    for c in &candidates {
        let roots: Vec<PhysAddr> = live
            .iter()
            .filter_map(|v| super::state::opt_u64(v, c))
            .filter(|r| *r != 0)
            .map(PhysAddr)
            .take(super::MAX_CONFIRM)
            .collect();
        if roots.is_empty() {
            unset.push(c.clone());
            continue;
        }
        let mut bad = None;
        let mut good = 0usize;
        for r in &roots {
            match not_a_kernel_table(phys, *r, kernel_pagetable, ram) {
                None => good += 1,
                Some(why) => bad = bad.or(Some(why)),
            }
        }
        if good > 0 && good * 2 >= roots.len() {
            d.field = Some(c.clone());
            d.how = Some(KptHow::Memory);
            return d;
        }
        d.rejected.push((
            c.clone(),
            bad.unwrap_or_else(|| "not a kernel table".into()),
        ));
    }
    // Nothing confirmed: a lone candidate no process has set yet (a kernel
    // still booting) is taken on its type alone.
    if d.rejected.is_empty() && unset.len() == 1 {
        d.field = unset.pop();
        d.how = Some(KptHow::Type);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(field: Option<&str>, how: Option<KptHow>, candidates: &[&str]) -> KptDetection {
        KptDetection {
            field: field.map(String::from),
            how,
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
            rejected: Vec::new(),
        }
    }

    #[test]
    fn descriptions_say_how_the_field_was_found() {
        let d = det(Some("prockpt"), Some(KptHow::Memory), &["prockpt"]);
        assert!(d
            .describe()
            .starts_with("prockpt (found by type; its root maps"));
        let d = det(Some("kpt"), Some(KptHow::Named), &["kpt"]);
        assert_eq!(d.describe(), "kpt (named with --kpt-field)");
        let d = det(Some("kpt"), Some(KptHow::Type), &["kpt"]);
        assert!(d.describe().contains("memory did not confirm it"));
        assert_eq!(
            det(None, None, &[]).describe(),
            "none (struct proc has no second page-table field)"
        );
        assert!(det(None, None, &["a", "b"])
            .describe()
            .contains("candidates by type: a, b; name yours with --kpt-field"));
    }

    #[test]
    fn an_unplaced_hart_is_only_news_when_no_field_was_found() {
        let none = det(None, None, &["kernelpt_root"]);
        let note = unrecognised_note(&none, &[(1, PhysAddr(0x87f72000))]).expect("a warning");
        assert!(
            note.starts_with("hart 1 on 0x87f72000 a page table that is neither"),
            "{note}"
        );
        assert!(note.contains("candidates by type: kernelpt_root"), "{note}");
        assert!(note.contains("--kpt-field"), "{note}");
        // Nothing unplaced, or a field already found: nothing to say.
        assert_eq!(unrecognised_note(&none, &[]), None);
        let found = det(
            Some("kernelpt_root"),
            Some(KptHow::Memory),
            &["kernelpt_root"],
        );
        assert_eq!(
            unrecognised_note(&found, &[(1, PhysAddr(0x87f72000))]),
            None
        );
        // No candidate at all: say that the type search found none.
        let empty = det(None, None, &[]);
        let note = unrecognised_note(&empty, &[(0, PhysAddr(0x1000))]).expect("a warning");
        assert!(
            note.contains("no member of struct proc has the page-table type"),
            "{note}"
        );
    }
}
