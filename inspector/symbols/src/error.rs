//! Why a symbol, type, value or expression could not be produced.
//!
//! Every variant renders as one line a person can act on; the CLI prints it
//! after the program name and exits non-zero.

/// An error from the symbol layer.
#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    /// The ELF file could not be read at all.
    #[error("cannot read {path}: {why}")]
    Io { path: String, why: String },
    /// The file is not an ELF object `object` can parse.
    #[error("{path} is not a readable ELF file: {why}")]
    NotElf { path: String, why: String },
    /// The ELF has no `.debug_info`.
    #[error("{file} has no DWARF debug info; build with debug = 2 / gcc -g")]
    NoDebugInfo { file: String },
    /// `gimli` rejected the DWARF.
    #[error("malformed DWARF in {file}: {why}")]
    Dwarf { file: String, why: String },
    /// No global, function or ELF symbol of that name.
    #[error("no symbol `{0}` (neither a DWARF variable nor an ELF symbol)")]
    NoSymbol(String),
    /// The global exists but only as a declaration somewhere, never defined.
    #[error("`{0}` is declared in the DWARF but no unit gives its location")]
    NoLocation(String),
    /// No type of that name.
    #[error("no type `{0}` in the DWARF")]
    NoType(String),
    /// A type DIE the layer cannot describe (or a reference to nothing).
    #[error("bad type at DWARF offset {offset:#x}: {why}")]
    BadType { offset: u64, why: String },
    /// A named member that is not there.
    #[error("no field `{field}` in `{ty}` (fields: {fields})")]
    NoField {
        field: String,
        ty: String,
        fields: String,
    },
    /// An index past the end of an array.
    #[error("index {index} out of range for `{what}` ({len} elements)")]
    OutOfRange { index: i64, what: String, len: u64 },
    /// A null pointer where one had to be followed.
    #[error("`{0}` is null")]
    Null(String),
    /// An operation that does not apply to the value's type.
    #[error("{0}")]
    Type(String),
    /// A limit that protects against corrupt or hostile input.
    #[error("{0}")]
    Limit(String),
    /// The expression does not parse.
    #[error("cannot parse `{expr}`: {why} at column {column}")]
    Parse {
        expr: String,
        column: usize,
        why: String,
    },
    /// Reading target memory failed while evaluating a named part.
    #[error("cannot read `{what}`: {source}")]
    Read { what: String, source: MemoryError },
    /// Reading target memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// A failed read of target memory, as reported by a [`crate::Memory`].
///
/// `why` is the line a person reads; `source` is the backend's own error
/// when it has one, so a caller that knows the backend can tell a lost
/// connection from memory that is simply not there (kinspect downcasts it
/// to its `TargetError`) after the error has come back through a load or
/// an expression ([`SymbolError::memory_mut`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {len} bytes at {addr:#x}: {why}")]
pub struct MemoryError {
    /// The address that was asked for (as the caller of `Memory::read` saw it).
    pub addr: u64,
    /// How many bytes.
    pub len: usize,
    /// Why it failed, in the backend's words.
    pub why: String,
    /// The backend's error underneath, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl MemoryError {
    /// A failed read of `len` bytes at `addr`, for the reason `why`.
    pub fn new(addr: u64, len: usize, why: impl Into<String>) -> MemoryError {
        MemoryError {
            addr,
            len,
            why: why.into(),
            source: None,
        }
    }

    /// The same, carrying the backend's own error.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> MemoryError {
        self.source = Some(source.into());
        self
    }
}

impl SymbolError {
    /// The failed memory read this error comes from, if reading memory is
    /// why it failed (to take its [`MemoryError::source`] out).
    pub fn memory_mut(&mut self) -> Option<&mut MemoryError> {
        match self {
            SymbolError::Read { source, .. } | SymbolError::Memory(source) => Some(source),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, SymbolError>;
