//! Source lines for code addresses, through `addr2line`.
//!
//! [`crate::Symbols::lines`] builds the `addr2line` context on first use
//! (it parses line programs lazily, unit by unit) and answers with the
//! chain of frames at an address: the innermost inlined function first,
//! the function the code physically belongs to last.

use crate::dwarf::R;

/// One function at an address, with its source position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Demangled (`kernel::proc::scheduler`, `kalloc`); `None` when the
    /// DWARF does not name it.
    pub function: Option<String>,
    /// Source file as the compiler recorded it (directory joined).
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Inlined into the next frame in the list.
    pub inlined: bool,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.function.as_deref().unwrap_or("??"))?;
        if let Some(file) = &self.file {
            write!(f, " at {file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        if self.inlined {
            f.write_str(" (inlined)")?;
        }
        Ok(())
    }
}

/// Bound on inline depth followed.
const MAX_FRAMES: usize = 64;

pub fn frames(ctx: &addr2line::Context<R>, addr: u64) -> Result<Vec<Frame>, gimli::Error> {
    let mut out = Vec::new();
    let mut iter = ctx.find_frames(addr).skip_all_loads()?;
    while let Some(frame) = iter.next()? {
        let function = match &frame.function {
            Some(name) => Some(name.demangle()?.into_owned()),
            None => None,
        };
        let (file, line, column) = match &frame.location {
            Some(loc) => (loc.file.map(str::to_string), loc.line, loc.column),
            None => (None, None, None),
        };
        out.push(Frame {
            function,
            file,
            line,
            column,
            inlined: true,
        });
        if out.len() >= MAX_FRAMES {
            break;
        }
    }
    if let Some(last) = out.last_mut() {
        last.inlined = false;
    }
    // Code without a covering function DIE (assembly) may still have a line.
    if out.is_empty() {
        if let Some(loc) = ctx.find_location(addr)? {
            out.push(Frame {
                function: None,
                file: loc.file.map(str::to_string),
                line: loc.line,
                column: loc.column,
                inlined: false,
            });
        }
    }
    Ok(out)
}
