//! Thread ids: QEMU's gdb stub shows each hart as a thread.
//!
//! With the multiprocess extension (which we always negotiate) QEMU writes
//! them `p01.02`: process 1, thread 2, where thread N is the hart with
//! `cpu_index` N-1. Before negotiation QEMU writes the bare thread (`01`).

use std::fmt;

use crate::hex::{self, DecodeHexError};

/// A thread (hart) id, as the stub names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId {
    /// The process, when the id had one (`p1.2` → 1).
    pub pid: Option<u64>,
    /// The thread within the process.
    pub tid: u64,
}

impl ThreadId {
    /// QEMU's thread for hart `hart` (counted from 0): `p1.(hart+1)`.
    pub fn for_hart(hart: usize) -> ThreadId {
        ThreadId {
            pid: Some(1),
            tid: hart as u64 + 1,
        }
    }

    /// The hart this thread is, if it follows QEMU's numbering.
    pub fn hart(self) -> Option<usize> {
        usize::try_from(self.tid.checked_sub(1)?).ok()
    }

    /// Parse `p1.2`, `p01.02` or `2` (all hex).
    pub fn parse(s: &[u8]) -> Result<ThreadId, DecodeHexError> {
        match s.strip_prefix(b"p") {
            Some(rest) => {
                let dot = rest.iter().position(|&b| b == b'.');
                match dot {
                    Some(i) => Ok(ThreadId {
                        pid: Some(hex::decode_u64(&rest[..i])?),
                        tid: hex::decode_u64(&rest[i + 1..])?,
                    }),
                    None => Ok(ThreadId {
                        pid: Some(hex::decode_u64(rest)?),
                        tid: 0,
                    }),
                }
            }
            None => Ok(ThreadId {
                pid: None,
                tid: hex::decode_u64(s)?,
            }),
        }
    }
}

impl fmt::Display for ThreadId {
    /// The form packets take (`p1.2`, or `2` without a process).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(p) => write!(f, "p{p:x}.{:x}", self.tid),
            None => write!(f, "{:x}", self.tid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_forms() {
        let t = ThreadId::parse(b"p01.02").unwrap();
        assert_eq!(
            t,
            ThreadId {
                pid: Some(1),
                tid: 2
            }
        );
        assert_eq!(t.to_string(), "p1.2");
        assert_eq!(t.hart(), Some(1));
        assert_eq!(
            ThreadId::parse(b"01").unwrap(),
            ThreadId { pid: None, tid: 1 }
        );
        assert_eq!(ThreadId::parse(b"p1.a").unwrap().tid, 10);
        assert_eq!(ThreadId::for_hart(2).to_string(), "p1.3");
        assert!(ThreadId::parse(b"p1.").is_err());
        assert!(ThreadId::parse(b"px.1").is_err());
        assert!(ThreadId::parse(b"").is_err());
        assert_eq!(ThreadId { pid: None, tid: 0 }.hart(), None);
    }
}
