//! Process-related system calls (xv6's sysproc.c). Each returns the value
//! for the user's a0; -1 is `u64::MAX`.

use crate::proc::{self, myproc};
use crate::syscall::{argaddr, argint};
use crate::trap::{ticks_chan, TICKS};

/// -1 as the user sees it in a0.
pub const ERR: u64 = u64::MAX;

/// exit(status): never returns.
pub fn sys_exit() -> u64 {
    proc::exit(argint(0))
}

/// getpid(): the caller's pid.
pub fn sys_getpid() -> u64 {
    // SAFETY: the pid of the current process does not change under it.
    unsafe { (*myproc()).pid as u64 }
}

/// fork(): the child's pid in the parent, 0 in the child, -1 on failure.
pub fn sys_fork() -> u64 {
    proc::fork() as i64 as u64
}

/// wait(&status): a zombie child's pid (status stored unless the address
/// is 0), or -1 with no children.
pub fn sys_wait() -> u64 {
    proc::wait(argaddr(0)) as i64 as u64
}

/// Grow (or shrink) memory by n bytes; returns the old size.
pub fn sys_sbrk() -> u64 {
    let n = argint(0);
    // SAFETY: sz is private to the current process.
    let addr = unsafe { (*myproc()).sz };
    match proc::growproc(n as i64) {
        Ok(()) => addr,
        Err(_) => ERR,
    }
}

/// Sleep for n clock ticks; -1 if killed meanwhile.
pub fn sys_sleep() -> u64 {
    let n = argint(0).max(0) as u32;
    let mut ticks = TICKS.lock();
    let ticks0 = *ticks;
    while ticks.wrapping_sub(ticks0) < n {
        // SAFETY: `myproc` is myproc(), a slot of the process table.
        if unsafe { proc::killed(myproc()) } {
            return ERR;
        }
        ticks = ticks.sleep(ticks_chan());
    }
    0
}

/// kill(pid): 0, or -1 if there is no such process.
pub fn sys_kill() -> u64 {
    proc::kill(argint(0)) as i64 as u64
}

/// How many clock tick interrupts have occurred since start.
pub fn sys_uptime() -> u64 {
    *TICKS.lock() as u64
}
