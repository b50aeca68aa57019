//! Pipes (xv6's pipe.c): a 512-byte ring buffer in a page of its own,
//! shared by a read File and a write File. Readers sleep while it is
//! empty, writers while it is full; closing both ends frees the page.

use crate::file::{filealloc, fileclose, FdType, File};
use crate::kalloc::{kalloc, kfree};
use crate::proc::{killed, myproc, sleep, wakeup};
use crate::riscv::PhysAddr;
use crate::spinlock::Spinlock;

pub const PIPESIZE: usize = 512;

#[repr(C)]
pub struct Pipe {
    /// Guards everything below.
    pub lock: Spinlock,
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

fn read_chan(pi: *mut Pipe) -> usize {
    // SAFETY: only the address of a field.
    unsafe { &raw const (*pi).nread as usize }
}

fn write_chan(pi: *mut Pipe) -> usize {
    // SAFETY: only the address of a field.
    unsafe { &raw const (*pi).nwrite as usize }
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
        pi.write(Pipe {
            lock: Spinlock::new("pipe"),
            data: [0; PIPESIZE],
            nread: 0,
            nwrite: 0,
            readopen: true,
            writeopen: true,
        });
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
    // SAFETY: pi->lock guards the pipe.
    unsafe {
        (*pi).lock.acquire();
        if writable {
            (*pi).writeopen = false;
            wakeup(read_chan(pi));
        } else {
            (*pi).readopen = false;
            wakeup(write_chan(pi));
        }
        if !(*pi).readopen && !(*pi).writeopen {
            (*pi).lock.release();
            kfree(PhysAddr::from_ptr(pi));
        } else {
            (*pi).lock.release();
        }
    }
}

/// Write n bytes from user address addr; returns bytes written or -1.
///
/// # Safety
/// `pi` came from `pipealloc`, and the caller holds one of its ends open.
pub unsafe fn pipewrite(pi: *mut Pipe, addr: u64, n: i32) -> i32 {
    let mut i = 0;
    let p = myproc();
    // SAFETY: pi->lock guards the pipe.
    unsafe {
        (*pi).lock.acquire();
        while i < n {
            if !(*pi).readopen || killed(p) {
                (*pi).lock.release();
                return -1;
            }
            if (*pi).nwrite == (*pi).nread + PIPESIZE as u32 {
                wakeup(read_chan(pi));
                sleep(write_chan(pi), &(*pi).lock);
            } else {
                let mut ch = [0u8; 1];
                if crate::proc::copyin_user(&mut ch, addr + i as u64).is_err() {
                    break;
                }
                (*pi).data[(*pi).nwrite as usize % PIPESIZE] = ch[0];
                (*pi).nwrite = (*pi).nwrite.wrapping_add(1);
                i += 1;
            }
        }
        wakeup(read_chan(pi));
        (*pi).lock.release();
    }
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
// The wait loop's condition changes while we sleep: writers on other harts
// update nwrite and writeopen under pi->lock, which sleep() gives up.
#[allow(clippy::while_immutable_condition)]
pub unsafe fn piperead(pi: *mut Pipe, addr: u64, n: i32) -> i32 {
    let p = myproc();
    // SAFETY: pi->lock guards the pipe.
    unsafe {
        (*pi).lock.acquire();
        while (*pi).nread == (*pi).nwrite && (*pi).writeopen {
            // pipe-empty
            if killed(p) {
                (*pi).lock.release();
                return -1;
            }
            sleep(read_chan(pi), &(*pi).lock); // piperead-sleep
        }
        let mut i = 0;
        while i < n {
            // piperead-copy
            if (*pi).nread == (*pi).nwrite {
                break;
            }
            let ch = [(*pi).data[(*pi).nread as usize % PIPESIZE]];
            if crate::proc::copyout_user(addr + i as u64, &ch).is_err() {
                if i == 0 {
                    i = -1;
                }
                break;
            }
            (*pi).nread = (*pi).nread.wrapping_add(1);
            i += 1;
        }
        wakeup(write_chan(pi)); // piperead-wakeup
        (*pi).lock.release();
        i
    }
}
