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

use crate::bio::{bpin, bread, brelse, bunpin, bwrite, BufRef};
use crate::fs::{SuperBlock, BSIZE};
use crate::param::{LOGSIZE, MAXOPBLOCKS};
use crate::proc::wakeup;
use crate::spinlock::SpinLock;

/// Contents of the header block, used for both the on-disk header block
/// and to keep track in memory of logged block# before commit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LogHeader {
    pub n: i32,
    pub block: [i32; LOGSIZE],
}

/// The log's state (xv6's `struct log` without its `lock`: the
/// [`SpinLock`] around it is that lock).
#[derive(Clone, Copy)]
pub struct Log {
    pub start: i32,
    pub size: i32,
    /// How many FS sys calls are executing.
    pub outstanding: i32,
    /// In commit(), please wait.
    pub committing: bool,
    pub dev: u32,
    pub lh: LogHeader,
}

/// The log. Its lock guards every field; `commit` works on a copy taken
/// when it set `committing`, so it never touches the log without the lock
/// (in C it reads `log.lh` unlocked, relying on the same flag).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static log: SpinLock<Log> = SpinLock::new(
    Log {
        start: 0,
        size: 0,
        outstanding: 0,
        committing: false,
        dev: 0,
        lh: LogHeader {
            n: 0,
            block: [0; LOGSIZE],
        },
    },
    "log",
);

const _: () = assert!(
    core::mem::size_of::<LogHeader>() < BSIZE,
    "initlog: too big logheader"
);

/// What begin_op sleeps on and end_op wakes: the log's address, as in C.
fn chan() -> usize {
    &log as *const SpinLock<Log> as usize
}

/// Set the log up from the superblock and replay any committed
/// transaction a crash left behind.
pub fn initlog(dev: u32, sb: &SuperBlock) {
    let l = {
        let mut l = log.lock();
        l.start = sb.logstart as i32;
        l.size = sb.nlog as i32;
        l.dev = dev;
        *l
    };
    recover_from_log(l);
}

/// Copy committed blocks from log to their home location. `l` is the
/// committer's copy of the log (or boot recovery's).
fn install_trans(l: &Log, recovering: bool) {
    for tail in 0..l.lh.n {
        let lbuf = bread(l.dev, (l.start + tail + 1) as u32); // read log block
        let mut dbuf = bread(l.dev, l.lh.block[tail as usize] as u32); // read dst
        *dbuf.data_mut() = *lbuf.data(); // copy block to dst
        bwrite(&mut dbuf); // write dst to disk
        if !recovering {
            bunpin(&dbuf);
        }
        brelse(lbuf);
        brelse(dbuf);
    }
}

/// Read the log header from disk into `l`'s header.
fn read_head(l: &mut Log) {
    let buf = bread(l.dev, l.start as u32);
    let d = buf.data();
    let n = i32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    if n < 0 || n as usize > LOGSIZE {
        panic!("read_head: log header says {} blocks", n);
    }
    l.lh.n = n;
    for i in 0..n as usize {
        let o = 4 + 4 * i;
        l.lh.block[i] = i32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    }
    brelse(buf);
}

/// Write `l`'s header to disk. This is the true point at which the
/// current transaction commits.
fn write_head(l: &Log) {
    let mut buf = bread(l.dev, l.start as u32);
    let d = buf.data_mut();
    d[0..4].copy_from_slice(&l.lh.n.to_le_bytes());
    for i in 0..l.lh.n as usize {
        let o = 4 + 4 * i;
        d[o..o + 4].copy_from_slice(&l.lh.block[i].to_le_bytes());
    }
    bwrite(&mut buf);
    brelse(buf);
}

/// Boot recovery on a copy of the log; the log in memory keeps `lh.n == 0`,
/// which is what recovery leaves.
fn recover_from_log(mut l: Log) {
    read_head(&mut l);
    install_trans(&l, true); // if committed, copy from log to disk
    l.lh.n = 0;
    write_head(&l); // clear the log
}

/// Called at the start of each FS system call.
pub fn begin_op() {
    let mut l = log.lock();
    loop {
        if l.committing {
            l = l.sleep(chan());
        } else if l.lh.n as usize + (l.outstanding as usize + 1) * MAXOPBLOCKS > LOGSIZE {
            // this op might exhaust log space; wait for commit.
            l = l.sleep(chan());
        } else {
            l.outstanding += 1;
            break;
        }
    }
}

/// Called at the end of each FS system call. Commits if this was the last
/// outstanding operation.
pub fn end_op() {
    // Some(copy of the log) when this call must commit.
    let to_commit = {
        let mut l = log.lock();
        l.outstanding -= 1;
        if l.committing {
            panic!("log.committing");
        }
        if l.outstanding == 0 {
            l.committing = true;
            Some(*l)
        } else {
            // begin_op() may be waiting for log space, and decrementing
            // log.outstanding has decreased the amount of reserved space.
            wakeup(chan());
            None
        }
    };

    if let Some(mut l) = to_commit {
        // call commit w/o holding locks, since not allowed to sleep with
        // locks. While `committing` is set no one changes the log, so the
        // copy is the log.
        commit(&mut l);
        let mut l = log.lock();
        l.lh.n = 0;
        l.committing = false;
        wakeup(chan());
    }
}

/// Copy modified blocks from cache to log.
fn write_log(l: &Log) {
    for tail in 0..l.lh.n {
        let mut to = bread(l.dev, (l.start + tail + 1) as u32); // log block
        let from = bread(l.dev, l.lh.block[tail as usize] as u32); // cache block
        *to.data_mut() = *from.data();
        bwrite(&mut to); // write the log
        brelse(from);
        brelse(to);
    }
}

/// Write the transaction in `l` (the committer's copy of the log) to the
/// log, then to the home locations, then erase it from the log.
fn commit(l: &mut Log) {
    if l.lh.n > 0 {
        write_log(l); // Write modified blocks from cache to log
        write_head(l); // Write header to disk -- the real commit
        install_trans(l, false); // Now install writes to home locations
        l.lh.n = 0;
        write_head(l); // Erase the transaction from the log
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
pub fn log_write(b: &BufRef) {
    let mut l = log.lock();
    if l.lh.n as usize >= LOGSIZE || l.lh.n >= l.size - 1 {
        panic!("too big a transaction");
    }
    if l.outstanding < 1 {
        panic!("log_write outside of trans");
    }
    let n = l.lh.n as usize;
    let blockno = b.blockno() as i32;
    let mut i = 0;
    while i < n {
        if l.lh.block[i] == blockno {
            // log absorption
            break;
        }
        i += 1;
    }
    l.lh.block[i] = blockno;
    if i == n {
        // Add new block to log?
        bpin(b);
        l.lh.n += 1;
    }
}
