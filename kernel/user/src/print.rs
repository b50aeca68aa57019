//! Formatted output to a file descriptor: `print!`, `println!`,
//! `eprint!`/`eprintln!` (fd 2) and `fprint!`/`fprintln!(fd, ...)`.
//!
//! Each call formats into a small buffer and writes it in as few `write`
//! system calls as it can, so lines from concurrent processes rarely mix.

use core::fmt::{self, Write};

use crate::syscall::write;

/// A buffered writer to one file descriptor; flushes when full and on drop.
pub struct FdWriter {
    fd: i32,
    len: usize,
    buf: [u8; 256],
}

impl FdWriter {
    pub fn new(fd: i32) -> FdWriter {
        FdWriter {
            fd,
            len: 0,
            buf: [0; 256],
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            write(self.fd, &self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut s = s.as_bytes();
        while !s.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
            self.len += n;
            s = &s[n..];
        }
        Ok(())
    }
}

impl Drop for FdWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _fprint(fd: i32, args: fmt::Arguments) {
    let mut w = FdWriter::new(fd);
    let _ = w.write_fmt(args);
}

/// Print to file descriptor `fd`, like xv6's `fprintf(fd, ...)`.
#[macro_export]
macro_rules! fprint {
    ($fd:expr, $($arg:tt)*) => { $crate::print::_fprint($fd, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! fprintln {
    ($fd:expr) => { $crate::fprint!($fd, "\n") };
    ($fd:expr, $($arg:tt)*) => { $crate::print::_fprint($fd, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Print to standard output (fd 1).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::fprint!(1, $($arg)*) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::fprint!(1, "\n") };
    ($($arg:tt)*) => { $crate::fprintln!(1, $($arg)*) };
}

/// Print to standard error (fd 2).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::fprint!(2, $($arg)*) };
}

#[macro_export]
macro_rules! eprintln {
    () => { $crate::fprint!(2, "\n") };
    ($($arg:tt)*) => { $crate::fprintln!(2, $($arg)*) };
}
