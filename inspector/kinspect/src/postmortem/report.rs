//! The panic report: what happened, on which hart, in which process, by
//! which call chain, and (for the classic page-table panics) what the page
//! tables say about it. Rendered as text, Markdown or JSON.

use std::fmt::Write as _;

use kinspect_sv39::{PhysAddr, Ram, Satp, SatpMode, VirtAddr};
use kinspect_symbols::Symbols;
use serde::Serialize;

use super::unwind::{self, Cfi, How, RawFrame};
use crate::arch::priv_name;
use crate::model::{self, Kernel, KernelMemory, KernelState, PhysCache, PhysMap, Profile};
use crate::target::{Csr, Hart, Target, TargetError};

/// One function in a backtrace (inlined functions get their own line).
#[derive(Clone, Debug, Serialize)]
pub struct FrameReport {
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub pc: u64,
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
    /// How the frame was found: pc, cfi, frame_pointer.
    pub how: How,
    /// Parameters and variables of this function at this pc (panicking
    /// hart only); `value` null = optimised out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locals: Vec<super::locals::Local>,
}

/// One hart at the time of the report.
#[derive(Clone, Debug, Serialize)]
pub struct HartReport {
    pub hart: Hart,
    /// U, S or M; `None` when the backend has no priv (QEMU cores).
    pub privilege: Option<&'static str>,
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub pc: u64,
    /// What the hart was doing, in words.
    pub state: String,
    /// The process it ran (`cpus[h].proc`), if any.
    pub pid: Option<i64>,
    pub process: Option<String>,
    /// Selected registers and CSRs by name.
    #[serde(serialize_with = "kinspect_sv39::json::named_hex_seq")]
    pub registers: Vec<(String, u64)>,
    pub frames: Vec<FrameReport>,
    /// Why the backtrace ends where it does.
    pub chain_end: String,
}

/// The explanation of a classic panic.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Diagnosis {
    /// `remap`, `kvmpa`, `uvmunmap: not mapped`, `freewalk: leaf`, `kerneltrap`.
    pub kind: String,
    /// Facts read from the machine, one per line.
    pub facts: Vec<String>,
    /// The likely cause, in one sentence.
    pub cause: String,
    /// The cause as a stable name (`remap/kstack-twice`, `kvmpa/wrong-table`,
    /// ...; [`super::diagnose::CLASSES`]), for grouping many crashes.
    pub class: &'static str,
    /// The VA involved, when known.
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub va: Option<u64>,
    /// The page table involved, when known: root and name.
    #[serde(serialize_with = "kinspect_sv39::json::hex_named_opt")]
    pub table: Option<(u64, String)>,
}

/// Everything `kinspect report` says.
#[derive(Clone, Debug, Serialize)]
pub struct PanicReport {
    pub source: String,
    /// The kernel's `panicked` flag (0 or 1).
    pub panicked: Option<i64>,
    /// `panicmsg`, the first panic's message.
    pub message: Option<String>,
    /// The hart whose backtrace runs through `panic`.
    pub panicking_hart: Option<Hart>,
    pub harts: Vec<HartReport>,
    pub diagnosis: Option<Diagnosis>,
    /// What could not be read, and other remarks.
    pub notes: Vec<String>,
}

/// Read a NUL-terminated string of at most `max` bytes at kernel address `va`
/// (kernel data is identity-mapped).
fn read_cstr(target: &mut dyn Target, va: u64, max: usize) -> Option<String> {
    let mut buf = vec![0u8; max];
    target.read_phys(va, &mut buf).ok()?;
    let n = buf.iter().position(|b| *b == 0).unwrap_or(max);
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn frames_of(syms: &Symbols, raw: &[RawFrame]) -> Vec<FrameReport> {
    let mut out = Vec::new();
    for f in raw {
        // A return address points after the call: look up the call.
        let lookup = f.how.lookup(f.pc);
        let lines = syms.lines(lookup).unwrap_or_default();
        if lines.is_empty() {
            let function = syms
                .symbolize(f.pc)
                .map(|(n, off)| format!("{n}+{off:#x}"))
                .unwrap_or_else(|| "??".into());
            out.push(FrameReport {
                pc: f.pc,
                function,
                file: None,
                line: None,
                inlined: false,
                how: f.how,
                locals: Vec::new(),
            });
            continue;
        }
        let n = lines.len();
        for (j, l) in lines.into_iter().enumerate() {
            out.push(FrameReport {
                pc: f.pc,
                function: l.function.unwrap_or_else(|| "??".into()),
                file: l.file,
                line: l.line,
                inlined: j + 1 < n,
                how: f.how,
                locals: Vec::new(),
            });
        }
    }
    out
}

/// The last path element of a function name: `kernel::vm::mappages` -> `mappages`.
pub fn short(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}

/// Build the report of the machine behind `target` (which must be halted).
pub fn build(
    target: &mut dyn Target,
    syms: &Symbols,
    profile: Profile,
    ram: Ram,
) -> Result<PanicReport, TargetError> {
    let elf_bytes = syms.data();
    let mut notes = Vec::new();
    let source = target.describe();
    let panicked = match syms.elf_symbol("panicked") {
        Some(s) => {
            let mut b = [0u8; 4];
            target
                .read_phys(s.addr, &mut b)
                .ok()
                .map(|_| i64::from(i32::from_le_bytes(b)))
        }
        None => {
            notes.push("the ELF has no `panicked` symbol".into());
            None
        }
    };
    let message = match syms.elf_symbol("panicmsg") {
        Some(s) => read_cstr(target, s.addr, 128).filter(|m| !m.is_empty()),
        None => {
            notes.push(
                "the ELF has no `panicmsg` symbol: the message is only on the console".into(),
            );
            None
        }
    };
    // The kernel model: processes and harts.
    let state: Option<KernelState> = match Kernel::new(syms, profile.clone()) {
        Ok(k) => {
            let mut phys = PhysCache::new(&mut *target);
            match k.read_state(&mut phys, ram) {
                Ok(s) => Some(s),
                Err(e) => {
                    notes.push(format!("process table unreadable: {e}"));
                    None
                }
            }
        }
        Err(e) => {
            notes.push(format!("no kernel model: {e}"));
            None
        }
    };
    if Cfi::of(syms).is_none() {
        notes.push("the ELF has no .debug_frame: backtraces follow frame pointers only".into());
    }
    let etext = syms.elf_symbol("etext").map(|s| s.addr);
    let is_code =
        |a: u64| a >= 0x8000_0000 && etext.is_none_or(|e| a < e) && syms.symbolize(a).is_some();

    let mut harts = Vec::new();
    let mut panicking_hart = None;
    let mut raw_by_hart = Vec::new();
    for h in target.harts()? {
        let regs = target.regs(h)?;
        let csr = |t: &mut dyn Target, c: Csr| t.csr(h, c).ok();
        let privilege = csr(target, Csr::Priv).map(priv_name);
        let satp = csr(target, Csr::Satp);
        let mut registers: Vec<(String, u64)> = vec![
            ("ra".into(), regs.x[1]),
            ("sp".into(), regs.x[2]),
            ("s0".into(), regs.x[8]),
            ("a0".into(), regs.x[10]),
            ("a1".into(), regs.x[11]),
            ("a2".into(), regs.x[12]),
        ];
        for c in [Csr::Satp, Csr::Scause, Csr::Stval, Csr::Sepc, Csr::Sstatus] {
            if let Some(v) = csr(target, c) {
                registers.push((c.name().into(), v));
            }
        }
        let root = satp.and_then(|s| match Satp(s).mode() {
            SatpMode::Sv39 => Some(Some(Satp(s).root())),
            SatpMode::Bare => Some(None),
            _ => None,
        });
        let (raw, chain_end) = if privilege == Some("U") {
            (Vec::new(), "in user mode: no kernel frames".to_string())
        } else {
            let mepc = if privilege == Some("M") {
                csr(&mut *target, Csr::Mepc)
            } else {
                None
            };
            let mut phys = PhysCache::new(&mut *target);
            let mut mem = KernelMemory::new(&mut phys, ram, root.unwrap_or(None));
            unwind::hart_chain(&regs.x, regs.pc, mepc, Some(syms), &mut mem, &is_code)
        };
        let mut frames = frames_of(syms, &raw);
        let in_panic = frames.iter().any(|f| {
            short(&f.function) == "panic" && f.function.contains("printf") || f.function == "panic"
        });
        if in_panic {
            // Arguments and locals of every frame of the panicking hart.
            for (i, rf) in raw.iter().enumerate() {
                let lookup = rf.how.lookup(rf.pc);
                let cfa = raw.get(i + 1).map(|n| n.sp);
                let mut phys = PhysCache::new(&mut *target);
                let mut mem = KernelMemory::new(&mut phys, ram, root.unwrap_or(None));
                let locals = super::locals::locals_at(elf_bytes, lookup, &rf.regs, cfa, &mut mem);
                for fr in frames.iter_mut().filter(|f| f.pc == rf.pc) {
                    fr.locals = locals
                        .iter()
                        .filter(|l| short(&l.function) == short(&fr.function))
                        .cloned()
                        .collect();
                }
            }
        }
        if in_panic && panicking_hart.is_none() {
            panicking_hart = Some(h);
        }
        let (pid, process) = match &state {
            Some(s) => match s.cpus.iter().find(|c| c.hart == h).and_then(|c| c.slot) {
                Some(slot) => match s.procs.iter().find(|p| p.slot == slot) {
                    Some(p) => (
                        Some(p.pid),
                        Some(format!("pid {} ({}), proc[{}]", p.pid, p.name, p.slot)),
                    ),
                    None => (None, None),
                },
                None => (None, Some("no process (scheduler or idle)".into())),
            },
            None => (None, None),
        };
        let here = frames
            .iter()
            .find(|f| !f.function.starts_with("core::"))
            .map(|f| f.function.clone())
            .unwrap_or_else(|| "??".into());
        let panic_entry = syms.elf_symbol("panic").map(|s| s.addr);
        let sie = registers
            .iter()
            .find(|(n, _)| n == "sstatus")
            .map(|(_, v)| v & 2 != 0);
        let interrupts = match sie {
            Some(true) => " (interrupts on)",
            Some(false) => " (interrupts off)",
            None => "",
        };
        let state_text = if in_panic && Some(regs.pc) == panic_entry {
            format!("panicked: stopped on panic's first instruction, before it prints{interrupts}")
        } else if in_panic {
            format!("panicked: spinning in panic{interrupts}")
        } else if privilege == Some("U") {
            "in user mode".to_string()
        } else if panicked == Some(1) {
            format!("stopped in {here} (another hart panicked; this one keeps spinning)")
        } else {
            format!("in {here}")
        };
        harts.push(HartReport {
            hart: h,
            privilege,
            pc: regs.pc,
            state: state_text,
            pid,
            process,
            registers,
            frames,
            chain_end,
        });
        raw_by_hart.push((h, raw, root.unwrap_or(None)));
    }
    // C xv6 keeps no copy of the message: it is panic's argument.
    let message = match message {
        Some(m) => Some(m),
        None => panicking_hart.and_then(|h| {
            let (_, raw, root) = raw_by_hart.iter().find(|(x, _, _)| *x == h)?;
            let hart = harts.iter().find(|r| r.hart == h)?;
            let m = panic_argument(&mut *target, syms, hart, raw, *root, ram)?;
            notes.retain(|n| !n.contains("no `panicmsg` symbol"));
            notes.push("the message is panic's argument (this kernel keeps no panicmsg)".into());
            Some(m)
        }),
    };
    let mut report = PanicReport {
        source,
        panicked,
        message,
        panicking_hart,
        harts,
        diagnosis: None,
        notes,
    };
    if let Some(h) = panicking_hart {
        let msg = report.message.clone();
        let raw = raw_by_hart
            .iter()
            .find(|(x, _, _)| *x == h)
            .map(|(_, r, root)| (r.clone(), *root));
        if let Some((raw, root)) = raw {
            report.diagnosis = super::diagnose::diagnose(
                target,
                syms,
                elf_bytes,
                profile,
                ram,
                msg.as_deref(),
                &report,
                h,
                &raw,
                root,
                state.as_ref(),
            );
        }
    }
    Ok(report)
}

/// The message a C-style `panic(char *s)` was called with: its parameter
/// as the DWARF location gives it in the `panic` frame, or `a0` when the
/// hart stands on panic's first instruction (`kinspect watch` stops
/// there). The string is read through the hart's page table.
fn panic_argument(
    target: &mut dyn Target,
    syms: &Symbols,
    hart: &HartReport,
    raw: &[RawFrame],
    root: Option<PhysAddr>,
    ram: Ram,
) -> Option<String> {
    let frame = hart.frames.iter().find(|f| f.function == "panic")?;
    let from_dwarf = frame
        .locals
        .iter()
        .find(|l| l.parameter && l.value.is_some())
        .and_then(|l| l.value);
    let entry = syms.elf_symbol("panic").map(|s| s.addr);
    let from_a0 = raw
        .first()
        .filter(|f| Some(f.pc) == entry)
        .and_then(|f| f.regs[10]);
    let va = VirtAddr(from_dwarf.or(from_a0)?);
    let mut phys = PhysCache::new(target);
    let mut mem = KernelMemory::new(&mut phys, ram, root);
    let mut bytes = Vec::new();
    for i in 0..128u64 {
        let mut b = [0u8];
        mem.read(va.checked_add(i)?, &mut b).ok()?;
        if b[0] == 0 {
            break;
        }
        bytes.push(b[0]);
    }
    let text = String::from_utf8(bytes).ok()?;
    let printable = !text.is_empty() && text.chars().all(|c| !c.is_control() || c == '\n');
    printable.then(|| text.trim_end().to_string())
}

impl PanicReport {
    /// Plain text for the terminal.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s, false);
        s
    }

    /// Markdown for `--report FILE.md`.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        self.render(&mut s, true);
        s
    }

    fn render(&self, s: &mut String, md: bool) {
        let h1 = if md { "# " } else { "" };
        let h2 = if md { "## " } else { "" };
        let code = if md { "```\n" } else { "" };
        match (&self.message, self.panicked) {
            (Some(m), _) => {
                let _ = writeln!(s, "{h1}panic: {m}");
            }
            (None, Some(1)) => {
                let _ = writeln!(
                    s,
                    "{h1}the kernel panicked (panicked = 1), panicmsg is empty"
                );
            }
            (None, Some(0)) => {
                let _ = writeln!(s, "{h1}the kernel has not panicked (panicked = 0)");
            }
            _ => {
                let _ = writeln!(s, "{h1}panic state unknown");
            }
        }
        let _ = writeln!(s, "\nfrom {}", self.source);
        if let Some(h) = self.panicking_hart {
            let _ = writeln!(s, "panicking hart: {h}");
        }
        if let Some(d) = &self.diagnosis {
            let _ = writeln!(s, "\n{h2}diagnosis: {}", d.kind);
            for f in &d.facts {
                let _ = writeln!(s, "{}{f}", if md { "- " } else { "  " });
            }
            let _ = if md {
                writeln!(s, "\n**likely cause:** {}", d.cause)
            } else {
                writeln!(s, "\nlikely cause: {}", d.cause)
            };
        }
        for h in &self.harts {
            let _ = writeln!(
                s,
                "\n{h2}hart {} [{}] {}",
                h.hart,
                h.privilege.unwrap_or("priv unknown"),
                h.state
            );
            if let Some(p) = &h.process {
                let _ = writeln!(s, "{}process: {p}", if md { "- " } else { "  " });
            }
            let regs: Vec<String> = h
                .registers
                .iter()
                .map(|(n, v)| format!("{n}={v:#x}"))
                .collect();
            let _ = writeln!(
                s,
                "{}pc={:#x} {}",
                if md { "- " } else { "  " },
                h.pc,
                regs.join(" ")
            );
            s.push_str(code);
            for (i, f) in h.frames.iter().enumerate() {
                let loc = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!(" at {file}:{line}"),
                    (Some(file), None) => format!(" at {file}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "  #{i:<2} {:#018x} {}{}{}",
                    f.pc,
                    f.function,
                    loc,
                    if f.inlined { " (inlined)" } else { "" }
                );
                if !f.locals.is_empty() {
                    let vals: Vec<String> = f
                        .locals
                        .iter()
                        .map(|l| match l.value {
                            Some(v) => format!("{} = {v:#x}", l.name),
                            None => format!("{} = <optimised out>", l.name),
                        })
                        .collect();
                    let _ = writeln!(s, "        {}", vals.join(", "));
                }
            }
            let _ = writeln!(s, "  ({})", h.chain_end);
            s.push_str(code);
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
    }
}

/// Build a PhysMap (who owns which page) for the diagnosis.
pub fn phys_map(
    target: &mut dyn Target,
    syms: &Symbols,
    profile: Profile,
    state: &KernelState,
    ram: Ram,
) -> Option<PhysMap> {
    let k = Kernel::new(syms, profile).ok()?;
    let mut phys = PhysCache::new(target);
    PhysMap::build(&k, &mut phys, state, ram).ok()
}

/// The PTE for `va` in the table at `root`, as the model reads it.
pub fn pte_of(
    target: &mut dyn Target,
    root: PhysAddr,
    va: VirtAddr,
    ram: Ram,
) -> Option<(PhysAddr, kinspect_sv39::Pte)> {
    let mut phys = PhysCache::new(target);
    model::va_in(&mut phys, root, va, ram).ok().flatten()
}
