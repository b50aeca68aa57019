//! The two encodings inside a packet's payload: `}` escapes and `*`
//! run-length encoding.
//!
//! Outgoing payloads are escaped by [`escape`]; incoming ones are restored
//! by [`decode`], which undoes both in one pass exactly as gdb's
//! `read_frame` does. The frame layer ([`crate::frame`]) calls these after
//! the checksum, which covers the encoded bytes, has been verified.

/// The escape byte: the next byte is the original XOR 0x20.
pub const ESCAPE: u8 = b'}';
/// The run-length marker: the previous byte repeats `count - 29` more times.
pub const RUN: u8 = b'*';

/// Why an incoming payload could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A `*` with no byte before it to repeat.
    #[error("run-length marker '*' with nothing before it to repeat")]
    RunWithoutByte,
    /// A `*` as the last byte: the count is missing.
    #[error("run-length marker '*' without a count")]
    RunWithoutCount,
    /// The count byte gives no repetition (below 30, the lowest gdb takes).
    #[error("invalid run-length count byte {0:#04x}")]
    RunCount(u8),
    /// A `}` as the last byte: the escaped byte is missing.
    #[error("escape '}}' at the end of the packet")]
    EscapeAtEnd,
}

/// Does `b` need escaping in an outgoing payload?
fn needs_escape(b: u8) -> bool {
    matches!(b, b'$' | b'#' | ESCAPE | RUN)
}

/// Escape `$`, `#`, `}` and `*` as `}` followed by the byte XOR 0x20.
pub fn escape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    for &b in payload {
        if needs_escape(b) {
            out.push(ESCAPE);
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    out
}

/// Undo escapes and run-length encoding.
///
/// `X*c` stands for `X` followed by `c - 29` more copies of `X` (so `0* `
/// is `0000`), where `X` is the previous *decoded* byte: it may itself come
/// from an escape or from an earlier run. The count byte is taken
/// literally, never as an escape. gdb accepts any count byte from 30 up;
/// so do we.
pub fn decode(raw: &[u8]) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            ESCAPE => out.push(bytes.next().ok_or(PayloadError::EscapeAtEnd)? ^ 0x20),
            RUN => {
                let prev = *out.last().ok_or(PayloadError::RunWithoutByte)?;
                let count = bytes.next().ok_or(PayloadError::RunWithoutCount)?;
                if count < 30 {
                    return Err(PayloadError::RunCount(count));
                }
                let repeat = usize::from(count - 29);
                out.resize(out.len() + repeat, prev);
            }
            _ => out.push(b),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_byte_is_escaped() {
        assert_eq!(escape(b"$"), b"}\x04");
        assert_eq!(escape(b"#"), b"}\x03");
        assert_eq!(escape(b"}"), b"}]");
        assert_eq!(escape(b"*"), b"}\x0a");
        assert_eq!(escape(b"m80000000,10"), b"m80000000,10");
        assert_eq!(escape(b"a$b#c}d*e"), b"a}\x04b}\x03c}]d}\x0ae");
    }

    #[test]
    fn escapes_round_trip_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let enc = escape(&all);
        assert!(!enc.contains(&b'$') && !enc.contains(&b'#') && !enc.contains(&b'*'));
        assert_eq!(decode(&enc).unwrap(), all);
    }

    #[test]
    fn escaped_bytes_decode() {
        assert_eq!(decode(b"}\x04}\x03}]}\x0a").unwrap(), b"$#}*");
        // Any byte may be escaped, not only the four that must be.
        assert_eq!(decode(b"}\x10").unwrap(), [0x30]);
        assert_eq!(decode(b"}"), Err(PayloadError::EscapeAtEnd));
        assert_eq!(decode(b"ab}"), Err(PayloadError::EscapeAtEnd));
    }

    #[test]
    fn run_length() {
        // ' ' is 32: three more copies.
        assert_eq!(decode(b"0* ").unwrap(), b"0000");
        // gdb's example from the manual: "0* " is "0000".
        assert_eq!(decode(b"a0* b").unwrap(), b"a0000b");
        // '"' (34) is five more; '~' (126) is 97 more.
        assert_eq!(decode(b"f*\"").unwrap(), b"ffffff");
        assert_eq!(decode(b"0*~").unwrap(), vec![b'0'; 98]);
        // The smallest count gdb accepts (30) repeats once.
        assert_eq!(decode(b"x*\x1e").unwrap(), b"xx");
        // Counts above 126 are outside the spec but gdb takes them.
        assert_eq!(decode(b"y*\xff").unwrap(), vec![b'y'; 227]);
    }

    #[test]
    fn run_length_edge_cases() {
        assert_eq!(decode(b"*"), Err(PayloadError::RunWithoutByte));
        assert_eq!(decode(b"0*"), Err(PayloadError::RunWithoutCount));
        assert_eq!(decode(b"0*\x1d"), Err(PayloadError::RunCount(0x1d)));
        assert_eq!(decode(b"0*\x00"), Err(PayloadError::RunCount(0)));
        // A run repeats the byte an escape produced...
        assert_eq!(decode(b"}\x04* ").unwrap(), b"$$$$");
        // ...and a run may follow a run (the last decoded byte repeats).
        assert_eq!(decode(b"0* * ").unwrap(), b"0000000");
        // The count byte is literal: '}' (125) as a count is 96 repeats.
        assert_eq!(decode(b"z*}").unwrap(), vec![b'z'; 97]);
        // '*' right after a count repeats the last byte again.
        assert_eq!(decode(b"1*!*!2").unwrap(), b"1111111112");
    }
}
