//! Hex digits as the protocol writes them: register and memory contents,
//! addresses, `qRcmd` text and `O` console output.
//!
//! Every decoder returns a typed [`DecodeHexError`] instead of panicking,
//! so a stub that answers garbage becomes an error with context upstream.

use std::fmt::Write as _;

/// Why a hex string did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeHexError {
    /// There were no digits at all.
    #[error("empty hex string")]
    Empty,
    /// A byte that is not `0-9a-fA-F`.
    #[error("not a hex digit: {0:#04x}")]
    NotHex(u8),
    /// A byte string with an odd number of digits.
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    /// The number does not fit in 64 bits.
    #[error("hex number wider than 64 bits")]
    Overflow,
}

/// The value of one hex digit.
pub fn digit(b: u8) -> Result<u8, DecodeHexError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(DecodeHexError::NotHex(b)),
    }
}

/// A big-endian hex number (`80000000`, `1c2`), as in addresses, lengths,
/// thread ids and `PacketSize`.
pub fn decode_u64(s: &[u8]) -> Result<u64, DecodeHexError> {
    if s.is_empty() {
        return Err(DecodeHexError::Empty);
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let d = u64::from(digit(b)?);
        acc.checked_mul(16)
            .and_then(|v| v.checked_add(d))
            .ok_or(DecodeHexError::Overflow)
    })
}

/// Hex byte pairs (`0a1b` → `[0x0a, 0x1b]`), as in `m`, `g`, `p` replies
/// and `O` packets. An empty string decodes to no bytes.
pub fn decode_bytes(s: &[u8]) -> Result<Vec<u8>, DecodeHexError> {
    if s.len() % 2 != 0 {
        return Err(DecodeHexError::OddLength(s.len()));
    }
    s.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Decode hex byte pairs into `out`, which must be exactly half as long.
pub fn decode_into(s: &[u8], out: &mut [u8]) -> Result<(), DecodeHexError> {
    if s.len() != out.len() * 2 {
        return Err(DecodeHexError::OddLength(s.len()));
    }
    for (o, p) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(p[0])? << 4 | digit(p[1])?;
    }
    Ok(())
}

/// Bytes as lowercase hex pairs (`qRcmd` arguments).
pub fn encode_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(decode_u64(b"80000000"), Ok(0x8000_0000));
        assert_eq!(decode_u64(b"1C2"), Ok(0x1c2));
        assert_eq!(decode_u64(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(
            decode_u64(b"10000000000000000"),
            Err(DecodeHexError::Overflow)
        );
        assert_eq!(decode_u64(b""), Err(DecodeHexError::Empty));
        assert_eq!(decode_u64(b"12g"), Err(DecodeHexError::NotHex(b'g')));
        assert_eq!(decode_u64(b"-1"), Err(DecodeHexError::NotHex(b'-')));
    }

    #[test]
    fn byte_pairs() {
        assert_eq!(decode_bytes(b"0a1BfF"), Ok(vec![0x0a, 0x1b, 0xff]));
        assert_eq!(decode_bytes(b""), Ok(vec![]));
        assert_eq!(decode_bytes(b"abc"), Err(DecodeHexError::OddLength(3)));
        assert_eq!(decode_bytes(b"zz"), Err(DecodeHexError::NotHex(b'z')));
        assert_eq!(
            decode_bytes("é".as_bytes()),
            Err(DecodeHexError::NotHex(0xc3))
        );
        let mut out = [0u8; 2];
        assert_eq!(decode_into(b"beef", &mut out), Ok(()));
        assert_eq!(out, [0xbe, 0xef]);
        assert!(decode_into(b"bee", &mut out).is_err());
        assert_eq!(encode_bytes(b"info mem"), "696e666f206d656d");
    }
}
