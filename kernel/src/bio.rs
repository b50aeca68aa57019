//! The buffer cache (xv6's bio.c): a fixed pool of NBUF block-sized
//! buffers holding copies of disk blocks, kept in least-recently-used order.
//!
//! Caching disk blocks in memory reduces the number of disk reads and also
//! provides a synchronization point for disk blocks used by multiple
//! processes. Interface:
//! * To get a buffer for a particular disk block, call [`bread`].
//! * After changing buffer data, call [`bwrite`] to write it to disk.
//! * When done with the buffer, call [`brelse`].
//! * Do not use the buffer after calling brelse.
//! * Only one process at a time can use a buffer, so do not keep them
//!   longer than necessary.
//!
//! Data flow: fs.rs and log.rs call bread/bwrite; bwrite and a cache miss
//! go to virtio_disk.rs.

use crate::fs::BSIZE;
use crate::kcell::KernelCell;
use crate::param::NBUF;
use crate::sleeplock::Sleeplock;
use crate::spinlock::Spinlock;
use crate::virtio_disk::virtio_disk_rw;

/// One cached block (xv6's `struct buf`).
#[repr(C)]
pub struct Buf {
    /// Has data been read from disk?
    pub valid: bool,
    /// Does the disk "own" the buffer? (virtio_disk's lock guards this.)
    pub disk: bool,
    pub dev: u32,
    pub blockno: u32,
    /// Held by the process using the buffer; guards `valid` and `data`.
    pub lock: Sleeplock,
    // bcache.lock guards refcnt, prev and next.
    pub refcnt: u32,
    /// LRU cache list, as indexes into `bcache.buf` (NBUF = the head).
    prev: usize,
    next: usize,
    pub data: [u8; BSIZE],
}

impl Buf {
    const fn new() -> Buf {
        Buf {
            valid: false,
            disk: false,
            dev: 0,
            blockno: 0,
            lock: Sleeplock::new("buffer"),
            refcnt: 0,
            prev: 0,
            next: 0,
            data: [0; BSIZE],
        }
    }
}

/// The cache: buffers plus a circular LRU list whose head is index NBUF.
/// `head.next` is most recently used, `head.prev` least.
#[repr(C)]
pub struct Bcache {
    pub lock: Spinlock,
    pub buf: [Buf; NBUF],
    head_prev: usize,
    head_next: usize,
}

/// The buffer cache (kinspect may read `bcache` by name).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static bcache: KernelCell<Bcache> = KernelCell::new(Bcache {
    lock: Spinlock::new("bcache"),
    buf: [const { Buf::new() }; NBUF],
    head_prev: NBUF,
    head_next: NBUF,
});

const HEAD: usize = NBUF;

/// prev/next of node `i` (HEAD is the list head).
unsafe fn links(c: *mut Bcache, i: usize) -> (*mut usize, *mut usize) {
    // SAFETY: the caller holds bcache.lock; i <= NBUF.
    unsafe {
        if i == HEAD {
            (&raw mut (*c).head_prev, &raw mut (*c).head_next)
        } else {
            (&raw mut (*c).buf[i].prev, &raw mut (*c).buf[i].next)
        }
    }
}

/// Unlink node `i` and insert it right after the head (most recent).
unsafe fn move_to_front(c: *mut Bcache, i: usize) {
    // SAFETY: the caller holds bcache.lock.
    unsafe {
        let (p, n) = links(c, i);
        let (prev, next) = (*p, *n);
        *links(c, prev).1 = next;
        *links(c, next).0 = prev;
        let first = (*c).head_next;
        *p = HEAD;
        *n = first;
        *links(c, first).0 = i;
        (*c).head_next = i;
    }
}

/// Link all buffers into the LRU list. Called once at boot.
pub fn binit() {
    let c = bcache.get();
    // SAFETY: boot, one hart.
    unsafe {
        (*c).head_prev = HEAD;
        (*c).head_next = HEAD;
        for i in 0..NBUF {
            (*c).buf[i].prev = HEAD;
            let first = (*c).head_next;
            (*c).buf[i].next = first;
            *links(c, first).0 = i;
            (*c).head_next = i;
        }
    }
}

/// Look through the cache for block `blockno` on device `dev`. If not
/// found, recycle the least recently used unreferenced buffer. Either way
/// return a locked buffer.
fn bget(dev: u32, blockno: u32) -> *mut Buf {
    let c = bcache.get();
    // SAFETY: bcache.lock guards the list and refcnts; a buffer's identity
    // (dev, blockno) changes only with refcnt 0 under the lock.
    unsafe {
        (*c).lock.acquire();
        // Is the block already cached?
        let mut i = (*c).head_next;
        while i != HEAD {
            let b = &raw mut (*c).buf[i];
            if (*b).dev == dev && (*b).blockno == blockno {
                (*b).refcnt += 1;
                (*c).lock.release();
                (*b).lock.acquire();
                return b;
            }
            i = (*b).next;
        }
        // Not cached. Recycle the least recently used unused buffer.
        let mut i = (*c).head_prev;
        while i != HEAD {
            let b = &raw mut (*c).buf[i];
            if (*b).refcnt == 0 {
                (*b).dev = dev;
                (*b).blockno = blockno;
                (*b).valid = false;
                (*b).refcnt = 1;
                (*c).lock.release();
                (*b).lock.acquire();
                return b;
            }
            i = (*b).prev;
        }
    }
    panic!("bget: no buffers");
}

/// Return a locked buffer with the contents of the indicated block.
pub fn bread(dev: u32, blockno: u32) -> *mut Buf {
    let b = bget(dev, blockno);
    // SAFETY: we hold b's sleep lock.
    unsafe {
        if !(*b).valid {
            virtio_disk_rw(b, false);
            (*b).valid = true;
        }
    }
    b
}

/// Write b's contents to disk. Must be locked.
///
/// # Safety
/// `b` came from [`bread`](crate::bio::bread) and the caller still holds it
/// (not yet passed to `brelse`). The caller holds its sleep-lock.
pub unsafe fn bwrite(b: *mut Buf) {
    // SAFETY: b is a cache buffer.
    unsafe {
        if !(*b).lock.holding() {
            panic!("bwrite");
        }
    }
    virtio_disk_rw(b, true);
}

/// Release a locked buffer and move it to the head of the most recently
/// used list.
///
/// # Safety
/// `b` came from [`bread`](crate::bio::bread) and the caller still holds it
/// (not yet passed to `brelse`).
pub unsafe fn brelse(b: *mut Buf) {
    let c = bcache.get();
    // SAFETY: we hold b's sleep lock; bcache.lock guards the list.
    unsafe {
        if !(*b).lock.holding() {
            panic!("brelse");
        }
        (*b).lock.release();
        (*c).lock.acquire();
        (*b).refcnt -= 1;
        if (*b).refcnt == 0 {
            // no one is waiting for it.
            let i = b.offset_from(&raw const (*c).buf[0]) as usize;
            move_to_front(c, i);
        }
        (*c).lock.release();
    }
}

/// Keep b in the cache (the log holds it until the transaction commits).
///
/// # Safety
/// `b` is a buffer of the cache that the caller holds (from `bread`).
pub unsafe fn bpin(b: *mut Buf) {
    let c = bcache.get();
    // SAFETY: bcache.lock guards refcnt.
    unsafe {
        (*c).lock.acquire();
        (*b).refcnt += 1;
        (*c).lock.release();
    }
}

/// Undo [`bpin`]: the cache may recycle `b` again once it is released.
///
/// # Safety
/// `b` is a buffer of the cache that the caller holds (from `bread`).
pub unsafe fn bunpin(b: *mut Buf) {
    let c = bcache.get();
    // SAFETY: bcache.lock guards refcnt.
    unsafe {
        (*c).lock.acquire();
        (*b).refcnt -= 1;
        (*c).lock.release();
    }
}
