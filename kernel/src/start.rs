//! The first code each hart runs (xv6's entry.S and start.c): `_entry` at
//! 0x80000000 in machine mode gives the hart a boot stack, `start` sets up
//! what only machine mode can (trap delegation, physical memory protection,
//! the timer) and drops to supervisor mode in `main`.

use crate::param::NCPU;
#[cfg(target_arch = "riscv64")]
use crate::riscv::*;

/// Bytes of boot stack per hart; the hart's scheduler runs on it later.
pub const STACK_SIZE: usize = 1 << STACK_SHIFT;
const STACK_SHIFT: usize = 14;

/// Boot stacks, one per hart (C xv6: `stack0`).
#[repr(C, align(16))]
pub struct BootStacks(pub [u8; STACK_SIZE * NCPU]);

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut stack0: BootStacks = BootStacks([0; STACK_SIZE * NCPU]);

// qemu -kernel loads the kernel at 0x80000000 and causes each hart (i.e.
// CPU) to jump there. kernel.ld causes the following code to be placed at
// 0x80000000. Harts beyond NCPU park here.
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".globl _entry",
    "_entry:",
    // park harts the kernel has no room for.
    "        csrr a1, mhartid",
    "        li a0, {ncpu}",
    "        bgeu a1, a0, 2f",
    // set up a stack for C/Rust: sp = stack0 + (hartid + 1) * STACK_SIZE.
    "        la sp, stack0",
    "        addi a1, a1, 1",
    "        slli a1, a1, {shift}",
    "        add sp, sp, a1",
    // an empty frame chain for debuggers.
    "        li s0, 0",
    "        li ra, 0",
    "        call start",
    "2:",
    "        wfi",
    "        j 2b",
    ncpu = const NCPU,
    shift = const STACK_SHIFT,
);

/// Machine-mode setup on every hart, then `mret` to `main` in supervisor
/// mode. Runs on the boot stack with paging off.
#[cfg(target_arch = "riscv64")]
#[no_mangle]
pub extern "C" fn start() -> ! {
    // SAFETY: machine mode at boot, paging off, on this hart's boot stack:
    // each write below is one step of xv6's start(), and none of them can
    // unmap or corrupt the code and stack running now.
    unsafe {
        // set M Previous Privilege mode to Supervisor, for mret.
        let mut x = r_mstatus();
        x &= !MSTATUS_MPP_MASK;
        x |= MSTATUS_MPP_S;
        w_mstatus(x);

        // set M Exception Program Counter to main, for mret.
        w_mepc(crate::main as *const () as usize as u64);

        // disable paging for now.
        w_satp(0);

        // delegate all interrupts and exceptions to supervisor mode.
        w_medeleg(0xffff);
        w_mideleg(0xffff);
        w_sie(r_sie() | SIE_SEIE | SIE_STIE | SIE_SSIE);

        // configure Physical Memory Protection to give supervisor mode
        // access to all of physical memory.
        w_pmpaddr0(0x3f_ffff_ffff_ffff);
        w_pmpcfg0(0xf);
    }

    // ask for clock interrupts.
    timerinit();

    // keep each CPU's hartid in its tp register, for cpuid().
    // SAFETY: mhartid is this hart's id.
    unsafe { w_tp(r_mhartid()) };

    // switch to supervisor mode and jump to main().
    // SAFETY: mstatus.MPP = S and mepc = main were set above.
    unsafe { core::arch::asm!("mret", options(noreturn)) }
}

/// Ask each hart to generate timer interrupts, in supervisor mode, through
/// the Sstc extension's `stimecmp` (QEMU 7.2's rv64 harts have it).
#[cfg(target_arch = "riscv64")]
fn timerinit() {
    // SAFETY: machine mode at boot; these only enable the supervisor timer,
    // whose interrupt S mode takes once main has installed its trap vector
    // (interrupts stay off until then).
    unsafe {
        // enable supervisor-mode timer interrupts.
        w_mie(r_mie() | MIE_STIE);
        // enable the sstc extension (i.e. stimecmp).
        w_menvcfg(r_menvcfg() | (1 << 63));
        // allow supervisor to use stimecmp and time.
        w_mcounteren(r_mcounteren() | 2);
        // ask for the very first timer interrupt.
        w_stimecmp(r_time() + 1_000_000);
    }
}
