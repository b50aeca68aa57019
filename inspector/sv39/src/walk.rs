//! Bounded walks over physical memory: the whole tree (for `maps` and
//! `vmprint`) or one virtual address (for `translate`).
//!
//! Memory is read through [`PhysRead`], one whole 4 KiB table page per
//! read, each page at most once per walk. Nothing read from the target is
//! trusted: a pointer outside RAM is not followed, a table page met twice
//! (a cycle, or two entries sharing one table) is reported, an unreadable
//! page is reported, and the whole walk stops after
//! [`WalkLimits::max_entries`] valid entries. Each of these becomes a
//! [`Finding`]; only a failure of the transport itself is an error.
//!
//! Like the hardware (and QEMU's `info mem`), the walk goes at most three
//! levels deep, so a cycle cannot make it loop: a table met again is
//! walked again at its new level from the copy already read.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::pte::{Pte, PteKind, PteProblem};
use crate::{page_size, PhysAddr, VirtAddr, ENTRIES, LEVELS, PAGE_SIZE};

/// Why physical memory could not be read: `E` is the memory's own failure
/// ([`PhysRead::Error`]), kept typed so the caller can report it as itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError<E> {
    /// Nothing readable there (outside RAM, unassigned): a finding.
    Unreadable(String),
    /// The transport failed (connection lost): the walk stops with this error.
    Fatal(E),
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Unreadable(w) => f.write_str(w),
            ReadError::Fatal(e) => e.fmt(f),
        }
    }
}

/// Physical memory as the walker sees it. kinspect implements it once for
/// every `Target`.
pub trait PhysRead {
    /// What stops a walk (a lost connection); walks return it unchanged.
    type Error;
    /// Fill all of `buf` from physical address `pa`, or fail.
    fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), ReadError<Self::Error>>;
}

/// The physical range page tables may live in. Pointers elsewhere are
/// findings, never followed. Leaves may map anything (devices too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ram {
    pub base: PhysAddr,
    #[serde(serialize_with = "crate::json::hex")]
    pub size: u64,
}

impl Default for Ram {
    /// QEMU virt with `-m 128M`: [0x80000000, 0x88000000), xv6's KERNBASE..PHYSTOP.
    fn default() -> Self {
        Ram {
            base: PhysAddr(0x8000_0000),
            size: 128 << 20,
        }
    }
}

impl Ram {
    /// Whether the byte at `pa` lies inside RAM.
    pub fn contains(&self, pa: PhysAddr) -> bool {
        pa.offset_from(self.base).is_some_and(|off| off < self.size)
    }

    /// Whether the whole page at `pa` lies inside RAM.
    pub fn contains_page(&self, pa: PhysAddr) -> bool {
        match (pa.checked_add(PAGE_SIZE), self.base.checked_add(self.size)) {
            (Some(end), Some(ram_end)) => pa >= self.base && end <= ram_end,
            _ => false,
        }
    }

    /// The first address past RAM (saturating at the top of the space).
    pub fn end(&self) -> PhysAddr {
        PhysAddr(self.base.0.saturating_add(self.size))
    }
}

/// Bounds on one walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    pub ram: Ram,
    /// Stop after this many valid entries (the tree can hold 512^3).
    pub max_entries: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            ram: Ram::default(),
            max_entries: 1 << 20,
        }
    }
}

/// One valid entry met by a whole-tree walk, in walk order (depth first,
/// index order, which is also virtual-address order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WalkEntry {
    /// 2 = root, 0 = last level.
    pub level: usize,
    /// Index in its table, 0..511.
    pub index: usize,
    /// The first virtual address the entry covers, canonical.
    pub va: VirtAddr,
    pub pte: Pte,
    /// The physical address of the table page holding the entry.
    pub table: PhysAddr,
    /// Which visit of a table page this entry was read in (a table met
    /// twice has two visits); QEMU's `info mem` merges only within one.
    #[serde(skip)]
    pub visit: usize,
}

impl WalkEntry {
    pub fn kind(&self) -> PteKind {
        self.pte.kind()
    }

    /// The physical address of the entry itself.
    pub fn pte_addr(&self) -> PhysAddr {
        self.table + 8 * self.index as u64
    }
}

/// A mapped page (4 KiB, 2 MiB or 1 GiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Leaf {
    pub va: VirtAddr,
    pub pa: PhysAddr,
    #[serde(serialize_with = "crate::json::hex")]
    pub size: u64,
    pub level: usize,
    pub pte: Pte,
}

/// Something odd about the page table. Walks report these and go on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A table (or the root) outside RAM: not followed.
    TableOutsideRam {
        level: usize,
        va: VirtAddr,
        pte_addr: Option<PhysAddr>,
        table: PhysAddr,
    },
    /// A table page that could not be read.
    Unreadable {
        level: usize,
        table: PhysAddr,
        why: String,
    },
    /// A table page met again: `cycle` when it is one of the tables on the
    /// way down to it (it points at itself or an ancestor), else shared.
    TableSeenAgain {
        level: usize,
        va: VirtAddr,
        pte_addr: PhysAddr,
        table: PhysAddr,
        cycle: bool,
    },
    /// A valid entry with a reserved or faulting encoding.
    Reserved {
        level: usize,
        va: VirtAddr,
        pte_addr: PhysAddr,
        pte: Pte,
        problem: PteProblem,
    },
    /// The walk stopped after this many entries.
    Truncated { entries: usize },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::TableOutsideRam {
                level,
                va,
                pte_addr: Some(at),
                table,
            } => write!(
                f,
                "PTE at {at:#x} (va {va:#x}, level {}) points to a table at {table:#x}, outside RAM: not followed",
                level + 1
            ),
            Finding::TableOutsideRam { table, .. } => {
                write!(f, "root page table {table:#x} is outside RAM: not walked")
            }
            Finding::Unreadable { level, table, why } => {
                write!(f, "level-{level} table at {table:#x} is unreadable: {why}")
            }
            Finding::TableSeenAgain {
                level,
                va,
                pte_addr,
                table,
                cycle,
            } => write!(
                f,
                "PTE at {pte_addr:#x} (va {va:#x}) points to table {table:#x} seen before ({}); walked again as level {level} without re-reading",
                if *cycle { "a cycle" } else { "shared" }
            ),
            Finding::Reserved {
                level,
                va,
                pte_addr,
                pte,
                problem,
            } => write!(
                f,
                "PTE at {pte_addr:#x} = {:#018x} (va {va:#x}, level {level}): {problem}",
                pte.0
            ),
            Finding::Truncated { entries } => {
                write!(f, "walk stopped after {entries} entries (limit)")
            }
        }
    }
}

/// Everything a whole-tree walk saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Walk {
    pub root: PhysAddr,
    pub entries: Vec<WalkEntry>,
    pub findings: Vec<Finding>,
    /// Distinct table pages read, in the order first read.
    pub tables: Vec<PhysAddr>,
}

impl Walk {
    /// The mapped pages, in virtual-address order.
    pub fn leaves(&self) -> impl Iterator<Item = Leaf> + '_ {
        self.entries
            .iter()
            .filter(|e| e.kind() == PteKind::Leaf)
            .map(|e| Leaf {
                va: e.va,
                pa: e.pte.pa(),
                size: page_size(e.level),
                level: e.level,
                pte: e.pte,
            })
    }
}

type Table = Box<[u64; ENTRIES]>;

fn read_table<M: PhysRead + ?Sized>(
    mem: &mut M,
    pa: PhysAddr,
) -> Result<Result<Table, String>, M::Error> {
    let mut bytes = vec![0u8; PAGE_SIZE as usize];
    match mem.read(pa, &mut bytes) {
        Ok(()) => {}
        Err(ReadError::Unreadable(why)) => return Ok(Err(why)),
        Err(ReadError::Fatal(e)) => return Err(e),
    }
    let mut t: Table = Box::new([0; ENTRIES]);
    for (slot, chunk) in t.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *slot = u64::from_le_bytes(b);
    }
    Ok(Ok(t))
}

struct Walker<'m, M: PhysRead + ?Sized> {
    mem: &'m mut M,
    limits: WalkLimits,
    cache: HashMap<PhysAddr, Option<Table>>,
    visits: usize,
    seen: HashSet<PhysAddr>,
    out: Walk,
    stopped: bool,
}

impl<M: PhysRead + ?Sized> Walker<'_, M> {
    /// The table at `pa`, read once; `None` if unreadable (reported once).
    fn table(&mut self, pa: PhysAddr, level: usize) -> Result<Option<Table>, M::Error> {
        if let Some(t) = self.cache.get(&pa) {
            return Ok(t.clone());
        }
        let t = match read_table(self.mem, pa)? {
            Ok(t) => {
                self.out.tables.push(pa);
                Some(t)
            }
            Err(why) => {
                self.out.findings.push(Finding::Unreadable {
                    level,
                    table: pa,
                    why,
                });
                None
            }
        };
        self.cache.insert(pa, t.clone());
        Ok(t)
    }

    fn visit(
        &mut self,
        table_pa: PhysAddr,
        level: usize,
        va_base: VirtAddr,
        path: &mut Vec<PhysAddr>,
    ) -> Result<(), M::Error> {
        let Some(table) = self.table(table_pa, level)? else {
            return Ok(());
        };
        let visit = self.visits;
        self.visits += 1;
        path.push(table_pa);
        for (index, &raw) in table.iter().enumerate() {
            let pte = Pte(raw);
            if !pte.valid() {
                continue;
            }
            if self.out.entries.len() >= self.limits.max_entries {
                if !self.stopped {
                    self.stopped = true;
                    self.out.findings.push(Finding::Truncated {
                        entries: self.out.entries.len(),
                    });
                }
                break;
            }
            let va = (va_base + index as u64 * page_size(level)).canonical();
            let entry = WalkEntry {
                level,
                index,
                va,
                pte,
                table: table_pa,
                visit,
            };
            self.out.entries.push(entry);
            for problem in pte.problems(level) {
                self.out.findings.push(Finding::Reserved {
                    level,
                    va,
                    pte_addr: entry.pte_addr(),
                    pte,
                    problem,
                });
            }
            if pte.kind() != PteKind::Pointer || level == 0 {
                continue;
            }
            let child = pte.pa();
            if !self.limits.ram.contains_page(child) {
                self.out.findings.push(Finding::TableOutsideRam {
                    level: level - 1,
                    va,
                    pte_addr: Some(entry.pte_addr()),
                    table: child,
                });
                continue;
            }
            if !self.seen.insert(child) {
                self.out.findings.push(Finding::TableSeenAgain {
                    level: level - 1,
                    va,
                    pte_addr: entry.pte_addr(),
                    table: child,
                    cycle: path.contains(&child),
                });
            }
            self.visit(
                child,
                level - 1,
                va_base + index as u64 * page_size(level),
                path,
            )?;
            if self.stopped {
                break;
            }
        }
        path.pop();
        Ok(())
    }
}

/// Walk the whole Sv39 tree rooted at `root` (a physical address).
/// Errors only when the transport fails; everything odd about the tree
/// itself is a [`Finding`] in the result.
pub fn walk<M: PhysRead + ?Sized>(
    mem: &mut M,
    root: PhysAddr,
    limits: WalkLimits,
) -> Result<Walk, M::Error> {
    let mut w = Walker {
        mem,
        limits,
        cache: HashMap::new(),
        visits: 0,
        seen: HashSet::new(),
        out: Walk {
            root,
            ..Walk::default()
        },
        stopped: false,
    };
    if !limits.ram.contains_page(root) {
        w.out.findings.push(Finding::TableOutsideRam {
            level: LEVELS - 1,
            va: VirtAddr(0),
            pte_addr: None,
            table: root,
        });
        return Ok(w.out);
    }
    w.seen.insert(root);
    w.visit(root, LEVELS - 1, VirtAddr(0), &mut Vec::new())?;
    Ok(w.out)
}

/// One level of a translation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub level: usize,
    /// The table page read at this level.
    pub table: PhysAddr,
    /// VPN[level], the index into `table`.
    pub index: usize,
    pub pte_addr: PhysAddr,
    /// The entry, `None` when its table could not be read.
    pub pte: Option<Pte>,
    pub kind: Option<PteKind>,
    pub problems: Vec<PteProblem>,
}

/// How a translation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum StepOutcome {
    /// The address maps to `pa` through a leaf at `level`.
    Mapped {
        pa: PhysAddr,
        level: usize,
        page_va: VirtAddr,
        page_pa: PhysAddr,
        #[serde(serialize_with = "crate::json::hex")]
        page_size: u64,
        pte: Pte,
    },
    /// The hardware would raise a page fault; `reason` says why, `level`
    /// where the walk stopped.
    Fault { level: usize, reason: String },
}

/// A translation of one virtual address, level by level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Translation {
    pub va: VirtAddr,
    pub root: PhysAddr,
    pub steps: Vec<Step>,
    pub outcome: StepOutcome,
}

impl Translation {
    /// The physical address, when the address translates.
    pub fn pa(&self) -> Option<PhysAddr> {
        match self.outcome {
            StepOutcome::Mapped { pa, .. } => Some(pa),
            StepOutcome::Fault { .. } => None,
        }
    }
}

/// Translate `va` the way an Sv39 hart does (privileged spec, "Virtual
/// Address Translation Process"), reading one table page per level. Errors
/// only when the transport fails; a fault is an outcome.
pub fn translate<M: PhysRead + ?Sized>(
    mem: &mut M,
    root: PhysAddr,
    va: VirtAddr,
    ram: Ram,
) -> Result<Translation, M::Error> {
    let mut steps = Vec::new();
    let fault = |steps: Vec<Step>, level: usize, reason: String| Translation {
        va,
        root,
        steps,
        outcome: StepOutcome::Fault { level, reason },
    };
    if !va.is_canonical() {
        return Ok(fault(
            steps,
            LEVELS - 1,
            format!("{va:#x} is not canonical: bits 63..39 must all equal bit 38"),
        ));
    }
    let mut table = root;
    for level in (0..LEVELS).rev() {
        let index = va.vpn(level);
        let pte_addr = table + 8 * index as u64;
        let mut step = Step {
            level,
            table,
            index,
            pte_addr,
            pte: None,
            kind: None,
            problems: Vec::new(),
        };
        if !ram.contains_page(table) {
            steps.push(step);
            return Ok(fault(
                steps,
                level,
                format!("the level-{level} table {table:#x} is outside RAM"),
            ));
        }
        let t = match read_table(mem, table)? {
            Ok(t) => t,
            Err(why) => {
                steps.push(step);
                return Ok(fault(
                    steps,
                    level,
                    format!("the level-{level} table {table:#x} is unreadable: {why}"),
                ));
            }
        };
        let pte = Pte(t[index]);
        step.pte = Some(pte);
        step.kind = Some(pte.kind());
        step.problems = pte.problems(level);
        let problems = step.problems.clone();
        steps.push(step);
        if let Some(p) = problems.first() {
            return Ok(fault(steps, level, format!("reserved encoding: {p}")));
        }
        match pte.kind() {
            PteKind::Invalid => {
                return Ok(fault(
                    steps,
                    level,
                    format!("PTE {index} of the level-{level} table is not valid (V=0)"),
                ))
            }
            PteKind::Pointer => table = pte.pa(),
            PteKind::Leaf => {
                let size = page_size(level);
                let page_va = va.align_down(size);
                return Ok(Translation {
                    va,
                    root,
                    steps,
                    outcome: StepOutcome::Mapped {
                        pa: pte.pa() + va.offset_in(size),
                        level,
                        page_va,
                        page_pa: pte.pa(),
                        page_size: size,
                        pte,
                    },
                });
            }
        }
    }
    // Unreachable in practice: a pointer at level 0 is flagged as a problem
    // above; kept so the function is total.
    Ok(fault(steps, 0, "no leaf after three levels".into()))
}
