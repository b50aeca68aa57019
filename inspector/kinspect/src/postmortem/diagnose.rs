//! The explanation of a classic page-table panic: `remap`, `kvmpa`,
//! `uvmunmap: not mapped`, `freewalk: leaf`, and a kernel page fault
//! (`kerneltrap`).
//!
//! The facts come from the machine: the VA and the page table from the
//! panicking function's own variables (DWARF locations evaluated over the
//! registers the unwinder recovered), the PTE from a walk of that table,
//! its page's owner from the kernel model, the callers from the
//! backtrace. The one-sentence cause is picked among the classic mistakes
//! by what those facts show; when a fact is missing the diagnosis says so.

use kinspect_sv39::{translate, Ram, StepOutcome};
use kinspect_symbols::Symbols;

use super::locals::{locals_at, Local};
use super::report::{phys_map, pte_of, short, Diagnosis, PanicReport};
use super::unwind::{RawFrame, VirtMem};
use crate::commands::regs::scause_name;
use crate::commands::TargetMem;
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
    root: Option<u64>,
    ram: Ram,
    name: &str,
) -> Option<(usize, Vec<Local>)> {
    for (i, f) in raw.iter().enumerate() {
        let lookup = if i == 0 { f.pc } else { f.pc.wrapping_sub(1) };
        let lines = syms.lines(lookup).unwrap_or_default();
        let hit = lines
            .iter()
            .any(|l| l.function.as_deref().map(short) == Some(name));
        if !hit {
            continue;
        }
        let cfa = raw.get(i + 1).map(|n| n.sp);
        let mut mem = VirtMem {
            target: &mut *target,
            root,
            ram,
        };
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
fn table_name(state: Option<&KernelState>, root: u64) -> String {
    let Some(s) = state else {
        return format!("the page table at {root:#x}");
    };
    if root == s.kernel_pagetable {
        return format!("the kernel's page table (kernel_pagetable {root:#x})");
    }
    for p in s.live() {
        if p.pagetable == root {
            return format!("pid {} ({})'s user page table {root:#x}", p.pid, p.name);
        }
        if p.kpagetable == Some(root) {
            return format!(
                "pid {} ({})'s kernel page table (kpagetable {root:#x})",
                p.pid, p.name
            );
        }
    }
    format!("the page table at {root:#x}, which is no process's and not kernel_pagetable (a fresh or freed table)")
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

/// The guard page or kernel stack of which process is `va`?
fn kstack_note(state: Option<&KernelState>, va: u64) -> Option<String> {
    let s = state?;
    for p in s.procs.iter() {
        if p.kstack == 0 {
            continue;
        }
        if va >= p.kstack && va < p.kstack + PGSIZE {
            return Some(format!(
                "{va:#x} is the kernel stack KSTACK({}) of proc[{}] (pid {})",
                p.slot, p.slot, p.pid
            ));
        }
        if va >= p.kstack - PGSIZE && va < p.kstack {
            return Some(format!(
                "{va:#x} is the unmapped guard page under proc[{}]'s kernel stack {:#x} (pid {} {})",
                p.slot, p.kstack, p.pid, p.name
            ));
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
pub fn diagnose(
    target: &mut dyn Target,
    syms: &Symbols,
    elf: &[u8],
    profile: Profile,
    ram: Ram,
    msg: &str,
    report: &PanicReport,
    hart: Hart,
    raw: &[RawFrame],
    root: Option<u64>,
    state: Option<&KernelState>,
) -> Option<Diagnosis> {
    let mut d = Diagnosis::default();
    let chain = |after: &str| callers(report, hart, after).join(" <- ");
    if msg == "remap" {
        d.kind = "remap".into();
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "mappages")?;
        let pt = local(&locals, "pagetable");
        let mut va =
            local_in(&locals, "mappages", "a").or_else(|| local_in(&locals, "mappages", "va"));
        d.facts.push(format!(
            "mappages found a valid PTE where it was to map a page; called from {}",
            chain("mappages")
        ));
        if va.is_none() {
            // Inlined into uvmalloc: the loop maps pages below newsz; when
            // only one page there is mapped, that is the one.
            if let (Some(pt), Some(newsz)) = (pt, local_in(&locals, "uvmalloc", "newsz")) {
                let top = newsz.div_ceil(PGSIZE) * PGSIZE;
                let mapped: Vec<u64> = (0..top / PGSIZE)
                    .take(1024)
                    .map(|i| i * PGSIZE)
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
        let trampoline = profile.trampoline;
        match (pt, va) {
            (Some(pt), Some(va)) => {
                let name = table_name(state, pt);
                d.facts.push(format!("the VA being mapped: {va:#x}"));
                d.facts.push(format!("the page table: {name}"));
                d.va = Some(va);
                d.table = Some((pt, name.clone()));
                let existing = pte_of(target, pt, va, ram);
                let owners = match (existing, state) {
                    (Some((pa, _)), Some(s)) => phys_map(target, syms, profile, s, ram)
                        .map(|m| m.owners(pa & !(PGSIZE - 1)))
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
                let callers = callers(report, hart, "mappages");
                d.cause = if va & !(PGSIZE - 1) == trampoline {
                    format!("the trampoline mapped twice: {name} already maps TRAMPOLINE when {} maps it, as a table does that copies (shares) the kernel page table's top-level entry for the trampoline's gigabyte and then maps the trampoline again", callers.first().map(String::as_str).unwrap_or("its caller"))
                } else if owners
                    .iter()
                    .any(|o| matches!(o, Owner::KernelStack { .. }))
                    || kstack_note(state, va).is_some_and(|k| k.contains("kernel stack KSTACK"))
                {
                    format!("a kernel stack mapped twice: {va:#x} already maps a kernel stack in {name} (as if mapped both at boot and again in allocproc)")
                } else if callers.iter().any(|c| c == "uvmalloc" || c == "growproc") {
                    let sz = state.and_then(|s| {
                        s.procs
                            .iter()
                            .find(|p| p.pagetable == pt)
                            .and_then(|p| p.sz.map(|sz| (p.pid, sz)))
                    });
                    match sz {
                        Some((pid, sz)) => format!("a user region grown over an existing mapping: uvmalloc mapped from {va:#x}, below pid {pid}'s size {sz:#x}, where its memory is already mapped (the old size passed to uvmalloc is too small)"),
                        None => format!("a user region grown over an existing mapping: uvmalloc mapped {va:#x}, which the table already maps"),
                    }
                } else {
                    format!("a page table reused without clearing: {name} already maps {va:#x}")
                };
            }
            (None, Some(va)) => {
                // The VA survived (an inlined mappages keeps it) but the table
                // did not: say what the VA is and what the kernel's own table
                // maps there, which is what every table that shares the
                // kernel's entries holds too.
                d.va = Some(va);
                d.facts.push(format!("the VA being mapped: {va:#x}"));
                d.facts
                    .push("the page table it was going into is optimised out at this pc".into());
                let is_trampoline = va & !(PGSIZE - 1) == trampoline;
                if is_trampoline {
                    d.facts.push(format!("{va:#x} is TRAMPOLINE"));
                }
                if let Some(k) = kstack_note(state, va) {
                    d.facts.push(k);
                }
                if let Some(s) = state.filter(|s| s.kernel_pagetable != 0) {
                    let kpt = s.kernel_pagetable;
                    match pte_of(target, kpt, va, ram) {
                        Some((pa, pte)) => {
                            let owners = phys_map(target, syms, profile, s, ram)
                                .map(|m| m.owners(pa & !(PGSIZE - 1)))
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
                d.cause = if is_trampoline {
                    format!("the trampoline mapped twice: the table being built already maps TRAMPOLINE when {} maps it, as a table does that copies (shares) the kernel page table's top-level entry for the trampoline's gigabyte and then maps the trampoline again", chain("mappages").split(" <- ").next().unwrap_or("its caller"))
                } else if kstack_note(state, va).is_some_and(|k| k.contains("kernel stack KSTACK"))
                {
                    format!("a kernel stack mapped twice: {va:#x} is a kernel stack, already mapped in the table being built (as if mapped both at boot and again in allocproc)")
                } else {
                    format!("a mapping made twice: the table being built already maps {va:#x}")
                };
            }
            _ => {
                d.facts.push("the VA and the table are optimised out at this pc (mappages keeps them in registers the unwinder could not recover)".into());
                d.cause = "a mapping made twice; without the VA kinspect cannot say which".into();
            }
        }
        return Some(d);
    }
    if let Some(rest) = msg.strip_prefix("kvmpa") {
        d.kind = "kvmpa".into();
        let va = rest
            .trim_start_matches(':')
            .trim()
            .strip_prefix("0x")
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        d.facts.push(format!(
            "a kernel virtual address did not translate; called from {}",
            chain("panic")
        ));
        if let (Some(va), Some(s)) = (va, state) {
            d.va = Some(va);
            let kpt = s.kernel_pagetable;
            d.table = Some((kpt, table_name(state, kpt)));
            d.facts.push(format!("the VA (from the message): {va:#x}"));
            d.facts
                .push(walk_text(target, kpt, va, ram, &table_name(state, kpt)));
            if let Some(k) = kstack_note(state, va) {
                d.facts.push(k);
            }
        }
        d.cause = match va.and_then(|v| kstack_note(state, v)) {
            Some(k) if k.contains("guard") => "a translation of a kernel stack's guard page: the address is one page below a kernel stack (an off-by-one in KSTACK arithmetic, or a stack overflow)".into(),
            _ => "a kernel address translated that no page table maps (kvmpa on a VA the kernel never mapped)".into(),
        };
        return Some(d);
    }
    if msg == "uvmunmap: not mapped" {
        d.kind = "uvmunmap: not mapped".into();
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "uvmunmap")?;
        let pt = local(&locals, "pagetable");
        let a = local(&locals, "a");
        let va = local(&locals, "va");
        let npages = local(&locals, "npages");
        d.facts.push(format!(
            "uvmunmap met an invalid PTE; called from {}",
            chain("uvmunmap")
        ));
        if let (Some(pt), Some(a)) = (pt, a) {
            let name = table_name(state, pt);
            d.va = Some(a);
            d.table = Some((pt, name.clone()));
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
                    if a >= sz { "beyond" } else { "below" }
                ));
                d.cause = if a >= sz {
                    "unmapping past the end of user memory: the old size given to uvmdealloc/uvmunmap is larger than what was ever mapped".into()
                } else {
                    "a hole in user memory: a page below sz was never mapped or was unmapped twice"
                        .into()
                };
            } else {
                d.cause =
                    "unmapping a page that was never mapped (a size or a range off by some pages)"
                        .into();
            }
        } else {
            d.facts
                .push("the table and VA are optimised out at this pc".into());
            d.cause = "unmapping a page that was never mapped".into();
        }
        return Some(d);
    }
    if msg == "freewalk: leaf" {
        d.kind = "freewalk: leaf".into();
        let (_, locals) = frame_with(target, syms, elf, raw, root, ram, "freewalk")?;
        d.facts.push(format!(
            "freewalk found a leaf PTE while freeing a page table; called from {}",
            chain("freewalk")
        ));
        if let Some(pt) = local(&locals, "pagetable") {
            d.table = Some((pt, table_name(state, pt)));
            d.facts.push(format!("the table page being freed: {pt:#x}"));
            let mut leaves = Vec::new();
            for i in 0..512u64 {
                if let Ok(e) = target.read_phys_u64(pt + 8 * i) {
                    let p = kinspect_sv39::Pte(e);
                    if p.valid() && (e & 0xe) != 0 {
                        leaves.push(format!(
                            "[{i}] pte {e:#018x} -> {:#x} ({})",
                            p.pa(),
                            p.attr_letters()
                        ));
                    }
                }
                if leaves.len() >= 8 {
                    break;
                }
            }
            if leaves.is_empty() {
                d.facts.push("no leaf left in that page now".into());
            } else {
                d.facts
                    .push(format!("leaf entries still there: {}", leaves.join(", ")));
            }
        }
        d.cause = "a page table freed while it still maps pages: uvmfree/freewalk ran before uvmunmap removed every leaf (a size passed too small)".into();
        return Some(d);
    }
    if msg.starts_with("kerneltrap") {
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
                    d.table = Some((r, name.clone()));
                    d.facts.push(walk_text(target, r, v, ram, &name));
                }
                if let Some(k) = kstack_note(state, v) {
                    d.facts.push(k.clone());
                }
                d.cause = match kstack_note(state, v) {
                    Some(k) if k.contains("guard") => "a kernel stack overflow or a pointer one page below a kernel stack: the access hit the guard page".into(),
                    _ if c == 13 || c == 15 || c == 12 => "a kernel access through an unmapped address (a wild or stale pointer)".into(),
                    _ => "an unexpected trap in kernel mode".into(),
                };
            }
            _ => {
                d.facts.push("scause/stval/sepc were not saved (a QEMU core has no CSRs); the console line `scause=... sepc=... stval=...` has them".into());
                d.cause = "an unexpected trap in kernel mode".into();
            }
        }
        return Some(d);
    }
    None
}

/// Where the walk of `va` through `root` stops, in words.
fn walk_text(target: &mut dyn Target, root: u64, va: u64, ram: Ram, name: &str) -> String {
    let mut mem = TargetMem {
        target,
        fatal: None,
    };
    match translate(&mut mem, root, va, ram) {
        Ok(t) => match t.outcome {
            StepOutcome::Mapped { pa, .. } => format!("{va:#x} maps to {pa:#x} in {name}"),
            StepOutcome::Fault { level, reason } => {
                format!("the walk of {va:#x} in {name} stops at level {level}: {reason}")
            }
        },
        Err(e) => format!("the walk of {va:#x} failed: {e}"),
    }
}
