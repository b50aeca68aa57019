//! The riscv Platform Level Interrupt Controller (xv6's plic.c): routes
//! device interrupts (UART, virtio disk) to harts in supervisor mode.

use crate::memlayout::*;
use crate::proc::cpuid;

/// Write a 32-bit PLIC register.
fn write32(addr: u64, v: u32) {
    // SAFETY: addr is a PLIC register, mapped R/W in the kernel page table.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}

/// Read a 32-bit PLIC register.
fn read32(addr: u64) -> u32 {
    // SAFETY: as in write32.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Set desired IRQ priorities non-zero (otherwise disabled). Hart 0, once.
pub fn plicinit() {
    write32(PLIC + (UART0_IRQ as u64) * 4, 1);
    write32(PLIC + (VIRTIO0_IRQ as u64) * 4, 1);
}

/// Enable the UART and virtio interrupts for this hart's S-mode, with
/// priority threshold 0.
pub fn plicinithart() {
    let hart = cpuid();
    // set enable bits for this hart's S-mode for the uart and virtio disk.
    write32(plic_senable(hart), (1 << UART0_IRQ) | (1 << VIRTIO0_IRQ));
    // set this hart's S-mode priority threshold to 0.
    write32(plic_spriority(hart), 0);
}

/// Ask the PLIC what interrupt we should serve (0: none).
pub fn plic_claim() -> u32 {
    read32(plic_sclaim(cpuid()))
}

/// Tell the PLIC we've served this IRQ.
pub fn plic_complete(irq: u32) {
    write32(plic_sclaim(cpuid()), irq);
}
