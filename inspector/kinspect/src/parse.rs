//! Numbers as people type them on a command line, in the TUI's `:` prompt
//! or in a gdb `monitor` command: `0x` hex, `0b` binary or decimal.

/// Parse a number: `0x` hex, `0b` binary, or decimal; `_` allowed.
pub fn parse_u64(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if let Some(b) = t.strip_prefix("0b") {
        u64::from_str_radix(b, 2)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|e| format!("`{s}` is not a number ({e}); use hex like 0x80000000 or decimal"))
}

pub fn parse_u64_arg(s: &str) -> std::result::Result<u64, String> {
    parse_u64(s)
}
