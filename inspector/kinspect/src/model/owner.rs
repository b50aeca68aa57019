//! "What is this physical page?": kernel text or data (with the symbol),
//! a process's kernel stack or trapframe, a page-table page (of which
//! table, at which level), a process's user page, a free page.
//!
//! [`PhysMap::build`] walks every page table the kernel has (the kernel's,
//! each live process's user table and per-process kernel table) and the
//! free list once, then answers [`PhysMap::owners`] from memory. A page
//! can have several owners; that is how `check` finds a mapped page on
//! the free list. At most 2^18 user pages are recorded (eight times the
//! RAM of `-m 128M`): a corrupt table of user gigapages is cut there
//! instead of exhausting the host.

use std::collections::HashMap;
use std::fmt;

use kinspect_sv39::{walk, Finding, PhysAddr, Pte, PteFlags, PteKind, Ram, VirtAddr, Walk};
use serde::Serialize;

use super::{FreeList, Kernel, KernelState, PhysCache, Result};

/// Which page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum TableOf {
    /// `kernel_pagetable`.
    Kernel,
    /// A process's user page table.
    User { slot: usize, pid: i64 },
    /// A process's own kernel page table.
    ProcKernel { slot: usize, pid: i64 },
}

impl fmt::Display for TableOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableOf::Kernel => f.write_str("kernel_pagetable"),
            TableOf::User { pid, slot } => write!(f, "pid {pid}'s user page table (slot {slot})"),
            TableOf::ProcKernel { pid, slot } => {
                write!(f, "pid {pid}'s kernel page table (slot {slot})")
            }
        }
    }
}

/// One owner of a physical page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Owner {
    /// Below `etext`: kernel code.
    KernelText {
        symbol: Option<String>,
    },
    /// `etext`..`end`: kernel data, rodata, bss.
    KernelData {
        symbol: Option<String>,
    },
    KernelStack {
        slot: usize,
        pid: i64,
    },
    Trapframe {
        slot: usize,
        pid: i64,
    },
    /// A page of a page table (level 2 = root).
    PageTable {
        of: TableOf,
        level: usize,
    },
    /// Mapped with U in a process's user page table at `va`.
    UserPage {
        slot: usize,
        pid: i64,
        va: VirtAddr,
    },
    /// On kalloc's free list.
    Free,
    /// Outside RAM: a device or nothing.
    OutsideRam,
    /// In RAM above `end`, allocated, but not by anything kinspect tracks
    /// (a pipe buffer, the disk's rings, ...).
    Allocated,
}

impl Owner {
    /// A page the kernel itself uses: its text or data, a kernel stack, a
    /// trapframe, a page-table page.
    pub fn is_kernel(&self) -> bool {
        matches!(
            self,
            Owner::PageTable { .. }
                | Owner::KernelStack { .. }
                | Owner::Trapframe { .. }
                | Owner::KernelText { .. }
                | Owner::KernelData { .. }
        )
    }

    /// A page something uses: the kernel's, or a process's user page.
    pub fn is_in_use(&self) -> bool {
        self.is_kernel() || matches!(self, Owner::UserPage { .. })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::KernelText { symbol: Some(s) } => write!(f, "kernel text ({s})"),
            Owner::KernelText { symbol: None } => f.write_str("kernel text"),
            Owner::KernelData { symbol: Some(s) } => write!(f, "kernel data ({s})"),
            Owner::KernelData { symbol: None } => f.write_str("kernel data"),
            Owner::KernelStack { slot, pid } => {
                write!(f, "kernel stack of pid {pid} (slot {slot})")
            }
            Owner::Trapframe { slot, pid } => write!(f, "trapframe of pid {pid} (slot {slot})"),
            Owner::PageTable { of, level } => {
                write!(f, "page-table page (level {level}) of {of}")
            }
            Owner::UserPage { slot, pid, va } => {
                write!(f, "user page of pid {pid} (slot {slot}) at va {va:#x}")
            }
            Owner::Free => f.write_str("free page (on kmem.freelist)"),
            Owner::OutsideRam => f.write_str("outside RAM (device or unassigned)"),
            Owner::Allocated => f.write_str("allocated page, owner not tracked by kinspect"),
        }
    }
}

/// One walked page table, kept for checks.
#[derive(Clone, Debug)]
pub struct Walked {
    pub of: TableOf,
    pub root: PhysAddr,
    pub walk: Walk,
}

/// Every page's owners, from one pass over the kernel's tables and lists.
pub struct PhysMap {
    owners: HashMap<PhysAddr, Vec<Owner>>,
    /// `[KERNBASE, etext)` and `[etext, end)` when the ELF has both symbols
    /// (the kernel is linked at its physical address: the direct map).
    text: Option<(PhysAddr, PhysAddr)>,
    data: Option<(PhysAddr, PhysAddr)>,
    ram: Ram,
    /// The walks made, kernel's first.
    pub walks: Vec<Walked>,
    /// The free list (None: no `kmem`).
    pub free: Option<FreeList>,
    /// Where each symbol name came from, for kernel text/data names.
    symbolize: Box<dyn Fn(u64) -> Option<String> + Send + Sync>,
}

impl fmt::Debug for PhysMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhysMap")
            .field("pages", &self.owners.len())
            .field("walks", &self.walks.len())
            .finish_non_exhaustive()
    }
}

fn add(owners: &mut HashMap<PhysAddr, Vec<Owner>>, pa: PhysAddr, o: Owner) {
    let v = owners.entry(pa.page_down()).or_default();
    if !v.contains(&o) {
        v.push(o);
    }
}

impl PhysMap {
    /// Walk everything once. Page-table findings are kept in `walks`.
    pub fn build(
        kernel: &Kernel<'_>,
        phys: &mut PhysCache<'_>,
        state: &KernelState,
        ram: Ram,
    ) -> Result<PhysMap> {
        PhysMap::build_with(kernel, phys, state, ram, true)
    }

    /// [`PhysMap::build`], with the free-list walk optional (it is the
    /// slow part on a live machine; [`PhysMap::add_free_list`] adds it later).
    pub fn build_with(
        kernel: &Kernel<'_>,
        phys: &mut PhysCache<'_>,
        state: &KernelState,
        ram: Ram,
        free_list: bool,
    ) -> Result<PhysMap> {
        let syms = kernel.syms;
        // Symbols of the kernel image: linked where they sit in RAM.
        let addr = |n: &str| syms.global(n).ok().map(|g| PhysAddr(g.addr));
        let base = addr("_entry")
            .or_else(|| addr("_start"))
            .unwrap_or(ram.base)
            .page_down();
        let etext = addr("etext");
        let end = addr("end");
        let text = etext.map(|e| (base, e));
        let data = match (etext, end) {
            (Some(e), Some(n)) => Some((e, n)),
            _ => None,
        };
        let mut owners: HashMap<PhysAddr, Vec<Owner>> = HashMap::new();
        let mut walks = Vec::new();
        let limits = Kernel::limits(ram);
        let mut tables: Vec<(TableOf, PhysAddr)> = vec![(TableOf::Kernel, state.kernel_pagetable)];
        for p in state.live() {
            if p.pagetable.0 != 0 {
                tables.push((
                    TableOf::User {
                        slot: p.slot,
                        pid: p.pid,
                    },
                    p.pagetable,
                ));
            }
            if let Some(k) = p.kpagetable.filter(|k| k.0 != 0) {
                tables.push((
                    TableOf::ProcKernel {
                        slot: p.slot,
                        pid: p.pid,
                    },
                    k,
                ));
            }
        }
        // User pages recorded at most (RAM has 32768 pages at -m 128M).
        let mut user_budget: u64 = 1 << 18;
        for (of, root) in tables {
            if root.0 == 0 {
                continue;
            }
            let w = walk(phys, root, limits)?;
            // A table page's level is known from the entry that points at it.
            add(&mut owners, root, Owner::PageTable { of, level: 2 });
            for e in &w.entries {
                if e.kind() == PteKind::Pointer && e.level > 0 {
                    add(
                        &mut owners,
                        e.pte.pa(),
                        Owner::PageTable {
                            of,
                            level: e.level - 1,
                        },
                    );
                }
            }
            if let TableOf::User { slot, pid } = of {
                for leaf in w.leaves() {
                    if leaf.pte.has(PteFlags::U) {
                        // Each 4 KiB page of a (rare) user superpage, within
                        // a budget that a corrupt table full of gigapages
                        // cannot exhaust.
                        let pages = (leaf.size / 4096).min(user_budget);
                        user_budget -= pages;
                        for k in 0..pages {
                            add(
                                &mut owners,
                                leaf.pa + k * 4096,
                                Owner::UserPage {
                                    slot,
                                    pid,
                                    va: leaf.va + k * 4096,
                                },
                            );
                        }
                    }
                }
            }
            walks.push(Walked { of, root, walk: w });
        }
        for p in state.live() {
            let ks = kernel.kstack(phys, state, p, ram)?;
            if let Some(pa) = ks.pa {
                add(
                    &mut owners,
                    pa,
                    Owner::KernelStack {
                        slot: p.slot,
                        pid: p.pid,
                    },
                );
            }
            if let Some(tf) = p.trapframe.filter(|t| t.0 != 0) {
                add(
                    &mut owners,
                    tf,
                    Owner::Trapframe {
                        slot: p.slot,
                        pid: p.pid,
                    },
                );
            }
        }
        let names = kernel_symbolizer(syms);
        let mut map = PhysMap {
            owners,
            text,
            data,
            ram,
            walks,
            free: None,
            symbolize: names,
        };
        if free_list {
            map.add_free_list(kernel, phys, ram)?;
        }
        Ok(map)
    }

    /// Walk kalloc's free list and record its pages as free.
    pub fn add_free_list(
        &mut self,
        kernel: &Kernel<'_>,
        phys: &mut PhysCache<'_>,
        ram: Ram,
    ) -> Result<()> {
        if self.free.is_some() {
            return Ok(());
        }
        self.free = kernel.free_list(phys, ram)?;
        if let Some(fl) = &self.free {
            for &pa in &fl.pages {
                add(&mut self.owners, pa, Owner::Free);
            }
        }
        Ok(())
    }

    /// Everything known about the page holding `pa`, most specific first.
    /// Never empty.
    pub fn owners(&self, pa: PhysAddr) -> Vec<Owner> {
        let page = pa.page_down();
        if let Some((b, e)) = self.text {
            if page >= b && page < e {
                return vec![Owner::KernelText {
                    symbol: (self.symbolize)(pa.0),
                }];
            }
        }
        if let Some((b, e)) = self.data {
            if page >= b && page < e {
                let mut v = vec![Owner::KernelData {
                    symbol: (self.symbolize)(pa.0),
                }];
                v.extend(self.owners.get(&page).cloned().unwrap_or_default());
                return v;
            }
        }
        if let Some(v) = self.owners.get(&page) {
            return v.clone();
        }
        if !self.ram.contains_page(page) {
            return vec![Owner::OutsideRam];
        }
        vec![Owner::Allocated]
    }

    /// Pages with an owner recorded (page tables, stacks, frames, user
    /// pages, free pages), with their owners.
    pub fn pages(&self) -> impl Iterator<Item = (PhysAddr, &[Owner])> {
        self.owners.iter().map(|(pa, o)| (*pa, o.as_slice()))
    }

    /// Page-table findings of every walk, with the table they are in.
    pub fn walk_findings(&self) -> impl Iterator<Item = (TableOf, &Finding)> {
        self.walks
            .iter()
            .flat_map(|w| w.walk.findings.iter().map(move |f| (w.of, f)))
    }

    /// The walk of one table.
    pub fn walk_of(&self, of: TableOf) -> Option<&Walked> {
        self.walks.iter().find(|w| w.of == of)
    }
}

/// `symbol+0xoff` for kernel addresses.
fn kernel_symbolizer(
    syms: &kinspect_symbols::Symbols,
) -> Box<dyn Fn(u64) -> Option<String> + Send + Sync> {
    // The symbol table is small; copy what symbolize needs.
    let mut table: Vec<(u64, u64, String)> = syms
        .elf_symbols()
        .filter(|s| !s.demangled.is_empty() && !s.demangled.starts_with(".L"))
        .map(|s| (s.addr, s.size, s.demangled.clone()))
        .collect();
    table.sort();
    Box::new(move |addr| {
        let i = table.partition_point(|(a, _, _)| *a <= addr);
        let before = &table[..i];
        // A sized symbol that covers it, else a label (`trampoline`) on
        // the same page.
        before
            .iter()
            .rev()
            .take(64)
            .find(|(a, size, _)| *size > 0 && addr < a.saturating_add(*size))
            .or_else(|| {
                before
                    .iter()
                    .rev()
                    .find(|(a, size, _)| *size == 0 && addr - a < 4096)
            })
            .map(|(a, _, n)| {
                if addr == *a {
                    n.clone()
                } else {
                    format!("{n}+{:#x}", addr - a)
                }
            })
    })
}

/// A PTE's permission bits as `rwxu` letters (for evidence lines).
pub fn perms(pte: Pte) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (PteFlags::R, 'r'),
        (PteFlags::W, 'w'),
        (PteFlags::X, 'x'),
        (PteFlags::U, 'u'),
    ] {
        s.push(if pte.has(bit) { c } else { '-' });
    }
    s
}
