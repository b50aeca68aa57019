//! A small symbol table from the kernel ELF: `symbolize(addr)` gives
//! `func+0xoff`, `lookup(name)` gives an address for VA arguments.
//!
//! Only the ELF symbol table (through the `object` crate), no DWARF: the
//! full symbol and debug-info layer lives in `kinspect-symbols`, and this
//! helper is kept to these two functions so it can be swapped for it.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol, SymbolKind};

#[derive(Clone, Debug)]
struct Sym {
    addr: u64,
    size: u64,
    name: String,
}

/// Function and data symbols of one ELF, sorted by address.
#[derive(Clone, Debug)]
pub struct Symbols {
    path: PathBuf,
    syms: Vec<Sym>,
}

impl Symbols {
    /// Read the ELF at `path`; a one-line reason on failure.
    pub fn load(path: &Path) -> Result<Symbols, String> {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read ELF {}: {e}", path.display()))?;
        let file = object::File::parse(&*data).map_err(|e| {
            format!(
                "{} is not an ELF file kinspect can read: {e}",
                path.display()
            )
        })?;
        let mut syms: Vec<Sym> = file
            .symbols()
            .filter(|s| {
                matches!(
                    s.kind(),
                    SymbolKind::Text | SymbolKind::Data | SymbolKind::Label | SymbolKind::Unknown
                )
            })
            .filter(|s| !s.is_undefined() && s.section_index().is_some())
            .filter_map(|s| {
                let name = s.name().ok()?;
                if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
                    return None;
                }
                Some(Sym {
                    addr: s.address(),
                    size: s.size(),
                    name: format!("{:#}", rustc_demangle::demangle(name)),
                })
            })
            .collect();
        syms.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)));
        Ok(Symbols {
            path: path.to_path_buf(),
            syms,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` or `name+0xoff` for an address inside a symbol (or just past
    /// an unsized label, within 64 KiB); `None` when nothing covers it.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let i = self.syms.partition_point(|s| s.addr <= addr);
        let s = self.syms[..i]
            .iter()
            .rev()
            .take(64)
            .find(|s| addr < s.addr.saturating_add(s.size.max(1)))
            .or_else(|| {
                self.syms[..i]
                    .last()
                    .filter(|s| s.size == 0 && addr - s.addr < 0x1_0000)
            })?;
        let off = addr - s.addr;
        Some(if off == 0 {
            s.name.clone()
        } else {
            format!("{}+{off:#x}", s.name)
        })
    }

    /// The address of the symbol called `name` (its demangled path also
    /// matches, without the hash: `kernel::trap::usertrap`).
    pub fn lookup(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| s.name == name).map(|s| s.addr)
    }
}
