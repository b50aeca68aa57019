//! Loading the DWARF sections and the name index over them.
//!
//! [`crate::Symbols`] keeps the raw sections from open time (no copying:
//! every section is a window on one shared copy of the file) and builds the
//! [`Index`] the first time a name or type is looked up. The index is one
//! pass over the debug info that reads the attributes of only the entries at
//! file scope (children of a compilation unit or of a Rust namespace):
//! variables and named types. Everything else is skipped without decoding.
//! Types are parsed later, one at a time, by [`crate::types`].

use std::collections::HashMap;
use std::sync::Arc;

use gimli::{AttributeValue, DebugInfoOffset, DwLang, Reader as _, UnitOffset};
use object::{Object, ObjectSection};

use crate::error::SymbolError;
use crate::types::TypeId;

/// The reader every DWARF structure here is built on: cheap to clone,
/// owns its bytes through an `Arc`, so nothing borrows from the caller.
pub type R = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Read the DWARF sections of an ELF. `data` is the whole file; sections
/// that are stored uncompressed are windows on it, compressed ones are
/// inflated once. Returns `Ok(None)` when there is no `.debug_info`.
pub fn load_sections(
    file: &object::File<'_>,
    data: &Arc<[u8]>,
    file_name: &str,
) -> Result<Option<gimli::DwarfSections<R>>, SymbolError> {
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    match file.section_by_name(".debug_info") {
        Some(s) if s.size() > 0 => {}
        _ => return Ok(None),
    }
    let whole = gimli::EndianArcSlice::new(data.clone(), endian);
    let load = |id: gimli::SectionId| -> Result<R, SymbolError> {
        let Some(section) = file.section_by_name(id.name()) else {
            return Ok(whole.range(0..0));
        };
        let bad = |why: String| SymbolError::Dwarf {
            file: file_name.to_string(),
            why: format!("section {}: {why}", id.name()),
        };
        let compressed = section
            .compressed_file_range()
            .map_err(|e| bad(e.to_string()))?;
        if compressed.format == object::CompressionFormat::None {
            if let Some((start, len)) = section.file_range() {
                let start = usize::try_from(start).map_err(|e| bad(e.to_string()))?;
                let len = usize::try_from(len).map_err(|e| bad(e.to_string()))?;
                let end = start
                    .checked_add(len)
                    .filter(|&end| end <= data.len())
                    .ok_or_else(|| bad("extends past the end of the file".into()))?;
                return Ok(whole.range(start..end));
            }
            return Ok(whole.range(0..0));
        }
        let bytes = section
            .uncompressed_data()
            .map_err(|e| bad(e.to_string()))?;
        Ok(gimli::EndianArcSlice::new(Arc::from(&*bytes), endian))
    };
    Ok(Some(gimli::DwarfSections::load(load)?))
}

/// A `Dwarf` over the sections (cheap: every section is an `Arc` window).
pub fn dwarf_of(sections: &gimli::DwarfSections<R>) -> gimli::Dwarf<R> {
    let mut dwarf = sections.borrow(|r| r.clone());
    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
    dwarf
}

/// One compilation unit, parsed (abbreviations, header) once.
pub struct UnitEntry {
    /// Offset of the unit header in `.debug_info`.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    pub unit: gimli::Unit<R>,
    pub lang: Option<DwLang>,
}

impl UnitEntry {
    /// Whether names in this unit are C-style (`struct proc`) rather than
    /// Rust-style (`Proc`).
    pub fn is_c(&self) -> bool {
        !matches!(self.lang, Some(gimli::DW_LANG_Rust))
    }
}

/// A variable at file scope: a C global or a Rust static.
#[derive(Clone, Debug)]
pub struct VarDie {
    /// Its DW_AT_name (or the one of the declaration it specifies).
    pub name: String,
    /// From `DW_AT_location` when it is a plain address.
    pub addr: Option<u64>,
    /// The variable's type.
    pub ty: Option<TypeId>,
}

/// The names the symbol layer can look up without a further DWARF pass.
#[derive(Default)]
pub struct Index {
    /// Sorted by `start`.
    pub units: Vec<UnitEntry>,
    /// Variables by DW_AT_name, linkage name and Rust path. Declarations
    /// without a location are kept after the definitions.
    pub vars: HashMap<String, Vec<VarDie>>,
    /// Variables with an address, by address.
    pub vars_by_addr: HashMap<u64, VarDie>,
    /// Named types by plain name (`proc`, `pagetable_t`, `ProcState`), by C
    /// tag (`struct proc`, `enum procstate`) and by Rust path
    /// (`kernel::proc::ProcState`). Complete definitions first.
    pub types: HashMap<String, Vec<(TypeId, bool)>>,
    /// Rust: the distinct paths that define a plain type name, so that
    /// `Context` is not silently taken from the wrong module.
    pub type_paths: HashMap<String, Vec<String>>,
}

/// The attributes of one file-scope entry the index wants.
#[derive(Default)]
struct Wanted {
    name: Option<String>,
    linkage_name: Option<String>,
    location: Option<AttributeValue<R>>,
    ty: Option<AttributeValue<R>>,
    specification: Option<AttributeValue<R>>,
    declaration: bool,
    byte_size: bool,
}

const INDEXED_TAGS: [gimli::DwTag; 8] = [
    gimli::DW_TAG_variable,
    gimli::DW_TAG_namespace,
    gimli::DW_TAG_structure_type,
    gimli::DW_TAG_union_type,
    gimli::DW_TAG_enumeration_type,
    gimli::DW_TAG_typedef,
    gimli::DW_TAG_base_type,
    gimli::DW_TAG_class_type,
];

impl Index {
    /// One pass over every unit of `.debug_info`.
    pub fn build(dwarf: &gimli::Dwarf<R>) -> gimli::Result<Index> {
        let mut index = Index::default();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            let Some(start) = header.offset().as_debug_info_offset() else {
                continue;
            };
            let start = start.0 as u64;
            let end = start + header.length_including_self() as u64;
            let unit = dwarf.unit(header)?;
            let lang = match unit
                .entry(unit_root(&unit))?
                .attr_value(gimli::DW_AT_language)?
            {
                Some(AttributeValue::Language(l)) => Some(l),
                _ => None,
            };
            let entry = UnitEntry {
                start,
                end,
                unit,
                lang,
            };
            index.index_unit(dwarf, &entry)?;
            index.units.push(entry);
        }
        index.units.sort_by_key(|u| u.start);
        for paths in index.type_paths.values_mut() {
            paths.sort();
        }
        for list in index.vars.values_mut() {
            // Definitions (with an address) first, stable otherwise.
            list.sort_by_key(|v| v.addr.is_none());
        }
        Ok(index)
    }

    fn index_unit(&mut self, dwarf: &gimli::Dwarf<R>, entry: &UnitEntry) -> gimli::Result<()> {
        let unit = &entry.unit;
        let is_c = entry.is_c();
        let mut raw = unit.entries_raw(None)?;
        // The namespaces enclosing the current entry, by depth; `None` for
        // an enclosing entry that is not a namespace (a function, a struct):
        // nothing under it is at file scope.
        let mut scope: Vec<(isize, Option<String>)> = Vec::new();
        while !raw.is_empty() {
            let depth = raw.next_depth();
            let offset = raw.next_offset();
            let Some(abbrev) = raw.read_abbreviation()? else {
                continue;
            };
            while scope.last().is_some_and(|(d, _)| *d >= depth) {
                scope.pop();
            }
            let tag = abbrev.tag();
            let at_file_scope = depth >= 1 && scope.iter().skip(1).all(|(_, ns)| ns.is_some());
            if !(at_file_scope && INDEXED_TAGS.contains(&tag)) {
                raw.skip_attributes(abbrev.attributes())?;
                if abbrev.has_children() {
                    scope.push((depth, None));
                }
                continue;
            }
            let mut w = Wanted::default();
            for spec in abbrev.attributes() {
                let attr = raw.read_attribute(*spec)?;
                match attr.name() {
                    gimli::DW_AT_name => w.name = attr_str(dwarf, unit, attr.value()),
                    gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                        w.linkage_name = attr_str(dwarf, unit, attr.value())
                    }
                    gimli::DW_AT_location => w.location = Some(attr.value()),
                    gimli::DW_AT_type => w.ty = Some(attr.value()),
                    gimli::DW_AT_specification | gimli::DW_AT_abstract_origin => {
                        w.specification = Some(attr.value())
                    }
                    gimli::DW_AT_declaration => w.declaration = true,
                    gimli::DW_AT_byte_size => w.byte_size = true,
                    _ => {}
                }
            }
            let prefix: Vec<String> = scope
                .iter()
                .skip(1)
                .filter_map(|(_, ns)| ns.clone())
                .collect();
            if tag == gimli::DW_TAG_namespace {
                if abbrev.has_children() {
                    let name = w.name.unwrap_or_else(|| "{anon}".to_string());
                    scope.push((depth, Some(name)));
                }
                continue;
            }
            if abbrev.has_children() {
                scope.push((depth, None));
            }
            let die = TypeId::from_unit(unit, offset);
            if tag == gimli::DW_TAG_variable {
                self.add_var(dwarf, entry, &prefix, w)?;
                continue;
            }
            let Some(name) = w.name else { continue };
            if w.declaration {
                continue;
            }
            let Some(die) = die else { continue };
            let complete = w.byte_size || tag == gimli::DW_TAG_typedef;
            let mut keys = vec![name.clone()];
            if is_c {
                match tag {
                    gimli::DW_TAG_structure_type => keys.push(format!("struct {name}")),
                    gimli::DW_TAG_union_type => keys.push(format!("union {name}")),
                    gimli::DW_TAG_enumeration_type => keys.push(format!("enum {name}")),
                    _ => {}
                }
            } else if !prefix.is_empty() {
                let path = format!("{}::{name}", prefix.join("::"));
                let paths = self.type_paths.entry(name.clone()).or_default();
                if complete && !paths.contains(&path) {
                    paths.push(path.clone());
                }
                keys.push(path);
            }
            for key in keys {
                let list = self.types.entry(key).or_default();
                // Keep complete definitions ahead of incomplete ones.
                let at = if complete {
                    list.partition_point(|(_, c)| *c)
                } else {
                    list.len()
                };
                list.insert(at, (die, complete));
            }
        }
        Ok(())
    }

    fn add_var(
        &mut self,
        dwarf: &gimli::Dwarf<R>,
        entry: &UnitEntry,
        prefix: &[String],
        mut w: Wanted,
    ) -> gimli::Result<()> {
        let unit = &entry.unit;
        // A C definition that completes an earlier declaration names it
        // through DW_AT_specification and may omit its name and type.
        if let Some(AttributeValue::UnitRef(spec)) = w.specification {
            let decl = unit.entry(spec)?;
            if w.name.is_none() {
                w.name = decl
                    .attr_value(gimli::DW_AT_name)?
                    .and_then(|v| attr_str(dwarf, unit, v));
            }
            if w.linkage_name.is_none() {
                w.linkage_name = decl
                    .attr_value(gimli::DW_AT_linkage_name)?
                    .and_then(|v| attr_str(dwarf, unit, v));
            }
            if w.ty.is_none() {
                w.ty = decl.attr_value(gimli::DW_AT_type)?;
            }
        }
        let Some(name) = w.name else { return Ok(()) };
        let addr = match &w.location {
            Some(AttributeValue::Exprloc(expr)) => expr_address(dwarf, unit, expr),
            _ => None,
        };
        let ty = w.ty.and_then(|v| TypeId::from_attr(unit, &v));
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{}::{name}", prefix.join("::"))
        };
        let var = VarDie {
            name: name.clone(),
            addr,
            ty,
        };
        if let Some(a) = addr {
            self.vars_by_addr.entry(a).or_insert_with(|| var.clone());
        }
        let mut keys = vec![name];
        if path != keys[0] {
            keys.push(path);
        }
        if let Some(l) = w.linkage_name {
            if !keys.contains(&l) {
                keys.push(l);
            }
        }
        for key in keys {
            self.vars.entry(key).or_default().push(var.clone());
        }
        Ok(())
    }

    /// The unit holding the DIE at a `.debug_info` offset.
    pub fn unit_of(&self, offset: u64) -> Option<&UnitEntry> {
        let i = self.units.partition_point(|u| u.start <= offset);
        let u = self.units.get(i.checked_sub(1)?)?;
        (offset < u.end).then_some(u)
    }
}

/// The offset of a unit's root DIE (the compile unit entry).
fn unit_root(unit: &gimli::Unit<R>) -> UnitOffset {
    UnitOffset(unit.header.header_size())
}

/// A string attribute (inline, `.debug_str`, `.debug_line_str`, `strx`).
pub fn attr_str(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    v: AttributeValue<R>,
) -> Option<String> {
    let r = dwarf.attr_string(unit, v).ok()?;
    Some(r.to_string_lossy().ok()?.into_owned())
}

/// The address a location expression names, when it is exactly
/// `DW_OP_addr A` or `DW_OP_addrx I` (a static's location). Anything else
/// (registers, TLS, pieces) is not a static address.
pub fn expr_address(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    expr: &gimli::Expression<R>,
) -> Option<u64> {
    let mut ops = expr.clone().operations(unit.encoding());
    let addr = match ops.next().ok()?? {
        gimli::Operation::Address { address } => address,
        gimli::Operation::AddressIndex { index } => dwarf.address(unit, index).ok()?,
        _ => return None,
    };
    match ops.next() {
        Ok(None) => Some(addr),
        _ => None,
    }
}

/// Read an attribute as an unsigned constant (any data form).
pub fn attr_u64(v: &AttributeValue<R>) -> Option<u64> {
    match *v {
        AttributeValue::Sdata(s) => u64::try_from(s).ok(),
        _ => v.udata_value(),
    }
}

/// Read a constant attribute as written, sign-extending only `sdata`.
pub fn attr_const(v: &AttributeValue<R>) -> Option<i128> {
    match *v {
        AttributeValue::Sdata(s) => Some(s as i128),
        AttributeValue::Data1(d) => Some(d as i128),
        AttributeValue::Data2(d) => Some(d as i128),
        AttributeValue::Data4(d) => Some(d as i128),
        AttributeValue::Data8(d) => Some(d as i128),
        AttributeValue::Udata(d) => Some(d as i128),
        AttributeValue::Block(ref b) if b.len() <= 16 => {
            let mut bytes = [0u8; 16];
            let mut r = b.clone();
            let n = b.len();
            r.read_slice(&mut bytes[..n]).ok()?;
            Some(i128::from_le_bytes(bytes))
        }
        _ => None,
    }
}

/// A `.debug_info` offset from a unit-relative one.
pub fn global_offset(unit: &gimli::Unit<R>, off: UnitOffset) -> Option<u64> {
    off.to_debug_info_offset(&unit.header)
        .map(|o: DebugInfoOffset| o.0 as u64)
}
