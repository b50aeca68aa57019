//! `kinspect report` (explain the panic of a halted machine or snapshot)
//! and `kinspect watch` (wait for the panic on a live machine, then report).
//!
//! `watch` puts a breakpoint on the kernel's panic entry point `panic`
//! (our kernel and C xv6 both have one), lets the machine run, and when a
//! hart stops there lets `panic` finish its bookkeeping for a moment
//! (`panicmsg`, `panicked`), halts the machine and reports. A kernel found
//! already panicked (`panicked` = 1) is reported at once.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use kinspect_rsp::StopReply;

use super::report::{build, PanicReport};
use crate::commands::Ctx;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::target::qemu::QemuTarget;
use crate::target::Target;

/// How `--report FILE` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// `--format`, else the file's extension (`.md`, `.json`), else text.
pub fn format_for(file: Option<&Path>, format: Option<&str>) -> Result<Format> {
    let f = match format {
        Some(f) => f.to_string(),
        None => file
            .and_then(|p| p.extension())
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "text".into()),
    };
    match f.as_str() {
        "md" | "markdown" => Ok(Format::Markdown),
        "json" => Ok(Format::Json),
        "txt" | "text" => Ok(Format::Text),
        other => Err(Error::BadInput(format!(
            "report format `{other}`: use md, json or text"
        ))),
    }
}

fn render(r: &PanicReport, f: Format) -> Result<String> {
    Ok(match f {
        Format::Text => r.text(),
        Format::Markdown => r.markdown(),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(r)
                .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
            s.push('\n');
            s
        }
    })
}

/// Print the report (text, or JSON with --json) and write `file` if asked.
fn emit(
    r: &PanicReport,
    json: bool,
    file: Option<&Path>,
    format: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let fmt = format_for(file, format)?;
    write!(
        out,
        "{}",
        render(r, if json { Format::Json } else { Format::Text })?
    )?;
    if let Some(p) = file {
        std::fs::write(p, render(r, fmt)?)
            .map_err(|e| Error::Failed(format!("writing {}: {e}", p.display())))?;
        if !json {
            writeln!(out, "report written to {}", p.display())?;
        }
    }
    Ok(())
}

/// The session's ELF, which a report needs (for DWARF and CFI).
fn need_elf(session: &Session) -> Result<&kinspect_symbols::Symbols> {
    if session.elf.is_none() {
        return Err(Error::BadInput(
            "a report needs the kernel ELF (--elf, or target/kernel/kernel.elf)".into(),
        ));
    }
    session.symbols().ok_or_else(|| {
        Error::BadInput(
            session
                .elf_error()
                .unwrap_or("a report needs the kernel ELF with DWARF (--elf)")
                .into(),
        )
    })
}

/// `kinspect report`: the machine behind ctx (live and halted, or a snapshot).
pub fn run_report(
    ctx: &mut Ctx<'_>,
    file: Option<&Path>,
    format: Option<&str>,
    trace: Option<&Path>,
) -> Result<()> {
    let syms = need_elf(ctx.session)?;
    let trace = trace
        .map(|p| {
            crate::trace::Trace::load(p)
                .map(|t| (t, p.display().to_string()))
                .map_err(Error::BadInput)
        })
        .transpose()?;
    let profile = ctx.profile.clone();
    let ram = ctx.ram;
    let json = ctx.json;
    let mut r = build(ctx.target()?, syms, profile, ram)?;
    if let Some((t, name)) = &trace {
        crate::trace::explain_remap(&mut r, t, name, ctx.target()?, ram);
    }
    emit(&r, json, file, format, ctx.out)
}

/// A hart has just stopped on `panic`'s first instruction (its breakpoint
/// removed): let a kernel that records the message (`panicmsg`, ours) run
/// `panic` for a moment and halt again; hold a C xv6, which keeps the
/// message only in `panic`'s argument, where it is: on that first
/// instruction, a0 holding the message and every caller's registers
/// intact. `true` when held there.
pub fn settle_in_panic(
    s: &mut kinspect_rsp::Session,
    syms: &kinspect_symbols::Symbols,
) -> Result<bool> {
    let held = syms.elf_symbol("panicmsg").is_none();
    if !held {
        s.resume().map_err(|e| Error::Failed(e.to_string()))?;
        std::thread::sleep(Duration::from_millis(300));
    }
    s.halt().map_err(|e| Error::Failed(e.to_string()))?;
    Ok(held)
}

/// `kinspect watch`: wait for a panic on the live machine, then report.
pub fn watch(
    session: &Session,
    file: Option<&Path>,
    format: Option<&str>,
    timeout: u64,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<()> {
    format_for(file, format)?;
    let syms = need_elf(session)?;
    let path = session.elf.as_deref().unwrap_or(Path::new(""));
    let profile = session.profile.clone();
    let ram = session.ram;
    let panic_at = syms.elf_symbol("panic").map(|s| s.addr).ok_or_else(|| {
        Error::BadInput(format!(
            "{} has no `panic` function to break on",
            path.display()
        ))
    })?;
    let panicked_at = syms.elf_symbol("panicked").map(|s| s.addr);
    let mut t = QemuTarget::connect(&session.gdb)?;
    let already = match panicked_at {
        Some(a) => {
            let mut b = [0u8; 4];
            t.read_phys(a, &mut b)?;
            i32::from_le_bytes(b) != 0
        }
        None => false,
    };
    let mut held = false;
    if already {
        writeln!(
            warn,
            "kinspect: the kernel had already panicked (panicked = 1)"
        )?;
    } else {
        writeln!(
            warn,
            "kinspect: watching for a panic (breakpoint on panic at {panic_at:#x}); Ctrl-C to stop"
        )?;
        let s = t.session();
        s.insert_breakpoint(panic_at, 4)
            .map_err(|e| Error::Failed(e.to_string()))?;
        s.resume().map_err(|e| Error::Failed(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        loop {
            if Instant::now() >= deadline {
                // Take the breakpoint out and leave the guest running, as
                // it was found.
                let _ = s.ensure_halted();
                let _ = s.remove_breakpoint(panic_at, 4);
                let _ = s.resume();
                let _ = t.finish();
                return Err(Error::Failed(format!("no panic within {timeout} s")));
            }
            match s.wait_for_stop(Duration::from_millis(500)) {
                Ok(None) => continue,
                Ok(Some(StopReply::Signal { .. })) => break,
                Ok(Some(other)) => {
                    return Err(Error::Unreachable(format!(
                        "the machine stopped without a panic: {other:?}"
                    )))
                }
                Err(e) => return Err(Error::Unreachable(e.to_string())),
            }
        }
        s.remove_breakpoint(panic_at, 4)
            .map_err(|e| Error::Failed(e.to_string()))?;
        held = settle_in_panic(s, syms)?;
        if held {
            writeln!(
                warn,
                "kinspect: a hart entered panic (held at its first instruction, before it prints)"
            )?;
        } else {
            writeln!(warn, "kinspect: a hart entered panic")?;
        }
    }
    let r = build(&mut t, syms, profile, ram)?;
    emit(&r, session.json, file, format, out)?;
    // Put the machine back as found (a panicked kernel keeps spinning),
    // except a kernel held on panic's entry: resuming would lose the
    // message it keeps only in a0, so it stays there for `kinspect
    // snapshot`, `report` or gdb.
    t.finish()?;
    if held {
        writeln!(
            warn,
            "kinspect: left the machine halted on panic's first instruction (a0 holds the message); `kinspect snapshot -o FILE` saves it, gdb's `continue` lets it print"
        )?;
    }
    Ok(())
}
