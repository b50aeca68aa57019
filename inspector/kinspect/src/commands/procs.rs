//! `kinspect procs [--all]`: the kernel's process table, read by DWARF
//! name from `proc[]` and `cpus[]` through [`crate::model`].
//!
//! One consistent read: the backend halts a running machine before the
//! first read, the whole `proc` array comes in one bulk read, and the
//! machine resumes when the command ends. Kernel stacks are translated
//! through the page table each process runs on in the kernel (its own
//! when the kernel has per-process kernel page tables).

use kinspect_sv39::{PhysAddr, Satp, VirtAddr};
use serde::Serialize;

use super::{need_debug, read_kernel, Ctx};
use super::Run;
use crate::error::Result;
use crate::model::{KernelState, PhysCache, Proc};

/// The process table, read from the kernel's `proc[]` by DWARF name.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One line per process: slot, pid, state, name, parent pid, the hart running
it (from cpus[]), its kernel stack's virtual and physical address (through
the kernel page table it runs on) and whether the guard page below is
unmapped, the user page-table root, the per-process kernel page-table root
when the kernel has one, size, trapframe, the saved context's ra and sp,
what it sleeps on, and whether it was killed. The machine is halted for
one read of the whole table and resumed afterwards if it was running.

  kinspect procs
  kinspect procs --all            UNUSED slots too
  kinspect --json procs

The per-process kernel page-table field is found by name (kpagetable,
kernel_pagetable, k_pagetable, kernelpt, kpt); name it with --kpt-field.")]
pub struct Args {
    /// Show UNUSED slots too.
    #[arg(long)]
    pub all: bool,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, self.all)
    }
}


/// One process in `--json` output.
#[derive(Debug, Serialize)]
pub struct ProcJson {
    pub slot: usize,
    pub pid: i64,
    /// xv6's name: UNUSED USED SLEEPING RUNNABLE RUNNING ZOMBIE (or `?N`).
    pub state: String,
    pub name: String,
    pub ppid: Option<i64>,
    /// The hart whose `cpus[h].proc` is this slot.
    pub hart: Option<usize>,
    pub kstack: VirtAddr,
    /// Through the kernel page table the process runs on; null: unmapped.
    pub kstack_pa: Option<PhysAddr>,
    /// The table `kstack_pa` was translated through.
    pub kstack_table: PhysAddr,
    /// Whether the page below the kernel stack is unmapped, as it must be.
    pub guard_unmapped: bool,
    pub pagetable: PhysAddr,
    /// The per-process kernel page table; null when the kernel has none.
    pub kpagetable: Option<PhysAddr>,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub sz: Option<u64>,
    pub trapframe: Option<PhysAddr>,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub context_ra: Option<u64>,
    pub context_ra_symbol: Option<String>,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub context_sp: Option<u64>,
    /// The sleep channel (0: none) and what it is.
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub chan: Option<u64>,
    pub chan_symbol: Option<String>,
    pub killed: Option<bool>,
    pub xstate: Option<i64>,
}

/// `--json` output of `procs`.
#[derive(Debug, Serialize)]
pub struct ProcsJson {
    pub kernel_pagetable: PhysAddr,
    /// The `struct proc` field holding the per-process kernel page
    /// table, null when the kernel has none.
    pub kpagetable_field: Option<String>,
    /// How that field was found (`named`, `memory`, `type`), the other
    /// candidates of its type and why memory ruled them out.
    pub kpt: crate::model::KptDetection,
    /// Why the harts' page tables suggest a per-process kernel table that
    /// was not recognised; null when they do not.
    pub kpt_warning: Option<String>,
    pub nproc: usize,
    pub procs: Vec<ProcJson>,
}

/// `name+0xoff`, `&proc[N]` for an address inside the process table, or
/// `kalloc'd page PAGE+0xoff` past the kernel image.
pub fn symbolize(
    debug: &kinspect_symbols::Symbols,
    state: &KernelState,
    addr: u64,
) -> Option<String> {
    if addr == 0 {
        return None;
    }
    if let Some(off) = addr.checked_sub(state.proc_base) {
        if state.proc_size > 0 && off / state.proc_size < state.procs.len() as u64 {
            let slot = off / state.proc_size;
            let within = off % state.proc_size;
            return Some(if within == 0 {
                format!("&proc[{slot}]")
            } else {
                format!("&proc[{slot}]+{within:#x}")
            });
        }
    }
    // Past the kernel image is kalloc's memory: `end+0x7f074b8` would be
    // a wrong name for a pipe or any other page the kernel allocated.
    if debug.elf_symbol("end").is_some_and(|e| addr >= e.addr) {
        return Some(format!(
            "kalloc'd page {:#x}+{:#x}",
            addr & !0xfff,
            addr & 0xfff
        ));
    }
    debug.symbolize(addr).map(|(name, off)| {
        if off == 0 {
            name.to_string()
        } else {
            format!("{name}+{off:#x}")
        }
    })
}

fn hex<T: std::fmt::LowerHex>(v: Option<T>) -> String {
    match v {
        Some(v) => format!("{v:#x}"),
        None => "-".into(),
    }
}

pub fn run(ctx: &mut Ctx<'_>, all: bool) -> Result<()> {
    let debug = need_debug(ctx, "procs")?;
    let ram = ctx.ram;
    let profile = ctx.profile.clone();
    let mut phys = PhysCache::new(ctx.target()?);
    let (kernel, state) = read_kernel(debug, &profile, &mut phys, ram)?;
    let shown: Vec<&Proc> = state.procs.iter().filter(|p| all || p.is_live()).collect();
    let mut rows = Vec::with_capacity(shown.len());
    for p in shown {
        let ks = kernel
            .kstack(&mut phys, &state, p, ram)
            ?;
        rows.push(ProcJson {
            slot: p.slot,
            pid: p.pid,
            state: p.state.name(),
            name: p.name.clone(),
            ppid: state.parent_pid(p),
            hart: state.hart_of(p.slot),
            kstack: p.kstack,
            kstack_pa: ks.pa,
            kstack_table: ks.table,
            guard_unmapped: !ks.guard_mapped,
            pagetable: p.pagetable,
            kpagetable: p.kpagetable,
            sz: p.sz,
            trapframe: p.trapframe,
            context_ra: p.context_ra,
            context_ra_symbol: p.context_ra.and_then(|a| symbolize(debug, &state, a)),
            context_sp: p.context_sp,
            chan: p.chan,
            chan_symbol: p.chan.and_then(|a| symbolize(debug, &state, a)),
            killed: p.killed,
            xstate: p.xstate,
        });
    }
    drop(phys);
    let kpt_warning = kpt_warning(ctx, &state)?;
    if ctx.json {
        return ctx.json(&ProcsJson {
            kernel_pagetable: state.kernel_pagetable,
            kpagetable_field: state.kpagetable_field.clone(),
            kpt: state.kpt.clone(),
            kpt_warning,
            nproc: state.procs.len(),
            procs: rows,
        });
    }
    writeln!(
        ctx.out,
        "kernel_pagetable {:#x}; per-process kernel page table: {}",
        state.kernel_pagetable,
        state.kpt.describe()
    )?;
    if let Some(w) = &kpt_warning {
        writeln!(ctx.warn, "kinspect: warning: {w}")?;
    }
    let has_kpt = state.kpagetable_field.is_some();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut head = vec![
        "SLOT",
        "PID",
        "STATE",
        "NAME",
        "PPID",
        "HART",
        "KSTACK",
        "KSTACK-PA",
        "GUARD",
        "PAGETABLE",
    ];
    if has_kpt {
        head.push("KPAGETABLE");
    }
    head.extend([
        "SZ",
        "TRAPFRAME",
        "CONTEXT.RA",
        "CONTEXT.SP",
        "CHAN",
        "KILLED",
    ]);
    table.push(head.iter().map(|s| s.to_string()).collect());
    for r in &rows {
        let mut line = vec![
            r.slot.to_string(),
            r.pid.to_string(),
            r.state.clone(),
            if r.name.is_empty() {
                "-".into()
            } else {
                r.name.clone()
            },
            r.ppid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.hart.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
            format!("{:#x}", r.kstack),
            r.kstack_pa
                .map(|a| format!("{a:#x}"))
                .unwrap_or_else(|| "UNMAPPED".into()),
            if r.guard_unmapped { "ok" } else { "MAPPED" }.into(),
            format!("{:#x}", r.pagetable),
        ];
        if has_kpt {
            line.push(hex(r.kpagetable));
        }
        line.push(hex(r.sz));
        line.push(hex(r.trapframe));
        line.push(
            r.context_ra_symbol
                .clone()
                .unwrap_or_else(|| hex(r.context_ra)),
        );
        line.push(hex(r.context_sp));
        line.push(match (r.chan, &r.chan_symbol) {
            (Some(0) | None, _) => "-".into(),
            (Some(_), Some(s)) => s.clone(),
            (Some(c), None) => format!("{c:#x}"),
        });
        line.push(match r.killed {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "-".into(),
        });
        table.push(line);
    }
    let cols = table[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| table.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    for line in &table {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == cols {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        writeln!(ctx.out, "{}", text.trim_end())?;
    }
    let live = state.live().count();
    writeln!(ctx.out, "{live} of {} slots in use", state.procs.len())?;
    Ok(())
}

/// The harts' satp against the tables the model knows: a warning when
/// some hart runs on a table nobody owns and no per-process field was
/// recognised (see [`crate::model::kpt::unrecognised_note`]).
pub fn kpt_warning(ctx: &mut Ctx<'_>, state: &KernelState) -> Result<Option<String>> {
    if state.kpt.field.is_some() {
        return Ok(None);
    }
    let t = ctx.target()?;
    let mut satps = Vec::new();
    for h in t.harts()? {
        if let Ok(v) = t.csr(h, crate::target::Csr::Satp) {
            satps.push((h, Satp(v)));
        }
    }
    Ok(crate::model::kpt::unrecognised_note(
        &state.kpt,
        &state.unexplained_roots(&satps),
    ))
}
