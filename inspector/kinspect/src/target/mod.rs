//! The one abstraction every command reads the machine through.
//!
//! A [`Target`] reads physical memory, general registers and CSRs per hart.
//! What a backend can do beyond reading is stated in its type through
//! optional capabilities (in the style of gdbstub's IDETs): a live QEMU
//! returns `Some` from [`Target::control`] and [`Target::monitor`]; a
//! snapshot returns `None`, so a command that needs to run the machine
//! knows before it starts.

pub mod elfcore;
pub mod fastram;
pub mod memory;
mod phys;
pub mod qemu;
pub mod snapshot;

use std::fmt;
use std::time::Duration;

/// A hart, numbered from 0 as the kernel's `cpuid()` numbers them (QEMU's
/// gdb thread `p1.(N+1)`).
pub type Hart = usize;

/// The RISC-V general registers x0..x31 and pc of one hart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneralRegs {
    pub x: [u64; 32],
    pub pc: u64,
}

/// The supervisor CSRs (and QEMU's virtual `priv` register) kinspect reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Csr {
    Satp,
    Sstatus,
    Sepc,
    Scause,
    Stval,
    Stvec,
    Sscratch,
    Sie,
    Sip,
    /// The hart's privilege level (0 U, 1 S, 3 M), QEMU's `priv` register.
    Priv,
    /// Where an M-mode trap (xv6's timer interrupt, `timervec`) will
    /// return. Read for backtraces and saved in snapshots; not one of the
    /// supervisor CSRs [`Csr::ALL`] lists.
    Mepc,
}

impl Csr {
    pub const ALL: [Csr; 10] = [
        Csr::Satp,
        Csr::Sstatus,
        Csr::Sepc,
        Csr::Scause,
        Csr::Stval,
        Csr::Stvec,
        Csr::Sscratch,
        Csr::Sie,
        Csr::Sip,
        Csr::Priv,
    ];

    /// The register's name in QEMU's target description XML.
    pub fn name(self) -> &'static str {
        match self {
            Csr::Satp => "satp",
            Csr::Sstatus => "sstatus",
            Csr::Sepc => "sepc",
            Csr::Scause => "scause",
            Csr::Stval => "stval",
            Csr::Stvec => "stvec",
            Csr::Sscratch => "sscratch",
            Csr::Sie => "sie",
            Csr::Sip => "sip",
            Csr::Priv => "priv",
            Csr::Mepc => "mepc",
        }
    }
}

impl fmt::Display for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the guest's harts are executing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Halted,
}

/// Why a target operation failed. Each variant renders as one line a
/// person can act on.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The address to connect to is not one (`--gdb foo`).
    #[error("{0}")]
    BadAddress(String),
    /// Nothing answers at the address, or the connection could not be made.
    #[error("cannot reach {what}: {why}")]
    Unreachable { what: String, why: String },
    /// The peer went away mid-session (QEMU died or closed the socket).
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The peer answered something that is not the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No memory at that physical address (outside RAM, unreadable).
    #[error("cannot read {len} bytes of physical memory at {addr:#x}")]
    Memory { addr: u64, len: usize },
    /// The hart does not exist.
    #[error("no hart {0}")]
    NoHart(Hart),
    /// The backend cannot do this (a snapshot cannot resume, ...).
    #[error("{0}")]
    Unsupported(String),
    /// A time-out waiting for the target.
    #[error("timed out: {0}")]
    Timeout(String),
}

pub type Result<T> = std::result::Result<T, TargetError>;

/// Reading the machine: the part every backend has.
pub trait Target {
    /// One line naming the backend, for headers and errors
    /// ("QEMU gdb stub at localhost:1234", "snapshot crash.kisnap").
    fn describe(&self) -> String;

    /// The harts, in order.
    fn harts(&mut self) -> Result<Vec<Hart>>;

    /// Fill `buf` from physical memory at `pa`. Either all of `buf` is
    /// read or an error is returned.
    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()>;

    /// x0..x31 and pc of one hart.
    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs>;

    /// One CSR of one hart.
    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64>;

    /// Running or halted.
    fn run_state(&mut self) -> Result<RunState>;

    /// Halt, resume and step: `None` for backends that cannot run (snapshots).
    fn control(&mut self) -> Option<&mut dyn Control> {
        None
    }

    /// QEMU's human monitor: `None` where there is none.
    fn monitor(&mut self) -> Option<&mut dyn Monitor> {
        None
    }

    /// Whether `read_phys` of RAM reads host memory directly (the fast
    /// path), so reading all of RAM costs milliseconds, not seconds.
    fn direct_ram(&self) -> bool {
        false
    }

    /// Read RAM while the guest runs, without halting it (`true`), or halt
    /// it for every read as one-shot commands do (`false`, the default).
    /// Only a target with [`direct_ram`](Self::direct_ram) can; the
    /// answer says whether live reads are now on. Live reads of a running
    /// guest can tear, and what is not RAM cannot be read live: callers
    /// check what they read.
    fn set_live(&mut self, _on: bool) -> bool {
        false
    }

    /// Read a little-endian u64 from physical memory.
    fn read_phys_u64(&mut self, pa: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_phys(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Running the machine: live backends only.
pub trait Control {
    /// Stop every hart; a no-op when already halted.
    fn halt(&mut self) -> Result<()>;
    /// Let every hart run.
    fn resume(&mut self) -> Result<()>;
    /// Execute one instruction on one hart.
    fn step(&mut self, hart: Hart) -> Result<()>;
    /// How this connection found the guest. Attaching halts it (QEMU
    /// does), so a guest that ran before shows `Running` here and
    /// `Halted` in [`Target::run_state`].
    fn state_at_attach(&self) -> RunState;
    /// Insert a software breakpoint at a kernel address (halted).
    fn insert_breakpoint(&mut self, addr: u64) -> Result<()>;
    /// Remove a breakpoint [`insert_breakpoint`](Self::insert_breakpoint)
    /// set (halted).
    fn remove_breakpoint(&mut self, addr: u64) -> Result<()>;
    /// While running: wait up to `wait` for the guest to stop by itself
    /// (a breakpoint, a `stop` in QEMU's monitor). `Halted` if it did, or
    /// already was.
    fn wait_for_stop(&mut self, wait: Duration) -> Result<RunState>;
    /// While halted: did something outside this connection (QEMU's
    /// monitor `cont`) let the guest run? If so it is halted again when
    /// this returns true. `wait` bounds the wait for QEMU's answer.
    fn resumed_elsewhere(&mut self, wait: Duration) -> Result<bool>;
    /// Let go of the machine as it is now (running or halted), removing
    /// the breakpoints this connection set. Later calls fail.
    fn detach(&mut self) -> Result<()>;
    /// While halted: what happened outside this connection since the last
    /// look. By default [`resumed_elsewhere`](Self::resumed_elsewhere),
    /// and a guest found running is let run on (as after `resume`).
    fn outside(&mut self, wait: Duration) -> Result<Outside> {
        if self.resumed_elsewhere(wait)? {
            self.resume()?;
            Ok(Outside::Running)
        } else {
            Ok(Outside::Nothing)
        }
    }
    /// The hart the last stop named (a breakpoint, a step by another
    /// client of a proxy), when the backend knows.
    fn stopped_hart(&self) -> Option<Hart> {
        None
    }
    /// Whether other debuggers share the machine (`kinspect proxy`): then
    /// leaving does not resume a machine they may have halted.
    fn shared(&self) -> bool {
        false
    }
}

/// What happened to a halted machine outside this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outside {
    /// Nothing: it is halted as this connection left it.
    Nothing,
    /// Something let it run (QEMU's monitor `cont`, another client of a
    /// proxy): this connection now waits for its stop, as after `resume`.
    Running,
    /// It ran and stopped again (another client of a proxy stepped it):
    /// halted, but not where it was.
    Stopped,
}

/// A QEMU monitor command (`info mem`, `gva2gpa`), its output as text.
pub trait Monitor {
    fn monitor(&mut self, command: &str) -> Result<String>;
}
