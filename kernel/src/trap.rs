//! Traps: system calls, exceptions and device interrupts (xv6's trap.c and
//! kernelvec.S).
//!
//! From user space a trap enters `uservec` (trampoline.rs), which switches
//! to the process's kernel page table and stack and calls [`usertrap`];
//! [`usertrapret`] goes back through `userret`. In the kernel, traps enter
//! `kernelvec` below, which saves the caller-saved registers on the current
//! kernel stack and calls [`kerneltrap`].

#[cfg(target_arch = "riscv64")]
use crate::memlayout::TRAMPOLINE;
use crate::memlayout::{UART0_IRQ, VIRTIO0_IRQ};
use crate::plic::{plic_claim, plic_complete};
use crate::proc::{cpuid, exit, killed, myproc, setkilled, yield_};
use crate::riscv::*;
use crate::spinlock::SpinLock;

/// Timer ticks since boot (hart 0 counts); `sleep` and `uptime` use it. The
/// wakeup channel for tick sleepers is the lock's address.
pub static TICKS: SpinLock<u32> = SpinLock::new(0, "time");

/// The wakeup channel for processes sleeping on ticks.
pub fn ticks_chan() -> usize {
    &TICKS as *const SpinLock<u32> as usize
}

// Interrupts and exceptions while in supervisor mode come here. Push the
// caller-saved registers, plus a frame record (sepc, interrupted s0) so a
// frame-pointer backtrace runs through the trap, and call kerneltrap().
#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".section .text",
    ".globl kerneltrap",
    ".globl kernelvec",
    ".align 4",
    "kernelvec:",
    // make room to save registers.
    "        addi sp, sp, -256",
    // save caller-saved registers, and s0, which the frame record below uses.
    "        sd ra, 0(sp)",
    "        sd gp, 8(sp)",
    "        sd tp, 16(sp)",
    "        sd t0, 24(sp)",
    "        sd t1, 32(sp)",
    "        sd t2, 40(sp)",
    "        sd a0, 48(sp)",
    "        sd a1, 56(sp)",
    "        sd a2, 64(sp)",
    "        sd a3, 72(sp)",
    "        sd a4, 80(sp)",
    "        sd a5, 88(sp)",
    "        sd a6, 96(sp)",
    "        sd a7, 104(sp)",
    "        sd t3, 112(sp)",
    "        sd t4, 120(sp)",
    "        sd t5, 128(sp)",
    "        sd t6, 136(sp)",
    "        sd s0, 144(sp)",
    // frame record at the top of this frame: return address = sepc,
    // previous frame = interrupted s0, so backtraces run through the trap.
    "        csrr t0, sepc",
    "        sd t0, 248(sp)",
    "        sd s0, 240(sp)",
    "        addi s0, sp, 256",
    // call the Rust trap handler in trap.rs
    "        call kerneltrap",
    // restore registers; not tp (contains hartid), in case we moved CPUs.
    "        ld ra, 0(sp)",
    "        ld gp, 8(sp)",
    "        ld t0, 24(sp)",
    "        ld t1, 32(sp)",
    "        ld t2, 40(sp)",
    "        ld a0, 48(sp)",
    "        ld a1, 56(sp)",
    "        ld a2, 64(sp)",
    "        ld a3, 72(sp)",
    "        ld a4, 80(sp)",
    "        ld a5, 88(sp)",
    "        ld a6, 96(sp)",
    "        ld a7, 104(sp)",
    "        ld t3, 112(sp)",
    "        ld t4, 120(sp)",
    "        ld t5, 128(sp)",
    "        ld t6, 136(sp)",
    "        ld s0, 144(sp)",
    "        addi sp, sp, 256",
    // return to whatever we were doing in the kernel.
    "        sret",
);

#[cfg(target_arch = "riscv64")]
extern "C" {
    fn kernelvec();
    fn uservec();
    fn userret(satp: u64);
    static trampoline: u8;
}

/// Address of kernelvec, for stvec.
#[cfg(target_arch = "riscv64")]
fn kernelvec_addr() -> u64 {
    kernelvec as *const () as u64
}
/// Host builds have no kernelvec.
#[cfg(not(target_arch = "riscv64"))]
fn kernelvec_addr() -> u64 {
    0
}

/// Set up to take exceptions and traps while in the kernel (every hart).
pub fn trapinithart() {
    // SAFETY: kernelvec is the kernel's trap entry, mapped in every kernel
    // page table (it is kernel text).
    unsafe { w_stvec(kernelvec_addr()) };
}

/// Handle an interrupt, exception, or system call from user space. Called
/// from trampoline.rs's uservec.
#[no_mangle]
pub extern "C" fn usertrap() -> ! {
    if r_sstatus() & SSTATUS_SPP != 0 {
        panic!("usertrap: not from user mode");
    }
    // send interrupts and exceptions to kerneltrap(), since we're now in
    // the kernel.
    // SAFETY: as in trapinithart.
    unsafe { w_stvec(kernelvec_addr()) };

    let p = myproc();
    // SAFETY: a trap from user space always has a current process, whose
    // trapframe page is private to it.
    let tf = unsafe { &mut *(*p).trapframe };
    // save user program counter.
    tf.epc = r_sepc();

    let scause = r_scause();
    let mut which_dev = 0;
    if scause == 8 {
        // system call
        // SAFETY: `p` is myproc(), a slot of the process table.
        if unsafe { killed(p) } {
            exit(-1);
        }
        // sepc points to the ecall instruction, but we want to return to
        // the next instruction.
        tf.epc += 4;
        // an interrupt will change sepc, scause, and sstatus, so enable
        // only now that we're done with those registers.
        intr_on();
        crate::syscall::syscall();
    } else {
        which_dev = devintr();
        if which_dev == 0 {
            // SAFETY: p is the current process; pid and name are private.
            let (pid, name) = unsafe { ((*p).pid, crate::proc::name_str(&(*p).name)) };
            println!(
                "usertrap(): unexpected scause {:#x} pid={} {}",
                scause, pid, name
            );
            println!("            sepc={:#x} stval={:#x}", r_sepc(), r_stval());
            // SAFETY: `p` is myproc(), a slot of the process table.
            unsafe { setkilled(p) };
        }
    }

    // SAFETY: `p` is myproc(), a slot of the process table.
    if unsafe { killed(p) } {
        exit(-1);
    }

    // give up the CPU if this is a timer interrupt.
    if which_dev == 2 {
        yield_();
    }

    usertrapret();
}

/// Return to user space: set up the trapframe for the next trap and jump
/// to userret in the trampoline, which switches to the user page table.
pub fn usertrapret() -> ! {
    let p = myproc();

    // we're about to switch the destination of traps from kerneltrap() to
    // usertrap(), so turn off interrupts until we're back in user space,
    // where usertrap() is correct.
    intr_off();

    #[cfg(target_arch = "riscv64")]
    {
        let tramp = &raw const trampoline as u64;
        // send syscalls, interrupts, and exceptions to uservec in the
        // trampoline.
        let trampoline_uservec = TRAMPOLINE + (uservec as *const () as u64 - tramp);
        // SAFETY: interrupts are off, and uservec is mapped at this address
        // in the user page table the hart is about to switch to.
        unsafe { w_stvec(trampoline_uservec) };

        // set up trapframe values that uservec will need when the process
        // next traps into the kernel.
        // SAFETY: p is the current process; its trapframe, kstack and page
        // tables are private to it.
        let satp = unsafe {
            let tf = &mut *(*p).trapframe;
            tf.kernel_satp = make_satp(PhysAddr::from_ptr((*p).kpagetable)); // this process's kernel page table
            tf.kernel_sp = (*p).kstack + PGSIZE; // process's kernel stack
            tf.kernel_trap = usertrap as *const () as u64;
            tf.kernel_hartid = r_tp(); // hartid for cpuid()

            // set up the registers that trampoline's sret will use to get
            // to user space.

            // set S Previous Privilege mode to User.
            let mut x = r_sstatus();
            x &= !SSTATUS_SPP; // clear SPP to 0 for user mode
            x |= SSTATUS_SPIE; // enable interrupts in user mode
                               // SAFETY (sstatus, sepc): interrupts are off until userret's
                               // sret, which uses exactly these to enter user mode at tf.epc.
            w_sstatus(x);

            // set S Exception Program Counter to the saved user pc.
            w_sepc(tf.epc);

            // tell trampoline.rs the user page table to switch to.
            make_satp(PhysAddr::from_ptr((*p).pagetable))
        };

        // jump to userret in the trampoline at the top of memory, which
        // switches to the user page table, restores user registers, and
        // switches to user mode with sret.
        let trampoline_userret = TRAMPOLINE + (userret as *const () as u64 - tramp);
        // SAFETY: the trampoline is mapped at TRAMPOLINE in both this
        // process's kernel page table and its user page table.
        unsafe {
            let f: extern "C" fn(u64) -> ! = core::mem::transmute(trampoline_userret as usize);
            f(satp)
        }
    }
    #[cfg(not(target_arch = "riscv64"))]
    {
        let _ = p;
        unreachable!("usertrapret on the host")
    }
}

/// Interrupts and exceptions from kernel code go here via kernelvec, on
/// whatever the current kernel stack is.
#[no_mangle]
pub extern "C" fn kerneltrap() {
    let sepc = r_sepc();
    let sstatus = r_sstatus();
    let scause = r_scause();

    if sstatus & SSTATUS_SPP == 0 {
        panic!("kerneltrap: not from supervisor mode");
    }
    if intr_get() {
        panic!("kerneltrap: interrupts enabled");
    }

    let which_dev = devintr();
    if which_dev == 0 {
        // interrupt or trap from an unknown source
        println!(
            "scause={:#x} sepc={:#x} stval={:#x}",
            scause,
            sepc,
            r_stval()
        );
        panic!("kerneltrap");
    }

    // give up the CPU if this is a timer interrupt.
    if which_dev == 2 && !myproc().is_null() {
        yield_();
    }

    // the yield() may have caused some traps to occur, so restore trap
    // registers for use by kernelvec.S's sepc instruction.
    // SAFETY: the values this trap arrived with, which kernelvec's sret
    // returns through (interrupts are off again: devintr and yield
    // return with them off).
    unsafe {
        w_sepc(sepc);
        w_sstatus(sstatus);
    }
}

/// The timer interrupt: count a tick (hart 0) and ask for the next one.
fn clockintr() {
    if cpuid() == 0 {
        let mut t = TICKS.lock();
        *t = t.wrapping_add(1);
        crate::proc::wakeup(ticks_chan());
        drop(t);
    }
    // ask for the next timer interrupt. this also clears the interrupt
    // request. 1000000 is about a tenth of a second.
    // SAFETY: only moves this hart's next timer interrupt.
    unsafe { w_stimecmp(r_time() + 1_000_000) };
}

/// Check if it's an external interrupt or software interrupt, and handle
/// it. Returns 2 if timer interrupt, 1 if other device, 0 if not
/// recognized.
pub fn devintr() -> i32 {
    let scause = r_scause();
    if scause == 0x8000_0000_0000_0009 {
        // this is a supervisor external interrupt, via PLIC.
        // irq indicates which device interrupted.
        let irq = plic_claim();
        if irq == UART0_IRQ {
            crate::uart::uartintr();
        } else if irq == VIRTIO0_IRQ {
            crate::virtio_disk::virtio_disk_intr();
        } else if irq != 0 {
            println!("unexpected interrupt irq={}", irq);
        }
        // the PLIC allows each device to raise at most one interrupt at a
        // time; tell the PLIC the device is now allowed to interrupt again.
        if irq != 0 {
            plic_complete(irq);
        }
        1
    } else if scause == 0x8000_0000_0000_0005 {
        // timer interrupt.
        clockintr();
        2
    } else {
        0
    }
}
