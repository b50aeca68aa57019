//! System call dispatch and argument fetching (xv6's syscall.c/syscall.h).
//!
//! The user ABI is xv6-riscv's: the number in a7, arguments in a0..a5, the
//! result in a0 (-1 as u64 on error). Numbers are xv6's, `fork` 1 to
//! `close` 21, defined in `abi/syscalls.rs` (shared with the user library)
//! and re-exported here. To add a system call, give it a number there and a
//! row in [`syscall_fn`].

use crate::proc::{myproc, Proc};
use crate::vm::{copyin, copyinstr};

pub use crate::abi::syscalls::*;

/// Fetch the u64 at `addr` from the current process. None if `addr` is
/// outside the process's memory.
pub fn fetchaddr(addr: u64) -> Option<u64> {
    let p = myproc();
    // SAFETY: sz and pagetable are private to the current process, and
    // only its own exec replaces the table.
    let (sz, pt) = unsafe { ((*p).sz, Proc::pagetable(p)) };
    // both tests needed, in case of overflow
    if addr >= sz || addr.checked_add(8)? > sz {
        return None;
    }
    let mut b = [0u8; 8];
    copyin(pt, &mut b, addr).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Fetch the NUL-terminated string at `addr` from the current process into
/// `buf`. Returns the length of the string, not including the NUL, or None.
pub fn fetchstr(addr: u64, buf: &mut [u8]) -> Option<usize> {
    let p = myproc();
    // SAFETY: pagetable is private to the current process, and only its
    // own exec replaces it.
    let pt = unsafe { Proc::pagetable(p) };
    copyinstr(pt, buf, addr).ok()
}

/// The raw value of system call argument `n` (a0..a5).
fn argraw(n: usize) -> u64 {
    let p = myproc();
    // SAFETY: the trapframe is private to the current process.
    let tf = unsafe { &*(*p).trapframe };
    match n {
        0 => tf.a0,
        1 => tf.a1,
        2 => tf.a2,
        3 => tf.a3,
        4 => tf.a4,
        5 => tf.a5,
        _ => panic!("argraw"),
    }
}

/// Fetch the nth 32-bit system call argument.
pub fn argint(n: usize) -> i32 {
    argraw(n) as i32
}

/// Retrieve an argument as a pointer. Doesn't check for legality, since
/// copyin/copyout will do that.
pub fn argaddr(n: usize) -> u64 {
    argraw(n)
}

/// Fetch the nth word-sized system call argument as a NUL-terminated
/// string into `buf`. Returns the string length (without the NUL), or None
/// if it is unreadable or does not fit.
pub fn argstr(n: usize, buf: &mut [u8]) -> Option<usize> {
    fetchstr(argaddr(n), buf)
}

/// A system call's implementation: reads its arguments from the current
/// process's trapframe, returns the value for a0.
pub type SyscallFn = fn() -> u64;

/// The function that implements system call `num`, and its name.
fn syscall_fn(num: usize) -> Option<(SyscallFn, &'static str)> {
    use crate::exec::sys_exec;
    use crate::sysfile::*;
    use crate::sysproc::*;
    let f: (SyscallFn, &'static str) = match num {
        SYS_FORK => (sys_fork, "fork"),
        SYS_EXIT => (sys_exit, "exit"),
        SYS_WAIT => (sys_wait, "wait"),
        SYS_PIPE => (sys_pipe, "pipe"),
        SYS_READ => (sys_read, "read"),
        SYS_KILL => (sys_kill, "kill"),
        SYS_EXEC => (sys_exec, "exec"),
        SYS_FSTAT => (sys_fstat, "fstat"),
        SYS_CHDIR => (sys_chdir, "chdir"),
        SYS_DUP => (sys_dup, "dup"),
        SYS_GETPID => (sys_getpid, "getpid"),
        SYS_SBRK => (sys_sbrk, "sbrk"),
        SYS_SLEEP => (sys_sleep, "sleep"),
        SYS_UPTIME => (sys_uptime, "uptime"),
        SYS_OPEN => (sys_open, "open"),
        SYS_WRITE => (sys_write, "write"),
        SYS_MKNOD => (sys_mknod, "mknod"),
        SYS_UNLINK => (sys_unlink, "unlink"),
        SYS_LINK => (sys_link, "link"),
        SYS_MKDIR => (sys_mkdir, "mkdir"),
        SYS_CLOSE => (sys_close, "close"),
        crate::sysdebug::SYS_KDEBUG => (crate::sysdebug::sys_kdebug, "kdebug"),
        _ => return None,
    };
    Some(f)
}

/// Run the system call the current process asked for, with the result in
/// its a0.
#[cfg_attr(not(test), no_mangle)]
pub fn syscall() {
    let p = myproc();
    // SAFETY: the trapframe is private to the current process.
    let tf = unsafe { &mut *(*p).trapframe };
    let num = tf.a7 as usize;
    match syscall_fn(num) {
        Some((f, _name)) => {
            // Use num to lookup the system call function for num, call it,
            // and store its return value in p->trapframe->a0
            let r = f();
            // SAFETY: as above; the call may have replaced the trapframe's
            // contents (exec), not the page.
            unsafe { (*(*p).trapframe).a0 = r };
        }
        None => {
            // SAFETY: pid and name of the current process.
            let (pid, name) = unsafe { ((*p).pid, crate::proc::name_str(&(*p).name)) };
            println!("{} {}: unknown sys call {}", pid, name, num);
            tf.a0 = u64::MAX;
        }
    }
}
