//! How kinspect's `--json` writes 64-bit values: addresses, PTEs, satp and
//! other CSRs, register values and sizes as `"0x…"` strings.
//!
//! JSON readers hold numbers as IEEE doubles (jq 1.6, every JavaScript
//! reader): above 2^53 they round, so satp `0x8000000000087fff` would come
//! back as `9223372036855333000`. Every field that can hold such a value is
//! a lower-case hex string instead; only values that always fit in 53 bits
//! (pids, counts, indices, levels, harts) stay numbers. The types derive
//! `Serialize` and name one of these helpers on each such field:
//!
//! ```
//! #[derive(serde::Serialize)]
//! struct Example {
//!     #[serde(serialize_with = "kinspect_sv39::json::hex")]
//!     va: u64,
//!     #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
//!     pa: Option<u64>,
//!     level: usize,
//! }
//! let s = serde_json::to_string(&Example { va: 0x3ffffff000, pa: None, level: 0 }).unwrap();
//! assert_eq!(s, r#"{"va":"0x3ffffff000","pa":null,"level":0}"#);
//! ```
//!
//! The schema is in docs/json.md.

use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

/// A 64-bit value that serializes as `"0x…"` (for tuples and collections,
/// where a field attribute cannot reach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:#x}", self.0))
    }
}

/// `serialize_with` for a `u64`: `"0x…"`.
pub fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    Hex(*v).serialize(s)
}

/// `serialize_with` for an `Option<u64>`: `"0x…"` or `null`.
pub fn hex_opt<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    v.map(Hex).serialize(s)
}

/// `serialize_with` for a list of `u64`s: `["0x…", …]`.
pub fn hex_seq<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for x in v {
        seq.serialize_element(&Hex(*x))?;
    }
    seq.end()
}

/// `serialize_with` for `(name, value)` pairs: `[["sp", "0x…"], …]`.
pub fn named_hex_seq<S: Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (name, x) in v {
        seq.serialize_element(&(name, Hex(*x)))?;
    }
    seq.end()
}

/// `serialize_with` for an optional `(value, name)` pair: `["0x…", "name"]` or `null`.
pub fn hex_named_opt<S: Serializer>(v: &Option<(u64, String)>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some((x, name)) => {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&Hex(*x))?;
            t.serialize_element(name)?;
            t.end()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_above_2_pow_53_keep_every_digit() {
        let s = serde_json::to_string(&Hex(0x8000_0000_0008_7fff)).unwrap();
        assert_eq!(s, r#""0x8000000000087fff""#);
        assert_eq!(serde_json::to_string(&Hex(0)).unwrap(), r#""0x0""#);
        assert_eq!(
            serde_json::to_string(&Hex(u64::MAX)).unwrap(),
            r#""0xffffffffffffffff""#
        );
    }
}
