//! The commands, one module each: `satp`, `regs`, `maps`, `vmprint`,
//! `translate`, `procs`, `check`, `snapshot`, `serve`, `attach`, `launch`,
//! `report`, `watch`, `diff`, `top`, `proxy`.
//!
//! A command module owns its arguments (`Args`, a `clap::Args` struct whose
//! doc comment and `after_help` are the command's `--help`) and a [`Run`]
//! implementation. The [`commands!`] list below declares the module and its
//! [`Command`] variant in one line, so a new command is one new file plus
//! one line there (docs/contributing.md walks through one).
//!
//! A read-only command reads the machine through `&mut dyn Target` (live
//! QEMU, snapshot or a crafted `MemoryTarget` in tests), feeds the Sv39 and
//! kernel models, and writes text or `--json` to `ctx.out`; warnings
//! (findings about the page table) go to `ctx.warn`. Commands never open
//! connections themselves: [`open_and_run`] (for the command line) or
//! `serve`'s gdb `monitor` opens the target [`Run::needs`] asks for and
//! calls [`run`].

/// Declare each command's module and its [`Command`] variant, in `--help`
/// order: `Variant(module)` means `pub mod module;` holding
/// `module::Args: Run`.
macro_rules! commands {
    ($($name:ident($module:ident),)*) => {
        $(pub mod $module;)*

        /// Every kinspect command (the global options live in `cli.rs`).
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $($name($module::Args),)*
        }

        impl Command {
            /// The command's arguments, as something that runs.
            pub fn command(&self) -> &dyn Run {
                match self {
                    $(Command::$name(a) => a,)*
                }
            }
        }
    };
}

commands! {
    Satp(satp),
    Regs(regs),
    Maps(maps),
    Vmprint(vmprint),
    Translate(translate),
    Procs(procs),
    Check(check),
    Snapshot(snapshot),
    Serve(serve),
    Attach(attach),
    Launch(launch),
    Report(report),
    Watch(watch),
    Diff(diff),
    Top(top),
    Trace(trace),
    Blame(blame),
    Proxy(proxy),
}

use std::io::Write;

use kinspect_sv39::{Finding, PhysAddr, Ram, Satp, SatpMode, VirtAddr};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{self, Kernel, KernelState, PhysCache, Profile, TableSel};
use crate::parse::parse_u64;
use crate::session::Session;
use crate::target::{Csr, Hart, Target};

/// What a command needs opened before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: it runs offline (`satp VALUE`).
    Nothing,
    /// A machine to read: the live QEMU, or the `--snapshot` file.
    Target {
        /// Whether it reads the machine through the ELF's symbols (names,
        /// expressions, the kernel model), so that the ELF is checked
        /// against the machine first: a mismatched ELF would make it lie.
        trusts_symbols: bool,
    },
    /// It opens what it needs itself from the [`Session`] (the TUI,
    /// `watch`, `serve`): not from inside gdb's `monitor`.
    Itself,
}

/// A command: its parsed arguments, run against a [`Ctx`].
pub trait Run {
    /// What the caller must open first (default: a machine, read through
    /// the ELF's symbols).
    fn needs(&self) -> Needs {
        Needs::Target {
            trusts_symbols: true,
        }
    }

    /// Whether the command only reads (so gdb's `monitor` may run it on
    /// a snapshot).
    fn read_only(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()>;
}

/// Run `command` on what its [`Run::needs`] asked for: with a target, the
/// ELF's identity is checked against the machine first when the command
/// trusts symbols (a kernel rebuilt under a running QEMU is the common
/// case).
pub fn run<'a>(
    command: &dyn Run,
    session: &'a Session,
    target: Option<&'a mut dyn Target>,
    out: &'a mut dyn Write,
    warn: &'a mut dyn Write,
) -> Result<()> {
    // Re-borrow to shorten the trait object's lifetime to this call's.
    #[allow(clippy::needless_match)]
    let target: Option<&mut dyn Target> = match target {
        Some(t) => Some(t),
        None => None,
    };
    let mut ctx = Ctx::new(session, target, out, warn);
    if command.needs()
        == (Needs::Target {
            trusts_symbols: true,
        })
    {
        if let (Some(d), Some(t)) = (ctx.symbols(), ctx.target.as_deref_mut()) {
            let mut phys = PhysCache::new(t);
            crate::model::verify_image(d, &mut phys)?;
        }
    }
    command.run(&mut ctx)
}

/// Which page table a command walks. At most one; default: hart 0's satp.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Select {
    /// The page table hart N translates through (its live satp).
    #[arg(long, value_name = "N", conflicts_with_all = ["satp", "root", "pid", "kernel"])]
    pub hart: Option<usize>,
    /// The page table a satp value names (e.g. a process's, from the kernel).
    #[arg(long, value_name = "VALUE", value_parser = parse_u64, conflicts_with_all = ["root", "pid", "kernel"])]
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

impl Select {
    /// Whether the table is named through the kernel's symbols (`--root
    /// EXPR`, `--pid`, `--kernel`), so the ELF must match the machine.
    pub fn names_symbols(&self) -> bool {
        self.root.is_some() || self.pid.is_some() || self.kernel || self.kernel_pt
    }
}

/// Findings printed as warnings before the rest is summarised in one line.
pub const MAX_WARNINGS: usize = 20;

/// Open what `command` [needs](Run::needs) and run it: `target` when the
/// caller holds one (tests), else the session's `--snapshot` file or QEMU's
/// gdb stub, which is left as found afterwards (resumed if it was running).
pub fn open_and_run(
    command: &dyn Run,
    session: &Session,
    target: Option<&mut dyn Target>,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<()> {
    let needs = command.needs();
    // A command that names things by symbol learns of a broken --elf
    // before it connects.
    if needs
        == (Needs::Target {
            trusts_symbols: true,
        })
        && session.symbols().is_none()
    {
        if let Some(e) = session.elf_error() {
            return Err(Error::BadInput(e.to_string()));
        }
    }
    match needs {
        Needs::Nothing | Needs::Itself => run(command, session, None, out, warn),
        Needs::Target { .. } => {
            if let Some(t) = target {
                return run(command, session, Some(t), out, warn);
            }
            if let Some(path) = &session.snapshot {
                let mut t = crate::snapshot::open::open(session, path, warn)?;
                return run(command, session, Some(&mut t), out, warn);
            }
            let mut t = session.connect(warn)?;
            let r = run(command, session, Some(&mut t), out, warn);
            // Leave the machine as found, even after a failed command.
            let done = t.finish().map_err(Error::from);
            r.and(done)
        }
    }
}

/// What a command runs with.
pub struct Ctx<'a> {
    /// The invocation's resolved settings.
    pub session: &'a Session,
    /// `None` for commands that run offline or open their own target.
    pub target: Option<&'a mut dyn Target>,
    /// The names the kernel model looks for (`--profile`, `--kpt-field`).
    pub profile: Profile,
    pub json: bool,
    pub ram: Ram,
    pub out: &'a mut dyn Write,
    pub warn: &'a mut dyn Write,
}

impl<'a> Ctx<'a> {
    pub fn new(
        session: &'a Session,
        target: Option<&'a mut dyn Target>,
        out: &'a mut dyn Write,
        warn: &'a mut dyn Write,
    ) -> Ctx<'a> {
        Ctx {
            session,
            target,
            profile: session.profile.clone(),
            json: session.json,
            ram: session.ram,
            out,
            warn,
        }
    }
}

impl<'a> Ctx<'a> {
    /// The kernel ELF's symbols and debug info (`session.symbols()`),
    /// read when first asked for.
    pub fn symbols(&self) -> Option<&'a kinspect_symbols::Symbols> {
        self.session.symbols()
    }
}

impl Ctx<'_> {
    pub fn target(&mut self) -> Result<&mut dyn Target> {
        match self.target.as_deref_mut() {
            Some(t) => Ok(t),
            None => Err(Error::Failed("this command needs a target".into())),
        }
    }

    /// Write `v` as pretty JSON and a newline.
    pub fn json<T: Serialize>(&mut self, v: &T) -> Result<()> {
        let s = serde_json::to_string_pretty(v)
            .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
        writeln!(self.out, "{s}")?;
        Ok(())
    }

    /// Report walk findings on the warning stream (text mode only; JSON
    /// output carries them in a `findings` field).
    pub fn warn_findings(&mut self, findings: &[Finding]) -> Result<()> {
        if self.json {
            return Ok(());
        }
        for f in findings.iter().take(MAX_WARNINGS) {
            writeln!(self.warn, "kinspect: warning: {f}")?;
        }
        if findings.len() > MAX_WARNINGS {
            writeln!(
                self.warn,
                "kinspect: warning: ... and {} (--json lists them all)",
                crate::words::count(
                    findings.len() - MAX_WARNINGS,
                    "more finding",
                    "more findings"
                )
            )?;
        }
        Ok(())
    }

    /// The number of a hart, checked against the target's harts.
    pub fn check_hart(&mut self, hart: Hart) -> Result<()> {
        let harts = self.target()?.harts()?;
        if harts.contains(&hart) {
            Ok(())
        } else {
            Err(Error::BadInput(format!(
                "no hart {hart}: the machine has harts 0..{}",
                harts.len().saturating_sub(1)
            )))
        }
    }
}

/// Walk the page table at `root` over the target's physical memory, every
/// level, bounded by the RAM the command was told about (`--ram-mib`).
pub fn walk_root(ctx: &mut Ctx<'_>, root: PhysAddr) -> Result<kinspect_sv39::Walk> {
    let limits = kinspect_sv39::WalkLimits {
        ram: ctx.ram,
        ..kinspect_sv39::WalkLimits::default()
    };
    Ok(kinspect_sv39::walk(ctx.target()?, root, limits)?)
}

pub use crate::views::Root;

/// Resolve `--hart/--satp/--root/--pid [--kernel-pt]/--kernel` (default:
/// hart 0) to a root table.
pub fn resolve_root(ctx: &mut Ctx<'_>, select: &Select) -> Result<Root> {
    if select.kernel_pt && select.pid.is_none() {
        return Err(Error::BadInput(
            "--kernel-pt needs --pid N: whose kernel page table? (--kernel is kernel_pagetable)"
                .into(),
        ));
    }
    let sel = match (select.pid, select.kernel) {
        (Some(pid), _) if select.kernel_pt => Some(TableSel::ProcKernel { pid }),
        (Some(pid), _) => Some(TableSel::User { pid }),
        (None, true) => Some(TableSel::Kernel),
        (None, false) => None,
    };
    if let Some(sel) = sel {
        let debug = need_debug(ctx, "--pid and --kernel")?;
        let kernel = Kernel::new(debug, ctx.profile.clone())?;
        let ram = ctx.ram;
        let mut phys = PhysCache::new(ctx.target()?);
        let state = kernel.read_state(&mut phys, ram)?;
        let t = kernel.select(&state, sel).map_err(|e| match e {
            e if e.is_selection() => Error::BadInput(e.to_string()),
            e => Error::from(e),
        })?;
        return Ok(Root {
            hart: None,
            satp: None,
            mode: SatpMode::Sv39,
            root: t.root,
            table: Some(t.describe),
        });
    }
    if let Some(text) = &select.root {
        let root = PhysAddr(parse_addr(ctx, text)?);
        if root.page_offset() != 0 {
            return Err(Error::BadInput(format!(
                "--root {root:#x} is not page-aligned (a table page starts at a multiple of 0x1000)"
            )));
        }
        return Ok(Root {
            hart: None,
            satp: None,
            mode: SatpMode::Sv39,
            root,
            table: None,
        });
    }
    let (hart, value) = match select.satp {
        Some(v) => (None, v),
        None => {
            let hart = select.hart.unwrap_or(0);
            ctx.check_hart(hart)?;
            (Some(hart), ctx.target()?.csr(hart, Csr::Satp)?)
        }
    };
    let s = Satp(value);
    Ok(Root {
        hart,
        satp: Some(value),
        mode: s.mode(),
        root: s.root(),
        table: None,
    })
}

/// The DWARF symbols, or the error saying `what` needs them.
pub fn need_debug<'a>(ctx: &Ctx<'a>, what: &str) -> Result<&'a kinspect_symbols::Symbols> {
    ctx.symbols().ok_or_else(|| {
        Error::BadInput(format!(
            "{what} need the kernel ELF with debug info (give --elf PATH; default target/kernel/kernel.elf)"
        ))
    })
}

/// The kernel model and one consistent read of its state.
pub fn read_kernel<'s>(
    debug: &'s kinspect_symbols::Symbols,
    profile: &Profile,
    phys: &mut PhysCache<'_>,
    ram: Ram,
) -> Result<(Kernel<'s>, KernelState)> {
    let kernel = Kernel::new(debug, profile.clone())?;
    let state = kernel.read_state(phys, ram)?;
    Ok((kernel, state))
}

/// Require Sv39 (Bare is handled by each command first).
pub fn require_sv39(root: &Root) -> Result<()> {
    match root.mode {
        SatpMode::Sv39 => Ok(()),
        SatpMode::Bare => Err(Error::Failed(format!(
            "{}: satp mode is Bare, there is no page table",
            root.describe()
        ))),
        m => Err(Error::Failed(format!(
            "{}: mode {m} is not Sv39; kinspect walks Sv39 page tables only",
            root.describe()
        ))),
    }
}

/// A virtual address argument: a number, or a symbol expression
/// (`kernelvec`, `etext+0x10`, `proc[3].kstack`, `cpus[1].proc->pid`)
/// evaluated over the target's kernel memory when an ELF is loaded.
pub fn parse_va(ctx: &mut Ctx<'_>, s: &str) -> Result<VirtAddr> {
    parse_addr(ctx, s).map(VirtAddr)
}

/// An address argument as the user typed it, before it is given a type:
/// a number, or a symbol expression as for [`parse_va`].
pub fn parse_addr(ctx: &mut Ctx<'_>, s: &str) -> Result<u64> {
    if let Ok(v) = parse_u64(s) {
        return Ok(v);
    }
    if let Some(debug) = ctx.symbols() {
        let ram = ctx.ram;
        let profile = ctx.profile.clone();
        let Some(target) = ctx.target.as_deref_mut() else {
            return debug
                .eval_address(s, &mut kinspect_symbols::NoMemory)
                .map_err(|e| Error::BadInput(format!("`{s}`: {e}")));
        };
        let mut phys = PhysCache::new(target);
        // Addresses outside RAM (a kernel stack) go through kernel_pagetable.
        // The global itself sits in RAM, linked at its physical address.
        let root = debug
            .global(&profile.kernel_pagetable)
            .ok()
            .and_then(|g| phys.u64(PhysAddr(g.addr)).ok())
            .filter(|r| *r != 0)
            .map(PhysAddr);
        let mut mem = model::KernelMemory::new(&mut phys, ram, root);
        let r = model::split_lost(debug.eval_address(s, &mut mem))?;
        return r.map_err(|e| Error::BadInput(format!("`{s}`: {e}")));
    }
    let name = s.split_once('+').map_or(s, |(n, _)| n).trim();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::BadInput(format!(
            "`{s}` is not a number (use hex like 0x80000000 or decimal)"
        )));
    }
    Err(Error::BadInput(format!(
        "`{s}` is not a number, and there is no ELF to look symbols up in (use --elf)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(no_binary_name = true)]
    struct Line {
        #[command(subcommand)]
        command: Command,
    }

    fn needs(line: &str) -> (Needs, bool) {
        let l = Line::try_parse_from(line.split_whitespace()).expect(line);
        (l.command.command().needs(), l.command.command().read_only())
    }

    #[test]
    fn each_command_says_what_it_needs() {
        let target = |trusts_symbols| Needs::Target { trusts_symbols };
        assert_eq!(needs("satp 0x8000000000087fff"), (Needs::Nothing, true));
        assert_eq!(needs("satp"), (target(false), true));
        assert_eq!(needs("maps --hart 1"), (target(false), true));
        assert_eq!(needs("maps --pid 1"), (target(true), true));
        assert_eq!(needs("vmprint --va-range 0-0x1000"), (target(true), true));
        assert_eq!(needs("regs"), (target(true), true));
        assert_eq!(needs("report"), (target(true), true));
        assert_eq!(needs("snapshot -o x.kisnap"), (target(false), false));
        for l in [
            "attach",
            "launch",
            "watch",
            "serve x.kisnap",
            "proxy --listen :0",
        ] {
            assert_eq!(needs(l).0, Needs::Itself, "{l}");
        }
    }
}
