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

static CONS: SpinLock<Cons> = SpinLock::new(
    Cons {
        buf: [0; INPUT_BUF_SIZE],
        r: 0,
        w: 0,
        e: 0,
    },
    "cons",
);

/// The channel readers sleep on while there is no complete line.
fn read_chan() -> usize {
    &CONS as *const SpinLock<Cons> as usize
}

/// User write()s to the console go here: copy `n` bytes from `src` (a user
/// address if `user_src`) to the UART. Returns the number written.
pub fn consolewrite(user_src: bool, src: u64, n: i32) -> i32 {
    let mut i = 0;
    while i < n {
        let mut c = [0u8; 1];
        if either_copyin(&mut c, user_src, src + i as u64).is_err() {
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
pub fn consoleread(user_dst: bool, dst: u64, n: i32) -> i32 {
    let target = n;
    let mut n = n;
    let mut dst = dst;
    let mut cons = CONS.lock();
    while n > 0 {
        // wait until interrupt handler has put some input into cons.buf.
        while cons.r == cons.w {
            if killed(myproc()) {
                return -1;
            }
            cons = cons.sleep(read_chan());
        }

        let c = cons.buf[cons.r % INPUT_BUF_SIZE];
        cons.r = cons.r.wrapping_add(1);

        if c == ctrl(b'D') {
            // end-of-file
            if n < target {
                // Save ^D for next time, to make sure caller gets a
                // 0-byte result.
                cons.r = cons.r.wrapping_sub(1);
            }
            break;
        }

        // copy the input byte to the user-space buffer.
        if either_copyout(user_dst, dst, &[c]).is_err() {
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
    match c {
        // Print process list.
        x if x == ctrl(b'P') => procdump(),
        // Kill line.
        x if x == ctrl(b'U') => {
            while cons.e != cons.w && cons.buf[cons.e.wrapping_sub(1) % INPUT_BUF_SIZE] != b'\n' {
                cons.e = cons.e.wrapping_sub(1);
                consputbackspace();
            }
        }
        // Backspace, Delete key.
        x if x == ctrl(b'H') || x == 0x7f => {
            if cons.e != cons.w {
                cons.e = cons.e.wrapping_sub(1);
                consputbackspace();
            }
        }
        _ => {
            if c != 0 && cons.e.wrapping_sub(cons.r) < INPUT_BUF_SIZE {
                let c = if c == b'\r' { b'\n' } else { c };

                // echo back to the user.
                consputc(c);

                // store for consumption by consoleread().
                let e = cons.e;
                cons.buf[e % INPUT_BUF_SIZE] = c;
                cons.e = e.wrapping_add(1);

                if c == b'\n' || c == ctrl(b'D') || cons.e.wrapping_sub(cons.r) == INPUT_BUF_SIZE {
                    // wake up consoleread() if a whole line (or
                    // end-of-file) has arrived.
                    cons.w = cons.e;
                    wakeup(read_chan());
                }
            }
        }
    }
}

/// Set the console up (the UART).
pub fn consoleinit() {
    crate::uart::uartinit();
    // connect read and write system calls to consoleread and consolewrite.
    crate::file::set_devsw(crate::file::CONSOLE, consoleread, consolewrite);
}
