//! Drawing the [`App`] with ratatui: status bar, process table, the
//! detail tabs, the command line, and the overlays (help, quit, pop-ups).
//!
//! Pure functions of the state: [`draw`] reads the [`App`] and returns
//! where it put things ([`Hits`], for the mouse) without changing it;
//! rendering tests draw into ratatui's `TestBackend` and compare the text
//! with snapshot files. Colours are
//! only a second channel: every state is also spelt out in words, and
//! `NO_COLOR` turns colours off (bold and reverse video stay).

use std::collections::HashMap;
use std::time::Duration;

use kinspect_sv39::info_mem;
use kinspect_sv39::{
    page_size, Finding, PhysAddr, PteFlags, PteKind, Satp, VirtAddr, Walk, WalkEntry,
};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Borders, Clear, Paragraph, Row, Table, TableState, Wrap,
};
use ratatui::Frame;

use super::app::{App, Focus, InputKind, Tab};
use super::command::COMMANDS;
use super::keys::KEYS;
use super::panes::WalkState;
use crate::arch::priv_name;
use crate::model::ProcState;
use crate::target::Csr;

/// Where the last frame put things, for the mouse: [`draw`] returns it
/// and the event loop keeps it in [`App::hits`].
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

/// Styles, with or without colour.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    fn selected(&self, focused: bool) -> Style {
        if focused {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        }
    }
    fn bar(&self) -> Style {
        if self.color {
            Style::default().bg(Color::Blue).fg(Color::White)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }
    fn state(&self, running: bool) -> Style {
        let s = self.bold();
        if !self.color {
            return s;
        }
        if running {
            s.fg(Color::Black).bg(Color::Green)
        } else {
            s.fg(Color::Black).bg(Color::Yellow)
        }
    }
    fn error(&self) -> Style {
        if self.color {
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        }
    }
    /// The border of a pane: the focused one is thick and coloured (bold
    /// without colour), so where keys go is never in doubt; typing to the
    /// guest colours it like RUNNING.
    fn pane(&self, focused: bool, typing: bool) -> Block<'static> {
        let block = Block::default().borders(Borders::ALL);
        if !focused {
            return block;
        }
        let style = match (self.color, typing) {
            (false, _) => self.bold(),
            (true, false) => Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            (true, true) => Style::default()
                .fg(Color::Green)
                .add_modifier(Modifier::BOLD),
        };
        block.border_type(BorderType::Thick).border_style(style)
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// One page-table entry as text (used for filtering too).
pub fn pt_line_text(e: &WalkEntry) -> String {
    let size = match (e.kind(), e.level) {
        (PteKind::Leaf, 2) => " 1G superpage",
        (PteKind::Leaf, 1) => " 2M superpage",
        _ => "",
    };
    format!(
        "{}{}: pte {:#018x} pa {:#018x} va {:#x} {}{size}",
        " ..".repeat(3 - e.level),
        e.index,
        e.pte.0,
        e.pte.raw_pa(),
        e.va,
        e.pte.attr_letters()
    )
}

/// The Maps tab's lines (header first), filtered.
pub fn maps_lines(app: &App) -> Vec<String> {
    let Some((root, _)) = app.shown_root() else {
        return Vec::new();
    };
    let Some(WalkState::Done(w)) = app.walks.get(&root) else {
        return Vec::new();
    };
    let f = app.maps.filter.clone();
    let mut out: Vec<String> = info_mem::HEADER.lines().map(String::from).collect();
    out.extend(
        info_mem::ranges(w)
            .iter()
            .map(|r| r.line())
            .filter(|l| f.is_empty() || l.contains(&f)),
    );
    out
}

/// The Changes tab's lines: which two halts are compared, then what
/// `kinspect diff` would print for them.
pub fn changes_lines(app: &App) -> Vec<String> {
    let Some(c) = &app.changes else {
        return vec!["no halt read yet: the guest has not stopped since kinspect came".into()];
    };
    let mut out = Vec::new();
    match (&c.diff, &c.since) {
        (Ok(None), _) => {
            out.push(format!("first halt ({}): nothing to compare yet", c.halt));
            out.push(String::new());
            out.push(
                "At each halt (h, s, a breakpoint) the processes and their user page tables".into(),
            );
            out.push("are read and compared with the halt before.".into());
        }
        (Ok(Some(d)), Some(since)) => {
            out.push(format!("since the halt before: {since} -> {}", c.halt));
            // The text's own `before:`/`after:` lines say the same.
            out.extend(
                d.text()
                    .lines()
                    .filter(|l| !l.starts_with("before: ") && !l.starts_with("after:  "))
                    .map(String::from),
            );
        }
        (Ok(Some(d)), None) => {
            out.push(format!("at {}", c.halt));
            out.extend(d.text().lines().map(String::from));
        }
        (Err(e), since) => {
            out.push(format!("{}: the processes could not be read", c.halt));
            out.push(e.clone());
            if let Some(s) = since {
                out.push(format!("the next halt is compared with {s}"));
            }
        }
    }
    out
}

/// The Registers tab's lines for the selected hart
/// ([`crate::views::regs::Regs::compact_lines`]).
pub fn regs_lines(app: &App) -> Vec<String> {
    let Some(h) = app.hart_snap() else {
        return Vec::new();
    };
    let syms = app.symbols.as_deref();
    let sym = |a: u64| super::snapshot::symbolize(syms, a);
    crate::views::regs::regs(h.hart, &h.regs, &h.csrs, &sym).compact_lines()
}

fn flags_spans(t: &Theme, pte: kinspect_sv39::Pte) -> Vec<Span<'static>> {
    let bits = [
        (PteFlags::R, 'r', Color::Green),
        (PteFlags::W, 'w', Color::Red),
        (PteFlags::X, 'x', Color::Magenta),
        (PteFlags::U, 'u', Color::Cyan),
        (PteFlags::G, 'g', Color::Blue),
        (PteFlags::A, 'a', Color::Yellow),
        (PteFlags::D, 'd', Color::Yellow),
    ];
    bits.iter()
        .map(|&(b, c, col)| {
            if pte.has(b) {
                Span::styled(c.to_string(), t.fg(col).add_modifier(Modifier::BOLD))
            } else {
                Span::styled("-", t.dim())
            }
        })
        .collect()
}

/// Draw everything.
pub fn draw(f: &mut Frame, app: &App) -> Hits {
    let mut hits = Hits::default();
    let t = Theme {
        color: !app.no_color,
    };
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(2),
            Constraint::Min(6),
            Constraint::Length(1),
        ])
        .split(area);
    draw_status(f, app, &t, rows[0]);
    let body = rows[1];
    let (procs_area, detail_area) = if body.width >= 130 {
        let c = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(62), Constraint::Min(40)])
            .split(body);
        (c[0], c[1])
    } else {
        let n = app.visible_procs().len() as u16;
        let h = (n + 3).clamp(5, (body.height / 2).max(5));
        let c = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(h), Constraint::Min(4)])
            .split(body);
        (c[0], c[1])
    };
    draw_procs(f, app, &t, procs_area, &mut hits);
    draw_detail(f, app, &t, detail_area, &mut hits);
    draw_bottom(f, app, &t, rows[2]);
    if app.help {
        draw_help(f, app, &t, area);
    }
    if let Some(p) = &app.popup {
        let title = format!(" {} (Esc closes, j/k scroll) ", p.title);
        let widest = p.lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u16;
        let w = (widest + 2)
            .max(title.chars().count() as u16 + 4)
            .min(area.width.saturating_sub(2));
        let inner = usize::from(w.saturating_sub(2));
        let lines: Vec<Line> = p
            .lines
            .iter()
            .skip(p.scroll)
            .map(|l| Line::raw(crate::words::ellipsize(l, inner)))
            .collect();
        let r = centered(
            area,
            w,
            (p.lines.len() as u16 + 2).min(area.height.saturating_sub(2)),
        );
        f.render_widget(Clear, r);
        f.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            r,
        );
    }
    if app.quit_dialog {
        let mut lines = vec![
            Line::styled("Quit kinspect. Leave the guest:", t.bold()),
            Line::raw(""),
            Line::raw("  r   running"),
            Line::raw("  h   halted"),
        ];
        if app.launched {
            lines.push(Line::raw("  k   kill QEMU"));
        }
        lines.push(Line::raw("  Esc stay here"));
        let r = centered(area, 40, lines.len() as u16 + 2);
        f.render_widget(Clear, r);
        f.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" quit ")),
            r,
        );
    }
    hits
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// One backtrace frame: `#N pc symbol  file:line`, then, when functions
/// were inlined there, one line naming them innermost first (the
/// innermost made the call: on a panic path, the function that panicked).
fn frame_lines(t: &Theme, i: usize, fr: &super::snapshot::FrameRow) -> Vec<Line<'static>> {
    let mut out = vec![frame_line(t, i, fr)];
    if !fr.inlined.is_empty() {
        out.push(Line::from(vec![
            Span::styled("      inlined: ", t.dim()),
            Span::styled(fr.inlined.join(" ← "), t.fg(Color::Yellow)),
        ]));
    }
    out
}

fn frame_line(t: &Theme, i: usize, fr: &super::snapshot::FrameRow) -> Line<'static> {
    Line::from(vec![
        Span::raw(format!("#{i:<2} {:#018x} ", fr.pc)),
        Span::styled(
            fr.symbol.clone().unwrap_or_else(|| "??".into()),
            t.fg(Color::Yellow),
        ),
        Span::styled(
            fr.line
                .as_ref()
                .map(|l| format!("  {l}"))
                .unwrap_or_default(),
            t.dim(),
        ),
    ])
}

fn draw_status(f: &mut Frame, app: &App, t: &Theme, area: Rect) {
    let state = if app.lost.is_some() {
        Span::styled(
            " CONNECTION LOST ",
            t.error().add_modifier(Modifier::REVERSED),
        )
    } else if app.snapshot.is_none() {
        Span::styled(" ATTACHING ", t.state(false))
    } else if app.running() {
        Span::styled(" RUNNING ", t.state(true))
    } else {
        Span::styled(" HALTED ", t.state(false))
    };
    let mut l1 = vec![
        Span::styled(" kinspect ", t.bar().add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        state,
    ];
    // The panic first: it must not be cut off at the right edge.
    if let Some(p) = app.snapshot.as_ref().and_then(|s| s.panic.as_ref()) {
        l1.push(Span::styled(format!(" PANIC: {p} "), t.error()));
    }
    l1.push(Span::raw(format!(" {} ", app.target_name)));
    let wide = area.width >= 100;
    if let (Some(d), false) = (app.stale_for(), app.live_now()) {
        let txt = if wide {
            format!(" views from {} ago ", age(d))
        } else {
            format!(" stale {} ", age(d))
        };
        l1.push(Span::styled(txt, t.dim()));
    }
    if let (true, Some(l)) = (app.live_now(), &app.live) {
        let ms = l.read.as_secs_f64() * 1e3;
        let txt = match (&l.error, wide) {
            (Some(e), _) => format!(" LIVE frame {}: {e} ", l.n),
            (None, true) => format!(" LIVE frame {} read in {ms:.1} ms, never halted ", l.n),
            (None, false) => format!(" LIVE {ms:.1}ms "),
        };
        l1.push(Span::styled(txt, t.fg(Color::Green)));
    }
    if wide {
        l1.push(Span::styled(" ? help  q quit", t.dim()));
    }
    let mut l2 = Vec::new();
    if let Some(s) = &app.snapshot {
        for h in &s.harts {
            let sel = h.hart == app.hart;
            let p = h.privilege().map(priv_name).unwrap_or("?");
            let txt = format!(
                "{}hart{} {p}{} ",
                if sel { "▸" } else { " " },
                h.hart,
                if app.running() && wide { " run" } else { "" }
            );
            l2.push(Span::styled(
                txt,
                if sel { t.bold() } else { Style::default() },
            ));
        }
        if let Some(h) = app.hart_snap() {
            match h.csr(Csr::Satp) {
                Some(v) => {
                    let s = Satp(v);
                    let value = if area.width >= 90 {
                        format!(" {v:#018x}")
                    } else {
                        String::new()
                    };
                    l2.push(Span::raw(format!(
                        "│ satp{value} {} asid {} root {:#x}",
                        s.mode(),
                        s.asid(),
                        s.root()
                    )));
                }
                None => l2.push(Span::raw("│ satp unavailable")),
            }
        }
    }
    f.render_widget(Paragraph::new(vec![Line::from(l1), Line::from(l2)]), area);
}

/// `[stale 3.2s]` while the guest runs; `[live]` on what live frames
/// keep fresh (the process table, `procs`; the page-table and maps tabs).
fn stale_tag_for(app: &App, procs: bool) -> String {
    let fed = procs || matches!(app.tab, Tab::PageTable | Tab::Maps);
    match (app.stale_for(), &app.live) {
        (Some(_), Some(l)) if app.live_now() && fed => {
            if !procs && l.walk_torn {
                " [live, changed while read] ".into()
            } else {
                " [live] ".into()
            }
        }
        (Some(d), _) => format!(" [stale {}] ", age(d)),
        (None, _) => String::new(),
    }
}

fn stale_tag(app: &App) -> String {
    stale_tag_for(app, false)
}

fn draw_procs(f: &mut Frame, app: &App, t: &Theme, area: Rect, hits: &mut Hits) {
    let focused = app.focus == Focus::Procs;
    let filter = Some(&app.procs.list.filter).filter(|s| !s.is_empty());
    let title = format!(
        " Processes{}{}{} ",
        if app.procs.show_all {
            " (all slots)"
        } else {
            ""
        },
        filter.map(|f| format!(" /{f}")).unwrap_or_default(),
        stale_tag_for(app, true)
    );
    let block = t.pane(focused, false).title(Span::styled(
        title,
        if focused { t.bold() } else { Style::default() },
    ));
    hits.procs = area;
    hits.procs_first_row = area.y + 2;
    let procs = match app.snapshot.as_ref().map(|s| &s.procs) {
        None => {
            f.render_widget(Paragraph::new("reading the machine…").block(block), area);
            return;
        }
        Some(Err(e)) => {
            f.render_widget(
                Paragraph::new(e.clone())
                    .wrap(Wrap { trim: true })
                    .block(block),
                area,
            );
            return;
        }
        Some(Ok(_)) => app.visible_procs(),
    };
    let rows: Vec<Row> = procs
        .iter()
        .map(|p| {
            let st = match p.state {
                ProcState::Running => t.fg(Color::Green),
                ProcState::Runnable => t.fg(Color::Cyan),
                ProcState::Zombie => t.fg(Color::Red),
                ProcState::Unused => t.dim(),
                _ => Style::default(),
            };
            // Live: `~` changed while read, `*` new or changed since the
            // frame before.
            let mark = match &app.live {
                Some(l) if app.live_now() && l.torn.contains(&p.slot) => "~",
                Some(l) if app.live_now() && l.changed.contains(&p.slot) => "*",
                _ => "",
            };
            Row::new(vec![
                Span::raw(format!("{}{mark}", p.slot)),
                Span::raw(p.pid.to_string()),
                Span::styled(crate::words::ellipsize(&p.state_name(), 9), st),
                Span::raw(crate::words::ellipsize(&p.name, 16)),
                Span::raw(format!("{:#x}", p.kstack)),
                Span::raw(p.hart.map(|h| h.to_string()).unwrap_or_else(|| "-".into())),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(9),
            Constraint::Length(16),
            Constraint::Length(13),
            Constraint::Length(4),
        ],
    )
    .header(Row::new(vec!["slot", "pid", "state", "name", "kstack", "hart"]).style(t.bold()))
    .row_highlight_style(t.selected(focused))
    .block(block);
    let mut st = TableState::default();
    if !empty {
        st.select(Some(app.procs.list.cursor));
    }
    f.render_stateful_widget(table, area, &mut st);
    hits.procs_offset = st.offset();
    if empty {
        let inner = Rect {
            x: area.x + 1,
            y: area.y + 2,
            width: area.width.saturating_sub(2),
            height: 1,
        };
        f.render_widget(
            Paragraph::new(if filter.is_some() {
                "no process matches the filter"
            } else {
                "no process yet (all slots unused; a shows them)"
            }),
            inner,
        );
    }
}

fn tab_title_line(app: &App, t: &Theme, area: Rect, hits: &mut Hits) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    let mut x = area.x + 2;
    let tabs = app.tabs();
    // The full titles, or the short ones when those do not fit between
    // the corners (so every tab's number stays on screen); the stale tag
    // only whole (the status bar says it too), never cut to a wrong age.
    let width = |title: fn(Tab) -> &'static str| -> usize {
        tabs.iter()
            .enumerate()
            .map(|(i, t)| format!("{} {}", i + 1, title(*t)).chars().count() + 3)
            .sum()
    };
    let room = area.width.saturating_sub(2) as usize;
    let mut tag = stale_tag(app);
    let short = width(Tab::title) + 1 + tag.chars().count() > room;
    if short && width(Tab::short_title) + 1 + tag.chars().count() > room {
        tag.clear();
    }
    for (i, tab) in tabs.into_iter().enumerate() {
        let title = if short {
            tab.short_title()
        } else {
            tab.title()
        };
        let label = format!("{} {}", i + 1, title);
        let w = label.chars().count() as u16;
        hits.tabs.push((tab, x, x + w));
        let st = if tab == app.tab {
            t.selected(app.focus != Focus::Procs)
                .add_modifier(Modifier::BOLD)
        } else {
            t.dim()
        };
        spans.push(Span::styled(label, st));
        spans.push(Span::raw(" │ "));
        x += w + 3;
    }
    spans.pop();
    spans.push(Span::raw(" "));
    if !tag.is_empty() {
        spans.push(Span::styled(tag, t.dim()));
    }
    Line::from(spans)
}

/// A list with a cursor: scroll so the cursor stays visible.
fn window(len: usize, cursor: usize, height: usize) -> usize {
    if height == 0 || cursor < height {
        0
    } else {
        (cursor + 1 - height).min(len.saturating_sub(height))
    }
}

fn draw_detail(f: &mut Frame, app: &App, t: &Theme, area: Rect, hits: &mut Hits) {
    let title = tab_title_line(app, t, area, hits);
    let typing = app.focus == Focus::Console;
    let block = t.pane(app.focus != Focus::Procs, typing).title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    hits.detail = area;
    hits.detail_first_row = inner.y + 1;
    hits.detail_offset = 0;
    let focused = app.focus == Focus::Detail;
    let h = inner.height as usize;
    match app.tab {
        Tab::PageTable => draw_pt(f, app, t, inner, focused, hits),
        Tab::Maps => {
            let Some((root, what)) = app.shown_root() else {
                f.render_widget(Paragraph::new("no page table: satp is Bare"), inner);
                return;
            };
            let head = Line::styled(
                format!("{what}, root {root:#x}: ranges as QEMU's `info mem` prints them"),
                t.bold(),
            );
            let lines = maps_lines(app);
            let body: Vec<Line> = if let Some(msg) = walk_note(app, root) {
                vec![head, Line::raw(msg)]
            } else {
                let cur = app.maps.cursor;
                let off = window(lines.len(), cur, h.saturating_sub(1));
                hits.detail_offset = off;
                let mut v = vec![head];
                v.extend(
                    lines
                        .iter()
                        .enumerate()
                        .skip(off)
                        .take(h.saturating_sub(1))
                        .map(|(i, l)| {
                            if i == cur && focused {
                                Line::styled(l.clone(), t.selected(true))
                            } else if i == 0 {
                                Line::styled(l.clone(), t.dim())
                            } else {
                                Line::raw(l.clone())
                            }
                        }),
                );
                v
            };
            f.render_widget(Paragraph::new(body), inner);
        }
        Tab::Regs => {
            let (body, _) =
                cursor_window(regs_lines(app), app.regs.cursor, h, focused, t, |i, _| {
                    if i == 0 {
                        t.bold()
                    } else {
                        Style::default()
                    }
                });
            f.render_widget(Paragraph::new(body), inner);
        }
        Tab::Memory => draw_mem(f, app, t, inner),
        Tab::Backtrace => {
            let Some(hs) = app.hart_snap() else {
                return;
            };
            let mut lines = vec![Line::styled(
                format!(
                    "hart {}: call chain (CFI, else frame pointers), innermost first",
                    hs.hart
                ),
                t.bold(),
            )];
            for (i, fr) in hs.backtrace.frames.iter().enumerate() {
                lines.extend(frame_lines(t, i, fr));
            }
            lines.push(Line::styled(format!("({})", hs.backtrace.end), t.dim()));
            // The selected process, when it is not on a hart: where it
            // stopped, from the registers swtch saved.
            if let Some(p) = app
                .selected_proc()
                .filter(|p| p.hart.is_none() && !p.unused())
            {
                lines.push(Line::raw(""));
                lines.push(Line::styled(
                    format!(
                        "pid {} `{}` ({}): its saved context (swtch), innermost first",
                        p.pid,
                        p.name,
                        p.state_name()
                    ),
                    t.bold(),
                ));
                match app.backtrace.saved.get(&p.slot) {
                    None | Some(None) => lines.push(Line::raw("reading…")),
                    Some(Some(Err(e))) => lines.push(Line::styled(e.clone(), t.dim())),
                    Some(Some(Ok(bt))) => {
                        for (i, fr) in bt.frames.iter().enumerate() {
                            lines.extend(frame_lines(t, i, fr));
                        }
                        lines.push(Line::styled(format!("({})", bt.end), t.dim()));
                    }
                }
            }
            let cur = app.backtrace.list.cursor;
            let off = window(lines.len(), cur, h);
            f.render_widget(
                Paragraph::new(lines.into_iter().skip(off).collect::<Vec<_>>()),
                inner,
            );
        }
        Tab::Changes => {
            let lines = changes_lines(app);
            let (body, off) =
                cursor_window(lines, app.changes_list.cursor, h, focused, t, |i, l| {
                    if i == 0 || (!l.starts_with(' ') && l.ends_with(':')) {
                        t.bold()
                    } else if l.starts_with("before:") || l.starts_with("after:") {
                        t.dim()
                    } else {
                        Style::default()
                    }
                });
            hits.detail_offset = off;
            f.render_widget(Paragraph::new(body), inner);
        }
        Tab::Console => {
            let con = app.focus == Focus::Console;
            let mut lines: Vec<Line> = Vec::new();
            let body_h = h.saturating_sub(1);
            lines.extend(
                app.console
                    .buf
                    .tail(body_h, app.console.scroll)
                    .into_iter()
                    .map(|l| Line::raw(l.to_string())),
            );
            let hint = if con {
                Line::styled(
                    "typing goes to the guest — Esc or Ctrl-] leaves",
                    t.state(true),
                )
            } else {
                Line::styled("i: type to the guest", t.dim())
            };
            let mut v = vec![hint];
            v.extend(lines);
            f.render_widget(Paragraph::new(v), inner);
        }
    }
}

/// A message instead of a walk's result (pending, failed).
fn walk_note(app: &App, root: PhysAddr) -> Option<String> {
    match app.walks.get(&root) {
        None | Some(WalkState::Pending) => Some(
            app.busy
                .clone()
                .unwrap_or_else(|| "walking the page table…".into()),
        ),
        Some(WalkState::Failed(e)) => Some(format!("cannot walk it: {e}")),
        Some(WalkState::Done(_)) => None,
    }
}

/// What the walk found wrong, by the entry it concerns: problems of the
/// entry itself (keyed by the PTE's physical address), and for each table
/// entry how many problems lie below it (keyed by level and va), so a
/// folded table still shows that something under it is wrong.
pub struct Marks {
    pub at: HashMap<PhysAddr, Vec<String>>,
    pub below: HashMap<(usize, VirtAddr), usize>,
}

pub fn finding_marks(w: &Walk) -> Marks {
    let mut at: HashMap<PhysAddr, Vec<String>> = HashMap::new();
    for f in &w.findings {
        let (pte_addr, what) = match f {
            Finding::Reserved {
                pte_addr, problem, ..
            } => (*pte_addr, problem.to_string()),
            Finding::TableSeenAgain {
                pte_addr, cycle, ..
            } => (
                *pte_addr,
                format!(
                    "points to a table seen before ({})",
                    if *cycle { "a cycle" } else { "shared" }
                ),
            ),
            Finding::TableOutsideRam {
                pte_addr: Some(a), ..
            } => (*a, "its table is outside RAM: not followed".to_string()),
            // No PTE address: mark every pointer to that table.
            Finding::Unreadable { level, table, why } => {
                for e in w.entries.iter().filter(|e| {
                    e.kind() == PteKind::Pointer && e.level == level + 1 && e.pte.pa() == *table
                }) {
                    at.entry(e.pte_addr())
                        .or_default()
                        .push(format!("its table is unreadable: {why}"));
                }
                continue;
            }
            _ => continue,
        };
        at.entry(pte_addr).or_default().push(what);
    }
    let mut below: HashMap<(usize, VirtAddr), usize> = HashMap::new();
    let marked: Vec<&WalkEntry> = w
        .entries
        .iter()
        .filter(|e| at.contains_key(&e.pte_addr()))
        .collect();
    for e in w.entries.iter().filter(|e| e.kind() == PteKind::Pointer) {
        let n: usize = marked
            .iter()
            .filter(|m| m.level < e.level && m.va.0.wrapping_sub(e.va.0) < page_size(e.level))
            .map(|m| at.get(&m.pte_addr()).map_or(0, Vec::len))
            .sum();
        if n > 0 {
            below.insert((e.level, e.va), n);
        }
    }
    Marks { at, below }
}

/// The `h` lines of `lines` around the cursor (and where they start):
/// the cursor's line highlighted when the pane has focus, the others as
/// `style(index, text)` says.
fn cursor_window(
    lines: Vec<String>,
    cur: usize,
    h: usize,
    focused: bool,
    t: &Theme,
    style: impl Fn(usize, &str) -> Style,
) -> (Vec<Line<'static>>, usize) {
    let off = window(lines.len(), cur, h);
    let body = lines
        .into_iter()
        .enumerate()
        .skip(off)
        .take(h)
        .map(|(i, l)| {
            let st = if i == cur && focused {
                t.selected(true)
            } else {
                style(i, &l)
            };
            Line::styled(l, st)
        })
        .collect();
    (body, off)
}

fn draw_pt(f: &mut Frame, app: &App, t: &Theme, area: Rect, focused: bool, hits: &mut Hits) {
    let Some((root, what)) = app.shown_root() else {
        f.render_widget(Paragraph::new("no page table: satp is Bare"), area);
        return;
    };
    let other = if app.page_table.kernel {
        "user"
    } else {
        "kernel"
    };
    let mut head = vec![
        Span::styled(format!("{what}, root {root:#x}"), t.bold()),
        Span::styled(format!("  (u: {other})"), t.dim()),
    ];
    // Live: the pages it maps now, and their last change while recent
    // (+2 after an sbrk of two pages).
    if let Some((r, n, d)) = app.live.as_ref().and_then(|l| l.pages) {
        if app.live_now() && r == root {
            let change = if d == 0 {
                String::new()
            } else {
                format!(", {d:+} just now")
            };
            head.push(Span::styled(
                format!("  {n} pages mapped{change}"),
                if d == 0 { t.dim() } else { t.fg(Color::Yellow) },
            ));
        }
    }
    let head = Line::from(head);
    let Some(WalkState::Done(w)) = app.walks.get(&root).cloned() else {
        let note = walk_note(app, root).unwrap_or_default();
        f.render_widget(Paragraph::new(vec![head, Line::raw(note)]), area);
        return;
    };
    let rows = app.pt_rows(root, &w);
    let marks = finding_marks(&w);
    let h = area.height.saturating_sub(1) as usize;
    let cur = app.page_table.list.cursor.min(rows.len().saturating_sub(1));
    let off = window(rows.len(), cur, h);
    hits.detail_offset = off;
    let mut lines = vec![head];
    for (n, &i) in rows.iter().enumerate().skip(off).take(h) {
        let e = &w.entries[i];
        let table = e.kind() == PteKind::Pointer;
        let marker = if table {
            if app.page_table.expanded.contains(&(root, e.level, e.va)) {
                "▾"
            } else {
                "▸"
            }
        } else {
            " "
        };
        let mut spans = vec![Span::raw(format!(
            "{marker}{}{}: ",
            " ..".repeat(3 - e.level),
            e.index
        ))];
        // The raw PTE where there is room for it (vmprint prints it).
        if area.width >= 96 {
            spans.push(Span::raw(format!("pte {:#018x} ", e.pte.0)));
        }
        // PTE2PA, as vmprint and `info mem` compute it: reserved bits
        // show in the address instead of vanishing.
        spans.push(Span::raw(format!("pa {:#x} ", e.pte.raw_pa())));
        if table {
            spans.push(Span::styled("table", t.dim()));
        } else {
            spans.extend(flags_spans(t, e.pte));
            spans.push(Span::raw(format!(" va {:#x}", e.va)));
            match e.level {
                2 => spans.push(Span::styled(
                    " 1G superpage",
                    t.fg(Color::Magenta).add_modifier(Modifier::BOLD),
                )),
                1 => spans.push(Span::styled(
                    " 2M superpage",
                    t.fg(Color::Magenta).add_modifier(Modifier::BOLD),
                )),
                _ => {}
            }
        }
        if let Some(problems) = marks.at.get(&e.pte_addr()) {
            spans.push(Span::styled(
                format!(" ⚠ {}", problems.join("; ")),
                t.error(),
            ));
        }
        let folded = table && !app.page_table.expanded.contains(&(root, e.level, e.va));
        if let Some(n) = marks.below.get(&(e.level, e.va)).filter(|_| folded) {
            spans.push(Span::styled(
                format!(
                    " ⚠ {} below",
                    crate::words::count(*n, "finding", "findings")
                ),
                t.error(),
            ));
        }
        let mut line = Line::from(spans);
        if n == cur && focused {
            line = line.style(t.selected(true));
        }
        lines.push(line);
    }
    if rows.is_empty() {
        lines.push(Line::raw(if !app.page_table.list.filter.is_empty() {
            "no entry matches the filter"
        } else {
            "no valid entries"
        }));
    }
    if !w.findings.is_empty() && lines.len() < h {
        lines.push(Line::styled(
            format!(
                "{}: {}",
                crate::words::count(w.findings.len(), "finding", "findings"),
                w.findings[0]
            ),
            t.error(),
        ));
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn draw_mem(f: &mut Frame, app: &App, t: &Theme, area: Rect) {
    let per = if area.width >= 86 { 16 } else { 8 };
    let m = &app.mem;
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!(
                "{:#x}{}",
                m.addr,
                if m.label.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", m.label)
                }
            ),
            t.bold(),
        ),
        Span::styled("  g: go to an address or expression, j/k scroll", t.dim()),
    ])];
    if m.pending && !m.loaded {
        lines.push(Line::raw("reading…"));
    }
    if let Some(n) = &m.note {
        lines.push(Line::styled(n.clone(), t.error()));
    }
    let rows = area.height.saturating_sub(lines.len() as u16) as usize;
    for (r, chunk) in m.bytes.chunks(per).take(rows).enumerate() {
        let addr = m.addr.wrapping_add((r * per) as u64);
        let mut hex = String::new();
        let mut ascii = String::new();
        for (i, b) in chunk.iter().enumerate() {
            if i == 8 {
                hex.push(' ');
            }
            match b {
                Some(b) => {
                    hex.push_str(&format!("{b:02x} "));
                    ascii.push(if b.is_ascii_graphic() || *b == b' ' {
                        *b as char
                    } else {
                        '.'
                    });
                }
                None => {
                    hex.push_str("?? ");
                    ascii.push('?');
                }
            }
        }
        lines.push(Line::from(vec![
            Span::styled(format!("{addr:016x}  "), t.dim()),
            Span::raw(hex),
            Span::styled(format!("|{ascii}|"), t.fg(Color::Cyan)),
        ]));
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn draw_bottom(f: &mut Frame, app: &App, t: &Theme, area: Rect) {
    let line = if let Some(inp) = &app.input {
        let p = if matches!(inp.kind, InputKind::Filter(_)) {
            "/"
        } else {
            ":"
        };
        Line::from(vec![
            Span::styled(p, t.bold()),
            Span::raw(inp.text.clone()),
            Span::styled("█", t.dim()),
        ])
    } else if !app.message.is_empty() {
        let st = if app.message_is_error {
            t.error()
        } else {
            Style::default()
        };
        Line::styled(app.message.clone(), st)
    } else if let Some(b) = &app.busy {
        Line::styled(b.clone(), t.dim())
    } else if app.focus == Focus::Console {
        Line::styled(
            "typing to the guest: every key goes to it; Esc or Ctrl-] leaves",
            t.state(true),
        )
    } else {
        Line::styled(key_hint(app, area.width as usize), t.dim())
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The keys that matter now, as many as fit in `width` (the least
/// important go first).
pub fn key_hint(app: &App, width: usize) -> String {
    let tabs = format!("1-{} tabs", app.tabs().len());
    // (text, importance: higher stays longer)
    let mut items: Vec<(&str, u8)> = Vec::new();
    if app.running() {
        items.extend([("h halt", 9), ("r refresh", 5)]);
    } else {
        items.extend([("c continue", 9), ("s step", 6)]);
    }
    if app.launched {
        items.push(("i type to guest", 8));
    }
    if app.focus == Focus::Procs {
        items.push(("Enter page table", 3));
    } else if app.tab == Tab::PageTable {
        items.push(("Enter expand", 3));
    }
    items.extend([
        ("Tab move", 7),
        (tabs.as_str(), 7),
        (": command", 4),
        ("/ filter", 1),
        ("? help", 8),
        ("q quit", 9),
    ]);
    let len = |items: &[(&str, u8)]| -> usize {
        items
            .iter()
            .map(|(s, _)| s.chars().count() + 2)
            .sum::<usize>()
    };
    while len(&items) > width + 2 && items.len() > 1 {
        let least = items
            .iter()
            .enumerate()
            .min_by_key(|(i, (_, imp))| (*imp, usize::MAX - i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        items.remove(least);
    }
    items.iter().map(|(s, _)| *s).collect::<Vec<_>>().join("  ")
}

fn draw_help(f: &mut Frame, app: &App, t: &Theme, area: Rect) {
    let mut lines = vec![Line::styled("Keys", t.bold())];
    for (k, what) in KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("  {k:<16}"), t.bold()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Commands (after :)", t.bold()));
    for (c, a, what) in COMMANDS {
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<16}", format!("{c} {a}")), t.bold()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "In the console pane every key goes to the guest; Esc or Ctrl-] leaves it.",
        t.dim(),
    ));
    let h = area.height.saturating_sub(2);
    let r = centered(area, 96, h);
    let lines: Vec<Line> = lines.into_iter().skip(app.help_scroll).collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" help: any key closes, j/k scroll "),
        ),
        r,
    );
}
