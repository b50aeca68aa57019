//! What a reply packet means: `OK`, `E NN`, the empty "unsupported" reply,
//! `O` console output, and stop replies (`S05`, `T05thread:p01.02;...`,
//! `W00`, `X09`).
//!
//! Pure parsing over decoded payloads; [`crate::client`] decides which
//! reply it was waiting for.

use crate::hex::{self, DecodeHexError};
use crate::thread::ThreadId;

/// `E NN`: the stub's error number (QEMU uses errno values: 0x14 EFAULT
/// for unreadable memory, 0x16 EINVAL for a bad argument).
pub fn error_code(payload: &[u8]) -> Option<u8> {
    match payload {
        [b'E', a, b] => Some(hex::digit(*a).ok()? << 4 | hex::digit(*b).ok()?),
        _ => None,
    }
}

/// `O<hex>` console output (but not `OK`): the decoded text.
pub fn console_output(payload: &[u8]) -> Option<Result<Vec<u8>, DecodeHexError>> {
    let rest = payload.strip_prefix(b"O")?;
    if rest.is_empty() || rest == b"K" {
        return None;
    }
    Some(hex::decode_bytes(rest))
}

/// Why the target stopped, as a stop reply says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReply {
    /// `S sig` or `T sig key:value;...`: stopped with a signal (5 SIGTRAP
    /// after a step or breakpoint, 2 SIGINT after an interrupt).
    Signal {
        signal: u8,
        /// The `thread:` that stopped, when given.
        thread: Option<ThreadId>,
        /// The other `key:value` pairs, as sent (`swbreak:`, `watch:addr`, ...).
        info: Vec<(String, String)>,
    },
    /// `W code`: the process exited (QEMU: the machine shut down).
    Exited(u8),
    /// `X sig`: the process was killed by a signal.
    Terminated(u8),
}

/// Why a payload is not a stop reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StopReplyError {
    #[error("not a stop reply: {0:?}")]
    NotAStopReply(String),
    #[error("bad signal or exit code in stop reply {0:?}")]
    Code(String),
    #[error("bad thread id in stop reply {0:?}")]
    Thread(String),
}

/// Does this payload look like a stop reply (`S`, `T`, `W`, `X` + 2 hex)?
pub fn is_stop_reply(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(b'S' | b'T' | b'W' | b'X'))
        && payload.len() >= 3
        && hex::digit(payload[1]).is_ok()
        && hex::digit(payload[2]).is_ok()
}

impl StopReply {
    /// Parse a stop reply payload.
    pub fn parse(payload: &[u8]) -> Result<StopReply, StopReplyError> {
        let text = || String::from_utf8_lossy(payload).into_owned();
        if !is_stop_reply(payload) {
            return Err(StopReplyError::NotAStopReply(text()));
        }
        let code = hex::decode_u64(&payload[1..3]).map_err(|_| StopReplyError::Code(text()))? as u8;
        let rest = &payload[3..];
        match payload[0] {
            b'W' => return Ok(StopReply::Exited(code)),
            b'X' => return Ok(StopReply::Terminated(code)),
            b'S' if rest.is_empty() => {
                return Ok(StopReply::Signal {
                    signal: code,
                    thread: None,
                    info: Vec::new(),
                })
            }
            b'S' => return Err(StopReplyError::NotAStopReply(text())),
            _ => {}
        }
        let mut thread = None;
        let mut info = Vec::new();
        for pair in rest.split(|&b| b == b';').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.iter().position(|&b| b == b':') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            if k == b"thread" {
                thread = Some(ThreadId::parse(v).map_err(|_| StopReplyError::Thread(text()))?);
            } else {
                info.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
        }
        Ok(StopReply::Signal {
            signal: code,
            thread,
            info,
        })
    }

    /// The thread that stopped, if the reply names one.
    pub fn thread(&self) -> Option<ThreadId> {
        match self {
            StopReply::Signal { thread, .. } => *thread,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_console() {
        assert_eq!(error_code(b"E14"), Some(0x14));
        assert_eq!(error_code(b"E22"), Some(0x22));
        assert_eq!(error_code(b"E1"), None);
        assert_eq!(error_code(b"Exx"), None);
        assert_eq!(error_code(b"OK"), None);
        assert_eq!(console_output(b"OK"), None);
        assert_eq!(console_output(b"O"), None);
        assert_eq!(console_output(b"O0d0a"), Some(Ok(b"\r\n".to_vec())));
        assert!(matches!(console_output(b"O0"), Some(Err(_))));
        assert_eq!(console_output(b"00"), None);
    }

    #[test]
    fn qemu_stop_replies() {
        assert_eq!(
            StopReply::parse(b"T05thread:p01.02;").unwrap(),
            StopReply::Signal {
                signal: 5,
                thread: Some(ThreadId {
                    pid: Some(1),
                    tid: 2
                }),
                info: vec![]
            }
        );
        // What QEMU sends on attach before multiprocess is negotiated.
        let r = StopReply::parse(b"T02thread:01;").unwrap();
        assert_eq!(r.thread(), Some(ThreadId { pid: None, tid: 1 }));
        assert_eq!(
            StopReply::parse(b"S05").unwrap(),
            StopReply::Signal {
                signal: 5,
                thread: None,
                info: vec![]
            }
        );
        assert_eq!(StopReply::parse(b"W00").unwrap(), StopReply::Exited(0));
        assert_eq!(StopReply::parse(b"X09").unwrap(), StopReply::Terminated(9));
        let r = StopReply::parse(b"T05watch:80001000;thread:p1.3;swbreak:;").unwrap();
        let StopReply::Signal { info, thread, .. } = r else {
            panic!()
        };
        assert_eq!(thread, Some(ThreadId::for_hart(2)));
        assert_eq!(
            info,
            [
                ("watch".into(), "80001000".into()),
                ("swbreak".into(), "".into())
            ]
        );
    }

    #[test]
    fn not_stop_replies() {
        assert!(StopReply::parse(b"OK").is_err());
        assert!(StopReply::parse(b"").is_err());
        assert!(StopReply::parse(b"T5").is_err());
        assert!(StopReply::parse(b"Tzz").is_err());
        assert!(StopReply::parse(b"S05junk").is_err());
        assert!(matches!(
            StopReply::parse(b"T05thread:zz;"),
            Err(StopReplyError::Thread(_))
        ));
        // A `g` reply of hex digits is not mistaken for one.
        assert!(!is_stop_reply(b"0000000000000000"));
        assert!(is_stop_reply(b"T02thread:01;"));
    }
}
