//! Packet framing: `$payload#cs`, checksums and `+`/`-` acknowledgements.
//!
//! [`encode`] frames an outgoing command. [`Decoder`] is a byte-at-a-time
//! state machine over whatever the socket delivers: packets split across
//! reads, several packets in one read, acknowledgements, and garbage between
//! packets all come out as a sequence of [`Event`]s. It does no I/O; the
//! client ([`crate::client`]) feeds it and decides what an event means.

use std::collections::VecDeque;

use crate::escape::{self, PayloadError};
use crate::hex;

/// The checksum: the sum of the payload bytes (as sent, escaped) modulo 256.
pub fn checksum(raw: &[u8]) -> u8 {
    raw.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

/// Frame a payload: `$` + escaped payload + `#` + two hex digits.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let body = escape::escape(payload);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(&body);
    out.push(b'#');
    out.extend_from_slice(format!("{:02x}", checksum(&body)).as_bytes());
    out
}

/// Why a received packet was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The checksum digits do not match the payload.
    #[error("checksum mismatch: packet says {sent:#04x}, payload sums to {computed:#04x}")]
    Checksum { sent: u8, computed: u8 },
    /// The two bytes after `#` are not hex digits.
    #[error("checksum digits {0:?} are not hex")]
    ChecksumDigits([u8; 2]),
    /// A `$` arrived before the previous packet's `#`: that packet was cut off.
    #[error("packet cut off by the start of another ({0} bytes lost)")]
    Truncated(usize),
    /// The payload grew past the limit without a `#`.
    #[error("packet longer than {0} bytes")]
    TooLong(usize),
    /// Escapes or run-length encoding inside the payload are malformed.
    #[error("{0}")]
    Payload(PayloadError),
}

/// What the byte stream said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `+`: the peer received our last packet.
    Ack,
    /// `-`: the peer wants our last packet again.
    Nack,
    /// A complete packet with a good checksum, escapes and runs decoded.
    Packet(Vec<u8>),
    /// A packet that arrived damaged.
    Bad(FrameError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between packets: expecting `$`, `+` or `-`.
    Idle,
    /// After `$`, collecting the payload until `#`.
    Payload,
    /// After `#`, expecting the first checksum digit.
    Sum1,
    /// Expecting the second checksum digit (the first is stored).
    Sum2(u8),
}

/// How many bytes of stray data [`Decoder::garbage`] keeps for error messages.
const GARBAGE_PREVIEW: usize = 64;

/// The receiving state machine. Feed it bytes; take [`Event`]s out.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    raw: Vec<u8>,
    max_len: usize,
    events: VecDeque<Event>,
    garbage_count: usize,
    garbage: Vec<u8>,
}

impl Decoder {
    /// A decoder that rejects payloads longer than `max_len` raw bytes.
    pub fn new(max_len: usize) -> Self {
        Decoder {
            state: State::Idle,
            raw: Vec::new(),
            max_len,
            events: VecDeque::new(),
            garbage_count: 0,
            garbage: Vec::new(),
        }
    }

    /// Feed received bytes; complete events queue up for [`next_event`](Self::next_event).
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(e) = self.push(b) {
                self.events.push_back(e);
            }
        }
    }

    /// The oldest event not yet taken.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether a packet has started and not yet ended (a peer that closes
    /// now has cut it off).
    pub fn in_packet(&self) -> bool {
        self.state != State::Idle
    }

    /// How many stray bytes (outside any packet, not `+`/`-`) were seen.
    pub fn garbage_count(&self) -> usize {
        self.garbage_count
    }

    /// The first stray bytes seen, for an error message.
    pub fn garbage(&self) -> &[u8] {
        &self.garbage
    }

    /// Forget the stray bytes counted so far.
    pub fn clear_garbage(&mut self) {
        self.garbage_count = 0;
        self.garbage.clear();
    }

    /// Advance by one byte.
    pub fn push(&mut self, b: u8) -> Option<Event> {
        match self.state {
            State::Idle => match b {
                b'$' => {
                    self.raw.clear();
                    self.state = State::Payload;
                    None
                }
                b'+' | b'-' => {
                    // Amid stray bytes, keep these in the preview too.
                    if self.garbage_count > 0 && self.garbage.len() < GARBAGE_PREVIEW {
                        self.garbage.push(b);
                    }
                    Some(if b == b'+' { Event::Ack } else { Event::Nack })
                }
                _ => {
                    self.garbage_count += 1;
                    if self.garbage.len() < GARBAGE_PREVIEW {
                        self.garbage.push(b);
                    }
                    None
                }
            },
            State::Payload => match b {
                b'#' => {
                    self.state = State::Sum1;
                    None
                }
                b'$' => {
                    // gdb does the same: a new start abandons the old packet.
                    let lost = self.raw.len();
                    self.raw.clear();
                    Some(Event::Bad(FrameError::Truncated(lost)))
                }
                _ if self.raw.len() >= self.max_len => {
                    self.raw.clear();
                    self.state = State::Idle;
                    Some(Event::Bad(FrameError::TooLong(self.max_len)))
                }
                _ => {
                    self.raw.push(b);
                    None
                }
            },
            State::Sum1 => {
                self.state = State::Sum2(b);
                None
            }
            State::Sum2(hi) => {
                self.state = State::Idle;
                let raw = std::mem::take(&mut self.raw);
                let sent = match (hex::digit(hi), hex::digit(b)) {
                    (Ok(h), Ok(l)) => h << 4 | l,
                    _ => return Some(Event::Bad(FrameError::ChecksumDigits([hi, b]))),
                };
                let computed = checksum(&raw);
                if sent != computed {
                    return Some(Event::Bad(FrameError::Checksum { sent, computed }));
                }
                Some(match escape::decode(&raw) {
                    Ok(p) => Event::Packet(p),
                    Err(e) => Event::Bad(FrameError::Payload(e)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &[u8]) -> Vec<Event> {
        let mut d = Decoder::new(4096);
        d.feed(bytes);
        std::iter::from_fn(|| d.next_event()).collect()
    }

    fn pkt(p: &[u8]) -> Event {
        Event::Packet(p.to_vec())
    }

    #[test]
    fn encodes_qemu_packets_with_their_checksums() {
        // Checksums as QEMU 7.2 accepted them in the traces in docs/protocol.md.
        assert_eq!(encode(b"g"), b"$g#67");
        assert_eq!(encode(b"m80000000,10"), b"$m80000000,10#82");
        assert_eq!(encode(b"qfThreadInfo"), b"$qfThreadInfo#bb");
        assert_eq!(encode(b""), b"$#00");
        // Special bytes are escaped and the checksum covers the escaped form.
        assert_eq!(encode(b"X*"), b"$X}\x0a#df");
    }

    #[test]
    fn decodes_qemu_replies() {
        assert_eq!(events(b"+$OK#9a"), [Event::Ack, pkt(b"OK")]);
        assert_eq!(
            events(b"$T05thread:p01.02;#07"),
            [pkt(b"T05thread:p01.02;")]
        );
        assert_eq!(events(b"+$#00"), [Event::Ack, pkt(b"")]);
        assert_eq!(events(b"-"), [Event::Nack]);
        // Upper-case checksum digits are fine.
        assert_eq!(events(b"$E14#AA"), [pkt(b"E14")]);
    }

    #[test]
    fn checksum_failure_is_reported_not_delivered() {
        assert_eq!(
            events(b"$OK#9b"),
            [Event::Bad(FrameError::Checksum {
                sent: 0x9b,
                computed: 0x9a
            })]
        );
        assert_eq!(
            events(b"$OK#zz$OK#9a"),
            [Event::Bad(FrameError::ChecksumDigits(*b"zz")), pkt(b"OK")]
        );
    }

    #[test]
    fn a_packet_split_at_every_byte_boundary_decodes_the_same() {
        let wire = b"+$O4e6f0d0a#a9$OK#9a";
        for cut in 0..=wire.len() {
            let mut d = Decoder::new(4096);
            d.feed(&wire[..cut]);
            d.feed(&wire[cut..]);
            let got: Vec<Event> = std::iter::from_fn(|| d.next_event()).collect();
            assert_eq!(
                got,
                [Event::Ack, pkt(b"O4e6f0d0a"), pkt(b"OK")],
                "cut at {cut}"
            );
        }
        // And one byte per read.
        let mut d = Decoder::new(4096);
        for &b in wire.iter() {
            d.feed(&[b]);
        }
        assert_eq!(d.next_event(), Some(Event::Ack));
        assert!(!d.in_packet());
    }

    #[test]
    fn garbage_between_packets_is_skipped_and_counted() {
        let mut d = Decoder::new(4096);
        d.feed(b"hello\r\n$OK#9a\x00\xff+junk$#00");
        let got: Vec<Event> = std::iter::from_fn(|| d.next_event()).collect();
        assert_eq!(got, [pkt(b"OK"), Event::Ack, pkt(b"")]);
        assert_eq!(d.garbage_count(), 7 + 2 + 4);
        assert!(d.garbage().starts_with(b"hello"));
        d.clear_garbage();
        assert_eq!(d.garbage_count(), 0);
    }

    #[test]
    fn truncated_packets() {
        // A new '$' before '#': the first packet is lost, the second is fine.
        assert_eq!(
            events(b"$m0000$OK#9a"),
            [Event::Bad(FrameError::Truncated(5)), pkt(b"OK")]
        );
        // A packet that stops mid-way leaves the decoder inside it.
        let mut d = Decoder::new(4096);
        d.feed(b"$0000000");
        assert_eq!(d.next_event(), None);
        assert!(d.in_packet());
        d.feed(b"#");
        assert!(d.in_packet());
        d.feed(b"8");
        assert!(d.in_packet());
        // Missing checksum digit, then a new packet: the '$' is taken as
        // the second digit, so the damage is reported and the decoder recovers.
        let mut d = Decoder::new(4096);
        d.feed(b"$OK#9$OK#9a$OK#9a");
        let got: Vec<Event> = std::iter::from_fn(|| d.next_event()).collect();
        assert_eq!(got[0], Event::Bad(FrameError::ChecksumDigits(*b"9$")));
        assert_eq!(got.last(), Some(&pkt(b"OK")));
    }

    #[test]
    fn oversized_packets_are_bounded() {
        let mut d = Decoder::new(8);
        d.feed(b"$0123456789abcdef#00$OK#9a");
        assert_eq!(d.next_event(), Some(Event::Bad(FrameError::TooLong(8))));
        // The rest of the long packet is garbage; the next one decodes.
        let rest: Vec<Event> = std::iter::from_fn(|| d.next_event()).collect();
        assert_eq!(rest.last(), Some(&pkt(b"OK")));
    }

    #[test]
    fn run_length_and_escapes_inside_a_frame() {
        // The checksum is over the encoded bytes; the payload comes out expanded.
        let raw = b"0* 1}]";
        let wire = [
            b"$".as_slice(),
            raw,
            format!("#{:02x}", checksum(raw)).as_bytes(),
        ]
        .concat();
        assert_eq!(events(&wire), [pkt(b"00001}")]);
        let bad = [
            b"$*0#".as_slice(),
            format!("{:02x}", checksum(b"*0")).as_bytes(),
        ]
        .concat();
        assert_eq!(
            events(&bad),
            [Event::Bad(FrameError::Payload(
                PayloadError::RunWithoutByte
            ))]
        );
    }
}
