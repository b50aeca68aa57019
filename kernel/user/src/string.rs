//! String helpers: NUL-terminated paths for system calls, C strings from
//! argv, `atoi`, and bytes-as-text for printing.

/// A NUL-terminated copy of a path, on the stack (no allocation), for
/// the system calls that take one. Holds up to 255 bytes: longer than
/// the kernel's MAXPATH (128) so the kernel, not this library, decides
/// what is too long.
pub struct CPath {
    buf: [u8; 256],
}

impl CPath {
    /// `None` if `s` has a NUL byte or does not fit.
    pub fn new(s: &str) -> Option<CPath> {
        CPath::from_bytes(s.as_bytes())
    }

    pub fn from_bytes(s: &[u8]) -> Option<CPath> {
        if s.len() >= 256 || s.contains(&0) {
            return None;
        }
        let mut buf = [0u8; 256];
        buf[..s.len()].copy_from_slice(s);
        Some(CPath { buf })
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

/// Length of the C string at `p`.
///
/// # Safety
/// `p` must point to a NUL-terminated string.
pub unsafe fn strlen(p: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller's: every byte up to the NUL is readable.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    n
}

/// The bytes of the C string at `p`, without its NUL.
///
/// # Safety
/// `p` must point to a NUL-terminated string that lives for `'a`.
pub unsafe fn cstr<'a>(p: *const u8) -> &'a [u8] {
    // SAFETY: the caller's.
    unsafe { core::slice::from_raw_parts(p, strlen(p)) }
}

/// xv6's `atoi`: leading decimal digits, optionally after a '-'; 0 if none.
pub fn atoi(s: &str) -> i32 {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut n: i32 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add((c - b'0') as i32);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// Bytes as text for printing: valid UTF-8 as is, else `?` for each bad byte.
pub struct Bytes<'a>(pub &'a [u8]);

impl core::fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for _ in chunk.invalid() {
                f.write_str("?")?;
            }
        }
        Ok(())
    }
}
