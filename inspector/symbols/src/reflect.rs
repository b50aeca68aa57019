//! Reflection: a DWARF type plus target bytes becomes a [`Value`] tree.
//!
//! The caller supplies the bytes through [`Memory`], a one-method trait:
//! it decides what an address means (kinspect translates kernel virtual
//! addresses to physical ones and reads through its `Target`; tests read a
//! byte image). [`crate::Symbols::load`] reads an object in one call and
//! decodes it without further I/O; pointers inside are returned as
//! addresses, never followed.
//!
//! Bounded against corrupt DWARF or hostile memory: at most
//! [`MAX_LOAD_BYTES`] per load, [`MAX_ARRAY_ELEMENTS`] per array,
//! [`MAX_DEPTH`] levels of nesting, and a cap on the number of values.

use crate::error::{MemoryError, Result, SymbolError};
use crate::types::{low_mask, Encoding, Member, TypeId, TypeKind};
use crate::value::{ArrayValue, EnumValue, StructValue, Value};
use crate::Symbols;

/// The most bytes one [`Symbols::load`] reads (an array of all 64 procs is
/// a few tens of KiB; a whole page-table page 4 KiB).
pub const MAX_LOAD_BYTES: u64 = 16 << 20;
/// The most elements of one array.
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 20;
/// The deepest nesting of types followed (typedef chains, struct in
/// struct, array of arrays).
pub const MAX_DEPTH: usize = 32;
/// The most values one load produces in all.
const MAX_VALUES: usize = 1 << 22;

/// Where loads read target memory from. The caller chooses the address
/// space: kinspect maps kernel virtual addresses to physical ones (xv6's
/// kernel data is identity-mapped, but that is its decision, not this
/// layer's).
pub trait Memory {
    /// Fill all of `buf` from `addr`, or fail.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> std::result::Result<(), MemoryError>;
}

impl<M: Memory + ?Sized> Memory for &mut M {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> std::result::Result<(), MemoryError> {
        (**self).read(addr, buf)
    }
}

/// No memory at all: evaluation that needs to read fails with a clear
/// message (for static questions such as `&proc[3]` or `etext`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMemory;

impl Memory for NoMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> std::result::Result<(), MemoryError> {
        Err(MemoryError::new(
            addr,
            buf.len(),
            "no target memory (give a live target or a snapshot)",
        ))
    }
}

/// Memory made of byte regions at given addresses: for tests, and for
/// callers that already hold a copy (a snapshot's RAM).
#[derive(Clone, Debug, Default)]
pub struct ImageMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl ImageMemory {
    pub fn new() -> ImageMemory {
        ImageMemory::default()
    }

    /// Add a region of `bytes` starting at `addr`.
    pub fn map(&mut self, addr: u64, bytes: Vec<u8>) -> &mut ImageMemory {
        self.regions.push((addr, bytes));
        self
    }

    /// Overwrite bytes inside a mapped region; false if not mapped.
    pub fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        for (base, bytes) in &mut self.regions {
            if let Some(off) = addr.checked_sub(*base) {
                let Ok(off) = usize::try_from(off) else {
                    continue;
                };
                if let Some(dst) = off
                    .checked_add(data.len())
                    .and_then(|end| bytes.get_mut(off..end))
                {
                    dst.copy_from_slice(data);
                    return true;
                }
            }
        }
        false
    }
}

impl Memory for ImageMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> std::result::Result<(), MemoryError> {
        for (base, bytes) in &self.regions {
            let Some(off) = addr.checked_sub(*base) else {
                continue;
            };
            let Ok(off) = usize::try_from(off) else {
                continue;
            };
            if let Some(src) = off
                .checked_add(buf.len())
                .and_then(|end| bytes.get(off..end))
            {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(MemoryError::new(addr, buf.len(), "not in the memory image"))
    }
}

struct Decoder<'a> {
    syms: &'a Symbols,
    values: usize,
}

impl Symbols {
    /// Read an object of type `ty` at `addr` through `mem` and decode it.
    pub fn load(&self, mem: &mut dyn Memory, addr: u64, ty: TypeId) -> Result<Value> {
        let size = self.size_of(ty)?;
        if size > MAX_LOAD_BYTES {
            return Err(SymbolError::Limit(format!(
                "refusing to load `{}` at {addr:#x}: {size} bytes (the limit is {} MiB)",
                self.type_name(ty),
                MAX_LOAD_BYTES >> 20
            )));
        }
        let mut buf = vec![0u8; size as usize];
        mem.read(addr, &mut buf)?;
        self.decode(ty, &buf)
    }

    /// Load a global by name (see [`Symbols::global`]).
    pub fn load_global(&self, mem: &mut dyn Memory, name: &str) -> Result<Value> {
        let g = self.global(name)?;
        let ty = g.ty.ok_or_else(|| self.untyped(name))?;
        self.load(mem, g.addr, ty)
    }

    /// Decode bytes already read (`bytes` must hold the whole object).
    pub fn decode(&self, ty: TypeId, bytes: &[u8]) -> Result<Value> {
        Decoder {
            syms: self,
            values: 0,
        }
        .value(ty, bytes, 0)
    }

    /// The error for using a symbol without a DWARF type as an object.
    pub(crate) fn untyped(&self, what: &str) -> SymbolError {
        if !self.has_debug_info() {
            return SymbolError::NoDebugInfo {
                file: self.file_name().to_string(),
            };
        }
        SymbolError::Type(format!(
            "`{what}` has no DWARF type (an ELF symbol only): it can only be used as an address"
        ))
    }

    /// Read an unsigned integer of `size` (1..=8) bytes, little-endian.
    pub fn read_uint(&self, mem: &mut dyn Memory, addr: u64, size: u64) -> Result<u64> {
        let n = usize::try_from(size)
            .ok()
            .filter(|n| (1..=8).contains(n))
            .ok_or_else(|| SymbolError::Type(format!("cannot read a {size}-byte integer")))?;
        let mut b = [0u8; 8];
        mem.read(addr, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }
}

fn le_uint(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

fn sign_extend(v: u64, bits: u64) -> i64 {
    if bits == 0 || bits >= 64 {
        return v as i64;
    }
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

impl Decoder<'_> {
    fn bump(&mut self) -> Result<()> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(SymbolError::Limit(format!(
                "more than {MAX_VALUES} values in one load"
            )));
        }
        Ok(())
    }

    fn value(&mut self, ty: TypeId, bytes: &[u8], depth: usize) -> Result<Value> {
        self.bump()?;
        if depth > MAX_DEPTH {
            return Err(SymbolError::Limit(format!(
                "`{}` nests deeper than {MAX_DEPTH} levels",
                self.syms.type_name(ty)
            )));
        }
        let t = self.syms.ty(ty)?;
        let short = |need: u64| {
            SymbolError::Type(format!(
                "{} bytes are too few for `{}` ({need} bytes)",
                bytes.len(),
                self.syms.type_name(ty)
            ))
        };
        match &t.kind {
            TypeKind::Typedef { target: Some(next) }
            | TypeKind::Qualified {
                target: Some(next), ..
            } => self.value(*next, bytes, depth + 1),
            TypeKind::Typedef { target: None }
            | TypeKind::Qualified { target: None, .. }
            | TypeKind::Void
            | TypeKind::Function => Ok(Value::Unit),
            TypeKind::Base(enc) => {
                let size = t.size.unwrap_or(0);
                let b = bytes.get(..size as usize).ok_or_else(|| short(size))?;
                Ok(scalar(*enc, b))
            }
            TypeKind::Pointer { pointee } => {
                let size = t.size.unwrap_or(8);
                let b = bytes.get(..size as usize).ok_or_else(|| short(size))?;
                Ok(Value::Pointer {
                    addr: le_uint(b),
                    pointee: *pointee,
                })
            }
            TypeKind::Enum(e) => {
                let size = self.syms.size_of(ty)?;
                let b = bytes.get(..size as usize).ok_or_else(|| short(size))?;
                let bits = le_uint(b);
                Ok(self.enum_value(ty, e, bits, size))
            }
            TypeKind::Array { element, len } => {
                let len = len.ok_or_else(|| {
                    SymbolError::Type(format!(
                        "`{}` has no length, so it cannot be loaded",
                        self.syms.type_name(ty)
                    ))
                })?;
                if len > MAX_ARRAY_ELEMENTS {
                    return Err(SymbolError::Limit(format!(
                        "refusing to load `{}`: {len} elements (the limit is {MAX_ARRAY_ELEMENTS})",
                        self.syms.type_name(ty)
                    )));
                }
                let esize = self.syms.size_of(*element)?;
                let total = esize.checked_mul(len).ok_or_else(|| short(u64::MAX))?;
                if total > bytes.len() as u64 {
                    return Err(short(total));
                }
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let off = (i * esize) as usize;
                    items.push(self.value(
                        *element,
                        &bytes[off..off + esize as usize],
                        depth + 1,
                    )?);
                }
                Ok(Value::Array(ArrayValue {
                    element_size: esize,
                    items,
                }))
            }
            TypeKind::Struct(s) => {
                let type_name = self.syms.type_name(ty);
                if let Some(vp) = &s.variant_part {
                    return self.rust_enum(type_name, vp, bytes, depth);
                }
                let mut fields = Vec::with_capacity(s.members.len());
                for m in &s.members {
                    let v = self.member(m, bytes, depth, &type_name)?;
                    match (&m.name, v) {
                        // C11 anonymous struct/union: its fields are ours.
                        (None, Value::Struct(inner)) => fields.extend(inner.fields),
                        (name, v) => fields.push((name.clone().unwrap_or_default(), v)),
                    }
                }
                Ok(Value::Struct(StructValue { type_name, fields }))
            }
        }
    }

    fn member(&mut self, m: &Member, bytes: &[u8], depth: usize, owner: &str) -> Result<Value> {
        let name = m.name.as_deref().unwrap_or("<anonymous>");
        if let Some(bf) = m.bits {
            self.bump()?;
            let first = (bf.bit_offset / 8) as usize;
            let last = bf.bit_offset.saturating_add(bf.bit_size).div_ceil(8) as usize;
            let b = bytes
                .get(first..last)
                .filter(|b| b.len() <= 16)
                .ok_or_else(|| {
                    SymbolError::Type(format!("bit-field `{name}` lies outside `{owner}`"))
                })?;
            let mut raw = [0u8; 16];
            raw[..b.len()].copy_from_slice(b);
            let bits =
                (u128::from_le_bytes(raw) >> (bf.bit_offset % 8)) as u64 & mask_bits(bf.bit_size);
            let t = self.syms.resolve(m.ty)?;
            return Ok(match &t.kind {
                TypeKind::Base(Encoding::Signed) => Value::Int(sign_extend(bits, bf.bit_size)),
                TypeKind::Base(Encoding::Bool) => Value::Bool(bits != 0),
                TypeKind::Enum(e) => self.enum_value(t.id, e, bits, t.size.unwrap_or(8)),
                _ => Value::Uint(bits),
            });
        }
        let size = self.syms.size_of(m.ty)?;
        let b = m
            .offset
            .checked_add(size)
            .and_then(|end| bytes.get(m.offset as usize..end as usize))
            .ok_or_else(|| {
                SymbolError::Type(format!(
                    "field `{name}` (offset {}, {size} bytes) lies outside `{owner}`",
                    m.offset
                ))
            })?;
        self.value(m.ty, b, depth + 1)
    }

    fn enum_value(&self, ty: TypeId, e: &crate::types::EnumType, bits: u64, size: u64) -> Value {
        let signed = match e.underlying.map(|u| self.syms.resolve(u)) {
            Some(Ok(u)) => matches!(u.kind, TypeKind::Base(Encoding::Signed)),
            _ => e.enumerators.iter().any(|en| en.value < 0),
        };
        let bits = bits & low_mask(size);
        let discriminant = if signed {
            i128::from(sign_extend(bits, size * 8))
        } else {
            i128::from(bits)
        };
        Value::Enum(EnumValue {
            type_name: self.syms.type_name(ty),
            variant: e.find(bits, size).map(|en| en.name.clone()),
            discriminant,
            payload: None,
        })
    }

    fn rust_enum(
        &mut self,
        type_name: String,
        vp: &crate::types::VariantPart,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Value> {
        let (discriminant, size) = match &vp.discr {
            Some(d) => {
                let size = self.syms.size_of(d.ty)?;
                let b = d
                    .offset
                    .checked_add(size)
                    .and_then(|end| bytes.get(d.offset as usize..end as usize))
                    .filter(|_| size <= 8)
                    .ok_or_else(|| {
                        SymbolError::Type(format!(
                            "the discriminant of `{type_name}` lies outside it"
                        ))
                    })?;
                (le_uint(b), size)
            }
            None => (0, 8),
        };
        let mask = low_mask(size);
        let chosen = if vp.discr.is_none() && vp.variants.len() == 1 {
            vp.variants.first()
        } else {
            vp.variants
                .iter()
                .find(|v| {
                    v.discr_value
                        .is_some_and(|d| (d as u64) & mask == discriminant & mask)
                })
                .or_else(|| vp.variants.iter().find(|v| v.discr_value.is_none()))
        };
        let (variant, payload) = match chosen {
            Some(v) => (
                v.member.name.clone(),
                Some(Box::new(self.member(&v.member, bytes, depth, &type_name)?)),
            ),
            None => (None, None),
        };
        Ok(Value::Enum(EnumValue {
            type_name,
            variant,
            discriminant: i128::from(discriminant),
            payload,
        }))
    }
}

fn mask_bits(bits: u64) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// A base type's value from its bytes.
fn scalar(enc: Encoding, b: &[u8]) -> Value {
    let n = b.len() as u64;
    if n == 0 {
        return Value::Unit;
    }
    if n > 8 {
        return Value::Bytes(b.to_vec());
    }
    let raw = le_uint(b);
    match enc {
        Encoding::Signed => Value::Int(sign_extend(raw, n * 8)),
        Encoding::Unsigned => Value::Uint(raw),
        Encoding::Bool => Value::Bool(raw != 0),
        Encoding::Char => Value::Char(raw as u32),
        Encoding::Float if n == 4 => Value::Float(f64::from(f32::from_bits(raw as u32))),
        Encoding::Float if n == 8 => Value::Float(f64::from_bits(raw)),
        Encoding::Float | Encoding::Other => Value::Bytes(b.to_vec()),
    }
}
