//! Pipes (xv6's pipe.c): a 512-byte ring buffer in a page of its own,
//! shared by a read File and a write File. Readers sleep while it is
//! empty, writers while it is full; closing both ends frees the page.

use crate::file::{filealloc, fileclose, FdType, File};
use crate::kalloc::{kalloc, kfree};
use crate::proc::{killed, myproc, wakeup};
use crate::riscv::PhysAddr;
use crate::spinlock::SpinLock;

pub const PIPESIZE: usize = 512;

/// A pipe: its lock (C: `pi->lock`) owns everything else.
pub type Pipe = SpinLock<PipeState>;

/// What a pipe's lock guards (xv6's `struct pipe` less its `lock`).
pub struct PipeState {
    pub data: [u8; PIPESIZE],
    /// number of bytes read
    pub nread: u32,
    /// number of bytes written
    pub nwrite: u32,
    /// read fd is still open
    pub readopen: bool,
    /// write fd is still open
    pub writeopen: bool,
}

const _: () = assert!(core::mem::size_of::<Pipe>() <= 4096);

/// What readers sleep on (C: `&pi->nread`).
fn read_chan(p: &PipeState) -> usize {
    &p.nread as *const u32 as usize
}

/// What writers sleep on (C: `&pi->nwrite`).
fn write_chan(p: &PipeState) -> usize {
    &p.nwrite as *const u32 as usize
}

/// Make a pipe and the two files for its ends; None (everything freed) if
/// the file table or memory is full.
pub fn pipealloc() -> Option<(*mut File, *mut File)> {
    let f0 = filealloc();
    let f1 = if f0.is_null() {
        core::ptr::null_mut()
    } else {
        filealloc()
    };
    let page = if f1.is_null() { None } else { kalloc() };
    let Some(page) = page else {
        if !f0.is_null() {
            // SAFETY: `f0` is an open file we hold a reference on (argfd, filealloc or our ofile).
            unsafe { fileclose(f0) };
        }
        if !f1.is_null() {
            // SAFETY: `f1` is an open file we hold a reference on (argfd, filealloc or our ofile).
            unsafe { fileclose(f1) };
        }
        return None;
    };
    let pi = page.as_mut_ptr::<Pipe>();
    // SAFETY: a fresh page, big enough for a Pipe; f0 and f1 are ours.
    unsafe {
        pi.write(SpinLock::new(
            PipeState {
                data: [0; PIPESIZE],
                nread: 0,
                nwrite: 0,
                readopen: true,
                writeopen: true,
            },
            "pipe",
        ));
        (*f0).typ = FdType::Pipe;
        (*f0).readable = true;
        (*f0).writable = false;
        (*f0).pipe = pi;
        (*f1).typ = FdType::Pipe;
        (*f1).readable = false;
        (*f1).writable = true;
        (*f1).pipe = pi;
    }
    Some((f0, f1))
}

/// Close one end; free the pipe when both are closed.
///
/// # Safety
/// `pi` came from `pipealloc`, and the caller holds one of its ends open.
/// That end is given up.
pub unsafe fn pipeclose(pi: *mut Pipe, writable: bool) {
    let last = {
        // SAFETY: the caller's open end keeps the pipe's page alive.
        let mut pp = unsafe { &*pi }.lock();
        if writable {
            pp.writeopen = false;
            wakeup(read_chan(&pp));
        } else {
            pp.readopen = false;
            wakeup(write_chan(&pp));
        }
        !pp.readopen && !pp.writeopen
    };
    if last {
        // Both ends are closed: no one else can reach the pipe.
        kfree(PhysAddr::from_ptr(pi));
    }
}

/// Write n bytes from user address addr; returns bytes written or -1.
///
/// # Safety
/// `pi` came from `pipealloc`, and the caller holds one of its ends open.
pub unsafe fn pipewrite(pi: *mut Pipe, addr: u64, n: i32) -> i32 {
    let mut i = 0;
    let p = myproc();
    // SAFETY: the caller's open end keeps the pipe's page alive.
    let mut pp = unsafe { &*pi }.lock();
    while i < n {
        // SAFETY: p is the current process.
        if !pp.readopen || unsafe { killed(p) } {
            return -1;
        }
        if pp.nwrite == pp.nread + PIPESIZE as u32 {
            wakeup(read_chan(&pp));
            let chan = write_chan(&pp);
            pp = pp.sleep(chan);
        } else {
            let mut ch = [0u8; 1];
            if crate::proc::copyin_user(&mut ch, addr + i as u64).is_err() {
                break;
            }
            let w = pp.nwrite as usize % PIPESIZE;
            pp.data[w] = ch[0];
            pp.nwrite = pp.nwrite.wrapping_add(1);
            i += 1;
        }
    }
    wakeup(read_chan(&pp));
    drop(pp);
    // A bad address before anything was written is an error.
    if i == 0 && n > 0 {
        return -1;
    }
    i
}

/// Read up to n bytes to user address addr; returns bytes read, 0 at end
/// of file, -1 on error.
///
/// # Safety
/// `pi` came from `pipealloc`, and the caller holds one of its ends open.
pub unsafe fn piperead(pi: *mut Pipe, addr: u64, n: i32) -> i32 {
    let p = myproc();
    // SAFETY: the caller's open end keeps the pipe's page alive.
    let mut pp = unsafe { &*pi }.lock();
    while pp.nread == pp.nwrite && pp.writeopen {
        // pipe-empty
        // SAFETY: p is the current process.
        if unsafe { killed(p) } {
            return -1;
        }
        let chan = read_chan(&pp);
        pp = pp.sleep(chan); // piperead-sleep
    }
    let mut i = 0;
    while i < n {
        // piperead-copy
        if pp.nread == pp.nwrite {
            break;
        }
        let ch = [pp.data[pp.nread as usize % PIPESIZE]];
        if crate::proc::copyout_user(addr + i as u64, &ch).is_err() {
            if i == 0 {
                i = -1;
            }
            break;
        }
        pp.nread = pp.nread.wrapping_add(1);
        i += 1;
    }
    wakeup(write_chan(&pp)); // piperead-wakeup
    i
}
