//! The one-shot commands: `satp`, `regs`, `maps`, `vmprint`, `translate`,
//! `procs`, `check`.
//!
//! Each command is a module with a `run(&mut Ctx, ...)` function that reads
//! the machine through `&mut dyn Target` (live QEMU, snapshot or a crafted
//! `MemoryTarget` in tests), feeds the Sv39 model (`kinspect-sv39`), and
//! writes text or `--json` to `ctx.out`; warnings (findings about the page
//! table) go to `ctx.warn`. Commands never open connections themselves:
//! [`crate::cli`] does, through [`connect`].

pub mod check;
pub mod maps;
pub mod procs;
pub mod regs;
pub mod satp;
pub mod symbols;
pub mod top;
pub mod translate;
pub mod vmprint;

use std::io::Write;

use kinspect_sv39::{Finding, PhysRead, Ram, ReadError, Satp, SatpMode};
use serde::Serialize;

use crate::cli::{parse_u64, Error, Result, Select};
use crate::model::{self, Kernel, KernelState, ModelError, PhysCache, Profile, TableSel};
use crate::target::fastram::{FastPath, FastQemu};
use crate::target::qemu::QemuTarget;
use crate::target::{Csr, Hart, Target, TargetError};
use symbols::Symbols;

/// Findings printed as warnings before the rest is summarised in one line.
pub const MAX_WARNINGS: usize = 20;

/// What a command runs with.
pub struct Ctx<'a> {
    /// `None` only for commands that run offline (`satp VALUE`).
    pub target: Option<&'a mut dyn Target>,
    pub symbols: Option<&'a Symbols>,
    /// The same ELF through the DWARF layer: the kernel model and symbol
    /// expressions need it.
    pub debug: Option<&'a kinspect_symbols::Symbols>,
    /// The names the kernel model looks for (`--profile`, `--kpt-field`).
    pub profile: Profile,
    pub json: bool,
    pub ram: Ram,
    pub out: &'a mut dyn Write,
    pub warn: &'a mut dyn Write,
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

/// A live connection to QEMU, reading RAM directly when it can
/// ([`FastQemu`]). The backend halts the machine before its first read;
/// [`Session::finish`] resumes it if it was running, so a one-shot command
/// leaves the machine as it found it.
pub struct Session {
    target: FastQemu,
}

impl Session {
    pub fn target(&mut self) -> &mut dyn Target {
        &mut self.target
    }

    /// The backend itself (which memory path it uses, the stub).
    pub fn fast(&mut self) -> &mut FastQemu {
        &mut self.target
    }

    /// Put the machine back as found (resume it if it was running).
    pub fn finish(self) -> std::result::Result<(), TargetError> {
        self.target.finish()
    }
}

/// Connect to QEMU's gdb stub at `[HOST]:PORT` (HOST defaults to localhost)
/// and set up the RAM fast path when QEMU runs on this host.
pub fn connect(addr: &str) -> Result<Session> {
    connect_with(addr, FastPath::Auto)
}

/// [`connect`], saying whether to try the fast path (`--no-fast-path`).
pub fn connect_with(addr: &str, fast: FastPath) -> Result<Session> {
    let addr = if addr.starts_with(':') {
        format!("localhost{addr}")
    } else {
        addr.to_string()
    };
    let stub = QemuTarget::connect(&addr)?;
    Ok(Session {
        target: FastQemu::new(stub, fast),
    })
}

/// [`PhysRead`] over a [`Target`]: unreadable memory is a finding, any
/// other failure stops the walk and is kept to report with its exit code.
pub struct TargetMem<'a> {
    pub target: &'a mut dyn Target,
    pub fatal: Option<TargetError>,
}

impl PhysRead for TargetMem<'_> {
    fn read(&mut self, pa: u64, buf: &mut [u8]) -> std::result::Result<(), ReadError> {
        match self.target.read_phys(pa, buf) {
            Ok(()) => Ok(()),
            Err(e @ TargetError::Memory { .. }) => Err(ReadError::Unreadable(e.to_string())),
            Err(e) => {
                let msg = e.to_string();
                self.fatal = Some(e);
                Err(ReadError::Fatal(msg))
            }
        }
    }
}

/// Walk the page table at `root` over the target's physical memory, every
/// level, bounded by the RAM the command was told about (`--ram-mib`).
pub fn walk_root(ctx: &mut Ctx<'_>, root: u64) -> Result<kinspect_sv39::Walk> {
    let limits = kinspect_sv39::WalkLimits {
        ram: ctx.ram,
        ..kinspect_sv39::WalkLimits::default()
    };
    let mut mem = TargetMem {
        target: ctx.target()?,
        fatal: None,
    };
    match kinspect_sv39::walk(&mut mem, root, limits) {
        Ok(w) => Ok(w),
        Err(e) => Err(mem.error(e)),
    }
}

impl TargetMem<'_> {
    /// Turn a walk's fatal read error back into the target's error.
    pub fn error(&mut self, e: ReadError) -> Error {
        match self.fatal.take() {
            Some(t) => Error::from(t),
            None => Error::Failed(e.to_string()),
        }
    }
}

/// The page table a command walks, and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct Root {
    /// The hart whose satp named it, if any.
    pub hart: Option<Hart>,
    /// The satp value, if the table was named by one.
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub satp: Option<u64>,
    pub mode: SatpMode,
    /// The root page table's physical address.
    #[serde(serialize_with = "kinspect_sv39::json::hex")]
    pub root: u64,
    /// What the kernel says this table is (`--pid`, `--kernel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl Root {
    /// One line for headers: `hart 0 satp 0x8000000000087fff (Sv39, root 0x87fff000)`.
    pub fn describe(&self) -> String {
        if let Some(t) = &self.table {
            return t.clone();
        }
        let mut s = String::new();
        if let Some(h) = self.hart {
            s.push_str(&format!("hart {h} "));
        }
        match self.satp {
            Some(v) => s.push_str(&format!(
                "satp {v:#018x} ({}, root {:#x})",
                self.mode, self.root
            )),
            None => s.push_str(&format!("root {:#x}", self.root)),
        }
        s
    }
}

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
        let kernel = Kernel::new(debug, ctx.profile.clone()).map_err(model_error)?;
        let ram = ctx.ram;
        let mut phys = PhysCache::new(ctx.target()?);
        let state = kernel.read_state(&mut phys, ram).map_err(model_error)?;
        let t = kernel.select(&state, sel).map_err(|e| match e {
            ModelError::Kernel(m) => Error::BadInput(m),
            e => model_error(e),
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
        let root = parse_va(ctx, text)?;
        if root % 4096 != 0 {
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
        root: s.root_pa(),
        table: None,
    })
}

/// The DWARF symbols, or the error saying `what` needs them.
pub fn need_debug<'a>(ctx: &Ctx<'a>, what: &str) -> Result<&'a kinspect_symbols::Symbols> {
    ctx.debug.ok_or_else(|| {
        Error::BadInput(format!(
            "{what} need the kernel ELF with debug info (give --elf PATH; default target/kernel/kernel.elf)"
        ))
    })
}

/// The model's errors in the CLI's words and exit codes.
pub fn model_error(e: ModelError) -> Error {
    match e {
        ModelError::Symbols(m) => Error::BadInput(m),
        ModelError::Target(t) => Error::from(t),
        ModelError::Kernel(m) => Error::Failed(m),
    }
}

/// The kernel model and one consistent read of its state.
pub fn read_kernel<'s>(
    debug: &'s kinspect_symbols::Symbols,
    profile: &Profile,
    phys: &mut PhysCache<'_>,
    ram: Ram,
) -> Result<(Kernel<'s>, KernelState)> {
    let kernel = Kernel::new(debug, profile.clone()).map_err(model_error)?;
    let state = kernel.read_state(phys, ram).map_err(model_error)?;
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
pub fn parse_va(ctx: &mut Ctx<'_>, s: &str) -> Result<u64> {
    if let Ok(v) = parse_u64(s) {
        return Ok(v);
    }
    if let Some(debug) = ctx.debug {
        let ram = ctx.ram;
        let profile = ctx.profile.clone();
        let Some(target) = ctx.target.as_deref_mut() else {
            return debug
                .eval_address(s, &mut kinspect_symbols::NoMemory)
                .map_err(|e| Error::BadInput(format!("`{s}`: {e}")));
        };
        let mut phys = PhysCache::new(target);
        // Addresses outside RAM (a kernel stack) go through kernel_pagetable.
        let root = debug
            .global(&profile.kernel_pagetable)
            .ok()
            .and_then(|g| phys.u64(g.addr).ok())
            .filter(|r| *r != 0);
        let mut mem = model::KernelMemory {
            phys: &mut phys,
            ram,
            root,
        };
        let r = debug.eval_address(s, &mut mem);
        if let Some(fatal) = phys.fatal.take() {
            return Err(Error::from(fatal));
        }
        return r.map_err(|e| Error::BadInput(format!("`{s}`: {e}")));
    }
    let (name, off) = match s.split_once('+') {
        Some((n, o)) => (n.trim(), parse_u64(o).map_err(Error::BadInput)?),
        None => (s.trim(), 0),
    };
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::BadInput(format!(
            "`{s}` is not a number (use hex like 0x80000000 or decimal)"
        )));
    }
    match ctx.symbols {
        None => Err(Error::BadInput(format!(
            "`{s}` is not a number, and there is no ELF to look symbols up in (use --elf)"
        ))),
        Some(syms) => match syms.lookup(name) {
            Some(a) => Ok(a.wrapping_add(off)),
            None => Err(Error::BadInput(format!(
                "no symbol `{name}` in {}",
                syms.path().display()
            ))),
        },
    }
}
