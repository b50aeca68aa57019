//! The generic value a kernel object loads into, and how callers read it.
//!
//! In the spirit of Humility's `Value`: [`crate::Symbols::load`] turns a
//! type and bytes into a tree of [`Value`]s, and a view reads it by name —
//! `p.field("pid")?.as_i64()?`, `procs.index(3)?`, `p.field("name")?.as_cstr()?`
//! — so it never depends on offsets, only on names that exist in both the
//! Rust kernel and C xv6. Lenient: fields the view does not ask for are
//! ignored, an enum value no enumerator names still loads
//! ([`EnumValue::variant`] is `None`), and pointers are plain addresses
//! the caller may choose to follow.

use std::fmt;

use crate::error::SymbolError;
use crate::types::TypeId;

/// A struct or union's fields, in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct StructValue {
    /// Its type's name (`struct proc`, `Proc`).
    pub type_name: String,
    pub fields: Vec<(String, Value)>,
}

/// An enum: a C enum, a fieldless Rust enum, or a Rust enum with data.
#[derive(Clone, Debug, PartialEq)]
pub struct EnumValue {
    /// Its type's name (`enum procstate`, `ProcState`).
    pub type_name: String,
    /// The enumerator or variant name; `None` when no enumerator has this
    /// value (a kernel newer than the tool, or corrupt memory).
    pub variant: Option<String>,
    /// The stored discriminant (for niche-encoded Rust enums: the niche).
    pub discriminant: i128,
    /// A Rust variant's fields.
    pub payload: Option<Box<Value>>,
}

/// An array's elements.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayValue {
    /// Size of one element in bytes.
    pub element_size: u64,
    pub items: Vec<Value>,
}

/// A loaded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Struct(StructValue),
    Enum(EnumValue),
    Array(ArrayValue),
    /// A pointer or reference: the address it holds and the type it points
    /// to (`None` for `void *`). Never followed implicitly.
    Pointer {
        addr: u64,
        pointee: Option<TypeId>,
    },
    Int(i64),
    Uint(u64),
    Bool(bool),
    /// A character type's code (`char` in C, `char` in Rust).
    Char(u32),
    Float(f64),
    /// Bytes this layer does not interpret (128-bit integers, unknown
    /// encodings).
    Bytes(Vec<u8>),
    /// A zero-sized value (`()`, an empty struct's nothing).
    Unit,
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Struct(_) => "a struct",
        Value::Enum(_) => "an enum",
        Value::Array(_) => "an array",
        Value::Pointer { .. } => "a pointer",
        Value::Int(_) | Value::Uint(_) => "an integer",
        Value::Bool(_) => "a bool",
        Value::Char(_) => "a char",
        Value::Float(_) => "a float",
        Value::Bytes(_) => "raw bytes",
        Value::Unit => "a unit value",
    }
}

impl Value {
    /// A field by name. Works on structs and unions, and on a Rust enum's
    /// payload (`wait.field("pid")` on `Wait::Child { pid, .. }`).
    pub fn field(&self, name: &str) -> Result<&Value, SymbolError> {
        match self {
            Value::Struct(s) => s
                .fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| SymbolError::NoField {
                    field: name.to_string(),
                    ty: s.type_name.clone(),
                    fields: if s.fields.is_empty() {
                        "none".into()
                    } else {
                        s.fields
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                }),
            Value::Enum(EnumValue {
                payload: Some(p), ..
            }) => p.field(name),
            other => Err(SymbolError::Type(format!(
                "no field `{name}`: the value is {}",
                kind_name(other)
            ))),
        }
    }

    /// The fields of a struct, in order (empty for anything else).
    pub fn fields(&self) -> &[(String, Value)] {
        match self {
            Value::Struct(s) => &s.fields,
            _ => &[],
        }
    }

    /// An element of an array.
    pub fn index(&self, i: usize) -> Result<&Value, SymbolError> {
        match self {
            Value::Array(a) => a.items.get(i).ok_or(SymbolError::OutOfRange {
                index: i as i64,
                what: "array".into(),
                len: a.items.len() as u64,
            }),
            other => Err(SymbolError::Type(format!(
                "cannot index {}",
                kind_name(other)
            ))),
        }
    }

    /// The elements of an array (empty for anything else).
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(a) => &a.items,
            _ => &[],
        }
    }

    /// As a signed integer: integers, bools, chars, enum discriminants,
    /// pointer addresses. Unsigned values above `i64::MAX` are an error.
    pub fn as_i64(&self) -> Result<i64, SymbolError> {
        match *self {
            Value::Int(i) => Ok(i),
            Value::Enum(ref e) => i64::try_from(e.discriminant)
                .map_err(|_| SymbolError::Type(format!("{} does not fit in i64", e.discriminant))),
            _ => {
                let u = self.as_u64()?;
                i64::try_from(u)
                    .map_err(|_| SymbolError::Type(format!("{u:#x} does not fit in i64")))
            }
        }
    }

    /// As an unsigned integer: integers (negative ones are an error),
    /// bools, chars, enum discriminants, pointer addresses.
    pub fn as_u64(&self) -> Result<u64, SymbolError> {
        match *self {
            Value::Uint(u) => Ok(u),
            Value::Int(i) => {
                u64::try_from(i).map_err(|_| SymbolError::Type(format!("{i} is negative")))
            }
            Value::Bool(b) => Ok(u64::from(b)),
            Value::Char(c) => Ok(u64::from(c)),
            Value::Pointer { addr, .. } => Ok(addr),
            Value::Enum(ref e) => u64::try_from(e.discriminant)
                .map_err(|_| SymbolError::Type(format!("{} is negative", e.discriminant))),
            ref other => Err(SymbolError::Type(format!(
                "expected a number, the value is {}",
                kind_name(other)
            ))),
        }
    }

    /// As a bool: bools, and integers (non-zero is true).
    pub fn as_bool(&self) -> Result<bool, SymbolError> {
        match *self {
            Value::Bool(b) => Ok(b),
            Value::Int(i) => Ok(i != 0),
            Value::Uint(u) => Ok(u != 0),
            ref other => Err(SymbolError::Type(format!(
                "expected a bool, the value is {}",
                kind_name(other)
            ))),
        }
    }

    /// The address a pointer holds (also accepts plain integers, as a
    /// `uint64 kstack` holds an address too).
    pub fn as_addr(&self) -> Result<u64, SymbolError> {
        self.as_u64()
    }

    /// The enumerator or variant name of an enum value, if it has one.
    pub fn variant(&self) -> Option<&str> {
        match self {
            Value::Enum(e) => e.variant.as_deref(),
            _ => None,
        }
    }

    /// The bytes of an array of one-byte elements (`char name[16]`,
    /// `[u8; 16]`) or of raw bytes.
    pub fn as_bytes(&self) -> Result<Vec<u8>, SymbolError> {
        match self {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Array(a) if a.element_size == 1 => a
                .items
                .iter()
                .map(|v| match *v {
                    Value::Char(c) => u8::try_from(c).ok(),
                    Value::Uint(u) => u8::try_from(u).ok(),
                    Value::Int(i) => Some(i as u8),
                    Value::Bool(b) => Some(u8::from(b)),
                    _ => None,
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| SymbolError::Type("array elements are not bytes".into())),
            other => Err(SymbolError::Type(format!(
                "expected bytes, the value is {}",
                kind_name(other)
            ))),
        }
    }

    /// A NUL-terminated string in a byte array (`p->name`): the bytes up
    /// to the first NUL (or all of them), invalid UTF-8 replaced.
    pub fn as_cstr(&self) -> Result<String, SymbolError> {
        let bytes = self.as_bytes()?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }
}

/// One line, C-like: `{pid = 3, state = RUNNING, name = "init", parent = 0x80008e98}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Rust tuple structs and tuple variants (fields `__0`, `__1`)
            // print as tuples: `Some(0x80001068)`, `Channel(2748)`.
            Value::Struct(s)
                if !s.fields.is_empty() && s.fields.iter().all(|(n, _)| is_tuple_field(n)) =>
            {
                f.write_str("(")?;
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Value::Struct(s) => {
                f.write_str("{")?;
                for (i, (n, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n} = {v}")?;
                }
                f.write_str("}")
            }
            Value::Enum(e) => {
                match &e.variant {
                    Some(v) => f.write_str(v)?,
                    None => write!(f, "<unknown {} {}>", e.type_name, e.discriminant)?,
                }
                match &e.payload {
                    Some(p)
                        if p.fields().iter().all(|(n, _)| is_tuple_field(n))
                            && !p.fields().is_empty() =>
                    {
                        write!(f, "{p}")
                    }
                    Some(p) if !p.fields().is_empty() => write!(f, " {p}"),
                    _ => Ok(()),
                }
            }
            Value::Array(a) => {
                if a.element_size == 1 && !a.items.is_empty() {
                    if let Ok(bytes) = self.as_bytes() {
                        if bytes.iter().all(|&b| b == 0 || (0x20..0x7f).contains(&b)) {
                            return write!(f, "{:?}", self.as_cstr().unwrap_or_default());
                        }
                    }
                }
                f.write_str("[")?;
                for (i, v) in a.items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Pointer { addr, .. } => write!(f, "{addr:#x}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Uint(u) => write!(f, "{u}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Char(c) => match char::from_u32(*c) {
                Some(ch) if !ch.is_control() => write!(f, "{ch:?}"),
                _ => write!(f, "{c}"),
            },
            Value::Float(x) => write!(f, "{x}"),
            Value::Bytes(b) => {
                f.write_str("0x")?;
                for byte in b.iter().rev() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Value::Unit => f.write_str("()"),
        }
    }
}

/// `__0`, `__1`, ...: how rustc names tuple fields in DWARF.
fn is_tuple_field(name: &str) -> bool {
    name.strip_prefix("__")
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()))
}
