//! kinspect's command line: the global options, argument parsing (clap
//! derive), and the one place that turns them into a [`Session`], hands
//! the command to [`commands::open_and_run`] and reports its outcome as one
//! line and an exit code ([`crate::error::exit`]).
//!
//! This is the outermost layer of the data flow and a leaf: nothing else
//! in kinspect imports it. The commands themselves, with their arguments
//! and help, are in [`crate::commands`]. Tests drive [`run_args_on`] with
//! a `MemoryTarget`, so the same parsing and commands run without any
//! transport.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{self, Command};
use crate::error::{exit, Error, Result};
use crate::parse::parse_u64;
use crate::session::{Session, Settings};
use crate::target::fastram::FastPath;
use crate::target::Target;

const AFTER_HELP: &str = "\
Examples:
  kinspect satp 0x8000000000087fff      decode a satp value (no QEMU needed)
  kinspect regs --hart 1                registers and CSRs of hart 1, symbolised
  kinspect maps --hart 0                hart 0's mappings, like QEMU's `info mem`
  kinspect maps --filter u,w            only user-writable ranges
  kinspect vmprint --va                 the xv6 lab's vmprint tree, with addresses
  kinspect vmprint --kernel --va-range 0x3fc0000000-0x4000000000
                                        only the top gigabyte of kernel_pagetable
  kinspect translate 0x3ffffff000 --explain
                                        walk one address level by level
  kinspect --gdb localhost:26000 --json maps

`cargo xtask install` puts kinspect on PATH; `kinspect completions bash`
prints shell completions (zsh, fish too).

Start QEMU with a gdb stub first (`cargo xtask qemu` does, on localhost:1234;
or add `-gdb tcp::1234` to QEMU's command line). kinspect halts a running
machine while it reads and resumes it afterwards; a halted one stays halted.

Exit codes:
  0  success
  1  the target answered but reading it failed
  2  bad input (usage, numbers, unknown symbol or hart)
  3  cannot reach the target (nothing on --gdb, connection lost, time-out)
  4  translate: the address does not translate
  5  check: the kernel has at least one error-severity finding
  6  --snapshot/serve: the file is damaged, not a snapshot, or of another kernel";

/// Inspect an xv6-style RISC-V kernel running under QEMU.
///
/// kinspect talks to QEMU's gdb stub, reads physical memory, registers and
/// CSRs of every hart, and walks Sv39 page tables with its own code (never
/// by asking the stub to translate), so what it prints is what the page
/// table in RAM says.
#[derive(Debug, Parser)]
#[command(name = "kinspect", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// QEMU's gdb stub, as [HOST]:PORT (HOST defaults to localhost).
    #[arg(
        long,
        global = true,
        value_name = "[HOST]:PORT",
        default_value = "localhost:1234",
        value_parser = parse_gdb_arg
    )]
    pub gdb: String,

    /// The kernel ELF, for symbol names in output and as VA arguments
    /// [default: target/kernel/kernel.elf when present].
    #[arg(long, global = true, value_name = "PATH")]
    pub elf: Option<PathBuf>,

    /// Print JSON instead of text: addresses, PTEs, CSRs and other 64-bit
    /// values as "0x..." strings, errors as {"error": ..., "exit_code": N}
    /// on stdout (docs/json.md).
    #[arg(long, global = true)]
    pub json: bool,

    /// RAM size in MiB from 0x80000000 (QEMU's -m): page-table pointers
    /// outside RAM are reported, never followed.
    #[arg(
        long,
        global = true,
        value_name = "MIB",
        default_value_t = 128,
        value_parser = parse_ram_mib
    )]
    pub ram_mib: u64,

    /// The kernel profile: which names the process model looks for
    /// (auto, xv6-riscv, kinspect-kernel, pgtbl-lab).
    #[arg(long, global = true, value_name = "NAME", default_value = "auto")]
    pub profile: String,

    /// The per-process kernel page-table field of `struct proc` (pgtbl-lab
    /// kernels name it variously), or `none` [default: the profile's names].
    #[arg(long, global = true, value_name = "FIELD")]
    pub kpt_field: Option<String>,

    /// Read the machine from a snapshot file (`kinspect snapshot`) or a
    /// QEMU `dump-guest-memory` ELF core instead of QEMU's gdb stub.
    #[arg(long, global = true, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,

    /// Read guest memory through QEMU's gdb stub only, never directly
    /// from the QEMU process on this host (docs/fast-path.md).
    #[arg(long, global = true)]
    pub no_fast_path: bool,

    /// Say on stderr how memory is read (directly or through the stub).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Top,
}

/// The commands, and `completions`, which prints this parser itself.
#[derive(Debug, Subcommand)]
pub enum Top {
    #[command(flatten)]
    Command(Command),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Load it for this shell, or install it once:

  source <(kinspect completions bash)
  kinspect completions bash > ~/.local/share/bash-completion/completions/kinspect
  kinspect completions zsh > ~/.zfunc/_kinspect      (with fpath+=~/.zfunc)
  kinspect completions fish > ~/.config/fish/completions/kinspect.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// The global options, for [`Session::new`].
    pub fn settings(&self) -> Settings {
        Settings {
            elf: self.elf.clone(),
            profile: self.profile.clone(),
            kpt_field: self.kpt_field.clone(),
            ram_mib: self.ram_mib,
            json: self.json,
            gdb: self.gdb.clone(),
            snapshot: self.snapshot.clone(),
            fast_path: if self.no_fast_path {
                FastPath::Off
            } else {
                FastPath::Auto
            },
            verbose: self.verbose,
        }
    }
}

/// `completions SHELL`: the script, into a buffer first (clap_complete
/// panics on a closed pipe).
fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kinspect", &mut script);
    out.write_all(&script)?;
    Ok(())
}

/// Run a parsed command line: on `target` when one is given (tests, a
/// caller holding a connection), else on what the command needs: the
/// `--snapshot` file or QEMU's gdb stub, left as found afterwards.
pub fn run_on(
    cli: &Cli,
    target: Option<&mut dyn Target>,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<()> {
    let command = match &cli.command {
        Top::Completions { shell } => return completions(*shell, out),
        Top::Command(c) => c.command(),
    };
    let session = Session::new(&cli.settings())?;
    commands::open_and_run(command, &session, target, out, warn)
}

/// `--ram-mib`: at least 1 (0 would put every page table outside RAM).
fn parse_ram_mib(s: &str) -> std::result::Result<u64, String> {
    match parse_u64(s)? {
        0 => Err("RAM cannot be empty: give QEMU's -m in MiB (128 for xv6)".into()),
        n => Ok(n),
    }
}

/// `--gdb`: `[HOST]:PORT` with a port from 1 to 65535, checked before
/// anything connects, so a typo is a usage error (exit 2) naming the part.
fn parse_gdb_arg(s: &str) -> std::result::Result<String, String> {
    match kinspect_rsp::transport::StubAddr::parse(s) {
        Ok(_) => Ok(s.to_string()),
        Err(kinspect_rsp::Error::Address { why, .. }) => Err(why),
        Err(e) => Err(e.to_string()),
    }
}

/// Parse `args` (program name first) and run on the given target; write
/// errors as `kinspect: <reason>` to `warn` (or, with `--json`, as a JSON
/// object to `out`); return the exit code.
pub fn run_args_on(
    args: &[&str],
    target: &mut dyn Target,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> i32 {
    let json = wants_json(args.iter().map(std::ffi::OsStr::new));
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return clap_error(e, json, out, warn),
    };
    let mut out = Tracked::new(out);
    let r = run_on(&cli, Some(target), &mut out, warn);
    finish(r, cli.json, &mut out, warn)
}

/// Whether the raw arguments ask for `--json` (before a `--`), so that
/// even a usage error is reported as JSON.
fn wants_json<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// stdout, remembering whether a command printed anything: a failure under
/// `--json` prints its error object only when no result was printed, so
/// stdout always holds exactly one JSON document.
pub struct Tracked<'a> {
    inner: &'a mut dyn Write,
    wrote: bool,
}

impl<'a> Tracked<'a> {
    pub fn new(inner: &'a mut dyn Write) -> Self {
        Tracked {
            inner,
            wrote: false,
        }
    }
}

impl Write for Tracked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.wrote |= !buf.is_empty();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The error object `--json` prints on stdout: `{"error": ..., "exit_code": N}`.
#[derive(Debug, serde::Serialize)]
pub struct JsonError<'a> {
    pub error: &'a str,
    pub exit_code: i32,
}

/// Report a command's outcome: nothing on success; on failure one line
/// `kinspect: <reason>` on `warn`, or under `--json` one error object on
/// stdout (unless the command already printed its JSON result, as
/// `translate` does before exit 4 and `check` before exit 5; then the
/// line goes to `warn`). Returns the exit code.
fn finish(r: Result<()>, json: bool, out: &mut Tracked<'_>, warn: &mut dyn Write) -> i32 {
    match r {
        Ok(()) | Err(Error::OutputClosed) => exit::OK,
        Err(e) => {
            let code = e.exit_code();
            if json && !out.wrote {
                write_json_error(out, &e.to_string(), code);
            } else {
                let _ = writeln!(warn, "kinspect: {e}");
            }
            code
        }
    }
}

fn write_json_error(out: &mut dyn Write, error: &str, exit_code: i32) {
    let v = JsonError { error, exit_code };
    if let Ok(s) = serde_json::to_string(&v) {
        let _ = writeln!(out, "{s}");
    }
}

/// Help and version go to stdout with 0; usage errors become one line and
/// 2 (a JSON error object on stdout with `--json`).
fn clap_error(e: clap::Error, json: bool, out: &mut dyn Write, warn: &mut dyn Write) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(out, "{}", e.render());
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                exit::BAD_INPUT
            } else {
                exit::OK
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            let reason = first.strip_prefix("error: ").unwrap_or(first);
            if json {
                write_json_error(
                    out,
                    &format!("{reason} (see kinspect --help)"),
                    exit::BAD_INPUT,
                );
            } else {
                let _ = writeln!(warn, "kinspect: {reason} (see kinspect --help)");
            }
            exit::BAD_INPUT
        }
    }
}

/// The whole program: parse, connect when needed, run, report.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let json = wants_json(args.iter().map(|a| a.as_os_str()));
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return clap_error(e, json, &mut std::io::stdout(), &mut std::io::stderr()),
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let mut out = Tracked::new(&mut lock);
    let mut warn = std::io::stderr();
    let r = run_on(&cli, None, &mut out, &mut warn);
    let code = finish(r, cli.json, &mut out, &mut warn);
    let _ = out.flush();
    code
}
