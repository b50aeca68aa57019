//! The text pop-ups (`:translate`, `:vmprint`): a scrollable window of
//! lines over everything, built from what the worker read (the lines of
//! `:translate` come from [`crate::views::translate`]).

use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{Translation, Walk};

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
        let (msg, lines) = crate::views::translate::popup_lines(expr, what, t);
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
