//! The explanation of a classic page-table panic: `remap` (`mappages:
//! remap`), `kvmpa`, `uvmunmap: ...`, `freewalk: leaf`, `kfree`, and a
//! kernel page fault (`kerneltrap`).
//!
//! Which panic it is comes from the panic site, the function that called
//! `panic` in the panicking hart's backtrace (inlined frames count), and
//! only then from the message: kernels word their messages differently
//! (2020 `remap`, 2022 `mappages: remap`), and C xv6 keeps the message
//! only in `panic`'s argument.
//!
//! The facts come from the machine: the VA and the page table from the
//! panicking function's own variables (DWARF locations evaluated over the
//! registers the unwinder recovered), the PTE from a walk of that table,
//! its page's owner from the kernel model, the callers from the
//! backtrace. The one-sentence cause is picked among the classic mistakes
//! by what those facts show; when a fact is missing the diagnosis says so.

use kinspect_sv39::{translate, PhysAddr, PteKind, Ram, StepOutcome, VirtAddr};
use kinspect_symbols::Symbols;

use super::locals::{locals_at, Local};
use super::report::{phys_map, pte_of, short, Diagnosis, PanicReport};
use super::unwind::RawFrame;
use crate::arch::scause_name;
use crate::model::{KernelMemory, PhysCache};
use crate::model::{KernelState, Owner, Profile};
use crate::target::{Csr, Hart, Target};

const PGSIZE: u64 = 4096;

/// The raw frame (index) whose functions include `name`, with that frame's
/// locals of `name`.
fn frame_with(
    target: &mut dyn Target,
    syms: &Symbols,
    elf: &[u8],
    raw: &[RawFrame],
    root: Option<PhysAddr>,
    ram: Ram,
    name: &str,
) -> Option<(usize, Vec<Local>)> {
    for (i, f) in raw.iter().enumerate() {
        let lookup = f.how.lookup(f.pc);
        let lines = syms.lines(lookup).unwrap_or_default();
        let hit = lines
            .iter()
            .any(|l| l.function.as_deref().map(short) == Some(name));
        if !hit {
            continue;
        }
        let cfa = raw.get(i + 1).map(|n| n.sp);
        let mut phys = PhysCache::new(&mut *target);
        let mut mem = KernelMemory::new(&mut phys, ram, root);
        // Every scope at this pc: the function itself and those it is
        // inlined into, innermost last.
        let locals = locals_at(elf, lookup, &f.regs, cfa, &mut mem);
        if std::env::var_os("KINSPECT_DEBUG_LOCALS").is_some() {
            eprintln!("kinspect: debug: locals at {lookup:#x}: {locals:?}");
        }
        return Some((i, locals));
    }
    None
}

/// The innermost scope's value of `name` that the compiler kept.
fn local(locals: &[Local], name: &str) -> Option<u64> {
    locals
        .iter()
        .rev()
        .find(|l| l.name == name && l.value.is_some())
        .and_then(|l| l.value)
}

/// `name` in function `func` only.
fn local_in(locals: &[Local], func: &str, name: &str) -> Option<u64> {
    locals
        .iter()
        .find(|l| short(&l.function) == func && l.name == name)
        .and_then(|l| l.value)
}

/// The callers after frame `from`, by name, `core::` frames left out.
fn callers(report: &PanicReport, hart: Hart, after: &str) -> Vec<String> {
    let Some(h) = report.harts.iter().find(|h| h.hart == hart) else {
        return Vec::new();
    };
    let mut seen = false;
    let mut out = Vec::new();
    for f in &h.frames {
        if seen && !f.function.starts_with("core::") && f.function != "__rustc::rust_begin_unwind" {
            out.push(short(&f.function).to_string());
        }
        if short(&f.function) == after {
            seen = true;
        }
    }
    out
}

/// Name a page-table root from the process table.
fn table_name(state: Option<&KernelState>, root: PhysAddr) -> String {
    let Some(s) = state else {
        return format!("the page table at {root:#x}");
    };
    if root == s.kernel_pagetable {
        return format!("the kernel's page table (kernel_pagetable {root:#x})");
    }
    let field = s.kpagetable_field.as_deref().unwrap_or("kpagetable");
    for p in s.live() {
        if p.pagetable == root {
            return format!("pid {} ({})'s user page table {root:#x}", p.pid, p.name);
        }
        if p.kpagetable == Some(root) {
            return format!(
                "pid {} ({})'s kernel page table ({field} {root:#x})",
                p.pid, p.name
            );
        }
    }
    // allocproc fills a slot before it marks it USED: a table being built
    // belongs to a slot that is still UNUSED.
    for p in s.procs.iter().filter(|p| !p.is_live()) {
        if p.kpagetable == Some(root) {
            return format!(
                "proc[{}]'s kernel page table ({field} {root:#x}), being built: the slot is still UNUSED (inside allocproc)",
                p.slot
            );
        }
        if p.pagetable == root {
            return format!(
                "proc[{}]'s user page table {root:#x}, being built: the slot is still UNUSED (inside allocproc)",
                p.slot
            );
        }
    }
    format!("the page table at {root:#x}, which is no process's and not kernel_pagetable (a table being built and not yet stored in a process, or a freed one)")
}

fn owners_text(owners: &[Owner]) -> String {
    if owners.is_empty() {
        return "no owner kinspect knows".into();
    }
    owners
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the table at `root` shares `kernel_pagetable`'s top-level entry
/// for `va`'s gigabyte (the same PTE, so the same lower tables): a fact
/// when a mapping there collides.
fn shared_top_entry(
    target: &mut dyn Target,
    state: Option<&KernelState>,
    root: PhysAddr,
    va: VirtAddr,
) -> Option<String> {
    let kpt = state?.kernel_pagetable;
    if kpt.0 == 0 || kpt == root {
        return None;
    }
    let i = va.vpn(2) as u64;
    let mine = target.read_phys_u64((root + 8 * i).0).ok()?;
    let theirs = target.read_phys_u64((kpt + 8 * i).0).ok()?;
    (mine & 1 == 1 && mine == theirs).then(|| {
        format!(
            "its top-level entry {i} (the gigabyte of {va:#x}) is kernel_pagetable's own entry {theirs:#018x}: the two tables share every lower-level table there, so a mapping made in one is already in the other"
        )
    })
}

/// The leaves of the table page at `pt` that point at the kernel's own
/// memory (a device, or below `end`), at most `max`, as text.
fn kernel_leaves(
    target: &mut dyn Target,
    syms: &Symbols,
    ram: Ram,
    pt: PhysAddr,
    max: usize,
) -> Vec<String> {
    // The kernel image is linked at its physical address (the direct map).
    let end = syms.elf_symbol("end").map(|s| PhysAddr(s.addr));
    let mut out = Vec::new();
    if pt.page_offset() != 0 || !ram.contains_page(pt) {
        return out;
    }
    for i in 0..512u64 {
        let Ok(e) = target.read_phys_u64((pt + 8 * i).0) else {
            break;
        };
        let p = kinspect_sv39::Pte(e);
        if p.kind() != PteKind::Leaf {
            continue;
        }
        let pa = p.pa();
        let what = if let Some(dev) = device_name(pa) {
            dev.to_string()
        } else if !ram.contains_page(pa.page_down()) {
            "outside RAM".into()
        } else if end.is_some_and(|e| pa < e) {
            syms.symbolize(pa.0)
                .map(|(n, _)| format!("kernel image ({n})"))
                .unwrap_or_else(|| "kernel image".into())
        } else {
            continue;
        };
        out.push(format!("[{i}] pte {e:#018x} -> {pa:#x} {what}"));
        if out.len() >= max {
            break;
        }
    }
    out
}

/// The guard page or kernel stack of which process is `va`?
fn kstack_note(state: Option<&KernelState>, va: VirtAddr) -> Option<String> {
    let s = state?;
    for p in s.procs.iter() {
        if p.kstack.0 == 0 {
            continue;
        }
        let guard = VirtAddr(p.kstack.0.wrapping_sub(PGSIZE));
        if va >= p.kstack && va.0 < p.kstack.0.wrapping_add(PGSIZE) {
            return Some(format!(
                "{va:#x} is the kernel stack KSTACK({}) of proc[{}] (pid {})",
                p.slot, p.slot, p.pid
            ));
        }
        if va >= guard && va < p.kstack {
            return Some(format!(
                "{va:#x} is the unmapped guard page under proc[{}]'s kernel stack {:#x} (pid {} {})",
                p.slot, p.kstack, p.pid, p.name
            ));
        }
    }
    None
}

/// Every [`Diagnosis::class`](super::report::Diagnosis::class), with the
/// cause in a few words: the groups `kinspect report --batch` counts.
pub const CLASSES: &[(&str, &str)] = &[
    ("remap/kstack-twice", "a kernel stack mapped twice"),
    ("remap/trampoline-twice", "the trampoline mapped twice"),
    (
        "remap/user-mirror-into-device",
        "the user mirror ran into a device (CLINT/PLIC)",
    ),
    (
        "remap/user-grown-over-mapping",
        "uvmalloc grew user memory over an existing mapping",
    ),
    ("remap/table-reused", "a page table reused without clearing"),
    (
        "remap/mapped-twice",
        "a mapping made twice (which one unknown)",
    ),
    (
        "kvmpa/wrong-table",
        "kvmpa walks kernel_pagetable, not the process's kernel page table",
    ),
    (
        "kvmpa/process-table-incomplete",
        "the process's kernel page table lacks a kernel mapping",
    ),
    ("kvmpa/guard-page", "kvmpa of a kernel stack's guard page"),
    ("kvmpa/unmapped", "kvmpa of an address no table maps"),
    ("uvmunmap/past-end", "uvmunmap past the end of user memory"),
    ("uvmunmap/hole", "uvmunmap of a hole in user memory"),
    ("uvmunmap/never-mapped", "uvmunmap of a page never mapped"),
    (
        "freewalk/kernel-table-freewalked",
        "a per-process kernel page table freed with freewalk",
    ),
    (
        "freewalk/leaves-left",
        "a page table freed while it still maps pages",
    ),
    (
        "kfree/kernel-pages-freed",
        "the kernel's shared pages freed with a per-process table",
    ),
    (
        "kfree/bad-pointer",
        "kfree of a page kalloc never handed out",
    ),
    (
        "trap/guard-page",
        "a kernel access to a kernel stack's guard page",
    ),
    (
        "trap/unmapped-access",
        "a kernel access through an unmapped address",
    ),
    ("trap/unexpected", "an unexpected trap in kernel mode"),
];

/// The words for a class, or the class itself when unknown.
pub fn class_words(class: &str) -> &str {
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, w)| *w)
        .unwrap_or(class)
}

/// The classic panics, by where `panic` was called from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `mappages` found a valid PTE: `remap` / `mappages: remap`.
    Remap,
    /// `kvmpa` could not translate a kernel address (2020 lab trees).
    Kvmpa,
    /// `uvmunmap`: `not mapped`, `walk`, `not a leaf`, `not aligned`.
    Uvmunmap,
    /// `freewalk` met a leaf.
    Freewalk,
    /// `kfree` of a page kalloc never handed out.
    Kfree,
    /// `kerneltrap`: an unexpected trap in kernel mode.
    Trap,
}

/// The function that called `panic` on `hart` (the innermost caller that
/// is not part of the panic machinery).
pub fn panic_site(report: &PanicReport, hart: Hart) -> Option<String> {
    callers(report, hart, "panic").into_iter().next()
}

/// Which classic panic this is: by the panic site first, by the message
/// when the site is unknown or not a classic one.
pub fn classify(site: Option<&str>, msg: Option<&str>) -> Option<Site> {
    let by_msg = msg.and_then(|m| {
        let m = m.trim();
        if m.ends_with("remap") {
            Some(Site::Remap)
        } else if m.starts_with("kvmpa") {
            Some(Site::Kvmpa)
        } else if m.starts_with("uvmunmap") {
            Some(Site::Uvmunmap)
        } else if m.starts_with("freewalk") {
            Some(Site::Freewalk)
        } else if m == "kfree" {
            Some(Site::Kfree)
        } else if m.starts_with("kerneltrap") {
            Some(Site::Trap)
        } else {
            None
        }
    });
    let by_site = match site? {
        // mappages panics for other reasons too (`mappages: size`).
        "mappages" if msg.is_none() || by_msg == Some(Site::Remap) => Some(Site::Remap),
        "kvmpa" => Some(Site::Kvmpa),
        "uvmunmap" => Some(Site::Uvmunmap),
        "freewalk" => Some(Site::Freewalk),
        "kfree" => Some(Site::Kfree),
        "kerneltrap" => Some(Site::Trap),
        _ => None,
    };
    by_site.or(by_msg)
}

/// What sits at a device address of QEMU's virt machine, by name.
fn device_name(pa: PhysAddr) -> Option<&'static str> {
    match pa.0 {
        0x0200_0000..=0x0200_ffff => Some("CLINT"),
        0x0c00_0000..=0x0fff_ffff => Some("PLIC"),
        0x1000_0000..=0x1000_0fff => Some("UART0"),
        0x1000_1000..=0x1000_1fff => Some("VIRTIO0"),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
pub fn diagnose(
    target: &mut dyn Target,
    syms: &Symbols,
    elf: &[u8],
    profile: Profile,
    ram: Ram,
    msg: Option<&str>,
    report: &PanicReport,
    hart: Hart,
    raw: &[RawFrame],
    root: Option<PhysAddr>,
    state: Option<&KernelState>,
) -> Option<Diagnosis> {
    let mut d = Diagnosis::default();
    let chain = |after: &str| callers(report, hart, after).join(" <- ");
    let site = panic_site(report, hart);
    let kind = classify(site.as_deref(), msg)?;
    let msg = msg.unwrap_or("");
    let mirror_limit = VirtAddr(profile.user_mirror_limit());
    if kind == Site::Remap {
        d.kind = "remap".into();
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "mappages")?;
        // DWARF values are raw numbers: typed here, where their meaning is known.
        let pt = local(&locals, "pagetable").map(PhysAddr);
        let mut va = local_in(&locals, "mappages", "a")
            .or_else(|| local_in(&locals, "mappages", "va"))
            .map(VirtAddr);
        d.facts.push(format!(
            "mappages found a valid PTE where it was to map a page; called from {}",
            chain("mappages")
        ));
        if va.is_none() {
            // Inlined into uvmalloc: the loop maps pages below newsz; when
            // only one page there is mapped, that is the one.
            if let (Some(pt), Some(newsz)) = (pt, local_in(&locals, "uvmalloc", "newsz")) {
                let top = newsz.div_ceil(PGSIZE) * PGSIZE;
                let mapped: Vec<VirtAddr> = (0..top / PGSIZE)
                    .take(1024)
                    .map(|i| VirtAddr(i * PGSIZE))
                    .filter(|v| pte_of(target, pt, *v, ram).is_some())
                    .collect();
                d.facts.push(format!(
                    "mappages' VA is optimised out; uvmalloc's newsz is {newsz:#x}, so the page being mapped lies in [0x0, {top:#x}), where the table maps {}",
                    crate::words::count(mapped.len(), "page", "pages")
                ));
                if mapped.len() == 1 {
                    va = mapped.first().copied();
                }
            }
        }
        let trampoline = VirtAddr(profile.trampoline);
        match (pt, va) {
            (Some(pt), Some(va)) => {
                let name = table_name(state, pt);
                d.facts.push(format!("the VA being mapped: {va:#x}"));
                d.facts.push(format!("the page table: {name}"));
                d.va = Some(va.0);
                d.table = Some((pt.0, name.clone()));
                let existing = pte_of(target, pt, va, ram);
                let owners = match (existing, state) {
                    (Some((pa, _)), Some(s)) => phys_map(target, syms, profile, s, ram)
                        .map(|m| m.owners(pa.page_down()))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                match existing {
                    Some((pa, pte)) => d.facts.push(format!(
                        "the PTE already there: {:#018x} ({}) maps {va:#x} -> {pa:#x}, a page owned by: {}",
                        pte.0,
                        pte.attr_letters(),
                        owners_text(&owners)
                    )),
                    None => d.facts.push(format!("{va:#x} does not translate through that table now")),
                }
                if let Some(k) = kstack_note(state, va) {
                    d.facts.push(k);
                }
                if let Some(f) = shared_top_entry(target, state, pt, va) {
                    d.facts.push(f);
                }
                let callers = callers(report, hart, "mappages");
                let device = existing.and_then(|(pa, _)| device_name(pa));
                (d.class, d.cause) = if let (Some(dev), true) = (device, va < mirror_limit) {
                    ("remap/user-mirror-into-device", format!("the user mirror ran into a device: {name} maps {dev} at {va:#x}, where the copy of user memory now reaches (called from {}); a per-process kernel page table that mirrors user memory must leave out CLINT, and growproc must refuse to grow user memory to PLIC", callers.join(" <- ")))
                } else if va.page_down() == trampoline {
                    ("remap/trampoline-twice", format!("the trampoline mapped twice: {name} already maps TRAMPOLINE when {} maps it, as a table does that copies (shares) the kernel page table's top-level entry for the trampoline's gigabyte and then maps the trampoline again", callers.first().map(String::as_str).unwrap_or("its caller")))
                } else if owners
                    .iter()
                    .any(|o| matches!(o, Owner::KernelStack { .. }))
                    || kstack_note(state, va).is_some_and(|k| k.contains("kernel stack KSTACK"))
                {
                    ("remap/kstack-twice", format!("a kernel stack mapped twice: {va:#x} already maps a kernel stack in {name} when {} maps it again: the table already had the stack (copied from kernel_pagetable, where procinit maps every KSTACK, or mapped earlier) — map each kernel stack once, either in procinit or in allocproc", callers.first().map(String::as_str).unwrap_or("its caller")))
                } else if callers.iter().any(|c| c == "uvmalloc" || c == "growproc") {
                    let sz = state.and_then(|s| {
                        s.procs
                            .iter()
                            .find(|p| p.pagetable == pt)
                            .and_then(|p| p.sz.map(|sz| (p.pid, sz)))
                    });
                    ("remap/user-grown-over-mapping", match sz {
                        Some((pid, sz)) => format!("a user region grown over an existing mapping: uvmalloc mapped from {va:#x}, below pid {pid}'s size {sz:#x}, where its memory is already mapped (the old size passed to uvmalloc is too small)"),
                        None => format!("a user region grown over an existing mapping: uvmalloc mapped {va:#x}, which the table already maps"),
                    })
                } else {
                    (
                        "remap/table-reused",
                        format!(
                            "a page table reused without clearing: {name} already maps {va:#x}"
                        ),
                    )
                };
            }
            (None, Some(va)) => {
                // The VA survived (an inlined mappages keeps it) but the table
                // did not: say what the VA is and what the kernel's own table
                // maps there, which is what every table that shares the
                // kernel's entries holds too.
                d.va = Some(va.0);
                d.facts.push(format!("the VA being mapped: {va:#x}"));
                d.facts
                    .push("the page table it was going into is optimised out at this pc".into());
                let is_trampoline = va.page_down() == trampoline;
                if is_trampoline {
                    d.facts.push(format!("{va:#x} is TRAMPOLINE"));
                }
                if let Some(k) = kstack_note(state, va) {
                    d.facts.push(k);
                }
                if let Some(s) = state.filter(|s| s.kernel_pagetable.0 != 0) {
                    let kpt = s.kernel_pagetable;
                    match pte_of(target, kpt, va, ram) {
                        Some((pa, pte)) => {
                            let owners = phys_map(target, syms, profile, s, ram)
                                .map(|m| m.owners(pa.page_down()))
                                .unwrap_or_default();
                            d.facts.push(format!(
                                "in kernel_pagetable {kpt:#x}, {va:#x} is already mapped: PTE {:#018x} ({}) -> {pa:#x}, a page owned by: {}",
                                pte.0,
                                pte.attr_letters(),
                                owners_text(&owners)
                            ));
                        }
                        None => d.facts.push(format!(
                            "{va:#x} is not mapped in kernel_pagetable {kpt:#x}"
                        )),
                    }
                }
                (d.class, d.cause) = if is_trampoline {
                    ("remap/trampoline-twice", format!("the trampoline mapped twice: the table being built already maps TRAMPOLINE when {} maps it, as a table does that copies (shares) the kernel page table's top-level entry for the trampoline's gigabyte and then maps the trampoline again", chain("mappages").split(" <- ").next().unwrap_or("its caller")))
                } else if kstack_note(state, va).is_some_and(|k| k.contains("kernel stack KSTACK"))
                {
                    ("remap/kstack-twice", format!("a kernel stack mapped twice: {va:#x} is a kernel stack, already mapped in the table being built (as if mapped both at boot and again in allocproc)"))
                } else {
                    (
                        "remap/mapped-twice",
                        format!("a mapping made twice: the table being built already maps {va:#x}"),
                    )
                };
            }
            _ => {
                d.facts.push("the VA and the table are optimised out at this pc (mappages keeps them in registers the unwinder could not recover)".into());
                d.class = "remap/mapped-twice";
                d.cause = "a mapping made twice; without the VA kinspect cannot say which".into();
            }
        }
        return Some(d);
    }
    if kind == Site::Kvmpa {
        d.kind = "kvmpa".into();
        // 2022-style messages carry the VA; the 2020 lab's `kvmpa` does
        // not, but kvmpa's own parameter does.
        let from_msg = msg
            .strip_prefix("kvmpa")
            .map(|r| r.trim_start_matches(':').trim())
            .and_then(|h| h.strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .map(VirtAddr);
        let kvmpa_locals = frame_with(target, syms, elf, raw, root, ram, "kvmpa").map(|(_, l)| l);
        let from_frame = kvmpa_locals
            .as_ref()
            .and_then(|l| local_in(l, "kvmpa", "va"))
            .map(VirtAddr);
        // kvmpa keeps `off = va % PGSIZE` when va itself is gone.
        let off = kvmpa_locals
            .as_ref()
            .and_then(|l| local_in(l, "kvmpa", "off"))
            .filter(|o| *o < PGSIZE);
        d.facts.push(format!(
            "kvmpa could not translate a kernel virtual address; called from {}",
            chain("kvmpa")
        ));
        // xv6 hands kvmpa the address of a local of its caller
        // (virtio_disk_rw's `buf0`): when the VA itself is gone, the page
        // of the caller's stack is the page it was translating.
        let from_stack = || {
            let i = raw.iter().position(|f| {
                syms.lines(f.how.lookup(f.pc))
                    .unwrap_or_default()
                    .iter()
                    .any(|l| l.function.as_deref().map(short) == Some("kvmpa"))
            })?;
            let caller = raw.get(i + 1)?;
            let name = syms
                .symbolize(caller.how.lookup(caller.pc))
                .map(|(n, _)| short(n).to_string())
                .unwrap_or_else(|| "its caller".into());
            Some((VirtAddr(caller.sp).page_down(), name, caller.sp))
        };
        let va = match from_frame.or(from_msg) {
            Some(va) => Some(va),
            None => from_stack().map(|(page, name, sp)| {
                let va = page + off.unwrap_or(0);
                d.facts.push(format!(
                    "the VA is optimised out; {name} passes the address of a variable on its own stack (sp {sp:#x}), so the page being translated is {page:#x}{}",
                    off.map(|o| format!(", and kvmpa's off = {o:#x} makes it {va:#x}"))
                        .unwrap_or_default()
                ));
                va
            }),
        };
        let Some(va) = va else {
            d.facts
                .push("the VA is optimised out at this pc and not in the message".into());
            d.class = "kvmpa/unmapped";
            d.cause = "a kernel address that kvmpa's page table does not map; without the VA kinspect cannot say which".into();
            return Some(d);
        };
        d.va = Some(va.0);
        d.facts.push(format!("the VA: {va:#x}"));
        if let Some(k) = kstack_note(state, va) {
            d.facts.push(k);
        }
        let Some(s) = state else {
            d.class = "kvmpa/unmapped";
            d.cause = "a kernel address kvmpa's page table does not map".into();
            return Some(d);
        };
        let kpt = s.kernel_pagetable;
        let in_global = pte_of(target, kpt, va, ram).is_some();
        d.facts
            .push(walk_text(target, kpt, va, ram, &table_name(state, kpt)));
        // The process this hart runs, and its own kernel page table.
        let me = report
            .harts
            .iter()
            .find(|h| h.hart == hart)
            .and_then(|h| h.pid)
            .and_then(|pid| s.by_pid(pid));
        let own = me.and_then(|p| p.kpagetable.filter(|k| k.0 != 0).map(|k| (p.pid, k)));
        let in_own = own.map(|(_, k)| {
            let name = table_name(state, k);
            d.facts.push(walk_text(target, k, va, ram, &name));
            (name, pte_of(target, k, va, ram).is_some())
        });
        match in_own {
            Some((name, true)) if !in_global => {
                d.table = Some((kpt.0, table_name(state, kpt)));
                d.class = "kvmpa/wrong-table";
                d.cause = format!(
                    "kvmpa walks kernel_pagetable, but {va:#x} is mapped only in {name}: kvmpa must walk the process's kernel page table (myproc()->{}), not kernel_pagetable",
                    s.kpagetable_field.as_deref().unwrap_or("kernel page table")
                );
            }
            _ => {
                d.table = Some((kpt.0, table_name(state, kpt)));
                (d.class, d.cause) = match kstack_note(state, va) {
                    Some(k) if k.contains("guard") => ("kvmpa/guard-page", "a translation of a kernel stack's guard page: the address is one page below a kernel stack (an off-by-one in KSTACK arithmetic, or a stack overflow)".into()),
                    _ if in_global => ("kvmpa/process-table-incomplete", format!("{va:#x} is mapped in kernel_pagetable, so kvmpa walked another table that lacks it (the process's kernel page table missing a mapping kernel_pagetable has)")),
                    _ => ("kvmpa/unmapped", format!("{va:#x} is mapped neither in kernel_pagetable nor in the running process's kernel page table: a kernel address the kernel never mapped")),
                };
            }
        }
        return Some(d);
    }
    if kind == Site::Uvmunmap {
        d.kind = if msg.is_empty() {
            "uvmunmap".into()
        } else {
            msg.to_string()
        };
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "uvmunmap")?;
        let pt = local(&locals, "pagetable").map(PhysAddr);
        let a = local(&locals, "a").map(VirtAddr);
        let va = local(&locals, "va");
        let npages = local(&locals, "npages");
        d.facts.push(format!(
            "uvmunmap met a PTE it cannot unmap; called from {}",
            chain("uvmunmap")
        ));
        if let (Some(pt), Some(a)) = (pt, a) {
            let name = table_name(state, pt);
            d.va = Some(a.0);
            d.table = Some((pt.0, name.clone()));
            d.facts
                .push(format!("the VA not mapped: {a:#x}, in {name}"));
            if let (Some(va), Some(n)) = (va, npages) {
                d.facts.push(format!(
                    "the range asked for: {va:#x}, {n} page{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
            d.facts.push(walk_text(target, pt, a, ram, &name));
            let sz = state.and_then(|s| {
                s.procs
                    .iter()
                    .find(|p| p.pagetable == pt)
                    .and_then(|p| p.sz.map(|sz| (p.pid, sz)))
            });
            if let Some((pid, sz)) = sz {
                d.facts.push(format!(
                    "pid {pid}'s size sz = {sz:#x}; {a:#x} is {} it",
                    if a.0 >= sz { "beyond" } else { "below" }
                ));
                (d.class, d.cause) = if a.0 >= sz {
                    ("uvmunmap/past-end", "unmapping past the end of user memory: the old size given to uvmdealloc/uvmunmap is larger than what was ever mapped".into())
                } else {
                    ("uvmunmap/hole", "a hole in user memory: a page below sz was never mapped or was unmapped twice"
                        .into())
                };
            } else {
                d.class = "uvmunmap/never-mapped";
                d.cause =
                    "unmapping a page that was never mapped (a size or a range off by some pages)"
                        .into();
            }
        } else {
            d.facts
                .push("the table and VA are optimised out at this pc".into());
            d.class = "uvmunmap/never-mapped";
            d.cause = "unmapping a page that was never mapped".into();
        }
        return Some(d);
    }
    if kind == Site::Freewalk {
        d.kind = "freewalk: leaf".into();
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "freewalk")?;
        // The caller outside the (recursive) freewalk frames: the line to fix.
        let outside: Vec<String> = callers(report, hart, "freewalk")
            .into_iter()
            .filter(|c| c != "freewalk")
            .collect();
        d.facts.push(format!(
            "freewalk found a leaf PTE while freeing a page table; called from {}",
            outside.join(" <- ")
        ));
        let end = syms.elf_symbol("end").map(|s| PhysAddr(s.addr));
        let mut kernel_leaves = 0usize;
        if let Some(pt) = local(&locals, "pagetable").map(PhysAddr) {
            d.table = Some((pt.0, table_name(state, pt)));
            d.facts.push(format!("the table page being freed: {pt:#x}"));
            let mut leaves = Vec::new();
            for i in 0..512u64 {
                if let Ok(e) = target.read_phys_u64((pt + 8 * i).0) {
                    let p = kinspect_sv39::Pte(e);
                    if p.kind() == PteKind::Leaf {
                        let pa = p.pa();
                        if !ram.contains_page(pa) || end.is_some_and(|e| pa < e) {
                            kernel_leaves += 1;
                        }
                        if leaves.len() < 8 {
                            leaves.push(format!(
                                "[{i}] pte {e:#018x} -> {pa:#x} ({}){}",
                                p.attr_letters(),
                                device_name(pa).map(|n| format!(" {n}")).unwrap_or_default()
                            ));
                        }
                    }
                }
            }
            if leaves.is_empty() {
                d.facts.push("no leaf left in that page now".into());
            } else {
                d.facts
                    .push(format!("leaf entries still there: {}", leaves.join(", ")));
            }
        }
        let user_free = outside.iter().any(|c| c == "uvmfree");
        // xv6 itself calls freewalk only from uvmfree, on a user table whose
        // leaves uvmunmap has removed; any other caller is freeing a table
        // that still maps what it shares with the kernel.
        (d.class, d.cause) = if (kernel_leaves > 0 || !outside.is_empty()) && !user_free {
            ("freewalk/kernel-table-freewalked", format!("a per-process kernel page table freed with freewalk: its leaves map the kernel's own pages (devices, kernel text and data, shared with kernel_pagetable), which freewalk refuses; free the per-process kernel table without freeing the kernel's shared leaf pages: clear the leaves (or walk only the table pages) and kfree just the table pages, in {}", outside.first().map(String::as_str).unwrap_or("the caller")))
        } else {
            ("freewalk/leaves-left", "a page table freed while it still maps pages: uvmfree/freewalk ran before uvmunmap removed every leaf (a size passed too small)".into())
        };
        return Some(d);
    }
    if kind == Site::Kfree {
        d.kind = "kfree".into();
        let outside = callers(report, hart, "kfree");
        d.facts.push(format!(
            "kfree was given a page kalloc never handed out; called from {}",
            outside.join(" <- ")
        ));
        let pa = frame_with(target, syms, elf, raw, root, ram, "kfree")
            .and_then(|(_, l)| local_in(&l, "kfree", "pa"))
            .map(PhysAddr);
        let etext = syms.elf_symbol("etext").map(|s| PhysAddr(s.addr));
        let end = syms.elf_symbol("end").map(|s| PhysAddr(s.addr));
        let what = pa.map(|pa| {
            if let Some(dev) = device_name(pa) {
                format!("{pa:#x} is the {dev} device")
            } else if !ram.contains_page(pa.page_down()) {
                format!("{pa:#x} is outside RAM")
            } else if etext.is_some_and(|e| pa < e) {
                format!("{pa:#x} is kernel text")
            } else if end.is_some_and(|e| pa < e) {
                format!("{pa:#x} is kernel data (below end)")
            } else if pa.page_offset() != 0 {
                format!("{pa:#x} is not page-aligned")
            } else {
                format!("{pa:#x} is an ordinary RAM page")
            }
        });
        match (&what, pa) {
            (Some(w), Some(pa)) => {
                d.va = Some(pa.0);
                d.facts.push(format!("the page being freed: {w}"));
            }
            _ => d
                .facts
                .push("the page being freed is optimised out at this pc".into()),
        }
        // A caller freeing a page table: its table-valued locals whose
        // leaves point at the kernel's own pages.
        let mut table_leaves = None;
        if pa.is_none() {
            for name in outside.iter().filter(|c| c.as_str() != "kfree") {
                let Some((_, locals)) = frame_with(target, syms, elf, raw, root, ram, name) else {
                    continue;
                };
                for l in locals
                    .iter()
                    .filter(|l| short(&l.function) == name.as_str())
                {
                    let Some(v) = l.value else { continue };
                    let leaves = kernel_leaves(target, syms, ram, PhysAddr(v), 4);
                    if !leaves.is_empty() {
                        d.facts.push(format!(
                            "{name}'s {} = {v:#x} is a page table whose leaves point at the kernel's own pages: {}",
                            l.name,
                            leaves.join(", ")
                        ));
                        table_leaves = Some(v);
                        break;
                    }
                }
                if table_leaves.is_some() {
                    break;
                }
            }
        }
        let kernel_page = table_leaves.is_some()
            || pa.is_some_and(|pa| {
                device_name(pa).is_some()
                    || end.is_some_and(|e| pa < e)
                    || !ram.contains_page(pa.page_down())
            });
        let user = outside.iter().any(|c| c == "uvmfree" || c == "uvmdealloc");
        (d.class, d.cause) = if kernel_page && !user {
            ("kfree/kernel-pages-freed", format!("the kernel's shared pages freed: a per-process kernel page table's leaves point at the kernel's own pages (text, data, devices, shared with kernel_pagetable), and {} freed them with the table; free the per-process kernel table without freeing the kernel's shared leaf pages (unmap with do_free = 0, kfree only the table pages)", outside.iter().find(|c| c.as_str() != "kfree").map(String::as_str).unwrap_or("its caller")))
        } else {
            ("kfree/bad-pointer", "kfree of a page kalloc never handed out (not page-aligned, below end, or above PHYSTOP): a freed pointer that was never allocated, or freed twice after being overwritten".into())
        };
        return Some(d);
    }
    if kind == Site::Trap {
        d.kind = "kernel trap".into();
        let scause = target.csr(hart, Csr::Scause).ok();
        let stval = target.csr(hart, Csr::Stval).ok();
        let sepc = target.csr(hart, Csr::Sepc).ok();
        match (scause, stval, sepc) {
            (Some(c), Some(v), Some(e)) => {
                d.facts.push(format!("scause {c:#x}: {}", scause_name(c)));
                d.facts
                    .push(format!("stval {v:#x}: the address the access used"));
                let lines = syms.lines(e).unwrap_or_default();
                let at = lines
                    .iter()
                    .find(|f| !f.function.as_deref().unwrap_or("").starts_with("core::"))
                    .or(lines.first())
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "??".into());
                d.facts
                    .push(format!("sepc {e:#x}: the faulting instruction, in {at}"));
                d.va = Some(v);
                if let Some(r) = root {
                    let name = table_name(state, r);
                    d.table = Some((r.0, name.clone()));
                    d.facts.push(walk_text(target, r, VirtAddr(v), ram, &name));
                }
                if let Some(k) = kstack_note(state, VirtAddr(v)) {
                    d.facts.push(k.clone());
                }
                (d.class, d.cause) = match kstack_note(state, VirtAddr(v)) {
                    Some(k) if k.contains("guard") => ("trap/guard-page", "a kernel stack overflow or a pointer one page below a kernel stack: the access hit the guard page".into()),
                    _ if c == 13 || c == 15 || c == 12 => ("trap/unmapped-access", "a kernel access through an unmapped address (a wild or stale pointer)".into()),
                    _ => ("trap/unexpected", "an unexpected trap in kernel mode".into()),
                };
            }
            _ => {
                d.facts.push("scause/stval/sepc were not saved (a QEMU core has no CSRs); the console line `scause=... sepc=... stval=...` has them".into());
                d.class = "trap/unexpected";
                d.cause = "an unexpected trap in kernel mode".into();
            }
        }
        return Some(d);
    }
    None
}

/// Where the walk of `va` through `root` stops, in words.
fn walk_text(
    target: &mut dyn Target,
    root: PhysAddr,
    va: VirtAddr,
    ram: Ram,
    name: &str,
) -> String {
    match translate(target, root, va, ram) {
        Ok(t) => match t.outcome {
            StepOutcome::Mapped { pa, .. } => format!("{va:#x} maps to {pa:#x} in {name}"),
            StepOutcome::Fault { level, reason } => {
                format!("the walk of {va:#x} in {name} stops at level {level}: {reason}")
            }
        },
        Err(e) => format!("the walk of {va:#x} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class a diagnosis can carry is listed (with words) in CLASSES,
    /// and every listed class is given somewhere.
    #[test]
    fn every_class_is_listed_once() {
        let src = include_str!("diagnose.rs");
        let body = &src[..src.find("#[cfg(test)]").unwrap_or(src.len())];
        let table_end = body.find("pub fn class_words").unwrap_or(0);
        let given: Vec<&str> = body[table_end..]
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.contains('/')
                    && !s.contains(' ')
                    && [
                        "remap/",
                        "kvmpa/",
                        "uvmunmap/",
                        "freewalk/",
                        "kfree/",
                        "trap/",
                    ]
                    .iter()
                    .any(|p| s.starts_with(p))
            })
            .collect();
        assert!(given.len() >= CLASSES.len(), "{given:?}");
        for c in &given {
            assert!(CLASSES.iter().any(|(k, _)| k == c), "{c} is not in CLASSES");
        }
        for (k, w) in CLASSES {
            assert!(given.contains(k), "{k} is listed but never given");
            assert!(!w.is_empty());
            assert_eq!(
                CLASSES.iter().filter(|(x, _)| x == k).count(),
                1,
                "{k} twice"
            );
        }
    }
}
