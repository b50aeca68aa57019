//! Consistency checks over a halted kernel, for `kinspect check`.
//!
//! Each check states an xv6 invariant and reports every object that
//! breaks it as a [`Finding`]: severity, the object, the evidence read
//! from memory, and why it matters. The checks read nothing themselves:
//! they look at a [`KernelState`] and a [`PhysMap`] (which holds the
//! walks of every page table and the free list).

use std::collections::HashMap;

use kinspect_sv39::{PhysAddr, Pte, PteFlags, Ram, VirtAddr};
use serde::Serialize;

use super::owner::{perms, TableOf, Walked};
use super::{va_in, Kernel, KernelState, PhysCache, PhysMap, Result};

const R: PteFlags = PteFlags::R;
const W: PteFlags = PteFlags::W;
const X: PteFlags = PteFlags::X;
const U: PteFlags = PteFlags::U;

/// How bad a finding is. `Error` makes `kinspect check` exit non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One broken (or noteworthy) thing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Which check (`kstack-mapped`, `guard-unmapped`, ...).
    pub check: &'static str,
    /// The object: `pid 3 (sh, slot 2) kernel stack 0x3fffffb000`.
    pub object: String,
    /// What memory says.
    pub evidence: String,
    /// Why it matters.
    pub why: &'static str,
}

/// kalloc's numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KallocStats {
    /// Pages on the free list (as far as the walk got).
    pub free_pages: usize,
    pub free_bytes: u64,
    /// The kernel's own count, when it keeps one.
    pub nfree: Option<u64>,
    /// Pages between `end` and the top of RAM (what kalloc manages).
    pub managed_pages: Option<u64>,
}

/// The checks and their one-line descriptions, in the order they run.
pub const CHECKS: [(&str, &str); 13] = [
    ("proc-state", "every slot's state is one of the kernel's enum procstate values"),
    ("tables", "every page table walks cleanly (no cycles, no pointers outside RAM, no reserved encodings)"),
    ("kstack-mapped", "each live process's kernel stack is mapped R W, not U, not X, in the kernel page table it runs on"),
    ("guard-unmapped", "the page below each kernel stack is unmapped"),
    ("trampoline", "TRAMPOLINE maps the `trampoline` page R X (not W, not U) in every page table"),
    ("trapframe", "TRAPFRAME maps the process's own trapframe R W, not U, in its user page table"),
    ("kpt-equals-kernel", "each per-process kernel page table equals kernel_pagetable apart from kernel stacks (and a documented user mirror)"),
    ("freelist", "the free list is bounded, inside RAM, page-aligned and without cycles"),
    ("free-in-use", "no page on the free list is a page-table page, kernel stack, trapframe or mapped user page"),
    ("user-shared", "no physical page is mapped by two processes' user page tables"),
    ("user-wx", "no user page is writable and executable at once"),
    ("user-maps-kernel", "no user page (U) is kernel text or data, a page-table page, a kernel stack or a trapframe"),
    ("nfree", "the kernel's own free-page count equals the free list's length"),
];

struct Out {
    findings: Vec<Finding>,
}

impl Out {
    fn push(
        &mut self,
        severity: Severity,
        check: &'static str,
        object: String,
        evidence: String,
        why: &'static str,
    ) {
        self.findings.push(Finding {
            severity,
            check,
            object,
            evidence,
            why,
        });
    }
}

impl Out {
    /// Like `push`, but an error about a process in transition becomes info,
    /// saying so.
    fn push_for(
        &mut self,
        p: Option<&super::Proc>,
        severity: Severity,
        check: &'static str,
        object: String,
        evidence: String,
        why: &'static str,
    ) {
        match p.and_then(transient) {
            Some(phase) if severity == Severity::Error => self.push(
                Severity::Info,
                check,
                object,
                format!("{evidence} ({phase})"),
                why,
            ),
            _ => self.push(severity, check, object, evidence, why),
        }
    }
}

/// Consecutive 4 KiB leaves `(va, pa, flags)`, sorted by VA, as ranges:
/// `0x2000000-0x2010000 -> 0x2000000 rw-- (16 pages)`.
fn ranges(leaves: &[(VirtAddr, PhysAddr, PteFlags)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < leaves.len() {
        let (va, pa, flags) = leaves[i];
        let mut n = 1u64;
        while let Some(&(v, p, f)) = leaves.get(i + n as usize) {
            if v.0 != va.0.wrapping_add(n * 4096)
                || p.0 != pa.0.wrapping_add(n * 4096)
                || f != flags
            {
                break;
            }
            n += 1;
        }
        out.push(format!(
            "{va:#x}-{:#x} -> {pa:#x} {} ({})",
            va.0.wrapping_add(n * 4096),
            letters(flags),
            crate::words::count(n as usize, "page", "pages")
        ));
        i += n as usize;
    }
    out
}

/// (pid, va, pte) of a user page.
type UserMapping = (i64, VirtAddr, Pte);

/// Differences listed per table before the rest is counted.
const MAX_DIFFS: usize = 8;

fn who(p: &super::Proc) -> String {
    format!("pid {} ({}, slot {})", p.pid, p.name, p.slot)
}

/// A process between states whose tables are legitimately incomplete: a
/// ZOMBIE that `wait → freeproc` is freeing, a USED slot `allocproc` or
/// `exec` is still filling. Its findings are reported as info, with this.
fn transient(p: &super::Proc) -> Option<&'static str> {
    match p.state {
        super::ProcState::Zombie => {
            Some("a ZOMBIE being torn down (wait → freeproc frees its tables)")
        }
        super::ProcState::Used => Some("a USED slot being built (allocproc/exec has not finished)"),
        _ => None,
    }
}

/// The process a table belongs to, if any.
fn owner_of<'a>(state: &'a KernelState, of: &TableOf) -> Option<&'a super::Proc> {
    match of {
        TableOf::User { slot, .. } | TableOf::ProcKernel { slot, .. } => state.procs.get(*slot),
        _ => None,
    }
}

/// Run every check. `phys` is only read for pages the map has not seen.
pub fn run(
    kernel: &Kernel<'_>,
    phys: &mut PhysCache<'_>,
    state: &KernelState,
    map: &PhysMap,
    ram: Ram,
) -> Result<(Vec<Finding>, KallocStats)> {
    let mut out = Out {
        findings: Vec::new(),
    };
    let prof = &kernel.profile;

    // proc-state
    for p in &state.procs {
        if let super::ProcState::Unknown(v) = p.state {
            out.push(
                Severity::Error,
                "proc-state",
                format!("proc[{}] (pid {})", p.slot, p.pid),
                format!("state is {v}, which is no enum procstate value"),
                "the scheduler, wait and kill compare states by value: this slot is corrupt",
            );
        }
    }

    // tables
    for (of, f) in map.walk_findings() {
        out.push_for(
            owner_of(state, &of),
            Severity::Error,
            "tables",
            of.to_string(),
            f.to_string(),
            "the MMU would fault or read garbage where the kernel expects a mapping",
        );
    }

    // kstack-mapped, guard-unmapped
    for p in state.live() {
        let ks = kernel.kstack(phys, state, p, ram)?;
        let table = if p.kpagetable.is_some_and(|k| k.0 != 0) {
            format!("its kernel page table {:#x}", ks.table)
        } else {
            format!("kernel_pagetable {:#x}", ks.table)
        };
        match ks.pte {
            None => out.push_for(
                Some(p),
                Severity::Error,
                "kstack-mapped",
                format!("{} kernel stack {:#x}", who(p), p.kstack),
                format!("not mapped in {table}"),
                "the process faults as soon as it enters the kernel (trap, swtch)",
            ),
            Some(pte) if !(pte.has(R) && pte.has(W)) || pte.has(U) || pte.has(X) => out.push_for(
                Some(p),
                Severity::Error,
                "kstack-mapped",
                format!("{} kernel stack {:#x}", who(p), p.kstack),
                format!(
                    "mapped {} (pte {:#018x}) in {table}; expected rw--",
                    perms(pte),
                    pte.0
                ),
                "a kernel stack must be writable, never executable, and never reachable from user mode",
            ),
            Some(_) => {}
        }
        if ks.guard_mapped {
            let g = va_in(phys, ks.table, ks.guard_va, ram)?;
            let evidence = match g {
                Some((pa, pte)) => format!(
                    "mapped to {pa:#x} ({}, pte {:#018x}) in {table}",
                    perms(pte),
                    pte.0
                ),
                None => format!("mapped in {table}"),
            };
            out.push(
                Severity::Error,
                "guard-unmapped",
                format!("{} guard page {:#x}", who(p), ks.guard_va),
                evidence,
                "a kernel stack overflow would silently overwrite that page instead of faulting",
            );
        }
    }

    // trampoline
    // The kernel image is linked at its physical address (the direct map).
    let tramp_pa = kernel
        .syms
        .global("trampoline")
        .ok()
        .map(|g| PhysAddr(g.addr));
    let trampoline = VirtAddr(prof.trampoline);
    let trapframe = VirtAddr(prof.trapframe);
    for w in &map.walks {
        let object = format!("{} {:#x}", w.of, w.root);
        let owner = owner_of(state, &w.of);
        match leaf_at(w, trampoline) {
            None => out.push_for(
                owner,
                Severity::Error,
                "trampoline",
                object,
                format!("TRAMPOLINE {:#x} is not mapped", prof.trampoline),
                "traps into and out of the kernel switch page tables while running on this page",
            ),
            Some((pa, pte)) => {
                let bad_perm = !pte.has(R) || !pte.has(X) || pte.has(W) || pte.has(U);
                let bad_pa = tramp_pa.is_some_and(|t| t != pa);
                if bad_perm || bad_pa {
                    out.push_for(
                        owner,
                        Severity::Error,
                        "trampoline",
                        object,
                        format!(
                            "TRAMPOLINE maps {pa:#x} {}{}",
                            perms(pte),
                            tramp_pa
                                .map(|t| format!("; `trampoline` is at {t:#x}, expected r-x-"))
                                .unwrap_or_else(|| "; expected r-x-".into())
                        ),
                        "traps into and out of the kernel switch page tables while running on this page",
                    );
                }
            }
        }
    }

    // trapframe
    for p in state.live() {
        let Some(w) = map.walk_of(TableOf::User {
            slot: p.slot,
            pid: p.pid,
        }) else {
            continue;
        };
        let tf = p.trapframe.unwrap_or_default();
        let object = format!("{} TRAPFRAME {:#x}", who(p), prof.trapframe);
        match leaf_at(w, trapframe) {
            None => out.push_for(
                Some(p),
                Severity::Error,
                "trapframe",
                object,
                "not mapped in its user page table".into(),
                "uservec saves the user registers through this mapping",
            ),
            Some((pa, pte)) => {
                if pa != tf || !pte.has(R) || !pte.has(W) || pte.has(U) {
                    out.push_for(
                        Some(p),
                        Severity::Error,
                        "trapframe",
                        object,
                        format!(
                            "maps {pa:#x} {}; its trapframe is {tf:#x}, expected rw--",
                            perms(pte)
                        ),
                        "uservec would save this process's registers into another page",
                    );
                }
            }
        }
    }

    // kpt-equals-kernel
    let mirror_limit = VirtAddr(prof.user_mirror_limit());
    if let Some(kw) = map.walk_of(TableOf::Kernel) {
        let kernel_leaves = leaf_map(kw);
        let kstacks: std::collections::HashSet<VirtAddr> =
            state.procs.iter().map(|p| p.kstack).collect();
        for p in state.live() {
            let of = TableOf::ProcKernel {
                slot: p.slot,
                pid: p.pid,
            };
            let Some(w) = map.walk_of(of) else { continue };
            let mine = leaf_map(w);
            let user = map
                .walk_of(TableOf::User {
                    slot: p.slot,
                    pid: p.pid,
                })
                .map(leaf_map)
                .unwrap_or_default();
            let mut diffs = Vec::new();
            let mut others = Vec::new();
            let mut left_out = Vec::new();
            let mut mirrored = 0usize;
            for (va, (pa, size, flags)) in &mine {
                match kernel_leaves.get(va) {
                    Some(k)
                        if k == &(*pa, *size, *flags)
                            && *va != p.kstack
                            && kstacks.contains(va) =>
                    {
                        others.push(format!("{va:#x} -> {pa:#x}"));
                    }
                    Some(k) if k == &(*pa, *size, *flags) => {}
                    _ if *va == p.kstack => {}
                    _ if *va < mirror_limit && user.get(va).is_some_and(|u| u.0 == *pa) => {
                        mirrored += 1;
                    }
                    Some((kpa, _, kf)) => diffs.push(format!(
                        "{va:#x} -> {pa:#x} {} here, -> {kpa:#x} {} in kernel_pagetable",
                        letters(*flags),
                        letters(*kf)
                    )),
                    None => diffs.push(format!(
                        "{va:#x} -> {pa:#x} {} here, unmapped in kernel_pagetable",
                        letters(*flags)
                    )),
                }
            }
            for (va, (pa, _, flags)) in &kernel_leaves {
                let another_stack = kstacks.contains(va) && *va != p.kstack;
                if !mine.contains_key(va) && !another_stack && *va < mirror_limit {
                    // The lab's per-process table leaves low devices (CLINT)
                    // out: only M-mode uses them, and user memory is
                    // mirrored there.
                    left_out.push((*va, *pa, *flags));
                } else if !mine.contains_key(va) && !another_stack {
                    diffs.push(format!(
                        "{va:#x} -> {pa:#x} {} in kernel_pagetable, unmapped here",
                        letters(*flags)
                    ));
                }
            }
            if !left_out.is_empty() || mirrored > 0 {
                left_out.sort_unstable();
                let mut evidence = Vec::new();
                if mirrored > 0 {
                    evidence.push(format!(
                        "mirrors {mirrored} user page(s) below {mirror_limit:#x} (\"simplify copyin\")"
                    ));
                }
                if !left_out.is_empty() {
                    evidence.push(format!(
                        "leaves out what kernel_pagetable maps below {mirror_limit:#x}: {}",
                        ranges(&left_out).join("; ")
                    ));
                }
                out.push(
                    Severity::Info,
                    "kpt-equals-kernel",
                    format!("{} kernel page table {:#x}", who(p), w.root),
                    evidence.join("; "),
                    "the pgtbl lab's per-process table may mirror user memory below PLIC and must then leave CLINT out",
                );
            }
            if !others.is_empty() {
                others.sort();
                let n = others.len();
                out.push(
                    Severity::Warning,
                    "kpt-equals-kernel",
                    format!("{} kernel page table {:#x}", who(p), w.root),
                    format!(
                        "maps {}: {}{}",
                        crate::words::count(
                            n,
                            "other slot's kernel stack",
                            "other slots' kernel stacks"
                        ),
                        others[..n.min(MAX_DIFFS)].join("; "),
                        if n > MAX_DIFFS { "; ..." } else { "" }
                    ),
                    "in the kernel this process can overwrite other processes' kernel stacks",
                );
            }
            if !diffs.is_empty() {
                diffs.sort();
                let n = diffs.len();
                let mut evidence = diffs[..n.min(MAX_DIFFS)].join("; ");
                if n > MAX_DIFFS {
                    evidence.push_str(&format!("; ... {} more", n - MAX_DIFFS));
                }
                out.push_for(
                    Some(p),
                    Severity::Error,
                    "kpt-equals-kernel",
                    format!("{} kernel page table {:#x}", who(p), w.root),
                    format!(
                        "{}: {evidence}",
                        crate::words::count(n, "page differs", "pages differ")
                    ),
                    "in the kernel this process sees a different memory map than every other hart",
                );
            }
        }
    }

    // freelist, free-in-use, nfree
    let mut stats = KallocStats {
        free_pages: 0,
        free_bytes: 0,
        nfree: None,
        managed_pages: None,
    };
    if let Some(fl) = &map.free {
        stats.free_pages = fl.pages.len();
        stats.free_bytes = fl.pages.len() as u64 * 4096;
        stats.nfree = fl.nfree;
        if let Some(end) = kernel.syms.global("end").ok().map(|g| g.addr) {
            let top = ram.end().0;
            stats.managed_pages = Some(top.saturating_sub((end + 4095) & !4095) / 4096);
        }
        if let Some(problem) = &fl.problem {
            out.push(
                Severity::Error,
                "freelist",
                format!("kmem.freelist (head {:#x})", fl.head),
                format!("after {} pages: {problem}", fl.pages.len()),
                "kalloc would hand out a page that is not free, or loop forever",
            );
        }
        for &pa in &fl.pages {
            let in_use: Vec<String> = map
                .owners(pa)
                .iter()
                .filter(|o| o.is_in_use())
                .map(|o| o.to_string())
                .collect();
            if !in_use.is_empty() {
                out.push(
                    Severity::Error,
                    "free-in-use",
                    format!("free page {pa:#x}"),
                    format!("on kmem.freelist and also {}", in_use.join(", ")),
                    "kalloc will hand this page out again while it is still in use: two owners will overwrite each other",
                );
            }
        }
        if let (Some(n), None) = (fl.nfree, &fl.problem) {
            if n != fl.pages.len() as u64 {
                out.push(
                    Severity::Warning,
                    "nfree",
                    "kmem".into(),
                    format!(
                        "kmem.nfree is {n}, the free list has {} pages",
                        fl.pages.len()
                    ),
                    "the allocator's bookkeeping disagrees with its list",
                );
            }
        }
    }

    // user-shared, user-wx
    let mut users: HashMap<PhysAddr, Vec<UserMapping>> = HashMap::new();
    for w in &map.walks {
        let TableOf::User { pid, .. } = w.of else {
            continue;
        };
        let mut wx = Vec::new();
        let mut exposed = Vec::new();
        for leaf in w.walk.leaves().filter(|l| l.pte.has(U)) {
            // The pages of the leaf (a superpage's first 512 at most).
            for k in 0..(leaf.size / 4096).min(512) {
                let pa = leaf.pa + k * 4096;
                let kernel: Vec<String> = map
                    .owners(pa)
                    .iter()
                    .filter(|o| o.is_kernel())
                    .map(|o| o.to_string())
                    .collect();
                if !kernel.is_empty() && exposed.len() < MAX_DIFFS {
                    exposed.push(format!(
                        "{:#x} -> {pa:#x} {} is {}",
                        leaf.va + k * 4096,
                        perms(leaf.pte),
                        kernel.join(", ")
                    ));
                }
            }
            users
                .entry(leaf.pa)
                .or_default()
                .push((pid, leaf.va, leaf.pte));
            if leaf.pte.has(W) && leaf.pte.has(X) {
                wx.push(leaf.va);
            }
        }
        if !exposed.is_empty() {
            out.push(
                Severity::Error,
                "user-maps-kernel",
                format!("{} {:#x}", w.of, w.root),
                exposed.join("; "),
                "user code can read (or write) the kernel's own memory through this mapping",
            );
        }
        if !wx.is_empty() {
            let shown: Vec<String> = wx
                .iter()
                .take(MAX_DIFFS)
                .map(|v| format!("{v:#x}"))
                .collect();
            out.push(
                Severity::Warning,
                "user-wx",
                format!("{} {:#x}", w.of, w.root),
                format!(
                    "{} user page(s) mapped rwxu: {}{}",
                    wx.len(),
                    shown.join(" "),
                    if wx.len() > MAX_DIFFS { " ..." } else { "" }
                ),
                "a page both writable and executable lets a buffer overflow become code",
            );
        }
    }
    let mut shared: Vec<(PhysAddr, Vec<UserMapping>)> = users
        .into_iter()
        .filter(|(_, v)| {
            let mut pids: Vec<i64> = v.iter().map(|x| x.0).collect();
            pids.sort_unstable();
            pids.dedup();
            pids.len() > 1
        })
        .collect();
    shared.sort_by_key(|(pa, _)| *pa);
    for (pa, v) in shared {
        let writable = v.iter().any(|(_, _, pte)| pte.has(W));
        let by: Vec<String> = v
            .iter()
            .map(|(pid, va, pte)| format!("pid {pid} at {va:#x} {}", perms(*pte)))
            .collect();
        out.push(
            if writable {
                Severity::Error
            } else {
                Severity::Warning
            },
            "user-shared",
            format!("physical page {pa:#x}"),
            format!("mapped by {}", by.join(", ")),
            if writable {
                "one process can write another's memory (xv6 never shares user pages)"
            } else {
                "xv6 never shares user pages (a copy-on-write kernel may, read-only)"
            },
        );
    }

    out.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok((out.findings, stats))
}

/// The leaf mapping `va` in a walked table: (pa of va, pte).
fn leaf_at(w: &Walked, va: VirtAddr) -> Option<(PhysAddr, Pte)> {
    w.walk.leaves().find_map(|l| {
        let off = va.offset_from(l.va).filter(|off| *off < l.size)?;
        Some((l.pa + off, l.pte))
    })
}

/// Leaves by va: (pa, size, permission bits R W X U G). A and D are
/// left out: the hardware sets them as it goes.
fn leaf_map(w: &Walked) -> HashMap<VirtAddr, (PhysAddr, u64, PteFlags)> {
    let perms = R | W | X | U | PteFlags::G;
    w.walk
        .leaves()
        .map(|l| (l.va, (l.pa, l.size, l.pte.flags() & perms)))
        .collect()
}

fn letters(flags: PteFlags) -> String {
    perms(Pte(flags.bits()))
}
