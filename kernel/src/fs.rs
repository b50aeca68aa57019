//! File system implementation (xv6's fs.c), in five layers:
//!   + Blocks: allocator for raw disk blocks.
//!   + Log: crash recovery for multi-step updates (log.rs).
//!   + Files: inode allocator, reading, writing, metadata.
//!   + Directories: inode with special contents (list of other inodes!)
//!   + Names: paths like /usr/rtm/xv6/fs.c for convenient naming.
//!
//! This file contains the low-level file system manipulation routines.
//! The (higher-level) system call implementations are in sysfile.rs.
//!
//! The on-disk format is xv6-riscv's exactly, defined in `abi/fs_format.rs`
//! (which `mkfs` compiles too) and re-exported here:
//! ```text
//! [ boot block | super block | log | inode blocks | free bit map | data blocks ]
//! ```

use crate::abi::stat::{Stat, T_DIR};
use crate::bio::{bread, brelse, Buf, BufRef};
use crate::kcell::KernelCell;
use crate::log::{initlog, log_write};
use crate::param::{NINODE, ROOTDEV};
use crate::proc::{either_copyin, either_copyout, myproc};
use crate::sleeplock::Sleeplock;
use crate::spinlock::SpinLock;

pub use crate::abi::fs_format::*;

/// In-memory copy of an inode (xv6's `struct inode`, less `ref`, which
/// lives under `itable`'s lock in [`Itable`]).
#[repr(C)]
pub struct Inode {
    // Which inode this is: written by iget only while the entry has no
    // references (under itable's lock), so fixed for a holder.
    /// Device number.
    pub dev: u32,
    /// Inode number.
    pub inum: u32,
    /// Protects everything below here.
    pub lock: Sleeplock,
    /// Inode has been read from disk?
    pub valid: bool,
    /// Copy of disk inode.
    pub typ: i16,
    pub major: i16,
    pub minor: i16,
    pub nlink: i16,
    pub size: u32,
    pub addrs: [u32; NDIRECT + 1],
}

impl Inode {
    const fn new() -> Inode {
        Inode {
            dev: 0,
            inum: 0,
            lock: Sleeplock::new("inode"),
            valid: false,
            typ: 0,
            major: 0,
            minor: 0,
            nlink: 0,
            size: 0,
            addrs: [0; NDIRECT + 1],
        }
    }
}

/// There should be one superblock per disk device, but we run with only
/// one device. Written once by fsinit.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static sb: KernelCell<SuperBlock> = KernelCell::new(SuperBlock {
    magic: 0,
    size: 0,
    nblocks: 0,
    ninodes: 0,
    nlog: 0,
    logstart: 0,
    inodestart: 0,
    bmapstart: 0,
});

fn superblock() -> &'static SuperBlock {
    // SAFETY: written once by fsinit before any other file system use.
    unsafe { &*sb.get() }
}

/// Read the super block.
fn readsb(dev: u32) -> SuperBlock {
    let bp = bread(dev, 1);
    let mut s = SuperBlock::default();
    // SAFETY: SuperBlock is plain old data smaller than a block.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bp.data().as_ptr(),
            &raw mut s as *mut u8,
            core::mem::size_of::<SuperBlock>(),
        );
    }
    brelse(bp);
    s
}

/// Init fs: read the superblock, replay the log. Called by the first
/// process (it sleeps on the disk, so not from main).
pub fn fsinit(dev: u32) {
    let s = readsb(dev);
    if s.magic != FSMAGIC {
        panic!("invalid file system");
    }
    // SAFETY: once, before any other file system use.
    unsafe { *sb.get() = s };
    initlog(dev, superblock());
}

/// Zero a block.
fn bzero(dev: u32, bno: u32) {
    let mut bp = bread(dev, bno);
    *bp.data_mut() = [0; BSIZE];
    log_write(&bp);
    brelse(bp);
}

// Blocks.

/// Allocate a zeroed disk block. Returns 0 if out of disk space.
fn balloc(dev: u32) -> u32 {
    let s = superblock();
    let mut b = 0;
    while b < s.size {
        let mut bp = bread(dev, s.bblock(b));
        let mut bi = 0;
        while bi < BPB && b + bi < s.size {
            let m = 1u8 << (bi % 8);
            if bp.data()[(bi / 8) as usize] & m == 0 {
                // Is block free?
                bp.data_mut()[(bi / 8) as usize] |= m; // Mark block in use.
                log_write(&bp);
                brelse(bp);
                bzero(dev, b + bi);
                return b + bi;
            }
            bi += 1;
        }
        brelse(bp);
        b += BPB;
    }
    crate::println!("balloc: out of blocks");
    0
}

/// Free a disk block.
fn bfree(dev: u32, b: u32) {
    let mut bp = bread(dev, superblock().bblock(b));
    let bi = b % BPB;
    let m = 1u8 << (bi % 8);
    if bp.data()[(bi / 8) as usize] & m == 0 {
        panic!("freeing free block");
    }
    bp.data_mut()[(bi / 8) as usize] &= !m;
    log_write(&bp);
    brelse(bp);
}

// Inodes.
//
// An inode describes a single unnamed file. The inode disk structure holds
// metadata: the file's type, its size, the number of links referring to
// it, and the list of blocks holding the file's content.
//
// The inodes are laid out sequentially on disk at block sb.inodestart.
// Each inode has a number, indicating its position on the disk.
//
// The kernel keeps a table of in-use inodes in memory to provide a place
// for synchronizing access to inodes used by multiple processes. The
// in-memory inodes include book-keeping information that is not stored on
// disk: ip->ref and ip->valid.
//
// An inode and its in-memory representation go through a sequence of
// states before they can be used by the rest of the file system code.
//
// * Allocation: an inode is allocated if its type (on disk) is non-zero.
//   ialloc() allocates, and iput() frees if the reference and link counts
//   have fallen to zero.
//
// * Referencing in table: an entry in the inode table is free if ip->ref
//   is zero. Otherwise ip->ref tracks the number of in-memory pointers to
//   the entry (open files and current directories). iget() finds or
//   creates a table entry and increments its ref; iput() decrements ref.
//
// * Valid: the information (type, size, &c) in an inode table entry is
//   only correct when ip->valid is 1. ilock() reads the inode from the
//   disk and sets ip->valid, while iput() clears ip->valid if ip->ref has
//   fallen to zero.
//
// * Locked: file system code may only examine and modify the information
//   in an inode and its content if it has first locked the inode.
//
// Thus a typical sequence is:
//   ip = iget(dev, inum)
//   ilock(ip)
//   ... examine and modify ip->xxx ...
//   iunlock(ip)
//   iput(ip)
//
// ilock() is separate from iget() so that system calls can get a
// long-term reference to an inode (as for an open file) and only lock it
// for short periods (e.g., in read()). The separation also helps avoid
// deadlock and races during pathname lookup. iget() increments ip->ref so
// that the inode stays in the table and pointers to it remain valid.
//
// Many internal file system functions expect the caller to have locked
// the inodes involved; this lets callers create multi-step atomic
// operations.
//
// The itable.lock spin-lock protects the allocation of itable entries.
// Since ip->ref indicates whether an entry is free, and ip->dev and
// ip->inum indicate which i-node an entry holds, one must hold
// itable.lock while using any of those fields. Here `itable` is a
// SpinLock owning every entry's ref, dev and inum (`Itable`); an Inode
// keeps a copy of dev and inum for its holders, which cannot change while
// they hold a reference.
//
// An ip->lock sleep-lock protects all ip-> fields other than ref, dev, and
// inum. One must hold ip->lock in order to read or write that inode's
// ip->valid, ip->size, ip->type, &c.

/// What `itable`'s lock guards: which inode each entry holds and how many
/// references it has (C: `itable.inode[i].{dev,inum,ref}`).
pub struct Itable {
    dev: [u32; NINODE],
    inum: [u32; NINODE],
    r#ref: [i32; NINODE],
}

/// The inode table's lock and the data it guards (xv6's `itable`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static itable: SpinLock<Itable> = SpinLock::new(
    Itable {
        dev: [0; NINODE],
        inum: [0; NINODE],
        r#ref: [0; NINODE],
    },
    "itable",
);

/// The inodes themselves (C: `itable.inode`). Entry `i` is reached
/// through the pointer `iget` returned, by a holder of one of its
/// references, under its sleep-lock for everything but `dev` and `inum`.
/// Outside the `SpinLock` because inodes are used long after it is
/// released.
static INODE: KernelCell<[Inode; NINODE]> = KernelCell::new([const { Inode::new() }; NINODE]);

fn inode_ptr(i: usize) -> *mut Inode {
    assert!(i < NINODE);
    // SAFETY: in bounds; only an address is computed.
    unsafe { (INODE.get() as *mut Inode).add(i) }
}

/// Index of `ip` in the inode table; panics `what` if it is not an entry.
fn index_of(ip: *mut Inode, what: &str) -> usize {
    let i = (ip as usize).wrapping_sub(INODE.get() as usize) / core::mem::size_of::<Inode>();
    if i >= NINODE || inode_ptr(i) != ip {
        panic!("{}", what);
    }
    i
}

/// `ip`'s reference count (for the sanity checks of ilock and iunlock).
fn refcount(ip: *mut Inode, what: &str) -> i32 {
    if ip.is_null() {
        panic!("{}", what);
    }
    let i = index_of(ip, what);
    itable.lock().r#ref[i]
}

/// Nothing to do at boot: the table is initialised statically.
pub fn iinit() {}

/// Offset of inode `inum`'s dinode within its block.
fn dinode_offset(inum: u32) -> usize {
    (inum % IPB) as usize * DINODE_SIZE
}

/// Inode `inum`'s dinode in `bp`, the block that holds it. The pointer is
/// good while `bp` is held: the offset is a multiple of 64 within the
/// 1024-byte block, and the data is 4-byte aligned (Buf is repr(C) with
/// u32 fields first, and data is at an offset the assertion below checks).
fn dinode_at(bp: &mut BufRef, inum: u32) -> *mut Dinode {
    bp.data_mut()[dinode_offset(inum)..].as_mut_ptr() as *mut Dinode
}

const _: () = assert!(core::mem::offset_of!(Buf, data) % 4 == 0);

/// Allocate an inode on device dev. Mark it as allocated by giving it type
/// type. Returns an unlocked but allocated and referenced inode, or null if
/// there is no free inode.
pub fn ialloc(dev: u32, typ: i16) -> *mut Inode {
    let s = superblock();
    for inum in 1..s.ninodes {
        let mut bp = bread(dev, s.iblock(inum));
        let dip = dinode_at(&mut bp, inum);
        // SAFETY: dip is in bp, which we hold.
        if unsafe { (*dip).typ } == 0 {
            // a free inode
            // SAFETY: as above.
            unsafe {
                core::ptr::write_bytes(dip, 0, 1);
                (*dip).typ = typ;
            }
            log_write(&bp); // mark it allocated on the disk
            brelse(bp);
            return iget(dev, inum);
        }
        brelse(bp);
    }
    crate::println!("ialloc: no inodes");
    core::ptr::null_mut()
}

/// Copy a modified in-memory inode to disk. Must be called after every
/// change to an ip->xxx field that lives on disk. Caller must hold ip->lock.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `ip->lock`.
pub unsafe fn iupdate(ip: *mut Inode) {
    // SAFETY: the caller holds ip->lock.
    unsafe {
        let mut bp = bread((*ip).dev, superblock().iblock((*ip).inum));
        let dip = dinode_at(&mut bp, (*ip).inum);
        (*dip).typ = (*ip).typ;
        (*dip).major = (*ip).major;
        (*dip).minor = (*ip).minor;
        (*dip).nlink = (*ip).nlink;
        (*dip).size = (*ip).size;
        (*dip).addrs = (*ip).addrs;
        log_write(&bp);
        brelse(bp);
    }
}

/// Find the inode with number inum on device dev and return the in-memory
/// copy. Does not lock the inode and does not read it from disk.
fn iget(dev: u32, inum: u32) -> *mut Inode {
    let mut t = itable.lock();
    // Is the inode already in the table?
    let mut empty = None;
    for i in 0..NINODE {
        if t.r#ref[i] > 0 && t.dev[i] == dev && t.inum[i] == inum {
            t.r#ref[i] += 1;
            return inode_ptr(i);
        }
        if empty.is_none() && t.r#ref[i] == 0 {
            // Remember empty slot.
            empty = Some(i);
        }
    }
    // Recycle an inode entry.
    let Some(i) = empty else {
        panic!("iget: no inodes");
    };
    t.dev[i] = dev;
    t.inum[i] = inum;
    t.r#ref[i] = 1;
    let ip = inode_ptr(i);
    // SAFETY: the entry had no references, so no one else reaches it until
    // we release itable's lock.
    unsafe {
        (*ip).dev = dev;
        (*ip).inum = inum;
        (*ip).valid = false;
    }
    ip
}

/// Increment reference count for ip. Returns ip to enable ip = idup(ip1)
/// idiom.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
pub unsafe fn idup(ip: *mut Inode) -> *mut Inode {
    let i = index_of(ip, "idup");
    itable.lock().r#ref[i] += 1;
    ip
}

/// Lock the given inode. Reads the inode from disk if necessary.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
pub unsafe fn ilock(ip: *mut Inode) {
    if refcount(ip, "ilock") < 1 {
        panic!("ilock");
    }
    // SAFETY: ip is a referenced itable entry.
    unsafe {
        (*ip).lock.acquire();
        if !(*ip).valid {
            let mut bp = bread((*ip).dev, superblock().iblock((*ip).inum));
            let dip = dinode_at(&mut bp, (*ip).inum);
            (*ip).typ = (*dip).typ;
            (*ip).major = (*dip).major;
            (*ip).minor = (*dip).minor;
            (*ip).nlink = (*dip).nlink;
            (*ip).size = (*dip).size;
            (*ip).addrs = (*dip).addrs;
            brelse(bp);
            (*ip).valid = true;
            if (*ip).typ == 0 {
                panic!("ilock: no type");
            }
        }
    }
}

/// Unlock the given inode.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `ip->lock`.
pub unsafe fn iunlock(ip: *mut Inode) {
    // SAFETY: ip is a referenced itable entry.
    unsafe {
        if ip.is_null() || !(*ip).lock.holding() || refcount(ip, "iunlock") < 1 {
            panic!("iunlock");
        }
        (*ip).lock.release();
    }
}

/// Drop a reference to an in-memory inode. If that was the last
/// reference, the inode table entry can be recycled. If that was the last
/// reference and the inode has no links to it, free the inode (and its
/// content) on disk. All calls to iput() must be inside a transaction in
/// case it has to free the inode.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The reference is given up.
pub unsafe fn iput(ip: *mut Inode) {
    let i = index_of(ip, "iput");
    let mut t = itable.lock();
    // SAFETY: with ref == 1 the entry is ours alone, so reading valid and
    // nlink without ip->lock races with no one (as in C).
    if t.r#ref[i] == 1 && unsafe { (*ip).valid && (*ip).nlink == 0 } {
        // inode has no links and no other references: truncate and free.

        // ip->ref == 1 means no other process can have ip locked,
        // so this acquiresleep() won't block (or deadlock).
        // SAFETY: ip is ours (above).
        unsafe { (*ip).lock.acquire() };
        drop(t);

        // SAFETY: we hold our reference and ip->lock.
        unsafe {
            itrunc(ip);
            (*ip).typ = 0;
            iupdate(ip);
            (*ip).valid = false;

            (*ip).lock.release();
        }
        t = itable.lock();
    }
    t.r#ref[i] -= 1;
}

/// Common idiom: unlock, then put.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `ip->lock`; the reference is given up.
pub unsafe fn iunlockput(ip: *mut Inode) {
    iunlock(ip);
    iput(ip);
}

// Inode content
//
// The content (data) associated with each inode is stored in blocks on the
// disk. The first NDIRECT block numbers are listed in ip->addrs[]. The
// next NINDIRECT blocks are listed in block ip->addrs[NDIRECT].

/// Return the disk block address of the nth block in inode ip. If there
/// is no such block, bmap allocates one. Returns 0 if out of disk space.
fn bmap(ip: *mut Inode, bn: u32) -> u32 {
    let mut bn = bn as usize;
    // SAFETY: the caller holds ip->lock.
    unsafe {
        if bn < NDIRECT {
            let mut addr = (*ip).addrs[bn];
            if addr == 0 {
                addr = balloc((*ip).dev);
                if addr == 0 {
                    return 0;
                }
                (*ip).addrs[bn] = addr;
            }
            return addr;
        }
        bn -= NDIRECT;

        if bn < NINDIRECT {
            // Load indirect block, allocating if necessary.
            let mut addr = (*ip).addrs[NDIRECT];
            if addr == 0 {
                addr = balloc((*ip).dev);
                if addr == 0 {
                    return 0;
                }
                (*ip).addrs[NDIRECT] = addr;
            }
            let mut bp = bread((*ip).dev, addr);
            let a = bp.data_mut().as_mut_ptr() as *mut u32;
            let mut addr = a.add(bn).read_unaligned();
            if addr == 0 {
                addr = balloc((*ip).dev);
                if addr != 0 {
                    a.add(bn).write_unaligned(addr);
                    log_write(&bp);
                }
            }
            brelse(bp);
            return addr;
        }
    }
    panic!("bmap: out of range");
}

/// Truncate inode (discard contents). Caller must hold ip->lock.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `ip->lock`.
pub unsafe fn itrunc(ip: *mut Inode) {
    // SAFETY: the caller holds ip->lock.
    unsafe {
        for i in 0..NDIRECT {
            if (*ip).addrs[i] != 0 {
                bfree((*ip).dev, (*ip).addrs[i]);
                (*ip).addrs[i] = 0;
            }
        }

        if (*ip).addrs[NDIRECT] != 0 {
            let bp = bread((*ip).dev, (*ip).addrs[NDIRECT]);
            let a = bp.data().as_ptr() as *const u32;
            for j in 0..NINDIRECT {
                let x = a.add(j).read_unaligned();
                if x != 0 {
                    bfree((*ip).dev, x);
                }
            }
            brelse(bp);
            bfree((*ip).dev, (*ip).addrs[NDIRECT]);
            (*ip).addrs[NDIRECT] = 0;
        }

        (*ip).size = 0;
    }
    iupdate(ip);
}

/// Copy stat information from inode. Caller must hold ip->lock.
///
/// # Safety
/// `ip` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `ip->lock`.
pub unsafe fn stati(ip: *mut Inode) -> Stat {
    // SAFETY: the caller holds ip->lock.
    unsafe {
        Stat {
            dev: (*ip).dev as i32,
            ino: (*ip).inum,
            typ: (*ip).typ,
            nlink: (*ip).nlink,
            size: (*ip).size as u64,
        }
    }
}

/// Read data from inode. Caller must hold ip->lock. If user_dst is true,
/// then dst is a user virtual address; otherwise, dst is a kernel address.
/// Returns the number of bytes read, or -1 on a bad user address before
/// anything was read.
///
/// # Safety
/// If `!user_dst`, `dst` is a kernel buffer of `n` writable bytes that
/// nothing else uses meanwhile (a user `dst` is checked by copyout).
pub unsafe fn readi(ip: *mut Inode, user_dst: bool, mut dst: u64, off: u32, n: u32) -> i32 {
    // SAFETY: the caller holds ip->lock.
    let size = unsafe { (*ip).size };
    if off > size || off.checked_add(n).is_none() {
        return 0;
    }
    let n = n.min(size - off);
    let mut tot: u32 = 0;
    let mut off = off;
    while tot < n {
        let addr = bmap(ip, off / BSIZE as u32);
        if addr == 0 {
            break;
        }
        // SAFETY: ip->lock held.
        let bp = bread(unsafe { (*ip).dev }, addr);
        let start = off as usize % BSIZE;
        let m = ((n - tot) as usize).min(BSIZE - start);
        // SAFETY: we hold bp; dst is user memory or the caller's buffer,
        // of which m more bytes remain.
        let ok = unsafe { either_copyout(user_dst, dst, &bp.data()[start..start + m]) }.is_ok();
        brelse(bp);
        if !ok {
            return -1;
        }
        tot += m as u32;
        off += m as u32;
        dst += m as u64;
    }
    tot as i32
}

/// Write data to inode. Caller must hold ip->lock. If user_src is true,
/// then src is a user virtual address; otherwise, src is a kernel address.
/// Returns the number of bytes successfully written. If the return value
/// is less than the requested n, there was an error of some kind.
///
/// # Safety
/// If `!user_src`, `src` is a kernel buffer of `n` readable bytes.
pub unsafe fn writei(ip: *mut Inode, user_src: bool, mut src: u64, off: u32, n: u32) -> i32 {
    // SAFETY: the caller holds ip->lock.
    let size = unsafe { (*ip).size };
    if off > size {
        return -1;
    }
    match off.checked_add(n) {
        Some(end) if end as usize <= MAXFILE * BSIZE => {}
        _ => return -1,
    }
    let mut tot: u32 = 0;
    let mut off = off;
    while tot < n {
        let addr = bmap(ip, off / BSIZE as u32);
        if addr == 0 {
            break;
        }
        // SAFETY: ip->lock held.
        let mut bp = bread(unsafe { (*ip).dev }, addr);
        let start = off as usize % BSIZE;
        let m = ((n - tot) as usize).min(BSIZE - start);
        // SAFETY: src is user memory or the caller's buffer, of which m
        // more bytes remain.
        let ok = unsafe { either_copyin(&mut bp.data_mut()[start..start + m], user_src, src) }
            .is_ok();
        if !ok {
            brelse(bp);
            break;
        }
        log_write(&bp);
        brelse(bp);
        tot += m as u32;
        off += m as u32;
        src += m as u64;
    }

    // SAFETY: ip->lock held.
    unsafe {
        if off > (*ip).size {
            (*ip).size = off;
        }
    }

    // write the i-node back to disk even if the size didn't change because
    // the loop above might have called bmap() and added a new block to
    // ip->addrs[].
    iupdate(ip);

    tot as i32
}

// Directories

/// Compare a path element with a directory entry's name, as strncmp(s, t,
/// DIRSIZ) == 0 would.
pub fn namecmp(s: &[u8], t: &[u8; DIRSIZ]) -> bool {
    let tn = t.iter().position(|&c| c == 0).unwrap_or(DIRSIZ);
    let sn = s.len().min(DIRSIZ);
    s[..sn] == t[..tn]
}

/// Look for a directory entry in a directory. If found, set *poff to byte
/// offset of entry. Returns null if not found.
///
/// # Safety
/// `dp` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `dp->lock`.
pub unsafe fn dirlookup(dp: *mut Inode, name: &[u8], poff: Option<&mut u32>) -> *mut Inode {
    // SAFETY: the caller holds dp->lock; readi's destination is `de` on
    // our stack, DIRENT_SIZE bytes.
    unsafe {
        if (*dp).typ != T_DIR {
            panic!("dirlookup not DIR");
        }
        let mut de = Dirent::default();
        let mut off = 0;
        while off < (*dp).size {
            if readi(
                dp,
                false,
                de.as_bytes_mut().as_mut_ptr() as u64,
                off,
                DIRENT_SIZE,
            ) != DIRENT_SIZE as i32
            {
                panic!("dirlookup read");
            }
            if de.inum != 0 && namecmp(name, &de.name) {
                // entry matches path element
                if let Some(p) = poff {
                    *p = off;
                }
                return iget((*dp).dev, de.inum as u32);
            }
            off += DIRENT_SIZE;
        }
    }
    core::ptr::null_mut()
}

/// Write a new directory entry (name, inum) into the directory dp.
/// Returns 0 on success, -1 on failure (e.g. out of disk blocks).
///
/// # Safety
/// `dp` is an entry of the inode table on which the caller holds a reference
/// (from `iget`, `ialloc`, `idup`, `namei` or a process's `cwd`/open file).
/// The caller holds `dp->lock`.
pub unsafe fn dirlink(dp: *mut Inode, name: &[u8], inum: u32) -> i32 {
    // Check that name is not present.
    let ip = dirlookup(dp, name, None);
    if !ip.is_null() {
        iput(ip);
        return -1;
    }

    // Look for an empty dirent.
    let mut de = Dirent::default();
    let mut off = 0;
    // SAFETY: the caller holds dp->lock; readi's destination is `de` on
    // our stack, DIRENT_SIZE bytes.
    unsafe {
        while off < (*dp).size {
            if readi(
                dp,
                false,
                de.as_bytes_mut().as_mut_ptr() as u64,
                off,
                DIRENT_SIZE,
            ) != DIRENT_SIZE as i32
            {
                panic!("dirlink read");
            }
            if de.inum == 0 {
                break;
            }
            off += DIRENT_SIZE;
        }
    }

    let n = name.len().min(DIRSIZ);
    de.name = [0; DIRSIZ];
    de.name[..n].copy_from_slice(&name[..n]);
    de.inum = inum as u16;
    // SAFETY: a kernel source: de, DIRENT_SIZE bytes on our stack.
    let n = unsafe { writei(dp, false, de.as_bytes().as_ptr() as u64, off, DIRENT_SIZE) };
    if n != DIRENT_SIZE as i32 {
        return -1;
    }
    0
}

// Paths

/// Copy the next path element from path into name. Return the rest of the
/// path after the element (leading slashes skipped), or None if there is
/// no element to remove.
///
/// Examples:
///   skipelem("a/bb/c", name) = Some("bb/c"), setting name = "a"
///   skipelem("///a//bb", name) = Some("bb"), setting name = "a"
///   skipelem("a", name) = Some(""), setting name = "a"
///   skipelem("", name) = skipelem("////", name) = None
pub fn skipelem<'a>(path: &'a [u8], name: &mut [u8; DIRSIZ]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i < path.len() && path[i] == b'/' {
        i += 1;
    }
    if i == path.len() {
        return None;
    }
    let s = i;
    while i < path.len() && path[i] != b'/' {
        i += 1;
    }
    let len = (i - s).min(DIRSIZ);
    *name = [0; DIRSIZ];
    name[..len].copy_from_slice(&path[s..s + len]);
    while i < path.len() && path[i] == b'/' {
        i += 1;
    }
    Some(&path[i..])
}

/// Length of a directory-entry name (up to the first NUL).
pub fn name_len(name: &[u8; DIRSIZ]) -> usize {
    name.iter().position(|&c| c == 0).unwrap_or(DIRSIZ)
}

/// Look up and return the inode for a path name. If parent is true,
/// return the inode for the parent and copy the final path element into
/// name, which must have room for DIRSIZ bytes. Must be called inside a
/// transaction since it calls iput(). Returns null on failure.
fn namex(path: &[u8], nameiparent: bool, name: &mut [u8; DIRSIZ]) -> *mut Inode {
    let mut ip = if path.first() == Some(&b'/') {
        iget(ROOTDEV, ROOTINO)
    } else {
        // SAFETY: a process is running this system call, and its cwd holds
        // a reference on that inode (cwd is private to the process).
        unsafe { idup((*myproc()).cwd) }
    };

    let mut path = path;
    while let Some(rest) = skipelem(path, name) {
        path = rest;
        // SAFETY: `ip` holds a reference taken above and not yet put.
        unsafe { ilock(ip) };
        // SAFETY: ip->lock held.
        if unsafe { (*ip).typ } != T_DIR {
            // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
            unsafe { iunlockput(ip) };
            return core::ptr::null_mut();
        }
        if nameiparent && path.is_empty() {
            // Stop one level early.
            // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
            unsafe { iunlock(ip) };
            return ip;
        }
        let n = name_len(name);
        // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
        let next = unsafe { dirlookup(ip, &name[..n], None) };
        if next.is_null() {
            // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
            unsafe { iunlockput(ip) };
            return core::ptr::null_mut();
        }
        // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(ip) };
        ip = next;
    }
    if nameiparent {
        // SAFETY: `ip` holds a reference taken above and not yet put.
        unsafe { iput(ip) };
        return core::ptr::null_mut();
    }
    ip
}

/// The inode for `path`, or null.
pub fn namei(path: &[u8]) -> *mut Inode {
    let mut name = [0u8; DIRSIZ];
    namex(path, false, &mut name)
}

/// The inode of `path`'s parent directory, or null; the last element goes
/// to `name`.
pub fn nameiparent(path: &[u8], name: &mut [u8; DIRSIZ]) -> *mut Inode {
    namex(path, true, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipelem_matches_xv6() {
        let mut name = [0u8; DIRSIZ];
        assert_eq!(skipelem(b"a/bb/c", &mut name), Some(&b"bb/c"[..]));
        assert_eq!(&name[..name_len(&name)], b"a");
        assert_eq!(skipelem(b"///a//bb", &mut name), Some(&b"bb"[..]));
        assert_eq!(&name[..name_len(&name)], b"a");
        assert_eq!(skipelem(b"a", &mut name), Some(&b""[..]));
        assert_eq!(skipelem(b"", &mut name), None);
        assert_eq!(skipelem(b"////", &mut name), None);
        // Names longer than DIRSIZ are cut to DIRSIZ.
        assert_eq!(skipelem(b"123456789012345/x", &mut name), Some(&b"x"[..]));
        assert_eq!(&name, b"12345678901234");
    }

    #[test]
    fn namecmp_compares_up_to_dirsiz() {
        assert!(namecmp(b"abc", b"abc\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(!namecmp(b"ab", b"abc\0\0\0\0\0\0\0\0\0\0\0"));
        assert!(namecmp(b"12345678901234", b"12345678901234"));
        assert!(namecmp(b"123456789012345", b"12345678901234"));
    }

    #[test]
    fn on_disk_sizes_are_xv6s() {
        assert_eq!(core::mem::size_of::<Dinode>(), 64);
        assert_eq!(core::mem::size_of::<Dirent>(), 16);
        assert_eq!(core::mem::size_of::<SuperBlock>(), 32);
    }
}
