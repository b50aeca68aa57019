//! What each key and mouse event does to the [`App`].
//!
//! Keys go, in order, to whatever is on top: the quit dialog, the help,
//! a pop-up, the bottom line being typed (`:` or `/`), the guest's
//! console (only after `i`), and otherwise the keymap below. Keys that do
//! what a command does run that [`Command`]. The mouse uses where the last
//! frame put things ([`Hits`](super::app::Hits)).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::app::{App, Focus, Input, InputKind, ListId, Scroll, Tab};
use super::command::Command;
use super::panes::WalkState;
use super::worker::{Leave, Request};

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
        "L",
        "live mode on/off: processes and page table 10 times a second, unhalted",
    ),
    (
        "Tab  Shift-Tab",
        "move between the process table and the detail area",
    ),
    ("Left Right  l", "previous / next tab"),
    (
        "1..7",
        "go to a tab (the last, Changes: what changed since the halt before)",
    ),
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

impl App {
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
                KeyCode::Down | KeyCode::Char('j') => p.scroll_by(1),
                KeyCode::Up | KeyCode::Char('k') => p.scroll_by(-1),
                KeyCode::PageDown => p.scroll_by(10),
                KeyCode::PageUp => p.scroll_by(-10),
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
            KeyCode::Char('c') if ctrl => self.run(Command::Halt),
            KeyCode::Char('q') => self.run(Command::Quit),
            KeyCode::Char('?') => {
                self.help = true;
                self.help_scroll = 0;
            }
            KeyCode::Char('c') => self.run(Command::Continue),
            KeyCode::Char('h') => self.run(Command::Halt),
            KeyCode::Char('s') => self.run(Command::Step),
            KeyCode::Char('r') => self.run(Command::Refresh),
            KeyCode::Char('R') => self.send(Request::Reconnect, "reconnecting…"),
            KeyCode::Char('t') => self.select_hart(self.hart + 1),
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                let on = if self.follow { "on" } else { "off" };
                self.say(format!("follow {on}: refresh when the console goes quiet"));
            }
            KeyCode::Char('u') => {
                self.page_table.kernel = !self.page_table.kernel;
                self.page_table.list.cursor = 0;
                if !matches!(self.tab, Tab::PageTable | Tab::Maps) {
                    self.tab = Tab::PageTable;
                }
            }
            KeyCode::Char('L') => {
                let on = self.live_mode != Ok(true);
                self.send(
                    Request::Live(on),
                    if on {
                        "live mode…"
                    } else {
                        "live mode off…"
                    },
                );
            }
            KeyCode::Char('a') => {
                self.procs.show_all = !self.procs.show_all;
                self.sync_proc_cursor();
            }
            KeyCode::Char('e') => self.toggle_pt(Some(true)),
            KeyCode::Char('E') => self.toggle_pt(Some(false)),
            KeyCode::Char('/') => {
                let id = self.filter_target();
                self.input = Some(Input {
                    kind: InputKind::Filter(id),
                    text: self.list(id).filter.clone(),
                    history_at: None,
                });
            }
            KeyCode::Char(':') => self.input = Some(Input::default()),
            KeyCode::Char('g') => {
                self.input = Some(Input {
                    text: "goto ".into(),
                    ..Input::default()
                })
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
                            if self.page_table.kernel {
                                "kernel"
                            } else {
                                "user"
                            },
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
                let id = self.filter_target();
                if std::mem::take(&mut self.list_mut(id).filter).is_empty() {
                    self.message.clear();
                } else {
                    self.say("filter cleared");
                }
            }
            _ => {}
        }
    }

    /// A key while typing to the guest: every key becomes bytes for its
    /// console, except the ones that leave and PgUp/PgDn (scroll-back).
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
        self.console.scroll = 0;
        self.console_out.extend(bytes);
    }

    /// A key while the bottom line is typed: editing, history and
    /// completion for commands; filters apply as you type.
    fn on_input_key(&mut self, k: KeyEvent) {
        let Some(mut inp) = self.input.take() else {
            return;
        };
        let filter = match inp.kind {
            InputKind::Filter(id) => Some(id),
            InputKind::Command => None,
        };
        match k.code {
            KeyCode::Esc => {
                if let Some(id) = filter {
                    self.list_mut(id).filter.clear();
                }
                return;
            }
            KeyCode::Enter => {
                if let Some(id) = filter {
                    let l = self.list_mut(id);
                    l.filter = inp.text;
                    l.cursor = 0;
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
            KeyCode::Up if filter.is_none() && !self.history.is_empty() => {
                let at = match inp.history_at {
                    Some(0) => 0,
                    Some(i) => i - 1,
                    None => self.history.len() - 1,
                };
                inp.history_at = Some(at);
                inp.text = self.history[at].clone();
            }
            KeyCode::Down if filter.is_none() => match inp.history_at {
                Some(i) if i + 1 < self.history.len() => {
                    inp.history_at = Some(i + 1);
                    inp.text = self.history[i + 1].clone();
                }
                _ => {
                    inp.history_at = None;
                    inp.text.clear();
                }
            },
            KeyCode::Tab if filter.is_none() => {
                let c = self.complete(&inp.text);
                inp.text = c.text;
                if let Some(m) = c.note {
                    self.say(m);
                }
            }
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => inp.text.clear(),
            KeyCode::Char(c) => inp.text.push(c),
            _ => {}
        }
        if let Some(id) = filter {
            // Filters apply as you type.
            let l = self.list_mut(id);
            l.filter = inp.text.clone();
            l.cursor = 0;
        }
        self.input = Some(inp);
    }

    /// A mouse event: click selects a process or a tab, the wheel scrolls.
    pub fn on_mouse(&mut self, m: MouseEvent) {
        if self.help || self.popup.is_some() || self.quit_dialog || self.input.is_some() {
            return;
        }
        let inside = |r: Rect| {
            m.column >= r.x && m.column < r.x + r.width && m.row >= r.y && m.row < r.y + r.height
        };
        let hits = self.hits.clone();
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if inside(hits.procs) {
                    self.focus = Focus::Procs;
                    if m.row >= hits.procs_first_row {
                        let i = (m.row - hits.procs_first_row) as usize + hits.procs_offset;
                        self.move_to(ListId::Procs, i);
                    }
                } else if inside(hits.detail) {
                    if m.row == hits.detail.y {
                        let tab = hits
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
                    if self.focus == Focus::Detail && m.row >= hits.detail_first_row {
                        let i = (m.row - hits.detail_first_row) as usize + hits.detail_offset;
                        if let Scroll::List(id) = self.scroll_target() {
                            self.move_to(id, i);
                        }
                    }
                }
            }
            MouseEventKind::ScrollDown => {
                if inside(hits.procs) {
                    self.focus = Focus::Procs;
                }
                self.move_by(3);
            }
            MouseEventKind::ScrollUp => {
                if inside(hits.procs) {
                    self.focus = Focus::Procs;
                }
                self.move_by(-3);
            }
            _ => {}
        }
    }

    /// Move the cursor in the focused list (or the memory window, or the
    /// console's scroll-back) by `d` rows.
    pub(super) fn move_by(&mut self, d: isize) {
        match self.scroll_target() {
            Scroll::Console => {
                let max = self.console.buf.lines.len();
                self.console.scroll =
                    (self.console.scroll as isize - d).clamp(0, max as isize) as usize;
            }
            Scroll::Memory => {
                let step = 16u64.wrapping_mul(d as i64 as u64);
                self.mem.addr = self.mem.addr.wrapping_add(step);
                self.mem.loaded = false;
                self.mem.label.clear();
                self.mem.label.push_str("scrolled");
            }
            Scroll::List(id) => {
                let c = self.list(id).cursor as isize + d;
                self.move_to(id, c.max(0) as usize);
            }
        }
    }

    /// Put a list's cursor on row `i` (clamped); in the process table
    /// that selects the process.
    fn move_to(&mut self, id: ListId, i: usize) {
        let len = self.list_len(id);
        let c = i.min(len.saturating_sub(1));
        self.list_mut(id).cursor = c;
        if id == ListId::Procs {
            let slot = self.visible_procs().get(c).map(|p| p.slot);
            if slot != self.slot {
                self.slot = slot;
                self.mem.loaded = false;
                self.mem.label.clear();
                self.mem.addr = kinspect_sv39::VirtAddr(0);
            }
        }
    }

    /// The process table's cursor on the selected process.
    pub(super) fn sync_proc_cursor(&mut self) {
        let idx = self
            .visible_procs()
            .iter()
            .position(|p| Some(p.slot) == self.slot);
        self.procs.list.cursor = idx.unwrap_or(0);
    }

    /// Expand or fold: every table entry (`Some(true)`), none
    /// (`Some(false)`), or the one under the cursor (`None`).
    pub(super) fn toggle_pt(&mut self, all: Option<bool>) {
        let Some((root, _)) = self.shown_root() else {
            return;
        };
        let Some(WalkState::Done(w)) = self.walks.get(&root).cloned() else {
            self.page_table.expand_all_pending = all == Some(true);
            return;
        };
        let table = |e: &kinspect_sv39::WalkEntry| e.kind() == kinspect_sv39::PteKind::Pointer;
        match all {
            Some(true) => {
                for e in w.entries.iter().filter(|e| table(e)) {
                    self.page_table.expanded.insert((root, e.level, e.va));
                }
            }
            Some(false) => self.page_table.expanded.retain(|(r, _, _)| *r != root),
            None => {
                let rows = self.pt_rows(root, &w);
                let c = self
                    .page_table
                    .list
                    .cursor
                    .min(rows.len().saturating_sub(1));
                let Some(&i) = rows.get(c) else { return };
                let e = w.entries[i];
                if !table(&e) {
                    self.say(format!(
                        "a leaf: maps {:#x} -> {:#x}, nothing below it",
                        e.va,
                        e.pte.raw_pa()
                    ));
                    return;
                }
                let k = (root, e.level, e.va);
                if !self.page_table.expanded.remove(&k) {
                    self.page_table.expanded.insert(k);
                }
            }
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
        self.console.scroll = 0;
    }

    /// Leave the console pane's typing mode; the console stays in view.
    fn leave_console(&mut self) {
        self.focus = Focus::Detail;
        self.say("left the console (i types to the guest again)");
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::model::ProcState;
    use crate::target::GeneralRegs;
    use crate::tui::procs::ProcRow;
    use crate::tui::snapshot::{Backtrace, HartSnap, Snapshot};
    use crate::tui::worker::Reply;

    fn proc_row(slot: usize, name: &str, state: ProcState, hart: Option<usize>) -> ProcRow {
        ProcRow {
            slot,
            pid: slot as i64 + 1,
            state,
            name: name.into(),
            kstack: kinspect_sv39::VirtAddr(0x3f_ffff_d000 - 0x2000 * slot as u64),
            sz: 0x4000,
            pagetable: kinspect_sv39::PhysAddr(0),
            kpagetable: None,
            chan: 0,
            hart,
        }
    }

    /// An app over a two-hart machine running init and sh (on hart 1),
    /// with slot 2 unused.
    fn app(launched: bool) -> App {
        let mut app = App::new("test machine".into(), None, launched);
        let hart = |h| HartSnap {
            hart: h,
            regs: GeneralRegs::default(),
            csrs: Vec::new(),
            backtrace: Backtrace::default(),
        };
        app.apply(Reply::Snapshot(Box::new(Snapshot {
            taken: SystemTime::now(),
            harts: vec![hart(0), hart(1)],
            procs: Ok(vec![
                proc_row(0, "init", ProcState::Sleeping, None),
                proc_row(1, "sh", ProcState::Running, Some(1)),
                proc_row(2, "", ProcState::Unused, None),
            ]),
            kernel_pagetable: None,
            panic: None,
            panic_hart: None,
        })));
        app
    }

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn type_str(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn only_i_types_to_the_guest_and_esc_leaves() {
        let mut app = app(true);
        for code in [KeyCode::Tab, KeyCode::Char('6'), KeyCode::Enter] {
            press(&mut app, code);
        }
        assert_eq!(app.tab, Tab::Console);
        assert_eq!(app.focus, Focus::Detail);
        assert!(app.console_out.is_empty());
        press(&mut app, KeyCode::Char('i'));
        assert_eq!(app.focus, Focus::Console);
        type_str(&mut app, "ls5");
        press(&mut app, KeyCode::Enter);
        app.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL));
        assert_eq!(app.console_out, b"ls5\r\x10");
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.focus, Focus::Detail);
        press(&mut app, KeyCode::Char('2'));
        assert_eq!(app.tab, Tab::Maps);
        assert_eq!(app.console_out, b"ls5\r\x10");
        // Esc and a key at once arrive as Alt+key: leave, then the key.
        press(&mut app, KeyCode::Char('i'));
        app.on_key(KeyEvent::new(KeyCode::Char('3'), KeyModifiers::ALT));
        assert_eq!((app.focus, app.tab), (Focus::Detail, Tab::Regs));
        // attach owns no console.
        let mut a = self::app(false);
        press(&mut a, KeyCode::Char('i'));
        assert_ne!(a.focus, Focus::Console);
        assert!(a.message.contains("no console"), "{}", a.message);
    }

    #[test]
    fn a_filter_applies_as_you_type_and_esc_clears_it() {
        let mut app = app(false);
        press(&mut app, KeyCode::Char('/'));
        type_str(&mut app, "sh");
        let names = |app: &App| -> Vec<String> {
            app.visible_procs().iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(&app), ["sh"]);
        press(&mut app, KeyCode::Enter);
        assert!(app.input.is_none());
        assert_eq!(app.procs.list.filter, "sh");
        // The filter belongs to the list it was typed in.
        assert!(app.page_table.list.filter.is_empty());
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.message, "filter cleared");
        assert_eq!(names(&app), ["init", "sh"]);
        press(&mut app, KeyCode::Char('a'));
        assert_eq!(names(&app), ["init", "sh", ""]);
    }

    #[test]
    fn keys_run_the_commands_they_name() {
        let mut app = app(false);
        press(&mut app, KeyCode::Char('c'));
        assert_eq!(app.outbox, [Request::Resume]);
        press(&mut app, KeyCode::Char('h'));
        assert_eq!(app.message, "already halted");
        press(&mut app, KeyCode::Char('t'));
        assert_eq!(app.hart, 1);
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(app.outbox, [Request::Resume, Request::Step(1)]);
        press(&mut app, KeyCode::Char('t'));
        assert_eq!(app.hart, 0, "t wraps around");
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit_dialog);
        press(&mut app, KeyCode::Char('k'));
        assert_eq!(app.quit, None, "attach cannot kill QEMU");
        press(&mut app, KeyCode::Char('h'));
        assert_eq!(app.quit, Some(Leave::Halted));
    }

    #[test]
    fn the_command_line_keeps_history_and_reports_errors() {
        let mut app = app(false);
        press(&mut app, KeyCode::Char(':'));
        type_str(&mut app, "hart 1");
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.hart, 1);
        press(&mut app, KeyCode::Char(':'));
        type_str(&mut app, "hart 7");
        press(&mut app, KeyCode::Enter);
        assert!(app.message_is_error);
        assert_eq!(app.message, "no hart 7: the machine has harts 0..1");
        press(&mut app, KeyCode::Char(':'));
        press(&mut app, KeyCode::Up);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.input.as_ref().map(|i| i.text.as_str()), Some("hart 1"));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.input.as_ref().map(|i| i.text.as_str()), Some("hart 7"));
        press(&mut app, KeyCode::Esc);
        assert!(app.input.is_none());
        // `g` starts a goto.
        press(&mut app, KeyCode::Char('g'));
        assert_eq!(app.input.as_ref().map(|i| i.text.as_str()), Some("goto "));
    }

    #[test]
    fn cursor_keys_select_processes_and_clamp() {
        let mut app = app(false);
        assert_eq!(app.slot, Some(0), "none on hart 0: the first process");
        press(&mut app, KeyCode::Home);
        assert_eq!((app.procs.list.cursor, app.slot), (0, Some(0)));
        press(&mut app, KeyCode::End);
        assert_eq!((app.procs.list.cursor, app.slot), (1, Some(1)));
        press(&mut app, KeyCode::Down);
        assert_eq!(app.procs.list.cursor, 1, "clamped to the last row");
        // Enter on a process shows its page table, focused.
        press(&mut app, KeyCode::Enter);
        assert_eq!((app.focus, app.tab), (Focus::Detail, Tab::PageTable));
    }
}
