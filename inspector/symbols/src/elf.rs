//! The ELF symbol table: names and addresses of functions, objects and
//! linker labels (`etext`, `trampoline`), and `symbolize(addr)`.
//!
//! This is the first thing [`crate::Symbols`] reads and the cheapest: it
//! needs no DWARF, so a stripped kernel still gets names for addresses.
//! Rust names are kept mangled (that is what DWARF linkage names hold) and
//! demangled (what a person reads and types).

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// What an ELF symbol names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymKind {
    /// Code (`STT_FUNC`).
    Function,
    /// Data (`STT_OBJECT`, `STT_TLS`).
    Object,
    /// A label without a type (`STT_NOTYPE`): linker symbols, assembly.
    Label,
}

/// One ELF symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfSymbol {
    /// The name as stored in the ELF (mangled for Rust).
    pub name: String,
    /// The demangled name for Rust symbols without the hash suffix
    /// (`kernel::proc::scheduler`), else the same as `name`.
    pub demangled: String,
    pub addr: u64,
    /// `st_size`; 0 for labels.
    pub size: u64,
    pub kind: SymKind,
    /// Global binding (not `static` in C).
    pub global: bool,
    /// Defined in an executable section (code, whatever its type says).
    pub in_text: bool,
}

/// All defined symbols, sorted by address, with a by-name index.
#[derive(Debug, Default)]
pub struct ElfSymbols {
    by_addr: Vec<ElfSymbol>,
    by_name: HashMap<String, usize>,
}

impl ElfSymbols {
    /// Read the symbol table (`.symtab`, else `.dynsym`) of a parsed ELF.
    pub fn read(file: &object::File<'_>) -> ElfSymbols {
        let mut by_addr = Vec::new();
        let mut syms: Vec<object::Symbol<'_, '_>> = file.symbols().collect();
        if syms.is_empty() {
            syms = file.dynamic_symbols().collect();
        }
        for sym in syms {
            if sym.is_undefined() || sym.is_common() {
                continue;
            }
            let kind = match sym.kind() {
                SymbolKind::Text => SymKind::Function,
                SymbolKind::Data | SymbolKind::Tls => SymKind::Object,
                SymbolKind::Unknown | SymbolKind::Label => SymKind::Label,
                // Sections, files and the like are not names a person types.
                _ => continue,
            };
            let Ok(name) = sym.name() else { continue };
            // RISC-V local labels the assembler leaves behind ($x, .L...).
            if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
                continue;
            }
            let in_text = match sym.section() {
                object::SymbolSection::Section(i) => file
                    .section_by_index(i)
                    .is_ok_and(|s| s.kind() == object::SectionKind::Text),
                _ => false,
            };
            by_addr.push(ElfSymbol {
                in_text,
                name: name.to_string(),
                demangled: demangle(name),
                addr: sym.address(),
                size: sym.size(),
                kind,
                global: sym.is_global(),
            });
        }
        // Sized, global, typed symbols first at an address, so symbolize()
        // prefers `proc` over a label that happens to share its address.
        by_addr.sort_by(|a, b| {
            a.addr
                .cmp(&b.addr)
                .then((b.size > 0).cmp(&(a.size > 0)))
                .then(b.global.cmp(&a.global))
                .then((b.kind != SymKind::Label).cmp(&(a.kind != SymKind::Label)))
                .then(a.name.cmp(&b.name))
        });
        let mut by_name = HashMap::with_capacity(by_addr.len() * 2);
        for (i, s) in by_addr.iter().enumerate() {
            // A global wins over a local static of the same name.
            let better = |old: &usize| !by_addr[*old].global && s.global;
            match by_name.get(&s.name) {
                Some(old) if !better(old) => {}
                _ => {
                    by_name.insert(s.name.clone(), i);
                }
            }
            if s.demangled != s.name {
                by_name.entry(s.demangled.clone()).or_insert(i);
            }
        }
        ElfSymbols { by_addr, by_name }
    }

    /// The symbol of that name (ELF name or demangled Rust path).
    pub fn get(&self, name: &str) -> Option<&ElfSymbol> {
        self.by_name.get(name).map(|&i| &self.by_addr[i])
    }

    /// All symbols, by address.
    pub fn iter(&self) -> impl Iterator<Item = &ElfSymbol> {
        self.by_addr.iter()
    }

    /// The symbol containing `addr` and the offset into it. A sized symbol
    /// contains `[addr, addr+size)`; a label (size 0) covers everything up
    /// to the next symbol, as `nm`-style tools assume.
    pub fn symbolize(&self, addr: u64) -> Option<(&ElfSymbol, u64)> {
        let end = self.by_addr.partition_point(|s| s.addr <= addr);
        let below = &self.by_addr[..end];
        // A sized symbol containing addr. Symbols rarely nest, so looking
        // back a bounded distance finds it.
        if let Some(s) = below
            .iter()
            .rev()
            .take(64)
            .find(|s| s.size > 0 && addr - s.addr < s.size)
        {
            return Some((s, addr - s.addr));
        }
        // Else the nearest label at or below addr, if nothing sized ends in
        // between: the first label at that address in table order.
        let last = below.last()?;
        if last.size > 0 {
            return None;
        }
        let first_at = below.partition_point(|s| s.addr < last.addr);
        let s = below[first_at..].iter().find(|s| s.size == 0)?;
        Some((s, addr - s.addr))
    }
}

/// Demangle a Rust symbol (legacy or v0) without its hash; other names are
/// returned unchanged.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}
