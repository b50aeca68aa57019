//! The process table as a view: one [`ProcRow`] per slot from the kernel
//! model's [`Proc`] (plus where its kernel stack is mapped), the whole
//! [`Procs`] (the `--json` of `kinspect procs` as is), and its text: a
//! header line, an aligned table and a count.

use kinspect_sv39::{PhysAddr, VirtAddr};
use serde::Serialize;

use crate::model::{KernelState, KptDetection, Kstack, Proc};

/// One process (`kinspect procs`, one line and one `--json` element).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcRow {
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

/// The process table (`kinspect procs`; `--json` as is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Procs {
    pub kernel_pagetable: PhysAddr,
    /// The `struct proc` field holding the per-process kernel page
    /// table, null when the kernel has none.
    pub kpagetable_field: Option<String>,
    /// How that field was found (`named`, `memory`, `type`), the other
    /// candidates of its type and why memory ruled them out.
    pub kpt: KptDetection,
    /// Why the harts' page tables suggest a per-process kernel table that
    /// was not recognised; null when they do not.
    pub kpt_warning: Option<String>,
    pub nproc: usize,
    pub procs: Vec<ProcRow>,
    /// Slots in use (of all `nproc`, whether shown or not).
    #[serde(skip)]
    pub live: usize,
}

/// A process's row: `ks` is where its kernel stack is mapped, `sym` names
/// an address (`&proc[2]`, `func+0xoff`: see [`symbolize`]).
pub fn row(
    state: &KernelState,
    p: &Proc,
    ks: &Kstack,
    sym: &dyn Fn(u64) -> Option<String>,
) -> ProcRow {
    ProcRow {
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
        context_ra_symbol: p.context_ra.and_then(sym),
        context_sp: p.context_sp,
        chan: p.chan,
        chan_symbol: p.chan.and_then(sym),
        killed: p.killed,
        xstate: p.xstate,
    }
}

/// The table of `rows` (some of `state`'s slots) with the model's header
/// facts and the warning about an unrecognised per-process table.
pub fn procs(state: &KernelState, rows: Vec<ProcRow>, kpt_warning: Option<String>) -> Procs {
    Procs {
        kernel_pagetable: state.kernel_pagetable,
        kpagetable_field: state.kpagetable_field.clone(),
        kpt: state.kpt.clone(),
        kpt_warning,
        nproc: state.procs.len(),
        procs: rows,
        live: state.live().count(),
    }
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

impl Procs {
    /// The text of `kinspect procs`: the kernel's root table and how the
    /// per-process kernel table was found, one aligned line per process,
    /// and how many slots are in use. (The warning is not among them: it
    /// goes to the warnings.)
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "kernel_pagetable {:#x}; per-process kernel page table: {}",
            self.kernel_pagetable,
            self.kpt.describe()
        )];
        let has_kpt = self.kpagetable_field.is_some();
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
        for r in &self.procs {
            table.push(cells(r, has_kpt));
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
            out.push(text.trim_end().to_string());
        }
        out.push(format!("{} of {} slots in use", self.live, self.nproc));
        out
    }
}

/// One process's cells, in the header's order.
fn cells(r: &ProcRow, has_kpt: bool) -> Vec<String> {
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
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cpu, ProcState};

    fn proc(slot: usize, pid: i64, state: ProcState, name: &str) -> Proc {
        Proc {
            slot,
            addr: 0x8000_8000 + slot as u64 * 0x100,
            state,
            pid,
            name: name.into(),
            parent: 0,
            parent_slot: None,
            kstack: VirtAddr(0x3f_ffff_d000 - slot as u64 * 0x2000),
            sz: Some(0x3000),
            pagetable: PhysAddr(0x87f7_0000 + slot as u64 * 0x1000),
            kpagetable: None,
            trapframe: Some(PhysAddr(0x87f6_0000)),
            context_ra: Some(0x8000_1000),
            context_sp: Some(0x3f_ffff_dfa0),
            chan: Some(0),
            killed: Some(false),
            xstate: Some(0),
        }
    }

    fn state() -> KernelState {
        let mut sh = proc(1, 2, ProcState::Running, "sh");
        sh.parent_slot = Some(0);
        sh.chan = Some(0x8000_8000);
        KernelState {
            procs: vec![
                proc(0, 1, ProcState::Sleeping, "init"),
                sh,
                proc(2, 0, ProcState::Unused, ""),
            ],
            cpus: vec![Cpu {
                hart: 0,
                proc: 0x8000_8100,
                slot: Some(1),
                noff: None,
                intena: None,
            }],
            kernel_pagetable: PhysAddr(0x87ff_f000),
            kpagetable_field: None,
            kpt: KptDetection::default(),
            proc_base: 0x8000_8000,
            proc_size: 0x100,
        }
    }

    #[test]
    fn rows_and_table_from_the_model() {
        let s = state();
        let sym = |a: u64| (a == 0x8000_1000).then(|| "sched+0x40".to_string());
        let rows: Vec<ProcRow> = s
            .live()
            .map(|p| {
                let ks = Kstack {
                    va: p.kstack,
                    table: s.kernel_pagetable,
                    pa: (p.slot == 0).then_some(PhysAddr(0x87f4_0000)),
                    pte: None,
                    guard_va: VirtAddr(p.kstack.0 - 4096),
                    guard_mapped: false,
                };
                row(&s, p, &ks, &sym)
            })
            .collect();
        assert_eq!(rows[1].ppid, Some(1));
        assert_eq!(rows[1].hart, Some(0));
        assert_eq!(rows[1].context_ra_symbol.as_deref(), Some("sched+0x40"));
        let v = procs(&s, rows, None);
        assert_eq!((v.live, v.nproc), (2, 3));
        let l = v.lines();
        assert!(l[0].starts_with("kernel_pagetable 0x87fff000; per-process kernel page table: "));
        assert!(
            l[1].starts_with("SLOT  PID  STATE     NAME  PPID  HART  KSTACK  "),
            "{}",
            l[1]
        );
        let words = |i: usize| l[i].split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            words(2),
            "0 1 SLEEPING init - - 0x3fffffd000 0x87f40000 ok 0x87f70000 0x3000 0x87f60000 sched+0x40 0x3fffffdfa0 - no"
        );
        assert_eq!(
            words(3),
            "1 2 RUNNING sh 1 0 0x3fffffb000 UNMAPPED ok 0x87f71000 0x3000 0x87f60000 sched+0x40 0x3fffffdfa0 0x80008000 no"
        );
        assert_eq!(l[1].find("PID"), l[2].find('1'), "columns line up");
        assert_eq!(l[4], "2 of 3 slots in use");
    }
}
