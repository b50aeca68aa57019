//! Simple logging that allows concurrent FS system calls (xv6's log.c).
//!
//! A log transaction contains the updates of multiple FS system calls. The
//! logging system only commits when there are no FS system calls active.
//! Thus there is never any reasoning required about whether a commit might
//! write an uncommitted system call's updates to disk.
//!
//! A system call should call [`begin_op`]/[`end_op`] to mark its start and
//! end. Usually begin_op just increments the count of in-progress FS system
//! calls and returns. But if it thinks the log is close to running out, it
//! sleeps until the last outstanding end_op commits.
//!
//! The log is a physical re-do log containing disk blocks. The on-disk log
//! format:
//! ```text
//!   header block, containing block #s for block A, B, C, ...
//!   block A
//!   block B
//!   block C
//!   ...
//! ```
//! Log appends are synchronous. fs.rs calls [`log_write`] instead of
//! bwrite; the blocks reach their home locations at commit.

use crate::bio::{bpin, bread, brelse, bunpin, bwrite, Buf};
use crate::fs::{SuperBlock, BSIZE};
use crate::kcell::KernelCell;
use crate::param::{LOGSIZE, MAXOPBLOCKS};
use crate::proc::{sleep, wakeup};
use crate::spinlock::Spinlock;

/// Contents of the header block, used for both the on-disk header block
/// and to keep track in memory of logged block# before commit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LogHeader {
    pub n: i32,
    pub block: [i32; LOGSIZE],
}

/// The log's state (xv6's `struct log`); `lock` guards it.
#[repr(C)]
pub struct Log {
    pub lock: Spinlock,
    pub start: i32,
    pub size: i32,
    /// How many FS sys calls are executing.
    pub outstanding: i32,
    /// In commit(), please wait.
    pub committing: bool,
    pub dev: u32,
    pub lh: LogHeader,
}

/// The log (kinspect may read `log` by name).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static log: KernelCell<Log> = KernelCell::new(Log {
    lock: Spinlock::new("log"),
    start: 0,
    size: 0,
    outstanding: 0,
    committing: false,
    dev: 0,
    lh: LogHeader {
        n: 0,
        block: [0; LOGSIZE],
    },
});

const _: () = assert!(
    core::mem::size_of::<LogHeader>() < BSIZE,
    "initlog: too big logheader"
);

fn chan() -> usize {
    log.get() as usize
}

/// Set the log up from the superblock and replay any committed
/// transaction a crash left behind.
pub fn initlog(dev: u32, sb: &SuperBlock) {
    let l = log.get();
    // SAFETY: called once by the first process, before any FS call.
    unsafe {
        (*l).start = sb.logstart as i32;
        (*l).size = sb.nlog as i32;
        (*l).dev = dev;
    }
    recover_from_log();
}

/// Copy committed blocks from log to their home location.
fn install_trans(recovering: bool) {
    let l = log.get();
    // SAFETY: only the committer (or boot recovery) runs this.
    unsafe {
        for tail in 0..(*l).lh.n {
            let lbuf = bread((*l).dev, ((*l).start + tail + 1) as u32); // read log block
            let dbuf = bread((*l).dev, (*l).lh.block[tail as usize] as u32); // read dst
            (*dbuf).data = (*lbuf).data; // copy block to dst
            bwrite(dbuf); // write dst to disk
            if !recovering {
                bunpin(dbuf);
            }
            brelse(lbuf);
            brelse(dbuf);
        }
    }
}

/// Read the log header from disk into the in-memory log header.
fn read_head() {
    let l = log.get();
    // SAFETY: as install_trans.
    unsafe {
        let buf = bread((*l).dev, (*l).start as u32);
        let d = &(*buf).data;
        let n = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        if n < 0 || n as usize > LOGSIZE {
            panic!("read_head: log header says {} blocks", n);
        }
        (*l).lh.n = n;
        for i in 0..n as usize {
            let o = 4 + 4 * i;
            (*l).lh.block[i] = i32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        }
        brelse(buf);
    }
}

/// Write in-memory log header to disk. This is the true point at which
/// the current transaction commits.
fn write_head() {
    let l = log.get();
    // SAFETY: as install_trans.
    unsafe {
        let buf = bread((*l).dev, (*l).start as u32);
        let d = &mut (*buf).data;
        d[0..4].copy_from_slice(&(*l).lh.n.to_le_bytes());
        for i in 0..(*l).lh.n as usize {
            let o = 4 + 4 * i;
            d[o..o + 4].copy_from_slice(&(*l).lh.block[i].to_le_bytes());
        }
        bwrite(buf);
        brelse(buf);
    }
}

fn recover_from_log() {
    read_head();
    install_trans(true); // if committed, copy from log to disk
                         // SAFETY: boot, one process.
    unsafe { (*log.get()).lh.n = 0 };
    write_head(); // clear the log
}

/// Called at the start of each FS system call.
pub fn begin_op() {
    let l = log.get();
    // SAFETY: lock guards the log's fields.
    unsafe {
        (*l).lock.acquire();
        loop {
            if (*l).committing {
                sleep(chan(), &(*l).lock);
            } else if (*l).lh.n as usize + ((*l).outstanding as usize + 1) * MAXOPBLOCKS > LOGSIZE {
                // this op might exhaust log space; wait for commit.
                sleep(chan(), &(*l).lock);
            } else {
                (*l).outstanding += 1;
                (*l).lock.release();
                break;
            }
        }
    }
}

/// Called at the end of each FS system call. Commits if this was the last
/// outstanding operation.
pub fn end_op() {
    let l = log.get();
    let mut do_commit = false;
    // SAFETY: lock guards the log's fields.
    unsafe {
        (*l).lock.acquire();
        (*l).outstanding -= 1;
        if (*l).committing {
            panic!("log.committing");
        }
        if (*l).outstanding == 0 {
            do_commit = true;
            (*l).committing = true;
        } else {
            // begin_op() may be waiting for log space, and decrementing
            // log.outstanding has decreased the amount of reserved space.
            wakeup(chan());
        }
        (*l).lock.release();
    }

    if do_commit {
        // call commit w/o holding locks, since not allowed to sleep with
        // locks.
        commit();
        // SAFETY: as above.
        unsafe {
            (*l).lock.acquire();
            (*l).committing = false;
            wakeup(chan());
            (*l).lock.release();
        }
    }
}

/// Copy modified blocks from cache to log.
fn write_log() {
    let l = log.get();
    // SAFETY: only the committer runs this.
    unsafe {
        for tail in 0..(*l).lh.n {
            let to = bread((*l).dev, ((*l).start + tail + 1) as u32); // log block
            let from = bread((*l).dev, (*l).lh.block[tail as usize] as u32); // cache block
            (*to).data = (*from).data;
            bwrite(to); // write the log
            brelse(from);
            brelse(to);
        }
    }
}

fn commit() {
    let l = log.get();
    // SAFETY: committing is set, so no one else touches lh.
    if unsafe { (*l).lh.n } > 0 {
        write_log(); // Write modified blocks from cache to log
        write_head(); // Write header to disk -- the real commit
        install_trans(false); // Now install writes to home locations
                              // SAFETY: as above.
        unsafe { (*l).lh.n = 0 };
        write_head(); // Erase the transaction from the log
    }
}

/// Caller has modified b->data and is done with the buffer. Record the
/// block number and pin in the cache by increasing refcnt. commit() /
/// write_log() will do the disk write.
///
/// log_write() replaces bwrite(); a typical use is:
/// ```text
///   bp = bread(...)
///   modify bp->data[]
///   log_write(bp)
///   brelse(bp)
/// ```
///
/// # Safety
/// `b` came from [`bread`](crate::bio::bread) and the caller still holds it
/// (not yet passed to `brelse`).
pub unsafe fn log_write(b: *mut Buf) {
    let l = log.get();
    // SAFETY: lock guards the log; the caller holds b's sleep lock.
    unsafe {
        (*l).lock.acquire();
        if (*l).lh.n as usize >= LOGSIZE || (*l).lh.n >= (*l).size - 1 {
            panic!("too big a transaction");
        }
        if (*l).outstanding < 1 {
            panic!("log_write outside of trans");
        }
        let n = (*l).lh.n as usize;
        let blockno = (*b).blockno as i32;
        let mut i = 0;
        while i < n {
            if (*l).lh.block[i] == blockno {
                // log absorption
                break;
            }
            i += 1;
        }
        (*l).lh.block[i] = blockno;
        if i == n {
            // Add new block to log?
            bpin(b);
            (*l).lh.n += 1;
        }
        (*l).lock.release();
    }
}
