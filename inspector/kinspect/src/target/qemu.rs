//! The live backend: a QEMU `virt` machine through its gdb stub.
//!
//! [`QemuTarget`] implements [`Target`] over a [`kinspect_rsp::Session`]:
//! hart N is gdb thread `p1.(N+1)`, registers come from `Hg` + `g`, CSRs
//! from `p` with numbers looked up by name in QEMU's target description,
//! and physical memory from `m` with `Qqemu.PhyMemMode:1` around the reads
//! (always put back). It also has [`Control`] (halt, resume, step,
//! breakpoints, waiting for a stop) and
//! [`Monitor`] (QEMU's human monitor through `qRcmd`).
//!
//! QEMU's physical mode never fails a read: memory that is not there reads
//! as zeros, and device registers would be read for real (a UART read pops
//! a character). So before the first physical read the backend asks the
//! monitor for the machine's memory map (`info mtree -f`) and refuses any
//! read that is not wholly inside RAM or ROM with [`TargetError::Memory`]:
//! a PTE pointing outside RAM is an error, never a page of zeros.
//!
//! Attaching halts the guest (QEMU does that); [`QemuTarget::finish`], or
//! dropping the target, resumes it if it was running before, so a one-shot
//! command leaves the machine as it found it. See `docs/protocol.md`.

use std::ops::Range;
use std::time::Duration;

use kinspect_rsp::{ConnectOptions, Error as RspError, RunState as RspRunState, Session, ThreadId};

use super::{
    Control, Csr, GeneralRegs, Hart, Monitor, Outside, Result, RunState, Target, TargetError,
};

/// The `kind` of a software breakpoint (`Z0,addr,kind`): 4 bytes, an
/// `ebreak` (QEMU's stub takes any kind for RISC-V).
const BREAKPOINT_KIND: usize = 4;

/// A live QEMU machine.
#[derive(Debug)]
pub struct QemuTarget {
    session: Session,
    threads: Option<Vec<ThreadId>>,
    readable: Option<Vec<Range<u64>>>,
    /// The machine's main RAM (`riscv_virt_board.ram`), from the same
    /// `info mtree -f` as `readable`.
    ram: Option<Range<u64>>,
}

/// Turn a client error into the Target's words.
fn target_error(e: RspError) -> TargetError {
    match e {
        RspError::Address { .. } => TargetError::BadAddress(e.to_string()),
        RspError::Unreachable { addr, port, why } => TargetError::Unreachable {
            what: format!("QEMU's gdb stub at {addr}"),
            why: format!("{why} — is QEMU running with -gdb tcp::{port}?"),
        },
        RspError::Disconnected { .. } | RspError::Exited(_) => {
            TargetError::Disconnected(e.to_string())
        }
        RspError::Timeout { .. } | RspError::OutOfStep { .. } => {
            TargetError::Timeout(e.to_string())
        }
        RspError::Memory { addr, len, .. } => TargetError::Memory { addr, len },
        RspError::NoThread(_) | RspError::NoRegister(_) | RspError::Unsupported(_) => {
            TargetError::Unsupported(e.to_string())
        }
        RspError::State(s) => TargetError::Unsupported(s),
        other => TargetError::Protocol(other.to_string()),
    }
}

impl QemuTarget {
    /// Connect to QEMU's gdb stub at `HOST:PORT` or `:PORT` (localhost).
    pub fn connect(addr: &str) -> Result<QemuTarget> {
        QemuTarget::connect_with(addr, &ConnectOptions::default())
    }

    /// Connect with explicit time-outs.
    pub fn connect_with(addr: &str, opts: &ConnectOptions) -> Result<QemuTarget> {
        let session = Session::connect(addr, opts).map_err(target_error)?;
        Ok(QemuTarget {
            session,
            threads: None,
            readable: None,
            ram: None,
        })
    }

    /// Was the guest running when we attached (and so will be resumed by
    /// [`finish`](Self::finish))?
    pub fn was_running(&self) -> bool {
        self.session.was_running()
    }

    /// Whether the stub is a `kinspect proxy` shared with other clients.
    pub fn on_proxy(&self) -> bool {
        self.session.on_proxy()
    }

    /// The protocol session, for what the Target trait does not cover
    /// (breakpoints, waiting for a stop, raw registers by name).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Leave the machine as we found it (resume it if it was running) and
    /// disconnect, reporting any failure. Dropping does the same silently.
    pub fn finish(self) -> Result<()> {
        self.session.finish().map_err(target_error)
    }

    /// The gdb thread of `hart`, if the stub lists it.
    fn thread(&mut self, hart: Hart) -> Result<ThreadId> {
        self.harts()?;
        let want = ThreadId::for_hart(hart);
        self.threads
            .as_ref()
            .and_then(|ts| ts.iter().find(|t| t.tid == want.tid).copied())
            .ok_or(TargetError::NoHart(hart))
    }

    /// The physical ranges reads are allowed in (RAM and ROM of the
    /// machine's memory map), merged. Asked of QEMU once.
    pub fn readable_ranges(&mut self) -> Result<&[Range<u64>]> {
        if self.readable.is_none() {
            let mtree = self.memory_map_text()?;
            self.use_memory_map(&mtree)?;
        }
        Ok(self.readable.as_deref().unwrap_or_default())
    }

    /// QEMU's `info mtree -f`, asked of its monitor.
    pub fn memory_map_text(&mut self) -> Result<String> {
        self.session.halt_for_reading().map_err(target_error)?;
        self.session.monitor("info mtree -f").map_err(target_error)
    }

    /// Take the machine's memory map from `mtree` (an `info mtree -f` this
    /// QEMU printed before, kept by the caller) instead of asking again.
    pub fn use_memory_map(&mut self, mtree: &str) -> Result<()> {
        let ranges = readable_ranges(mtree);
        if ranges.is_empty() {
            return Err(TargetError::Protocol(
                "QEMU's `info mtree -f` shows no RAM: cannot check physical reads".into(),
            ));
        }
        self.readable = Some(ranges);
        self.ram = main_ram(mtree);
        Ok(())
    }

    /// The machine's main RAM: the `ram` region of the system address
    /// space that holds the kernel's load address 0x80000000 (`None` if
    /// the memory map shows none).
    pub fn ram_range(&mut self) -> Result<Option<Range<u64>>> {
        self.readable_ranges()?;
        Ok(self.ram.clone())
    }
}

/// The `ram` region of AS "memory" in `info mtree -f` output that contains
/// 0x80000000, where QEMU `virt` puts RAM and xv6 its kernel.
pub fn main_ram(mtree: &str) -> Option<Range<u64>> {
    const KERNBASE: u64 = 0x8000_0000;
    let mut in_system = false;
    for line in mtree.lines() {
        let t = line.trim();
        if t.starts_with("FlatView") {
            in_system = false;
            continue;
        }
        if t.starts_with("AS \"memory\"") {
            in_system = true;
            continue;
        }
        if !in_system {
            continue;
        }
        let Some((span, rest)) = t.split_once(' ') else {
            continue;
        };
        if !(rest.starts_with("(prio ") && rest.contains(", ram)")) {
            continue;
        }
        let Some((a, b)) = span.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(last)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if start <= KERNBASE && KERNBASE <= last {
            return Some(start..last.checked_add(1)?);
        }
    }
    None
}

/// The RAM, ROM and ROM-device ranges of the system address space in the
/// output of `info mtree -f`, merged where they touch. Lines look like
/// `  0000000080000000-0000000087ffffff (prio 0, ram): riscv_virt_board.ram`.
pub fn readable_ranges(mtree: &str) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut in_system = false;
    for line in mtree.lines() {
        let t = line.trim();
        if t.starts_with("FlatView") {
            // The flat view of AS "memory" is the CPUs' physical space.
            in_system = false;
            continue;
        }
        if t.starts_with("AS \"memory\"") {
            in_system = true;
            continue;
        }
        if !in_system {
            continue;
        }
        let Some((span, rest)) = t.split_once(' ') else {
            continue;
        };
        let readable = ["ram)", "rom)", "romd)"]
            .iter()
            .any(|k| rest.starts_with("(prio ") && rest.contains(&format!(", {k}")));
        let Some((a, b)) = span.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(last)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if !readable || last < start {
            continue;
        }
        let end = last.saturating_add(1);
        match out.last_mut() {
            Some(prev) if prev.end == start => prev.end = end,
            _ => out.push(start..end),
        }
    }
    out.sort_by_key(|r| r.start);
    out
}

/// Is all of `pa..pa+len` inside the ranges?
fn covered(ranges: &[Range<u64>], pa: u64, len: usize) -> bool {
    let Some(end) = pa.checked_add(len as u64) else {
        return false;
    };
    ranges.iter().any(|r| r.start <= pa && end <= r.end)
}

impl Target for QemuTarget {
    fn describe(&self) -> String {
        format!("QEMU gdb stub at {}", self.session.addr())
    }

    fn harts(&mut self) -> Result<Vec<Hart>> {
        if self.threads.is_none() {
            self.session.halt_for_reading().map_err(target_error)?;
            self.threads = Some(self.session.threads().map_err(target_error)?);
        }
        let threads = self.threads.as_deref().unwrap_or_default();
        let mut harts: Vec<Hart> = threads.iter().filter_map(|t| t.hart()).collect();
        harts.sort_unstable();
        harts.dedup();
        Ok(harts)
    }

    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let ranges = self.readable_ranges()?;
        if !covered(ranges, pa, buf.len()) {
            return Err(TargetError::Memory {
                addr: pa,
                len: buf.len(),
            });
        }
        self.session.halt_for_reading().map_err(target_error)?;
        self.session.read_physical(pa, buf).map_err(target_error)
    }

    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs> {
        let tid = self.thread(hart)?;
        self.session.halt_for_reading().map_err(target_error)?;
        let r = self.session.core_regs(tid).map_err(target_error)?;
        Ok(GeneralRegs { x: r.x, pc: r.pc })
    }

    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64> {
        let tid = self.thread(hart)?;
        self.session.halt_for_reading().map_err(target_error)?;
        self.session
            .read_register(tid, csr.name())
            .map_err(target_error)
    }

    /// Halted or running; a running machine is polled for a stop it
    /// reported by itself (a breakpoint), and one that exited is an error.
    fn run_state(&mut self) -> Result<RunState> {
        if self.session.state() == RspRunState::Running {
            self.session
                .wait_for_stop(std::time::Duration::ZERO)
                .map_err(target_error)?;
        }
        if let Some(why) = self.session.exited() {
            return Err(TargetError::Disconnected(format!(
                "the machine has exited ({why})"
            )));
        }
        Ok(match self.session.state() {
            RspRunState::Running => RunState::Running,
            RspRunState::Halted => RunState::Halted,
        })
    }

    fn control(&mut self) -> Option<&mut dyn Control> {
        Some(self)
    }

    fn monitor(&mut self) -> Option<&mut dyn Monitor> {
        Some(self)
    }
}

impl Control for QemuTarget {
    fn halt(&mut self) -> Result<()> {
        self.session.halt().map_err(target_error)
    }

    fn resume(&mut self) -> Result<()> {
        self.session.resume().map_err(target_error)
    }

    fn step(&mut self, hart: Hart) -> Result<()> {
        let tid = self.thread(hart)?;
        self.session.step(tid).map(|_| ()).map_err(target_error)
    }

    fn state_at_attach(&self) -> RunState {
        if self.session.was_running() {
            RunState::Running
        } else {
            RunState::Halted
        }
    }

    fn insert_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.session
            .insert_breakpoint(addr, BREAKPOINT_KIND)
            .map_err(target_error)
    }

    fn remove_breakpoint(&mut self, addr: u64) -> Result<()> {
        self.session
            .remove_breakpoint(addr, BREAKPOINT_KIND)
            .map_err(target_error)
    }

    fn wait_for_stop(&mut self, wait: Duration) -> Result<RunState> {
        if self.run_state()? == RunState::Halted {
            return Ok(RunState::Halted);
        }
        // Whatever goes wrong while waiting leaves the session unusable.
        match self.session.wait_for_stop(wait) {
            Ok(Some(_)) => Ok(RunState::Halted),
            Ok(None) => Ok(RunState::Running),
            Err(e) => Err(TargetError::Disconnected(e.to_string())),
        }
    }

    fn resumed_elsewhere(&mut self, wait: Duration) -> Result<bool> {
        self.session.probe_resumed(wait).map_err(target_error)
    }

    fn detach(&mut self) -> Result<()> {
        self.session.close().map_err(target_error)
    }

    /// On a proxy, ask it (nothing reaches QEMU): another client's run is
    /// joined, another client's stop (a gdb `stepi`) is reported.
    fn outside(&mut self, wait: Duration) -> Result<Outside> {
        if !self.session.on_proxy() {
            return Ok(if self.resumed_elsewhere(wait)? {
                self.resume()?;
                Outside::Running
            } else {
                Outside::Nothing
            });
        }
        let (state, missed) = self.session.proxy_stops().map_err(target_error)?;
        if state == RspRunState::Running {
            self.session.join_run().map_err(target_error)?;
            return Ok(Outside::Running);
        }
        Ok(if missed > 0 {
            Outside::Stopped
        } else {
            Outside::Nothing
        })
    }

    fn shared(&self) -> bool {
        self.session.on_proxy()
    }

    fn stopped_hart(&self) -> Option<Hart> {
        self.session.last_stop_thread()?.hart()
    }
}

impl Monitor for QemuTarget {
    /// Run a monitor command; QEMU's `\r\n` line ends come back as `\n`.
    fn monitor(&mut self, command: &str) -> Result<String> {
        self.session.halt_for_reading().map_err(target_error)?;
        let out = self.session.monitor(command).map_err(target_error)?;
        Ok(out.replace("\r\n", "\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From QEMU 7.2 `-machine virt -m 128M` (abridged).
    const MTREE: &str = "FlatView #0\r\n AS \"memory\", root: system\r\n AS \"cpu-memory-0\", root: system\r\n Root memory region: system\r\n  0000000000001000-000000000000ffff (prio 0, rom): riscv_virt_board.mrom\r\n  0000000000100000-0000000000100fff (prio 0, i/o): riscv.sifive.test\r\n  0000000010000000-0000000010000007 (prio 0, i/o): serial\r\n  0000000020000000-0000000021ffffff (prio 0, romd): virt.flash0\r\n  0000000022000000-0000000023ffffff (prio 0, romd): virt.flash1\r\n  0000000080000000-0000000087ffffff (prio 0, ram): riscv_virt_board.ram\r\n\r\nFlatView #1\r\n AS \"I/O\", root: io\r\n Root memory region: io\r\n  0000000000000000-000000000000ffff (prio 0, ram): io\r\n";

    #[test]
    fn memory_map_from_mtree() {
        let r = readable_ranges(MTREE);
        assert_eq!(
            r,
            [
                0x1000..0x10000,
                0x2000_0000..0x2400_0000,
                0x8000_0000..0x8800_0000
            ]
        );
        assert!(covered(&r, 0x8000_0000, 4096));
        assert!(covered(&r, 0x87ff_f000, 4096));
        assert!(!covered(&r, 0x87ff_f001, 4096));
        assert!(!covered(&r, 0x1000_0000, 1));
        assert!(!covered(&r, 0, 8));
        assert!(!covered(&r, u64::MAX - 2, 8));
        assert!(readable_ranges("garbage\nmore").is_empty());
        assert_eq!(main_ram(MTREE), Some(0x8000_0000..0x8800_0000));
        assert_eq!(main_ram("garbage"), None);
    }

    #[test]
    fn unreachable_reads_as_the_one_line_the_issue_asks_for() {
        let e = target_error(RspError::Unreachable {
            addr: "localhost:1234".into(),
            port: 1234,
            why: "connection refused".into(),
        });
        assert_eq!(
            e.to_string(),
            "cannot reach QEMU's gdb stub at localhost:1234: connection refused — is QEMU running with -gdb tcp::1234?"
        );
    }
}
