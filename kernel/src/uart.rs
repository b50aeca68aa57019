//! Low-level driver for the 16550a UART at [`UART0`] (xv6's uart.c).
//!
//! Output is synchronous (the hart polls the transmit-holding-empty bit);
//! input arrives by interrupt ([`uartintr`]) and goes to the console's line
//! discipline.

use crate::memlayout::UART0;

// The UART control registers (offsets from UART0); see
// http://byterunner.com/16550.html
const RHR: u64 = 0; // receive holding register (for input bytes)
const THR: u64 = 0; // transmit holding register (for output bytes)
const IER: u64 = 1; // interrupt enable register
const IER_RX_ENABLE: u8 = 1 << 0;
const FCR: u64 = 2; // FIFO control register
const FCR_FIFO_ENABLE: u8 = 1 << 0;
const FCR_FIFO_CLEAR: u8 = 3 << 1; // clear the content of the two FIFOs
const LCR: u64 = 3; // line control register
const LCR_EIGHT_BITS: u8 = 3;
const LCR_BAUD_LATCH: u8 = 1 << 7; // special mode to set baud rate
const LSR: u64 = 5; // line status register
const LSR_RX_READY: u8 = 1 << 0; // input is waiting to be read from RHR
const LSR_TX_IDLE: u8 = 1 << 5; // THR can accept another character to send

/// Read UART register `reg`.
fn read_reg(reg: u64) -> u8 {
    // SAFETY: UART0 is a device register block, identity-mapped in the
    // kernel page table (and accessed before paging with satp = 0).
    unsafe { core::ptr::read_volatile((UART0 + reg) as *const u8) }
}

/// Write UART register `reg`.
fn write_reg(reg: u64, v: u8) {
    // SAFETY: as in read_reg.
    unsafe { core::ptr::write_volatile((UART0 + reg) as *mut u8, v) }
}

/// Set the UART up: 38.4K baud, 8 bits, FIFOs on, receive interrupts on.
pub fn uartinit() {
    // disable interrupts.
    write_reg(IER, 0x00);
    // special mode to set baud rate.
    write_reg(LCR, LCR_BAUD_LATCH);
    // LSB for baud rate of 38.4K.
    write_reg(0, 0x03);
    // MSB for baud rate of 38.4K.
    write_reg(1, 0x00);
    // leave set-baud mode, and set word length to 8 bits, no parity.
    write_reg(LCR, LCR_EIGHT_BITS);
    // reset and enable FIFOs.
    write_reg(FCR, FCR_FIFO_ENABLE | FCR_FIFO_CLEAR);
    // enable receive interrupts.
    write_reg(IER, IER_RX_ENABLE);
}

/// Write one byte, waiting for the UART to take it. Used by the kernel's
/// printer and by console writes. Freezes once the kernel has panicked
/// (unless this hart is the one printing the panic), as xv6's does.
pub fn uartputc_sync(c: u8) {
    crate::spinlock::push_off();
    if crate::printf::is_panicked() {
        loop {
            core::hint::spin_loop();
        }
    }
    // wait for Transmit Holding Empty to be set in LSR.
    while read_reg(LSR) & LSR_TX_IDLE == 0 {
        core::hint::spin_loop();
    }
    write_reg(THR, c);
    crate::spinlock::pop_off();
}

/// Read one input byte, or None if none is waiting.
pub fn uartgetc() -> Option<u8> {
    if read_reg(LSR) & LSR_RX_READY != 0 {
        Some(read_reg(RHR))
    } else {
        None
    }
}

/// Handle a UART interrupt: pass every waiting input byte to the console.
pub fn uartintr() {
    while let Some(c) = uartgetc() {
        crate::console::consoleintr(c);
    }
}
