//! `kinspect diff BEFORE AFTER`: what changed between two moments of one
//! kernel: processes that appeared, ended or changed, and per process the
//! user page-table mappings added, removed or changed (PA, permissions),
//! grouped into ranges.
//!
//! Page-table bugs are about change (what fork copied, what exec replaced,
//! what sbrk added, what exit freed); every other view shows one moment.
//! Each side is read the same way as `procs` and `vmprint` read a machine:
//! the kernel model for the process table, kinspect's own Sv39 walk for
//! each table. Both sides must be of the same kernel build (a snapshot is
//! refused otherwise, as everywhere).
//!
//! The accessed and dirty bits are the hardware's bookkeeping, not the
//! kernel's decisions: a change in A or D alone is ignored unless `--ad`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kinspect_sv39::{PhysAddr, Pte, PteFlags, Ram, VirtAddr};
use serde::Serialize;

use crate::commands::read_kernel;
use crate::error::{Error, Result};
use crate::model::{Kernel, PhysCache, ProcState, Profile};
use crate::target::Target;

/// Pages kept per table side: far above any xv6 process's user memory
/// (the walk itself is bounded by [`Kernel::limits`]).
const MAX_PAGES: usize = 1 << 20;

/// A mapped 4 KiB page (superpages are counted page by page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    pa: PhysAddr,
    pte: Pte,
}

/// One process as a side of the diff sees it.
#[derive(Clone, Debug)]
struct ProcView {
    pid: i64,
    name: String,
    state: ProcState,
    slot: usize,
    sz: Option<u64>,
    root: PhysAddr,
    pages: BTreeMap<VirtAddr, Page>,
    /// What was odd about the table (findings of the walk, too many
    /// pages), if anything.
    unreadable: Option<String>,
}

/// One moment of the machine.
#[derive(Clone, Debug)]
pub struct View {
    source: String,
    procs: Vec<ProcView>,
}

/// The attribute bits compared: V R W X U G, and A D with `--ad`.
fn attr_mask(ad: bool) -> PteFlags {
    if ad {
        PteFlags::all()
    } else {
        PteFlags::all() - PteFlags::A - PteFlags::D
    }
}

/// Read one side: every live process and its user page table.
pub fn view(
    target: &mut dyn Target,
    debug: &kinspect_symbols::Symbols,
    profile: &Profile,
    ram: Ram,
) -> Result<View> {
    let source = target.describe();
    let mut phys = PhysCache::new(target);
    let (_, state) = read_kernel(debug, profile, &mut phys, ram)?;
    let mut procs = Vec::new();
    for p in state.live() {
        let mut v = ProcView {
            pid: p.pid,
            name: p.name.clone(),
            state: p.state.clone(),
            slot: p.slot,
            sz: p.sz,
            root: p.pagetable,
            pages: BTreeMap::new(),
            unreadable: None,
        };
        if p.pagetable.0 != 0 {
            match kinspect_sv39::walk(&mut phys, p.pagetable, Kernel::limits(ram)) {
                Ok(w) => {
                    if let Some(f) = w.findings.first() {
                        v.unreadable = Some(format!(
                            "{} in the table ({f}{}); `kinspect maps --pid {}` lists them",
                            crate::words::count(w.findings.len(), "finding", "findings"),
                            if w.findings.len() > 1 { ", ..." } else { "" },
                            p.pid
                        ));
                    }
                    'leaves: for l in w.leaves() {
                        let step = 4096u64;
                        for i in 0..(l.size / step) {
                            if v.pages.len() >= MAX_PAGES {
                                v.unreadable = Some(format!(
                                    "more than {MAX_PAGES} pages mapped: compared only the first"
                                ));
                                break 'leaves;
                            }
                            v.pages.insert(
                                l.va + i * step,
                                Page {
                                    pa: l.pa + i * step,
                                    pte: l.pte,
                                },
                            );
                        }
                    }
                }
                // Unreadable table pages are findings inside the walk;
                // an error here is the connection or the file failing.
                Err(t) => return Err(Error::from(t)),
            }
        }
        procs.push(v);
    }
    Ok(View { source, procs })
}

/// What happened to a process.
#[derive(Clone, Debug, Serialize)]
pub struct ProcChange {
    /// `appeared`, `ended` or `changed`.
    pub change: &'static str,
    pub pid: i64,
    pub name: String,
    pub slot: usize,
    /// State before and after (`null` on the side where it did not exist).
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    /// Every field that differs: `state`, `name`, `sz`, `pagetable`.
    pub fields: Vec<FieldChange>,
}

/// A field of `struct proc` that differs.
#[derive(Clone, Debug, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub before: String,
    pub after: String,
}

/// A run of pages with the same kind of change.
#[derive(Clone, Debug, Serialize)]
pub struct RangeChange {
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub va: VirtAddr,
    pub pages: u64,
    /// First page's PA before and after (`null` where unmapped).
    pub pa_before: Option<PhysAddr>,
    pub pa_after: Option<PhysAddr>,
    /// `rwxugad` letters before and after.
    pub perms_before: Option<String>,
    pub perms_after: Option<String>,
}

impl RangeChange {
    pub fn end(&self) -> VirtAddr {
        self.va + self.pages * 4096
    }
}

/// One process's user page table, compared.
#[derive(Clone, Debug, Serialize)]
pub struct TableDiff {
    pub pid: i64,
    pub name: String,
    pub root_before: Option<PhysAddr>,
    pub root_after: Option<PhysAddr>,
    pub ranges: Vec<RangeChange>,
    pub pages_added: u64,
    pub pages_removed: u64,
    pub pages_changed: u64,
    /// A side whose table could not be walked, and why.
    pub notes: Vec<String>,
}

/// Everything `kinspect diff` says.
#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub before: String,
    pub after: String,
    /// Whether A/D-only changes count.
    pub ad: bool,
    pub processes: Vec<ProcChange>,
    pub page_tables: Vec<TableDiff>,
}

fn perms(p: &Page) -> String {
    p.pte.attr_letters()
}

fn hex_opt<T: std::fmt::LowerHex>(v: Option<T>) -> String {
    v.map(|x| format!("{x:#x}")).unwrap_or_else(|| "-".into())
}

/// Compare two sides.
pub fn diff(before: &View, after: &View, ad: bool) -> Diff {
    let mask = attr_mask(ad);
    let mut processes = Vec::new();
    let mut page_tables = Vec::new();
    let mut pids: Vec<i64> = before.procs.iter().map(|p| p.pid).collect();
    pids.extend(after.procs.iter().map(|p| p.pid));
    pids.sort_unstable();
    pids.dedup();
    let empty = BTreeMap::new();
    for pid in pids {
        let b = before.procs.iter().find(|p| p.pid == pid);
        let a = after.procs.iter().find(|p| p.pid == pid);
        // Every pid came from one side or the other.
        let Some(any) = a.or(b) else { continue };
        let mut fields = Vec::new();
        if let (Some(b), Some(a)) = (b, a) {
            if b.state != a.state {
                fields.push(FieldChange {
                    field: "state",
                    before: b.state.name(),
                    after: a.state.name(),
                });
            }
            if b.name != a.name {
                fields.push(FieldChange {
                    field: "name",
                    before: b.name.clone(),
                    after: a.name.clone(),
                });
            }
            if b.sz != a.sz {
                fields.push(FieldChange {
                    field: "sz",
                    before: hex_opt(b.sz),
                    after: hex_opt(a.sz),
                });
            }
            if b.root != a.root {
                fields.push(FieldChange {
                    field: "pagetable",
                    before: format!("{:#x}", b.root),
                    after: format!("{:#x}", a.root),
                });
            }
        }
        let change = match (b, a) {
            (None, Some(_)) => "appeared",
            (Some(_), None) => "ended",
            _ if fields.is_empty() => "",
            _ => "changed",
        };
        if !change.is_empty() {
            processes.push(ProcChange {
                change,
                pid,
                name: any.name.clone(),
                slot: any.slot,
                state_before: b.map(|p| p.state.name()),
                state_after: a.map(|p| p.state.name()),
                fields,
            });
        }
        let bp = b.map_or(&empty, |p| &p.pages);
        let ap = a.map_or(&empty, |p| &p.pages);
        let ranges = compare(bp, ap, mask);
        let notes: Vec<String> = [("before", b), ("after", a)]
            .iter()
            .filter_map(|(side, p)| {
                p.and_then(|p| p.unreadable.as_ref()).map(|why| {
                    format!(
                        "{side}: the table at {:#x}: {why}",
                        p.map_or(PhysAddr(0), |p| p.root)
                    )
                })
            })
            .collect();
        if !ranges.is_empty() || !notes.is_empty() {
            let count = |c: &str| {
                ranges
                    .iter()
                    .filter(|r| r.change == c)
                    .map(|r| r.pages)
                    .sum()
            };
            page_tables.push(TableDiff {
                pid,
                name: a.map_or(&any.name, |p| &p.name).clone(),
                root_before: b.map(|p| p.root),
                root_after: a.map(|p| p.root),
                pages_added: count("added"),
                pages_removed: count("removed"),
                pages_changed: count("changed"),
                ranges,
                notes,
            });
        }
    }
    Diff {
        before: before.source.clone(),
        after: after.source.clone(),
        ad,
        processes,
        page_tables,
    }
}

/// Page-by-page comparison, merged into ranges: consecutive VAs with the
/// same kind of change, PAs that continue the run on each side, and the
/// same permissions on each side.
fn compare(
    b: &BTreeMap<VirtAddr, Page>,
    a: &BTreeMap<VirtAddr, Page>,
    mask: PteFlags,
) -> Vec<RangeChange> {
    let mut vas: Vec<VirtAddr> = b.keys().chain(a.keys()).copied().collect();
    vas.sort_unstable();
    vas.dedup();
    let mut out: Vec<RangeChange> = Vec::new();
    for va in vas {
        let (pb, pa) = (b.get(&va), a.get(&va));
        let change = match (pb, pa) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(x), Some(y))
                if x.pa != y.pa || (x.pte.flags() & mask) != (y.pte.flags() & mask) =>
            {
                "changed"
            }
            _ => continue,
        };
        let next = RangeChange {
            change,
            va,
            pages: 1,
            pa_before: pb.map(|p| p.pa),
            pa_after: pa.map(|p| p.pa),
            perms_before: pb.map(perms),
            perms_after: pa.map(perms),
        };
        if let Some(last) = out.last_mut() {
            let n = last.pages * 4096;
            let continues = |x: Option<PhysAddr>, y: Option<PhysAddr>| match (x, y) {
                (Some(x), Some(y)) => x + n == y,
                (None, None) => true,
                _ => false,
            };
            if last.change == change
                && last.end() == va
                && continues(last.pa_before, next.pa_before)
                && continues(last.pa_after, next.pa_after)
                && last.perms_before == next.perms_before
                && last.perms_after == next.perms_after
            {
                last.pages += 1;
                continue;
            }
        }
        out.push(next);
    }
    out
}

impl Diff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.page_tables.is_empty()
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "before: {}", self.before);
        let _ = writeln!(s, "after:  {}", self.after);
        if self.is_empty() {
            let _ = writeln!(
                s,
                "\nno change in the process table or the user page tables{}",
                if self.ad {
                    ""
                } else {
                    " (A/D bits ignored; --ad to count them)"
                }
            );
            return s;
        }
        if !self.processes.is_empty() {
            let _ = writeln!(s, "\nprocesses:");
            for p in &self.processes {
                let mark = match p.change {
                    "appeared" => '+',
                    "ended" => '-',
                    _ => '~',
                };
                let what = match p.change {
                    "appeared" => format!(
                        "appeared in slot {} ({})",
                        p.slot,
                        p.state_after.as_deref().unwrap_or("?")
                    ),
                    "ended" => format!(
                        "ended (was {} in slot {})",
                        p.state_before.as_deref().unwrap_or("?"),
                        p.slot
                    ),
                    _ => p
                        .fields
                        .iter()
                        .map(|f| format!("{} {} -> {}", f.field, f.before, f.after))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let _ = writeln!(s, "  {mark} pid {:<3} {:<16} {what}", p.pid, p.name);
            }
        }
        if !self.page_tables.is_empty() {
            let _ = writeln!(s, "\nuser page tables:");
            for t in &self.page_tables {
                let root = match (t.root_before, t.root_after) {
                    (Some(b), Some(a)) if a != b => format!("{b:#x} -> {a:#x} (replaced)"),
                    (_, Some(a)) => format!("{a:#x}"),
                    (Some(b), None) => format!("{b:#x} (gone)"),
                    (None, None) => "-".into(),
                };
                let _ = writeln!(
                    s,
                    "  pid {} {}, table {root}: {} added, {} removed, {} changed",
                    t.pid,
                    t.name,
                    crate::words::count(t.pages_added as usize, "page", "pages"),
                    t.pages_removed,
                    t.pages_changed
                );
                for r in &t.ranges {
                    let (mark, what) = match r.change {
                        "added" => (
                            '+',
                            format!(
                                "-> {}  {}",
                                hex_opt(r.pa_after),
                                r.perms_after.as_deref().unwrap_or("")
                            ),
                        ),
                        "removed" => (
                            '-',
                            format!(
                                "was {}  {}",
                                hex_opt(r.pa_before),
                                r.perms_before.as_deref().unwrap_or("")
                            ),
                        ),
                        _ => {
                            let mut w = Vec::new();
                            if r.pa_before != r.pa_after {
                                w.push(format!(
                                    "pa {} -> {}",
                                    hex_opt(r.pa_before),
                                    hex_opt(r.pa_after)
                                ));
                            }
                            if r.perms_before != r.perms_after {
                                w.push(format!(
                                    "{} -> {}",
                                    r.perms_before.as_deref().unwrap_or(""),
                                    r.perms_after.as_deref().unwrap_or("")
                                ));
                            }
                            ('~', w.join(", "))
                        }
                    };
                    let _ = writeln!(
                        s,
                        "    {mark} {:#012x}-{:#012x} {:<9} {what}",
                        r.va,
                        r.end().0 - 1,
                        crate::words::count(r.pages as usize, "page", "pages"),
                    );
                }
                for n in &t.notes {
                    let _ = writeln!(s, "    note: {n}");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pa: u64, flags: PteFlags) -> Page {
        Page {
            pa: PhysAddr(pa),
            pte: Pte::new(PhysAddr(pa), flags),
        }
    }

    fn map(pages: &[(u64, u64, PteFlags)]) -> BTreeMap<VirtAddr, Page> {
        pages
            .iter()
            .map(|&(va, pa, f)| (VirtAddr(va), page(pa, f)))
            .collect()
    }

    const RWU: PteFlags = PteFlags::V
        .union(PteFlags::R)
        .union(PteFlags::W)
        .union(PteFlags::U);
    const RXU: PteFlags = PteFlags::V
        .union(PteFlags::R)
        .union(PteFlags::X)
        .union(PteFlags::U);
    const A: PteFlags = PteFlags::A;

    #[test]
    fn runs_merge_only_where_va_pa_and_perms_continue() {
        let b = map(&[(0, 0x8100_0000, RXU)]);
        let a = map(&[
            (0, 0x8100_0000, RXU),
            (0x1000, 0x8200_0000, RWU),
            (0x2000, 0x8200_1000, RWU),
            (0x3000, 0x8300_0000, RWU), // PA jumps: a new range
        ]);
        let r = compare(&b, &a, attr_mask(false));
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            (r[0].change, r[0].va, r[0].pages),
            ("added", VirtAddr(0x1000), 2)
        );
        assert_eq!((r[1].va, r[1].pages), (VirtAddr(0x3000), 1));
    }

    #[test]
    fn accessed_and_dirty_count_only_when_asked() {
        let b = map(&[(0, 0x8100_0000, RXU)]);
        let a = map(&[(0, 0x8100_0000, RXU | A)]);
        assert!(compare(&b, &a, attr_mask(false)).is_empty());
        let r = compare(&b, &a, attr_mask(true));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].change, "changed");
    }

    #[test]
    fn a_moved_page_is_a_change_and_a_gone_one_a_removal() {
        let b = map(&[(0, 0x8100_0000, RXU), (0x1000, 0x8100_1000, RWU)]);
        let a = map(&[(0, 0x8500_0000, RXU)]);
        let r = compare(&b, &a, attr_mask(false));
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].change, "changed");
        assert_eq!(r[0].pa_after, Some(PhysAddr(0x8500_0000)));
        assert_eq!(r[1].change, "removed");
    }
}
