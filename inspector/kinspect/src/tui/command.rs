//! The command line (`:`): its language, completion, and what each
//! command does to the [`App`].
//!
//! [`parse`] turns a line into a [`Command`] (a prefix that names one
//! command is enough: `:tr proc[1].kstack`), and [`complete`] completes
//! the word before the cursor: a command name first, then struct fields
//! after a `.`, then symbol names. Both are pure functions, tested below
//! without a target; [`App::run`] carries a command out, usually by
//! queueing a [`Request`] for the worker. Keys that do what a command does
//! (`c`, `h`, `s`, `r`, `t`) run the same [`Command`].

use super::app::{App, Focus, Tab};
use super::worker::{Leave, Request};

/// Commands of the command line: (name, arguments, what it does). The
/// help overlay lists them; [`parse`] and [`complete`] know them by name.
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

/// One command, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Translate an expression through the page table shown.
    Translate(String),
    /// Memory at an expression.
    Goto(String),
    Vmprint,
    Break(String),
    Delete,
    Hart(usize),
    Proc(usize),
    Continue,
    Halt,
    Step,
    Refresh,
    Help,
    Quit,
}

/// Parse a command line (a leading `:` is allowed). The error is the
/// message line's text.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
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
        [] => return Err(format!("unknown command `{cmd}` (try :help)")),
        many => return Err(format!("`{cmd}` could be {}", many.join(", "))),
    };
    let needs = |what: &str| Err(format!(":{cmd} needs {what}"));
    let expr = |what: &str, make: fn(String) -> Command| {
        if arg.is_empty() {
            needs(what)
        } else {
            Ok(make(arg.to_string()))
        }
    };
    match cmd {
        "translate" => expr(
            "an address or symbol expression, e.g. proc[3].kstack",
            Command::Translate,
        ),
        "goto" => expr("an address or symbol expression, e.g. etext", Command::Goto),
        "vmprint" => Ok(Command::Vmprint),
        "break" => expr("a function, e.g. panic", Command::Break),
        "delete" => Ok(Command::Delete),
        "hart" => arg.parse().map(Command::Hart).or(needs("a hart number")),
        "proc" => arg.parse().map(Command::Proc).or(needs("a slot number")),
        "continue" => Ok(Command::Continue),
        "halt" => Ok(Command::Halt),
        "step" => Ok(Command::Step),
        "refresh" => Ok(Command::Refresh),
        "help" => Ok(Command::Help),
        _ => Ok(Command::Quit),
    }
}

/// A completed line, and what to say about it (the candidates when
/// ambiguous, or why there is nothing to complete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub note: Option<String>,
}

/// Complete the word at the end of `text`: a command name when it is the
/// first word; a field name after `EXPR.`, from `fields(EXPR)`; else a
/// name from `symbols` (sorted).
pub fn complete(
    text: &str,
    symbols: &[String],
    fields: impl FnOnce(&str) -> Vec<String>,
) -> Completion {
    let start = text
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|i| i + 1)
        .unwrap_or(0);
    let word = &text[start..];
    let first = !text[..start].contains(|c: char| !c.is_whitespace());
    let fields = if !first && text[..start].ends_with('.') {
        let before_dot = &text[..start - 1];
        let expr = before_dot
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or(before_dot);
        fields(expr)
    } else {
        Vec::new()
    };
    let keep = |note: String| Completion {
        text: text.to_string(),
        note: Some(note),
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
            return keep("type the start of a symbol, then Tab".into());
        }
        let from = symbols.partition_point(|n| n.as_str() < word);
        symbols[from..]
            .iter()
            .take_while(|n| n.starts_with(word))
            .map(String::as_str)
            .collect()
    };
    match cands.len() {
        0 => keep(format!("no completion for `{word}`")),
        1 => {
            let sep = if first { " " } else { "" };
            Completion {
                text: format!("{}{}{sep}", &text[..start], cands[0]),
                note: None,
            }
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
            Completion {
                text: format!("{}{common}", &text[..start]),
                note: Some(format!("{}{more}", shown.join("  "))),
            }
        }
    }
}

impl App {
    /// Complete the command line's text (Tab).
    pub fn complete(&self, text: &str) -> Completion {
        complete(text, &self.symbol_names, |expr| self.field_names(expr))
    }

    /// The field names of the struct an expression names (`proc[3]` ->
    /// `lock, state, ...`), when that needs no target memory.
    fn field_names(&self, expr: &str) -> Vec<String> {
        let Some(syms) = &self.symbols else {
            return Vec::new();
        };
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

    /// Run a command line: parse it, then [`run`](Self::run) it.
    pub fn run_command(&mut self, line: &str) {
        match parse(line) {
            Ok(c) => self.run(c),
            Err(e) => self.error(e),
        }
    }

    /// Carry out a command.
    pub fn run(&mut self, c: Command) {
        match c {
            Command::Translate(expr) => {
                let Some((root, what)) = self.shown_root() else {
                    return self.error("no page table to translate through (satp is Bare?)");
                };
                self.send(Request::Translate { expr, root, what }, "translating…");
            }
            Command::Goto(expr) => {
                self.tab = Tab::Memory;
                self.focus = Focus::Detail;
                self.mem.pending = true;
                let root = self.kernel_root();
                self.send(Request::Goto { expr, root }, "reading memory…");
            }
            Command::Vmprint => match self.shown_root() {
                Some((root, what)) => self.send(Request::Vmprint { root, what }, "walking…"),
                None => self.error("no page table to print (satp is Bare?)"),
            },
            Command::Break(expr) => self.send(Request::Break(expr), "setting a breakpoint…"),
            Command::Delete => self.send(Request::Delete, "removing breakpoints…"),
            Command::Hart(h) => self.select_hart(h),
            Command::Proc(s) => self.select_slot(s),
            Command::Continue => {
                if self.running() {
                    return self.say("already running");
                }
                self.send(Request::Resume, "continuing…");
            }
            Command::Halt => {
                if !self.running() {
                    return self.say("already halted");
                }
                self.send(Request::Halt, "halting…");
            }
            Command::Step => {
                if self.running() {
                    return self.error("halt first (h), then step");
                }
                self.send(Request::Step(self.hart), "stepping…");
            }
            Command::Refresh => {
                if self.running() {
                    self.send(Request::Sample, "refreshing…");
                } else {
                    self.send(Request::Snapshot, "refreshing…");
                }
            }
            Command::Help => self.help = true,
            Command::Quit if self.read_only => self.quit = Some(Leave::Halted),
            Command::Quit => self.quit_dialog = true,
        }
    }

    /// Select hart `h`; one past the last wraps to hart 0 (`t` cycles).
    pub(super) fn select_hart(&mut self, h: usize) {
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

    /// Select process slot `s`, showing every slot if it is not shown.
    fn select_slot(&mut self, s: usize) {
        let exists = matches!(self.snapshot.as_ref().map(|s| &s.procs), Some(Ok(p)) if s < p.len());
        if !exists {
            return self.error(format!("no process slot {s}"));
        }
        self.slot = Some(s);
        if self.visible_procs().iter().all(|p| p.slot != s) {
            self.procs.show_all = true;
        }
        self.sync_proc_cursor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_prefix_that_names_one_command_is_enough() {
        assert_eq!(
            parse("tr proc[1].kstack"),
            Ok(Command::Translate("proc[1].kstack".into()))
        );
        assert_eq!(parse(":goto  etext "), Ok(Command::Goto("etext".into())));
        assert_eq!(parse("c"), Ok(Command::Continue));
        assert_eq!(parse("hart 2"), Ok(Command::Hart(2)));
        assert_eq!(parse("proc 63"), Ok(Command::Proc(63)));
        assert_eq!(parse("q"), Ok(Command::Quit));
        assert_eq!(parse("vm"), Ok(Command::Vmprint));
    }

    #[test]
    fn unknown_ambiguous_and_missing_arguments_say_so() {
        assert_eq!(
            parse("frobnicate"),
            Err("unknown command `frobnicate` (try :help)".into())
        );
        assert_eq!(parse("h"), Err("`h` could be hart, halt, help".into()));
        assert_eq!(
            parse("translate"),
            Err(":translate needs an address or symbol expression, e.g. proc[3].kstack".into())
        );
        assert_eq!(parse("hart two"), Err(":hart needs a hart number".into()));
        assert_eq!(parse("proc"), Err(":proc needs a slot number".into()));
        assert_eq!(
            parse("break"),
            Err(":break needs a function, e.g. panic".into())
        );
    }

    #[test]
    fn the_first_word_completes_to_a_command() {
        let c = complete("tra", &[], |_| Vec::new());
        assert_eq!(c.text, "translate ");
        assert_eq!(c.note, None);
        let c = complete("h", &[], |_| Vec::new());
        assert_eq!(c.text, "h");
        assert_eq!(c.note.as_deref(), Some("hart  halt  help"));
    }

    #[test]
    fn later_words_complete_to_symbols_and_fields() {
        let syms = names(&["kernel_pagetable", "kalloc", "kfree", "kinit", "proc"]);
        let c = complete("goto kernel_pag", &syms, |_| Vec::new());
        assert_eq!(c.text, "goto kernel_pagetable");
        let c = complete("goto k", &syms, |_| Vec::new());
        assert_eq!(c.text, "goto k");
        assert_eq!(
            c.note.as_deref(),
            Some("kalloc  kernel_pagetable  kfree  kinit")
        );
        let c = complete("goto zz", &syms, |_| Vec::new());
        assert_eq!(c.note.as_deref(), Some("no completion for `zz`"));
        let c = complete("goto ", &syms, |_| Vec::new());
        assert_eq!(
            c.note.as_deref(),
            Some("type the start of a symbol, then Tab")
        );
        // Fields of the struct before the dot, asked for by expression.
        let c = complete("translate proc[0].kst", &syms, |expr| {
            assert_eq!(expr, "proc[0]");
            names(&["kstack", "state", "pid"])
        });
        assert_eq!(c.text, "translate proc[0].kstack");
        let c = complete("translate proc[0].", &syms, |_| {
            names(&["kstack", "kpagetable"])
        });
        assert_eq!(c.text, "translate proc[0].k");
        assert_eq!(c.note.as_deref(), Some("kpagetable  kstack"));
    }

    #[test]
    fn many_candidates_are_counted() {
        let syms: Vec<String> = (0..9).map(|i| format!("sym{i}")).collect();
        let c = complete("goto sy", &syms, |_| Vec::new());
        assert_eq!(c.text, "goto sym");
        assert_eq!(
            c.note.as_deref(),
            Some("sym0  sym1  sym2  sym3  sym4  sym5 … (9 in all)")
        );
    }
}
