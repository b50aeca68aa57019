//! `kinspect serve FILE`: a snapshot (or QEMU ELF core) as a GDB remote
//! protocol server, built on the `gdbstub` crate, so stock `gdb-multiarch`
//! can `target remote` a crash that happened yesterday.
//!
//! Where it sits: gdb talks to [`SnapshotServer`], which implements
//! gdbstub's `Target` over a [`SnapshotTarget`] (the same backend
//! `--snapshot` uses). Harts are threads (tid = hart + 1, as QEMU numbers
//! them). Memory reads are *virtual* through the selected hart's saved
//! satp, walked by kinspect's own Sv39 code over the saved physical pages,
//! or physical after `monitor phys on`. `monitor <command>` runs a
//! kinspect view (`monitor maps --hart 0`, `monitor vmprint`, `monitor
//! regs --hart 1`, and every other read-only command) by parsing it into
//! the same [`Command`] the command line has and running it with the
//! invocation's [`Session`] on the snapshot. A snapshot cannot run: there is no resume, step or
//! breakpoint support, and gdb says so when asked to continue.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::outputln;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::MultiThreadBase;
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::{Target as GdbTarget, TargetError, TargetResult};
use gdbstub_arch::riscv::reg::RiscvCoreRegs;
use gdbstub_arch::riscv::Riscv64;
use kinspect_sv39::{translate, Satp, SatpMode, StepOutcome, VirtAddr};

use clap::Parser;

use crate::commands::{Command, Needs};
use crate::error::{Error, Result};
use crate::session::Session;
use crate::target::snapshot::SnapshotTarget;
use crate::target::{Csr, Hart, Target};

/// The snapshot as gdbstub's target.
pub struct SnapshotServer {
    target: SnapshotTarget,
    /// The `serve` invocation's settings, which monitor commands run with.
    session: Session,
    /// `monitor phys on`: addresses are physical.
    phys: bool,
}

/// A `monitor` line: one kinspect command, and `--json` if wanted.
#[derive(Debug, Parser)]
#[command(name = "monitor", no_binary_name = true)]
struct MonitorLine {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

fn tid(h: Hart) -> Option<Tid> {
    NonZeroUsize::new(h + 1)
}

fn hart(t: Tid) -> Hart {
    t.get() - 1
}

impl SnapshotServer {
    pub fn new(target: SnapshotTarget, session: Session) -> SnapshotServer {
        SnapshotServer {
            target,
            session,
            phys: false,
        }
    }

    /// The physical address `va` has for `hart` (its satp), or `None`.
    fn phys_of(&mut self, hart: Hart, va: u64) -> Option<u64> {
        if self.phys {
            return Some(va);
        }
        let satp = self.target.csr(hart, Csr::Satp).ok()?;
        let s = Satp(satp);
        match s.mode() {
            SatpMode::Bare => Some(va),
            SatpMode::Sv39 => {
                let ram = self.session.ram;
                let mem: &mut dyn Target = &mut self.target;
                let t = translate(mem, s.root(), VirtAddr(va), ram).ok()?;
                match t.outcome {
                    // The gdb protocol speaks raw numbers: the edge.
                    StepOutcome::Mapped { pa, .. } => Some(pa.0),
                    StepOutcome::Fault { .. } => None,
                }
            }
            _ => None,
        }
    }

    /// Run one kinspect command line on the snapshot; its output and
    /// warnings as text.
    pub fn run_command(&mut self, line: &str) -> String {
        let mut out = Vec::new();
        let mut warn = Vec::new();
        match MonitorLine::try_parse_from(line.split_whitespace()) {
            Ok(m)
                if m.command.command().needs() == Needs::Itself
                    || !m.command.command().read_only() =>
            {
                return "kinspect: not from inside gdb: run it from a shell\n".into();
            }
            Ok(m) => {
                let mut session = self.session.clone();
                session.json |= m.json;
                let r = crate::commands::run(
                    m.command.command(),
                    &session,
                    Some(&mut self.target),
                    &mut out,
                    &mut warn,
                );
                if let Err(e) = r {
                    let _ = writeln!(warn, "kinspect: {e}");
                }
            }
            Err(e) => {
                let text = e.render().to_string();
                out.extend_from_slice(text.as_bytes());
            }
        }
        out.extend_from_slice(&warn);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl GdbTarget for SnapshotServer {
    type Arch = Riscv64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    /// gdb may plan breakpoints as memory writes; they fail (a snapshot is
    /// read-only), which is the honest answer for a machine that cannot run.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl MultiThreadBase for SnapshotServer {
    fn read_registers(&mut self, regs: &mut RiscvCoreRegs<u64>, t: Tid) -> TargetResult<(), Self> {
        let r = self
            .target
            .regs(hart(t))
            .map_err(|_| TargetError::NonFatal)?;
        regs.x = r.x;
        regs.pc = r.pc;
        Ok(())
    }

    fn write_registers(&mut self, _: &RiscvCoreRegs<u64>, _: Tid) -> TargetResult<(), Self> {
        // A snapshot is a record: it is not changed.
        Err(TargetError::NonFatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], t: Tid) -> TargetResult<usize, Self> {
        // Page by page: each page translates on its own. Stop at the first
        // byte that cannot be read and return how many could.
        let h = hart(t);
        let mut done = 0usize;
        while done < data.len() {
            let va = start.wrapping_add(done as u64);
            let n = ((4096 - (va & 0xfff)) as usize).min(data.len() - done);
            let Some(pa) = self.phys_of(h, va) else { break };
            if self
                .target
                .read_phys(pa, &mut data[done..done + n])
                .is_err()
            {
                break;
            }
            done += n;
        }
        if done == 0 && !data.is_empty() {
            return Err(TargetError::NonFatal);
        }
        Ok(done)
    }

    fn write_addrs(&mut self, _: u64, _: &[u8], _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    fn list_active_threads(
        &mut self,
        f: &mut dyn FnMut(Tid),
    ) -> std::result::Result<(), Self::Error> {
        for h in self.target.harts().map_err(|e| e.to_string())? {
            if let Some(t) = tid(h) {
                f(t);
            }
        }
        Ok(())
    }
}

impl MonitorCmd for SnapshotServer {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> std::result::Result<(), Self::Error> {
        let line = String::from_utf8_lossy(cmd).trim().to_string();
        match line.as_str() {
            "" | "help" => {
                outputln!(out, "kinspect serving {}", self.target.describe());
                outputln!(out, "  monitor phys on|off      addresses are physical / virtual through the thread's satp (now {})", if self.phys { "physical" } else { "virtual" });
                outputln!(
                    out,
                    "  monitor regs --hart N    and every read-only kinspect command:"
                );
                outputln!(out, "  monitor maps --hart N | vmprint [--va] | translate VA | satp | procs | check");
                for n in &self.target.meta().notes {
                    outputln!(out, "note: {}", n);
                }
            }
            "phys on" => {
                self.phys = true;
                outputln!(out, "addresses are physical");
            }
            "phys off" => {
                self.phys = false;
                outputln!(
                    out,
                    "addresses are virtual, through the selected hart's satp"
                );
            }
            _ => {
                let text = self.run_command(&line);
                for l in text.lines() {
                    outputln!(out, "{}", l);
                }
            }
        }
        Ok(())
    }
}

/// The event loop of a machine that never runs: only the client's bytes
/// arrive (a Ctrl-C is answered with SIGINT at once).
struct Frozen;

impl BlockingEventLoop for Frozen {
    type Target = SnapshotServer;
    type Connection = TcpStream;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        _: &mut SnapshotServer,
        conn: &mut TcpStream,
    ) -> std::result::Result<Event<Self::StopReason>, WaitForStopReasonError<String, std::io::Error>>
    {
        let b = conn.read().map_err(WaitForStopReasonError::Connection)?;
        Ok(Event::IncomingData(b))
    }

    fn on_interrupt(
        _: &mut SnapshotServer,
    ) -> std::result::Result<Option<Self::StopReason>, String> {
        Ok(Some(MultiThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Serve one gdb client on `stream` until it detaches or disconnects.
pub fn serve_client(
    server: &mut SnapshotServer,
    stream: TcpStream,
) -> std::result::Result<(), String> {
    let stub = GdbStub::new(stream);
    match stub.run_blocking::<Frozen>(server) {
        Ok(DisconnectReason::Disconnect) | Ok(DisconnectReason::Kill) => Ok(()),
        Ok(other) => Err(format!("gdb session ended: {other:?}")),
        Err(e) => Err(format!("gdb session failed: {e}")),
    }
}

/// `kinspect serve FILE [--port N]`: listen on 127.0.0.1 and serve gdb
/// clients one after another until killed.
pub fn serve(
    session: &Session,
    target: SnapshotTarget,
    port: u16,
    out: &mut dyn std::io::Write,
    warn: &mut dyn std::io::Write,
) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| Error::BadInput(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Failed(format!("listening socket: {e}")))?
        .port();
    writeln!(
        out,
        "kinspect: serving {} to gdb on 127.0.0.1:{port} (gdb-multiarch -ex 'target remote 127.0.0.1:{port}')",
        target.describe()
    )?;
    out.flush()?;
    // Monitor commands see the kernel the way this command line does.
    let mut server = SnapshotServer::new(target, session.clone());
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = serve_client(&mut server, stream) {
                    writeln!(warn, "kinspect: {e}")?;
                }
            }
            Err(e) => writeln!(warn, "kinspect: accepting a gdb client: {e}")?,
        }
    }
    Ok(())
}
