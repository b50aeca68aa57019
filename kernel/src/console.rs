//! Console input and output, to the UART (xv6's console.c).
//!
//! Reads are line at a time. Implements special input characters:
//!   newline -- end of line
//!   control-h / backspace -- backspace
//!   control-u -- kill line
//!   control-d -- end of file
//!   control-p -- print process list

/// The byte `consputc` turns into "erase the previous character".
pub const BACKSPACE: u16 = 0x100;

/// Send one character to the uart. Called by printf, and to echo input
/// characters, but not from write().
pub fn consputc(c: u8) {
    crate::uart::uartputc_sync(c);
}

/// Erase the character before the cursor.
pub fn consputbackspace() {
    crate::uart::uartputc_sync(b'\x08');
    crate::uart::uartputc_sync(b' ');
    crate::uart::uartputc_sync(b'\x08');
}

/// The console input interrupt handler: uartintr() calls this for each
/// input character.
pub fn consoleintr(_c: u8) {}

/// Set the console up (the UART).
pub fn consoleinit() {
    crate::uart::uartinit();
}
