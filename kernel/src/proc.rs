//! Processes and harts (xv6's proc.h/proc.c): the process table `proc`, the
//! per-hart state `cpus`, and the scheduler.
//!
//! Both tables are unmangled `#[repr(C)]` statics whose fields carry xv6's
//! names, so kinspect reads them by DWARF name exactly as on C xv6 (see
//! docs/kernel-contract.md).

use crate::param::{NCPU, NPROC};
use crate::riscv::PageTable;
use crate::spinlock::Spinlock;

/// Saved registers for kernel context switches (`swtch`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub ra: u64,
    pub sp: u64,
    // callee-saved
    pub s0: u64,
    pub s1: u64,
    pub s2: u64,
    pub s3: u64,
    pub s4: u64,
    pub s5: u64,
    pub s6: u64,
    pub s7: u64,
    pub s8: u64,
    pub s9: u64,
    pub s10: u64,
    pub s11: u64,
}

impl Context {
    pub const fn zero() -> Context {
        Context {
            ra: 0,
            sp: 0,
            s0: 0,
            s1: 0,
            s2: 0,
            s3: 0,
            s4: 0,
            s5: 0,
            s6: 0,
            s7: 0,
            s8: 0,
            s9: 0,
            s10: 0,
            s11: 0,
        }
    }
}

/// Per-CPU (per-hart) state.
///
/// Only its own hart touches a `Cpu`, with interrupts off (so it cannot be
/// rescheduled onto another hart in the middle).
#[repr(C)]
pub struct Cpu {
    /// The process running on this cpu, or null.
    pub proc: *mut Proc,
    /// swtch() here to enter scheduler().
    pub context: Context,
    /// Depth of push_off() nesting.
    pub noff: i32,
    /// Were interrupts enabled before push_off()?
    pub intena: i32,
}

impl Cpu {
    pub const fn new() -> Cpu {
        Cpu {
            proc: core::ptr::null_mut(),
            context: Context::zero(),
            noff: 0,
            intena: 0,
        }
    }
}

/// Per-process data for the trap handling code in trampoline.rs. Sits in a
/// page by itself just under the trampoline page in the user page table.
/// Not specially mapped in the kernel page table. uservec in trampoline.rs
/// saves user registers in the trapframe, then initializes registers from
/// the trapframe's kernel_sp, kernel_hartid, kernel_satp, and jumps to
/// kernel_trap. usertrapret() and userret in trampoline.rs set up the
/// trapframe's kernel_*, restore user registers from the trapframe, switch
/// to the user page table, and enter user space. The trapframe includes
/// callee-saved user registers like s0-s11 because the return-to-user path
/// via usertrapret() doesn't return through the entire kernel call stack.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    /*   0 */ pub kernel_satp: u64, // kernel page table
    /*   8 */ pub kernel_sp: u64, // top of process's kernel stack
    /*  16 */ pub kernel_trap: u64, // usertrap()
    /*  24 */ pub epc: u64, // saved user program counter
    /*  32 */ pub kernel_hartid: u64, // saved kernel tp
    /*  40 */ pub ra: u64,
    /*  48 */ pub sp: u64,
    /*  56 */ pub gp: u64,
    /*  64 */ pub tp: u64,
    /*  72 */ pub t0: u64,
    /*  80 */ pub t1: u64,
    /*  88 */ pub t2: u64,
    /*  96 */ pub s0: u64,
    /* 104 */ pub s1: u64,
    /* 112 */ pub a0: u64,
    /* 120 */ pub a1: u64,
    /* 128 */ pub a2: u64,
    /* 136 */ pub a3: u64,
    /* 144 */ pub a4: u64,
    /* 152 */ pub a5: u64,
    /* 160 */ pub a6: u64,
    /* 168 */ pub a7: u64,
    /* 176 */ pub s2: u64,
    /* 184 */ pub s3: u64,
    /* 192 */ pub s4: u64,
    /* 200 */ pub s5: u64,
    /* 208 */ pub s6: u64,
    /* 216 */ pub s7: u64,
    /* 224 */ pub s8: u64,
    /* 232 */ pub s9: u64,
    /* 240 */ pub s10: u64,
    /* 248 */ pub s11: u64,
    /* 256 */ pub t3: u64,
    /* 264 */ pub t4: u64,
    /* 272 */ pub t5: u64,
    /* 280 */ pub t6: u64,
}

/// A process's state (C xv6: `enum procstate`, same order and values).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    Unused,
    Used,
    Sleeping,
    Runnable,
    Running,
    Zombie,
}

impl ProcState {
    /// The name procdump (Ctrl-P) prints.
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Unused => "unused",
            ProcState::Used => "used",
            ProcState::Sleeping => "sleep ",
            ProcState::Runnable => "runble",
            ProcState::Running => "run   ",
            ProcState::Zombie => "zombie",
        }
    }
}

/// Per-process state (C xv6: `struct proc`).
#[repr(C)]
pub struct Proc {
    pub lock: Spinlock,

    // p->lock must be held when using these:
    /// Process state.
    pub state: ProcState,
    /// If non-zero, sleeping on chan.
    pub chan: usize,
    /// If non-zero, have been killed.
    pub killed: i32,
    /// Exit status to be returned to parent's wait.
    pub xstate: i32,
    /// Process ID.
    pub pid: i32,

    // wait_lock must be held when using this:
    /// Parent process.
    pub parent: *mut Proc,

    // these are private to the process, so p->lock need not be held.
    /// Virtual address of kernel stack (KSTACK(slot), fixed at boot).
    pub kstack: u64,
    /// Size of process memory (bytes).
    pub sz: u64,
    /// User page table.
    pub pagetable: *mut PageTable,
    /// This process's kernel page table: the kernel's mappings plus its own
    /// kernel stack; satp holds it while the process runs in the kernel.
    pub kpagetable: *mut PageTable,
    /// Data page for trampoline.rs.
    pub trapframe: *mut TrapFrame,
    /// swtch() here to run process.
    pub context: Context,
    /// Process name (debugging), NUL-padded.
    pub name: [u8; 16],
}

impl Proc {
    pub const fn new() -> Proc {
        Proc {
            lock: Spinlock::new("proc"),
            state: ProcState::Unused,
            chan: 0,
            killed: 0,
            xstate: 0,
            pid: 0,
            parent: core::ptr::null_mut(),
            kstack: 0,
            sz: 0,
            pagetable: core::ptr::null_mut(),
            kpagetable: core::ptr::null_mut(),
            trapframe: core::ptr::null_mut(),
            context: Context::zero(),
            name: [0; 16],
        }
    }
}

/// The per-hart state, indexed by hart id (C xv6: `struct cpu cpus[NCPU]`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut cpus: [Cpu; NCPU] = [const { Cpu::new() }; NCPU];

/// The process table (C xv6: `struct proc proc[NPROC]`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut proc: [Proc; NPROC] = [const { Proc::new() }; NPROC];

/// Pointer to process slot `i`.
pub fn proc_slot(i: usize) -> *mut Proc {
    // SAFETY: only computes the address of an element of the static.
    unsafe { &raw mut proc[i] }
}

/// Must be called with interrupts disabled, to prevent race with process
/// being moved to a different CPU.
pub fn cpuid() -> usize {
    crate::riscv::r_tp() as usize
}

/// Return this hart's cpu struct. Interrupts must be disabled.
#[cfg(not(test))]
pub fn mycpu() -> *mut Cpu {
    let id = cpuid();
    // SAFETY: only computes the address; id < NCPU (start checks the hart
    // count).
    unsafe { &raw mut cpus[id] }
}

/// On the host, each test thread is its own "hart".
#[cfg(test)]
pub fn mycpu() -> *mut Cpu {
    extern crate std;
    std::thread_local! {
        static CPU: core::cell::UnsafeCell<Cpu> = const { core::cell::UnsafeCell::new(Cpu::new()) };
    }
    CPU.with(|c| c.get())
}

/// Return the current struct proc *, or null if none.
pub fn myproc() -> *mut Proc {
    crate::spinlock::push_off();
    let c = mycpu();
    // SAFETY: interrupts are off; this hart's Cpu is ours.
    let p = unsafe { (*c).proc };
    crate::spinlock::pop_off();
    p
}

/// Initialize the proc table: each slot's kernel stack address (the stacks
/// themselves are mapped by kvminit).
pub fn procinit() {
    for i in 0..NPROC {
        let p = proc_slot(i);
        // SAFETY: boot, hart 0 alone.
        unsafe { (*p).kstack = crate::memlayout::kstack(i) };
    }
}
