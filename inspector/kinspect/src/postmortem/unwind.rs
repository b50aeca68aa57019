//! Backtraces of a halted hart: DWARF CFI from the kernel's `.debug_frame`
//! (through gimli) where a function has it, the frame-pointer chain where
//! it does not.
//!
//! The kernel keeps frame pointers (`s0` points above a record of `ra` at
//! `s0 - 8` and the caller's `s0` at `s0 - 16`), but the precompiled
//! `core` it links does not, so `core::panicking::panic_fmt` would hide
//! its caller from a pure frame-pointer walk; its CFI row says where it
//! saved `ra` and `s0`. Every frame's callee-saved registers are restored
//! as the CFI says, so a later step can read locals kept in them.
//! Stack memory is read virtually through the model's one kernel-VA reader
//! ([`KernelMemory`]: the direct map, else the hart's page table, where
//! kernel stacks live high at `KSTACK(i)`), with our own Sv39 walk. The
//! CFI is the `.debug_frame` `kinspect-symbols` reads once per ELF.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, LittleEndian, Register, RegisterRule, UnwindContext,
    UnwindSection,
};
use serde::Serialize;

use crate::model::KernelMemory;
use kinspect_sv39::VirtAddr;

/// At most this many frames (a corrupt stack cannot loop us forever).
pub const MAX_FRAMES: usize = 48;

/// How a frame's caller was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The hart's own pc.
    Pc,
    /// The caller's registers from the DWARF CFI row of this frame's pc.
    Cfi,
    /// From the frame-pointer record (no CFI for this pc).
    FramePointer,
    /// The pc an M-mode trap interrupted (`mepc`): a hart stopped in
    /// xv6's `timervec` goes back there.
    Interrupted,
}

impl How {
    /// Whether the frame's pc is an exact instruction (the hart's own pc,
    /// an interrupted pc) rather than a return address, which points after
    /// the call and is looked up at `pc - 1`.
    pub fn exact(self) -> bool {
        matches!(self, How::Pc | How::Interrupted)
    }

    /// The address to look a frame's function and line up at.
    pub fn lookup(self, pc: u64) -> u64 {
        if self.exact() {
            pc
        } else {
            pc.wrapping_sub(1)
        }
    }
}

/// One physical frame: a pc and the registers as they were in it.
#[derive(Clone, Debug, Serialize)]
pub struct RawFrame {
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub pc: u64,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub sp: u64,
    /// How this frame was reached from the one inside it.
    pub how: How,
    /// x0..x31 as known in this frame (`None`: not recoverable).
    #[serde(skip)]
    pub regs: [Option<u64>; 32],
}

/// An aligned little-endian u64 at kernel virtual `va`; `None` when it
/// cannot be read (a corrupt frame ends the chain, it is not an error).
pub fn word(mem: &mut KernelMemory<'_, '_>, va: u64) -> Option<u64> {
    if va % 8 != 0 {
        return None;
    }
    // Frame pointers and stack pointers are register values: raw numbers
    // until here, where they are read as kernel virtual addresses.
    mem.u64(VirtAddr(va)).ok()
}

/// The CFI of one ELF: its `.debug_frame`, as `kinspect-symbols` read it.
pub struct Cfi<'a> {
    data: &'a [u8],
}

impl<'a> Cfi<'a> {
    /// The ELF's CFI; `None` if it has no `.debug_frame`.
    pub fn of(syms: &'a kinspect_symbols::Symbols) -> Option<Cfi<'a>> {
        syms.debug_frame().map(|data| Cfi { data })
    }

    /// The caller's registers from `regs` at `pc` (`lookup` is the address
    /// to find the row for: pc - 1 for return addresses).
    fn step(
        &self,
        lookup: u64,
        regs: &[Option<u64>; 32],
        mem: &mut KernelMemory<'_, '_>,
    ) -> Option<[Option<u64>; 32]> {
        let mut frame = DebugFrame::new(self.data, LittleEndian);
        frame.set_address_size(8);
        let bases = BaseAddresses::default();
        let mut ctx = Box::new(UnwindContext::new());
        let row = frame
            .unwind_info_for_address(&bases, &mut ctx, lookup, DebugFrame::cie_from_offset)
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                let base = (*regs.get(register.0 as usize)?)?;
                base.checked_add_signed(*offset)?
            }
            CfaRule::Expression(_) => return None,
        };
        let mut out = *regs;
        for (r, slot) in out.iter_mut().enumerate().skip(1) {
            let rule = row.register(Register(r as u16));
            *slot = match rule {
                RegisterRule::Undefined => {
                    // Caller-saved registers are not known in the caller;
                    // callee-saved ones without a rule keep their value,
                    // and so does ra, the return-address column, before
                    // the prologue saves it (a hart stopped on a
                    // function's first instruction: `watch` on panic).
                    if is_callee_saved(r) || r == 1 {
                        regs[r]
                    } else {
                        None
                    }
                }
                RegisterRule::SameValue => regs[r],
                RegisterRule::Offset(n) => word(mem, cfa.checked_add_signed(n)?),
                RegisterRule::ValOffset(n) => cfa.checked_add_signed(n),
                RegisterRule::Register(o) => regs.get(o.0 as usize).copied().flatten(),
                _ => None,
            };
        }
        // sp of the caller is the CFA.
        out[2] = Some(cfa);
        Some(out)
    }
}

fn is_callee_saved(r: usize) -> bool {
    matches!(r, 2 | 8 | 9 | 18..=27)
}

/// The one frame of a hart at `pc` with `regs`, before any unwinding.
pub fn single(regs: &[u64; 32], pc: u64) -> Vec<RawFrame> {
    let mut cur: [Option<u64>; 32] = [None; 32];
    for (d, s) in cur.iter_mut().zip(regs) {
        *d = Some(*s);
    }
    cur[0] = Some(0);
    vec![RawFrame {
        pc,
        sp: regs[2],
        how: How::Pc,
        regs: cur,
    }]
}

/// Unwind from `regs`/`pc`. `is_code` says whether an address is kernel
/// code (the walk stops at the first return address that is not).
pub fn unwind(
    regs: &[u64; 32],
    pc: u64,
    cfi: Option<&Cfi<'_>>,
    mem: &mut KernelMemory<'_, '_>,
    is_code: &dyn Fn(u64) -> bool,
) -> (Vec<RawFrame>, String) {
    let mut frames = single(regs, pc);
    let mut cur = frames[0].regs;
    let mut pc = pc;
    let mut first = true;
    let end = loop {
        if frames.len() >= MAX_FRAMES {
            break format!("stopped after {MAX_FRAMES} frames");
        }
        let lookup = if first { pc } else { pc.wrapping_sub(1) };
        first = false;
        let (next, how) = match cfi.and_then(|c| c.step(lookup, &cur, mem)) {
            Some(n) => (n, How::Cfi),
            None => {
                // The frame-pointer record.
                let Some(fp) = cur[8] else {
                    break "no frame pointer to follow".into();
                };
                if fp == 0 {
                    break "the caller's frame pointer is 0: end of the chain".into();
                }
                let (Some(ra), Some(prev)) = (
                    word(mem, fp.wrapping_sub(8)),
                    word(mem, fp.wrapping_sub(16)),
                ) else {
                    break format!("the frame record at s0 {fp:#x} is unreadable");
                };
                let mut n = cur;
                n[1] = Some(ra);
                n[8] = Some(prev);
                n[2] = Some(fp);
                (n, How::FramePointer)
            }
        };
        let Some(ra) = next[1] else {
            break "the return address is not recoverable".into();
        };
        if ra == 0 {
            break "the chain ends (ra = 0: uservec clears it on entry from user mode)".into();
        }
        if !is_code(ra) {
            break format!("the return address {ra:#x} is not kernel code");
        }
        let sp = next[2].unwrap_or(0);
        let prev_sp = frames.last().map(|f| f.sp).unwrap_or(0);
        if sp < prev_sp {
            break format!("the stack pointer went down ({sp:#x} < {prev_sp:#x}): corrupt stack");
        }
        if ra == pc && sp == prev_sp {
            // No progress: the same pc on the same stack pointer would
            // repeat forever (_entry's first frame record on the boot
            // stack looks like this). A recursive call from one call site
            // has the same ra but a higher sp: that is a frame.
            break "the frame repeats itself (the boot stack's first frame)".into();
        }
        pc = ra;
        cur = next;
        frames.push(RawFrame {
            pc,
            sp,
            how,
            regs: cur,
        });
    };
    (frames, end)
}

/// Where a stack begins: `main` on the boot stack (`start` enters it by
/// `mret`), `forkret` on a new process's kernel stack (the first `swtch`
/// lands there). Nothing below them is a caller.
fn first_frame(syms: &kinspect_symbols::Symbols, f: &RawFrame) -> Option<&'static str> {
    let (name, _) = syms.symbolize(f.how.lookup(f.pc))?;
    match name.rsplit("::").next().unwrap_or(name) {
        "main" => Some("main is the first frame on the boot stack (start enters it by mret)"),
        "forkret" => {
            Some("forkret is the first frame of a new process (its first swtch lands there)")
        }
        _ => None,
    }
}

/// A hart's kernel call chain, the one every view shows (the report, the
/// TUI): CFI where the ELF has it, the frame-pointer record where it does
/// not; a hart in M-mode (xv6's `timervec`, `mepc` given) is walked from
/// the pc it interrupted; the chain stops at `main` or `forkret`.
pub fn hart_chain(
    regs: &[u64; 32],
    pc: u64,
    mepc: Option<u64>,
    syms: Option<&kinspect_symbols::Symbols>,
    mem: &mut KernelMemory<'_, '_>,
    is_code: &dyn Fn(u64) -> bool,
) -> (Vec<RawFrame>, String) {
    let cfi = syms.and_then(Cfi::of);
    let (mut raw, mut end) = match mepc {
        // The M-mode timer handler saves what it uses in its own scratch
        // area: every other register is the interrupted code's, so the
        // walk goes on from mepc.
        Some(mepc) if is_code(mepc) => {
            let (mut inner, end) = unwind(regs, mepc, cfi.as_ref(), mem, is_code);
            if let Some(first) = inner.first_mut() {
                first.how = How::Interrupted;
            }
            let mut here = single(regs, pc);
            here.append(&mut inner);
            (here, end)
        }
        _ => unwind(regs, pc, cfi.as_ref(), mem, is_code),
    };
    if let Some(syms) = syms {
        if let Some((i, why)) = raw
            .iter()
            .enumerate()
            .find_map(|(i, f)| first_frame(syms, f).map(|w| (i, w)))
        {
            if i + 1 < raw.len() {
                raw.truncate(i + 1);
                end = why.into();
            }
        }
    }
    (raw, end)
}
