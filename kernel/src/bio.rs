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
use crate::spinlock::SpinLock;
use crate::virtio_disk::virtio_disk_rw;

/// One cached block (xv6's `struct buf`, less `refcnt`, `prev` and `next`,
/// which live under `bcache`'s lock in [`Bcache`]).
#[repr(C)]
pub struct Buf {
    /// Has data been read from disk?
    pub valid: bool,
    /// Does the disk "own" the buffer? (virtio_disk's lock guards this.)
    pub disk: bool,
    /// Which block this is: written by `bget` only while no one holds the
    /// buffer (its refcnt is 0, under bcache's lock), so fixed for a holder.
    pub dev: u32,
    pub blockno: u32,
    /// Held by the process using the buffer; guards `valid` and `data`.
    pub lock: Sleeplock,
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
            data: [0; BSIZE],
        }
    }
}

/// The buffers themselves (C: `bcache.buf`). Buffer `i` is reached only
/// through the pointer `bget` returns, by the process holding its
/// sleep-lock (plus `bget`'s identity writes when its refcnt is 0, and
/// the disk driver's `disk` flag under its own lock). They are outside
/// `bcache`'s `SpinLock` because they are used long after it is released.
static BUF: KernelCell<[Buf; NBUF]> = KernelCell::new([const { Buf::new() }; NBUF]);

fn buf_ptr(i: usize) -> *mut Buf {
    assert!(i < NBUF);
    // SAFETY: in bounds; only an address is computed.
    unsafe { (BUF.get() as *mut Buf).add(i) }
}

/// What `bcache`'s lock knows of buffer `i`.
#[derive(Clone, Copy)]
struct BufMeta {
    /// The block buffer `i` caches (same as its `Buf`'s `dev`/`blockno`).
    dev: u32,
    blockno: u32,
    /// How many holders (bread without brelse, plus log pins).
    refcnt: u32,
    /// LRU cache list, as indexes (NBUF = the head).
    prev: usize,
    next: usize,
}

/// The cache's bookkeeping, guarded by `bcache`'s lock: each buffer's
/// block, refcnt and place in a circular LRU list whose head is index NBUF.
/// `head_next` is most recently used, `head_prev` least.
pub struct Bcache {
    meta: [BufMeta; NBUF],
    head_prev: usize,
    head_next: usize,
}

/// The buffer cache's lock and the data it guards (xv6's `bcache`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static bcache: SpinLock<Bcache> = SpinLock::new(
    Bcache {
        meta: [BufMeta {
            dev: 0,
            blockno: 0,
            refcnt: 0,
            prev: NBUF,
            next: NBUF,
        }; NBUF],
        head_prev: NBUF,
        head_next: NBUF,
    },
    "bcache",
);

const HEAD: usize = NBUF;

impl Bcache {
    /// prev/next of node `i` (HEAD is the list head).
    fn links(&mut self, i: usize) -> (&mut usize, &mut usize) {
        if i == HEAD {
            (&mut self.head_prev, &mut self.head_next)
        } else {
            let m = &mut self.meta[i];
            (&mut m.prev, &mut m.next)
        }
    }

    /// Insert node `i` (not in the list) right after the head.
    fn push_front(&mut self, i: usize) {
        let first = self.head_next;
        *self.links(i).0 = HEAD;
        *self.links(i).1 = first;
        *self.links(first).0 = i;
        self.head_next = i;
    }

    /// Unlink node `i` and insert it right after the head (most recent).
    fn move_to_front(&mut self, i: usize) {
        let (prev, next) = (self.meta[i].prev, self.meta[i].next);
        *self.links(prev).1 = next;
        *self.links(next).0 = prev;
        self.push_front(i);
    }
}

/// Link all buffers into the LRU list. Called once at boot.
pub fn binit() {
    let mut c = bcache.lock();
    c.head_prev = HEAD;
    c.head_next = HEAD;
    for i in 0..NBUF {
        c.push_front(i);
    }
}

/// Look through the cache for block `blockno` on device `dev`. If not
/// found, recycle the least recently used unreferenced buffer. Either way
/// return a locked buffer.
fn bget(dev: u32, blockno: u32) -> *mut Buf {
    let found = {
        let mut c = bcache.lock();
        let mut found = None;
        // Is the block already cached?
        let mut i = c.head_next;
        while i != HEAD {
            let m = &mut c.meta[i];
            if m.dev == dev && m.blockno == blockno {
                m.refcnt += 1;
                found = Some(i);
                break;
            }
            i = m.next;
        }
        if found.is_none() {
            // Not cached. Recycle the least recently used unused buffer.
            let mut i = c.head_prev;
            while i != HEAD {
                let m = &mut c.meta[i];
                if m.refcnt == 0 {
                    m.dev = dev;
                    m.blockno = blockno;
                    m.refcnt = 1;
                    let b = buf_ptr(i);
                    // SAFETY: its refcnt was 0, so no one holds buffer i
                    // or will until we release bcache's lock.
                    unsafe {
                        (*b).dev = dev;
                        (*b).blockno = blockno;
                        (*b).valid = false;
                    }
                    found = Some(i);
                    break;
                }
                i = m.prev;
            }
        }
        found
    };
    match found {
        Some(i) => {
            let b = buf_ptr(i);
            // SAFETY: our refcnt keeps buffer i ours to lock; the sleep-lock
            // is only touched through its own spinlock.
            unsafe { (*b).lock.acquire() };
            b
        }
        None => panic!("bget: no buffers"),
    }
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

/// Index of buffer `b` in the cache.
fn index_of(b: *mut Buf) -> usize {
    let i = (b as usize).wrapping_sub(BUF.get() as usize) / core::mem::size_of::<Buf>();
    if i >= NBUF || buf_ptr(i) != b {
        panic!("bio: not a cache buffer {:p}", b);
    }
    i
}

/// Release a locked buffer and move it to the head of the most recently
/// used list.
///
/// # Safety
/// `b` came from [`bread`](crate::bio::bread) and the caller still holds it
/// (not yet passed to `brelse`).
pub unsafe fn brelse(b: *mut Buf) {
    let i = index_of(b);
    // SAFETY: we hold b's sleep lock.
    unsafe {
        if !(*b).lock.holding() {
            panic!("brelse");
        }
        (*b).lock.release();
    }
    let mut c = bcache.lock();
    c.meta[i].refcnt -= 1;
    if c.meta[i].refcnt == 0 {
        // no one is waiting for it.
        c.move_to_front(i);
    }
}

/// Keep b in the cache (the log holds it until the transaction commits).
///
/// # Safety
/// `b` is a buffer of the cache that the caller holds (from `bread`).
pub unsafe fn bpin(b: *mut Buf) {
    let i = index_of(b);
    bcache.lock().meta[i].refcnt += 1;
}

/// Undo [`bpin`]: the cache may recycle `b` again once it is released.
///
/// # Safety
/// `b` is a buffer of the cache that the caller holds (from `bread`).
pub unsafe fn bunpin(b: *mut Buf) {
    let i = index_of(b);
    bcache.lock().meta[i].refcnt -= 1;
}
