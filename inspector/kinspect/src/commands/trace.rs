//! `kinspect trace`: record page-table changes as the kernel makes them.
//!
//! A breakpoint on the first instruction of `mappages` and of `uvmunmap`
//! (every xv6-riscv descendant, C or Rust, maps through the one and unmaps
//! user memory through the other). At each hit the arguments are read
//! from the registers the RISC-V calling convention puts them in (a0..a4:
//! `mappages(pagetable, va, size, pa, perm)`, `uvmunmap(pagetable, va,
//! npages, do_free)`, the order every xv6 since 2019 uses), with the
//! kernel's `ticks`, the process on that hart (`cpus[hart].proc`) and the
//! call chain (the unwinder the report uses). The hart is then stepped
//! over the breakpoint and the machine resumed.
//!
//! The recording ends on Ctrl-C, after `--for SECS`, at `--max` events,
//! or when the kernel panics (a breakpoint on `panic`): then the machine
//! is left halted in `panic` so that `kinspect report --trace FILE` can
//! say who made the mapping a `remap` collided with. Otherwise the
//! machine is left running, breakpoints removed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinspect_sv39::{Ram, Satp, SatpMode};
use kinspect_symbols::Symbols;

use super::{Ctx, Needs, Run};
use crate::error::{Error, Result};
use crate::model::{Kernel, KernelMemory, PhysCache};
use crate::postmortem::report::short;
use crate::postmortem::unwind;
use crate::target::fastram::FastQemu;
use crate::target::{Control, Csr, Hart, RunState, Target};
use crate::trace::{Event, Kind, Trace, ENDED_PANIC, VERSION};

/// Frames kept per event.
const CHAIN: usize = 8;

/// Record page-table changes (mappages, uvmunmap) with who made them.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Start QEMU halted (cargo xtask qemu --gdb-wait, or -S) to record from the
first mapping the kernel makes, then:
  kinspect trace -o trace.json          Ctrl-C to stop
  kinspect blame 0x4000 --pid 3 --trace trace.json
  kinspect report --trace trace.json    after a panic

Each event is printed as it happens:
  tick 3 hart 1 pid 2 sh  map   0x4000-0x14000 -> 0x87f2c000 rw-u  table 0x87f41000  uvmalloc <- growproc <- sys_sbrk
Every hit halts the machine for a moment: a traced kernel runs slower.
A panic ends the recording and leaves the machine halted in panic.")]
pub struct Args {
    /// Write the recording to FILE (JSON) when it ends.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long = "for", value_name = "SECS")]
    pub duration: Option<u64>,
    /// Stop after this many events.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max: u64,
    /// Do not print events as they happen.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn read_only(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        if ctx.session.snapshot.is_some() {
            return Err(Error::BadInput(
                "trace records a running kernel: it needs a live QEMU, not --snapshot".into(),
            ));
        }
        record(ctx, self)
    }
}

/// Where the kernel keeps its tick counter: C xv6's `uint ticks`, or a
/// lock that owns it (`TICKS: SpinLock<u32>`, its `data`).
fn ticks_address(syms: &Symbols) -> Option<u64> {
    if let Ok(g) = syms.global("ticks") {
        if g.size == Some(4) {
            return Some(g.addr);
        }
    }
    let g = syms.global("TICKS").ok()?;
    let ty = g.ty?;
    for path in ["data.value", "data"] {
        if let Ok((off, t)) = syms.field_offset(ty, path) {
            if syms.size_of(t).ok() == Some(4) {
                return Some(g.addr + off);
            }
        }
    }
    None
}

struct Probe {
    addr: u64,
    kind: Kind,
}

/// What one recording needs at every hit.
struct Recorder<'s> {
    syms: &'s Symbols,
    kernel: Kernel<'s>,
    ram: Ram,
    ticks_at: Option<u64>,
    etext: Option<u64>,
}

impl Recorder<'_> {
    fn event(&self, t: &mut dyn Target, hart: Hart, kind: Kind, seq: u64) -> Result<Event> {
        let regs = t.regs(hart)?;
        let a = |i: usize| regs.x[10 + i];
        let ticks = match self.ticks_at {
            Some(pa) => {
                let mut b = [0u8; 4];
                t.read_phys(pa, &mut b)?;
                Some(u64::from(u32::from_le_bytes(b)))
            }
            None => None,
        };
        // The process on this hart: the kernel model, as `procs` reads it.
        let (pid, name) = {
            let mut phys = PhysCache::new(&mut *t);
            match self.kernel.read_state(&mut phys, self.ram) {
                Ok(s) => s
                    .cpus
                    .get(hart)
                    .and_then(|c| c.slot)
                    .and_then(|slot| s.procs.get(slot))
                    .filter(|p| p.is_live())
                    .map(|p| (Some(p.pid), Some(p.name.clone())))
                    .unwrap_or((None, None)),
                Err(_) => (None, None),
            }
        };
        let root = match t.csr(hart, Csr::Satp) {
            Ok(s) if Satp(s).mode() == SatpMode::Sv39 => Some(Satp(s).root()),
            _ => None,
        };
        let etext = self.etext;
        let syms = self.syms;
        let is_code = |x: u64| {
            x >= 0x8000_0000 && etext.is_none_or(|e| x < e) && syms.symbolize(x).is_some()
        };
        let raw = {
            let mut phys = PhysCache::new(&mut *t);
            let mut mem = KernelMemory::new(&mut phys, self.ram, root);
            unwind::hart_chain(&regs.x, regs.pc, None, Some(syms), &mut mem, &is_code).0
        };
        let mut chain = Vec::new();
        for f in &raw {
            let lookup = f.how.lookup(f.pc);
            let lines = syms.lines(lookup).unwrap_or_default();
            if lines.is_empty() {
                chain.push(
                    syms.symbolize(f.pc)
                        .map(|(n, _)| short(n).to_string())
                        .unwrap_or_else(|| "??".into()),
                );
            }
            for l in lines {
                chain.push(short(l.function.as_deref().unwrap_or("??")).to_string());
            }
            if chain.len() >= CHAIN {
                chain.truncate(CHAIN);
                break;
            }
        }
        let mut e = Event {
            seq,
            kind,
            ticks,
            hart,
            pid,
            name,
            table: a(0),
            va: a(1),
            size: a(2),
            pa: None,
            perm: None,
            free: None,
            chain,
        };
        match kind {
            Kind::Map => {
                e.pa = Some(a(3));
                let letters = kinspect_sv39::PteFlags::from_bits_truncate(a(4)).letters();
                e.perm = Some(letters.chars().take(4).collect());
            }
            Kind::Unmap => {
                e.size = a(2).saturating_mul(4096);
                e.free = Some(a(3) & 0xff != 0);
            }
        }
        Ok(e)
    }
}

fn control(t: &mut FastQemu) -> Result<&mut dyn Control> {
    t.control()
        .ok_or_else(|| Error::Failed("this target cannot run".into()))
}

fn record(ctx: &mut Ctx<'_>, args: &Args) -> Result<()> {
    let session = ctx.session;
    let syms = session.need_symbols("trace")?;
    let kernel = session.kernel("trace")?;
    let mut probes = Vec::new();
    for (name, kind) in [("mappages", Kind::Map), ("uvmunmap", Kind::Unmap)] {
        match syms.elf_symbol(name) {
            Some(s) => probes.push(Probe { addr: s.addr, kind }),
            None if kind == Kind::Map => {
                return Err(Error::BadInput(format!(
                    "{} has no `mappages` function to break on (not an xv6-style kernel?)",
                    syms.file_name()
                )))
            }
            None => writeln!(
                ctx.warn,
                "kinspect: no `{name}` in {}: unmappings are not recorded",
                syms.file_name()
            )?,
        }
    }
    let panic_at = syms.elf_symbol("panic").map(|s| s.addr);
    let rec = Recorder {
        syms,
        kernel,
        ram: session.ram,
        ticks_at: ticks_address(syms),
        etext: syms.elf_symbol("etext").map(|s| s.addr),
    };

    let mut t = session.connect(ctx.warn)?;
    {
        let mut phys = PhysCache::new(&mut t);
        rec.kernel.verify_image(&mut phys)?;
    }
    // QEMU's virt machine starts every hart at 0x1000 (its reset ROM).
    let from_reset = !t.stub().was_running() && t.regs(0).map(|r| r.pc == 0x1000)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop));

    let mut bps: Vec<u64> = probes.iter().map(|p| p.addr).collect();
    bps.extend(panic_at);
    for &a in &bps {
        control(&mut t)?.insert_breakpoint(a)?;
    }
    writeln!(
        ctx.warn,
        "kinspect: tracing mappages{} {}; Ctrl-C to stop",
        if probes.len() > 1 { " and uvmunmap" } else { "" },
        if from_reset {
            "from reset"
        } else {
            "(mappings made before now are not in the recording)"
        }
    )?;
    control(&mut t)?.resume()?;

    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let mut events: Vec<Event> = Vec::new();
    let mut panicked = false;
    let ended = loop {
        if stop.load(Ordering::Relaxed) {
            break "interrupted".to_string();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break format!("--for {} s elapsed", args.duration.unwrap_or(0));
        }
        if events.len() as u64 >= args.max {
            break format!("--max {} events recorded", args.max);
        }
        match control(&mut t)?.wait_for_stop(Duration::from_millis(100))? {
            RunState::Running => continue,
            RunState::Halted => {}
        }
        // Every hart at a probe is one event (QEMU stops them all at the
        // first hit; another may stand on a probe it has not run yet).
        let mut at = Vec::new();
        for h in t.harts()? {
            let pc = t.regs(h)?.pc;
            if Some(pc) == panic_at {
                panicked = true;
            } else if let Some(p) = probes.iter().find(|p| p.addr == pc) {
                at.push((h, p.addr, p.kind));
            }
        }
        if panicked {
            break ENDED_PANIC.to_string();
        }
        if at.is_empty() {
            // Stopped by something else (QEMU's monitor `stop`, another
            // debugger): theirs to resume.
            break "the machine was stopped from outside kinspect".to_string();
        }
        for (h, pc, kind) in at {
            let e = rec.event(&mut t, h, kind, events.len() as u64)?;
            if !args.quiet && !session.json {
                writeln!(ctx.out, "{}", e.line())?;
            }
            events.push(e);
            // Step this hart over the probe: out, one instruction, back in.
            let c = control(&mut t)?;
            c.remove_breakpoint(pc)?;
            c.step(h)?;
            c.insert_breakpoint(pc)?;
        }
        control(&mut t)?.resume()?;
    };

    // Take the breakpoints out; a panicked kernel stays halted in panic.
    {
        let c = control(&mut t)?;
        c.halt()?;
        for &a in &bps {
            c.remove_breakpoint(a)?;
        }
        if !panicked && ended != "the machine was stopped from outside kinspect" {
            c.resume()?;
        }
    }
    if panicked {
        let held = crate::postmortem::watch::settle_in_panic(t.stub().session(), syms)?;
        writeln!(
            ctx.warn,
            "kinspect: the kernel panicked; the machine is left halted in panic{}: `kinspect report{}` explains it",
            if held { " (at its first instruction)" } else { "" },
            args.out
                .as_ref()
                .map(|p| format!(" --trace {}", p.display()))
                .unwrap_or_default()
        )?;
    }
    t.finish()?;

    let trace = Trace {
        version: VERSION,
        elf: syms.file_name().to_string(),
        from_reset,
        ended: ended.clone(),
        events,
    };
    writeln!(
        ctx.warn,
        "kinspect: {} event{} recorded; {ended}",
        trace.events.len(),
        if trace.events.len() == 1 { "" } else { "s" }
    )?;
    if let Some(p) = &args.out {
        let s = serde_json::to_string_pretty(&trace)
            .map_err(|e| Error::Failed(format!("encoding the trace: {e}")))?;
        std::fs::write(p, s + "\n")
            .map_err(|e| Error::Failed(format!("writing {}: {e}", p.display())))?;
        writeln!(ctx.warn, "kinspect: trace written to {}", p.display())?;
    }
    if session.json {
        ctx.json(&trace)?;
    }
    Ok(())
}
