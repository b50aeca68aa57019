//! The kernel-debugging system call `kdebug` (not in xv6): provoke the
//! classic kernel panics on purpose, through the kernel's real code paths,
//! for post-mortem demos and kinspect's tests. The user side is `kfault`.
//!
//! It is OFF until someone enables it: every operation except
//! [`KDEBUG_STATUS`], [`KDEBUG_ENABLE`] and [`KDEBUG_VMPRINT`] (which only
//! prints the caller's page table) returns -1 while [`kdebug_enabled`]
//! is 0. `kfault enable` (or `kdebug(KDEBUG_ENABLE)`) turns it on until the
//! next boot and says so on the console, so a machine never crashes through
//! here without a line that explains why. A teacher's summary: "system call
//! 30 is a crash button with a safety catch; `kfault enable` releases the
//! catch, `kfault remap` presses the button".
//!
//! Each fault calls the same functions a buggy kernel would, so the panic's
//! backtrace, the page tables and the kernel's data are real:
//!
//! | op | panic | path |
//! |---|---|---|
//! | `remap` | `remap` | `uvmalloc` grows the user memory from 0 over the process's text: `mappages` finds VA 0 mapped |
//! | `remap-kstack` | `remap` | `mappages` maps the process's kernel stack a second time into its `kpagetable` |
//! | `kvmpa` | `kvmpa: 0x...` | `kvmpa` of the guard page under this process's kernel stack finds no mapping |
//! | `uvmunmap` | `uvmunmap: not mapped` | `uvmdealloc` shrinks from one page past `sz`, so `uvmunmap` meets an invalid PTE |
//! | `freewalk` | `freewalk: leaf` | `uvmfree(pt, 0)` of a page table that still maps a page |
//! | `remap-trampoline` | `remap` | a new kernel page table copies every root entry of `kernel_pagetable` (the trampoline's gigabyte too), then `mappages` maps TRAMPOLINE again: the per-process kernel page table lab's classic |
//! | `pagefault` | `kerneltrap` | a load from the guard page under the kernel stack: scause 13, stval = the guard page |

use crate::kalloc::kzalloc;
use crate::memlayout::TRAMPOLINE;
use crate::proc::{myproc, Proc};
use crate::riscv::{pg_round_up, PhysAddr, PteFlags, VirtAddr, PGSIZE};
use crate::syscall::argint;
use crate::sysproc::ERR;
use crate::vm;

/// The system call's number (above xv6's 1..21 and the labs' 22..29).
pub const SYS_KDEBUG: usize = 30;

/// `kdebug(0)`: 1 if fault injection is enabled, else 0. Always allowed.
pub const KDEBUG_STATUS: i32 = 0;
/// `kdebug(1)`: enable fault injection until the next boot.
pub const KDEBUG_ENABLE: i32 = 1;
/// Panic `remap`: grow user memory over the mapped text at VA 0.
pub const KDEBUG_REMAP: i32 = 2;
/// Panic `remap`: map the kernel stack again into the process's kpagetable.
pub const KDEBUG_REMAP_KSTACK: i32 = 3;
/// Panic `kvmpa: VA`: translate the unmapped kernel-stack guard page.
pub const KDEBUG_KVMPA: i32 = 4;
/// Panic `uvmunmap: not mapped`: shrink from past the end of user memory.
pub const KDEBUG_UVMUNMAP: i32 = 5;
/// Panic `freewalk: leaf`: free a page table that still maps a page.
pub const KDEBUG_FREEWALK: i32 = 6;
/// Kernel load page fault on the kernel-stack guard page (`kerneltrap`).
pub const KDEBUG_PAGEFAULT: i32 = 7;

/// Panic `remap`: a table sharing the kernel's top entry maps TRAMPOLINE again.
pub const KDEBUG_REMAP_TRAMPOLINE: i32 = 8;
/// Print the caller's user page table with the lab's `vmprint` (no panic;
/// always allowed, like [`KDEBUG_STATUS`]). `vmsteps` uses it, and the
/// tests of `kinspect diff` take the kernel's own listing as their oracle.
pub const KDEBUG_VMPRINT: i32 = 9;

/// 1 once `kdebug(KDEBUG_ENABLE)` ran since boot (unmangled, so kinspect
/// and gdb can show it: `p kdebug_enabled`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut kdebug_enabled: i32 = 0;

fn enabled() -> bool {
    // SAFETY: an aligned i32 only ever read or written whole.
    unsafe { core::ptr::read_volatile(&raw const kdebug_enabled) != 0 }
}

/// `int kdebug(int op)`: see the module documentation. Returns 0 (or the
/// status), -1 for an unknown op or while disabled; the fault ops do not
/// return.
#[cfg_attr(not(test), no_mangle)]
pub fn sys_kdebug() -> u64 {
    let op = argint(0);
    let p = myproc();
    // SAFETY: these fields are private to the current process; only its
    // own exec (not running now) replaces a table, and freeproc runs after
    // it has exited.
    let (pid, sz, pagetable, kpagetable, kstack) = unsafe {
        (
            (*p).pid,
            (*p).sz,
            Proc::pagetable(p),
            Proc::kpagetable(p),
            (*p).kstack,
        )
    };
    match op {
        KDEBUG_STATUS => return enabled() as u64,
        KDEBUG_VMPRINT => {
            println!("vmprint of pid {}:", pid);
            vm::vmprint(pagetable);
            return 0;
        }
        KDEBUG_ENABLE => {
            // SAFETY: as in `enabled`.
            unsafe { core::ptr::write_volatile(&raw mut kdebug_enabled, 1) };
            println!("kdebug: fault injection enabled by pid {}", pid);
            return 0;
        }
        _ if !enabled() => return ERR,
        _ => {}
    }
    match op {
        KDEBUG_REMAP => {
            // A user region grown over an existing mapping: VA 0 holds the
            // program's text, and uvmalloc maps from the old size 0 again.
            let _ = vm::uvmalloc(pagetable, 0, PGSIZE, PteFlags::W);
        }
        KDEBUG_REMAP_KSTACK => {
            // A kernel stack mapped twice (as if both at boot and in
            // allocproc): the kpagetable already maps KSTACK(i).
            if let Some(page) = kzalloc() {
                let _ = vm::mappages(
                    kpagetable,
                    VirtAddr(kstack),
                    PGSIZE,
                    page,
                    PteFlags::R | PteFlags::W,
                );
            }
        }
        KDEBUG_KVMPA => {
            // xv6's kvmpa panicked on an unmapped kernel address; ours
            // returns None, so say it the way xv6 did, with the address.
            let guard = kstack - PGSIZE;
            let pa: Option<PhysAddr> = vm::kvmpa(vm::kernel_pagetable_root(), VirtAddr(guard));
            if pa.is_none() {
                panic!("kvmpa: {:#x}", guard);
            }
        }
        KDEBUG_UVMUNMAP => {
            // Shrinking from a size larger than the real one: the page
            // after sz was never mapped.
            vm::uvmdealloc(pagetable, pg_round_up(sz) + PGSIZE, sz);
        }
        KDEBUG_FREEWALK => {
            // Freeing a page table with uvmfree(pt, 0) while it still
            // maps a page: freewalk meets the leaf.
            if let (Some(pt), Some(page)) = (vm::uvmcreate(), kzalloc()) {
                if vm::mappages(pt.view(), VirtAddr(0), PGSIZE, page, PteFlags::R | PteFlags::U).is_ok() {
                    vm::uvmfree(pt, 0);
                }
            }
        }
        KDEBUG_REMAP_TRAMPOLINE => {
            // The pgtbl lab's classic: build a per-process kernel page
            // table by copying every root entry of the kernel's (the
            // trampoline's gigabyte included), then map the trampoline
            // into it as if it were empty there.
            let kernel = vm::kernel_pagetable_root();
            let tramp = vm::kvmpa(kernel, VirtAddr(TRAMPOLINE));
            if let (Some(pt), Some(tramp)) = (vm::uvmcreate(), tramp) {
                for i in 0..512 {
                    // SAFETY: pt's root is a fresh page of ours.
                    unsafe { (*pt.view().as_ptr()).entries[i] = kernel.entry(i) };
                }
                let _ = vm::mappages(
                    pt.view(),
                    VirtAddr(TRAMPOLINE),
                    PGSIZE,
                    tramp,
                    PteFlags::R | PteFlags::X,
                );
            }
        }
        KDEBUG_PAGEFAULT => {
            // The guard page under this process's kernel stack is unmapped
            // (what a kernel stack overflow runs into).
            let guard = (kstack - PGSIZE) as usize as *const u64;
            // SAFETY: deliberately not: this load faults, and kerneltrap
            // panics. That is the point of the operation.
            let v = unsafe { core::ptr::read_volatile(guard) };
            return v;
        }
        _ => {}
    }
    ERR
}
