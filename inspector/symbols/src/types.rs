//! The DWARF type model: what a type is, as far as reading memory goes.
//!
//! A [`TypeId`] names a type DIE by its `.debug_info` offset; [`parse`]
//! turns one DIE into a [`Type`] (base type, struct/union with members,
//! enum with enumerators, array with a length, pointer, typedef,
//! const/volatile, Rust enum with a variant part). Referenced types stay
//! [`TypeId`]s, so parsing is one DIE at a time and cycles
//! (`struct proc { struct proc *parent; }`) cost nothing. The
//! [`crate::Symbols`] cache keeps each parsed type.
//!
//! Works on DWARF 4 and 5 alike: gimli hides the form differences; the one
//! place the versions differ in meaning (bit-field offsets) is handled here.

use gimli::{AttributeValue, UnitOffset};

use crate::dwarf::{attr_const, attr_str, attr_u64, Index, UnitEntry, R};
use crate::error::SymbolError;

/// A type, named by the offset of its DIE in `.debug_info`. Inner
/// dimensions of a multi-dimensional array get ids of their own (the
/// array's offset with the dimension in the high bits), so `int a[3][4]`
/// reads as an array of 3 arrays of 4 ints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(u64);

const DIM_SHIFT: u32 = 48;
const OFFSET_MASK: u64 = (1 << DIM_SHIFT) - 1;

impl TypeId {
    /// The `.debug_info` offset of the type's DIE.
    pub fn offset(self) -> u64 {
        self.0 & OFFSET_MASK
    }

    /// For the inner dimensions of an array: how many outer dimensions
    /// are peeled off (0 for every ordinary type).
    pub fn dimension(self) -> u64 {
        self.0 >> DIM_SHIFT
    }

    fn with_dimension(self, dim: u64) -> TypeId {
        TypeId(self.offset() | (dim << DIM_SHIFT))
    }

    pub(crate) fn from_unit(unit: &gimli::Unit<R>, off: UnitOffset) -> Option<TypeId> {
        crate::dwarf::global_offset(unit, off)
            .filter(|o| *o <= OFFSET_MASK)
            .map(TypeId)
    }

    pub(crate) fn from_attr(unit: &gimli::Unit<R>, v: &AttributeValue<R>) -> Option<TypeId> {
        match *v {
            AttributeValue::UnitRef(off) => TypeId::from_unit(unit, off),
            AttributeValue::DebugInfoRef(off) => {
                Some(off.0 as u64).filter(|o| *o <= OFFSET_MASK).map(TypeId)
            }
            _ => None,
        }
    }
}

/// What a base type's bytes mean (`DW_AT_encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Signed,
    Unsigned,
    Bool,
    Float,
    /// `unsigned char` (and `char` on RISC-V, where it is unsigned),
    /// Rust `char` (UTF-32). `signed char` is [`Encoding::Signed`].
    Char,
    /// An encoding this layer does not interpret (decimal, complex, ...).
    Other,
}

/// struct, union or class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Struct,
    Union,
    Class,
}

/// A bit-field's place: bits `[bit_offset, bit_offset + bit_size)`
/// counted from the start of the enclosing struct, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitField {
    pub bit_offset: u64,
    pub bit_size: u64,
}

/// A data member of a struct or union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `None` for anonymous members (C11 anonymous structs/unions).
    pub name: Option<String>,
    pub ty: TypeId,
    /// Byte offset from the start of the enclosing object (for a
    /// bit-field: of the byte holding its first bit).
    pub offset: u64,
    pub bits: Option<BitField>,
    /// Compiler-made (a Rust enum's discriminant field).
    pub artificial: bool,
}

/// One variant of a Rust enum with data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The discriminant value that selects it; `None` for the default
    /// variant (the dataful variant of a niche-encoded enum).
    pub discr_value: Option<i128>,
    /// Named after the variant, of the variant's own struct type.
    pub member: Member,
}

/// `DW_TAG_variant_part`: how rustc describes an enum with data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantPart {
    /// The member holding the discriminant (or niche).
    pub discr: Option<Member>,
    pub variants: Vec<Variant>,
}

/// A struct, union or class type's members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructType {
    pub aggregate: Aggregate,
    pub members: Vec<Member>,
    /// Present for Rust enums with data.
    pub variant_part: Option<VariantPart>,
}

/// One named value of an enum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enumerator {
    pub name: String,
    /// As DWARF states it; compare with [`EnumType::find`], which masks to
    /// the enum's width.
    pub value: i128,
}

/// A C enum or a fieldless Rust enum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumType {
    /// The integer type underneath (DWARF 3+; rustc always states it).
    pub underlying: Option<TypeId>,
    pub enumerators: Vec<Enumerator>,
}

impl EnumType {
    /// The enumerator whose value equals `bits`, comparing the low
    /// `size * 8` bits only, so DWARF's signed/unsigned spelling of a
    /// constant does not matter.
    pub fn find(&self, bits: u64, size: u64) -> Option<&Enumerator> {
        let mask = low_mask(size);
        self.enumerators
            .iter()
            .find(|e| (e.value as u64) & mask == bits & mask)
    }
}

/// `const`, `volatile` and friends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    Const,
    Volatile,
    Restrict,
    Atomic,
}

impl Qualifier {
    pub fn keyword(self) -> &'static str {
        match self {
            Qualifier::Const => "const",
            Qualifier::Volatile => "volatile",
            Qualifier::Restrict => "restrict",
            Qualifier::Atomic => "_Atomic",
        }
    }
}

/// The shape of a type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    Base(Encoding),
    Struct(StructType),
    Enum(EnumType),
    /// One dimension; `len` is `None` for `T x[]` (unknown length).
    Array {
        element: TypeId,
        len: Option<u64>,
    },
    /// Pointers and Rust references. `pointee` is `None` for `void *`.
    Pointer {
        pointee: Option<TypeId>,
    },
    Typedef {
        target: Option<TypeId>,
    },
    Qualified {
        qualifier: Qualifier,
        target: Option<TypeId>,
    },
    Function,
    /// `void`, `DW_TAG_unspecified_type`, and tags this layer ignores.
    Void,
}

/// A parsed type DIE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub id: TypeId,
    /// `DW_AT_name`: `proc`, `pagetable_t`, `ProcState`, `*mut u64`.
    pub name: Option<String>,
    /// `DW_AT_byte_size` (arrays usually have none: see
    /// [`crate::Symbols::size_of`]).
    pub size: Option<u64>,
    pub kind: TypeKind,
    /// From a C unit: struct, union and enum names take their keyword.
    pub c_names: bool,
    /// A forward declaration (`struct cpu;`): no members, no size.
    /// [`crate::Symbols::ty`] replaces it with the definition from another
    /// unit when there is one.
    pub declaration: bool,
}

/// Bounds on what one DIE may describe; corrupt DWARF hits these.
const MAX_CHILDREN: usize = 1 << 16;

/// A mask of the low `size` bytes.
pub fn low_mask(size: u64) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

fn bad(id: TypeId, why: impl Into<String>) -> SymbolError {
    SymbolError::BadType {
        offset: id.offset(),
        why: why.into(),
    }
}

/// Parse the type DIE `id` names.
pub fn parse(dwarf: &gimli::Dwarf<R>, index: &Index, id: TypeId) -> Result<Type, SymbolError> {
    let entry = index
        .unit_of(id.offset())
        .ok_or_else(|| bad(id, "not inside any unit of .debug_info"))?;
    let unit = &entry.unit;
    let uoff = gimli::DebugInfoOffset(id.offset() as usize)
        .to_unit_offset(&unit.header)
        .ok_or_else(|| bad(id, "not inside its unit"))?;
    let g = |e: gimli::Error| bad(id, e.to_string());
    let mut tree = unit.entries_tree(Some(uoff)).map_err(g)?;
    let root = tree.root().map_err(g)?;
    let die = root.entry();
    let tag = die.tag();
    let name = die
        .attr_value(gimli::DW_AT_name)
        .map_err(g)?
        .and_then(|v| attr_str(dwarf, unit, v));
    let size = die
        .attr_value(gimli::DW_AT_byte_size)
        .map_err(g)?
        .and_then(|v| attr_u64(&v));
    let target = die
        .attr_value(gimli::DW_AT_type)
        .map_err(g)?
        .and_then(|v| TypeId::from_attr(unit, &v));
    let c_names = entry.is_c();
    let declaration = matches!(
        die.attr_value(gimli::DW_AT_declaration).map_err(g)?,
        Some(AttributeValue::Flag(true))
    );
    let simple = |kind| {
        Ok(Type {
            id,
            name: name.clone(),
            size,
            kind,
            c_names,
            declaration,
        })
    };
    match tag {
        gimli::DW_TAG_base_type => {
            let enc = match die.attr_value(gimli::DW_AT_encoding).map_err(g)? {
                Some(AttributeValue::Encoding(e)) => e,
                _ => gimli::DW_ATE_unsigned,
            };
            let encoding = match enc {
                // `signed char` is a small signed integer; it still reads as
                // a string byte in a `char` array.
                gimli::DW_ATE_signed | gimli::DW_ATE_signed_char => Encoding::Signed,
                gimli::DW_ATE_unsigned | gimli::DW_ATE_address => Encoding::Unsigned,
                gimli::DW_ATE_boolean => Encoding::Bool,
                gimli::DW_ATE_float => Encoding::Float,
                gimli::DW_ATE_unsigned_char | gimli::DW_ATE_UTF => Encoding::Char,
                _ => Encoding::Other,
            };
            simple(TypeKind::Base(encoding))
        }
        gimli::DW_TAG_pointer_type
        | gimli::DW_TAG_reference_type
        | gimli::DW_TAG_rvalue_reference_type => {
            let size = size.or(Some(u64::from(unit.encoding().address_size)));
            Ok(Type {
                id,
                name,
                size,
                kind: TypeKind::Pointer { pointee: target },
                c_names,
                declaration: false,
            })
        }
        gimli::DW_TAG_typedef => simple(TypeKind::Typedef { target }),
        gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_restrict_type
        | gimli::DW_TAG_atomic_type => {
            let qualifier = match tag {
                gimli::DW_TAG_const_type => Qualifier::Const,
                gimli::DW_TAG_volatile_type => Qualifier::Volatile,
                gimli::DW_TAG_restrict_type => Qualifier::Restrict,
                _ => Qualifier::Atomic,
            };
            simple(TypeKind::Qualified { qualifier, target })
        }
        gimli::DW_TAG_subroutine_type => simple(TypeKind::Function),
        gimli::DW_TAG_enumeration_type => {
            let mut enumerators = Vec::new();
            let mut children = root.children();
            while let Some(child) = children.next().map_err(g)? {
                let e = child.entry();
                if e.tag() != gimli::DW_TAG_enumerator {
                    continue;
                }
                if enumerators.len() >= MAX_CHILDREN {
                    return Err(bad(id, "more than 65536 enumerators"));
                }
                let ename = e
                    .attr_value(gimli::DW_AT_name)
                    .map_err(g)?
                    .and_then(|v| attr_str(dwarf, unit, v))
                    .unwrap_or_default();
                let value = e
                    .attr_value(gimli::DW_AT_const_value)
                    .map_err(g)?
                    .and_then(|v| attr_const(&v))
                    .ok_or_else(|| bad(id, format!("enumerator `{ename}` has no value")))?;
                enumerators.push(Enumerator { name: ename, value });
            }
            simple(TypeKind::Enum(EnumType {
                underlying: target,
                enumerators,
            }))
        }
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type | gimli::DW_TAG_class_type => {
            let aggregate = match tag {
                gimli::DW_TAG_union_type => Aggregate::Union,
                gimli::DW_TAG_class_type => Aggregate::Class,
                _ => Aggregate::Struct,
            };
            let mut members = Vec::new();
            let mut variant_part = None;
            let mut children = root.children();
            while let Some(child) = children.next().map_err(g)? {
                if members.len() >= MAX_CHILDREN {
                    return Err(bad(id, "more than 65536 members"));
                }
                match child.entry().tag() {
                    gimli::DW_TAG_member => {
                        if let Some(m) = member(dwarf, entry, child.entry(), id)? {
                            members.push(m);
                        }
                    }
                    gimli::DW_TAG_variant_part => {
                        variant_part = Some(parse_variant_part(dwarf, entry, child, id)?);
                    }
                    _ => {}
                }
            }
            simple(TypeKind::Struct(StructType {
                aggregate,
                members,
                variant_part,
            }))
        }
        gimli::DW_TAG_array_type => {
            let element = target.ok_or_else(|| bad(id, "array without an element type"))?;
            let mut dims: Vec<Option<u64>> = Vec::new();
            let mut children = root.children();
            while let Some(child) = children.next().map_err(g)? {
                let e = child.entry();
                if e.tag() != gimli::DW_TAG_subrange_type
                    && e.tag() != gimli::DW_TAG_enumeration_type
                {
                    continue;
                }
                if dims.len() >= 64 {
                    return Err(bad(id, "more than 64 array dimensions"));
                }
                dims.push(subrange_len(e).map_err(g)?);
            }
            if dims.is_empty() {
                dims.push(None);
            }
            let dim = id.dimension() as usize;
            let len = *dims
                .get(dim)
                .ok_or_else(|| bad(id, format!("no dimension {dim}")))?;
            let element = if dim + 1 < dims.len() {
                id.with_dimension(dim as u64 + 1)
            } else {
                element
            };
            Ok(Type {
                id,
                name: if dim == 0 { name } else { None },
                size: if dim == 0 { size } else { None },
                kind: TypeKind::Array { element, len },
                c_names,
                declaration: false,
            })
        }
        _ => simple(TypeKind::Void),
    }
}

/// The number of elements a `DW_TAG_subrange_type` describes:
/// `DW_AT_count`, or `DW_AT_upper_bound - DW_AT_lower_bound + 1`.
/// `None` when unknown (`T x[]`, a variable length).
fn subrange_len(e: &gimli::DebuggingInformationEntry<'_, '_, R>) -> gimli::Result<Option<u64>> {
    if let Some(v) = e.attr_value(gimli::DW_AT_count)? {
        return Ok(attr_u64(&v));
    }
    let lower = match e.attr_value(gimli::DW_AT_lower_bound)? {
        Some(v) => attr_const(&v),
        None => Some(0),
    };
    let upper = match e.attr_value(gimli::DW_AT_upper_bound)? {
        Some(v) => attr_const(&v),
        None => None,
    };
    Ok(match (lower, upper) {
        // gcc writes `T x[]` as upper bound -1 in some versions, or as an
        // all-ones unsigned constant.
        (Some(l), Some(u)) if u >= l && u - l < i128::from(u32::MAX) * 64 => {
            u64::try_from(u - l + 1).ok()
        }
        _ => None,
    })
}

/// A `DW_TAG_member`, or `None` for a static member (no location).
fn member(
    dwarf: &gimli::Dwarf<R>,
    entry: &UnitEntry,
    e: &gimli::DebuggingInformationEntry<'_, '_, R>,
    owner: TypeId,
) -> Result<Option<Member>, SymbolError> {
    let unit = &entry.unit;
    let g = |err: gimli::Error| bad(owner, err.to_string());
    let name = e
        .attr_value(gimli::DW_AT_name)
        .map_err(g)?
        .and_then(|v| attr_str(dwarf, unit, v));
    let what = name.clone().unwrap_or_else(|| "<anonymous>".into());
    let ty = e
        .attr_value(gimli::DW_AT_type)
        .map_err(g)?
        .and_then(|v| TypeId::from_attr(unit, &v))
        .ok_or_else(|| bad(owner, format!("member `{what}` has no type")))?;
    if e.attr_value(gimli::DW_AT_external).map_err(g)?.is_some()
        || e.attr_value(gimli::DW_AT_declaration).map_err(g)?.is_some()
    {
        return Ok(None);
    }
    let loc = match e.attr_value(gimli::DW_AT_data_member_location).map_err(g)? {
        None => None,
        Some(AttributeValue::Exprloc(expr)) => {
            // DWARF 2 style: DW_OP_plus_uconst N.
            let mut ops = expr.operations(unit.encoding());
            match ops.next().map_err(g)? {
                Some(gimli::Operation::PlusConstant { value }) => Some(value),
                _ => {
                    return Err(bad(
                        owner,
                        format!("member `{what}` has a computed location"),
                    ))
                }
            }
        }
        Some(v) => attr_u64(&v),
    };
    let bit_size = e
        .attr_value(gimli::DW_AT_bit_size)
        .map_err(g)?
        .and_then(|v| attr_u64(&v));
    let artificial = matches!(
        e.attr_value(gimli::DW_AT_artificial).map_err(g)?,
        Some(AttributeValue::Flag(true))
    );
    let Some(bit_size) = bit_size else {
        return Ok(Some(Member {
            name,
            ty,
            offset: loc.unwrap_or(0),
            bits: None,
            artificial,
        }));
    };
    // DWARF 4+: DW_AT_data_bit_offset counts from the start of the struct.
    // DWARF 2/3 (gcc's -gdwarf-4 still emits it): DW_AT_bit_offset counts
    // from the most significant bit of a storage unit of DW_AT_byte_size
    // bytes at DW_AT_data_member_location.
    let data_bit_offset = match e.attr_value(gimli::DW_AT_data_bit_offset).map_err(g)? {
        Some(v) => attr_u64(&v),
        None => {
            let bit_offset = e
                .attr_value(gimli::DW_AT_bit_offset)
                .map_err(g)?
                .and_then(|v| attr_u64(&v))
                .unwrap_or(0);
            let storage = match e.attr_value(gimli::DW_AT_byte_size).map_err(g)? {
                Some(v) => attr_u64(&v),
                None => die_byte_size(entry, ty, owner)?,
            }
            .ok_or_else(|| bad(owner, format!("bit-field `{what}` has no storage size")))?;
            storage
                .checked_mul(8)
                .and_then(|bits| bits.checked_sub(bit_offset.checked_add(bit_size)?))
                .and_then(|b| loc.unwrap_or(0).checked_mul(8)?.checked_add(b))
        }
    }
    .ok_or_else(|| bad(owner, format!("bit-field `{what}` has a bad offset")))?;
    if bit_size == 0 || bit_size > 64 {
        return Err(bad(
            owner,
            format!("bit-field `{what}` is {bit_size} bits wide"),
        ));
    }
    Ok(Some(Member {
        name,
        ty,
        offset: data_bit_offset / 8,
        bits: Some(BitField {
            bit_offset: data_bit_offset,
            bit_size,
        }),
        artificial,
    }))
}

/// `DW_AT_byte_size` of a type, looking through typedefs and qualifiers
/// (a few steps only): for DWARF 3 bit-fields without a storage size.
fn die_byte_size(
    entry: &UnitEntry,
    mut ty: TypeId,
    owner: TypeId,
) -> Result<Option<u64>, SymbolError> {
    let unit = &entry.unit;
    let g = |err: gimli::Error| bad(owner, err.to_string());
    for _ in 0..8 {
        let Some(off) = gimli::DebugInfoOffset(ty.offset() as usize).to_unit_offset(&unit.header)
        else {
            return Ok(None);
        };
        let e = unit.entry(off).map_err(g)?;
        if let Some(v) = e.attr_value(gimli::DW_AT_byte_size).map_err(g)? {
            return Ok(attr_u64(&v));
        }
        match e
            .attr_value(gimli::DW_AT_type)
            .map_err(g)?
            .and_then(|v| TypeId::from_attr(unit, &v))
        {
            Some(next) => ty = next,
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn parse_variant_part(
    dwarf: &gimli::Dwarf<R>,
    entry: &UnitEntry,
    node: gimli::EntriesTreeNode<'_, '_, '_, R>,
    owner: TypeId,
) -> Result<VariantPart, SymbolError> {
    let unit = &entry.unit;
    let g = |err: gimli::Error| bad(owner, err.to_string());
    let discr_ref = match node.entry().attr_value(gimli::DW_AT_discr).map_err(g)? {
        Some(AttributeValue::UnitRef(off)) => Some(off),
        _ => None,
    };
    let mut discr = None;
    let mut variants = Vec::new();
    let mut children = node.children();
    while let Some(child) = children.next().map_err(g)? {
        if variants.len() >= MAX_CHILDREN {
            return Err(bad(owner, "more than 65536 variants"));
        }
        match child.entry().tag() {
            gimli::DW_TAG_member if Some(child.entry().offset()) == discr_ref => {
                discr = member(dwarf, entry, child.entry(), owner)?;
            }
            gimli::DW_TAG_variant => {
                let discr_value = child
                    .entry()
                    .attr_value(gimli::DW_AT_discr_value)
                    .map_err(g)?
                    .and_then(|v| attr_const(&v));
                let mut inner = child.children();
                while let Some(m) = inner.next().map_err(g)? {
                    if m.entry().tag() == gimli::DW_TAG_member {
                        if let Some(member) = member(dwarf, entry, m.entry(), owner)? {
                            variants.push(Variant {
                                discr_value,
                                member,
                            });
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    // The discriminant may live outside the variant part (DWARF allows a
    // reference to any member of the enclosing struct).
    if discr.is_none() {
        if let Some(off) = discr_ref {
            let e = unit.entry(off).map_err(g)?;
            discr = member(dwarf, entry, &e, owner)?;
        }
    }
    Ok(VariantPart { discr, variants })
}
