//! The buffer cache (xv6's bio.c): a fixed pool of NBUF block-sized
//! buffers holding copies of disk blocks, kept in least-recently-used order.
//!
//! Caching disk blocks in memory reduces the number of disk reads and also
//! provides a synchronization point for disk blocks used by multiple
//! processes. Interface:
//! * To get a buffer for a particular disk block, call [`bread`]: it
//!   returns a [`BufRef`], the only way to reach a buffer's data.
//! * After changing buffer data, call [`bwrite`] to write it to disk.
//! * When done with the buffer, call [`brelse`] (or let the `BufRef`
//!   drop: that is brelse).
//! * Do not use the buffer after calling brelse: `brelse` takes the
//!   `BufRef` by value, so the compiler enforces it.
//! * Only one process at a time can use a buffer, so do not keep them
//!   longer than necessary.
//!
//! Data flow: fs.rs and log.rs call bread/bwrite; bwrite and a cache miss
//! go to virtio_disk.rs.

use core::ptr::NonNull;

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

/// A buffer this process holds (C: the `struct buf *` that `bread`
/// returns): its sleep-lock is held and its refcnt counts this holder, so
/// its block and data are ours. Only [`bread`] makes one; dropping it is
/// [`brelse`]. Neither `Copy` nor `Clone`, so nothing uses a buffer after
/// brelse. One pointer wide, like C's argument, so in a backtrace `b` is
/// the buffer's address.
#[must_use = "dropping a BufRef releases the buffer (brelse)"]
pub struct BufRef {
    b: NonNull<Buf>,
}

impl BufRef {
    /// The device this buffer's block is on.
    pub fn dev(&self) -> u32 {
        // SAFETY: we hold the buffer, so its identity is fixed.
        unsafe { (*self.b.as_ptr()).dev }
    }

    /// The block this buffer holds.
    pub fn blockno(&self) -> u32 {
        // SAFETY: as dev.
        unsafe { (*self.b.as_ptr()).blockno }
    }

    /// The block's bytes.
    pub fn data(&self) -> &[u8; BSIZE] {
        // SAFETY: we hold the sleep-lock, which guards data; the disk
        // writes it only inside bread/bwrite, which take the BufRef.
        unsafe { &(*self.b.as_ptr()).data }
    }

    /// The block's bytes, to change (then `log_write` or `bwrite`).
    pub fn data_mut(&mut self) -> &mut [u8; BSIZE] {
        // SAFETY: as data; &mut self makes this the only borrow.
        unsafe { &mut (*self.b.as_ptr()).data }
    }

    /// The buffer's address (for the disk driver).
    fn as_ptr(&self) -> *mut Buf {
        self.b.as_ptr()
    }
}

impl Drop for BufRef {
    /// xv6's brelse: release the sleep-lock and move the buffer to the
    /// head of the most recently used list.
    fn drop(&mut self) {
        let b = self.as_ptr();
        let i = index_of(b);
        // SAFETY: we hold b (a BufRef exists only between bget and here).
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
}

/// Return a locked buffer with the contents of the indicated block.
pub fn bread(dev: u32, blockno: u32) -> BufRef {
    let b = bget(dev, blockno);
    // SAFETY: we hold b's sleep lock.
    unsafe {
        if !(*b).valid {
            virtio_disk_rw(b, false);
            (*b).valid = true;
        }
    }
    BufRef {
        // SAFETY: bget returns a buffer of the cache, never null.
        b: unsafe { NonNull::new_unchecked(b) },
    }
}

/// Write b's contents to disk. Must be locked (a `BufRef` is).
pub fn bwrite(b: &mut BufRef) {
    let b = b.as_ptr();
    // SAFETY: we hold b.
    unsafe {
        if !(*b).lock.holding() {
            panic!("bwrite");
        }
        virtio_disk_rw(b, true);
    }
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
/// used list (the `BufRef`'s drop does it; this names it as xv6 does).
pub fn brelse(b: BufRef) {
    drop(b);
}

/// Keep b in the cache (the log holds it until the transaction commits).
pub fn bpin(b: &BufRef) {
    let i = index_of(b.as_ptr());
    bcache.lock().meta[i].refcnt += 1;
}

/// Undo [`bpin`]: the cache may recycle `b` again once it is released.
pub fn bunpin(b: &BufRef) {
    let i = index_of(b.as_ptr());
    bcache.lock().meta[i].refcnt -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list as binit leaves it, without touching the static.
    fn fresh() -> Bcache {
        let mut c = Bcache {
            meta: [BufMeta {
                dev: 0,
                blockno: 0,
                refcnt: 0,
                prev: HEAD,
                next: HEAD,
            }; NBUF],
            head_prev: HEAD,
            head_next: HEAD,
        };
        for i in 0..NBUF {
            c.push_front(i);
        }
        c
    }

    /// Most recent first, walking `next`; checks `prev` on the way.
    fn order(c: &mut Bcache) -> Vec<usize> {
        let mut v = Vec::new();
        let mut prev = HEAD;
        let mut i = c.head_next;
        while i != HEAD {
            assert_eq!(c.meta[i].prev, prev, "prev link of {i}");
            v.push(i);
            assert!(v.len() <= NBUF, "the list loops");
            prev = i;
            i = c.meta[i].next;
        }
        assert_eq!(c.head_prev, prev, "head's prev is the last node");
        v
    }

    #[test]
    fn binit_links_every_buffer_once_newest_first() {
        let mut c = fresh();
        let want: Vec<usize> = (0..NBUF).rev().collect();
        assert_eq!(order(&mut c), want);
    }

    #[test]
    fn move_to_front_makes_a_buffer_most_recent_and_keeps_the_rest() {
        let mut c = fresh();
        // the oldest, one in the middle, and the newest
        for i in [0, NBUF / 2, NBUF - 1, NBUF / 2] {
            c.move_to_front(i);
            let o = order(&mut c);
            assert_eq!(o[0], i);
            assert_eq!(o.len(), NBUF);
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, (0..NBUF).collect::<Vec<_>>());
        }
    }
}
