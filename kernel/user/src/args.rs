//! Command-line arguments: exec's argc/argv as `&str`s.
//!
//! The kernel copies argv (NUL-terminated strings and a null-terminated
//! array of pointers) onto the new user stack and starts the program with
//! a0 = argc, a1 = argv, as xv6 does.

use crate::string::cstr;

/// argv, as handed to `main`.
#[derive(Clone, Copy)]
pub struct Args {
    argc: usize,
    argv: *const *const u8,
}

impl Args {
    /// # Safety
    /// `argv` must hold `argc` valid NUL-terminated strings for the
    /// program's whole life (exec's stack does).
    pub unsafe fn new(argc: i32, argv: *const *const u8) -> Args {
        Args {
            argc: if argv.is_null() {
                0
            } else {
                argc.max(0) as usize
            },
            argv,
        }
    }

    pub fn len(&self) -> usize {
        self.argc
    }

    pub fn is_empty(&self) -> bool {
        self.argc == 0
    }

    /// Argument `i` as bytes.
    pub fn bytes(&self, i: usize) -> Option<&'static [u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: i < argc, and Args::new's contract.
        unsafe { Some(cstr(*self.argv.add(i))) }
    }

    /// Argument `i` as text ("" if it is not UTF-8).
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.bytes(i).map(|b| core::str::from_utf8(b).unwrap_or(""))
    }

    /// All arguments, argv[0] first.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.argc).filter_map(|i| self.get(i))
    }

    /// The program's name (argv[0]), or "?".
    pub fn prog(&self) -> &'static str {
        self.get(0).unwrap_or("?")
    }
}
