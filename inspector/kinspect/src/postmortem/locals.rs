//! Arguments and locals of one frame, from their DWARF locations.
//!
//! For a pc and the registers the unwinder recovered for that frame, find
//! every scope (function, inlined function, block) that contains the pc,
//! and evaluate the location of each parameter and variable in it with
//! gimli. A value that the compiler did not keep at that pc is `None`
//! ("optimised out"); nothing is guessed.

use std::borrow::Cow;

use gimli::{
    AttributeValue, EndianSlice, EvaluationResult, Expression, LittleEndian, Location, Reader,
    Unit, UnitOffset,
};

use crate::model::KernelMemory;
use kinspect_sv39::VirtAddr;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Bound on scope nesting followed.
const MAX_DEPTH: usize = 64;

/// One parameter or variable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Local {
    /// The function (or inlined function) it belongs to.
    pub function: String,
    pub name: String,
    /// `None`: optimised out at this pc.
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub value: Option<u64>,
    pub parameter: bool,
}

struct Frame<'m, 'c, 't> {
    regs: &'m [Option<u64>; 32],
    cfa: Option<u64>,
    mem: &'m mut KernelMemory<'c, 't>,
}

fn name_of<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    entry: &gimli::DebuggingInformationEntry<R<'a>>,
    depth: usize,
) -> Option<String> {
    if depth > 4 {
        return None;
    }
    if let Ok(Some(v)) = entry.attr_value(gimli::DW_AT_name) {
        if let Ok(s) = dwarf.attr_string(unit, v) {
            return Some(s.to_string_lossy().into_owned());
        }
    }
    for at in [gimli::DW_AT_abstract_origin, gimli::DW_AT_specification] {
        if let Ok(Some(AttributeValue::UnitRef(off))) = entry.attr_value(at) {
            let e = unit.entry(off).ok()?;
            return name_of(dwarf, unit, &e, depth + 1);
        }
    }
    None
}

fn contains(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    entry: &gimli::DebuggingInformationEntry<R<'_>>,
    pc: u64,
) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else {
        return false;
    };
    let mut n = 0;
    while let Ok(Some(r)) = ranges.next() {
        if r.begin <= pc && pc < r.end {
            return true;
        }
        n += 1;
        if n > 4096 {
            break;
        }
    }
    false
}

fn eval(
    expr: Expression<R<'_>>,
    unit: &Unit<R<'_>>,
    fb: Option<u64>,
    f: &mut Frame<'_, '_, '_>,
) -> Option<u64> {
    let mut e = expr.evaluation(unit.encoding());
    let mut r = e.evaluate().ok()?;
    for _ in 0..64 {
        r = match r {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = f.regs.get(register.0 as usize).copied().flatten()?;
                e.resume_with_register(gimli::Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresFrameBase => e.resume_with_frame_base(fb?).ok()?,
            EvaluationResult::RequiresCallFrameCfa => e.resume_with_call_frame_cfa(f.cfa?).ok()?,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let v = f.mem.u64(VirtAddr(address)).ok()?;
                let v = if size >= 8 {
                    v
                } else {
                    v & ((1u64 << (8 * size as u32)) - 1)
                };
                e.resume_with_memory(gimli::Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresRelocatedAddress(a) => {
                e.resume_with_relocated_address(a).ok()?
            }
            _ => return None,
        };
    }
    let pieces = e.result();
    let p = pieces.first()?;
    match p.location {
        Location::Register { register } => f.regs.get(register.0 as usize).copied().flatten(),
        Location::Address { address } => f.mem.u64(VirtAddr(address)).ok(),
        Location::Value { value } => value.to_u64(u64::MAX).ok(),
        _ => None,
    }
}

fn location_value(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    entry: &gimli::DebuggingInformationEntry<R<'_>>,
    at: gimli::DwAt,
    pc: u64,
    fb: Option<u64>,
    f: &mut Frame<'_, '_, '_>,
) -> Option<u64> {
    let v = entry.attr_value(at).ok()??;
    if let AttributeValue::Exprloc(expr) = v {
        return eval(expr, unit, fb, f);
    }
    let mut locs = dwarf.attr_locations(unit, v).ok()??;
    let mut n = 0;
    while let Ok(Some(l)) = locs.next() {
        if l.range.begin <= pc && pc < l.range.end {
            return eval(l.data, unit, fb, f);
        }
        n += 1;
        if n > 4096 {
            break;
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn scan(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    node: gimli::EntriesTreeNode<'_, '_, '_, R<'_>>,
    pc: u64,
    function: &str,
    fb: Option<u64>,
    f: &mut Frame<'_, '_, '_>,
    out: &mut Vec<Local>,
    depth: usize,
) -> gimli::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let entry = child.entry().clone();
        match entry.tag() {
            gimli::DW_TAG_namespace | gimli::DW_TAG_structure_type if function.is_empty() => {
                scan(dwarf, unit, child, pc, "", fb, f, out, depth + 1)?;
            }
            gimli::DW_TAG_subprogram
            | gimli::DW_TAG_inlined_subroutine
            | gimli::DW_TAG_lexical_block => {
                if !contains(dwarf, unit, &entry, pc) {
                    continue;
                }
                let (name, fb2) = match entry.tag() {
                    gimli::DW_TAG_lexical_block => (function.to_string(), fb),
                    gimli::DW_TAG_subprogram => {
                        let fb2 = location_value(
                            dwarf,
                            unit,
                            &entry,
                            gimli::DW_AT_frame_base,
                            pc,
                            None,
                            f,
                        )
                        .or_else(|| frame_base_register(&entry, unit, f));
                        (
                            name_of(dwarf, unit, &entry, 0).unwrap_or_else(|| "??".into()),
                            fb2,
                        )
                    }
                    _ => (
                        name_of(dwarf, unit, &entry, 0).unwrap_or_else(|| "??".into()),
                        fb,
                    ),
                };
                scan(dwarf, unit, child, pc, &name, fb2, f, out, depth + 1)?;
            }
            gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable if !function.is_empty() => {
                let Some(name) = name_of(dwarf, unit, &entry, 0) else {
                    continue;
                };
                let value = location_value(dwarf, unit, &entry, gimli::DW_AT_location, pc, fb, f)
                    .map(|v| match type_size(unit, &entry) {
                        Some(n @ 1..=7) => v & ((1u64 << (8 * n)) - 1),
                        _ => v,
                    });
                out.push(Local {
                    function: function.to_string(),
                    name,
                    value,
                    parameter: entry.tag() == gimli::DW_TAG_formal_parameter,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// The byte size of a variable's type (through typedefs and qualifiers),
/// so an `i32` kept in a 64-bit register shows as 32 bits.
fn type_size(unit: &Unit<R<'_>>, entry: &gimli::DebuggingInformationEntry<R<'_>>) -> Option<u64> {
    let mut at = match entry.attr_value(gimli::DW_AT_type).ok()?? {
        AttributeValue::UnitRef(o) => o,
        _ => return None,
    };
    for _ in 0..8 {
        let e = unit.entry(at).ok()?;
        if let Some(v) = e.attr_value(gimli::DW_AT_byte_size).ok()? {
            return v.udata_value();
        }
        at = match e.attr_value(gimli::DW_AT_type).ok()?? {
            AttributeValue::UnitRef(o) => o,
            _ => return None,
        };
    }
    None
}

/// DW_AT_frame_base as a plain register (DW_OP_regN), when the general
/// evaluation above did not give a value.
fn frame_base_register(
    entry: &gimli::DebuggingInformationEntry<R<'_>>,
    _unit: &Unit<R<'_>>,
    f: &mut Frame<'_, '_, '_>,
) -> Option<u64> {
    let AttributeValue::Exprloc(expr) = entry.attr_value(gimli::DW_AT_frame_base).ok()?? else {
        return None;
    };
    let mut r = expr.0;
    let op = r.read_u8().ok()?;
    if (0x50..=0x6f).contains(&op) {
        return f.regs.get((op - 0x50) as usize).copied().flatten();
    }
    None
}

/// Parameters and variables in scope at `pc`, outermost function first.
/// `regs` are the frame's registers, `cfa` its canonical frame address
/// (the caller's sp).
pub fn locals_at(
    elf: &[u8],
    pc: u64,
    regs: &[Option<u64>; 32],
    cfa: Option<u64>,
    mem: &mut KernelMemory<'_, '_>,
) -> Vec<Local> {
    let mut out = Vec::new();
    let _ = locals_inner(elf, pc, regs, cfa, mem, &mut out);
    out
}

fn locals_inner(
    elf: &[u8],
    pc: u64,
    regs: &[Option<u64>; 32],
    cfa: Option<u64>,
    mem: &mut KernelMemory<'_, '_>,
    out: &mut Vec<Local>,
) -> Option<()> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).ok()?;
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
        Ok(file
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    };
    let sections = gimli::DwarfSections::load(load).ok()?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
    let mut f = Frame { regs, cfa, mem };
    let mut units = dwarf.units();
    let mut n = 0;
    while let Ok(Some(header)) = units.next() {
        n += 1;
        if n > 100_000 {
            break;
        }
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let mut hit = false;
        if let Ok(mut ranges) = dwarf.unit_ranges(&unit) {
            while let Ok(Some(r)) = ranges.next() {
                if r.begin <= pc && pc < r.end {
                    hit = true;
                    break;
                }
            }
        }
        if !hit {
            continue;
        }
        let Ok(mut tree) = unit.entries_tree(None::<UnitOffset>) else {
            continue;
        };
        let Ok(root) = tree.root() else {
            continue;
        };
        let _ = scan(&dwarf, &unit, root, pc, "", None, &mut f, out, 0);
        if !out.is_empty() {
            break;
        }
    }
    Some(())
}
