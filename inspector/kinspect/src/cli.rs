//! kinspect's command line: argument parsing (clap derive), exit codes,
//! and dispatch to [`crate::commands`].
//!
//! This is the outermost layer of the data flow: it turns `argv` into a
//! [`Cli`], opens a [`Target`] (the live QEMU gdb stub) only when the
//! command needs one, runs the command against `&mut dyn Target`, and maps
//! every failure to one line `kinspect: <reason>` and an exit code
//! ([`exit`]). Tests drive [`run_args_on`] with a `MemoryTarget`, so the
//! same parsing and commands run without any transport.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::commands::{self, symbols::Symbols, Ctx};
use crate::model::Profile;
use crate::target::{Target, TargetError};

/// Process exit codes. Documented in `kinspect --help` and docs/commands/.
pub mod exit {
    /// The command did what was asked.
    pub const OK: i32 = 0;
    /// The target answered, but something went wrong reading it.
    pub const FAILURE: i32 = 1;
    /// Bad input: usage errors, bad numbers, unknown symbols or harts.
    pub const BAD_INPUT: i32 = 2;
    /// Cannot reach the target (nothing listening, connection lost, time-out).
    pub const UNREACHABLE: i32 = 3;
    /// `translate`: the address does not translate (the hart would fault).
    pub const NO_TRANSLATION: i32 = 4;
    /// `check`: at least one finding of severity error.
    pub const FINDINGS: i32 = 5;
    /// `--snapshot`/`serve`: the snapshot is damaged, truncated, not a
    /// snapshot, or of another kernel build than the ELF.
    pub const BAD_SNAPSHOT: i32 = 6;
}

/// Why a command failed; each renders as one line and maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NoTranslation(String),
    #[error("{0}")]
    Failed(String),
    /// `check` found errors in the kernel (the report is already printed).
    #[error("{0}")]
    Findings(String),
    /// A snapshot file that cannot be used (see `exit::BAD_SNAPSHOT`).
    #[error("{0}")]
    Snapshot(String),
    /// stdout was closed by its reader: stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) => exit::BAD_INPUT,
            Error::Unreachable(_) => exit::UNREACHABLE,
            Error::NoTranslation(_) => exit::NO_TRANSLATION,
            Error::Failed(_) => exit::FAILURE,
            Error::Findings(_) => exit::FINDINGS,
            Error::Snapshot(_) => exit::BAD_SNAPSHOT,
            Error::OutputClosed => exit::OK,
        }
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Unreachable { .. }
            | TargetError::Disconnected(_)
            | TargetError::Timeout(_) => Error::Unreachable(e.to_string()),
            TargetError::NoHart(_) | TargetError::BadAddress(_) => Error::BadInput(e.to_string()),
            TargetError::Protocol(_) | TargetError::Memory { .. } | TargetError::Unsupported(_) => {
                Error::Failed(e.to_string())
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `kinspect maps | head`: the reader has all it wanted.
            Error::OutputClosed
        } else {
            Error::Failed(format!("writing output: {e}"))
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

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
    pub command: Command,
}

/// Which page table a command walks. At most one; default: hart 0's satp.
#[derive(Debug, Clone, Default, Args)]
pub struct Select {
    /// The page table hart N translates through (its live satp).
    #[arg(long, value_name = "N", conflicts_with_all = ["satp", "root", "pid", "kernel"])]
    pub hart: Option<usize>,
    /// The page table a satp value names (e.g. a process's, from the kernel).
    #[arg(long, value_name = "VALUE", value_parser = parse_u64_arg, conflicts_with_all = ["root", "pid", "kernel"])]
    pub satp: Option<u64>,
    /// The page table whose root page is at this physical address (a
    /// number or a symbol expression such as `proc[3].pagetable`).
    #[arg(long, value_name = "PA", conflicts_with_all = ["pid", "kernel"])]
    pub root: Option<String>,
    /// The user page table of the process with this pid (from `proc[]`).
    #[arg(long, value_name = "N", conflicts_with = "kernel")]
    pub pid: Option<i64>,
    /// With --pid: that process's kernel page table (`kernel_pagetable`
    /// when the kernel has no per-process one).
    #[arg(long)]
    pub kernel_pt: bool,
    /// The kernel's page table, `kernel_pagetable`.
    #[arg(long)]
    pub kernel: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode satp: the mode, ASID and root page table.
    #[command(after_help = "\
With VALUE, decode it offline (no QEMU needed):
  kinspect satp 0x8000000000087fff
Without, read every hart's live satp:
  kinspect satp

satp = MODE[63:60] ASID[59:44] PPN[43:0]; the root table is at PPN << 12.
MODE 0 is Bare (no translation), 8 Sv39, 9 Sv48, 10 Sv57; others are reserved.")]
    Satp {
        /// A satp value, hex (0x...) or decimal.
        #[arg(value_parser = parse_u64_arg)]
        value: Option<u64>,
    },

    /// General registers and supervisor CSRs of one hart, decoded.
    #[command(after_help = "\
Prints x1..x31 by ABI name (ra sp gp tp t0..t6 s0..s11 a0..a7) with their
x-numbers, pc, the privilege level (U/S/M), and the supervisor CSRs decoded:
sstatus bits by name (SIE SPIE SPP SUM MXR ...), scause as a name
(`load page fault`, `supervisor timer interrupt`), satp's mode and root.
pc, ra, sepc and stvec are shown as func+0xoff when the ELF has symbols.

  kinspect regs            hart 0
  kinspect regs --hart 2")]
    Regs {
        /// The hart (0-based, as the kernel's cpuid() numbers them).
        #[arg(long, value_name = "N", default_value_t = 0)]
        hart: usize,
    },

    /// Mapped ranges of a page table, exactly like QEMU's `info mem`.
    #[command(after_help = "\
One line per range of pages with contiguous virtual and physical addresses
and the same attributes, merged by QEMU 7.2's rules, so the output equals
`info mem` on the same hart line for line. attr letters: r w x (read, write,
execute), u (user), g (global), a (accessed), d (dirty); `-` when clear.

  kinspect maps --hart 1
  kinspect maps --satp 0x8000000000087f5e     a process's page table
  kinspect maps --filter u                    user-accessible ranges only
  kinspect maps --filter w,!u                 writable, not user

Odd things in the table (pointers outside RAM, cycles, reserved encodings)
are reported on stderr as `kinspect: warning: ...`.")]
    Maps {
        #[command(flatten)]
        select: Select,
        /// Keep ranges with every listed attribute (r,w,x,u,g,a,d);
        /// `!x` keeps ranges without it.
        #[arg(long, value_delimiter = ',', value_name = "ATTRS")]
        filter: Vec<String>,
    },

    /// Print a page table as the xv6 pgtbl lab's vmprint tree.
    #[command(after_help = "\
One line per valid PTE, depth shown by ` ..`, index in decimal:

  page table 0x0000000087f6e000
   ..0: pte 0x0000000021fda801 pa 0x0000000087f6a000
   .. ..0: pte 0x0000000021fda401 pa 0x0000000087f69000
   .. .. ..0: pte 0x0000000021fdac1f pa 0x0000000087f6b000

With --va each line starts with the virtual address the entry maps
instead (as newer lab versions print). --va-range keeps only the entries
that map some of a virtual range, and the pointers down to them:

  kinspect vmprint --kernel --va-range 0x3fc0000000-0x4000000000
                                        the top gigabyte (root entry 255)
  kinspect vmprint --pid 1 --va-range 0..0x4000   pid 1's first four pages")]
    Vmprint {
        #[command(flatten)]
        select: Select,
        /// Label entries with their virtual address instead of their index.
        #[arg(long)]
        va: bool,
        /// Only entries that map some of [START, END): `START-END` or
        /// `START..END`, numbers or symbols (END is not included).
        #[arg(long, value_name = "START-END")]
        va_range: Option<String>,
    },

    /// Translate one virtual address through a page table.
    #[command(after_help = "\
VA may be hex (0x...), decimal, or a symbol from the ELF (`kernelvec`,
`etext+0x10`). Exit code 4 when the address does not translate.

  kinspect translate 0x3ffffff000              TRAMPOLINE
  kinspect translate --hart 1 kernelvec --explain

--explain shows VPN[2], VPN[1], VPN[0], the PTE read at each level with
its flags, and where and why the walk stopped.")]
    Translate {
        /// The virtual address.
        va: String,
        #[command(flatten)]
        select: Select,
        /// Show the walk level by level.
        #[arg(long)]
        explain: bool,
    },

    /// The process table, read from the kernel's `proc[]` by DWARF name.
    #[command(after_help = "\
One line per process: slot, pid, state, name, parent pid, the hart running
it (from cpus[]), its kernel stack's virtual and physical address (through
the kernel page table it runs on) and whether the guard page below is
unmapped, the user page-table root, the per-process kernel page-table root
when the kernel has one, size, trapframe, the saved context's ra and sp,
what it sleeps on, and whether it was killed. The machine is halted for
one read of the whole table and resumed afterwards if it was running.

  kinspect procs
  kinspect procs --all            UNUSED slots too
  kinspect --json procs

The per-process kernel page-table field is found by name (kpagetable,
kernel_pagetable, k_pagetable, kernelpt, kpt); name it with --kpt-field.")]
    Procs {
        /// Show UNUSED slots too.
        #[arg(long)]
        all: bool,
    },

    /// Consistency checks over the live kernel's processes, page tables
    /// and free list.
    #[command(after_help = "\
Each finding has a severity (error, warning, info), the object, the
evidence read from memory and why it matters. Checks: kernel stacks mapped
R W (not U, not X) in the table each process runs on in the kernel; guard
pages unmapped; TRAMPOLINE mapped R X to `trampoline` in every page table;
TRAPFRAME mapping the process's own trapframe; per-process kernel page
tables equal to kernel_pagetable apart from kernel stacks; the free list
bounded, in RAM, aligned, without cycles and holding no page in use;
no user page shared between processes or writable and executable.
kalloc's statistics come with it.

Exit code 5 when there is at least one error-severity finding.")]
    Check,
    /// Save the halted machine (RAM, every hart's registers and CSRs, the
    /// kernel's identity) to a snapshot file.
    #[command(after_help = "\
  kinspect snapshot -o crash.kisnap
  kinspect --snapshot crash.kisnap maps --hart 0     any read-only command, offline
  kinspect serve crash.kisnap                        to gdb

The format is in docs/snapshots.md. A snapshot is refused (exit 6) by a
kinspect whose --elf is another kernel build.")]
    Snapshot {
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Deflate level, 0 (store) to 9 (smallest).
        #[arg(long, value_name = "N", default_value_t = 1)]
        level: u32,
    },

    /// Serve a snapshot or QEMU ELF core to gdb (GDB remote protocol).
    #[command(after_help = "\
  kinspect serve crash.kisnap --port 1235
  gdb-multiarch target/kernel/kernel.elf -ex 'target remote :1235'

Harts are threads; memory is virtual through the selected hart's satp
(our own Sv39 walk), or physical after `monitor phys on`. `monitor help`
lists the kinspect views gdb can run (`monitor maps --hart 0`).")]
    Serve {
        /// A .kisnap snapshot or a QEMU ELF core.
        file: PathBuf,
        /// TCP port on 127.0.0.1 (0: any free port, printed).
        #[arg(long, value_name = "N", default_value_t = 1235)]
        port: u16,
    },

    /// The TUI: attach to a running kernel through QEMU's gdb stub (--gdb).
    #[command(after_help = "\
A full-screen view of the machine: harts and their privilege, processes,
their page tables (expand level by level), maps, registers, memory and
the frame-pointer backtrace. Keys: c continue, h halt, s step, Tab move,
Enter expand, / filter, : command (translate, goto, vmprint, break), ? help,
q quit (leave the guest running or halted). See docs/tui.md.

  kinspect --gdb localhost:1234 attach")]
    Attach,

    /// Start QEMU with the kernel (xv6's command line) and attach the TUI.
    #[command(after_help = "\
Starts qemu-system-riscv64 exactly as xv6-riscv does, with a gdb stub on a
free port; the guest's console is the TUI's Console tab (i to type into it,
Esc to leave it). Builds nothing: run `cargo xtask build` first, or simply
`cargo xtask run`, which builds and then launches.

  kinspect launch
  kinspect --elf path/to/kernel.elf launch --fs-img path/to/fs.img")]
    Launch {
        /// The file-system image [default: fs.img beside the kernel ELF].
        #[arg(long, value_name = "PATH")]
        fs_img: Option<PathBuf>,
        /// Harts (QEMU's -smp).
        #[arg(long, value_name = "N", default_value_t = 3)]
        smp: u32,
    },
    /// Explain a panicked kernel: message, harts, processes, backtraces,
    /// and what the page tables say about remap, kvmpa, uvmunmap, freewalk
    /// and kernel page faults.
    #[command(after_help = "\
  kinspect report                          the live machine (halted while read)
  kinspect --snapshot crash.kisnap report  a saved one
  kinspect report --report crash.md        also write Markdown (or .json)

See docs/postmortem.md.")]
    Report {
        /// Also write the report to FILE (.md Markdown, .json JSON, else text).
        #[arg(long = "report", value_name = "FILE")]
        file: Option<PathBuf>,
        /// md, json or text [default: from FILE's extension].
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },

    /// Wait for the kernel to panic (a breakpoint on `panic`), then report.
    #[command(after_help = "\
  kinspect watch --report crash.md
A kernel that has already panicked is reported at once.")]
    Watch {
        /// Also write the report to FILE (.md Markdown, .json JSON, else text).
        #[arg(long = "report", value_name = "FILE")]
        file: Option<PathBuf>,
        /// md, json or text [default: from FILE's extension].
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 86400)]
        timeout: u64,
    },

    /// Watch processes and one page table change while the guest runs,
    /// refreshed about 10 times a second, without halting it (needs the
    /// RAM fast path: QEMU on this host).
    #[command(after_help = "\
  kinspect top                       refresh until Ctrl-C
  kinspect top --pid 3               follow pid 3's page table
  kinspect top --once                one frame
  kinspect --json top --frames 20    20 frames as one JSON document

Marks: + new process, * changed (state, size, page table), - exited,
~ changed while it was being read (shown, but not one instant). The
followed page table's user pages are counted with the change since the
last frame (+1 after an sbrk) and reported freed when its process exits.
See docs/fast-path.md.")]
    Top {
        /// Print one frame and stop.
        #[arg(long, conflicts_with = "frames")]
        once: bool,
        /// Stop after N frames.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        frames: Option<u64>,
        /// Milliseconds between frames.
        #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60000))]
        interval: u64,
        /// Follow this process's user page table [default: the newest].
        #[arg(long, value_name = "N")]
        pid: Option<i64>,
    },

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

impl Command {
    /// Whether the command can run without a target.
    fn offline(&self) -> bool {
        matches!(
            self,
            Command::Satp { value: Some(_) } | Command::Completions { .. }
        )
    }
}

/// Parse a number: `0x` hex, `0b` binary, or decimal; `_` allowed.
pub fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if let Some(b) = t.strip_prefix("0b") {
        u64::from_str_radix(b, 2)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|e| format!("`{s}` is not a number ({e}); use hex like 0x80000000 or decimal"))
}

fn parse_u64_arg(s: &str) -> std::result::Result<u64, String> {
    parse_u64(s)
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

/// The ELF to use: `--elf` (must load) or the default path (if present).
fn load_symbols(cli: &Cli) -> Result<Option<Symbols>> {
    match &cli.elf {
        Some(p) => Symbols::load(p).map(Some).map_err(Error::BadInput),
        None => {
            let default = Path::new("target/kernel/kernel.elf");
            if default.exists() {
                // A broken default ELF only costs symbol names.
                Ok(Symbols::load(default).ok())
            } else {
                Ok(None)
            }
        }
    }
}

/// The ELF through the DWARF layer (for the kernel model and symbol
/// expressions): `--elf` must open, the default path may be missing.
fn load_debug(cli: &Cli) -> Result<Option<kinspect_symbols::Symbols>> {
    match &cli.elf {
        Some(p) => kinspect_symbols::Symbols::open(p)
            .map(Some)
            .map_err(|e| Error::BadInput(e.to_string())),
        None => Ok(kinspect_symbols::Symbols::open("target/kernel/kernel.elf").ok()),
    }
}

/// [`load_debug`] for commands that run outside [`run_on`] (`top`).
pub fn load_debug_for(cli: &Cli) -> Result<Option<kinspect_symbols::Symbols>> {
    load_debug(cli)
}

/// The kernel profile `--profile` and `--kpt-field` ask for, resolved once
/// for every entry point (commands, the TUI, watch, serve).
pub fn profile(cli: &Cli) -> Result<Profile> {
    let profile = Profile::builtin(&cli.profile).ok_or_else(|| {
        Error::BadInput(format!(
            "no profile `{}` (built in: {})",
            cli.profile,
            Profile::BUILTIN.join(", ")
        ))
    })?;
    Ok(match &cli.kpt_field {
        Some(f) => profile.with_kpt_field(f),
        None => profile,
    })
}

/// Whether a command reads the target through the ELF's symbols (names,
/// expressions, the kernel model), so a mismatched ELF would make it lie.
fn trusts_symbols(c: &Command) -> bool {
    let selects = |s: &Select| s.root.is_some() || s.pid.is_some() || s.kernel || s.kernel_pt;
    match c {
        Command::Satp { .. } | Command::Completions { .. } => false,
        Command::Maps { select, .. } => selects(select),
        Command::Vmprint {
            select, va_range, ..
        } => selects(select) || va_range.is_some(),
        Command::Regs { .. }
        | Command::Translate { .. }
        | Command::Procs { .. }
        | Command::Check
        | Command::Report { .. } => true,
        _ => false,
    }
}

/// Run a parsed command on `target`.
pub fn run_on(
    cli: &Cli,
    target: Option<&mut dyn Target>,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<()> {
    let symbols = load_symbols(cli)?;
    let debug = load_debug(cli)?;
    let profile = profile(cli)?;
    // Re-borrow to shorten the trait object's lifetime to this call's.
    #[allow(clippy::needless_match)]
    let target: Option<&mut dyn Target> = match target {
        Some(t) => Some(t),
        None => None,
    };
    let mut ctx = Ctx {
        target,
        symbols: symbols.as_ref(),
        debug: debug.as_ref(),
        profile,
        json: cli.json,
        ram: kinspect_sv39::Ram {
            base: 0x8000_0000,
            size: cli.ram_mib.saturating_mul(1 << 20),
        },
        out,
        warn,
    };
    // One identity check before any command trusts the ELF's symbols:
    // a kernel rebuilt under a running QEMU is the common case.
    if trusts_symbols(&cli.command) {
        if let (Some(t), Some(d)) = (ctx.target.as_deref_mut(), ctx.debug) {
            let mut phys = crate::model::PhysCache::new(t);
            crate::model::verify_image(d, &mut phys).map_err(commands::model_error)?;
        }
    }
    match &cli.command {
        Command::Satp { value } => commands::satp::run(&mut ctx, *value),
        Command::Regs { hart } => commands::regs::run(&mut ctx, *hart),
        Command::Maps { select, filter } => commands::maps::run(&mut ctx, select, filter),
        Command::Vmprint {
            select,
            va,
            va_range,
        } => commands::vmprint::run(&mut ctx, select, *va, va_range.as_deref()),
        Command::Translate {
            va,
            select,
            explain,
        } => commands::translate::run(&mut ctx, select, va, *explain),
        Command::Procs { all } => commands::procs::run(&mut ctx, *all),
        Command::Check => commands::check::run(&mut ctx),
        Command::Snapshot { output, level } => {
            crate::snapshot::cmd::run(&mut ctx, cli, output, *level)
        }
        Command::Report { file, format } => {
            crate::postmortem::watch::run_report(&mut ctx, cli, file.as_deref(), format.as_deref())
        }
        Command::Watch { .. } => Err(Error::BadInput(
            "watch needs a live QEMU (not --snapshot): kinspect --gdb HOST:PORT watch".into(),
        )),
        Command::Serve { .. } => Err(Error::BadInput(
            "serve reads its file itself: kinspect serve FILE".into(),
        )),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a closed pipe.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "kinspect", &mut script);
            ctx.out.write_all(&script)?;
            Ok(())
        }
        Command::Top { .. } => Err(Error::BadInput(
            "top needs a live QEMU on this host (not --snapshot): kinspect --gdb HOST:PORT top"
                .into(),
        )),
        Command::Attach | Command::Launch { .. } => Err(Error::BadInput(
            "attach and launch run the TUI in a terminal (kinspect attach)".into(),
        )),
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

/// Whether to try the RAM fast path (`--no-fast-path` says no).
pub fn fast_path(cli: &Cli) -> crate::target::fastram::FastPath {
    if cli.no_fast_path {
        crate::target::fastram::FastPath::Off
    } else {
        crate::target::fastram::FastPath::Auto
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
    let r = if let Command::Launch { fs_img, smp } = &cli.command {
        let kernel = cli
            .elf
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/kernel/kernel.elf"));
        let fs_img = fs_img
            .clone()
            .unwrap_or_else(|| kernel.with_file_name("fs.img"));
        let opts = crate::tui::LaunchOptions {
            kernel,
            fs_img,
            smp: *smp,
        };
        crate::tui::launch(&cli, &opts)
    } else if let Command::Attach = &cli.command {
        crate::tui::attach(&cli)
    } else if let (
        Command::Top {
            once,
            frames,
            interval,
            pid,
        },
        None,
    ) = (&cli.command, &cli.snapshot)
    {
        let args = commands::top::TopArgs {
            once: *once,
            frames: *frames,
            interval: std::time::Duration::from_millis(*interval),
            pid: *pid,
        };
        commands::top::main(&cli, &args, &mut out, &mut warn)
    } else if cli.command.offline() {
        run_on(&cli, None, &mut out, &mut warn)
    } else if let Some(r) = crate::snapshot::cmd::main_hook(&cli, &mut out, &mut warn) {
        r
    } else {
        match commands::connect_with(&cli.gdb, fast_path(&cli)) {
            Ok(mut session) => {
                let fast = session.fast();
                if cli.verbose {
                    let _ = writeln!(warn, "kinspect: {}", fast.path_line());
                } else if let Some(why) = fast.fallback() {
                    let _ = writeln!(warn, "kinspect: memory through the gdb stub: {why}");
                }
                let r = run_on(&cli, Some(session.target()), &mut out, &mut warn);
                // Leave the machine as found, even after a failed command.
                let done = session.finish().map_err(Error::from);
                r.and(done)
            }
            Err(e) => Err(e),
        }
    };
    let code = finish(r, cli.json, &mut out, &mut warn);
    let _ = out.flush();
    code
}
