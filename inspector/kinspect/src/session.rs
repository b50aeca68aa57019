//! The resolved settings of one kinspect invocation: which kernel ELF (read
//! and parsed once), which kernel profile, how much RAM, text or JSON, and
//! where the machine is (a gdb stub or a snapshot file).
//!
//! [`crate::cli`] parses the command line into [`Settings`] and builds one
//! [`Session`]; every entry point (the one-shot commands, the TUI, `serve`,
//! `watch`, `snapshot`, gdb `monitor` commands) gets that same `Session`,
//! so a setting such as `--profile` means the same thing everywhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kinspect_sv39::{PhysAddr, Ram};
use std::sync::OnceLock;

use kinspect_symbols::Symbols;

use crate::error::{Error, Result};
use crate::model::{Kernel, Profile};
use crate::target::fastram::{FastPath, FastQemu};
use crate::target::qemu::QemuTarget;

/// Where kinspect looks for the kernel when `--elf` is not given.
pub const DEFAULT_ELF: &str = "target/kernel/kernel.elf";

/// Physical address where QEMU `virt` RAM starts (xv6's KERNBASE).
pub const RAM_BASE: PhysAddr = PhysAddr(0x8000_0000);

/// The global options as the user gave them, before they are resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--elf`: must load. `None`: [`DEFAULT_ELF`] if it loads.
    pub elf: Option<PathBuf>,
    /// `--profile` (`auto`, `xv6-riscv`, ...).
    pub profile: String,
    /// `--kpt-field`.
    pub kpt_field: Option<String>,
    /// `--ram-mib`.
    pub ram_mib: u64,
    pub json: bool,
    /// `--gdb [HOST]:PORT`.
    pub gdb: String,
    /// `--snapshot FILE`.
    pub snapshot: Option<PathBuf>,
    /// `--no-fast-path` gives `Off`: guest RAM only through the stub.
    pub fast_path: FastPath,
    /// `-v`: say how memory is read.
    pub verbose: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            elf: None,
            profile: "auto".into(),
            kpt_field: None,
            ram_mib: 128,
            json: false,
            gdb: "localhost:1234".into(),
            snapshot: None,
            fast_path: FastPath::Auto,
            verbose: false,
        }
    }
}

/// One invocation's resolved settings, shared by everything it runs.
#[derive(Clone, Debug)]
pub struct Session {
    /// The kernel ELF in use, if any.
    pub elf: Option<PathBuf>,
    /// Whether it was named with `--elf` (then it must load in full).
    pub elf_given: bool,
    /// That ELF, read and parsed once, when first asked for: ELF
    /// symbols, DWARF, CFI. A command that needs none (`satp`, `maps
    /// --hart 0`) never reads the file. `--elf` is read at once, so a bad
    /// path is an error before anything connects.
    symbols: OnceLock<std::result::Result<Arc<Symbols>, String>>,
    /// The names the kernel model looks for (`--profile`, `--kpt-field`).
    pub profile: Profile,
    /// Guest RAM (`--ram-mib` from KERNBASE): page-table pointers outside
    /// it are reported, never followed.
    pub ram: Ram,
    /// `--json`: print JSON instead of text.
    pub json: bool,
    /// QEMU's gdb stub as `HOST:PORT` (a bare `:PORT` means localhost).
    pub gdb: String,
    /// `--snapshot FILE`: read the machine from a file instead.
    pub snapshot: Option<PathBuf>,
    /// Whether to read guest RAM directly from a QEMU on this host
    /// (docs/fast-path.md).
    pub fast_path: FastPath,
    /// `-v`: say on stderr which path reads memory.
    pub verbose: bool,
}

impl Session {
    /// Resolve `s`: find the ELF (`--elf` must be a readable ELF file;
    /// the default path may be missing or broken, which only costs symbol
    /// names), check the profile. The ELF is parsed when first needed.
    pub fn new(s: &Settings) -> Result<Session> {
        let symbols = OnceLock::new();
        let elf = match &s.elf {
            Some(p) => {
                check_elf(p)?;
                Some(p.clone())
            }
            None => {
                let p = Path::new(DEFAULT_ELF);
                p.exists().then(|| p.to_path_buf())
            }
        };
        Ok(Session {
            elf,
            elf_given: s.elf.is_some(),
            symbols,
            profile: resolve_profile(&s.profile, s.kpt_field.as_deref())?,
            ram: Ram {
                base: RAM_BASE,
                size: s.ram_mib.saturating_mul(1 << 20),
            },
            json: s.json,
            gdb: normalize_gdb(&s.gdb),
            snapshot: s.snapshot.clone(),
            fast_path: s.fast_path,
            verbose: s.verbose,
        })
    }

    /// A session over `symbols` already loaded (one kernel of a batch).
    pub fn with_symbols(mut self, elf: Option<PathBuf>, symbols: Option<Arc<Symbols>>) -> Session {
        self.elf_given = elf.is_some();
        self.elf = elf;
        self.symbols = OnceLock::from(symbols.ok_or_else(String::new));
        self
    }

    /// The ELF's symbols and debug info, read on first use; `None` when
    /// there is no ELF or the default one does not load (which only costs
    /// symbol names).
    pub fn symbols(&self) -> Option<&Symbols> {
        self.symbols_arc().map(|s| &**s)
    }

    /// The same, shared (for threads that outlive a borrow).
    pub fn symbols_arc(&self) -> Option<&Arc<Symbols>> {
        self.symbols
            .get_or_init(|| match self.elf.as_deref() {
                None => Err(String::new()),
                Some(p) => open_elf(p).map(Arc::new).map_err(|e| e.to_string()),
            })
            .as_ref()
            .ok()
    }

    /// Why the ELF named with `--elf` did not load, once it was tried.
    pub fn elf_error(&self) -> Option<&str> {
        match self.symbols.get() {
            Some(Err(e)) if self.elf_given && !e.is_empty() => Some(e),
            _ => None,
        }
    }

    /// The symbols, or the error saying `what` needs them.
    pub fn need_symbols(&self, what: &str) -> Result<&Symbols> {
        if let Some(s) = self.symbols() {
            return Ok(s);
        }
        Err(Error::BadInput(match self.elf_error() {
            Some(e) => e.to_string(),
            None => format!(
                "{what} need the kernel ELF with debug info (give --elf PATH; default {DEFAULT_ELF})"
            ),
        }))
    }

    /// Connect to QEMU's gdb stub, with the RAM fast path when asked for
    /// and possible; say which path reads memory with `-v`, and why there
    /// is none when it was asked for but cannot be had.
    pub fn connect(&self, warn: &mut dyn std::io::Write) -> Result<FastQemu> {
        let t = FastQemu::new(QemuTarget::connect(&self.gdb)?, self.fast_path);
        if self.verbose {
            writeln!(warn, "kinspect: {}", t.path_line())?;
        } else if let Some(why) = t.fallback() {
            // Through `kinspect proxy` the stub is not QEMU: expected (docs/proxy.md).
            if !t.stub_ref().on_proxy() {
                writeln!(warn, "kinspect: memory through the gdb stub: {why}")?;
            }
        }
        Ok(t)
    }

    /// The kernel model over this ELF with this profile: where `proc[]`,
    /// `cpus[]`, `kernel_pagetable` and their fields are.
    pub fn kernel(&self, what: &str) -> Result<Kernel<'_>> {
        let syms = self.need_symbols(what)?;
        Ok(Kernel::new(syms, self.profile.clone())?)
    }
}

/// `path` opens and starts as an ELF file does; what is wrong with one
/// that does not, in the words a full parse gives.
fn check_elf(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(path)
        .map_err(|e| Error::BadInput(format!("cannot read ELF {}: {e}", path.display())))?
        .read_exact(&mut magic)
        .is_ok()
        && magic == *b"\x7fELF";
    if ok {
        Ok(())
    } else {
        open_elf(path).map(|_| ())
    }
}

/// Read and parse the ELF at `path`, or say in one line why not.
fn open_elf(path: &Path) -> Result<Symbols> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::BadInput(format!("cannot read ELF {}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Symbols::from_bytes(&name, bytes).map_err(|e| Error::BadInput(e.to_string()))
}

/// The kernel profile `--profile` and `--kpt-field` ask for.
pub fn resolve_profile(name: &str, kpt_field: Option<&str>) -> Result<Profile> {
    let profile = Profile::builtin(name).ok_or_else(|| {
        Error::BadInput(format!(
            "no profile `{name}` (built in: {})",
            Profile::BUILTIN.join(", ")
        ))
    })?;
    Ok(match kpt_field {
        Some(f) => profile.with_kpt_field(f),
        None => profile,
    })
}

/// `:PORT` means `localhost:PORT`.
fn normalize_gdb(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("localhost{addr}")
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_profile_is_bad_input_naming_the_builtins() {
        let e = resolve_profile("linux", None).unwrap_err();
        assert!(matches!(e, Error::BadInput(_)), "{e:?}");
        assert!(e.to_string().contains("no profile `linux`"), "{e}");
        assert!(e.to_string().contains("xv6-riscv"), "{e}");
    }

    #[test]
    fn a_bare_port_means_localhost() {
        assert_eq!(normalize_gdb(":1234"), "localhost:1234");
        assert_eq!(normalize_gdb("host:1"), "host:1");
    }

    #[test]
    fn settings_resolve_ram_and_a_missing_elf_fails_as_bad_input() {
        let s = Settings {
            elf: Some("/nonexistent/kernel.elf".into()),
            ..Settings::default()
        };
        let e = Session::new(&s).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read ELF /nonexistent/kernel.elf"),
            "{e}"
        );
        let s = Settings {
            elf: None,
            ram_mib: 64,
            gdb: ":26000".into(),
            ..Settings::default()
        };
        let session = Session::new(&s).expect("the default ELF may be missing");
        assert_eq!(session.ram.base, RAM_BASE);
        assert_eq!(session.ram.size, 64 << 20);
        assert_eq!(session.gdb, "localhost:26000");
    }
}
