//! The text pop-ups (`:translate`, `:vmprint`): a scrollable window of
//! lines over everything, built from what the worker read.

use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{page_size, PteKind, StepOutcome, Translation, Walk};

/// A scrollable text window over everything (translate, vmprint).
#[derive(Clone, Debug)]
pub struct Popup {
    pub title: String,
    pub lines: Vec<String>,
    pub scroll: usize,
}

impl Popup {
    /// `:translate EXPR`: the walk step by step, and its one-line result
    /// for the message line.
    pub fn translation(expr: &str, what: &str, t: &Translation) -> (String, Popup) {
        let (msg, lines) = translate_lines(expr, what, t);
        let popup = Popup {
            title: format!("translate {expr}"),
            lines,
            scroll: 0,
        };
        (msg, popup)
    }

    /// `:vmprint`: xv6's vmprint tree of a walk, then what it found wrong.
    pub fn vmprint(what: &str, w: &Walk) -> Popup {
        let mut lines = vmprint::lines(w, Label::Index);
        lines.extend(w.findings.iter().map(|f| format!("warning: {f}")));
        Popup {
            title: format!("vmprint: {what}"),
            lines,
            scroll: 0,
        }
    }

    /// Scroll by `d` lines, within the text.
    pub fn scroll_by(&mut self, d: isize) {
        let last = self.lines.len().saturating_sub(1) as isize;
        self.scroll = (self.scroll as isize + d).clamp(0, last.max(0)) as usize;
    }
}

/// A translation as the pop-up's lines, and the one-line result.
fn translate_lines(expr: &str, what: &str, t: &Translation) -> (String, Vec<String>) {
    let (va, root) = (t.va, t.root);
    let mut lines = vec![
        format!("translate {expr} = {va:#018x}"),
        format!("through {what} (root {root:#x})"),
        format!(
            "VPN[2] = {}  VPN[1] = {}  VPN[0] = {}  offset = {:#05x}",
            va.vpn(2),
            va.vpn(1),
            va.vpn(0),
            va.page_offset()
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
                kinspect_sv39::page_size_name(page_size(s.level)),
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
            kinspect_sv39::page_size_name(*page_size),
            pte.attr_letters()
        ),
        StepOutcome::Fault { level, reason } => {
            format!("{expr} = {va:#x}: page fault at level {level}: {reason}")
        }
    };
    lines.push(format!("=> {msg}"));
    (msg, lines)
}
