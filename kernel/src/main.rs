//! An xv6-riscv style teaching kernel in Rust, for QEMU `virt` (riscv64,
//! Sv39, up to 8 harts).
//!
//! Boot: `_entry` (start.rs, machine mode) -> `start` -> `mret` -> `main`
//! here, in supervisor mode. Hart 0 initialises the devices, the physical
//! allocator, the kernel page table and the process table, then lets the
//! other harts go. Every hart prints `hart N starting`.
//!
//! Pure logic (PTEs, walks, the allocator's free list) is unit-tested on
//! the host: `cargo test -p kernel --target x86_64-unknown-linux-gnu`.

#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]
// Kernel statics need `const fn new()`; `Default` would add nothing.
#![allow(clippy::new_without_default)]

#[macro_use]
pub mod printf;

/// xv6's user ABI and disk format: the `abi` crate (`kernel/abi/`).
pub use ::abi;
pub mod bio;
pub mod console;
pub mod exec;
pub mod file;
pub mod fs;
pub mod initcode;
pub mod kalloc;
pub mod kcell;
pub mod log;
pub mod memlayout;
pub mod param;
pub mod pipe;
pub mod plic;
pub mod proc;
pub mod riscv;
pub mod sleeplock;
pub mod spinlock;
pub mod start;
pub mod swtch;
pub mod syscall;
pub mod sysdebug;
pub mod sysfile;
pub mod sysproc;
pub mod trampoline;
pub mod trap;
pub mod uart;
pub mod virtio_disk;
pub mod vm;

#[cfg(not(test))]
use core::sync::atomic::{AtomicBool, Ordering};

/// Set by hart 0 when the shared kernel state is ready.
#[cfg(not(test))]
static STARTED: AtomicBool = AtomicBool::new(false);

/// start() jumps here in supervisor mode on all CPUs.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main() -> ! {
    let id = proc::cpuid();
    if id == 0 {
        console::consoleinit();
        println!();
        println!("xv6 kernel is booting");
        println!();
        kalloc::kinit(); // physical page allocator
        proc::procinit(); // process table
        vm::kvminit(); // create kernel page table
        vm::kvminithart(); // turn on paging
        trap::trapinithart(); // install kernel trap vector
        plic::plicinit(); // set up interrupt controller
        plic::plicinithart(); // ask PLIC for device interrupts
        bio::binit(); // buffer cache
        fs::iinit(); // inode table
        file::fileinit(); // file table
        virtio_disk::virtio_disk_init(); // emulated hard disk
        proc::userinit(); // first user process
        println!("hart {} starting", id);
        STARTED.store(true, Ordering::Release);
    } else {
        while !STARTED.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        println!("hart {} starting", id);
        vm::kvminithart(); // turn on paging
        trap::trapinithart(); // install kernel trap vector
        plic::plicinithart(); // ask PLIC for device interrupts
    }
    proc::scheduler()
}
