//! Names for code and data addresses, `func+0xoff`, from the kernel ELF's
//! symbol table (through `kinspect-symbols`, which demangles Rust paths).
//!
//! The one symboliser every view uses: `regs`, `translate`, `procs`, the
//! TUI and the post-mortem report name an address the same way.

use kinspect_symbols::Symbols;

/// How far past an unsized label (an assembler entry point such as
/// `trampoline` or `_entry`) an address is still named after it.
const LABEL_REACH: u64 = 0x1_0000;

/// `name` or `name+0xoff` for an address inside a symbol (or just past an
/// unsized label, within 64 KiB); `None` when nothing covers it.
pub fn name(syms: Option<&Symbols>, addr: u64) -> Option<String> {
    let (sym, off) = syms?.symbol_at(addr)?;
    if sym.size == 0 && off >= LABEL_REACH {
        return None;
    }
    Some(if off == 0 {
        sym.demangled.clone()
    } else {
        format!("{}+{off:#x}", sym.demangled)
    })
}

/// A return address as `func+0xoff`, named by the call before it: the
/// function containing `call` (`ra - 1` in a backtrace's caller frames). A
/// call to a function that never returns (`panic`) can be the last
/// instruction of its function, so `ra` itself may already be the next
/// function's first byte.
pub fn return_address(syms: Option<&Symbols>, ra: u64, call: u64) -> Option<String> {
    let (sym, off) = syms?.symbol_at(call)?;
    if sym.size == 0 && off >= LABEL_REACH {
        return None;
    }
    Some(format!(
        "{}+{:#x}",
        sym.demangled,
        off + ra.wrapping_sub(call)
    ))
}
