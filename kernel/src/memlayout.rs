//! The physical and virtual memory map, in one place (xv6's memlayout.h).
//!
//! Physical memory, as QEMU `virt` lays it out (`-m 128M`):
//!
//! ```text
//! 00001000 -- boot ROM, provided by qemu
//! 00100000 -- test finisher (write 0x5555 = pass, (code<<16)|0x3333 = fail)
//! 02000000 -- CLINT
//! 0C000000 -- PLIC
//! 10000000 -- uart0
//! 10001000 -- virtio disk
//! 80000000 -- QEMU's -kernel loads the kernel here (_entry); then text,
//!             data, bss, `end`, then the pages kalloc hands out
//! 88000000 -- PHYSTOP: end of RAM the kernel uses
//! ```
//!
//! The kernel's virtual address space (`kernel_pagetable`) maps the devices
//! and RAM at their physical addresses (direct map), plus at the very top:
//!
//! ```text
//! MAXVA = 0x40_0000_0000 (1 << 38)
//!   TRAMPOLINE  0x3f_ffff_f000  trampoline page (R X), also mapped in user space
//!   KSTACK(0)   0x3f_ffff_d000  kernel stack of proc[0] (R W)
//!               0x3f_ffff_c000  guard page (unmapped)
//!   KSTACK(1)   0x3f_ffff_b000  kernel stack of proc[1]
//!               ...             guard page, and so on for NPROC slots
//! ```
//!
//! A user address space starts at 0 (text, data, guard page, stack, heap)
//! and ends with TRAPFRAME (R W) and TRAMPOLINE (R X) at the top.

use crate::riscv::{MAXVA, PGSIZE};

/// QEMU's test finisher ("sifive,test1"); see [`crate::printf::poweroff`].
pub const VIRT_TEST: u64 = 0x0010_0000;

/// The 16550 UART.
pub const UART0: u64 = 0x1000_0000;
pub const UART0_IRQ: u32 = 10;

/// The virtio-mmio disk interface.
pub const VIRTIO0: u64 = 0x1000_1000;
pub const VIRTIO0_IRQ: u32 = 1;

/// Core local interruptor: mtime and per-hart mtimecmp.
pub const CLINT: u64 = 0x0200_0000;
pub const CLINT_MTIME: u64 = CLINT + 0xBFF8;

/// The platform-level interrupt controller.
pub const PLIC: u64 = 0x0c00_0000;
/// How much of the PLIC the kernel maps (xv6 maps 0x400000 bytes).
pub const PLIC_SIZE: u64 = 0x40_0000;
pub const PLIC_PRIORITY: u64 = PLIC;
pub const PLIC_PENDING: u64 = PLIC + 0x1000;

/// Supervisor-mode interrupt-enable bits of hart `hart`'s PLIC context.
pub const fn plic_senable(hart: usize) -> u64 {
    PLIC + 0x2080 + (hart as u64) * 0x100
}
/// Supervisor-mode priority threshold of hart `hart`'s PLIC context.
pub const fn plic_spriority(hart: usize) -> u64 {
    PLIC + 0x20_1000 + (hart as u64) * 0x2000
}
/// Supervisor-mode claim/complete register of hart `hart`'s PLIC context.
pub const fn plic_sclaim(hart: usize) -> u64 {
    PLIC + 0x20_1004 + (hart as u64) * 0x2000
}

/// Where RAM starts and the kernel is loaded.
pub const KERNBASE: u64 = 0x8000_0000;
/// End of the RAM the kernel uses: 128 MiB.
pub const PHYSTOP: u64 = KERNBASE + 128 * 1024 * 1024;

/// The trampoline page, at the highest address in both user and kernel space.
pub const TRAMPOLINE: u64 = MAXVA - PGSIZE;

/// Kernel stack of process slot `i`, each under an unmapped guard page.
pub const fn kstack(i: usize) -> u64 {
    TRAMPOLINE - ((i as u64) + 1) * 2 * PGSIZE
}

/// The trapframe page, just under the trampoline in user space.
pub const TRAPFRAME: u64 = TRAMPOLINE - PGSIZE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_of_memory_matches_xv6() {
        assert_eq!(TRAMPOLINE, 0x3f_ffff_f000);
        assert_eq!(TRAPFRAME, 0x3f_ffff_e000);
        assert_eq!(kstack(0), 0x3f_ffff_d000);
        assert_eq!(kstack(1), 0x3f_ffff_b000);
        // The page under each stack is the guard: never the previous stack.
        for i in 0..crate::param::NPROC - 1 {
            assert_eq!(kstack(i) - kstack(i + 1), 2 * PGSIZE);
        }
    }

    #[test]
    fn plic_registers_match_xv6() {
        assert_eq!(plic_senable(1), 0x0c00_2180);
        assert_eq!(plic_spriority(2), 0x0c20_5000);
        assert_eq!(plic_sclaim(0), 0x0c20_1004);
    }
}
