//! Why a command failed, as one line and an exit code.
//!
//! Every layer's typed error ([`TargetError`], [`ModelError`],
//! [`SnapshotError`], I/O) converts into [`Error`] at the edge where a
//! command reports it; [`Error::exit_code`] maps it to the documented
//! process exit codes ([`exit`]). This module is a leaf: commands, the TUI,
//! `serve` and the post-mortem code use it without knowing the command line.

use crate::model::ModelError;
use crate::snapshot::SnapshotError;
use crate::target::TargetError;

/// Process exit codes. Documented in `kinspect --help` and docs/commands/.
pub mod exit {
    /// The command did what was asked.
    pub const OK: i32 = 0;
    /// The target answered, but something went wrong reading it.
    pub const FAILURE: i32 = 1;
    /// Bad input: usage errors, bad numbers, unknown symbols or harts.
    pub const BAD_INPUT: i32 = 2;
    /// Cannot reach the target (nothing listening, connection lost, time-out).
    pub const UNREACHABLE: i32 = 3;
    /// `translate`: the address does not translate (the hart would fault).
    pub const NO_TRANSLATION: i32 = 4;
    /// `check`: at least one finding of severity error.
    pub const FINDINGS: i32 = 5;
    /// `--snapshot`/`serve`: the snapshot is damaged, truncated, not a
    /// snapshot, or of another kernel build than the ELF.
    pub const BAD_SNAPSHOT: i32 = 6;
}

/// Why a command failed; each renders as one line and maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    NoTranslation(String),
    #[error("{0}")]
    Failed(String),
    /// `check` found errors in the kernel (the report is already printed).
    #[error("{0}")]
    Findings(String),
    /// A snapshot file that cannot be used (see `exit::BAD_SNAPSHOT`).
    #[error("{0}")]
    Snapshot(String),
    /// stdout was closed by its reader: stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) => exit::BAD_INPUT,
            Error::Unreachable(_) => exit::UNREACHABLE,
            Error::NoTranslation(_) => exit::NO_TRANSLATION,
            Error::Failed(_) => exit::FAILURE,
            Error::Findings(_) => exit::FINDINGS,
            Error::Snapshot(_) => exit::BAD_SNAPSHOT,
            Error::OutputClosed => exit::OK,
        }
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Unreachable { .. }
            | TargetError::Disconnected(_)
            | TargetError::Timeout(_) => Error::Unreachable(e.to_string()),
            TargetError::NoHart(_) | TargetError::BadAddress(_) => Error::BadInput(e.to_string()),
            TargetError::Protocol(_) | TargetError::Memory { .. } | TargetError::Unsupported(_) => {
                Error::Failed(e.to_string())
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `kinspect maps | head`: the reader has all it wanted.
            Error::OutputClosed
        } else {
            Error::Failed(format!("writing output: {e}"))
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<ModelError> for Error {
    /// The model's errors in the CLI's words and exit codes.
    fn from(e: ModelError) -> Error {
        match e {
            ModelError::Target(t) => Error::from(t),
            e if e.is_bad_input() => Error::BadInput(e.to_string()),
            e => Error::Failed(e.to_string()),
        }
    }
}

impl From<SnapshotError> for Error {
    fn from(e: SnapshotError) -> Error {
        Error::Snapshot(e.to_string())
    }
}
