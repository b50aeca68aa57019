//! Processes and harts (xv6's proc.h/proc.c): the process table `proc`, the
//! per-hart state `cpus`, and the scheduler.
//!
//! Both tables are unmangled `#[repr(C)]` statics whose fields carry xv6's
//! names, so kinspect reads them by DWARF name exactly as on C xv6 (see
//! docs/kernel-contract.md).

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::file::File;
use crate::fs::Inode;
use crate::memlayout::{TRAMPOLINE, TRAPFRAME};
use crate::param::{NCPU, NOFILE, NPROC};
use crate::riscv::{
    intr_get, intr_off, intr_on, PageTable, Pagetable, PagetableRef, PhysAddr, PteFlags, VirtAddr, PGSIZE,
};
use crate::spinlock::{SpinLock, Spinlock};
use crate::swtch::swtch;
use crate::vm::{self, VmError};

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
    /// Open files, indexed by file descriptor (null: closed).
    pub ofile: [*mut File; NOFILE],
    /// Current directory.
    pub cwd: *mut Inode,
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
            ofile: [core::ptr::null_mut(); NOFILE],
            cwd: core::ptr::null_mut(),
            name: [0; 16],
        }
    }

    /// `p`'s user page table, borrowed from its C-layout field. Panics
    /// `proc: no pagetable` if the slot has none (allocproc gives one).
    ///
    /// # Safety
    /// `p` points at a `Proc`, and for `'a` nobody frees or replaces its
    /// table: the caller is `p` itself (the field is private to the
    /// process; only its own exec replaces it), or holds `p->lock` while `p`
    /// cannot run or exit (allocproc/fork before it is runnable, wait on a
    /// zombie).
    pub unsafe fn pagetable<'a>(p: *const Proc) -> PagetableRef<'a> {
        // SAFETY: the caller's contract keeps the field alive and unchanged.
        unsafe { PagetableRef::from_field(&raw const (*p).pagetable) }.expect("proc: no pagetable")
    }

    /// `p`'s kernel page table, borrowed like [`Proc::pagetable`]. Panics
    /// `proc: no kpagetable` if the slot has none.
    ///
    /// # Safety
    /// As for [`Proc::pagetable`]; the scheduler may also borrow it while it
    /// holds `p->lock` (freeproc needs that lock).
    pub unsafe fn kpagetable<'a>(p: *const Proc) -> PagetableRef<'a> {
        // SAFETY: the caller's contract keeps the field alive and unchanged.
        unsafe { PagetableRef::from_field(&raw const (*p).kpagetable) }.expect("proc: no kpagetable")
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

/// The next pid to hand out.
static NEXTPID: SpinLock<i32> = SpinLock::new(1, "nextpid");

/// Helps ensure that wakeups of wait()ing parents are not lost. Helps obey
/// the memory model when using p->parent. Must be acquired before any
/// p->lock.
pub static WAIT_LOCK: Spinlock = Spinlock::new("wait_lock");

/// The first user process (runs /init); orphans are reparented to it.
static INITPROC: AtomicPtr<Proc> = AtomicPtr::new(core::ptr::null_mut());

/// `name` up to its first NUL, for printing.
pub fn name_str(name: &[u8]) -> &str {
    let n = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..n]).unwrap_or("???")
}

/// Copy `src` into a process name, truncating and NUL-terminating.
pub fn set_name(dst: &mut [u8; 16], src: &[u8]) {
    let n = src
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(src.len())
        .min(15);
    dst[..n].copy_from_slice(&src[..n]);
    dst[n..].fill(0);
}

/// Hand out the next process id (1, 2, ...).
fn allocpid() -> i32 {
    let mut next = NEXTPID.lock();
    let pid = *next;
    *next += 1;
    pid
}

/// Look in the process table for an UNUSED proc. If found, initialize
/// state required to run in the kernel (trapframe, user page table with
/// trampoline and trapframe, per-process kernel page table, context that
/// starts at forkret) and return with p->lock held. If there are no free
/// procs, or a memory allocation fails, return null.
#[cfg_attr(not(test), no_mangle)]
fn allocproc() -> *mut Proc {
    let mut found = core::ptr::null_mut();
    for i in 0..NPROC {
        let p = proc_slot(i);
        // SAFETY: p points into the static table; lock is a Sync field.
        let lock = unsafe { &(*p).lock };
        lock.acquire();
        // SAFETY: p->lock is held.
        if unsafe { (*p).state } == ProcState::Unused {
            found = p;
            break;
        }
        lock.release();
    }
    let p = found;
    if p.is_null() {
        return p;
    }
    // SAFETY: we hold p->lock and the slot is unused: its fields are ours.
    unsafe {
        (*p).pid = allocpid();
        (*p).state = ProcState::Used;

        // Allocate a trapframe page.
        match crate::kalloc::kzalloc() {
            Some(pa) => (*p).trapframe = pa.as_mut_ptr::<TrapFrame>(),
            None => {
                freeproc(p);
                (*p).lock.release();
                return core::ptr::null_mut();
            }
        }

        // An empty user page table.
        match proc_pagetable(p) {
            Some(pt) => (*p).pagetable = pt.into_raw(),
            None => {
                freeproc(p);
                (*p).lock.release();
                return core::ptr::null_mut();
            }
        }

        // This process's view of the kernel, with its own kernel stack.
        let kernel = vm::kernel_pagetable_root();
        let kstack_pa = vm::kvmpa(kernel, VirtAddr((*p).kstack));
        match kstack_pa.and_then(|pa| vm::kvmcreate(kernel, VirtAddr((*p).kstack), pa)) {
            Some(kpt) => (*p).kpagetable = kpt.into_raw(),
            None => {
                freeproc(p);
                (*p).lock.release();
                return core::ptr::null_mut();
            }
        }

        // Set up new context to start executing at forkret, which returns
        // to user space.
        (*p).context = Context::zero();
        (*p).context.ra = forkret as *const () as u64;
        (*p).context.sp = (*p).kstack + PGSIZE;
    }
    p
}

/// Free a proc structure and the data hanging from it, including user
/// pages and both page tables (not the kernel stack, which belongs to the
/// slot). p->lock must be held.
///
/// # Safety
/// `p` is a slot of `proc` whose lock this hart holds.
#[cfg_attr(not(test), no_mangle)]
unsafe fn freeproc(p: *mut Proc) {
    // SAFETY: caller holds p->lock.
    unsafe {
        if !(*p).trapframe.is_null() {
            crate::kalloc::kfree(PhysAddr::from_ptr((*p).trapframe));
        }
        (*p).trapframe = core::ptr::null_mut();
        // The slot gives up its tables: the fields go null as the handles
        // take them over, so nobody can reach a freed table through them.
        let pt = core::mem::replace(&mut (*p).pagetable, core::ptr::null_mut());
        // SAFETY: the field held proc_pagetable's table (or null), and p->lock
        // plus a state other than Running keep everyone else off it.
        if let Some(pt) = Pagetable::from_raw(pt) {
            proc_freepagetable(pt, (*p).sz);
        }
        let kpt = core::mem::replace(&mut (*p).kpagetable, core::ptr::null_mut());
        // SAFETY: as above, kvmcreate's table; the scheduler has switched
        // away from it before releasing p->lock.
        if let Some(kpt) = Pagetable::from_raw(kpt) {
            vm::kvmfree(kpt);
        }
        (*p).sz = 0;
        (*p).pid = 0;
        (*p).parent = core::ptr::null_mut();
        (*p).name = [0; 16];
        (*p).chan = 0;
        (*p).killed = 0;
        (*p).xstate = 0;
        (*p).state = ProcState::Unused;
    }
}

/// Create a user page table for a given process, with no user memory, but
/// with trampoline and trapframe pages. Returns None if out of memory.
///
/// # Safety
/// `p` is a slot whose trapframe is allocated, owned by the caller.
pub unsafe fn proc_pagetable(p: *mut Proc) -> Option<Pagetable> {
    // An empty page table.
    let pagetable = vm::uvmcreate()?;

    // map the trampoline code (for system call return) at the highest user
    // virtual address. only the supervisor uses it, on the way to/from
    // user space, so not PTE_U.
    if vm::mappages(
        pagetable.view(),
        VirtAddr(TRAMPOLINE),
        PGSIZE,
        crate::trampoline::trampoline_pa(),
        PteFlags::R | PteFlags::X,
    )
    .is_err()
    {
        vm::uvmfree(pagetable, 0);
        return None;
    }

    // map the trapframe page just below the trampoline page, for
    // trampoline.rs.
    // SAFETY: caller's contract.
    let tf = unsafe { (*p).trapframe };
    if vm::mappages(
        pagetable.view(),
        VirtAddr(TRAPFRAME),
        PGSIZE,
        PhysAddr::from_ptr(tf),
        PteFlags::R | PteFlags::W,
    )
    .is_err()
    {
        vm::uvmunmap(pagetable.view(), VirtAddr(TRAMPOLINE), 1, false);
        vm::uvmfree(pagetable, 0);
        return None;
    }
    Some(pagetable)
}

/// Free a process's page table, and free the physical memory it refers to.
pub fn proc_freepagetable(pagetable: Pagetable, sz: u64) {
    vm::uvmunmap(pagetable.view(), VirtAddr(TRAMPOLINE), 1, false);
    vm::uvmunmap(pagetable.view(), VirtAddr(TRAPFRAME), 1, false);
    vm::uvmfree(pagetable, sz);
}

/// Set up the first user process.
#[cfg_attr(not(test), no_mangle)]
pub fn userinit() {
    let p = allocproc();
    if p.is_null() {
        panic!("userinit: allocproc");
    }
    INITPROC.store(p, Ordering::Release);
    // SAFETY: allocproc returned p with its lock held.
    unsafe {
        // allocate one user page and copy initcode's instructions and data
        // into it.
        vm::uvmfirst(Proc::pagetable(p), crate::initcode::initcode());
        (*p).sz = PGSIZE;

        // prepare for the very first "return" from kernel to user.
        (*(*p).trapframe).epc = 0; // user program counter
        (*(*p).trapframe).sp = PGSIZE; // user stack pointer

        set_name(&mut (*p).name, b"initcode");
        (*p).cwd = crate::fs::namei(b"/");

        (*p).state = ProcState::Runnable;
        (*p).lock.release();
    }
}

/// Grow or shrink user memory by `n` bytes. Fails if the new size would
/// reach the trapframe or fall below zero, or memory runs out.
#[cfg_attr(not(test), no_mangle)]
pub fn growproc(n: i64) -> Result<(), VmError> {
    let p = myproc();
    // SAFETY: sz and pagetable are private to the current process.
    unsafe {
        let sz = (*p).sz;
        let newsz = if n >= 0 {
            let newsz = sz.checked_add(n as u64).ok_or(VmError::BadAddr)?;
            if newsz > TRAPFRAME {
                return Err(VmError::BadAddr);
            }
            vm::uvmalloc(Proc::pagetable(p), sz, newsz, PteFlags::W)?
        } else {
            let newsz = sz.checked_sub(n.unsigned_abs()).ok_or(VmError::BadAddr)?;
            vm::uvmdealloc(Proc::pagetable(p), sz, newsz)
        };
        (*p).sz = newsz;
    }
    Ok(())
}

/// Create a new process, copying the parent. Sets up child kernel stack to
/// return as if from fork() system call. Returns the child's pid, or -1.
#[cfg_attr(not(test), no_mangle)]
pub fn fork() -> i32 {
    let p = myproc();

    // Allocate process.
    let np = allocproc();
    if np.is_null() {
        return -1;
    }

    // Copy user memory from parent to child.
    // SAFETY: p is the current process, which owns its table; np's lock is
    // held (allocproc) and np cannot run yet, so its table is ours too.
    let copied = unsafe { vm::uvmcopy(Proc::pagetable(p), Proc::pagetable(np), (*p).sz) };
    if copied.is_err() {
        // SAFETY: np is a slot whose lock we hold (allocproc).
        unsafe {
            freeproc(np);
            (*np).lock.release();
        }
        return -1;
    }

    // SAFETY: np's lock is held and it is not runnable, so its private
    // fields are ours; p's sz, trapframe, ofile, cwd and name are private to
    // p, the current process; the two trapframes are distinct pages.
    unsafe {
        (*np).sz = (*p).sz;
        // copy saved user registers; fork returns 0 in the child.
        *(*np).trapframe = *(*p).trapframe;
        (*(*np).trapframe).a0 = 0;
    }

    // increment reference counts on open file descriptors.
    for i in 0..NOFILE {
        // SAFETY: as above; a non-null ofile entry of p is an open file on
        // which p holds a reference, so filedup may take another.
        unsafe {
            let f = (*p).ofile[i];
            if !f.is_null() {
                (*np).ofile[i] = crate::file::filedup(f);
            }
        }
    }
    // SAFETY: as above; p's cwd holds a reference on its inode.
    unsafe {
        (*np).cwd = crate::fs::idup((*p).cwd);
        (*np).name = (*p).name;
    }

    // SAFETY: np is a slot of the table; its lock is held (allocproc), and
    // pid is read under it.
    let pid = unsafe {
        let pid = (*np).pid;
        (*np).lock.release();
        pid
    };

    {
        let _wait = WAIT_LOCK.lock();
        // SAFETY: parent fields are guarded by WAIT_LOCK, held.
        unsafe { (*np).parent = p };
    }

    // SAFETY: np is a slot of the table; state is guarded by its lock.
    unsafe {
        let _np = (*np).lock.lock();
        (*np).state = ProcState::Runnable;
    }
    pid
}

/// Pass p's abandoned children to init. Caller must hold WAIT_LOCK.
fn reparent(p: *mut Proc) {
    let init = INITPROC.load(Ordering::Acquire);
    for i in 0..NPROC {
        let pp = proc_slot(i);
        // SAFETY: parent fields are guarded by WAIT_LOCK, which we hold.
        unsafe {
            if (*pp).parent == p {
                (*pp).parent = init;
                wakeup(init as usize);
            }
        }
    }
}

/// Exit the current process. Does not return. An exited process remains
/// in the zombie state until its parent calls wait().
#[cfg_attr(not(test), no_mangle)]
pub fn exit(status: i32) -> ! {
    let p = myproc();
    if p == INITPROC.load(Ordering::Acquire) {
        panic!("init exiting");
    }

    // SAFETY: ofile and cwd are private to the current process.
    unsafe {
        // Close all open files.
        for fd in 0..NOFILE {
            let f = (*p).ofile[fd];
            if !f.is_null() {
                crate::file::fileclose(f);
                (*p).ofile[fd] = core::ptr::null_mut();
            }
        }

        crate::log::begin_op();
        crate::fs::iput((*p).cwd);
        crate::log::end_op();
        (*p).cwd = core::ptr::null_mut();
    }

    let wait_lock = WAIT_LOCK.lock();

    // Give any children to init.
    reparent(p);

    // SAFETY: WAIT_LOCK is held for parent; p->lock for the rest.
    unsafe {
        // Parent might be sleeping in wait().
        wakeup((*p).parent as usize);

        // Held into sched() and released by whoever runs next (the
        // scheduler), as in xv6: not a guard.
        (*p).lock.acquire();
        (*p).xstate = status;
        (*p).state = ProcState::Zombie;
    }

    drop(wait_lock);

    // Jump into the scheduler, never to return.
    sched();
    panic!("zombie exit");
}

/// Wait for a child process to exit and return its pid; store its exit
/// status at user address `addr` unless 0. Returns -1 if this process has
/// no children (or is killed, or `addr` is bad).
///
/// The locks are guards: leaving by any `return` releases the child's
/// lock, then WAIT_LOCK.
#[cfg_attr(not(test), no_mangle)]
pub fn wait(addr: u64) -> i32 {
    let p = myproc();
    let mut wait_lock = WAIT_LOCK.lock();
    loop {
        // Scan through table looking for exited children.
        let mut havekids = false;
        for i in 0..NPROC {
            let pp = proc_slot(i);
            // SAFETY: parent is guarded by WAIT_LOCK, held.
            if unsafe { (*pp).parent } != p {
                continue;
            }
            // make sure the child isn't still in exit() or swtch().
            // SAFETY: pp is a slot of the table; the guard lives only in
            // this iteration.
            let _child = unsafe { (*pp).lock.lock() };
            havekids = true;
            // SAFETY: state, pid and xstate are guarded by pp->lock, held.
            let (state, pid, xstate) = unsafe { ((*pp).state, (*pp).pid, (*pp).xstate) };
            if state == ProcState::Zombie {
                // Found one.
                if addr != 0 && copyout_user(addr, &xstate.to_le_bytes()).is_err() {
                    return -1;
                }
                // SAFETY: we hold pp->lock; a zombie no longer runs, so its
                // memory and page tables are ours to free.
                unsafe { freeproc(pp) };
                return pid;
            }
        }

        // No point waiting if we don't have any children.
        // SAFETY: p is myproc(), a slot of the process table.
        if !havekids || unsafe { killed(p) } {
            return -1;
        }

        // Wait for a child to exit.
        wait_lock = wait_lock.sleep(p as usize);
    }
}

/// Per-CPU process scheduler. Each CPU calls scheduler() after setting
/// itself up. Scheduler never returns. It loops, doing:
///  - choose a process to run.
///  - switch this hart to the process's kernel page table, and swtch to
///    start running that process.
///  - eventually that process transfers control via swtch back to the
///    scheduler, which switches back to kernel_pagetable.
#[cfg_attr(not(test), no_mangle)]
#[inline(never)]
pub fn scheduler() -> ! {
    let c = mycpu();
    // SAFETY: this hart's own Cpu.
    unsafe { (*c).proc = core::ptr::null_mut() };
    loop {
        // The most recent process to run may have had interrupts turned
        // off; enable them to avoid a deadlock if all processes are
        // waiting. Then turn them back off to avoid a possible race between
        // an interrupt and wfi.
        intr_on();
        intr_off();

        if crate::printf::is_panicked() {
            // Another hart panicked: stop scheduling (xv6 freezes too).
            loop {
                core::hint::spin_loop();
            }
        }

        let mut found = false;
        for i in 0..NPROC {
            let p = proc_slot(i);
            // SAFETY: p->lock guards state and context.
            unsafe {
                (*p).lock.acquire();
                if (*p).state == ProcState::Runnable {
                    // Switch to chosen process. It is the process's job to
                    // release its lock and then reacquire it before jumping
                    // back to us.
                    (*p).state = ProcState::Running;
                    (*c).proc = p;
                    // SAFETY (kvmswitch): p's kernel table maps the kernel
                    // and all RAM (so this boot stack) and p's own stack;
                    // freeproc cannot free it while we hold p->lock.
                    vm::kvmswitch(Proc::kpagetable(p));
                    swtch(&raw mut (*c).context, &raw const (*p).context);
                    // Back on kernel_pagetable before p->lock is released,
                    // so nobody frees p's kernel page table while this hart
                    // still uses it.
                    vm::kvminithart();

                    // Process is done running for now. It should have
                    // changed its p->state before coming back.
                    (*c).proc = core::ptr::null_mut();
                    found = true;
                }
                (*p).lock.release();
            }
        }
        if !found {
            // nothing to run; stop running on this core until an interrupt.
            crate::riscv::wfi();
        }
    }
}

/// Switch to scheduler. Must hold only p->lock and have changed
/// proc->state. Saves and restores intena because intena is a property of
/// this kernel thread, not this CPU.
#[cfg_attr(not(test), no_mangle)]
#[inline(never)]
pub fn sched() {
    let p = myproc();
    let c = mycpu();
    // SAFETY: p is the current process, whose lock we hold; c is ours.
    unsafe {
        if !(*p).lock.holding() {
            panic!("sched p->lock");
        }
        if (*c).noff != 1 {
            panic!("sched locks");
        }
        if (*p).state == ProcState::Running {
            panic!("sched running");
        }
        if intr_get() {
            panic!("sched interruptible");
        }
        let intena = (*c).intena;
        swtch(&raw mut (*p).context, &raw const (*c).context);
        (*mycpu()).intena = intena;
    }
}

/// Give up the CPU for one scheduling round (xv6's `yield`).
#[cfg_attr(not(test), export_name = "yield")]
pub fn yield_() {
    let p = myproc();
    // SAFETY: p is the current process; state is guarded by its lock.
    unsafe {
        (*p).lock.acquire();
        (*p).state = ProcState::Runnable;
        sched();
        (*p).lock.release();
    }
}

/// Set once the first process has initialised the file system.
static FS_READY: AtomicBool = AtomicBool::new(false);

/// A fork child's very first scheduling by scheduler() will swtch to
/// forkret.
#[cfg_attr(not(test), no_mangle)]
extern "C" fn forkret() {
    // Still holding p->lock from scheduler.
    // SAFETY: the current process's lock, taken by the scheduler.
    unsafe { (*myproc()).lock.release() };

    if !FS_READY.load(Ordering::Acquire) {
        // File system initialization must be run in the context of a
        // regular process (e.g., because it calls sleep), and thus cannot
        // be run from main(). Only the first process gets here first: the
        // others are its descendants.
        crate::fs::fsinit(crate::param::ROOTDEV);
        FS_READY.store(true, Ordering::Release);
    }

    crate::trap::usertrapret();
}

/// Atomically release lock and sleep on chan. Reacquires lock when
/// awakened.
#[cfg_attr(not(test), no_mangle)]
pub fn sleep(chan: usize, lk: &Spinlock) {
    let p = myproc();

    // Must acquire p->lock in order to change p->state and then call
    // sched. Once we hold p->lock, we can be guaranteed that we won't miss
    // any wakeup (wakeup locks p->lock), so it's okay to release lk.
    // SAFETY: p is the current process; chan and state are guarded by its
    // lock.
    unsafe {
        (*p).lock.acquire();
        lk.release();

        // Go to sleep.
        (*p).chan = chan;
        (*p).state = ProcState::Sleeping;

        sched();

        // Tidy up.
        (*p).chan = 0;

        // Reacquire original lock.
        (*p).lock.release();
    }
    lk.acquire();
}

/// Wake up all processes sleeping on chan. Must be called without any
/// p->lock.
#[cfg_attr(not(test), no_mangle)]
pub fn wakeup(chan: usize) {
    let me = myproc();
    for i in 0..NPROC {
        let p = proc_slot(i);
        if p == me {
            continue;
        }
        // SAFETY: state and chan are guarded by p->lock, held for the
        // block.
        unsafe {
            let _held = (*p).lock.lock();
            if (*p).state == ProcState::Sleeping && (*p).chan == chan {
                (*p).state = ProcState::Runnable;
            }
        }
    }
}

/// Kill the process with the given pid. The victim won't exit until it
/// tries to return to user space (see usertrap() in trap.rs). Returns 0,
/// or -1 if there is no such process.
#[cfg_attr(not(test), no_mangle)]
pub fn kill(pid: i32) -> i32 {
    for i in 0..NPROC {
        let p = proc_slot(i);
        // SAFETY: pid, killed and state are guarded by p->lock, held for
        // the block (the guard releases it on the return too).
        unsafe {
            let _held = (*p).lock.lock();
            if (*p).pid == pid && (*p).state != ProcState::Unused {
                (*p).killed = 1;
                if (*p).state == ProcState::Sleeping {
                    // Wake process from sleep().
                    (*p).state = ProcState::Runnable;
                }
                return 0;
            }
        }
    }
    -1
}

/// Mark `p` killed.
///
/// # Safety
/// `p` is a slot of the process table (as `myproc()` or `proc_slot` return
/// it).
pub unsafe fn setkilled(p: *mut Proc) {
    // SAFETY: p is a slot (caller's contract); killed is guarded by
    // p->lock, held for the block.
    unsafe {
        let _held = (*p).lock.lock();
        (*p).killed = 1;
    }
}

/// Has `p` been killed?
///
/// # Safety
/// `p` is a slot of the process table (as `myproc()` or `proc_slot` return
/// it).
pub unsafe fn killed(p: *mut Proc) -> bool {
    // SAFETY: p is a slot (caller's contract); killed is guarded by
    // p->lock, held for the block.
    unsafe {
        let _held = (*p).lock.lock();
        (*p).killed != 0
    }
}

/// Copy to either a user address, or kernel address, depending on
/// `user_dst`.
///
/// # Safety
/// If `!user_dst`, `dst` is a kernel address valid for writing `src.len()`
/// bytes that nothing else reads or writes meanwhile (the caller's own
/// buffer). A user `dst` is checked against the current process's page
/// table, so it needs nothing.
pub unsafe fn either_copyout(user_dst: bool, dst: u64, src: &[u8]) -> Result<(), VmError> {
    if user_dst {
        copyout_user(dst, src)
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy(src.as_ptr(), dst as usize as *mut u8, src.len()) };
        Ok(())
    }
}

/// Copy from either a user address, or kernel address, depending on
/// `user_src`.
///
/// # Safety
/// If `!user_src`, `src` is a kernel address valid for reading
/// `dst.len()` bytes that nothing writes meanwhile.
pub unsafe fn either_copyin(dst: &mut [u8], user_src: bool, src: u64) -> Result<(), VmError> {
    if user_src {
        copyin_user(dst, src)
    } else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy(src as usize as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
}

/// Copy `src` to user address `dst` of the current process (`copyout`
/// through `myproc()->pagetable`). Returns BadAddr if it is not writable
/// user memory.
pub fn copyout_user(dst: u64, src: &[u8]) -> Result<(), VmError> {
    let p = myproc();
    // SAFETY: p is the current process, which owns its page table: only
    // its own exec replaces it, and not during this call.
    vm::copyout(unsafe { Proc::pagetable(p) }, dst, src)
}

/// Copy from user address `src` of the current process to `dst` (`copyin`
/// through `myproc()->pagetable`).
pub fn copyin_user(dst: &mut [u8], src: u64) -> Result<(), VmError> {
    let p = myproc();
    // SAFETY: as in copyout_user.
    vm::copyin(unsafe { Proc::pagetable(p) }, dst, src)
}

/// Print a process listing to console (`pid state name`). For debugging.
/// Runs when user types ^P on console. No lock to avoid wedging a stuck
/// machine further.
#[cfg_attr(not(test), no_mangle)]
pub fn procdump() {
    println!();
    for i in 0..NPROC {
        let p = proc_slot(i);
        // SAFETY: racy reads of plain data, on purpose (see above).
        unsafe {
            let state = core::ptr::read_volatile(&raw const (*p).state);
            if state == ProcState::Unused {
                continue;
            }
            println!("{} {} {}", (*p).pid, state.name(), name_str(&(*p).name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_states_have_xv6s_values_and_procdump_names() {
        // C xv6: enum procstate { UNUSED, USED, SLEEPING, RUNNABLE, RUNNING, ZOMBIE }.
        let all = [
            (ProcState::Unused, 0, "unused"),
            (ProcState::Used, 1, "used"),
            (ProcState::Sleeping, 2, "sleep "),
            (ProcState::Runnable, 3, "runble"),
            (ProcState::Running, 4, "run   "),
            (ProcState::Zombie, 5, "zombie"),
        ];
        for (s, v, name) in all {
            assert_eq!(s as u32, v);
            assert_eq!(s.name(), name);
        }
        assert_eq!(core::mem::size_of::<ProcState>(), 4);
    }

    #[test]
    fn names_are_truncated_and_nul_padded() {
        let mut n = [0xffu8; 16];
        set_name(&mut n, b"usertests");
        assert_eq!(&n[..10], b"usertests\0");
        assert!(n[9..].iter().all(|&c| c == 0));
        assert_eq!(name_str(&n), "usertests");
        set_name(&mut n, b"a_name_longer_than_sixteen");
        assert_eq!(n[15], 0, "always NUL-terminated");
        assert_eq!(name_str(&n), "a_name_longer_t");
        set_name(&mut n, b"sh\0junk");
        assert_eq!(name_str(&n), "sh");
        assert_eq!(name_str(&[0xff, 0xfe, 0]), "???");
    }

    #[test]
    #[should_panic(expected = "proc: no pagetable")]
    fn borrowing_a_missing_page_table_panics() {
        let p = Proc::new();
        // SAFETY: p is a live local that nobody else touches.
        let _ = unsafe { Proc::pagetable(&p) };
    }

    #[test]
    fn fresh_slots_are_unused_and_empty() {
        let p = Proc::new();
        assert_eq!(p.state, ProcState::Unused);
        assert!(p.pagetable.is_null() && p.kpagetable.is_null() && p.trapframe.is_null());
        assert!(p.ofile.iter().all(|f| f.is_null()));
        assert_eq!(p.lock.name, "proc");
    }
}
