//! The TUI's state and what each key does.
//!
//! [`App`] is plain data plus an outbox of [`Request`]s for the worker:
//! keys and mouse events change it ([`App::on_key`], [`App::on_mouse`]),
//! worker replies update it ([`App::apply`]), and `view` draws it. Nothing
//! here blocks or touches the target, which is what keeps the UI live
//! while the worker waits on the gdb stub.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use kinspect_sv39::{Satp, SatpMode, Walk};
use kinspect_symbols::Symbols;
use ratatui::layout::Rect;

use super::console::ConsoleBuf;
use super::procs::ProcRow;
use super::snapshot::Snapshot;
use super::worker::{Leave, Reply, Request};
use crate::target::Csr;

/// The detail area's tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    PageTable,
    Maps,
    Regs,
    Memory,
    Backtrace,
    Console,
}

impl Tab {
    pub fn title(self) -> &'static str {
        match self {
            Tab::PageTable => "Page table",
            Tab::Maps => "Maps",
            Tab::Regs => "Registers",
            Tab::Memory => "Memory",
            Tab::Backtrace => "Backtrace",
            Tab::Console => "Console",
        }
    }
}

/// Which pane keys move in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Procs,
    Detail,
    /// Keys go to the guest.
    Console,
}

/// A walk the UI asked for.
#[derive(Clone, Debug)]
pub enum WalkState {
    Pending,
    Done(Arc<Walk>),
    Failed(String),
}

/// The memory view.
#[derive(Clone, Debug, Default)]
pub struct MemView {
    pub addr: u64,
    pub label: String,
    pub bytes: Vec<Option<u8>>,
    pub note: Option<String>,
    pub pending: bool,
    /// Read at least once for this snapshot.
    pub loaded: bool,
}

/// A scrollable text window over everything (translate, vmprint).
#[derive(Clone, Debug)]
pub struct Popup {
    pub title: String,
    pub lines: Vec<String>,
    pub scroll: usize,
}

/// Text input at the bottom: a command (`:`) or a filter (`/`).
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub text: String,
    /// Position in the history while browsing it.
    pub history_at: Option<usize>,
}

/// Where things were drawn, for the mouse.
#[derive(Clone, Debug, Default)]
pub struct Hits {
    pub procs: Rect,
    /// Screen row of the first process row.
    pub procs_first_row: u16,
    pub procs_offset: usize,
    pub detail: Rect,
    /// Tab titles: (tab, x start, x end) on the detail's top border.
    pub tabs: Vec<(Tab, u16, u16)>,
    /// Rows of the detail area's list and its scroll offset.
    pub detail_first_row: u16,
    pub detail_offset: usize,
}

/// Every key the help overlay lists: (keys, what they do).
pub const KEYS: &[(&str, &str)] = &[
    ("c", "continue: let every hart run"),
    ("Ctrl-C  h", "halt every hart (the views refresh)"),
    ("s", "step one instruction on the selected hart"),
    ("t", "select the next hart"),
    (
        "r",
        "refresh: read the machine again (a running guest is halted briefly)",
    ),
    ("f", "follow (launch): refresh when the console goes quiet"),
    (
        "Tab  Shift-Tab",
        "move between the process table and the detail area",
    ),
    ("Left Right  l", "previous / next tab"),
    ("1..6", "go to a tab"),
    (
        "Up Down  j k",
        "move the selection; PgUp PgDn Home End jump",
    ),
    (
        "Enter",
        "page table: expand or fold an entry; process: show its page table",
    ),
    ("Space", "page table: expand or fold an entry"),
    ("e  E", "page table: expand every entry / fold all"),
    (
        "u",
        "page table: switch between the user and the kernel page table",
    ),
    ("a", "show every process slot, or only used ones"),
    ("/", "filter the list in front of you (Esc clears)"),
    ("g", "memory: go to an address or symbol expression"),
    (":", "command line (Tab completes symbols, Up/Down history)"),
    (
        "i",
        "launch: type to the guest in the console tab (Esc or Ctrl-] leaves)",
    ),
    ("R", "reconnect after the connection was lost"),
    ("?", "this help"),
    (
        "q",
        "quit: leave the guest running, halted, or kill QEMU (launch)",
    ),
];

/// Commands of the command line: (name, arguments, what it does).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "translate",
        "EXPR",
        "translate an address through the page table shown",
    ),
    (
        "goto",
        "EXPR",
        "show memory at an address or symbol expression",
    ),
    ("vmprint", "", "the shown page table as xv6's vmprint tree"),
    ("break", "SYMBOL", "a breakpoint (then c to run to it)"),
    ("delete", "", "remove every breakpoint"),
    ("hart", "N", "select hart N"),
    ("proc", "SLOT", "select process slot SLOT"),
    ("continue", "", "let the guest run"),
    ("halt", "", "stop the guest"),
    ("step", "", "one instruction on the selected hart"),
    ("refresh", "", "read the machine again"),
    ("help", "", "the key list"),
    ("quit", "", "leave (asks how)"),
];

/// The whole UI state.
pub struct App {
    /// One line naming the target (`QEMU gdb stub at localhost:1234`).
    pub target_name: String,
    /// Started by `kinspect launch` (a console, and "kill QEMU" on quit).
    pub launched: bool,
    /// A saved machine (`--snapshot`): nothing to leave running or halted,
    /// so `q` quits at once.
    pub read_only: bool,
    pub symbols: Option<Arc<Symbols>>,
    /// Sorted names for completion.
    pub symbol_names: Vec<String>,
    pub snapshot: Option<Snapshot>,
    pub running: bool,
    /// The connection is lost (why).
    pub lost: Option<String>,
    pub hart: usize,
    /// Selected process slot.
    pub slot: Option<usize>,
    pub show_all_slots: bool,
    pub focus: Focus,
    pub tab: Tab,
    /// Page table tab: the kernel page table instead of the user one.
    pub kernel_table: bool,
    pub walks: HashMap<u64, WalkState>,
    /// Expanded page-table entries: (root, level, va).
    pub expanded: HashSet<(u64, usize, u64)>,
    /// `e` was pressed while the walk was still on its way.
    pub expand_all_pending: bool,
    /// Cursor in the detail tab's list, per tab.
    pub cursor: HashMap<&'static str, usize>,
    pub mem: MemView,
    /// Chains of processes not on a hart, from their saved context.
    pub proc_backtraces: HashMap<usize, Option<Result<super::snapshot::Backtrace, String>>>,
    pub console: ConsoleBuf,
    pub console_scroll: usize,
    /// Follow mode (launch): refresh when the console goes quiet.
    pub follow: bool,
    pub last_console: Option<Instant>,
    pub last_sample: Option<Instant>,
    pub input: Option<Input>,
    /// The input is a filter (`/`), not a command (`:`).
    pub input_is_filter: bool,
    pub history: Vec<String>,
    /// Filters: processes, page table, maps.
    pub filter: HashMap<&'static str, String>,
    pub popup: Option<Popup>,
    pub help: bool,
    pub help_scroll: usize,
    pub quit_dialog: bool,
    /// Set when the user chose how to leave.
    pub quit: Option<Leave>,
    pub message: String,
    pub message_is_error: bool,
    /// What the worker is doing, when it takes a while.
    pub busy: Option<String>,
    pub outbox: Vec<Request>,
    /// Bytes to type into the guest's console (launch).
    pub console_out: Vec<u8>,
    pub no_color: bool,
    pub hits: Hits,
    /// Frozen clock for rendering tests (ages shown relative to it).
    pub now: Option<SystemTime>,
    /// The panic was seen (its hart selected once, not on every refresh).
    pub panic_seen: bool,
    /// `launch`: the QEMU it started has exited (said once).
    pub qemu_exited: bool,
}

impl App {
    pub fn new(target_name: String, symbols: Option<Arc<Symbols>>, launched: bool) -> App {
        let mut symbol_names: Vec<String> = Vec::new();
        if let Some(s) = &symbols {
            symbol_names.extend(
                s.elf_symbols()
                    .map(|e| e.demangled.clone())
                    .filter(|n| !n.is_empty() && !n.starts_with('.') && !n.starts_with('$')),
            );
            if let Ok(g) = s.global_names() {
                symbol_names.extend(g);
            }
        }
        symbol_names.sort();
        symbol_names.dedup();
        App {
            target_name,
            launched,
            read_only: false,
            symbols,
            symbol_names,
            snapshot: None,
            running: false,
            lost: None,
            hart: 0,
            slot: None,
            show_all_slots: false,
            focus: Focus::Procs,
            tab: Tab::PageTable,
            kernel_table: false,
            walks: HashMap::new(),
            expanded: HashSet::new(),
            expand_all_pending: false,
            cursor: HashMap::new(),
            mem: MemView::default(),
            proc_backtraces: HashMap::new(),
            console: ConsoleBuf::default(),
            console_scroll: 0,
            follow: launched,
            last_console: None,
            last_sample: None,
            input: None,
            input_is_filter: false,
            history: Vec::new(),
            filter: HashMap::new(),
            popup: None,
            help: false,
            help_scroll: 0,
            quit_dialog: false,
            quit: None,
            message: String::new(),
            message_is_error: false,
            busy: Some("attaching…".into()),
            outbox: Vec::new(),
            console_out: Vec::new(),
            no_color: false,
            hits: Hits::default(),
            now: None,
            panic_seen: false,
            qemu_exited: false,
        }
    }

    pub fn tabs(&self) -> Vec<Tab> {
        let mut t = vec![
            Tab::PageTable,
            Tab::Maps,
            Tab::Regs,
            Tab::Memory,
            Tab::Backtrace,
        ];
        if self.launched {
            t.push(Tab::Console);
        }
        t
    }

    fn say(&mut self, m: impl Into<String>) {
        self.message = m.into();
        self.message_is_error = false;
    }

    fn error(&mut self, m: impl Into<String>) {
        self.message = m.into();
        self.message_is_error = true;
    }

    fn send(&mut self, r: Request, busy: &str) {
        if let Some(l) = &self.lost {
            if !matches!(r, Request::Reconnect | Request::Finish(_)) {
                let l = l.clone();
                self.error(format!("connection lost ({l}): press R to reconnect"));
                return;
            }
        }
        self.busy = Some(busy.to_string());
        self.outbox.push(r);
    }

    // ---------------------------------------------------------- selection

    /// The process rows shown (used slots unless `a`), filtered.
    pub fn visible_procs(&self) -> Vec<&ProcRow> {
        let Some(Ok(procs)) = self.snapshot.as_ref().map(|s| &s.procs) else {
            return Vec::new();
        };
        let f = self.filter.get("procs").map(|s| s.to_lowercase());
        procs
            .iter()
            .filter(|p| self.show_all_slots || !p.unused())
            .filter(|p| match &f {
                Some(f) if !f.is_empty() => {
                    p.name.to_lowercase().contains(f.as_str())
                        || p.state.contains(f.as_str())
                        || p.pid.to_string() == *f
                }
                _ => true,
            })
            .collect()
    }

    pub fn selected_proc(&self) -> Option<&ProcRow> {
        let slot = self.slot?;
        match self.snapshot.as_ref().map(|s| &s.procs) {
            Some(Ok(p)) => p.iter().find(|p| p.slot == slot),
            _ => None,
        }
    }

    pub fn hart_snap(&self) -> Option<&super::snapshot::HartSnap> {
        self.snapshot.as_ref()?.harts.get(self.hart)
    }

    /// The page table the page-table and maps tabs show, and its name.
    pub fn shown_root(&self) -> Option<(u64, String)> {
        if let Some(p) = self.selected_proc() {
            if self.kernel_table {
                if let Some(k) = p.kpagetable.filter(|k| *k != 0) {
                    return Some((
                        k,
                        format!("kernel page table of pid {} `{}`", p.pid, p.name),
                    ));
                }
                if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
                    return Some((k, "the kernel page table (kernel_pagetable)".into()));
                }
            } else if p.pagetable != 0 {
                return Some((
                    p.pagetable,
                    format!("user page table of pid {} `{}`", p.pid, p.name),
                ));
            }
        }
        if self.kernel_table || self.selected_proc().is_none() {
            if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
                return Some((k, "the kernel page table (kernel_pagetable)".into()));
            }
        }
        let h = self.hart_snap()?;
        let s = Satp(h.csr(Csr::Satp)?);
        (s.mode() == SatpMode::Sv39).then(|| (s.root_pa(), format!("hart {}'s satp", h.hart)))
    }

    /// Root for translating kernel addresses (memory view, expressions).
    pub fn kernel_root(&self) -> Option<u64> {
        if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
            return Some(k);
        }
        let s = Satp(self.hart_snap()?.csr(Csr::Satp)?);
        (s.mode() == SatpMode::Sv39).then(|| s.root_pa())
    }

    fn cursor_key(&self) -> &'static str {
        match self.focus {
            Focus::Procs => "procs",
            _ => match self.tab {
                Tab::PageTable => "pt",
                Tab::Maps => "maps",
                Tab::Regs => "regs",
                Tab::Memory => "mem",
                Tab::Backtrace => "bt",
                Tab::Console => "console",
            },
        }
    }

    pub fn cursor_of(&self, key: &str) -> usize {
        self.cursor.get(key).copied().unwrap_or(0)
    }

    // --------------------------------------------------------- page table

    /// The visible rows of the page-table tree: indexes into walk.entries.
    pub fn pt_rows(&self, root: u64, w: &Walk) -> Vec<usize> {
        let f = self
            .filter
            .get("pt")
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        let mut rows = Vec::new();
        // The levels whose entry on the way down is folded: skip below it.
        let mut hide_below: Option<usize> = None;
        for (i, e) in w.entries.iter().enumerate() {
            if let Some(l) = hide_below {
                if e.level < l {
                    continue;
                }
                hide_below = None;
            }
            let is_table = e.kind() == kinspect_sv39::PteKind::Pointer;
            if is_table && !self.expanded.contains(&(root, e.level, e.va)) && f.is_empty() {
                hide_below = Some(e.level);
            }
            if !f.is_empty() {
                let line = super::view::pt_line_text(e).to_lowercase();
                if !line.contains(&f) {
                    continue;
                }
            }
            rows.push(i);
        }
        rows
    }

    fn toggle_pt(&mut self, all: Option<bool>) {
        let Some((root, _)) = self.shown_root() else {
            return;
        };
        let Some(WalkState::Done(w)) = self.walks.get(&root).cloned() else {
            self.expand_all_pending = all == Some(true);
            return;
        };
        match all {
            Some(true) => {
                for e in &w.entries {
                    if e.kind() == kinspect_sv39::PteKind::Pointer {
                        self.expanded.insert((root, e.level, e.va));
                    }
                }
            }
            Some(false) => self.expanded.retain(|(r, _, _)| *r != root),
            None => {
                let rows = self.pt_rows(root, &w);
                let c = self.cursor_of("pt").min(rows.len().saturating_sub(1));
                let Some(&i) = rows.get(c) else { return };
                let e = w.entries[i];
                if e.kind() != kinspect_sv39::PteKind::Pointer {
                    self.say(format!(
                        "a leaf: maps {:#x} -> {:#x}, nothing below it",
                        e.va,
                        e.pte.raw_pa()
                    ));
                    return;
                }
                let k = (root, e.level, e.va);
                if !self.expanded.remove(&k) {
                    self.expanded.insert(k);
                }
            }
        }
    }

    // -------------------------------------------------------------- input

    /// The worker's answer.
    pub fn apply(&mut self, r: Reply) {
        match r {
            Reply::Snapshot(s) => {
                self.busy = None;
                self.walks.clear();
                self.proc_backtraces.clear();
                self.mem.loaded = false;
                self.mem.pending = false;
                if self.hart >= s.harts.len() {
                    self.hart = 0;
                }
                let keep = self.slot.filter(|slot| {
                    matches!(&s.procs, Ok(p) if p.iter().any(|p| p.slot == *slot && (self.show_all_slots || !p.unused())))
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
            Reply::Running(r) => {
                self.running = r;
                self.busy = None;
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
                if self.expand_all_pending && self.shown_root().map(|r| r.0) == Some(root) {
                    self.expand_all_pending = false;
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
            Reply::Popup { title, lines } => {
                self.busy = None;
                self.popup = Some(Popup {
                    title,
                    lines,
                    scroll: 0,
                });
            }
            Reply::ProcBacktrace(slot, bt) => {
                self.busy = None;
                self.proc_backtraces.insert(slot, Some(bt));
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
            Reply::Message(m) => {
                self.busy = None;
                self.say(m);
            }
            Reply::Error(e) => {
                self.busy = None;
                self.mem.pending = false;
                self.error(e);
            }
            Reply::Progress(p) => self.busy = Some(p),
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
                self.proc_backtraces.clear();
                self.expand_all_pending = false;
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
        self.console.push(b);
        self.last_console = Some(Instant::now());
    }

    /// Ask for what the current view needs and nobody asked for yet; and
    /// in follow mode, refresh once the console has gone quiet.
    pub fn tick(&mut self) {
        if self.lost.is_some() || self.snapshot.is_none() {
            return;
        }
        if matches!(self.tab, Tab::PageTable | Tab::Maps) {
            if let Some((root, _)) = self.shown_root() {
                if let std::collections::hash_map::Entry::Vacant(e) = self.walks.entry(root) {
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
                if let std::collections::hash_map::Entry::Vacant(e) =
                    self.proc_backtraces.entry(slot)
                {
                    e.insert(None);
                    self.send(Request::ProcBacktrace(slot), "reading the saved context…");
                }
            }
        }
        if self.tab == Tab::Memory && !self.mem.loaded && !self.mem.pending {
            if self.mem.label.is_empty() && self.mem.addr == 0 {
                // Start at the selected process's kernel stack.
                let start = match (self.selected_proc(), self.hart_snap()) {
                    (Some(p), _) => Some((p.kstack, format!("proc[{}].kstack", p.slot))),
                    (None, Some(h)) => Some((h.regs.x[2] & !0xf, format!("hart {} sp", h.hart))),
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
        if self.follow && self.running && self.busy.is_none() {
            if let Some(t) = self.last_console {
                let quiet = t.elapsed() > Duration::from_millis(400);
                let fresh = self.last_sample.is_none_or(|s| s < t);
                if quiet && fresh {
                    self.last_sample = Some(Instant::now());
                    self.send(Request::Sample, "refreshing…");
                }
            }
        }
    }

    fn sync_proc_cursor(&mut self) {
        let idx = self
            .visible_procs()
            .iter()
            .position(|p| Some(p.slot) == self.slot);
        if let Some(i) = idx {
            self.cursor.insert("procs", i);
        } else {
            self.cursor.insert("procs", 0);
        }
    }

    /// Move the cursor in the focused list by `d` rows.
    fn move_by(&mut self, d: isize) {
        let key = self.cursor_key();
        if key == "console" {
            // Scrolling back through the console.
            let max = self.console.lines.len();
            self.console_scroll =
                (self.console_scroll as isize - d).clamp(0, max as isize) as usize;
            return;
        }
        if key == "mem" {
            let step = 16u64.wrapping_mul(d as i64 as u64);
            self.mem.addr = self.mem.addr.wrapping_add(step);
            self.mem.loaded = false;
            self.mem.label.clear();
            self.mem.label.push_str("scrolled");
            return;
        }
        let len = self.list_len(key);
        let c = self.cursor_of(key) as isize + d;
        let c = c.clamp(0, len.saturating_sub(1) as isize) as usize;
        self.cursor.insert(key, c);
        if key == "procs" {
            let slot = self.visible_procs().get(c).map(|p| p.slot);
            if slot != self.slot {
                self.slot = slot;
                self.mem.loaded = false;
                self.mem.label.clear();
                self.mem.addr = 0;
            }
        }
    }

    /// Rows in a list (for clamping the cursor).
    pub fn list_len(&self, key: &str) -> usize {
        match key {
            "procs" => self.visible_procs().len(),
            "pt" => match self.shown_root() {
                Some((root, _)) => match self.walks.get(&root) {
                    Some(WalkState::Done(w)) => self.pt_rows(root, w).len(),
                    _ => 0,
                },
                None => 0,
            },
            "maps" => super::view::maps_lines(self).len(),
            "regs" => super::view::regs_lines(self).len(),
            "bt" => self
                .hart_snap()
                .map(|h| h.backtrace.frames.len() + 2)
                .unwrap_or(0),
            _ => 0,
        }
    }

    fn next_tab(&mut self, d: isize) {
        let tabs = self.tabs();
        let i = tabs.iter().position(|t| *t == self.tab).unwrap_or(0) as isize;
        let n = tabs.len() as isize;
        self.tab = tabs[((i + d) % n + n) as usize % tabs.len()];
        if self.focus == Focus::Console && self.tab != Tab::Console {
            self.focus = Focus::Detail;
        }
    }

    /// Tab and Shift-Tab: between the process table and the detail area.
    /// Never into the guest's console: typing to the guest is entered
    /// only with `i`, so a digit meant for a tab never reaches the shell.
    fn cycle_focus(&mut self) {
        self.focus = match self.focus {
            Focus::Procs => Focus::Detail,
            Focus::Detail | Focus::Console => Focus::Procs,
        };
    }

    /// `i`: type to the guest (launch only: `attach` does not own QEMU's
    /// serial port).
    fn enter_console(&mut self) {
        if !self.launched {
            return self.error(
                "no console: attach does not own QEMU's serial port (kinspect launch does)",
            );
        }
        self.tab = Tab::Console;
        self.focus = Focus::Console;
        self.console_scroll = 0;
    }

    /// Leave the console pane's typing mode; the console stays in view.
    fn leave_console(&mut self) {
        self.focus = Focus::Detail;
        self.say("left the console (i types to the guest again)");
    }

    /// A key press.
    pub fn on_key(&mut self, k: KeyEvent) {
        if self.quit_dialog {
            match k.code {
                KeyCode::Char('r') => self.quit = Some(Leave::Running),
                KeyCode::Char('h') => self.quit = Some(Leave::Halted),
                KeyCode::Char('k') if self.launched => self.quit = Some(Leave::Kill),
                KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('q') => self.quit_dialog = false,
                _ => {}
            }
            return;
        }
        if self.help {
            match k.code {
                KeyCode::Down | KeyCode::Char('j') => self.help_scroll += 1,
                KeyCode::Up | KeyCode::Char('k') => {
                    self.help_scroll = self.help_scroll.saturating_sub(1)
                }
                _ => self.help = false,
            }
            return;
        }
        if let Some(p) = &mut self.popup {
            match k.code {
                KeyCode::Down | KeyCode::Char('j') => {
                    p.scroll = (p.scroll + 1).min(p.lines.len().saturating_sub(1))
                }
                KeyCode::Up | KeyCode::Char('k') => p.scroll = p.scroll.saturating_sub(1),
                KeyCode::PageDown => {
                    p.scroll = (p.scroll + 10).min(p.lines.len().saturating_sub(1))
                }
                KeyCode::PageUp => p.scroll = p.scroll.saturating_sub(10),
                _ => self.popup = None,
            }
            return;
        }
        if self.input.is_some() {
            self.on_input_key(k);
            return;
        }
        if self.focus == Focus::Console {
            self.on_console_key(k);
            return;
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        // A message lasts until the next key.
        self.message.clear();
        self.message_is_error = false;
        match k.code {
            KeyCode::Char('c') if ctrl => self.halt(),
            KeyCode::Char('q') if self.read_only => self.quit = Some(Leave::Halted),
            KeyCode::Char('q') => self.quit_dialog = true,
            KeyCode::Char('?') => {
                self.help = true;
                self.help_scroll = 0;
            }
            KeyCode::Char('c') => self.cont(),
            KeyCode::Char('h') => self.halt(),
            KeyCode::Char('s') => self.step(),
            KeyCode::Char('r') => self.refresh(),
            KeyCode::Char('R') => self.send(Request::Reconnect, "reconnecting…"),
            KeyCode::Char('t') => self.select_hart(self.hart + 1),
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                let on = if self.follow { "on" } else { "off" };
                self.say(format!("follow {on}: refresh when the console goes quiet"));
            }
            KeyCode::Char('u') => {
                self.kernel_table = !self.kernel_table;
                self.cursor.insert("pt", 0);
                if !matches!(self.tab, Tab::PageTable | Tab::Maps) {
                    self.tab = Tab::PageTable;
                }
            }
            KeyCode::Char('a') => {
                self.show_all_slots = !self.show_all_slots;
                self.sync_proc_cursor();
            }
            KeyCode::Char('e') => self.toggle_pt(Some(true)),
            KeyCode::Char('E') => self.toggle_pt(Some(false)),
            KeyCode::Char('/') => {
                let key = self.filter_key();
                self.input_is_filter = true;
                self.input = Some(Input {
                    text: self.filter.get(key).cloned().unwrap_or_default(),
                    history_at: None,
                });
            }
            KeyCode::Char(':') => {
                self.input_is_filter = false;
                self.input = Some(Input::default());
            }
            KeyCode::Char('g') => {
                self.input_is_filter = false;
                self.input = Some(Input {
                    text: "goto ".into(),
                    history_at: None,
                });
            }
            KeyCode::Char('i') => self.enter_console(),
            KeyCode::Char(c @ '1'..='9') => {
                let tabs = self.tabs();
                if let Some(t) = tabs.get((c as u8 - b'1') as usize) {
                    self.tab = *t;
                    self.focus = Focus::Detail;
                }
            }
            KeyCode::Tab | KeyCode::BackTab => self.cycle_focus(),
            KeyCode::Left => self.next_tab(-1),
            KeyCode::Right | KeyCode::Char('l') => self.next_tab(1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::PageDown => self.move_by(10),
            KeyCode::PageUp => self.move_by(-10),
            KeyCode::Home => self.move_by(-1_000_000),
            KeyCode::End => self.move_by(1_000_000),
            KeyCode::Enter | KeyCode::Char(' ') => match self.focus {
                Focus::Procs => {
                    // The selected process's page table, as the help says.
                    self.focus = Focus::Detail;
                    self.tab = Tab::PageTable;
                    if let Some(p) = self.selected_proc() {
                        let m = format!(
                            "{} page table of pid {} `{}` (u switches)",
                            if self.kernel_table { "kernel" } else { "user" },
                            p.pid,
                            p.name
                        );
                        self.say(m);
                    }
                }
                _ if self.tab == Tab::PageTable => self.toggle_pt(None),
                _ if self.tab == Tab::Console => self.say("i types to the guest"),
                _ => {}
            },
            KeyCode::Esc => {
                let key = self.filter_key();
                if self.filter.remove(key).is_some() {
                    self.say("filter cleared");
                } else {
                    self.message.clear();
                }
            }
            _ => {}
        }
    }

    fn filter_key(&self) -> &'static str {
        match (self.focus, self.tab) {
            (Focus::Procs, _) => "procs",
            (_, Tab::Maps) => "maps",
            (_, Tab::PageTable) => "pt",
            _ => "procs",
        }
    }

    fn on_console_key(&mut self, k: KeyEvent) {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let bytes: Vec<u8> = match k.code {
            KeyCode::Esc => {
                self.leave_console();
                return;
            }
            KeyCode::Char(']') if ctrl => {
                self.leave_console();
                return;
            }
            // Esc followed quickly by a key arrives as Alt+key: leave the
            // console, then take the key as a command.
            KeyCode::Char(_) if k.modifiers.contains(KeyModifiers::ALT) => {
                self.leave_console();
                self.on_key(KeyEvent::new(k.code, k.modifiers - KeyModifiers::ALT));
                return;
            }
            KeyCode::Char(c) if ctrl && c.is_ascii_alphabetic() => {
                vec![(c.to_ascii_lowercase() as u8) & 0x1f]
            }
            KeyCode::Char(c) => c.to_string().into_bytes(),
            KeyCode::Enter => vec![b'\r'],
            KeyCode::Backspace => vec![0x7f],
            KeyCode::Tab => vec![b'\t'],
            KeyCode::PageUp => {
                self.move_by(-10);
                return;
            }
            KeyCode::PageDown => {
                self.move_by(10);
                return;
            }
            _ => return,
        };
        self.console_scroll = 0;
        self.console_out.extend(bytes);
    }

    fn on_input_key(&mut self, k: KeyEvent) {
        let Some(mut inp) = self.input.take() else {
            return;
        };
        match k.code {
            KeyCode::Esc => {
                if self.input_is_filter {
                    let key = self.filter_key();
                    self.filter.remove(key);
                }
                return;
            }
            KeyCode::Enter => {
                if self.input_is_filter {
                    let key = self.filter_key();
                    if inp.text.is_empty() {
                        self.filter.remove(key);
                    } else {
                        self.filter.insert(key, inp.text.clone());
                    }
                    self.cursor.insert(key, 0);
                } else {
                    let line = inp.text.trim().to_string();
                    if !line.is_empty() {
                        if self.history.last() != Some(&line) {
                            self.history.push(line.clone());
                        }
                        self.run_command(&line);
                    }
                }
                return;
            }
            KeyCode::Backspace => {
                inp.text.pop();
            }
            KeyCode::Up if !self.input_is_filter && !self.history.is_empty() => {
                let at = match inp.history_at {
                    Some(0) => 0,
                    Some(i) => i - 1,
                    None => self.history.len() - 1,
                };
                inp.history_at = Some(at);
                inp.text = self.history[at].clone();
            }
            KeyCode::Down if !self.input_is_filter => match inp.history_at {
                Some(i) if i + 1 < self.history.len() => {
                    inp.history_at = Some(i + 1);
                    inp.text = self.history[i + 1].clone();
                }
                _ => {
                    inp.history_at = None;
                    inp.text.clear();
                }
            },
            KeyCode::Tab if !self.input_is_filter => {
                let (text, msg) = self.complete(&inp.text);
                inp.text = text;
                if let Some(m) = msg {
                    self.say(m);
                }
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => inp.text.clear(),
            KeyCode::Char(c) => inp.text.push(c),
            _ => {}
        }
        if self.input_is_filter {
            // Filters apply as you type.
            let key = self.filter_key();
            self.filter.insert(key, inp.text.clone());
            self.cursor.insert(key, 0);
        }
        self.input = Some(inp);
    }

    /// Complete the word before the end: a command name first, then
    /// symbol names. Returns the new text and, when ambiguous, a message
    /// listing candidates.
    pub fn complete(&self, text: &str) -> (String, Option<String>) {
        let start = text
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &text[start..];
        let first = !text[..start].contains(|c: char| !c.is_whitespace());
        let fields = if !first && text[..start].ends_with('.') {
            self.field_names(&text[..start - 1])
        } else {
            Vec::new()
        };
        let cands: Vec<&str> = if !fields.is_empty() {
            fields
                .iter()
                .map(String::as_str)
                .filter(|f| f.starts_with(word))
                .collect()
        } else if first {
            COMMANDS
                .iter()
                .map(|c| c.0)
                .filter(|c| c.starts_with(word))
                .collect()
        } else {
            if word.is_empty() {
                return (
                    text.to_string(),
                    Some("type the start of a symbol, then Tab".into()),
                );
            }
            let from = self.symbol_names.partition_point(|n| n.as_str() < word);
            self.symbol_names[from..]
                .iter()
                .take_while(|n| n.starts_with(word))
                .map(String::as_str)
                .collect()
        };
        match cands.len() {
            0 => (
                text.to_string(),
                Some(format!("no completion for `{word}`")),
            ),
            1 => {
                let sep = if first { " " } else { "" };
                (format!("{}{}{sep}", &text[..start], cands[0]), None)
            }
            n => {
                let mut common = cands[0].to_string();
                for c in &cands[1..] {
                    while !c.starts_with(&common) {
                        common.pop();
                    }
                }
                let shown: Vec<&str> = cands.iter().take(6).copied().collect();
                let more = if n > 6 {
                    format!(" … ({n} in all)")
                } else {
                    String::new()
                };
                (
                    format!("{}{common}", &text[..start]),
                    Some(format!("{}{more}", shown.join("  "))),
                )
            }
        }
    }

    /// The field names of the struct an expression names (`proc[3]` ->
    /// `lock, state, ...`), when that needs no target memory.
    fn field_names(&self, before_dot: &str) -> Vec<String> {
        let Some(syms) = &self.symbols else {
            return Vec::new();
        };
        let expr = before_dot
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or(before_dot);
        let Ok(kinspect_symbols::Evaluated::Place { ty: Some(ty), .. }) =
            syms.eval(expr, &mut kinspect_symbols::NoMemory)
        else {
            return Vec::new();
        };
        match syms.resolve(ty).map(|t| t.kind.clone()) {
            Ok(kinspect_symbols::TypeKind::Struct(s)) => {
                s.members.iter().filter_map(|m| m.name.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Run a command-line command.
    pub fn run_command(&mut self, line: &str) {
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        let cmd = cmd.trim_start_matches(':');
        let known: Vec<&str> = COMMANDS
            .iter()
            .map(|c| c.0)
            .filter(|c| c.starts_with(cmd))
            .collect();
        let cmd = match known.as_slice() {
            [one] => *one,
            _ if COMMANDS.iter().any(|c| c.0 == cmd) => cmd,
            [] => {
                self.error(format!("unknown command `{cmd}` (try :help)"));
                return;
            }
            many => {
                self.error(format!("`{cmd}` could be {}", many.join(", ")));
                return;
            }
        };
        let need_arg = |s: &mut App, what: &str| {
            s.error(format!(":{cmd} needs {what}"));
        };
        match cmd {
            "translate" => {
                if arg.is_empty() {
                    return need_arg(self, "an address or symbol expression, e.g. proc[3].kstack");
                }
                let Some((root, what)) = self.shown_root() else {
                    return self.error("no page table to translate through (satp is Bare?)");
                };
                self.send(
                    Request::Translate {
                        expr: arg.to_string(),
                        root,
                        what,
                    },
                    "translating…",
                );
            }
            "goto" => {
                if arg.is_empty() {
                    return need_arg(self, "an address or symbol expression, e.g. etext");
                }
                self.tab = Tab::Memory;
                self.focus = Focus::Detail;
                self.mem.pending = true;
                let root = self.kernel_root();
                self.send(
                    Request::Goto {
                        expr: arg.to_string(),
                        root,
                    },
                    "reading memory…",
                );
            }
            "vmprint" => match self.shown_root() {
                Some((root, what)) => self.send(Request::Vmprint { root, what }, "walking…"),
                None => self.error("no page table to print (satp is Bare?)"),
            },
            "break" => {
                if arg.is_empty() {
                    return need_arg(self, "a function, e.g. panic");
                }
                self.send(Request::Break(arg.to_string()), "setting a breakpoint…");
            }
            "delete" => self.send(Request::Delete, "removing breakpoints…"),
            "hart" => match arg.parse::<usize>() {
                Ok(h) => self.select_hart(h),
                Err(_) => need_arg(self, "a hart number"),
            },
            "proc" => match arg.parse::<usize>() {
                Ok(s) => {
                    let exists = matches!(self.snapshot.as_ref().map(|s| &s.procs), Some(Ok(p)) if s < p.len());
                    if exists {
                        self.slot = Some(s);
                        if self.visible_procs().iter().all(|p| p.slot != s) {
                            self.show_all_slots = true;
                        }
                        self.sync_proc_cursor();
                    } else {
                        self.error(format!("no process slot {s}"));
                    }
                }
                Err(_) => need_arg(self, "a slot number"),
            },
            "continue" => self.cont(),
            "halt" => self.halt(),
            "step" => self.step(),
            "refresh" => self.refresh(),
            "help" => self.help = true,
            "quit" if self.read_only => self.quit = Some(Leave::Halted),
            "quit" => self.quit_dialog = true,
            _ => {}
        }
    }

    fn select_hart(&mut self, h: usize) {
        let n = self.snapshot.as_ref().map(|s| s.harts.len()).unwrap_or(0);
        if n == 0 {
            return;
        }
        if h >= n && h != self.hart + 1 {
            return self.error(format!("no hart {h}: the machine has harts 0..{}", n - 1));
        }
        self.hart = h % n;
        self.say(format!("hart {} selected", self.hart));
    }

    fn cont(&mut self) {
        if self.running {
            return self.say("already running");
        }
        self.send(Request::Resume, "continuing…");
    }

    fn halt(&mut self) {
        if !self.running {
            self.say("already halted");
            return;
        }
        self.send(Request::Halt, "halting…");
    }

    fn step(&mut self) {
        if self.running {
            return self.error("halt first (h), then step");
        }
        self.send(Request::Step(self.hart), "stepping…");
    }

    fn refresh(&mut self) {
        if self.running {
            self.send(Request::Sample, "refreshing…");
        } else {
            self.send(Request::Snapshot, "refreshing…");
        }
    }

    /// A mouse event: click selects a process or a tab, the wheel scrolls.
    pub fn on_mouse(&mut self, m: MouseEvent) {
        if self.help || self.popup.is_some() || self.quit_dialog || self.input.is_some() {
            return;
        }
        let inside = |r: Rect| {
            m.column >= r.x && m.column < r.x + r.width && m.row >= r.y && m.row < r.y + r.height
        };
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if inside(self.hits.procs) {
                    self.focus = Focus::Procs;
                    if m.row >= self.hits.procs_first_row {
                        let i =
                            (m.row - self.hits.procs_first_row) as usize + self.hits.procs_offset;
                        let c = self.cursor_of("procs") as isize;
                        self.move_by(i as isize - c);
                    }
                } else if inside(self.hits.detail) {
                    if m.row == self.hits.detail.y {
                        let tab = self
                            .hits
                            .tabs
                            .iter()
                            .find(|(_, a, b)| m.column >= *a && m.column < *b)
                            .map(|t| t.0);
                        if let Some(t) = tab {
                            self.tab = t;
                        }
                    }
                    // A click never starts typing to the guest (`i` does).
                    if self.focus != Focus::Console || self.tab != Tab::Console {
                        self.focus = Focus::Detail;
                    }
                    if self.focus == Focus::Detail && m.row >= self.hits.detail_first_row {
                        let i =
                            (m.row - self.hits.detail_first_row) as usize + self.hits.detail_offset;
                        let key = self.cursor_key();
                        if key != "mem" {
                            let c = self.cursor_of(key) as isize;
                            self.move_by(i as isize - c);
                        }
                    }
                }
            }
            MouseEventKind::ScrollDown => {
                if inside(self.hits.procs) {
                    self.focus = Focus::Procs;
                }
                self.move_by(3);
            }
            MouseEventKind::ScrollUp => {
                if inside(self.hits.procs) {
                    self.focus = Focus::Procs;
                }
                self.move_by(-3);
            }
            _ => {}
        }
    }

    /// How old the shown state is, when the guest runs.
    pub fn stale_for(&self) -> Option<Duration> {
        if !self.running {
            return None;
        }
        let taken = self.snapshot.as_ref()?.taken;
        let now = self.now.unwrap_or_else(SystemTime::now);
        Some(now.duration_since(taken).unwrap_or_default())
    }
}
