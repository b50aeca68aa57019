//! The TUI's state: plain data, one struct per pane and tab.
//!
//! ```text
//!  keys, mouse ─▶ keys.rs ─┐                       ┌─▶ Request (outbox) ─▶ worker
//!  `:` line ───▶ command.rs ├─▶ App (this file) ───┤
//!  worker Reply ▶ apply.rs ─┘                       └─▶ view::draw(&App) ─▶ Hits
//! ```
//!
//! [`App`] holds what the worker last read (the [`Snapshot`], walks,
//! memory), what the person selected (hart, process, tab, focus, and each
//! pane's own state from `panes.rs`: the cursor and filter of each list,
//! typed by [`ListId`]), and an outbox of
//! [`Request`]s. Keys and mouse change it (`keys.rs`), the command line
//! runs [`Command`](super::command::Command)s on it (`command.rs`), worker
//! replies update it (`apply.rs`), and `view` draws it without changing
//! it. Nothing here blocks or touches the target, which is what keeps the
//! UI live while the worker waits on the gdb stub.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kinspect_sv39::{PhysAddr, PteKind, Satp, SatpMode, Walk};
use kinspect_symbols::Symbols;

use super::panes::{BacktraceTab, ConsoleTab, List, MemView, PageTableTab, ProcsPane, WalkState};
use super::popup::Popup;
use super::procs::ProcRow;
use super::snapshot::{HartSnap, Snapshot};
use super::view::Hits;
use super::worker::{Changes, Leave, Request};
use crate::target::{Csr, RunState};

/// The detail area's tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    PageTable,
    Maps,
    Regs,
    Memory,
    Backtrace,
    Console,
    /// What changed since the halt before.
    Changes,
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
            Tab::Changes => "Changes",
        }
    }

    /// The title when the full ones do not fit in one line.
    pub fn short_title(self) -> &'static str {
        match self {
            Tab::PageTable => "Pages",
            Tab::Maps => "Maps",
            Tab::Regs => "Regs",
            Tab::Memory => "Mem",
            Tab::Backtrace => "Trace",
            Tab::Console => "Console",
            Tab::Changes => "Changes",
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

/// The lists a cursor moves in (and the three a filter applies to:
/// processes, page table, maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListId {
    Procs,
    PageTable,
    Maps,
    Regs,
    Backtrace,
    Changes,
}

/// What the cursor keys move in the pane in front of you.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scroll {
    List(ListId),
    /// The memory window: its address moves by 16-byte rows.
    Memory,
    /// The console's scroll-back.
    Console,
}

/// What the bottom line is being typed as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputKind {
    /// `:` (and `g`, which starts it with `goto `).
    #[default]
    Command,
    /// `/`: the filter of this list, applied as you type.
    Filter(ListId),
}

/// Text input at the bottom: a command (`:`) or a filter (`/`).
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
    /// Position in the history while browsing it.
    pub history_at: Option<usize>,
}

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
    pub state: RunState,
    /// The connection is lost (why).
    pub lost: Option<String>,
    pub hart: usize,
    /// Selected process slot.
    pub slot: Option<usize>,
    pub focus: Focus,
    pub tab: Tab,
    pub procs: ProcsPane,
    pub page_table: PageTableTab,
    /// Walks by root: the page-table and maps tabs draw them.
    pub walks: HashMap<PhysAddr, WalkState>,
    pub maps: List,
    pub regs: List,
    pub backtrace: BacktraceTab,
    pub mem: MemView,
    pub console: ConsoleTab,
    /// What changed at the last halt, since the halt before (the worker
    /// compares; `None` until the first halt is read).
    pub changes: Option<Changes>,
    /// The Changes tab's scroll position.
    pub changes_list: List,
    /// Follow mode (launch): refresh when the console goes quiet.
    pub follow: bool,
    pub last_sample: Option<Instant>,
    pub input: Option<Input>,
    pub history: Vec<String>,
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
    /// Live mode: on (`Ok(true)`, the default), turned off with `L`, or
    /// not to be had (`Err`: why).
    pub live_mode: Result<bool, String>,
    /// The last live frame while the guest runs; cleared at a halt.
    pub live: Option<LiveInfo>,
}

/// What the status line and the process table show of live mode.
#[derive(Clone, Debug)]
pub struct LiveInfo {
    pub n: u64,
    pub read: Duration,
    /// Slots changed while read (`~`), and new or changed since the frame
    /// before (`*`).
    pub torn: Vec<usize>,
    pub changed: Vec<usize>,
    /// The followed page table differed between its two walks.
    pub walk_torn: bool,
    /// Its root, mapped pages and their change since the frame before.
    pub pages: Option<(PhysAddr, u64, i64)>,
    pub error: Option<String>,
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
            state: RunState::Halted,
            lost: None,
            hart: 0,
            slot: None,
            focus: Focus::Procs,
            tab: Tab::PageTable,
            procs: ProcsPane::default(),
            page_table: PageTableTab::default(),
            walks: HashMap::new(),
            maps: List::default(),
            regs: List::default(),
            backtrace: BacktraceTab::default(),
            mem: MemView::default(),
            console: ConsoleTab::default(),
            changes: None,
            changes_list: List::default(),
            follow: launched,
            last_sample: None,
            input: None,
            history: Vec::new(),
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
            live_mode: Ok(true),
            live: None,
            now: None,
            panic_seen: false,
            qemu_exited: false,
        }
    }

    pub fn running(&self) -> bool {
        self.state == RunState::Running
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
        // Last, so the other tabs keep their numbers with or without a
        // console.
        t.push(Tab::Changes);
        t
    }

    pub(super) fn say(&mut self, m: impl Into<String>) {
        self.message = m.into();
        self.message_is_error = false;
    }

    pub(super) fn error(&mut self, m: impl Into<String>) {
        self.message = m.into();
        self.message_is_error = true;
    }

    /// Ask the worker; `busy` shows on the bottom line until it answers.
    pub(super) fn send(&mut self, r: Request, busy: &str) {
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

    // ---------------------------------------------------------- lists

    pub fn list(&self, id: ListId) -> &List {
        match id {
            ListId::Procs => &self.procs.list,
            ListId::PageTable => &self.page_table.list,
            ListId::Maps => &self.maps,
            ListId::Regs => &self.regs,
            ListId::Backtrace => &self.backtrace.list,
            ListId::Changes => &self.changes_list,
        }
    }

    pub fn list_mut(&mut self, id: ListId) -> &mut List {
        match id {
            ListId::Procs => &mut self.procs.list,
            ListId::PageTable => &mut self.page_table.list,
            ListId::Maps => &mut self.maps,
            ListId::Regs => &mut self.regs,
            ListId::Backtrace => &mut self.backtrace.list,
            ListId::Changes => &mut self.changes_list,
        }
    }

    /// What the cursor keys move now.
    pub fn scroll_target(&self) -> Scroll {
        match self.focus {
            Focus::Procs => Scroll::List(ListId::Procs),
            _ => match self.tab {
                Tab::PageTable => Scroll::List(ListId::PageTable),
                Tab::Maps => Scroll::List(ListId::Maps),
                Tab::Regs => Scroll::List(ListId::Regs),
                Tab::Backtrace => Scroll::List(ListId::Backtrace),
                Tab::Memory => Scroll::Memory,
                Tab::Console => Scroll::Console,
                Tab::Changes => Scroll::List(ListId::Changes),
            },
        }
    }

    /// The list `/` filters now: the focused one when it has a filter,
    /// else the process table.
    pub fn filter_target(&self) -> ListId {
        match (self.focus, self.tab) {
            (Focus::Procs, _) => ListId::Procs,
            (_, Tab::Maps) => ListId::Maps,
            (_, Tab::PageTable) => ListId::PageTable,
            _ => ListId::Procs,
        }
    }

    /// Rows in a list (for clamping the cursor).
    pub fn list_len(&self, id: ListId) -> usize {
        match id {
            ListId::Procs => self.visible_procs().len(),
            ListId::PageTable => match self.shown_root() {
                Some((root, _)) => match self.walks.get(&root) {
                    Some(WalkState::Done(w)) => self.pt_rows(root, w).len(),
                    _ => 0,
                },
                None => 0,
            },
            ListId::Maps => super::view::maps_lines(self).len(),
            ListId::Regs => super::view::regs_lines(self).len(),
            ListId::Backtrace => self
                .hart_snap()
                .map(|h| h.backtrace.frames.len() + 2)
                .unwrap_or(0),
            ListId::Changes => super::view::changes_lines(self).len(),
        }
    }

    // ---------------------------------------------------------- selection

    /// The process rows shown (used slots unless `a`), filtered.
    pub fn visible_procs(&self) -> Vec<&ProcRow> {
        let Some(Ok(procs)) = self.snapshot.as_ref().map(|s| &s.procs) else {
            return Vec::new();
        };
        let f = self.procs.list.filter.to_lowercase();
        procs
            .iter()
            .filter(|p| self.procs.show_all || !p.unused())
            .filter(|p| {
                f.is_empty()
                    || p.name.to_lowercase().contains(f.as_str())
                    || p.state_name().contains(f.as_str())
                    || p.pid.to_string() == f
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

    pub fn hart_snap(&self) -> Option<&HartSnap> {
        self.snapshot.as_ref()?.harts.get(self.hart)
    }

    /// The page table the page-table and maps tabs show, and its name.
    pub fn shown_root(&self) -> Option<(PhysAddr, String)> {
        let kernel_table = self.page_table.kernel;
        if let Some(p) = self.selected_proc() {
            if kernel_table {
                if let Some(k) = p.kpagetable.filter(|k| k.0 != 0) {
                    return Some((
                        k,
                        format!("kernel page table of pid {} `{}`", p.pid, p.name),
                    ));
                }
                if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
                    return Some((k, "the kernel page table (kernel_pagetable)".into()));
                }
            } else if p.pagetable.0 != 0 {
                return Some((
                    p.pagetable,
                    format!("user page table of pid {} `{}`", p.pid, p.name),
                ));
            }
        }
        if kernel_table || self.selected_proc().is_none() {
            if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
                return Some((k, "the kernel page table (kernel_pagetable)".into()));
            }
        }
        let h = self.hart_snap()?;
        let s = Satp(h.csr(Csr::Satp)?);
        (s.mode() == SatpMode::Sv39).then(|| (s.root(), format!("hart {}'s satp", h.hart)))
    }

    /// Root for translating kernel addresses (memory view, expressions).
    pub fn kernel_root(&self) -> Option<PhysAddr> {
        if let Some(k) = self.snapshot.as_ref().and_then(|s| s.kernel_pagetable) {
            return Some(k);
        }
        let s = Satp(self.hart_snap()?.csr(Csr::Satp)?);
        (s.mode() == SatpMode::Sv39).then(|| s.root())
    }

    /// The visible rows of the page-table tree: indexes into walk.entries.
    pub fn pt_rows(&self, root: PhysAddr, w: &Walk) -> Vec<usize> {
        let f = self.page_table.list.filter.to_lowercase();
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
            let is_table = e.kind() == PteKind::Pointer;
            let expanded = self.page_table.expanded.contains(&(root, e.level, e.va));
            if is_table && !expanded && f.is_empty() {
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

    /// Whether live frames are refreshing the views now.
    pub fn live_now(&self) -> bool {
        self.running() && self.live.is_some() && self.live_mode == Ok(true)
    }

    /// How old the last halt's state is, when the guest runs (live frames
    /// keep the processes and page tables fresh, not the registers).
    pub fn stale_for(&self) -> Option<Duration> {
        if !self.running() {
            return None;
        }
        let taken = self.snapshot.as_ref()?.taken;
        let now = self.now.unwrap_or_else(SystemTime::now);
        Some(now.duration_since(taken).unwrap_or_default())
    }
}
