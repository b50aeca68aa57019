//! Formatted output to the console, the panic entry point and the QEMU
//! test finisher (xv6's printf.c).
//!
//! `println!` takes a lock around whole lines, so lines from several harts
//! never interleave. [`panic`] is the kernel's single panic entry point, an
//! unmangled symbol called `panic` as in C xv6 (break on it in gdb). It
//! prints `panic: <message>`, stores the message in `panicmsg` for
//! post-mortems, sets `panicked` (which freezes the other harts' output and
//! loops) and spins.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::spinlock::Spinlock;

/// Non-zero once some hart has panicked (C xv6: `volatile int panicked`).
/// Read and written atomically through [`is_panicked`]/[`panic`].
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut panicked: i32 = 0;

/// The size of [`panicmsg`].
pub const PANICMSG_LEN: usize = 128;

/// The first panic's message, NUL-terminated (truncated to 127 bytes), for
/// post-mortem readers such as kinspect. All zero until a panic.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut panicmsg: [u8; PANICMSG_LEN] = [0; PANICMSG_LEN];

/// The line lock, so concurrent `println!`s don't interleave.
static PR: Spinlock = Spinlock::new("pr");
/// Cleared by [`panic`]: a panic while holding [`PR`] must still print.
static PR_LOCKING: AtomicBool = AtomicBool::new(true);

/// Has some hart panicked?
pub fn is_panicked() -> bool {
    // SAFETY: `panicked` is an aligned i32 that is only ever accessed
    // atomically (here and in `panic`).
    unsafe { AtomicI32::from_ptr(&raw mut panicked).load(Ordering::Relaxed) != 0 }
}

/// The console as a `fmt::Write`: bytes go straight to the UART.
struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            crate::console::consputc(b);
        }
        Ok(())
    }
}

/// Print under the line lock (the body of `print!`/`println!`).
pub fn _print(args: fmt::Arguments) {
    let locking = PR_LOCKING.load(Ordering::Relaxed);
    if locking {
        PR.acquire();
    }
    let _ = Console.write_fmt(args);
    if locking {
        PR.release();
    }
}

/// Print to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::printf::_print(format_args!($($arg)*)) };
}

/// Print a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::printf::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes formatted text into a fixed buffer, dropping what does not fit
/// and always leaving a NUL terminator.
pub struct MsgBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> MsgBuf<'a> {
    pub fn new(buf: &'a mut [u8]) -> MsgBuf<'a> {
        if let Some(b) = buf.first_mut() {
            *b = 0;
        }
        MsgBuf { buf, len: 0 }
    }
}

impl Write for MsgBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len().saturating_sub(1 + self.len);
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if self.len < self.buf.len() {
            self.buf[self.len] = 0;
        }
        Ok(())
    }
}

/// The kernel's panic entry point: print `panic: <message>`, record it in
/// `panicmsg`, set `panicked` and spin forever. Never returns.
#[cfg(not(test))]
#[no_mangle]
#[inline(never)]
pub fn panic(msg: fmt::Arguments, location: Option<&core::panic::Location>) -> ! {
    crate::riscv::intr_off();
    // A panic while some hart holds the line lock must still print.
    PR_LOCKING.store(false, Ordering::Relaxed);
    if !is_panicked() {
        // SAFETY: only the first panicking hart writes the buffer (others
        // see `panicked` already set, or race only to overwrite the text).
        let buf = unsafe { &mut *core::ptr::addr_of_mut!(panicmsg) };
        let _ = MsgBuf::new(buf).write_fmt(msg);
    }
    let _ = Console.write_fmt(format_args!("panic: {}\n", msg));
    if let Some(l) = location {
        let _ = Console.write_fmt(format_args!("    at {}:{}\n", l.file(), l.line()));
    }
    // SAFETY: see is_panicked.
    unsafe { AtomicI32::from_ptr(&raw mut panicked).store(1, Ordering::SeqCst) };
    loop {
        core::hint::spin_loop();
    }
}

/// Rust's `panic!` (and bounds checks, overflow checks, ...) end here and
/// go to the kernel's [`panic`].
#[cfg(not(test))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo) -> ! {
    panic(format_args!("{}", info.message()), info.location())
}

/// End the QEMU run through the `virt` test finisher: `code` 0 is success
/// (0x5555), anything else a failure with exit status `code`
/// (`(code << 16) | 0x3333`).
#[cfg(not(test))]
pub fn poweroff(code: u16) -> ! {
    let v: u32 = if code == 0 {
        0x5555
    } else {
        ((code as u32) << 16) | 0x3333
    };
    // SAFETY: VIRT_TEST is the finisher's register, identity-mapped in the
    // kernel page table; writing it stops the machine.
    unsafe { core::ptr::write_volatile(crate::memlayout::VIRT_TEST as *mut u32, v) };
    loop {
        crate::riscv::wfi();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgbuf_truncates_and_terminates() {
        let mut b = [0xffu8; 8];
        let mut w = MsgBuf::new(&mut b);
        write!(w, "remap-{}", 12345).unwrap();
        assert_eq!(&b, b"remap-1\0");
        let mut b = [0xffu8; 8];
        write!(MsgBuf::new(&mut b), "ab").unwrap();
        assert_eq!(&b[..3], b"ab\0");
    }
}
