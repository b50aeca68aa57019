//! What the TUI shows of a halted machine, read in one go by the worker.
//!
//! A [`Snapshot`] holds every hart's registers and CSRs, the process table
//! and the kernel's globals the status bar needs; page-table walks and
//! memory are read on demand (they cost more). All of it is plain data, so
//! the UI thread renders it without touching the target, and keeps showing
//! it (marked stale) while the guest runs.
//!
//! Kernel virtual addresses are read through the model's one kernel-VA
//! reader, [`KernelMemory`]: addresses in RAM are direct-mapped (xv6's
//! `kvmmake` maps KERNBASE..PHYSTOP one to one), anything else (kernel
//! stacks, the trampoline) is translated by our own Sv39 walk through a
//! page table, never by the gdb stub.

use std::time::SystemTime;

use kinspect_sv39::{PhysAddr, Ram, Satp, SatpMode, VirtAddr};
use kinspect_symbols::Symbols;

use super::procs::{read_procs, ProcRow};
use crate::model::{split_lost, KernelMemory, ModelError, PhysCache};
use crate::postmortem::unwind;
use crate::target::{Csr, GeneralRegs, Hart, Target, TargetError};

/// One hart at the moment of the snapshot.
#[derive(Clone, Debug)]
pub struct HartSnap {
    pub hart: Hart,
    pub regs: GeneralRegs,
    /// Every CSR kinspect reads; `None` where the backend has no value.
    pub csrs: Vec<(Csr, Option<u64>)>,
    /// The call chain, innermost first (empty in user mode).
    pub backtrace: Backtrace,
}

impl HartSnap {
    pub fn csr(&self, c: Csr) -> Option<u64> {
        self.csrs
            .iter()
            .find(|(k, _)| *k == c)
            .and_then(|(_, v)| *v)
    }

    /// 0 U, 1 S, 3 M.
    pub fn privilege(&self) -> Option<u64> {
        self.csr(Csr::Priv)
    }
}

/// One frame of a hart's call chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRow {
    pub pc: u64,
    /// The frame pointer (s0) of this frame, when known.
    pub fp: Option<u64>,
    /// `func+0xoff`.
    pub symbol: Option<String>,
    /// `file:line` of the call site.
    pub line: Option<String>,
    /// Functions inlined at this pc, innermost first (`mappages vm.rs:247`),
    /// as the report lists them; `core::` helpers left out.
    pub inlined: Vec<String>,
}

/// A hart's call chain, with why it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backtrace {
    pub frames: Vec<FrameRow>,
    pub end: String,
}

/// The machine, halted.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When it was read (wall clock, for "stale since").
    pub taken: SystemTime,
    pub harts: Vec<HartSnap>,
    /// The process table, or why it could not be read (no ELF, no DWARF).
    pub procs: Result<Vec<ProcRow>, String>,
    /// `kernel_pagetable`, the root the idle harts run on.
    pub kernel_pagetable: Option<PhysAddr>,
    /// The kernel's panic message once it has panicked.
    pub panic: Option<String>,
    /// The hart whose chain goes through `panic`, once the kernel panicked.
    pub panic_hart: Option<Hart>,
}

/// Is this a failure of the connection (as opposed to of the data)?
pub fn is_lost(e: &TargetError) -> bool {
    matches!(
        e,
        TargetError::Disconnected(_) | TargetError::Unreachable { .. } | TargetError::Timeout(_)
    )
}

/// `func+0xoff` for an address.
pub fn symbolize(syms: Option<&Symbols>, addr: u64) -> Option<String> {
    crate::symbolize::name(syms, addr)
}

/// A return address as `func+0xoff`, named by the call before it: the
/// function containing `ra - 1` (the report's unwinder looks up the same
/// address). A call to a function that never returns (`panic`) can be the
/// last instruction of its function, so `ra` itself may already be the
/// next function's first byte.
pub fn symbolize_return(syms: Option<&Symbols>, ra: u64) -> Option<String> {
    crate::symbolize::return_address(syms, ra, call_site(ra))
}

/// Where a return address is looked up: the report's unwinder's rule
/// (`How::lookup`), so both name a frame the same way.
fn call_site(ra: u64) -> u64 {
    crate::postmortem::unwind::How::FramePointer.lookup(ra)
}

/// Is this `func+0xoff` the kernel's `panic` (C xv6's `panic`, this
/// kernel's `kernel::printf::panic`)?
pub fn is_panic_frame(symbol: &str) -> bool {
    let name = symbol.split('+').next().unwrap_or(symbol);
    name == "panic" || name.ends_with("printf::panic")
}

/// `file:line` of a line-table frame, the path kept from the crate's
/// directory on (`kernel/src/proc.rs:757`).
fn frame_place(f: &kinspect_symbols::Frame) -> Option<String> {
    let file = f.file.as_deref()?;
    // From the last `kernel/` directory (ours: kernel/src/proc.rs; C
    // xv6: kernel/proc.c), whatever the checkout's path holds before it.
    let short = match file.rfind("/kernel/") {
        Some(i) => &file[i + 1..],
        None if file.starts_with("kernel/") => file,
        None => file.rsplit('/').next().unwrap_or(file),
    };
    Some(match f.line {
        Some(l) => format!("{short}:{l}"),
        None => short.to_string(),
    })
}

/// `file:line` of the code at `addr` (the outermost, non-inlined frame),
/// and the functions inlined there, innermost first.
fn source_line(syms: Option<&Symbols>, addr: u64) -> (Option<String>, Vec<String>) {
    let Some(frames) = syms.and_then(|s| s.lines(addr).ok()) else {
        return (None, Vec::new());
    };
    let Some((outer, inner)) = frames.split_last() else {
        return (None, Vec::new());
    };
    let inlined = inner
        .iter()
        .filter_map(|f| {
            let name = f.function.as_deref()?;
            if name.starts_with("core::") {
                return None;
            }
            let name = name.rsplit("::").next().unwrap_or(name);
            let file = f.file.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p));
            Some(match (file, f.line) {
                (Some(file), Some(l)) => format!("{name} {file}:{l}"),
                (Some(file), None) => format!("{name} {file}"),
                _ => name.to_string(),
            })
        })
        .collect();
    (frame_place(outer), inlined)
}

/// A hart's call chain in supervisor (or machine) mode, from the same
/// unwinder the post-mortem report uses
/// ([`crate::postmortem::unwind::hart_chain`]): DWARF CFI where the ELF has
/// it (so frames in code built without frame pointers, such as Rust's
/// `core`, are not lost), the frame-pointer record (`s0-8`: ra, `s0-16`:
/// the caller's s0) where it does not, `mepc` for a hart in M-mode, and
/// the walk stops at `main` / `forkret`, at a return address outside the
/// kernel's code, or after a bounded number of frames. Stack memory is
/// read through the hart's page table (`satp`).
pub fn backtrace(
    target: &mut dyn Target,
    syms: Option<&Symbols>,
    ram: Ram,
    regs: &GeneralRegs,
    satp: Option<u64>,
    privilege: Option<u64>,
    mepc: Option<u64>,
) -> Result<Backtrace, TargetError> {
    let mut bt = Backtrace::default();
    if privilege == Some(0) {
        bt.end = format!(
            "the hart is in user mode (pc {:#x}); the kernel's frame chain starts at the next trap",
            regs.pc
        );
        return Ok(bt);
    }
    // The kernel's text: from the start of RAM (where `_entry` is loaded)
    // up to `etext`; without `etext`, anything a symbol covers.
    let etext = syms.and_then(|s| s.global("etext").ok()).map(|g| g.addr);
    let in_code = |a: u64| match etext {
        // The kernel is linked where it sits in RAM (the direct map).
        Some(end) => a >= ram.base.0 && a < end,
        None => syms.is_some_and(|s| s.symbolize(a).is_some()),
    };
    let root = satp
        .map(Satp)
        .filter(|s| s.mode() == SatpMode::Sv39)
        .map(|s| s.root());
    let mepc = mepc.filter(|_| privilege == Some(3));
    let mut phys = PhysCache::new(target);
    // The unwinder treats stack it cannot read as the end of the chain.
    let (raw, end) = {
        let mut mem = KernelMemory::new(&mut phys, ram, root);
        unwind::hart_chain(&regs.x, regs.pc, mepc, syms, &mut mem, &in_code)
    };
    for f in &raw {
        let (symbol, lookup) = if f.how.exact() {
            (symbolize(syms, f.pc), f.pc)
        } else {
            // The call instruction is just before the return address.
            (symbolize_return(syms, f.pc), call_site(f.pc))
        };
        let (line, inlined) = source_line(syms, lookup);
        bt.frames.push(FrameRow {
            pc: f.pc,
            fp: f.regs[8],
            symbol,
            line,
            inlined,
        });
    }
    bt.end = end;
    Ok(bt)
}

/// The chain of a process that is not on a hart: `swtch` saved its `ra`,
/// `sp` and `s0` in `proc[slot].context`, so the walk starts at the saved
/// `ra` (inside `sched`) with the saved `s0`, through the page table its
/// kernel stack is mapped in (its own kernel table, else
/// `kernel_pagetable`). The outer `Result` fails only when the connection
/// does; the inner one says why there is no chain.
pub fn saved_context_backtrace(
    target: &mut dyn Target,
    syms: &Symbols,
    ram: Ram,
    slot: usize,
) -> Result<Result<Backtrace, String>, TargetError> {
    let mut phys = PhysCache::new(&mut *target);
    let mut mem = KernelMemory::new(&mut phys, ram, None);
    let kpt = split_lost(syms.load_global(&mut mem, "kernel_pagetable"))?
        .and_then(|v| v.as_addr())
        .ok();
    // A read that fails because the connection is gone, or because the
    // kernel has no such field.
    enum Fail {
        Lost(TargetError),
        Data(String),
    }
    let mut field = |f: &str| -> Result<u64, Fail> {
        match split_lost(syms.eval_address(&format!("proc[{slot}].{f}"), &mut mem)) {
            Err(lost) => Err(Fail::Lost(lost)),
            Ok(r) => r.map_err(|e| Fail::Data(e.to_string())),
        }
    };
    let ra = field("context.ra");
    let s0 = field("context.s0");
    let kpagetable = match field("kpagetable") {
        Ok(k) => Some(k).filter(|k| *k != 0),
        Err(Fail::Lost(e)) => return Err(e),
        Err(Fail::Data(_)) => None,
    };
    let (ra, s0) = match (ra, s0) {
        (Ok(ra), Ok(s0)) => (ra, s0),
        (Err(Fail::Lost(e)), _) | (_, Err(Fail::Lost(e))) => return Err(e),
        (Err(Fail::Data(e)), _) | (_, Err(Fail::Data(e))) => {
            return Ok(Err(format!("cannot read proc[{slot}].context: {e}")))
        }
    };
    if ra == 0 {
        return Ok(Err(format!(
            "proc[{slot}].context is empty: the process has not been switched away from yet"
        )));
    }
    let root = kpagetable.or(kpt).filter(|r| *r != 0).map(PhysAddr);
    let satp = root.map(|r| Satp::sv39(r).0);
    let mut x = [0u64; 32];
    x[8] = s0;
    let regs = GeneralRegs { x, pc: ra };
    backtrace(target, Some(syms), ram, &regs, satp, Some(1), None).map(Ok)
}

/// A NUL-terminated string of printable text at kernel address `va`, at
/// most `max` bytes; empty when unreadable or not text.
fn read_cstr(mem: &mut KernelMemory<'_, '_>, va: VirtAddr, max: u64) -> String {
    let mut bytes = Vec::new();
    for i in 0..max {
        let mut b = [0u8];
        let Some(a) = va.checked_add(i) else { break };
        if mem.read(a, &mut b).is_err() || b[0] == 0 {
            break;
        }
        bytes.push(b[0]);
    }
    match String::from_utf8(bytes) {
        Ok(t) if t.chars().all(|c| !c.is_control() || c == '\n') => t.trim_end().to_string(),
        _ => String::new(),
    }
}

/// Read everything the views need from a halted machine.
pub fn read_snapshot(
    target: &mut dyn Target,
    syms: Option<&Symbols>,
    profile: &crate::model::Profile,
    ram: Ram,
) -> Result<Snapshot, TargetError> {
    let harts = target.harts()?;
    let mut snaps = Vec::with_capacity(harts.len());
    for h in harts {
        let regs = target.regs(h)?;
        let mut csrs = Vec::with_capacity(Csr::ALL.len());
        for c in Csr::ALL {
            match target.csr(h, c) {
                Ok(v) => csrs.push((c, Some(v))),
                Err(e) if is_lost(&e) => return Err(e),
                Err(_) => csrs.push((c, None)),
            }
        }
        let get = |c: Csr| csrs.iter().find(|(k, _)| *k == c).and_then(|(_, v)| *v);
        let (satp, privilege) = (get(Csr::Satp), get(Csr::Priv));
        let backtrace = backtrace(target, syms, ram, &regs, satp, privilege, get(Csr::Mepc))?;
        snaps.push(HartSnap {
            hart: h,
            regs,
            csrs,
            backtrace,
        });
    }
    let mut snap = Snapshot {
        taken: SystemTime::now(),
        harts: snaps,
        procs: Err("no kernel ELF: give --elf to see processes".into()),
        kernel_pagetable: None,
        panic: None,
        panic_hart: None,
    };
    if let Some(syms) = syms {
        match read_procs(syms, profile, &mut *target, ram) {
            Ok((procs, kpt)) => {
                snap.procs = Ok(procs);
                snap.kernel_pagetable = Some(kpt).filter(|a| a.0 != 0);
            }
            Err(ModelError::Target(e)) if is_lost(&e) => return Err(e),
            Err(e) => snap.procs = Err(format!("process table: {e}")),
        }
        let mut phys = PhysCache::new(target);
        let mut mem = KernelMemory::new(&mut phys, ram, snap.kernel_pagetable);
        let panicked = split_lost(syms.load_global(&mut mem, "panicked"))?
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        // A hart held on panic's first instruction (`kinspect watch` holds
        // a C xv6 there) has panicked before `panicked` is set, and a0 is
        // the message C xv6 keeps nowhere else.
        let at_entry = syms.elf_symbol("panic").and_then(|p| {
            snap.harts
                .iter()
                .find(|h| h.regs.pc == p.addr)
                .map(|h| (h.hart, h.regs.x[10]))
        });
        if panicked != 0 || at_entry.is_some() {
            let mut msg = split_lost(syms.load_global(&mut mem, "panicmsg"))?
                .and_then(|v| v.as_cstr())
                .unwrap_or_default();
            if msg.is_empty() {
                if let Some((_, a0)) = at_entry {
                    msg = read_cstr(&mut mem, VirtAddr(a0), 128);
                }
            }
            snap.panic = Some(if msg.is_empty() {
                "the kernel panicked".into()
            } else {
                msg
            });
            snap.panic_hart = at_entry.map(|(h, _)| h).or_else(|| {
                snap.harts
                    .iter()
                    .find(|h| {
                        h.backtrace
                            .frames
                            .iter()
                            .any(|f| f.symbol.as_deref().is_some_and(is_panic_frame))
                    })
                    .map(|h| h.hart)
            });
        }
    }
    Ok(snap)
}
