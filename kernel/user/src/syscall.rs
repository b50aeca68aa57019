//! System calls: xv6-riscv's numbers and calling convention.
//!
//! The number goes in a7, arguments in a0..a5, `ecall` traps into the
//! kernel, and the result comes back in a0 (-1 on error). [`raw`] has the
//! untyped calls (usertests passes bad pointers through them); the typed
//! wrappers below take Rust slices and strings and are what programs use.
//! The numbers, open flags, `Stat` and `Dirent` come from [`crate::abi`],
//! the kernel's own definitions, and are re-exported here.

use core::arch::asm;

use crate::string::CPath;

pub use crate::abi::fcntl::*;
pub use crate::abi::fs_format::{Dirent, DIRSIZ};
pub use crate::abi::stat::*;
pub use crate::abi::syscalls::*;

/// The console's device major number.
pub const CONSOLE: i16 = 1;

/// Longest path the kernel accepts (xv6's MAXPATH), NUL included.
pub const MAXPATH: usize = 128;
/// Longest argv the kernel accepts (xv6's MAXARG).
pub const MAXARG: usize = 32;

/// The untyped system calls: number and six register arguments.
pub mod raw {
    use super::asm;

    /// Trap into the kernel with call `n`.
    ///
    /// # Safety
    /// The kernel checks every pointer it is given, so a bad argument makes
    /// the call fail rather than corrupt the kernel; but a call that writes
    /// through a *good* pointer (read, pipe, fstat, wait) can overwrite
    /// any of this program's memory.
    #[inline(always)]
    pub unsafe fn syscall(n: usize, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: see the function's contract; ecall clobbers only a0.
        unsafe {
            asm!("ecall",
                inlateout("a0") a[0] => ret,
                in("a1") a[1], in("a2") a[2], in("a3") a[3],
                in("a4") a[4], in("a5") a[5], in("a7") n,
                options(nostack));
        }
        ret
    }

    /// Call `n` with up to six arguments, the rest zero.
    ///
    /// # Safety
    /// As [`syscall`].
    pub unsafe fn call(n: usize, args: &[usize]) -> isize {
        let mut a = [0usize; 6];
        for (d, s) in a.iter_mut().zip(args) {
            *d = *s;
        }
        // SAFETY: the caller's.
        unsafe { syscall(n, a) }
    }
}

use raw::call;

/// Create a process; returns the child's pid in the parent, 0 in the child.
pub fn fork() -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_FORK, &[]) as i32 }
}

/// Terminate with `status`; never returns.
pub fn exit(status: i32) -> ! {
    // SAFETY: no pointers.
    unsafe { call(SYS_EXIT, &[status as usize]) };
    // The kernel never returns from exit.
    loop {
        core::hint::spin_loop();
    }
}

/// Wait for a child to exit; returns its pid and stores its status.
pub fn wait(status: Option<&mut i32>) -> i32 {
    let p = status.map_or(0, |s| s as *mut i32 as usize);
    // SAFETY: p is null or a valid i32.
    unsafe { call(SYS_WAIT, &[p]) as i32 }
}

/// Make a pipe: `fds[0]` reads, `fds[1]` writes.
pub fn pipe(fds: &mut [i32; 2]) -> i32 {
    // SAFETY: fds is two valid i32s.
    unsafe { call(SYS_PIPE, &[fds.as_mut_ptr() as usize]) as i32 }
}

/// Read up to `buf.len()` bytes; returns the count, 0 at end of file.
pub fn read(fd: i32, buf: &mut [u8]) -> i32 {
    // SAFETY: buf is valid for its length.
    unsafe {
        call(
            SYS_READ,
            &[fd as usize, buf.as_mut_ptr() as usize, buf.len()],
        ) as i32
    }
}

/// Write `buf`; returns the count written.
pub fn write(fd: i32, buf: &[u8]) -> i32 {
    // SAFETY: buf is valid for its length.
    unsafe { call(SYS_WRITE, &[fd as usize, buf.as_ptr() as usize, buf.len()]) as i32 }
}

/// Kill process `pid`.
pub fn kill(pid: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_KILL, &[pid as usize]) as i32 }
}

/// Replace this program with `path`, given NUL-terminated `argv` (the
/// last element must be null). Returns only on failure.
pub fn exec_raw(path: &CPath, argv: &[*const u8]) -> i32 {
    // SAFETY: path is NUL-terminated; argv's elements are the caller's.
    unsafe { call(SYS_EXEC, &[path.as_ptr() as usize, argv.as_ptr() as usize]) as i32 }
}

/// Replace this program with `path` run with `args` (argv[0] included).
/// Returns -1 (only) on failure, including too many or too long arguments.
pub fn exec(path: &str, args: &[&str]) -> i32 {
    use alloc::vec::Vec;
    let Some(p) = CPath::new(path) else {
        return -1;
    };
    if args.len() >= MAXARG {
        return -1;
    }
    let owned: Vec<Vec<u8>> = args
        .iter()
        .map(|a| {
            let mut v = Vec::with_capacity(a.len() + 1);
            v.extend_from_slice(a.as_bytes());
            v.push(0);
            v
        })
        .collect();
    let mut argv: Vec<*const u8> = owned.iter().map(|v| v.as_ptr()).collect();
    argv.push(core::ptr::null());
    exec_raw(&p, &argv)
}

/// Fill `st` with the file's metadata.
pub fn fstat(fd: i32, st: &mut Stat) -> i32 {
    // SAFETY: st is a valid Stat.
    unsafe { call(SYS_FSTAT, &[fd as usize, st as *mut Stat as usize]) as i32 }
}

/// Change the current directory.
pub fn chdir(path: &str) -> i32 {
    with_path(path, |p| {
        // SAFETY: p is NUL-terminated.
        unsafe { call(SYS_CHDIR, &[p.as_ptr() as usize]) as i32 }
    })
}

/// Duplicate `fd` into the lowest free descriptor.
pub fn dup(fd: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_DUP, &[fd as usize]) as i32 }
}

pub fn getpid() -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_GETPID, &[]) as i32 }
}

/// Grow (or, negative, shrink) memory by `n` bytes; returns the old break,
/// or `usize::MAX` (xv6's `(char*)-1`) on failure.
pub fn sbrk(n: isize) -> usize {
    // SAFETY: no pointers.
    unsafe { call(SYS_SBRK, &[n as usize]) as usize }
}

/// Sleep `ticks` clock ticks.
pub fn sleep(ticks: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_SLEEP, &[ticks as usize]) as i32 }
}

/// Clock ticks since boot.
pub fn uptime() -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_UPTIME, &[]) as i32 }
}

/// Open `path` with O_* `flags`; returns a file descriptor.
pub fn open(path: &str, flags: i32) -> i32 {
    with_path(path, |p| {
        // SAFETY: p is NUL-terminated.
        unsafe { call(SYS_OPEN, &[p.as_ptr() as usize, flags as usize]) as i32 }
    })
}

/// Make a device file.
pub fn mknod(path: &str, major: i16, minor: i16) -> i32 {
    with_path(path, |p| {
        // SAFETY: p is NUL-terminated.
        unsafe {
            call(
                SYS_MKNOD,
                &[p.as_ptr() as usize, major as usize, minor as usize],
            ) as i32
        }
    })
}

pub fn unlink(path: &str) -> i32 {
    with_path(path, |p| {
        // SAFETY: p is NUL-terminated.
        unsafe { call(SYS_UNLINK, &[p.as_ptr() as usize]) as i32 }
    })
}

/// Make `new` another name for `old`.
pub fn link(old: &str, new: &str) -> i32 {
    with_path(old, |o| {
        with_path(new, |n| {
            // SAFETY: both NUL-terminated.
            unsafe { call(SYS_LINK, &[o.as_ptr() as usize, n.as_ptr() as usize]) as i32 }
        })
    })
}

pub fn mkdir(path: &str) -> i32 {
    with_path(path, |p| {
        // SAFETY: p is NUL-terminated.
        unsafe { call(SYS_MKDIR, &[p.as_ptr() as usize]) as i32 }
    })
}

pub fn close(fd: i32) -> i32 {
    // SAFETY: no pointers.
    unsafe { call(SYS_CLOSE, &[fd as usize]) as i32 }
}

/// Run `f` on `path` NUL-terminated; -1 if it does not fit in MAXPATH or
/// holds a NUL.
fn with_path(path: &str, f: impl FnOnce(&CPath) -> i32) -> i32 {
    match CPath::new(path) {
        Some(p) => f(&p),
        None => -1,
    }
}
