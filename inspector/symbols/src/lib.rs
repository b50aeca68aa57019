//! The symbol and DWARF layer of kinspect: everything it knows about the
//! kernel comes from the kernel ELF through here.
//!
//! ```text
//!  kernel.elf ──► Symbols::open ──► ELF symbols (eager: names, addresses)
//!                               └─► DWARF sections (kept, not parsed)
//!                                      │ first use
//!                                      ▼
//!                 Index (file-scope variables and named types by name)
//!                   │                        │
//!          global("proc")            type_named("struct proc")
//!                   │                        │
//!                   └────► TypeId ──► Type (parsed one DIE at a time, cached)
//!                                      │
//!      caller's Memory (VA→PA is its business) ──► load() ──► Value tree
//!                                      │
//!                      eval("cpus[1].proc->pid") ──► address or number
//! ```
//!
//! Nothing here talks to a target: reading memory goes through the
//! [`Memory`] trait the caller implements, so the same code serves a live
//! QEMU, a snapshot file and unit tests over a byte image. Kernel objects
//! are found by DWARF name and field, never by fixed offsets, so the same
//! code reads the Rust kernel and a C xv6-riscv kernel built with `gcc -g`.

mod dwarf;
mod elf;
mod error;
mod expr;
mod lines;
mod reflect;
mod types;
mod value;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use object::{Object, ObjectSection};

pub use elf::{demangle, ElfSymbol, SymKind};
pub use error::{MemoryError, Result, SymbolError};
pub use expr::{Evaluated, Expr};
pub use lines::Frame;
pub use reflect::{ImageMemory, Memory, NoMemory, MAX_ARRAY_ELEMENTS, MAX_DEPTH, MAX_LOAD_BYTES};
pub use types::{
    Aggregate, BitField, Encoding, EnumType, Enumerator, Member, Qualifier, StructType, Type,
    TypeId, TypeKind, Variant, VariantPart,
};
pub use value::{ArrayValue, EnumValue, StructValue, Value};

use dwarf::{Index, R};

/// A global the kernel defines: a C global or a Rust static, or an ELF
/// symbol the DWARF does not describe (`etext`, `trampoline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Global {
    /// The name it was found under.
    pub name: String,
    /// Its link-time address. For xv6's kernel data (identity-mapped from
    /// KERNBASE) that is also its physical address, but this layer does
    /// not assume it: the caller's [`Memory`] decides.
    pub addr: u64,
    /// Its DWARF type; `None` for bare ELF symbols.
    pub ty: Option<TypeId>,
    /// Its size in bytes, from the type or the ELF symbol.
    pub size: Option<u64>,
    /// Whether this is code (a function or a label in `.text`).
    pub is_code: bool,
}

/// An allocated ELF section: its address, its bytes' range in the file
/// (`None` for `.bss`), and its size in memory.
type LoadedSection = (u64, Option<(usize, usize)>, u64);

/// The symbols and debug info of one kernel ELF.
///
/// Opening reads the file and its symbol table only; the DWARF name index
/// is built on first use, and types are parsed one by one as asked for.
pub struct Symbols {
    file_name: String,
    /// The whole file (the DWARF sections are windows on it).
    data: Arc<[u8]>,
    /// Allocated sections, for [`Symbols::file_memory`].
    image: Vec<LoadedSection>,
    elf: elf::ElfSymbols,
    sections: Option<gimli::DwarfSections<R>>,
    dwarf: Option<gimli::Dwarf<R>>,
    index: OnceLock<std::result::Result<Index, String>>,
    types: Mutex<HashMap<TypeId, Arc<Type>>>,
    lines: OnceLock<std::result::Result<Mutex<addr2line::Context<R>>, String>>,
    /// `.debug_frame`, read on first use.
    debug_frame: OnceLock<Option<Box<[u8]>>>,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols")
            .field("file_name", &self.file_name)
            .field("elf_symbols", &self.elf.iter().count())
            .field("has_debug_info", &self.has_debug_info())
            .finish_non_exhaustive()
    }
}

impl Symbols {
    /// Read an ELF file. Fails if it is not an ELF; succeeds without DWARF
    /// (ELF symbols still work; DWARF queries then fail with
    /// [`SymbolError::NoDebugInfo`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Symbols> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| SymbolError::Io {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Symbols::from_bytes(&name, bytes)
    }

    /// Parse an ELF image already in memory; `file_name` is used in errors.
    pub fn from_bytes(file_name: &str, bytes: Vec<u8>) -> Result<Symbols> {
        let data: Arc<[u8]> = Arc::from(bytes);
        let file = object::File::parse(&*data).map_err(|e| SymbolError::NotElf {
            path: file_name.to_string(),
            why: e.to_string(),
        })?;
        let elf = elf::ElfSymbols::read(&file);
        let image = file
            .sections()
            .filter(|s| s.address() != 0 && s.size() > 0)
            .filter(|s| {
                use object::SectionKind as K;
                matches!(
                    s.kind(),
                    K::Text
                        | K::Data
                        | K::ReadOnlyData
                        | K::ReadOnlyDataWithRel
                        | K::ReadOnlyString
                        | K::UninitializedData
                )
            })
            .map(|s| {
                let range = s
                    .file_range()
                    .filter(|_| s.kind() != object::SectionKind::UninitializedData)
                    .and_then(|(off, len)| {
                        Some((usize::try_from(off).ok()?, usize::try_from(len).ok()?))
                    })
                    .filter(|(off, len)| {
                        off.checked_add(*len).is_some_and(|end| end <= data.len())
                    });
                (s.address(), range, s.size())
            })
            .collect();
        let sections = dwarf::load_sections(&file, &data, file_name)?;
        let dwarf = sections.as_ref().map(dwarf::dwarf_of);
        Ok(Symbols {
            file_name: file_name.to_string(),
            data: data.clone(),
            image,
            elf,
            sections,
            dwarf,
            index: OnceLock::new(),
            types: Mutex::new(HashMap::new()),
            lines: OnceLock::new(),
            debug_frame: OnceLock::new(),
        })
    }

    /// The whole ELF file as read at open: for the kernel's identity and
    /// anything else that needs the bytes without reading the file again.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The ELF's `.debug_frame` (DWARF call-frame information, what an
    /// unwinder needs), read once on first use; `None` if it has none.
    pub fn debug_frame(&self) -> Option<&[u8]> {
        self.debug_frame
            .get_or_init(|| {
                use object::{Object, ObjectSection};
                let file = object::File::parse(&*self.data).ok()?;
                let sec = file.section_by_name(".debug_frame")?;
                Some(
                    sec.uncompressed_data()
                        .ok()?
                        .into_owned()
                        .into_boxed_slice(),
                )
            })
            .as_deref()
    }

    /// The file name given at open, for messages.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The ELF's allocated sections as memory, as the loader would place
    /// them before the kernel runs: initialised data from the file, `.bss`
    /// as zeros. For reading constants (`const` tables, initial values)
    /// without a target.
    pub fn file_memory(&self) -> ImageMemory {
        let mut mem = ImageMemory::new();
        for &(addr, range, size) in &self.image {
            let bytes = match range {
                Some((off, len)) => self.data[off..off + len].to_vec(),
                // .bss: zeros, bounded so a corrupt size cannot exhaust memory.
                None => vec![0; size.min(MAX_LOAD_BYTES) as usize],
            };
            mem.map(addr, bytes);
        }
        mem
    }

    /// Whether the ELF has DWARF debug info.
    pub fn has_debug_info(&self) -> bool {
        self.dwarf.is_some()
    }

    /// Build the name index now rather than on first use (to time it, or
    /// to fail early on broken DWARF).
    pub fn index_now(&self) -> Result<()> {
        self.index().map(|_| ())
    }

    fn dwarf(&self) -> Result<&gimli::Dwarf<R>> {
        self.dwarf.as_ref().ok_or_else(|| SymbolError::NoDebugInfo {
            file: self.file_name.clone(),
        })
    }

    fn index(&self) -> Result<&Index> {
        let dwarf = self.dwarf()?;
        self.index
            .get_or_init(|| Index::build(dwarf).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|why| SymbolError::Dwarf {
                file: self.file_name.clone(),
                why: why.clone(),
            })
    }

    // ---- ELF symbols ----

    /// All ELF symbols, by address.
    pub fn elf_symbols(&self) -> impl Iterator<Item = &ElfSymbol> {
        self.elf.iter()
    }

    /// The ELF symbol of that name (as stored, or demangled Rust path).
    pub fn elf_symbol(&self, name: &str) -> Option<&ElfSymbol> {
        self.elf.get(name)
    }

    /// The symbol containing `addr` and the offset into it:
    /// `symbolize(kalloc_addr + 6) == Some(("kalloc", 6))`. Rust names are
    /// demangled.
    pub fn symbolize(&self, addr: u64) -> Option<(&str, u64)> {
        self.symbol_at(addr)
            .map(|(s, off)| (s.demangled.as_str(), off))
    }

    /// The ELF symbol containing `addr` (a sized symbol, else the nearest
    /// label below it) and the offset into it.
    pub fn symbol_at(&self, addr: u64) -> Option<(&ElfSymbol, u64)> {
        self.elf.symbolize(addr)
    }

    // ---- globals ----

    /// Find a global by DWARF name (`proc`), Rust path
    /// (`kernel::proc::PROCS`), linkage name, or ELF symbol name. When
    /// several units declare it, the one with a location wins.
    pub fn global(&self, name: &str) -> Result<Global> {
        let index = match self.index() {
            Ok(i) => Some(i),
            Err(SymbolError::NoDebugInfo { .. }) => None,
            Err(e) => return Err(e),
        };
        let mut declared = false;
        if let Some(vars) = index.and_then(|i| i.vars.get(name)) {
            declared = true;
            if let Some(v) = vars.iter().find(|v| v.addr.is_some()) {
                let addr = v.addr.unwrap_or_default();
                let size = match v.ty {
                    Some(t) => self.size_of(t).ok(),
                    None => None,
                }
                .or_else(|| self.elf.get(&v.name).map(|s| s.size).filter(|s| *s > 0));
                return Ok(Global {
                    name: name.to_string(),
                    addr,
                    ty: v.ty,
                    size,
                    is_code: false,
                });
            }
        }
        if let Some(sym) = self.elf.get(name) {
            // A symbol the DWARF knows by another name (a mangled static).
            let var = index.and_then(|i| i.vars_by_addr.get(&sym.addr));
            let ty = var
                .and_then(|v| v.ty)
                .filter(|_| sym.kind == SymKind::Object);
            let size = match ty {
                Some(t) => self.size_of(t).ok(),
                None => None,
            }
            .or(Some(sym.size).filter(|s| *s > 0));
            return Ok(Global {
                name: name.to_string(),
                addr: sym.addr,
                ty,
                size,
                is_code: sym.kind == SymKind::Function || sym.in_text,
            });
        }
        if declared {
            return Err(SymbolError::NoLocation(name.to_string()));
        }
        Err(SymbolError::NoSymbol(name.to_string()))
    }

    /// Names of all file-scope variables with an address (DWARF names).
    pub fn global_names(&self) -> Result<Vec<String>> {
        let index = self.index()?;
        let mut names: Vec<String> = index
            .vars_by_addr
            .values()
            .map(|v| v.name.clone())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    // ---- types ----

    /// A named type: `struct proc`, `proc`, `enum procstate`,
    /// `pagetable_t`, `ProcState`, `kernel::proc::ProcState`. A complete
    /// definition is preferred over a forward declaration. A Rust name
    /// that several modules define is an error that lists their paths.
    pub fn type_named(&self, name: &str) -> Result<TypeId> {
        let index = self.index()?;
        let name = name.trim();
        if let Some(paths) = index.type_paths.get(name).filter(|p| p.len() > 1) {
            return Err(SymbolError::Type(format!(
                "type `{name}` is ambiguous ({}); give its path",
                paths.join(", ")
            )));
        }
        index
            .types
            .get(name)
            .and_then(|l| l.first())
            .map(|(id, _)| *id)
            .ok_or_else(|| SymbolError::NoType(name.to_string()))
    }

    /// The parsed type behind an id (cached).
    pub fn ty(&self, id: TypeId) -> Result<Arc<Type>> {
        if let Some(t) = self.types_cache().get(&id) {
            return Ok(t.clone());
        }
        let mut t = Arc::new(types::parse(self.dwarf()?, self.index()?, id)?);
        if t.declaration {
            if let Some(def) = self.definition_of(&t)? {
                t = def;
            }
        }
        self.types_cache().insert(id, t.clone());
        Ok(t)
    }

    /// The complete definition of a forward-declared struct, union or enum
    /// (`struct cpu;` in a unit that never defines it), from the unit that
    /// does. `None` when no unit defines it.
    fn definition_of(&self, decl: &Type) -> Result<Option<Arc<Type>>> {
        let Some(name) = &decl.name else {
            return Ok(None);
        };
        let key = match (&decl.kind, decl.c_names) {
            (TypeKind::Struct(s), true) => match s.aggregate {
                Aggregate::Union => format!("union {name}"),
                Aggregate::Class => format!("class {name}"),
                Aggregate::Struct => format!("struct {name}"),
            },
            (TypeKind::Enum(_), true) => format!("enum {name}"),
            _ => name.clone(),
        };
        let index = self.index()?;
        let Some(&(def, true)) = index.types.get(&key).and_then(|l| l.first()) else {
            return Ok(None);
        };
        let t = types::parse(self.dwarf()?, index, def)?;
        // Only a definition of the same kind, never another declaration.
        let same_kind = matches!(
            (&t.kind, &decl.kind),
            (TypeKind::Struct(_), TypeKind::Struct(_)) | (TypeKind::Enum(_), TypeKind::Enum(_))
        );
        Ok((same_kind && !t.declaration).then(|| Arc::new(t)))
    }

    fn types_cache(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, Arc<Type>>> {
        // A poisoned cache only means another thread panicked mid-insert;
        // the map itself is still consistent.
        self.types.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follow typedefs and qualifiers to the type that says what the bytes
    /// are (bounded: a cycle of typedefs is an error).
    pub fn resolve(&self, mut id: TypeId) -> Result<Arc<Type>> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind {
                TypeKind::Typedef { target: Some(next) }
                | TypeKind::Qualified {
                    target: Some(next), ..
                } => id = next,
                _ => return Ok(t),
            }
        }
        Err(SymbolError::BadType {
            offset: id.offset(),
            why: "typedef chain too long (a cycle?)".into(),
        })
    }

    /// The size of a type in bytes. Arrays without `DW_AT_byte_size` are
    /// `len * size_of(element)`; overflow and unknown lengths are errors.
    pub fn size_of(&self, id: TypeId) -> Result<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: TypeId, depth: usize) -> Result<u64> {
        if depth > MAX_DEPTH {
            return Err(SymbolError::Limit(format!(
                "type at {:#x} nests deeper than {MAX_DEPTH} levels",
                id.offset()
            )));
        }
        let t = self.ty(id)?;
        if let Some(s) = t.size {
            return Ok(s);
        }
        match t.kind {
            TypeKind::Typedef { target: Some(n) }
            | TypeKind::Qualified {
                target: Some(n), ..
            } => self.size_of_depth(n, depth + 1),
            TypeKind::Array { element, len } => {
                let len = len.ok_or_else(|| {
                    SymbolError::Type(format!("`{}` has no length", self.type_name(id)))
                })?;
                let elem = self.size_of_depth(element, depth + 1)?;
                len.checked_mul(elem).ok_or_else(|| {
                    SymbolError::Limit(format!("`{}` is too large", self.type_name(id)))
                })
            }
            TypeKind::Void
            | TypeKind::Typedef { target: None }
            | TypeKind::Qualified { target: None, .. } => Ok(0),
            _ => Err(SymbolError::BadType {
                offset: id.offset(),
                why: format!("`{}` has no size", self.type_name(id)),
            }),
        }
    }

    /// A type's name as a person writes it: `struct proc`, `uint64`,
    /// `struct proc *`, `char[16]`, `const volatile uint64`, `ProcState`,
    /// `[u8; 16]`. Never fails (unreadable parts print as `?`).
    pub fn type_name(&self, id: TypeId) -> String {
        self.type_name_depth(id, 0)
    }

    fn type_name_depth(&self, id: TypeId, depth: usize) -> String {
        if depth > 16 {
            return "...".into();
        }
        let Ok(t) = self.ty(id) else {
            return "?".into();
        };
        let sub = |o: Option<TypeId>| match o {
            Some(o) => self.type_name_depth(o, depth + 1),
            None => "void".into(),
        };
        match &t.kind {
            TypeKind::Struct(s) if t.c_names => {
                let kw = match s.aggregate {
                    Aggregate::Union => "union",
                    Aggregate::Class => "class",
                    Aggregate::Struct => "struct",
                };
                format!("{kw} {}", t.name.as_deref().unwrap_or("<anonymous>"))
            }
            TypeKind::Enum(_) if t.c_names => {
                format!("enum {}", t.name.as_deref().unwrap_or("<anonymous>"))
            }
            _ if t.name.is_some() => t.name.clone().unwrap_or_default(),
            TypeKind::Pointer { pointee } => {
                let p = sub(*pointee);
                if t.c_names {
                    if p.ends_with('*') {
                        format!("{p}*")
                    } else {
                        format!("{p} *")
                    }
                } else {
                    format!("*{p}")
                }
            }
            TypeKind::Array { element, len } => {
                let len = len.map(|l| l.to_string()).unwrap_or_default();
                if t.c_names {
                    // `short[3][4]`: the outer length comes first.
                    let e = sub(Some(*element));
                    match e.find('[') {
                        Some(i) => format!("{}[{len}]{}", &e[..i], &e[i..]),
                        None => format!("{e}[{len}]"),
                    }
                } else {
                    format!("[{}; {len}]", sub(Some(*element)))
                }
            }
            TypeKind::Qualified { qualifier, target } => {
                format!("{} {}", qualifier.keyword(), sub(*target))
            }
            TypeKind::Function => "fn".into(),
            TypeKind::Void => "void".into(),
            _ => "<anonymous>".into(),
        }
    }

    /// A member of a struct or union type (seen through typedefs), or the
    /// error that lists the members there are.
    pub fn member(&self, ty: TypeId, name: &str) -> Result<Member> {
        // Bounds the search through anonymous members, which corrupt DWARF
        // could make cyclic or exponentially wide.
        let mut budget = 4096;
        self.member_in(ty, name, 0, &mut budget)
    }

    fn member_in(
        &self,
        ty: TypeId,
        name: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Member> {
        *budget = budget.saturating_sub(1);
        if depth > 8 || *budget == 0 {
            return Err(SymbolError::Limit(format!(
                "gave up looking for `{name}` in `{}`: anonymous members nest too deep",
                self.type_name(ty)
            )));
        }
        let t = self.resolve(ty)?;
        let TypeKind::Struct(s) = &t.kind else {
            return Err(SymbolError::Type(format!(
                "`{}` is not a struct or union, so it has no field `{name}`",
                self.type_name(ty)
            )));
        };
        if let Some(m) = s.members.iter().find(|m| m.name.as_deref() == Some(name)) {
            return Ok(m.clone());
        }
        // A Rust enum's variants act as members holding the variant's
        // fields (`wait.Child.pid`); which one is live is the caller's
        // business (expressions check it against memory).
        if let Some(v) = s
            .variant_part
            .iter()
            .flat_map(|vp| &vp.variants)
            .find(|v| v.member.name.as_deref() == Some(name))
        {
            return Ok(v.member.clone());
        }
        // C11 anonymous structs and unions: their members are the parent's.
        for m in s.members.iter().filter(|m| m.name.is_none()) {
            if let Ok(mut inner) = self.member_in(m.ty, name, depth + 1, budget) {
                inner.offset = inner.offset.saturating_add(m.offset);
                if let Some(b) = &mut inner.bits {
                    b.bit_offset = b.bit_offset.saturating_add(m.offset.saturating_mul(8));
                }
                return Ok(inner);
            }
        }
        Err(SymbolError::NoField {
            field: name.to_string(),
            ty: self.type_name(ty),
            fields: field_list(s),
        })
    }

    /// Offset and type of a dotted member path inside a type:
    /// `field_offset(proc_t, "context.sp")`. Arrays are indexed with
    /// `[N]`: `"ofile[3]"`.
    pub fn field_offset(&self, ty: TypeId, path: &str) -> Result<(u64, TypeId)> {
        let e = Expr::parse(&format!("x.{path}"))?;
        expr::static_offset(self, ty, &e)
    }

    // ---- source lines ----

    /// Source lines for a code address, innermost (inlined) first:
    /// function, file, line. Empty when no line info covers `addr`.
    pub fn lines(&self, addr: u64) -> Result<Vec<Frame>> {
        let ctx = self
            .lines
            .get_or_init(|| {
                let sections = self.sections.as_ref().ok_or_else(String::new)?;
                addr2line::Context::from_dwarf(dwarf::dwarf_of(sections))
                    .map(Mutex::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|why| {
                if self.dwarf.is_none() {
                    SymbolError::NoDebugInfo {
                        file: self.file_name.clone(),
                    }
                } else {
                    SymbolError::Dwarf {
                        file: self.file_name.clone(),
                        why: why.clone(),
                    }
                }
            })?;
        let ctx = ctx.lock().unwrap_or_else(|p| p.into_inner());
        lines::frames(&ctx, addr).map_err(|e| SymbolError::Dwarf {
            file: self.file_name.clone(),
            why: e.to_string(),
        })
    }

    // ---- expressions ----

    /// Parse and evaluate a symbol expression (`proc[3].kstack`,
    /// `&proc[2]`, `cpus[1].proc->pid`, `trampoline+0x40`). Reads go
    /// through `mem`; pass [`NoMemory`] to evaluate what needs no reads.
    pub fn eval(&self, text: &str, mem: &mut dyn Memory) -> Result<Evaluated> {
        let e = Expr::parse(text)?;
        expr::eval(self, &e, mem)
    }

    /// Evaluate an expression given where an address is expected: the
    /// value of a scalar (`proc[3].kstack`, `kernel_pagetable`), the
    /// address of anything else (`proc[3]`, `etext`, `&proc[2]`).
    pub fn eval_address(&self, text: &str, mem: &mut dyn Memory) -> Result<u64> {
        let e = Expr::parse(text)?;
        let v = expr::eval(self, &e, mem)?;
        expr::as_address(self, &e, v, mem)
    }
}

/// `lock, state, chan, ...` for a "no field" error (a Rust enum's
/// variants count as its fields).
fn field_list(s: &StructType) -> String {
    let names: Vec<&str> = s
        .members
        .iter()
        .chain(
            s.variant_part
                .iter()
                .flat_map(|vp| vp.variants.iter().map(|v| &v.member)),
        )
        .map(|m| m.name.as_deref().unwrap_or("<anonymous>"))
        .collect();
    if names.len() > 32 {
        format!("{}, ... ({} in all)", names[..32].join(", "), names.len())
    } else if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    /// kinspect's TUI may share one `Symbols` between threads.
    #[test]
    fn symbols_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Symbols>();
    }
}
