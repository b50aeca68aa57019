//! The worker: the one thread that owns the target.
//!
//! The UI thread never blocks on the gdb stub. It sends [`Request`]s over
//! a channel; the worker runs them against its [`Backend`] and sends
//! [`Reply`]s back. While the guest runs, the worker polls for a stop (a
//! breakpoint, QEMU dying) between requests. A lost connection becomes
//! [`Reply::Lost`], and [`Request::Reconnect`] tries again.
//!
//! [`Worker::handle`] is plain synchronous code, so rendering tests drive
//! it directly over a `MemoryTarget` without threads.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{
    page_size, translate, walk, PhysRead, PteKind, Ram, ReadError, StepOutcome, Walk, WalkLimits,
};
use kinspect_symbols::Symbols;

use super::snapshot::{is_lost, read_snapshot, KernelMem, Snapshot};
use crate::commands::TargetMem;
use crate::target::fastram::{FastPath, FastQemu};
use crate::target::memory::MemoryTarget;
use crate::target::qemu::QemuTarget;
use crate::target::snapshot::SnapshotTarget;
use crate::target::{Control as _, Hart, RunState, Target, TargetError};

/// How to leave the guest on quit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    Running,
    Halted,
    /// Kill QEMU (only for `kinspect launch`, which started it).
    Kill,
}

/// What the UI asks of the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read a snapshot (halting first if `halt`).
    Snapshot,
    Halt,
    Resume,
    Step(Hart),
    /// While running: halt, read a snapshot, resume.
    Sample,
    /// Walk the page table at this root.
    Walk(u64),
    /// Read kernel virtual memory (translated through `root` when not
    /// direct-mapped).
    ReadMem {
        addr: u64,
        len: usize,
        root: Option<u64>,
    },
    /// Evaluate an expression and show memory there.
    Goto {
        expr: String,
        root: Option<u64>,
    },
    /// Evaluate an expression and translate it through `root`.
    Translate {
        expr: String,
        root: u64,
        what: String,
    },
    /// The vmprint tree of a root.
    Vmprint {
        root: u64,
        what: String,
    },
    /// A breakpoint at a symbol expression.
    Break(String),
    /// Remove every breakpoint.
    Delete,
    /// The frame-pointer chain of a process that is not running, from the
    /// registers `swtch` saved in its `context`.
    ProcBacktrace(usize),
    Reconnect,
    Finish(Leave),
}

/// What comes back.
#[derive(Clone, Debug)]
pub enum Reply {
    Snapshot(Box<Snapshot>),
    /// The guest runs (true) or halted (false), and why.
    Running(bool),
    Walk(u64, Result<Arc<Walk>, String>),
    Mem {
        addr: u64,
        label: String,
        /// One entry per byte; `None` where unreadable.
        bytes: Vec<Option<u8>>,
        note: Option<String>,
    },
    /// Text for a pop-up window.
    Popup {
        title: String,
        lines: Vec<String>,
    },
    /// A process's chain from its saved context (or why there is none).
    ProcBacktrace(usize, Result<super::snapshot::Backtrace, String>),
    /// Look at this hart (the one that hit a breakpoint).
    SelectHart(Hart),
    /// One line for the message bar.
    Message(String),
    Error(String),
    /// Progress of a long operation.
    Progress(String),
    /// The connection is gone.
    Lost(String),
    /// A new connection replaced the lost one (a snapshot follows).
    Reconnected,
    /// The session ended (the UI may exit).
    Finished(Result<(), String>),
}

/// A target the worker can run, with what the [`Target`] trait does not
/// cover: breakpoints, waiting for a stop, leaving, reconnecting.
pub trait Backend: Send {
    fn target(&mut self) -> Result<&mut dyn Target, TargetError>;
    /// Was the guest running when we attached?
    fn was_running(&self) -> bool {
        false
    }
    /// Insert a software breakpoint at `addr` (halted).
    fn breakpoint(&mut self, _addr: u64) -> Result<(), String> {
        Err("this target cannot run, so it has no breakpoints".into())
    }
    /// The addresses of the breakpoints this session set.
    fn breakpoints(&self) -> Vec<u64> {
        Vec::new()
    }
    /// Remove one breakpoint (halted); it stays in [`breakpoints`](Self::breakpoints).
    fn lift_breakpoint(&mut self, _addr: u64) -> Result<(), String> {
        Err("this target cannot run, so it has no breakpoints".into())
    }
    /// Remove every breakpoint this session set; how many there were.
    fn clear_breakpoints(&mut self) -> Result<usize, String> {
        Ok(0)
    }
    /// While running: wait up to `wait` for the guest to stop by itself.
    fn poll_stop(&mut self, _wait: Duration) -> Result<bool, TargetError> {
        Ok(false)
    }
    /// While halted: did something else (QEMU's monitor `cont`) let the
    /// guest run? If so it is halted again when this returns true.
    fn poll_resumed(&mut self) -> Result<bool, TargetError> {
        Ok(false)
    }
    fn reconnect(&mut self) -> Result<(), TargetError> {
        Err(TargetError::Unsupported(
            "this target cannot reconnect".into(),
        ))
    }
    /// Leave the guest running or halted and let go of it.
    fn finish(&mut self, leave: Leave) -> Result<(), String>;
}

/// The live backend: QEMU's gdb stub.
pub struct QemuBackend {
    addr: String,
    /// Memory read directly when QEMU is on this host (docs/fast-path.md).
    target: Option<FastQemu>,
    fast: FastPath,
    /// Breakpoints we set (the session removes them on detach too).
    breakpoints: Vec<u64>,
}

impl QemuBackend {
    pub fn connect(addr: &str) -> Result<QemuBackend, TargetError> {
        QemuBackend::connect_with(addr, FastPath::Auto)
    }

    /// [`QemuBackend::connect`], saying whether to try the RAM fast path.
    pub fn connect_with(addr: &str, fast: FastPath) -> Result<QemuBackend, TargetError> {
        let target = FastQemu::new(QemuTarget::connect(addr)?, fast);
        Ok(QemuBackend {
            fast,
            addr: addr.to_string(),
            target: Some(target),
            breakpoints: Vec::new(),
        })
    }

    fn qemu(&mut self) -> Result<&mut QemuTarget, TargetError> {
        self.fast().map(FastQemu::stub)
    }

    fn fast(&mut self) -> Result<&mut FastQemu, TargetError> {
        self.target
            .as_mut()
            .ok_or_else(|| TargetError::Disconnected("not connected (R reconnects)".into()))
    }
}

impl Backend for QemuBackend {
    fn target(&mut self) -> Result<&mut dyn Target, TargetError> {
        Ok(self.fast()?)
    }

    fn was_running(&self) -> bool {
        self.target
            .as_ref()
            .is_some_and(|t| t.stub_ref().was_running())
    }

    fn breakpoint(&mut self, addr: u64) -> Result<(), String> {
        let q = self.qemu().map_err(|e| e.to_string())?;
        q.session()
            .insert_breakpoint(addr, 4)
            .map_err(|e| e.to_string())?;
        if !self.breakpoints.contains(&addr) {
            self.breakpoints.push(addr);
        }
        Ok(())
    }

    fn breakpoints(&self) -> Vec<u64> {
        self.breakpoints.clone()
    }

    fn lift_breakpoint(&mut self, addr: u64) -> Result<(), String> {
        let q = self.qemu().map_err(|e| e.to_string())?;
        q.session()
            .remove_breakpoint(addr, 4)
            .map_err(|e| e.to_string())
    }

    fn clear_breakpoints(&mut self) -> Result<usize, String> {
        let bps = std::mem::take(&mut self.breakpoints);
        let q = self.qemu().map_err(|e| e.to_string())?;
        for a in &bps {
            q.session()
                .remove_breakpoint(*a, 4)
                .map_err(|e| e.to_string())?;
        }
        Ok(bps.len())
    }

    fn poll_stop(&mut self, wait: Duration) -> Result<bool, TargetError> {
        let q = self.qemu()?;
        if q.run_state()? == RunState::Halted {
            return Ok(true);
        }
        match q.session().wait_for_stop(wait) {
            Ok(stop) => Ok(stop.is_some()),
            Err(e) => Err(TargetError::Disconnected(e.to_string())),
        }
    }

    fn poll_resumed(&mut self) -> Result<bool, TargetError> {
        // Long enough for QEMU to stop the VM and answer on a busy
        // machine; a later answer is found by the next poll.
        self.qemu()?.resumed_elsewhere(Duration::from_millis(50))
    }

    fn reconnect(&mut self) -> Result<(), TargetError> {
        // Let go of the old session quietly; it is broken anyway.
        self.target = None;
        self.breakpoints.clear();
        self.target = Some(FastQemu::new(QemuTarget::connect(&self.addr)?, self.fast));
        Ok(())
    }

    fn finish(&mut self, leave: Leave) -> Result<(), String> {
        let Some(mut t) = self.target.take() else {
            return Ok(());
        };
        let q = t.stub();
        let r = match leave {
            Leave::Halted => q.halt(),
            Leave::Running | Leave::Kill => match q.run_state() {
                Ok(RunState::Halted) => q.resume(),
                Ok(RunState::Running) => Ok(()),
                Err(e) => Err(e),
            },
        };
        let done = t.finish();
        r.and(done).map_err(|e| e.to_string())
    }
}

/// A crafted machine: it reads but never runs.
pub struct MemoryBackend(pub MemoryTarget);

impl Backend for MemoryBackend {
    fn target(&mut self) -> Result<&mut dyn Target, TargetError> {
        Ok(&mut self.0)
    }
    fn finish(&mut self, _leave: Leave) -> Result<(), String> {
        Ok(())
    }
}

/// A saved machine (`kinspect --snapshot FILE attach`): it reads but never
/// runs, so continue, halt, step and breakpoints say so instead of acting.
pub struct SnapshotBackend(pub SnapshotTarget);

impl Backend for SnapshotBackend {
    fn target(&mut self) -> Result<&mut dyn Target, TargetError> {
        Ok(&mut self.0)
    }
    fn finish(&mut self, _leave: Leave) -> Result<(), String> {
        Ok(())
    }
}

/// Reports how many table pages a walk has read, every few pages.
struct Counting<'a, 'b> {
    inner: &'a mut TargetMem<'b>,
    pages: usize,
    progress: Option<&'a Sender<Reply>>,
    root: u64,
}

impl PhysRead for Counting<'_, '_> {
    fn read(&mut self, pa: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.pages += 1;
        if self.pages % 16 == 0 {
            if let Some(tx) = self.progress {
                let _ = tx.send(Reply::Progress(format!(
                    "walking the page table at {:#x}: {} table pages read",
                    self.root, self.pages
                )));
            }
        }
        self.inner.read(pa, buf)
    }
}

/// The worker's state: the backend, the symbols, what it believes about
/// the guest.
pub struct Worker {
    pub backend: Box<dyn Backend>,
    pub symbols: Option<Arc<Symbols>>,
    /// `--profile`/`--kpt-field`, as the CLI resolved them.
    pub profile: crate::model::Profile,
    pub ram: Ram,
    running: bool,
    lost: bool,
    /// Where progress goes while a request runs (the thread's reply channel).
    progress: Option<Sender<Reply>>,
}

fn size_name(size: u64) -> &'static str {
    match size {
        0x1000 => "4 KiB",
        0x20_0000 => "2 MiB",
        0x4000_0000 => "1 GiB",
        _ => "?",
    }
}

impl Worker {
    pub fn new(
        backend: Box<dyn Backend>,
        symbols: Option<Arc<Symbols>>,
        profile: crate::model::Profile,
        ram: Ram,
    ) -> Worker {
        Worker {
            backend,
            symbols,
            profile,
            ram,
            running: false,
            lost: false,
            progress: None,
        }
    }

    /// Whether the guest was running when we last looked.
    pub fn running(&self) -> bool {
        self.running
    }

    /// A target error as replies: lost connections are special.
    fn fail(&mut self, what: &str, e: TargetError) -> Vec<Reply> {
        if is_lost(&e) {
            self.lost = true;
            vec![Reply::Lost(e.to_string())]
        } else {
            vec![Reply::Error(format!("{what}: {e}"))]
        }
    }

    fn snapshot(&mut self) -> Vec<Reply> {
        let syms = self.symbols.clone();
        let ram = self.ram;
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading the machine", e),
        };
        match read_snapshot(t, syms.as_deref(), &self.profile, ram) {
            Ok(s) => vec![Reply::Snapshot(Box::new(s))],
            Err(e) => self.fail("reading the machine", e),
        }
    }

    fn control(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut dyn Target) -> Result<(), TargetError>,
    ) -> Vec<Reply> {
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail(what, e),
        };
        if t.control().is_none() {
            return vec![Reply::Error(format!(
                "{what}: {} cannot run (it is not a live machine)",
                t.describe()
            ))];
        }
        match op(t) {
            Ok(()) => Vec::new(),
            Err(e) => self.fail(what, e),
        }
    }

    /// The first look: QEMU halts the guest when a debugger attaches;
    /// read a snapshot, then let the guest go on if it was running.
    pub fn attach(&mut self) -> Vec<Reply> {
        let was = self.backend.was_running();
        let mut out = self.snapshot();
        if was && !self.lost {
            let r = self.control("resume after attaching", |t| match t.control() {
                Some(c) => c.resume(),
                None => Ok(()),
            });
            if r.is_empty() {
                self.running = true;
            }
            out.extend(r);
        }
        out.push(Reply::Running(self.running));
        out
    }

    /// Run one request; the replies in order.
    pub fn handle(&mut self, req: Request) -> Vec<Reply> {
        if self.lost && !matches!(req, Request::Reconnect | Request::Finish(_)) {
            return vec![Reply::Lost(
                "the connection is lost; press R to reconnect".into(),
            )];
        }
        let reads = matches!(
            req,
            Request::Snapshot
                | Request::Walk(_)
                | Request::ReadMem { .. }
                | Request::Goto { .. }
                | Request::Translate { .. }
                | Request::Vmprint { .. }
                | Request::ProcBacktrace(_)
        );
        if reads && self.running {
            // The target halts to be read; put the guest back running after.
            return self.briefly_halted(req);
        }
        self.handle_halted(req)
    }

    /// Halt, run a reading request, resume.
    fn briefly_halted(&mut self, req: Request) -> Vec<Reply> {
        let mut out = self.control("halt to read", |t| match t.control() {
            Some(c) => c.halt(),
            None => Ok(()),
        });
        if !out.is_empty() {
            return out;
        }
        out.extend(self.handle_halted(req));
        if !self.lost {
            out.extend(self.control("resume after reading", |t| match t.control() {
                Some(c) => c.resume(),
                None => Ok(()),
            }));
        }
        out
    }

    fn handle_halted(&mut self, req: Request) -> Vec<Reply> {
        match req {
            Request::Snapshot => self.snapshot(),
            Request::Halt => {
                let mut out = self.control("halt", |t| match t.control() {
                    Some(c) => c.halt(),
                    None => Ok(()),
                });
                if out.is_empty() {
                    self.running = false;
                    out.push(Reply::Running(false));
                    out.extend(self.snapshot());
                }
                out
            }
            Request::Resume => {
                let mut out = self.step_over_breakpoints();
                if !out.is_empty() {
                    return out;
                }
                // A stop reply still on its way (a late answer to the last
                // probe) would be taken for a stop after this continue:
                // collect it first. The guest is halted either way.
                if let Err(e) = self.backend.poll_resumed() {
                    return self.fail("continue", e);
                }
                out = self.control("continue", |t| match t.control() {
                    Some(c) => c.resume(),
                    None => Ok(()),
                });
                if out.is_empty() {
                    self.running = true;
                    out.push(Reply::Running(true));
                }
                out
            }
            Request::Step(h) => {
                let mut out = self.control("step", |t| match t.control() {
                    Some(c) => c.step(h),
                    None => Ok(()),
                });
                if out.is_empty() {
                    self.running = false;
                    out.push(Reply::Message(format!(
                        "stepped one instruction on hart {h}"
                    )));
                    out.extend(self.snapshot());
                }
                out
            }
            Request::Sample => {
                let was = self.running;
                let mut out = self.control("sample", |t| match t.control() {
                    Some(c) => c.halt(),
                    None => Ok(()),
                });
                if !out.is_empty() {
                    return out;
                }
                out.extend(self.snapshot());
                if was {
                    let r = self.control("resume after sampling", |t| match t.control() {
                        Some(c) => c.resume(),
                        None => Ok(()),
                    });
                    out.extend(r);
                }
                out
            }
            Request::Walk(root) => self.walk(root),
            Request::ReadMem { addr, len, root } => self.read_mem(addr, len, root, String::new()),
            Request::Goto { expr, root } => match self.eval(&expr, root) {
                Ok(addr) => self.read_mem(addr, 256, root, expr),
                Err(e) => e,
            },
            Request::Translate { expr, root, what } => self.translate(&expr, root, &what),
            Request::Vmprint { root, what } => match self.walk_inner(root) {
                Ok(w) => {
                    let mut lines = vmprint::lines(&w, Label::Index);
                    lines.extend(w.findings.iter().map(|f| format!("warning: {f}")));
                    vec![Reply::Popup {
                        title: format!("vmprint: {what}"),
                        lines,
                    }]
                }
                Err(e) => e,
            },
            Request::Break(expr) => self.breakpoint(&expr),
            Request::ProcBacktrace(slot) => self.proc_backtrace(slot),
            Request::Delete => {
                let was = self.running;
                let mut out = Vec::new();
                if was {
                    out.extend(
                        self.control("halt to remove breakpoints", |t| match t.control() {
                            Some(c) => c.halt(),
                            None => Ok(()),
                        }),
                    );
                    if !out.is_empty() {
                        return out;
                    }
                }
                match self.backend.clear_breakpoints() {
                    Ok(n) => out.push(Reply::Message(format!(
                        "{} removed",
                        crate::words::count(n, "breakpoint", "breakpoints")
                    ))),
                    Err(e) => out.push(Reply::Error(format!("delete: {e}"))),
                }
                if was {
                    out.extend(self.control("resume", |t| match t.control() {
                        Some(c) => c.resume(),
                        None => Ok(()),
                    }));
                }
                out
            }
            Request::Reconnect => match self.backend.reconnect() {
                Ok(()) => {
                    self.lost = false;
                    self.running = false;
                    // As on the first attach: read the machine, then let
                    // the guest go on if it was running when we came.
                    let mut out = vec![Reply::Reconnected];
                    out.extend(self.attach());
                    if !self.lost {
                        out.push(Reply::Message(
                            if self.running {
                                "reconnected; the guest runs, as it did"
                            } else {
                                "reconnected; the guest is halted, as it was"
                            }
                            .into(),
                        ));
                    }
                    out
                }
                Err(e) => vec![Reply::Lost(format!("reconnecting: {e}"))],
            },
            Request::Finish(leave) => vec![Reply::Finished(self.backend.finish(leave))],
        }
    }

    fn walk_inner(&mut self, root: u64) -> Result<Arc<Walk>, Vec<Reply>> {
        let limits = WalkLimits {
            ram: self.ram,
            ..WalkLimits::default()
        };
        let progress = self.progress.clone();
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return Err(self.fail("walking", e)),
        };
        let mut mem = TargetMem {
            target: t,
            fatal: None,
        };
        let r = {
            let mut counting = Counting {
                inner: &mut mem,
                pages: 0,
                progress: progress.as_ref(),
                root,
            };
            walk(&mut counting, root, limits)
        };
        match r {
            Ok(w) => Ok(Arc::new(w)),
            Err(e) => match mem.fatal.take() {
                Some(t) => Err(self.fail("walking", t)),
                None => Err(vec![Reply::Walk(root, Err(e.to_string()))]),
            },
        }
    }

    fn walk(&mut self, root: u64) -> Vec<Reply> {
        match self.walk_inner(root) {
            Ok(w) => vec![Reply::Walk(root, Ok(w))],
            Err(e) => e,
        }
    }

    /// Evaluate an expression to an address (`proc[3].kstack`, `etext`,
    /// `0x80000000`).
    fn eval(&mut self, expr: &str, root: Option<u64>) -> Result<u64, Vec<Reply>> {
        if let Ok(v) = crate::cli::parse_u64(expr) {
            return Ok(v);
        }
        let Some(syms) = self.symbols.clone() else {
            return Err(vec![Reply::Error(format!(
                "`{expr}`: no kernel ELF to look symbols up in (give --elf)"
            ))]);
        };
        let ram = self.ram;
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return Err(self.fail("evaluating", e)),
        };
        let mut mem = KernelMem {
            target: t,
            root,
            ram,
            fatal: None,
        };
        let r = syms.eval_address(expr, &mut mem);
        if let Some(f) = mem.fatal.take() {
            return Err(self.fail("evaluating", f));
        }
        r.map_err(|e| vec![Reply::Error(format!("`{expr}`: {e}"))])
    }

    fn read_mem(&mut self, addr: u64, len: usize, root: Option<u64>, label: String) -> Vec<Reply> {
        let ram = self.ram;
        let len = len.min(4096);
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading memory", e),
        };
        let mut mem = KernelMem {
            target: t,
            root,
            ram,
            fatal: None,
        };
        let mut bytes = vec![None; len];
        let mut note = None;
        // Page by page: an unmapped page shows as `??`, the rest still reads.
        let mut off = 0usize;
        while off < len {
            let va = addr.wrapping_add(off as u64);
            let n = ((4096 - va % 4096) as usize).min(len - off);
            let mut buf = vec![0u8; n];
            match kinspect_symbols::Memory::read(&mut mem, va, &mut buf) {
                Ok(()) => {
                    for (i, b) in buf.into_iter().enumerate() {
                        bytes[off + i] = Some(b);
                    }
                }
                Err(e) => {
                    if let Some(f) = mem.fatal.take() {
                        return self.fail("reading memory", f);
                    }
                    note.get_or_insert(e.why);
                }
            }
            off += n;
        }
        vec![Reply::Mem {
            addr,
            label,
            bytes,
            note,
        }]
    }

    fn translate(&mut self, expr: &str, root: u64, what: &str) -> Vec<Reply> {
        let va = match self.eval(expr, None) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let ram = self.ram;
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail("translating", e),
        };
        let mut mem = TargetMem {
            target: t,
            fatal: None,
        };
        let r = translate(&mut mem, root, va, ram);
        if let Some(f) = mem.fatal.take() {
            return self.fail("translating", f);
        }
        let t = match r {
            Ok(t) => t,
            Err(e) => return vec![Reply::Error(format!("translating {va:#x}: {e}"))],
        };
        let mut lines = vec![
            format!("translate {expr} = {va:#018x}"),
            format!("through {what} (root {root:#x})"),
            format!(
                "VPN[2] = {}  VPN[1] = {}  VPN[0] = {}  offset = {:#05x}",
                kinspect_sv39::va::vpn(va, 2),
                kinspect_sv39::va::vpn(va, 1),
                kinspect_sv39::va::vpn(va, 0),
                va & 0xfff
            ),
        ];
        for s in &t.steps {
            let head = format!("level {}: table {:#x} [{}]", s.level, s.table, s.index);
            let Some(pte) = s.pte else {
                lines.push(format!("{head}: not read"));
                continue;
            };
            let what = match s.kind {
                Some(PteKind::Pointer) => format!(
                    "-> level-{} table {:#x}",
                    s.level.saturating_sub(1),
                    pte.pa()
                ),
                Some(PteKind::Leaf) => format!(
                    "leaf, {} page at {:#x}",
                    size_name(page_size(s.level)),
                    pte.pa()
                ),
                _ => "invalid".into(),
            };
            lines.push(format!(
                "{head} pte {:#018x} {} {what}",
                pte.0,
                kinspect_sv39::pte::flag_names(pte)
            ));
        }
        let msg = match &t.outcome {
            StepOutcome::Mapped {
                pa, page_size, pte, ..
            } => format!(
                "{expr} = {va:#x} -> {pa:#x}  ({} page, {})",
                size_name(*page_size),
                pte.attr_letters()
            ),
            StepOutcome::Fault { level, reason } => {
                format!("{expr} = {va:#x}: page fault at level {level}: {reason}")
            }
        };
        lines.push(format!("=> {msg}"));
        vec![
            Reply::Message(msg),
            Reply::Popup {
                title: format!("translate {expr}"),
                lines,
            },
        ]
    }

    fn proc_backtrace(&mut self, slot: usize) -> Vec<Reply> {
        let Some(syms) = self.symbols.clone() else {
            return vec![Reply::ProcBacktrace(
                slot,
                Err("no kernel ELF to find the process's context".into()),
            )];
        };
        let ram = self.ram;
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading a saved context", e),
        };
        let r = super::snapshot::saved_context_backtrace(t, &syms, ram, slot);
        match r {
            Ok(bt) => vec![Reply::ProcBacktrace(slot, bt)],
            Err(e) => self.fail("reading a saved context", e),
        }
    }

    fn breakpoint(&mut self, expr: &str) -> Vec<Reply> {
        let addr = match self.eval(expr, None) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let was = self.running;
        let mut out = Vec::new();
        if was {
            out.extend(
                self.control("halt to set a breakpoint", |t| match t.control() {
                    Some(c) => c.halt(),
                    None => Ok(()),
                }),
            );
            if !out.is_empty() {
                return out;
            }
        }
        match self.backend.breakpoint(addr) {
            Ok(()) => out.push(Reply::Message(format!("breakpoint at {expr} ({addr:#x})"))),
            Err(e) => out.push(Reply::Error(format!("break {expr}: {e}"))),
        }
        if was {
            out.extend(self.control("resume", |t| match t.control() {
                Some(c) => c.resume(),
                None => Ok(()),
            }));
        }
        out
    }

    /// Before continuing: a hart stopped at one of our breakpoints would
    /// hit it again at once, so step each such hart over it (breakpoint
    /// out, one instruction, breakpoint back in). Nothing when no hart is
    /// at one; replies only on failure.
    fn step_over_breakpoints(&mut self) -> Vec<Reply> {
        let bps = self.backend.breakpoints();
        if bps.is_empty() {
            return Vec::new();
        }
        let t = match self.backend.target() {
            Ok(t) => t,
            Err(e) => return self.fail("continue", e),
        };
        let mut at: Vec<(u64, Hart)> = Vec::new();
        let pcs = t
            .harts()
            .and_then(|hs| hs.into_iter().map(|h| Ok((h, t.regs(h)?.pc))).collect());
        let pcs: Vec<(Hart, u64)> = match pcs {
            Ok(p) => p,
            Err(e) => return self.fail("continue", e),
        };
        for (h, pc) in pcs {
            if bps.contains(&pc) {
                at.push((pc, h));
            }
        }
        at.sort_unstable();
        let mut i = 0;
        while i < at.len() {
            let pc = at[i].0;
            if let Err(e) = self.backend.lift_breakpoint(pc) {
                return vec![Reply::Error(format!(
                    "continue: stepping over {pc:#x}: {e}"
                ))];
            }
            while i < at.len() && at[i].0 == pc {
                let h = at[i].1;
                let r = self.control("continue: step over the breakpoint", |t| {
                    match t.control() {
                        Some(c) => c.step(h),
                        None => Ok(()),
                    }
                });
                if !r.is_empty() {
                    return r;
                }
                i += 1;
            }
            if let Err(e) = self.backend.breakpoint(pc) {
                return vec![Reply::Error(format!(
                    "continue: putting the breakpoint at {pc:#x} back: {e}"
                ))];
            }
        }
        Vec::new()
    }

    /// While halted: did something else let the guest run (QEMU's monitor
    /// `cont`)? Then it runs on, and the status says so.
    fn poll_halted(&mut self) -> Vec<Reply> {
        match self.backend.poll_resumed() {
            Ok(false) => Vec::new(),
            Ok(true) => {
                let mut out = self.control("resume", |t| match t.control() {
                    Some(c) => c.resume(),
                    None => Ok(()),
                });
                if out.is_empty() {
                    self.running = true;
                    out.push(Reply::Running(true));
                    out.push(Reply::Message(
                        "the guest was resumed outside kinspect (QEMU monitor `cont`?)".into(),
                    ));
                }
                out
            }
            Err(e) => self.fail("watching the guest", e),
        }
    }

    /// While running: did the guest stop by itself (a breakpoint)? While
    /// halted: did someone else let it run?
    fn poll(&mut self) -> Vec<Reply> {
        if self.lost {
            return Vec::new();
        }
        if !self.running {
            return self.poll_halted();
        }
        match self.backend.poll_stop(Duration::from_millis(20)) {
            Ok(false) => Vec::new(),
            Ok(true) => {
                self.running = false;
                let mut out = vec![Reply::Running(false)];
                let snap = self.snapshot();
                // The hart that hit a breakpoint is the one to look at.
                let bps = self.backend.breakpoints();
                let hit = snap.iter().find_map(|r| match r {
                    Reply::Snapshot(s) => {
                        s.harts.iter().find(|h| bps.contains(&h.regs.pc)).map(|h| {
                            (
                                h.hart,
                                super::snapshot::symbolize(self.symbols.as_deref(), h.regs.pc)
                                    .unwrap_or_else(|| format!("{:#x}", h.regs.pc)),
                            )
                        })
                    }
                    _ => None,
                });
                out.extend(snap);
                match hit {
                    Some((h, at)) => {
                        out.push(Reply::SelectHart(h));
                        out.push(Reply::Message(format!(
                            "hart {h} hit the breakpoint at {at}"
                        )));
                    }
                    None => out.push(Reply::Message(
                        "the guest was stopped outside kinspect (QEMU monitor `stop`?)".into(),
                    )),
                }
                out
            }
            Err(e) => self.fail("waiting for the guest", e),
        }
    }

    /// The thread body: serve requests until `Finish` or the UI hangs up.
    pub fn run(mut self, rx: Receiver<Request>, tx: Sender<Reply>) {
        self.progress = Some(tx.clone());
        loop {
            let wait = if self.running {
                Duration::from_millis(30)
            } else {
                Duration::from_millis(500)
            };
            let replies = match rx.recv_timeout(wait) {
                Ok(req) => {
                    let finish = matches!(req, Request::Finish(_));
                    let out = self.handle(req);
                    if finish {
                        for r in out {
                            let _ = tx.send(r);
                        }
                        return;
                    }
                    out
                }
                Err(RecvTimeoutError::Timeout) => self.poll(),
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.backend.finish(Leave::Running);
                    return;
                }
            };
            for r in replies {
                if tx.send(r).is_err() {
                    return;
                }
            }
        }
    }
}
