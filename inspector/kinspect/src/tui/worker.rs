//! The worker: the one thread that owns the target.
//!
//! The UI thread never blocks on the gdb stub. It sends [`Request`]s over
//! a channel; the worker runs them against its [`Target`] and sends
//! [`Reply`]s back: data (a snapshot, a walk, bytes, a translation, an
//! [`Event`]), never text to show. What the target can do beyond reading
//! is its [`Control`] capability ([`Target::control`]): a snapshot has
//! none, so continue, halt, step and breakpoints say so instead of acting.
//! While the guest runs, the worker waits for a stop (a breakpoint, QEMU's
//! monitor) between requests; while it is halted, it watches for it being
//! resumed behind its back. A lost connection becomes [`Reply::Lost`], and
//! [`Request::Reconnect`] makes a new one when the worker was given a way
//! to ([`Worker::reconnecting`]).
//!
//! Each time the guest halts (the person's halt, a step, a breakpoint, a
//! stop from outside) and at attach, the worker also reads a
//! [`diff::View`] of every live process and its user page table and
//! compares it with the one of the halt before: [`Reply::Changes`], which
//! the Changes tab shows. A sample or a refresh is not a halt and takes
//! none, so "the halt before" stays the last place the guest stopped.
//!
//! [`Worker::handle`] is plain synchronous code, so rendering tests drive
//! it directly over a `MemoryTarget` without threads. The reading
//! requests live in [`super::reads`].

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use kinspect_sv39::{PhysAddr, Ram, Translation, VirtAddr, Walk};
use kinspect_symbols::Symbols;

use super::snapshot::{is_lost, read_snapshot, Backtrace, Snapshot};
use crate::diff::{self, Diff};
use crate::target::{Control, Hart, Outside, RunState, Target, TargetError};

/// Time between live frames: about ten a second.
pub const LIVE_INTERVAL: Duration = Duration::from_millis(100);

/// Frames a change in the shown table's pages stays in view (2 s).
pub const LIVE_CHANGE_SHOWN: u64 = 20;

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
    /// Read a snapshot.
    Snapshot,
    Halt,
    Resume,
    Step(Hart),
    /// While running: halt, read a snapshot, resume.
    Sample,
    /// Walk the page table at this root.
    Walk(PhysAddr),
    /// Read kernel virtual memory (translated through `root` when not
    /// direct-mapped).
    ReadMem {
        addr: VirtAddr,
        len: usize,
        root: Option<PhysAddr>,
    },
    /// Evaluate an expression and show memory there.
    Goto {
        expr: String,
        root: Option<PhysAddr>,
    },
    /// Evaluate an expression and translate it through `root`.
    Translate {
        expr: String,
        root: PhysAddr,
        what: String,
    },
    /// The vmprint tree of a root.
    Vmprint {
        root: PhysAddr,
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
    /// Live mode on or off: while the guest runs, read the process table
    /// and the followed page table about ten times a second without
    /// halting it (needs the RAM fast path).
    Live(bool),
    Finish(Leave),
}

/// A translation the UI asked for (`:translate`).
#[derive(Clone, Debug)]
pub struct Translated {
    /// The expression as typed.
    pub expr: String,
    /// Which page table it went through, in words.
    pub what: String,
    pub translation: Translation,
}

/// Something that happened, for the message line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Stepped(Hart),
    BreakpointSet {
        expr: String,
        addr: u64,
    },
    BreakpointsRemoved(usize),
    /// The guest stopped with `hart` at one of our breakpoints, `pc`.
    HitBreakpoint {
        hart: Hart,
        pc: u64,
    },
    /// The guest stopped, not at one of our breakpoints: someone else
    /// stopped it (QEMU's monitor `stop`).
    StoppedOutside,
    /// Someone else let the halted guest run (QEMU's monitor `cont`).
    ResumedOutside,
    /// A new connection; the guest is as it found it.
    Reconnected(RunState),
}

/// One halt of the guest, numbered from 1 (the attach) in this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub n: u64,
    /// Why it stopped, in words: `attach`, `halt`, `step on hart 0`,
    /// `breakpoint on hart 1`, `stopped from outside`.
    pub why: String,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "halt {} ({})", self.n, self.why)
    }
}

/// What changed between the halt before and this one (the Changes tab).
#[derive(Clone, Debug)]
pub struct Changes {
    /// This halt.
    pub halt: Halt,
    /// The halt compared with: the last one whose view was read.
    pub since: Option<Halt>,
    /// `Ok(None)`: the first halt, nothing to compare yet. `Err`: this
    /// halt's processes could not be read (the next halt compares with
    /// `since` again).
    pub diff: Result<Option<Diff>, String>,
}

/// One look at the running guest, read without halting it (live mode).
#[derive(Clone, Debug)]
pub struct LiveFrame {
    /// Counted from 1 in this session.
    pub n: u64,
    /// Every slot of `proc[]`, from the second of two reads.
    pub procs: Vec<super::procs::ProcRow>,
    pub kernel_pagetable: Option<PhysAddr>,
    /// Slots whose two reads differ: changed while being read, so not one
    /// instant (`~`).
    pub torn: Vec<usize>,
    /// Slots whose process is new or changed (pid, state, name, size,
    /// page table) since the frame before (`*`).
    pub changed: Vec<usize>,
    /// The page table the person looks at, walked twice: its root, the
    /// second walk, and whether the two differ.
    pub walk: Option<(PhysAddr, Result<Arc<Walk>, String>, bool)>,
    /// That table's mapped pages (4 KiB each; a superpage counts its 4 KiB
    /// pages) and the last change in them, while it is recent (within
    /// [`LIVE_CHANGE_SHOWN`] frames), so a person sees it.
    pub pages: Option<(u64, i64)>,
    /// How long the frame took to read.
    pub read: Duration,
    /// Why this frame has no process table (a pointer caught mid-update
    /// three times running).
    pub error: Option<String>,
    /// The kernel's `panicked` is set: the worker then halts once to read
    /// the panic whole (registers, backtraces), as a halt would.
    pub panicked: bool,
}

/// What comes back.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Live mode is on (`Ok(true)`), off (`Ok(false)`), or cannot be had
    /// (`Err`: why, e.g. no fast path).
    LiveMode(Result<bool, String>),
    /// A live frame.
    Live(Box<LiveFrame>),
    Snapshot(Box<Snapshot>),
    /// At a halt: what changed since the halt before.
    Changes(Box<Changes>),
    /// The guest runs or is halted, as the worker now knows it.
    State(RunState),
    Walk(PhysAddr, Result<Arc<Walk>, String>),
    Mem {
        addr: VirtAddr,
        label: String,
        /// One entry per byte; `None` where unreadable.
        bytes: Vec<Option<u8>>,
        note: Option<String>,
    },
    Translated(Box<Translated>),
    /// The walk of a root, for the vmprint pop-up.
    Vmprint {
        what: String,
        walk: Arc<Walk>,
    },
    /// A process's chain from its saved context (or why there is none).
    ProcBacktrace(usize, Result<Backtrace, String>),
    /// Look at this hart (the one that hit a breakpoint).
    SelectHart(Hart),
    Event(Event),
    /// A request failed: one line saying what and why.
    Error(String),
    /// A long walk's progress: table pages read so far.
    WalkProgress {
        root: PhysAddr,
        pages: usize,
    },
    /// The connection is gone.
    Lost(String),
    /// A new connection replaced the lost one (a snapshot follows).
    Reconnected,
    /// The session ended (the UI may exit).
    Finished(Result<(), String>),
}

/// Makes a new connection to the same machine, for [`Request::Reconnect`].
pub type Connect = Box<dyn FnMut() -> Result<Box<dyn Target + Send>, TargetError> + Send>;

/// The worker's state: the target, the symbols, what it believes about
/// the guest.
pub struct Worker {
    /// `None` once a reconnect failed or the session finished.
    target: Option<Box<dyn Target + Send>>,
    connect: Option<Connect>,
    /// Breakpoints this session set (removed on detach, kept over a
    /// continue that steps over them).
    breakpoints: Vec<u64>,
    pub symbols: Option<Arc<Symbols>>,
    /// `--profile`/`--kpt-field`, as the CLI resolved them.
    pub profile: crate::model::Profile,
    pub ram: Ram,
    state: RunState,
    lost: bool,
    /// Halts so far, and the last halt's view of the processes (what the
    /// next halt is compared with).
    halts: u64,
    last_view: Option<(Halt, diff::View)>,
    /// Where progress goes while a request runs (the thread's reply channel).
    pub(super) progress: Option<Sender<Reply>>,
    /// Live mode as the person wants it (on unless turned off).
    live: bool,
    /// Live frames read so far, when the last was, and its rows.
    live_n: u64,
    live_last: Option<std::time::Instant>,
    live_prev: Option<Vec<super::procs::ProcRow>>,
    /// The last frame's walked root and its mapped pages, and the last
    /// change in them (root, change, frame).
    live_prev_pages: Option<(PhysAddr, u64)>,
    live_change: Option<(PhysAddr, i64, u64)>,
    /// A live frame saw the kernel panicked, and the panic was read.
    live_panic_read: bool,
    /// The page table last asked for (`Request::Walk`): live frames walk it.
    follow: Option<PhysAddr>,
}

impl Worker {
    pub fn new(
        target: Box<dyn Target + Send>,
        symbols: Option<Arc<Symbols>>,
        profile: crate::model::Profile,
        ram: Ram,
    ) -> Worker {
        Worker {
            target: Some(target),
            connect: None,
            breakpoints: Vec::new(),
            symbols,
            profile,
            ram,
            state: RunState::Halted,
            lost: false,
            halts: 0,
            last_view: None,
            progress: None,
            live: true,
            live_n: 0,
            live_last: None,
            live_prev: None,
            live_prev_pages: None,
            live_change: None,
            live_panic_read: false,
            follow: None,
        }
    }

    /// `R` reconnects with `connect` (a live machine's address).
    pub fn reconnecting(mut self, connect: Connect) -> Worker {
        self.connect = Some(connect);
        self
    }

    /// Whether the guest was running when we last looked.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// The target, while connected.
    pub(super) fn target(&mut self) -> Result<&mut dyn Target, TargetError> {
        match self.target.as_deref_mut() {
            Some(t) => Ok(t),
            None => Err(TargetError::Disconnected(
                "not connected (R reconnects)".into(),
            )),
        }
    }

    /// A target error as replies: lost connections are special.
    pub(super) fn fail(&mut self, what: &str, e: TargetError) -> Vec<Reply> {
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
        let profile = self.profile.clone();
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading the machine", e),
        };
        match read_snapshot(t, syms.as_deref(), &profile, ram) {
            Ok(s) => vec![Reply::Snapshot(Box::new(s))],
            Err(e) => self.fail("reading the machine", e),
        }
    }

    /// At a halt: read every live process and its user page table, and
    /// compare with the halt before. One walk per live process's user
    /// table, as `kinspect diff` does; nothing when the connection is lost.
    fn changes(&mut self, why: String) -> Vec<Reply> {
        if self.lost {
            return Vec::new();
        }
        self.halts += 1;
        let halt = Halt { n: self.halts, why };
        let since = self.last_view.as_ref().map(|(h, _)| h.clone());
        let Some(syms) = self.symbols.clone() else {
            return vec![Reply::Changes(Box::new(Changes {
                halt,
                since,
                diff: Err("no kernel ELF (--elf): the process table cannot be read".into()),
            }))];
        };
        let ram = self.ram;
        let profile = self.profile.clone();
        let view = match self.target() {
            Ok(t) => diff::view(t, &syms, &profile, ram),
            Err(e) => return self.fail("reading the processes for the Changes tab", e),
        };
        // A connection lost here is found by the next request, as after
        // any read.
        let view = match view {
            Ok(v) => v,
            Err(e) => {
                return vec![Reply::Changes(Box::new(Changes {
                    halt,
                    since,
                    diff: Err(e.to_string()),
                }))]
            }
        };
        let d = self.last_view.as_ref().map(|(before, v)| {
            let mut d = diff::diff(v, &view, false);
            d.before = before.to_string();
            d.after = halt.to_string();
            d
        });
        self.last_view = Some((halt.clone(), view));
        vec![Reply::Changes(Box::new(Changes {
            halt,
            since,
            diff: Ok(d),
        }))]
    }

    /// Run `op` on the target's [`Control`]: nothing back on success; a
    /// target that cannot run says so.
    fn control(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut dyn Control) -> Result<(), TargetError>,
    ) -> Vec<Reply> {
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail(what, e),
        };
        let name = t.describe();
        let Some(c) = t.control() else {
            return vec![Reply::Error(format!(
                "{what}: {name} cannot run (it is not a live machine)"
            ))];
        };
        match op(c) {
            Ok(()) => Vec::new(),
            Err(e) => self.fail(what, e),
        }
    }

    /// The target's [`Control`], if it has one and is connected.
    fn control_now(&mut self) -> Option<&mut dyn Control> {
        self.target.as_deref_mut()?.control()
    }

    /// The first look: QEMU halts the guest when a debugger attaches;
    /// read a snapshot, then let the guest go on if it was running.
    pub fn attach(&mut self) -> Vec<Reply> {
        let found = self.control_now().map(|c| c.state_at_attach());
        let mut out = self.snapshot();
        out.extend(self.changes("attach".into()));
        if found == Some(RunState::Running) && !self.lost {
            let r = self.control("resume after attaching", |c| c.resume());
            if r.is_empty() {
                self.state = RunState::Running;
            }
            out.extend(r);
        }
        out.push(Reply::State(self.state));
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
        if reads && self.state == RunState::Running {
            // Memory alone can be read live; a snapshot needs registers.
            if self.live && !matches!(req, Request::Snapshot) && self.live_reads(true) {
                let out = self.handle_halted(req);
                self.live_reads(false);
                return out;
            }
            // The target halts to be read; put the guest back running after.
            return self.briefly_halted(req);
        }
        self.handle_halted(req)
    }

    /// Halt, run a reading request, resume.
    fn briefly_halted(&mut self, req: Request) -> Vec<Reply> {
        let mut out = self.control("halt to read", |c| c.halt());
        if !out.is_empty() {
            return out;
        }
        out.extend(self.handle_halted(req));
        if !self.lost {
            out.extend(self.control("resume after reading", |c| c.resume()));
        }
        out
    }

    /// Run `op` with the guest halted, and let it run again after if it
    /// was running.
    fn halted_for(&mut self, what: &str, op: impl FnOnce(&mut Worker) -> Vec<Reply>) -> Vec<Reply> {
        let was = self.state == RunState::Running;
        let mut out = Vec::new();
        if was {
            out.extend(self.control(&format!("halt to {what}"), |c| c.halt()));
            if !out.is_empty() {
                return out;
            }
        }
        out.extend(op(self));
        if was {
            out.extend(self.control("resume", |c| c.resume()));
        }
        out
    }

    fn handle_halted(&mut self, req: Request) -> Vec<Reply> {
        match req {
            Request::Snapshot => self.snapshot(),
            Request::Halt => {
                let mut out = self.control("halt", |c| c.halt());
                if out.is_empty() {
                    self.state = RunState::Halted;
                    out.push(Reply::State(RunState::Halted));
                    out.extend(self.snapshot());
                    out.extend(self.changes("halt".into()));
                }
                out
            }
            Request::Resume => self.resume(),
            Request::Step(h) => {
                let mut out = self.control("step", |c| c.step(h));
                if out.is_empty() {
                    self.state = RunState::Halted;
                    out.push(Reply::Event(Event::Stepped(h)));
                    out.extend(self.snapshot());
                    out.extend(self.changes(format!("step on hart {h}")));
                }
                out
            }
            Request::Sample => {
                let was = self.state == RunState::Running;
                let mut out = self.control("sample", |c| c.halt());
                if !out.is_empty() {
                    return out;
                }
                out.extend(self.snapshot());
                if was {
                    out.extend(self.control("resume after sampling", |c| c.resume()));
                }
                out
            }
            Request::Walk(root) => {
                self.follow = Some(root);
                self.walk(root)
            }
            Request::Live(on) => {
                self.live = on;
                self.live_prev = None;
                if !on {
                    return vec![Reply::LiveMode(Ok(false))];
                }
                // Asked of the target now, so the person learns at once
                // when there is no fast path.
                let can = self.live_reads(true);
                self.live_reads(false);
                vec![Reply::LiveMode(if can {
                    Ok(true)
                } else {
                    Err(
                        "live mode needs the RAM fast path (QEMU on this host, docs/fast-path.md)"
                            .into(),
                    )
                })]
            }
            Request::ReadMem { addr, len, root } => self.read_mem(addr, len, root, String::new()),
            Request::Goto { expr, root } => match self.eval(&expr, root) {
                Ok(addr) => self.read_mem(addr, 256, root, expr),
                Err(e) => e,
            },
            Request::Translate { expr, root, what } => self.translate(&expr, root, &what),
            Request::Vmprint { root, what } => match self.walk_inner(root) {
                Ok(walk) => vec![Reply::Vmprint { what, walk }],
                Err(e) => e,
            },
            Request::Break(expr) => self.breakpoint(&expr),
            Request::ProcBacktrace(slot) => self.proc_backtrace(slot),
            Request::Delete => self.halted_for("remove breakpoints", Worker::delete_breakpoints),
            Request::Reconnect => self.reconnect(),
            Request::Finish(leave) => vec![Reply::Finished(self.finish(leave))],
        }
    }

    fn resume(&mut self) -> Vec<Reply> {
        let out = self.step_over_breakpoints();
        if !out.is_empty() {
            return out;
        }
        // A stop reply still on its way (a late answer to the last
        // probe) would be taken for a stop after this continue:
        // collect it first. The guest is halted either way.
        if let Some(c) = self.control_now() {
            if let Err(e) = c.resumed_elsewhere(Duration::from_millis(50)) {
                return self.fail("continue", e);
            }
        }
        let mut out = self.control("continue", |c| c.resume());
        if out.is_empty() {
            self.state = RunState::Running;
            out.push(Reply::State(RunState::Running));
        }
        out
    }

    fn breakpoint(&mut self, expr: &str) -> Vec<Reply> {
        // A breakpoint is a raw pc for the gdb protocol.
        let addr = match self.eval(expr, None) {
            Ok(a) => a.0,
            Err(e) => return e,
        };
        self.halted_for("set a breakpoint", |w| {
            let Some(c) = w.control_now() else {
                return vec![Reply::Error(format!(
                    "break {expr}: this target cannot run, so it has no breakpoints"
                ))];
            };
            match c.insert_breakpoint(addr) {
                Ok(()) => {
                    if !w.breakpoints.contains(&addr) {
                        w.breakpoints.push(addr);
                    }
                    vec![Reply::Event(Event::BreakpointSet {
                        expr: expr.to_string(),
                        addr,
                    })]
                }
                Err(e) if is_lost(&e) => w.fail("break", e),
                Err(e) => vec![Reply::Error(format!("break {expr}: {e}"))],
            }
        })
    }

    /// Remove every breakpoint this session set.
    fn delete_breakpoints(&mut self) -> Vec<Reply> {
        let bps = std::mem::take(&mut self.breakpoints);
        if let Some(c) = self.control_now() {
            for a in &bps {
                if let Err(e) = c.remove_breakpoint(*a) {
                    return vec![Reply::Error(format!("delete: {e}"))];
                }
            }
        }
        vec![Reply::Event(Event::BreakpointsRemoved(bps.len()))]
    }

    /// Before continuing: a hart stopped at one of our breakpoints would
    /// hit it again at once, so step each such hart over it (breakpoint
    /// out, one instruction, breakpoint back in). Nothing when no hart is
    /// at one; replies only on failure.
    fn step_over_breakpoints(&mut self) -> Vec<Reply> {
        let bps = self.breakpoints.clone();
        if bps.is_empty() {
            return Vec::new();
        }
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail("continue", e),
        };
        let pcs = t
            .harts()
            .and_then(|hs| hs.into_iter().map(|h| Ok((h, t.regs(h)?.pc))).collect());
        let pcs: Vec<(Hart, u64)> = match pcs {
            Ok(p) => p,
            Err(e) => return self.fail("continue", e),
        };
        let mut at: Vec<(u64, Hart)> = pcs
            .into_iter()
            .filter(|(_, pc)| bps.contains(pc))
            .map(|(h, pc)| (pc, h))
            .collect();
        at.sort_unstable();
        let mut i = 0;
        while i < at.len() {
            let pc = at[i].0;
            let what = format!("continue: stepping over {pc:#x}");
            let r = self.control(&what, |c| c.remove_breakpoint(pc));
            if !r.is_empty() {
                return r;
            }
            while i < at.len() && at[i].0 == pc {
                let h = at[i].1;
                let r = self.control("continue: step over the breakpoint", |c| c.step(h));
                if !r.is_empty() {
                    return r;
                }
                i += 1;
            }
            let what = format!("continue: putting the breakpoint at {pc:#x} back");
            let r = self.control(&what, |c| c.insert_breakpoint(pc));
            if !r.is_empty() {
                return r;
            }
        }
        Vec::new()
    }

    fn reconnect(&mut self) -> Vec<Reply> {
        let Some(connect) = self.connect.as_mut() else {
            return vec![Reply::Lost(
                "reconnecting: this target cannot reconnect".into(),
            )];
        };
        // Let go of the old session quietly; it is broken anyway.
        self.target = None;
        self.breakpoints.clear();
        self.live_panic_read = false;
        match connect() {
            Ok(t) => {
                self.target = Some(t);
                self.lost = false;
                self.state = RunState::Halted;
                // As on the first attach: read the machine, then let the
                // guest go on if it was running when we came.
                let mut out = vec![Reply::Reconnected];
                out.extend(self.attach());
                if !self.lost {
                    out.push(Reply::Event(Event::Reconnected(self.state)));
                }
                out
            }
            Err(e) => vec![Reply::Lost(format!("reconnecting: {e}"))],
        }
    }

    /// Leave the guest running or halted and let go of it.
    fn finish(&mut self, leave: Leave) -> Result<(), String> {
        let Some(mut t) = self.target.take() else {
            return Ok(());
        };
        if t.control().is_none() {
            return Ok(());
        }
        let r = match leave {
            Leave::Halted => t.control().map_or(Ok(()), |c| c.halt()),
            // Others sharing the machine may have halted it: leave it be.
            Leave::Running if t.control().is_some_and(|c| c.shared()) => Ok(()),
            Leave::Running | Leave::Kill => match t.run_state() {
                Ok(RunState::Halted) => t.control().map_or(Ok(()), |c| c.resume()),
                Ok(RunState::Running) => Ok(()),
                Err(e) => Err(e),
            },
        };
        let done = t.control().map_or(Ok(()), |c| c.detach());
        r.and(done).map_err(|e| e.to_string())
    }

    /// While halted: did something else let the guest run (QEMU's monitor
    /// `cont`, another client of a proxy)? Then it runs on, and the status
    /// says so. Did it run and stop again (gdb stepping through a proxy)?
    /// Then the new state is read and shown.
    fn poll_halted(&mut self) -> Vec<Reply> {
        // Long enough for QEMU to stop the VM and answer on a busy
        // machine; a later answer is found by the next poll.
        let outside = match self.control_now() {
            None => return Vec::new(),
            Some(c) => c.outside(Duration::from_millis(50)),
        };
        match outside {
            Ok(Outside::Nothing) => Vec::new(),
            Ok(Outside::Running) => {
                self.state = RunState::Running;
                vec![
                    Reply::State(RunState::Running),
                    Reply::Event(Event::ResumedOutside),
                ]
            }
            Ok(Outside::Stopped) => self.stopped(),
            Err(e) => self.fail("watching the guest", e),
        }
    }

    /// While running: did the guest stop by itself (a breakpoint)? While
    /// halted: did someone else let it run?
    fn poll(&mut self) -> Vec<Reply> {
        if self.lost {
            return Vec::new();
        }
        if self.state == RunState::Halted {
            return self.poll_halted();
        }
        let stopped = match self.control_now() {
            None => return Vec::new(),
            Some(c) => c.wait_for_stop(Duration::from_millis(20)),
        };
        match stopped {
            Ok(RunState::Running) => self.live_tick(),
            Ok(RunState::Halted) => self.stopped(),
            Err(e) => self.fail("waiting for the guest", e),
        }
    }

    /// Turn the target's live reads on or off; whether they are on.
    fn live_reads(&mut self, on: bool) -> bool {
        self.target.as_deref_mut().is_some_and(|t| t.set_live(on))
    }

    /// While running in live mode: a frame every [`LIVE_INTERVAL`].
    fn live_tick(&mut self) -> Vec<Reply> {
        if !self.live || self.symbols.is_none() {
            return Vec::new();
        }
        let due = self.live_last.is_none_or(|t| t.elapsed() >= LIVE_INTERVAL);
        if !due {
            return Vec::new();
        }
        self.live_last = Some(std::time::Instant::now());
        if !self.live_reads(true) {
            return Vec::new();
        }
        let frame = self.live_frame();
        self.live_reads(false);
        let panicked = frame.panicked;
        let mut out = vec![Reply::Live(Box::new(frame))];
        if panicked && !self.live_panic_read {
            // Once: halt, read it all (the panic, its hart's backtrace),
            // let it run on as it was.
            self.live_panic_read = true;
            out.extend(self.handle_halted(Request::Sample));
        }
        out
    }

    /// Read one live frame: the process table twice (slots that differ
    /// are marked torn) and the followed page table twice. Never halts:
    /// the target's live reads are on.
    pub(super) fn live_frame(&mut self) -> LiveFrame {
        let t0 = std::time::Instant::now();
        self.live_n += 1;
        let mut frame = LiveFrame {
            n: self.live_n,
            procs: Vec::new(),
            kernel_pagetable: None,
            torn: Vec::new(),
            changed: Vec::new(),
            walk: None,
            pages: None,
            read: Duration::ZERO,
            error: None,
            panicked: false,
        };
        let (Some(syms), Some(t)) = (self.symbols.clone(), self.target.as_deref_mut()) else {
            frame.error = Some("no kernel ELF".into());
            return frame;
        };
        let ram = self.ram;
        let twice = crate::model::Kernel::new(&syms, self.profile.clone())
            .map_err(|e| e.to_string())
            .and_then(|kernel| crate::live::procs_twice(&kernel, &mut *t, ram));
        match twice {
            Ok(twice) => {
                let b = super::procs::rows(&twice.second);
                frame.torn = twice.torn;
                if let Some(prev) = &self.live_prev {
                    frame.changed = b
                        .iter()
                        .filter(|p| !p.unused())
                        .filter(|p| {
                            prev.iter().find(|o| o.slot == p.slot).is_none_or(|o| {
                                (o.pid, &o.state, &o.name, o.sz, o.pagetable)
                                    != (p.pid, &p.state, &p.name, p.sz, p.pagetable)
                            })
                        })
                        .map(|p| p.slot)
                        .collect();
                }
                frame.kernel_pagetable = Some(twice.second.kernel_pagetable).filter(|k| k.0 != 0);
                self.live_prev = Some(b.clone());
                frame.procs = b;
            }
            Err(e) => frame.error = Some(e),
        }
        {
            let mut phys = crate::model::PhysCache::new(&mut *t);
            let mut mem = crate::model::KernelMemory::new(&mut phys, ram, None);
            frame.panicked = syms
                .load_global(&mut mem, "panicked")
                .and_then(|v| v.as_u64())
                .is_ok_and(|v| v != 0);
        }
        if let Some(root) = self.follow {
            let (second, torn) = crate::live::walk_twice(&mut *t, root, ram);
            if let Ok(w) = &second {
                let pages: u64 = w.leaves().map(|l| l.size / 4096).sum();
                if let Some((r, before)) = self.live_prev_pages {
                    if r == root && before != pages {
                        let d = pages as i64 - before as i64;
                        self.live_change = Some((root, d, frame.n));
                    }
                }
                let recent = self
                    .live_change
                    .filter(|(r, _, n)| *r == root && frame.n - n < LIVE_CHANGE_SHOWN)
                    .map_or(0, |(_, d, _)| d);
                frame.pages = Some((pages, recent));
                self.live_prev_pages = Some((root, pages));
            }
            frame.walk = Some((root, second.map(Arc::new), torn));
        }
        frame.read = t0.elapsed();
        frame
    }

    /// The guest stopped without our asking: read it, and say where.
    fn stopped(&mut self) -> Vec<Reply> {
        self.state = RunState::Halted;
        let mut out = vec![Reply::State(RunState::Halted)];
        let snap = self.snapshot();
        // The hart that hit a breakpoint is the one to look at.
        let hit = snap.iter().find_map(|r| match r {
            Reply::Snapshot(s) => s
                .harts
                .iter()
                .find(|h| self.breakpoints.contains(&h.regs.pc))
                .map(|h| (h.hart, h.regs.pc)),
            _ => None,
        });
        out.extend(snap);
        out.extend(self.changes(match hit {
            Some((hart, _)) => format!("breakpoint on hart {hart}"),
            None => "stopped from outside".into(),
        }));
        match hit {
            Some((hart, pc)) => {
                out.push(Reply::SelectHart(hart));
                out.push(Reply::Event(Event::HitBreakpoint { hart, pc }));
            }
            None => {
                let hart = self.control_now().and_then(|c| c.stopped_hart());
                out.extend(hart.map(Reply::SelectHart));
                out.push(Reply::Event(Event::StoppedOutside));
            }
        }
        out
    }

    /// The thread body: serve requests until `Finish` or the UI hangs up.
    pub fn run(mut self, rx: Receiver<Request>, tx: Sender<Reply>) {
        self.progress = Some(tx.clone());
        loop {
            let wait = match self.state {
                RunState::Running => Duration::from_millis(30),
                RunState::Halted => Duration::from_millis(500),
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
                    let _ = self.finish(Leave::Running);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::memory::MemoryTarget;

    fn errors(replies: Vec<Reply>) -> Vec<String> {
        replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Error(e) | Reply::Lost(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Every halt is numbered and compared with the one before; without
    /// the kernel's ELF the processes cannot be read, and the Changes tab
    /// is told why instead of showing nothing.
    #[test]
    fn each_halt_is_numbered_and_says_why_it_has_no_changes_without_an_elf() {
        let mut w = Worker::new(
            Box::new(MemoryTarget::default()),
            None,
            crate::model::Profile::default(),
            Ram::default(),
        );
        let changes: Vec<Changes> = w
            .attach()
            .into_iter()
            .filter_map(|r| match r {
                Reply::Changes(c) => Some(*c),
                _ => None,
            })
            .collect();
        let [c] = changes.as_slice() else {
            panic!("one Changes at the attach: {changes:?}");
        };
        assert_eq!(
            c.halt,
            Halt {
                n: 1,
                why: "attach".into()
            }
        );
        assert_eq!(c.since, None);
        match &c.diff {
            Err(e) => assert!(e.contains("--elf"), "{e}"),
            Ok(d) => panic!("a diff without symbols: {d:?}"),
        }
        // The next halt is number 2, and there is still nothing to compare
        // it with.
        let next = w.changes("halt".into());
        match next.as_slice() {
            [Reply::Changes(c)] => {
                assert_eq!(c.halt.n, 2);
                assert_eq!(c.since, None);
            }
            r => panic!("{r:?}"),
        }
    }

    /// A target without [`Control`] (a crafted or saved machine): every
    /// request that would run it says so, and nothing is waited for.
    #[test]
    fn a_target_that_cannot_run_says_so() {
        let t = MemoryTarget {
            name: "a crafted machine".into(),
            ..MemoryTarget::default()
        };
        let mut w = Worker::new(
            Box::new(t),
            None,
            crate::model::Profile::default(),
            Ram::default(),
        );
        let cannot = |what: &str| {
            vec![format!(
                "{what}: a crafted machine cannot run (it is not a live machine)"
            )]
        };
        assert_eq!(errors(w.handle(Request::Resume)), cannot("continue"));
        assert_eq!(errors(w.handle(Request::Halt)), cannot("halt"));
        assert_eq!(errors(w.handle(Request::Step(0))), cannot("step"));
        assert_eq!(
            errors(w.handle(Request::Break("0x80000000".into()))),
            ["break 0x80000000: this target cannot run, so it has no breakpoints"]
        );
        assert_eq!(
            w.handle(Request::Delete)
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Event(e) => Some(e),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            [Event::BreakpointsRemoved(0)]
        );
        assert_eq!(
            errors(w.handle(Request::Reconnect)),
            ["reconnecting: this target cannot reconnect"]
        );
        assert!(w.poll().is_empty());
        assert_eq!(w.state(), RunState::Halted);
        assert!(matches!(
            w.handle(Request::Finish(Leave::Running)).as_slice(),
            [Reply::Finished(Ok(()))]
        ));
    }
}
