//! Console input and output, to the UART (xv6's console.c).
//!
//! Reads are line at a time. Implements special input characters:
//!   newline -- end of line
//!   control-h / backspace -- backspace
//!   control-u -- kill line
//!   control-d -- end of file
//!   control-p -- print process list (`pid state name`)

use crate::proc::{either_copyin, either_copyout, killed, myproc, procdump, wakeup};
use crate::spinlock::SpinLock;
use crate::uart::uartputc_sync;

/// Control-x.
const fn ctrl(x: u8) -> u8 {
    x - b'@'
}

/// Send one character to the uart. Called by printf, and to echo input
/// characters, but not from write().
pub fn consputc(c: u8) {
    uartputc_sync(c);
}

/// Erase the character before the cursor: overwrite with a space.
fn consputbackspace() {
    uartputc_sync(b'\x08');
    uartputc_sync(b' ');
    uartputc_sync(b'\x08');
}

const INPUT_BUF_SIZE: usize = 128;

/// The input line buffer: a ring of bytes with three indices.
struct Cons {
    buf: [u8; INPUT_BUF_SIZE],
    /// Read index.
    r: usize,
    /// Write index.
    w: usize,
    /// Edit index.
    e: usize,
}

/// What the screen must show after one input byte (the line discipline's
/// echo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Nothing (ignored byte, or the line is full).
    Nothing,
    /// Print this byte.
    Char(u8),
    /// Erase this many characters before the cursor.
    Erase(usize),
    /// Print the process list (Ctrl-P).
    ProcDump,
}

impl Cons {
    pub const fn new() -> Cons {
        Cons {
            buf: [0; INPUT_BUF_SIZE],
            r: 0,
            w: 0,
            e: 0,
        }
    }

    /// Feed one input byte through the line discipline: erase/kill
    /// processing, append to the line being edited. Returns what to echo,
    /// and true if a whole line (or end-of-file, or a full buffer) is now
    /// ready for readers.
    pub fn input(&mut self, c: u8) -> (Echo, bool) {
        match c {
            // Print process list.
            x if x == ctrl(b'P') => (Echo::ProcDump, false),
            // Kill line.
            x if x == ctrl(b'U') => {
                let mut n = 0;
                while self.e != self.w && self.buf[self.e.wrapping_sub(1) % INPUT_BUF_SIZE] != b'\n'
                {
                    self.e = self.e.wrapping_sub(1);
                    n += 1;
                }
                (Echo::Erase(n), false)
            }
            // Backspace, Delete key.
            x if x == ctrl(b'H') || x == 0x7f => {
                if self.e != self.w {
                    self.e = self.e.wrapping_sub(1);
                    (Echo::Erase(1), false)
                } else {
                    (Echo::Nothing, false)
                }
            }
            _ => {
                if c == 0 || self.e.wrapping_sub(self.r) >= INPUT_BUF_SIZE {
                    return (Echo::Nothing, false);
                }
                let c = if c == b'\r' { b'\n' } else { c };
                // store for consumption by consoleread().
                self.buf[self.e % INPUT_BUF_SIZE] = c;
                self.e = self.e.wrapping_add(1);
                let ready =
                    c == b'\n' || c == ctrl(b'D') || self.e.wrapping_sub(self.r) == INPUT_BUF_SIZE;
                if ready {
                    self.w = self.e;
                }
                (Echo::Char(c), ready)
            }
        }
    }

    /// Take the next byte of a finished line, or None if there is none.
    pub fn getc(&mut self) -> Option<u8> {
        if self.r == self.w {
            return None;
        }
        let c = self.buf[self.r % INPUT_BUF_SIZE];
        self.r = self.r.wrapping_add(1);
        Some(c)
    }

    /// Put back the byte getc() just returned.
    pub fn ungetc(&mut self) {
        self.r = self.r.wrapping_sub(1);
    }
}

static CONS: SpinLock<Cons> = SpinLock::new(Cons::new(), "cons");

/// The channel readers sleep on while there is no complete line.
fn read_chan() -> usize {
    &CONS as *const SpinLock<Cons> as usize
}

/// User write()s to the console go here: copy `n` bytes from `src` (a user
/// address if `user_src`) to the UART. Returns the number written.
///
/// # Safety
/// If `!user_src`, `src` is a kernel buffer of `n` readable bytes.
pub unsafe fn consolewrite(user_src: bool, src: u64, n: i32) -> i32 {
    let mut i = 0;
    while i < n {
        let mut c = [0u8; 1];
        // SAFETY: src is user memory, or the caller's n-byte buffer.
        if unsafe { either_copyin(&mut c, user_src, src + i as u64) }.is_err() {
            break;
        }
        uartputc_sync(c[0]);
        i += 1;
    }
    i
}

/// User read()s from the console go here. Copy (up to) a whole input line
/// to `dst` (a user address if `user_dst`). Returns bytes read, or -1 if
/// the process was killed while waiting.
///
/// # Safety
/// If `!user_dst`, `dst` is a kernel buffer of `n` writable bytes.
pub unsafe fn consoleread(user_dst: bool, dst: u64, n: i32) -> i32 {
    let target = n;
    let mut n = n;
    let mut dst = dst;
    let mut cons = CONS.lock();
    while n > 0 {
        // wait until interrupt handler has put some input into cons.buf.
        let c = loop {
            if let Some(c) = cons.getc() {
                break c;
            }
            if killed(myproc()) {
                return -1;
            }
            cons = cons.sleep(read_chan());
        };

        if c == ctrl(b'D') {
            // end-of-file
            if n < target {
                // Save ^D for next time, to make sure caller gets a
                // 0-byte result.
                cons.ungetc();
            }
            break;
        }

        // copy the input byte to the user-space buffer.
        // SAFETY: dst is user memory, or the caller's n-byte buffer.
        if unsafe { either_copyout(user_dst, dst, &[c]) }.is_err() {
            break;
        }

        dst += 1;
        n -= 1;

        if c == b'\n' {
            // a whole line has arrived, return to the user-level read().
            break;
        }
    }
    target - n
}

/// The console input interrupt handler. uartintr() calls this for input
/// character. Do erase/kill processing, append to cons.buf, wake up
/// consoleread() if a whole line has arrived.
pub fn consoleintr(c: u8) {
    let mut cons = CONS.lock();
    let (echo, ready) = cons.input(c);
    match echo {
        Echo::Nothing => {}
        Echo::Char(c) => consputc(c),
        Echo::Erase(n) => {
            for _ in 0..n {
                consputbackspace();
            }
        }
        Echo::ProcDump => procdump(),
    }
    if ready {
        // wake up consoleread() if a whole line (or end-of-file) has
        // arrived.
        wakeup(read_chan());
    }
}

/// Set the console up (the UART).
pub fn consoleinit() {
    crate::uart::uartinit();
    // connect read and write system calls to consoleread and consolewrite.
    crate::file::set_devsw(crate::file::CONSOLE, consoleread, consolewrite);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(cons: &mut Cons, s: &[u8]) -> std::vec::Vec<(Echo, bool)> {
        s.iter().map(|&c| cons.input(c)).collect()
    }

    fn read_line(cons: &mut Cons) -> std::vec::Vec<u8> {
        let mut v = std::vec::Vec::new();
        while let Some(c) = cons.getc() {
            v.push(c);
            if c == b'\n' {
                break;
            }
        }
        v
    }

    #[test]
    fn a_line_is_readable_only_when_finished() {
        let mut cons = Cons::new();
        let r = feed(&mut cons, b"ls");
        assert_eq!(r, [(Echo::Char(b'l'), false), (Echo::Char(b's'), false)]);
        assert_eq!(cons.getc(), None, "half a line is not readable");
        assert_eq!(cons.input(b'\r'), (Echo::Char(b'\n'), true));
        assert_eq!(read_line(&mut cons), b"ls\n");
        assert_eq!(cons.getc(), None);
    }

    #[test]
    fn backspace_and_delete_erase_one() {
        let mut cons = Cons::new();
        feed(&mut cons, b"abX");
        assert_eq!(cons.input(0x7f), (Echo::Erase(1), false));
        feed(&mut cons, b"cY");
        assert_eq!(cons.input(ctrl(b'H')), (Echo::Erase(1), false));
        feed(&mut cons, b"\n");
        assert_eq!(read_line(&mut cons), b"abc\n");
        // Nothing left to erase: the finished line is not editable.
        assert_eq!(cons.input(0x7f), (Echo::Nothing, false));
    }

    #[test]
    fn ctrl_u_kills_the_line_being_edited_only() {
        let mut cons = Cons::new();
        feed(&mut cons, b"done\nzzz");
        assert_eq!(cons.input(ctrl(b'U')), (Echo::Erase(3), false));
        feed(&mut cons, b"uvw\n");
        assert_eq!(read_line(&mut cons), b"done\n");
        assert_eq!(read_line(&mut cons), b"uvw\n");
        assert_eq!(cons.input(ctrl(b'U')), (Echo::Erase(0), false));
    }

    #[test]
    fn ctrl_d_ends_input_and_can_be_put_back() {
        let mut cons = Cons::new();
        feed(&mut cons, b"ab");
        assert_eq!(cons.input(ctrl(b'D')), (Echo::Char(ctrl(b'D')), true));
        assert_eq!(cons.getc(), Some(b'a'));
        assert_eq!(cons.getc(), Some(b'b'));
        assert_eq!(cons.getc(), Some(ctrl(b'D')));
        cons.ungetc();
        assert_eq!(cons.getc(), Some(ctrl(b'D')));
        assert_eq!(cons.getc(), None);
    }

    #[test]
    fn a_full_buffer_is_handed_to_readers_and_more_input_dropped() {
        let mut cons = Cons::new();
        let r = feed(&mut cons, &[b'x'; INPUT_BUF_SIZE]);
        assert_eq!(r[INPUT_BUF_SIZE - 2], (Echo::Char(b'x'), false));
        assert_eq!(r[INPUT_BUF_SIZE - 1], (Echo::Char(b'x'), true));
        assert_eq!(cons.input(b'y'), (Echo::Nothing, false));
        assert_eq!(cons.getc(), Some(b'x'));
        // One byte was read, so one fits again.
        assert_eq!(cons.input(b'y'), (Echo::Char(b'y'), true));
    }

    #[test]
    fn ctrl_p_asks_for_procdump_and_nul_is_ignored() {
        let mut cons = Cons::new();
        assert_eq!(cons.input(ctrl(b'P')), (Echo::ProcDump, false));
        assert_eq!(cons.input(0), (Echo::Nothing, false));
        assert_eq!(cons.getc(), None);
    }
}
