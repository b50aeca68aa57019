//! The worker's answers applied to the [`App`], and what the panes ask
//! for next ([`App::tick`]).
//!
//! The worker sends data ([`Reply`]); this is where it becomes what the
//! person sees: a new snapshot keeps the selection where it can, a panic
//! selects its hart, an [`Event`] becomes the message line.

use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use super::app::{App, Tab};
use super::panes::{MemView, WalkState};
use super::popup::Popup;
use super::snapshot::symbolize;
use super::worker::{Event, Reply, Request};
use crate::target::RunState;
use kinspect_sv39::VirtAddr;

impl App {
    /// The worker's answer.
    pub fn apply(&mut self, r: Reply) {
        match r {
            Reply::Snapshot(s) => {
                self.busy = None;
                self.walks.clear();
                self.backtrace.saved.clear();
                self.mem.loaded = false;
                self.mem.pending = false;
                if self.hart >= s.harts.len() {
                    self.hart = 0;
                }
                let show_all = self.procs.show_all;
                let keep = self.slot.filter(|slot| {
                    matches!(&s.procs, Ok(p) if p.iter().any(|p| p.slot == *slot && (show_all || !p.unused())))
                });
                self.snapshot = Some(*s);
                self.slot = keep;
                if self.slot.is_none() {
                    // The process on the selected hart, else the first.
                    let on_hart = self
                        .visible_procs()
                        .iter()
                        .find(|p| p.hart == Some(self.hart))
                        .map(|p| p.slot);
                    self.slot = on_hart.or_else(|| self.visible_procs().first().map(|p| p.slot));
                }
                self.sync_proc_cursor();
                self.last_sample = Some(Instant::now());
                self.on_panic();
            }
            Reply::LiveMode(m) => {
                match &m {
                    Ok(true) => self.say("live mode on: the views follow the running guest"),
                    Ok(false) => self.say("live mode off: the views are read at each halt"),
                    Err(why) => self.error(why.clone()),
                }
                self.live_mode = m;
                self.live = None;
            }
            Reply::Live(f) => {
                if !self.running() || self.live_mode != Ok(true) {
                    return;
                }
                let f = *f;
                if let Some((root, walk, _)) = &f.walk {
                    self.walks.insert(
                        *root,
                        match walk {
                            Ok(w) => WalkState::Done(w.clone()),
                            Err(e) => WalkState::Failed(e.clone()),
                        },
                    );
                }
                // The process whose table is shown exited: say so once,
                // with the table that went with it.
                let shown = self
                    .selected_proc()
                    .map(|p| (p.slot, p.pid, p.name.clone(), p.pagetable));
                if let (None, Some((slot, pid, name, table))) = (&f.error, shown) {
                    let still = f
                        .procs
                        .iter()
                        .any(|p| p.slot == slot && p.pid == pid && !p.unused());
                    if !still && table.0 != 0 {
                        self.say(format!(
                            "pid {pid} ({name}) exited: its page table {table:#x} was freed"
                        ));
                    }
                }
                if f.error.is_none() {
                    if let Some(snap) = self.snapshot.as_mut() {
                        snap.procs = Ok(f.procs);
                        snap.kernel_pagetable = f.kernel_pagetable;
                    }
                    let show_all = self.procs.show_all;
                    let gone = self.slot.is_some_and(|slot| {
                        !self
                            .visible_procs()
                            .iter()
                            .any(|p| p.slot == slot && (show_all || !p.unused()))
                    });
                    if gone {
                        self.slot = self.visible_procs().first().map(|p| p.slot);
                    }
                    self.sync_proc_cursor();
                }
                self.live = Some(super::app::LiveInfo {
                    n: f.n,
                    read: f.read,
                    torn: f.torn,
                    changed: f.changed,
                    walk_torn: f.walk.as_ref().is_some_and(|w| w.2),
                    pages: f.walk.as_ref().zip(f.pages).map(|(w, (n, d))| (w.0, n, d)),
                    error: f.error,
                });
            }
            Reply::Changes(c) => {
                self.changes = Some(*c);
                self.changes_list.cursor = 0;
            }
            Reply::State(s) => {
                self.state = s;
                self.busy = None;
                if s == RunState::Halted {
                    self.live = None;
                }
            }
            Reply::Walk(root, w) => {
                self.busy = None;
                self.walks.insert(
                    root,
                    match w {
                        Ok(w) => WalkState::Done(w),
                        Err(e) => WalkState::Failed(e),
                    },
                );
                if self.page_table.expand_all_pending
                    && self.shown_root().map(|r| r.0) == Some(root)
                {
                    self.page_table.expand_all_pending = false;
                    self.toggle_pt(Some(true));
                }
            }
            Reply::Mem {
                addr,
                label,
                bytes,
                note,
            } => {
                self.busy = None;
                self.mem = MemView {
                    addr,
                    label,
                    bytes,
                    note,
                    pending: false,
                    loaded: true,
                };
            }
            Reply::Translated(t) => {
                self.busy = None;
                let (msg, popup) = Popup::translation(&t.expr, &t.what, &t.translation);
                self.say(msg);
                self.popup = Some(popup);
            }
            Reply::Vmprint { what, walk } => {
                self.busy = None;
                self.popup = Some(Popup::vmprint(&what, &walk));
            }
            Reply::ProcBacktrace(slot, bt) => {
                self.busy = None;
                self.backtrace.saved.insert(slot, Some(bt));
            }
            Reply::SelectHart(h) => {
                self.hart = h;
                // And the process it runs, if any.
                let on = self
                    .visible_procs()
                    .iter()
                    .find(|p| p.hart == Some(h))
                    .map(|p| p.slot);
                if on.is_some() {
                    self.slot = on;
                    self.sync_proc_cursor();
                    self.mem.loaded = false;
                }
            }
            Reply::Event(e) => {
                self.busy = None;
                let m = self.event_message(&e);
                self.say(m);
            }
            Reply::Error(e) => {
                self.busy = None;
                self.mem.pending = false;
                self.error(e);
            }
            Reply::WalkProgress { root, pages } => {
                self.busy = Some(format!(
                    "walking the page table at {root:#x}: {pages} table pages read"
                ))
            }
            Reply::Lost(why) => {
                self.busy = None;
                self.mem.pending = false;
                self.lost = Some(why.clone());
                let why = why.strip_prefix("connection lost: ").unwrap_or(&why);
                self.error(format!("connection lost: {why} — press R to reconnect"));
            }
            Reply::Reconnected => {
                // Everything read over the old connection is gone with it:
                // the panes ask again once the new snapshot is in.
                self.lost = None;
                self.busy = None;
                self.walks.clear();
                self.backtrace.saved.clear();
                self.page_table.expand_all_pending = false;
                self.mem.pending = false;
                self.mem.loaded = false;
                self.panic_seen = false;
                self.say("reconnected");
            }
            Reply::Finished(r) => {
                self.busy = None;
                if let Err(e) = r {
                    self.error(e);
                }
            }
        }
    }

    /// An event in words, for the message line.
    fn event_message(&self, e: &Event) -> String {
        match e {
            Event::Stepped(h) => format!("stepped one instruction on hart {h}"),
            Event::BreakpointSet { expr, addr } => format!("breakpoint at {expr} ({addr:#x})"),
            Event::BreakpointsRemoved(n) => format!(
                "{} removed",
                crate::words::count(*n, "breakpoint", "breakpoints")
            ),
            Event::HitBreakpoint { hart, pc } => {
                let at =
                    symbolize(self.symbols.as_deref(), *pc).unwrap_or_else(|| format!("{pc:#x}"));
                format!("hart {hart} hit the breakpoint at {at}")
            }
            Event::StoppedOutside => {
                "the guest was stopped outside kinspect (gdb through a proxy, QEMU monitor `stop`?)"
                    .into()
            }
            Event::ResumedOutside => {
                "the guest was resumed outside kinspect (QEMU monitor `cont`?)".into()
            }
            Event::Reconnected(RunState::Running) => {
                "reconnected; the guest runs, as it did".into()
            }
            Event::Reconnected(RunState::Halted) => {
                "reconnected; the guest is halted, as it was".into()
            }
        }
    }

    /// The first snapshot of a panicked kernel: look at the hart that
    /// panicked and the process it ran, and say why.
    fn on_panic(&mut self) {
        let Some(s) = &self.snapshot else { return };
        let Some(msg) = s.panic.clone() else {
            self.panic_seen = false;
            return;
        };
        if self.panic_seen {
            return;
        }
        self.panic_seen = true;
        let hart = s.panic_hart;
        if let Some(h) = hart {
            self.apply(Reply::SelectHart(h));
        }
        let who = match (hart, self.selected_proc().filter(|p| p.hart == hart)) {
            (Some(h), Some(p)) => format!(" on hart {h} (pid {} `{}`)", p.pid, p.name),
            (Some(h), None) => format!(" on hart {h}"),
            _ => String::new(),
        };
        self.error(format!("the kernel panicked{who}: {msg}"));
    }

    /// Console bytes from the guest.
    pub fn console_bytes(&mut self, b: &[u8]) {
        self.console.buf.push(b);
        self.console.last_output = Some(Instant::now());
    }

    /// Ask for what the current view needs and nobody asked for yet; and
    /// in follow mode, refresh once the console has gone quiet.
    pub fn tick(&mut self) {
        if self.lost.is_some() || self.snapshot.is_none() {
            return;
        }
        if matches!(self.tab, Tab::PageTable | Tab::Maps) {
            if let Some((root, _)) = self.shown_root() {
                if let Entry::Vacant(e) = self.walks.entry(root) {
                    e.insert(WalkState::Pending);
                    self.send(Request::Walk(root), "walking the page table…");
                }
            }
        }
        if self.tab == Tab::Backtrace {
            let want = self
                .selected_proc()
                .filter(|p| p.hart.is_none() && !p.unused())
                .map(|p| p.slot);
            if let Some(slot) = want {
                if let Entry::Vacant(e) = self.backtrace.saved.entry(slot) {
                    e.insert(None);
                    self.send(Request::ProcBacktrace(slot), "reading the saved context…");
                }
            }
        }
        if self.tab == Tab::Memory && !self.mem.loaded && !self.mem.pending {
            if self.mem.label.is_empty() && self.mem.addr.0 == 0 {
                // Start at the selected process's kernel stack.
                let start = match (self.selected_proc(), self.hart_snap()) {
                    (Some(p), _) => Some((p.kstack, format!("proc[{}].kstack", p.slot))),
                    (None, Some(h)) => {
                        Some((VirtAddr(h.regs.x[2] & !0xf), format!("hart {} sp", h.hart)))
                    }
                    _ => None,
                };
                if let Some((a, l)) = start {
                    self.mem.addr = a;
                    self.mem.label = l;
                }
            }
            self.mem.pending = true;
            let r = Request::ReadMem {
                addr: self.mem.addr,
                len: 256,
                root: self.kernel_root(),
            };
            self.send(r, "reading memory…");
        }
        // Live frames keep the views fresh without halting: no sample then.
        if self.follow && self.running() && self.busy.is_none() && !self.live_now() {
            if let Some(t) = self.console.last_output {
                let quiet = t.elapsed() > Duration::from_millis(400);
                let fresh = self.last_sample.is_none_or(|s| s < t);
                if quiet && fresh {
                    self.last_sample = Some(Instant::now());
                    self.send(Request::Sample, "refreshing…");
                }
            }
        }
    }
}
