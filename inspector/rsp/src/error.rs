//! The one error type of the client: every variant renders as one line
//! that says what happened and, where there is one, what to do.

use std::time::Duration;

use crate::frame::FrameError;
use crate::hex::DecodeHexError;
use crate::target_xml::XmlError;

/// A failed exchange with the gdb stub.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not `HOST:PORT` or `:PORT`; `why` says which part.
    #[error("bad gdb stub address {addr:?}: {why}")]
    Address { addr: String, why: String },
    /// Nothing accepted the connection.
    #[error(
        "cannot reach QEMU's gdb stub at {addr}: {why} — is QEMU running with -gdb tcp::{port}?"
    )]
    Unreachable {
        addr: String,
        port: u16,
        why: String,
    },
    /// The peer closed the connection.
    #[error("QEMU's gdb stub at {addr} closed the connection {during} (did QEMU exit?)")]
    Disconnected { addr: String, during: String },
    /// No answer in time.
    #[error("QEMU's gdb stub at {addr} did not answer {what} within {after:?}{hint}")]
    Timeout {
        addr: String,
        what: String,
        after: Duration,
        hint: String,
    },
    /// An earlier request timed out, so its reply may still arrive and be
    /// taken for the reply to the next one: the connection is not used
    /// for requests again (reconnect).
    #[error("the connection to QEMU's gdb stub at {addr} is out of step: the reply to {what} did not come in time and may still arrive; reconnect")]
    OutOfStep { addr: String, what: String },
    /// A socket error other than the above.
    #[error("talking to QEMU's gdb stub at {addr}: {why}")]
    Io { addr: String, why: String },
    /// Whatever is listening does not speak the protocol.
    #[error("{addr} is not a gdb stub: it sent {preview:?}")]
    NotAStub { addr: String, preview: String },
    /// A packet arrived damaged and could not be had again.
    #[error("bad packet from {addr}: {why}")]
    Frame { addr: String, why: FrameError },
    /// A reply that does not parse as the reply to what we sent.
    #[error("unexpected reply to {packet}: {why}")]
    Protocol { packet: String, why: String },
    /// `E NN`.
    #[error("the stub answered {packet} with error E{code:02x}")]
    Remote { packet: String, code: u8 },
    /// `m` failed: nothing readable there.
    #[error("cannot read {len} bytes of memory at {addr:#x} (stub error E{code:02x})")]
    Memory { addr: u64, len: usize, code: u8 },
    /// The empty reply: the stub does not know the packet.
    #[error("the stub does not support {0}")]
    Unsupported(String),
    /// The register is not in the stub's target description.
    #[error("the target description has no register {0:?}")]
    NoRegister(String),
    /// The thread (hart) does not exist.
    #[error("no thread {0}")]
    NoThread(String),
    /// The operation needs the machine halted (or running) and it is not.
    #[error("{0}")]
    State(String),
    /// The machine stopped for good (`W`/`X` stop reply).
    #[error("the machine has exited ({0})")]
    Exited(String),
    #[error("{0}")]
    Xml(#[from] XmlError),
}

impl Error {
    pub(crate) fn hex(packet: &str, e: DecodeHexError) -> Error {
        Error::Protocol {
            packet: packet.to_string(),
            why: e.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
