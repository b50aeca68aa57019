//! Open files (xv6's file.c): the system-wide file table, and the device
//! switch that sends reads and writes of device files (console major 1)
//! to their drivers.
//!
//! A process's `ofile[fd]` points at a [`File`] here; a File points at an
//! inode (fs.rs), a pipe (pipe.rs) or a device (devsw). sysfile.rs calls
//! these functions; fork/exit call [`filedup`]/[`fileclose`].

use crate::fs::{ilock, iput, iunlock, readi, stati, writei, Inode, BSIZE};
use crate::kcell::KernelCell;
use crate::log::{begin_op, end_op};
use crate::param::{MAXOPBLOCKS, NDEV, NFILE};
use crate::pipe::{pipeclose, piperead, pipewrite, Pipe};
use crate::spinlock::SpinLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub enum FdType {
    None,
    Pipe,
    Inode,
    Device,
}

/// An open file (xv6's `struct file`, less `ref`, which lives under
/// `ftable`'s lock in [`Ftable`]). The fields are set by `filealloc`'s
/// caller before the file is shared, and read by its holders after.
#[repr(C)]
pub struct File {
    pub typ: FdType,
    pub readable: bool,
    pub writable: bool,
    /// FD_PIPE
    pub pipe: *mut Pipe,
    /// FD_INODE and FD_DEVICE
    pub ip: *mut Inode,
    /// FD_INODE
    pub off: u32,
    /// FD_DEVICE
    pub major: i16,
}

// SAFETY: `pipe` and `ip` name a kalloc'd pipe and an inode-table entry,
// both shared between harts under their own locks (pi->lock, ip->lock);
// the pointers themselves are plain addresses any hart may hold.
unsafe impl Send for File {}

impl File {
    const fn new() -> File {
        File {
            typ: FdType::None,
            readable: false,
            writable: false,
            pipe: core::ptr::null_mut(),
            ip: core::ptr::null_mut(),
            off: 0,
            major: 0,
        }
    }
}

/// A device's read and write: (user_addr?, addr, n) -> bytes or -1.
/// Unsafe because a kernel `addr` (user_addr? false) is trusted: it must be
/// a buffer of `n` bytes.
pub type DevFn = unsafe fn(bool, u64, i32) -> i32;

/// Map major device number to device functions.
#[derive(Clone, Copy)]
pub struct Devsw {
    pub read: Option<DevFn>,
    pub write: Option<DevFn>,
}

/// The device switch; drivers register at boot (consoleinit sets
/// `devsw[CONSOLE]`), after which it is only read.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static devsw: KernelCell<[Devsw; NDEV]> = KernelCell::new(
    [Devsw {
        read: None,
        write: None,
    }; NDEV],
);

/// The console's major device number.
pub const CONSOLE: usize = 1;

/// Register a driver for major number `major` (at boot, one hart).
pub fn set_devsw(major: usize, read: DevFn, write: DevFn) {
    // SAFETY: boot, before any process runs.
    unsafe {
        (*devsw.get())[major] = Devsw {
            read: Some(read),
            write: Some(write),
        }
    };
}

fn dev(major: i16) -> Option<Devsw> {
    if major < 0 || major as usize >= NDEV {
        return None;
    }
    // SAFETY: devsw is read-only after boot.
    Some(unsafe { (*devsw.get())[major as usize] })
}

/// What `ftable`'s lock guards: each file's reference count (C:
/// `ftable.file[i].ref`).
pub struct Ftable {
    r#ref: [i32; NFILE],
}

/// The file table's lock and the reference counts it guards (xv6's
/// `ftable`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static ftable: SpinLock<Ftable> = SpinLock::new(Ftable { r#ref: [0; NFILE] }, "ftable");

/// The files themselves (C: `ftable.file`). File `i` is reached through
/// the pointer `filealloc` returned, by whoever holds one of its
/// references; `fileclose` clears `typ` for the last one, under `ftable`'s
/// lock. Outside the `SpinLock` because files are used long after it is
/// released.
static FILE: KernelCell<[File; NFILE]> = KernelCell::new([const { File::new() }; NFILE]);

fn file_ptr(i: usize) -> *mut File {
    assert!(i < NFILE);
    // SAFETY: in bounds; only an address is computed.
    unsafe { (FILE.get() as *mut File).add(i) }
}

/// Index of `f` in the file table; panics `what` if it is not an entry.
fn index_of(f: *mut File, what: &str) -> usize {
    let i = (f as usize).wrapping_sub(FILE.get() as usize) / core::mem::size_of::<File>();
    if i >= NFILE || file_ptr(i) != f {
        panic!("{}", what);
    }
    i
}

/// Nothing to do at boot: the table is initialised statically.
pub fn fileinit() {}

/// Allocate a file structure, or null if the table is full.
pub fn filealloc() -> *mut File {
    let mut t = ftable.lock();
    match t.r#ref.iter().position(|&r| r == 0) {
        Some(i) => {
            t.r#ref[i] = 1;
            file_ptr(i)
        }
        None => core::ptr::null_mut(),
    }
}

/// Increment ref count for file f.
///
/// # Safety
/// `f` is an entry of the file table on which the caller holds a reference
/// (from `filealloc`, `filedup`, or an open descriptor of the current
/// process).
pub unsafe fn filedup(f: *mut File) -> *mut File {
    let i = index_of(f, "filedup");
    let mut t = ftable.lock();
    if t.r#ref[i] < 1 {
        panic!("filedup");
    }
    t.r#ref[i] += 1;
    f
}

/// Close file f. (Decrement ref count, close when reaches 0.)
///
/// # Safety
/// `f` is an entry of the file table on which the caller holds a reference
/// (from `filealloc`, `filedup`, or an open descriptor of the current
/// process).
pub unsafe fn fileclose(f: *mut File) {
    let i = index_of(f, "fileclose");
    let (typ, pipe, writable, ip) = {
        let mut t = ftable.lock();
        if t.r#ref[i] < 1 {
            panic!("fileclose");
        }
        t.r#ref[i] -= 1;
        if t.r#ref[i] > 0 {
            return;
        }
        // SAFETY: ours was the last reference, so the File is ours alone
        // until filealloc hands it out again, which needs the lock we hold.
        unsafe {
            let ff = ((*f).typ, (*f).pipe, (*f).writable, (*f).ip);
            (*f).typ = FdType::None;
            ff
        }
    };

    match typ {
        // SAFETY: the File held one end of the pipe open, given up here.
        FdType::Pipe => unsafe { pipeclose(pipe, writable) },
        FdType::Inode | FdType::Device => {
            begin_op();
            // SAFETY: the File held a reference on ip, given up here.
            unsafe { iput(ip) };
            end_op();
        }
        FdType::None => {}
    }
}

/// Get metadata about file f. addr is a user virtual address, pointing to
/// a struct stat.
///
/// # Safety
/// `f` is an entry of the file table on which the caller holds a reference
/// (from `filealloc`, `filedup`, or an open descriptor of the current
/// process).
pub unsafe fn filestat(f: *mut File, addr: u64) -> i32 {
    // SAFETY: f is an open file of the current process.
    unsafe {
        if (*f).typ == FdType::Inode || (*f).typ == FdType::Device {
            ilock((*f).ip);
            let st = stati((*f).ip);
            iunlock((*f).ip);
            if crate::proc::copyout_user(addr, st.as_bytes()).is_err() {
                return -1;
            }
            return 0;
        }
    }
    -1
}

/// Read from file f. addr is a user virtual address.
///
/// # Safety
/// `f` is an entry of the file table on which the caller holds a reference
/// (from `filealloc`, `filedup`, or an open descriptor of the current
/// process).
pub unsafe fn fileread(f: *mut File, addr: u64, n: i32) -> i32 {
    // SAFETY: f is an open file of the current process.
    unsafe {
        if !(*f).readable {
            return -1;
        }
        match (*f).typ {
            FdType::Pipe => piperead((*f).pipe, addr, n),
            FdType::Device => match dev((*f).major).and_then(|d| d.read) {
                // a user address: checked by copyout.
                Some(read) => read(true, addr, n),
                None => -1,
            },
            FdType::Inode => {
                ilock((*f).ip);
                let r = readi((*f).ip, true, addr, (*f).off, n as u32);
                if r > 0 {
                    (*f).off += r as u32;
                }
                iunlock((*f).ip);
                r
            }
            FdType::None => panic!("fileread"),
        }
    }
}

/// Write to file f. addr is a user virtual address.
///
/// # Safety
/// `f` is an entry of the file table on which the caller holds a reference
/// (from `filealloc`, `filedup`, or an open descriptor of the current
/// process).
pub unsafe fn filewrite(f: *mut File, addr: u64, n: i32) -> i32 {
    // SAFETY: f is an open file of the current process.
    unsafe {
        if !(*f).writable {
            return -1;
        }
        match (*f).typ {
            FdType::Pipe => pipewrite((*f).pipe, addr, n),
            FdType::Device => match dev((*f).major).and_then(|d| d.write) {
                // a user address: checked by copyin.
                Some(write) => write(true, addr, n),
                None => -1,
            },
            FdType::Inode => {
                // write a few blocks at a time to avoid exceeding the
                // maximum log transaction size, including i-node, indirect
                // block, allocation blocks, and 2 blocks of slop for
                // non-aligned writes. this really belongs lower down,
                // since writei() might be writing a device like the
                // console.
                let max = ((MAXOPBLOCKS - 1 - 1 - 2) / 2 * BSIZE) as i32;
                let mut i = 0;
                while i < n {
                    let n1 = (n - i).min(max);
                    begin_op();
                    ilock((*f).ip);
                    let r = writei((*f).ip, true, addr + i as u64, (*f).off, n1 as u32);
                    if r > 0 {
                        (*f).off += r as u32;
                    }
                    iunlock((*f).ip);
                    end_op();
                    if r != n1 {
                        // error from writei
                        break;
                    }
                    i += r;
                }
                if i == n {
                    n
                } else {
                    -1
                }
            }
            FdType::None => panic!("filewrite"),
        }
    }
}
