//! File-system system calls (xv6's sysfile.c). Mostly argument checking,
//! since we don't trust user code, and calls into file.rs and fs.rs.
//!
//! syscall.rs's table dispatches here; each function reads its arguments
//! from the trapframe and returns the value for a0 (`u64::MAX` is -1).

use crate::abi::stat::{T_DEVICE, T_DIR, T_FILE};
use crate::file::{filealloc, fileclose, filedup, fileread, filestat, filewrite, FdType, File};
use crate::fs::{
    dirlink, dirlookup, ialloc, ilock, iput, iunlock, iunlockput, iupdate, name_len, namei,
    nameiparent, readi, writei, Inode, DIRENT_SIZE, DIRSIZ,
};
use crate::log::{begin_op, end_op};
use crate::param::{MAXPATH, NDEV, NOFILE};
use crate::pipe::pipealloc;
use crate::proc::myproc;
use crate::syscall::{argaddr, argint, argstr};

/// Open flags (xv6's fcntl.h).
pub use crate::abi::fcntl::*;

const ERR: u64 = u64::MAX;

/// A system call's result as a0: non-negative values as is, -1 as ERR.
fn ret(r: i32) -> u64 {
    r as i64 as u64
}

/// Fetch the nth word-sized system call argument as a file descriptor and
/// return both the descriptor and the corresponding struct file.
fn argfd(n: usize) -> Option<(usize, *mut File)> {
    let fd = argint(n);
    if fd < 0 || fd as usize >= NOFILE {
        return None;
    }
    // SAFETY: ofile is private to the current process.
    let f = unsafe { (*myproc()).ofile[fd as usize] };
    if f.is_null() {
        None
    } else {
        Some((fd as usize, f))
    }
}

/// Allocate a file descriptor for the given file. Takes over file
/// reference from caller on success.
fn fdalloc(f: *mut File) -> Option<usize> {
    let p = myproc();
    // SAFETY: ofile is private to the current process.
    unsafe {
        for fd in 0..NOFILE {
            if (*p).ofile[fd].is_null() {
                (*p).ofile[fd] = f;
                return Some(fd);
            }
        }
    }
    None
}

/// Fetch path argument `n` into `buf`; the path's bytes, or None.
fn argpath(n: usize, buf: &mut [u8; MAXPATH]) -> Option<&[u8]> {
    let len = argstr(n, buf)?;
    Some(&buf[..len])
}

pub fn sys_dup() -> u64 {
    let Some((_, f)) = argfd(0) else {
        return ERR;
    };
    let Some(fd) = fdalloc(f) else {
        return ERR;
    };
    // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
    unsafe { filedup(f) };
    fd as u64
}

pub fn sys_read() -> u64 {
    let p = argaddr(1);
    let n = argint(2);
    let Some((_, f)) = argfd(0) else {
        return ERR;
    };
    // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
    ret(unsafe { fileread(f, p, n) })
}

pub fn sys_write() -> u64 {
    let p = argaddr(1);
    let n = argint(2);
    let Some((_, f)) = argfd(0) else {
        return ERR;
    };
    // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
    ret(unsafe { filewrite(f, p, n) })
}

pub fn sys_close() -> u64 {
    let Some((fd, f)) = argfd(0) else {
        return ERR;
    };
    // SAFETY: ofile is private to the current process.
    unsafe { (*myproc()).ofile[fd] = core::ptr::null_mut() };
    // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
    unsafe { fileclose(f) };
    0
}

pub fn sys_fstat() -> u64 {
    let st = argaddr(1); // user pointer to struct stat
    let Some((_, f)) = argfd(0) else {
        return ERR;
    };
    // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
    ret(unsafe { filestat(f, st) })
}

/// Create the path new as a link to the same inode as old.
pub fn sys_link() -> u64 {
    let mut oldb = [0u8; MAXPATH];
    let mut newb = [0u8; MAXPATH];
    let (Some(old), Some(new)) = (argpath(0, &mut oldb), argpath(1, &mut newb)) else {
        return ERR;
    };

    begin_op();
    let ip = namei(old);
    if ip.is_null() {
        end_op();
        return ERR;
    }

    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };
    // SAFETY: ip->lock held.
    unsafe {
        if (*ip).typ == T_DIR {
            iunlockput(ip);
            end_op();
            return ERR;
        }
        (*ip).nlink += 1;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe {
        iupdate(ip);
        iunlock(ip);
    }

    let mut name = [0u8; DIRSIZ];
    let dp = nameiparent(new, &mut name);
    let ok = !dp.is_null() && {
        // SAFETY: `dp` holds a reference taken above and not yet put.
        unsafe { ilock(dp) };
        let n = name_len(&name);
        // SAFETY: dp->lock held; ip referenced.
        let same_dev = unsafe { (*dp).dev == (*ip).dev };
        // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
        let linked = same_dev && unsafe { dirlink(dp, &name[..n], (*ip).inum) } >= 0;
        // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(dp) };
        linked
    };
    if ok {
        // SAFETY: `ip` holds a reference taken above and not yet put.
        unsafe { iput(ip) };
        end_op();
        return 0;
    }

    // bad: undo the link count.
    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };
    // SAFETY: ip->lock held.
    unsafe { (*ip).nlink -= 1 };
    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe {
        iupdate(ip);
        iunlockput(ip);
    }
    end_op();
    ERR
}

/// Is the directory dp empty except for "." and ".." ?
fn isdirempty(dp: *mut Inode) -> bool {
    let mut de = [0u8; DIRENT_SIZE as usize];
    let mut off = 2 * DIRENT_SIZE;
    // SAFETY: the caller holds dp->lock.
    let size = unsafe { (*dp).size };
    while off < size {
        // SAFETY: a kernel destination: de, DIRENT_SIZE bytes, ours.
        let n = unsafe { readi(dp, false, de.as_mut_ptr() as u64, off, DIRENT_SIZE) };
        if n != DIRENT_SIZE as i32 {
            panic!("isdirempty: readi");
        }
        if de[0] != 0 || de[1] != 0 {
            return false;
        }
        off += DIRENT_SIZE;
    }
    true
}

pub fn sys_unlink() -> u64 {
    let mut pathb = [0u8; MAXPATH];
    let Some(path) = argpath(0, &mut pathb) else {
        return ERR;
    };

    begin_op();
    let mut name = [0u8; DIRSIZ];
    let dp = nameiparent(path, &mut name);
    if dp.is_null() {
        end_op();
        return ERR;
    }

    // SAFETY: `dp` holds a reference taken above and not yet put.
    unsafe { ilock(dp) };

    // Cannot unlink "." or "..".
    let n = name_len(&name);
    let elem = &name[..n];
    if elem == b"." || elem == b".." {
        // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(dp) };
        end_op();
        return ERR;
    }

    let mut off = 0u32;
    // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
    let ip = unsafe { dirlookup(dp, elem, Some(&mut off)) };
    if ip.is_null() {
        // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(dp) };
        end_op();
        return ERR;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };

    // SAFETY: ip->lock and dp->lock held.
    unsafe {
        if (*ip).nlink < 1 {
            panic!("unlink: nlink < 1");
        }
        if (*ip).typ == T_DIR && !isdirempty(ip) {
            iunlockput(ip);
            iunlockput(dp);
            end_op();
            return ERR;
        }

        let de = [0u8; DIRENT_SIZE as usize];
        // (writei's source: de, DIRENT_SIZE bytes on our stack.)
        if writei(dp, false, de.as_ptr() as u64, off, DIRENT_SIZE) != DIRENT_SIZE as i32 {
            panic!("unlink: writei");
        }
        if (*ip).typ == T_DIR {
            (*dp).nlink -= 1;
            iupdate(dp);
        }
        iunlockput(dp);

        (*ip).nlink -= 1;
        iupdate(ip);
        iunlockput(ip);
    }

    end_op();
    0
}

/// Create an inode of type `typ` at `path`, or for T_FILE return the
/// existing file there. Returns it locked, or null.
fn create(path: &[u8], typ: i16, major: i16, minor: i16) -> *mut Inode {
    let mut name = [0u8; DIRSIZ];
    let dp = nameiparent(path, &mut name);
    if dp.is_null() {
        return core::ptr::null_mut();
    }
    let n = name_len(&name);
    let elem = &name[..n];

    // SAFETY: `dp` holds a reference taken above and not yet put.
    unsafe { ilock(dp) };

    // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
    let ip = unsafe { dirlookup(dp, elem, None) };
    if !ip.is_null() {
        // SAFETY: `dp` and `ip` hold a reference taken above and not yet put, locked where the callee needs it.
        unsafe {
            iunlockput(dp);
            ilock(ip);
        }
        // SAFETY: ip->lock held.
        let t = unsafe { (*ip).typ };
        if typ == T_FILE && (t == T_FILE || t == T_DEVICE) {
            return ip;
        }
        // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(ip) };
        return core::ptr::null_mut();
    }

    // SAFETY: dp->lock held.
    let ip = ialloc(unsafe { (*dp).dev }, typ);
    if ip.is_null() {
        // SAFETY: `dp` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(dp) };
        return core::ptr::null_mut();
    }

    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };
    // SAFETY: ip->lock and dp->lock held.
    unsafe {
        (*ip).major = major;
        (*ip).minor = minor;
        (*ip).nlink = 1;
        iupdate(ip);

        let ok = if typ == T_DIR {
            // Create . and .. entries.
            // No ip->nlink++ for ".": avoid cyclic ref count.
            dirlink(ip, b".", (*ip).inum) >= 0 && dirlink(ip, b"..", (*dp).inum) >= 0
        } else {
            true
        };

        if ok && dirlink(dp, elem, (*ip).inum) >= 0 {
            if typ == T_DIR {
                // now that success is guaranteed:
                (*dp).nlink += 1; // for ".."
                iupdate(dp);
            }
            iunlockput(dp);
            return ip;
        }

        // something went wrong. de-allocate ip.
        (*ip).nlink = 0;
        iupdate(ip);
        iunlockput(ip);
        iunlockput(dp);
    }
    core::ptr::null_mut()
}

pub fn sys_open() -> u64 {
    let omode = argint(1);
    let mut pathb = [0u8; MAXPATH];
    let Some(path) = argpath(0, &mut pathb) else {
        return ERR;
    };

    begin_op();

    let ip = if omode & O_CREATE != 0 {
        let ip = create(path, T_FILE, 0, 0);
        if ip.is_null() {
            end_op();
            return ERR;
        }
        ip
    } else {
        let ip = namei(path);
        if ip.is_null() {
            end_op();
            return ERR;
        }
        // SAFETY: `ip` holds a reference taken above and not yet put.
        unsafe { ilock(ip) };
        // SAFETY: ip->lock held.
        if unsafe { (*ip).typ } == T_DIR && omode != O_RDONLY {
            // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
            unsafe { iunlockput(ip) };
            end_op();
            return ERR;
        }
        ip
    };

    // SAFETY: ip->lock held.
    let (typ, major) = unsafe { ((*ip).typ, (*ip).major) };
    if typ == T_DEVICE && (major < 0 || major as usize >= NDEV) {
        // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(ip) };
        end_op();
        return ERR;
    }

    let f = filealloc();
    let fd = if f.is_null() { None } else { fdalloc(f) };
    let Some(fd) = fd else {
        if !f.is_null() {
            // SAFETY: `f` is an open file we hold a reference on (argfd, filealloc or our ofile).
            unsafe { fileclose(f) };
        }
        // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
        unsafe { iunlockput(ip) };
        end_op();
        return ERR;
    };

    // SAFETY: f is ours (ref 1); ip->lock held.
    unsafe {
        if typ == T_DEVICE {
            (*f).typ = FdType::Device;
            (*f).major = major;
        } else {
            (*f).typ = FdType::Inode;
            (*f).off = 0;
        }
        (*f).ip = ip;
        (*f).readable = omode & O_WRONLY == 0;
        (*f).writable = (omode & O_WRONLY) != 0 || (omode & O_RDWR) != 0;

        if omode & O_TRUNC != 0 && typ == T_FILE {
            crate::fs::itrunc(ip);
        }
    }

    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe { iunlock(ip) };
    end_op();

    fd as u64
}

pub fn sys_mkdir() -> u64 {
    let mut pathb = [0u8; MAXPATH];
    begin_op();
    let ip = match argpath(0, &mut pathb) {
        Some(path) => create(path, T_DIR, 0, 0),
        None => core::ptr::null_mut(),
    };
    if ip.is_null() {
        end_op();
        return ERR;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe { iunlockput(ip) };
    end_op();
    0
}

pub fn sys_mknod() -> u64 {
    let mut pathb = [0u8; MAXPATH];
    begin_op();
    let major = argint(1) as i16;
    let minor = argint(2) as i16;
    let ip = match argpath(0, &mut pathb) {
        Some(path) => create(path, T_DEVICE, major, minor),
        None => core::ptr::null_mut(),
    };
    if ip.is_null() {
        end_op();
        return ERR;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe { iunlockput(ip) };
    end_op();
    0
}

pub fn sys_chdir() -> u64 {
    let mut pathb = [0u8; MAXPATH];
    let p = myproc();

    begin_op();
    let ip = match argpath(0, &mut pathb) {
        Some(path) => namei(path),
        None => core::ptr::null_mut(),
    };
    if ip.is_null() {
        end_op();
        return ERR;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };
    // SAFETY: ip->lock held; cwd is private to the current process.
    unsafe {
        if (*ip).typ != T_DIR {
            iunlockput(ip);
            end_op();
            return ERR;
        }
        iunlock(ip);
        iput((*p).cwd);
        end_op();
        (*p).cwd = ip;
    }
    0
}

pub fn sys_pipe() -> u64 {
    let fdarray = argaddr(0); // user pointer to array of two integers
    let p = myproc();

    let Some((rf, wf)) = pipealloc() else {
        return ERR;
    };
    let Some(fd0) = fdalloc(rf) else {
        // SAFETY: `rf` and `wf` is an open file we hold a reference on (argfd, filealloc or our ofile).
        unsafe {
            fileclose(rf);
            fileclose(wf);
        }
        return ERR;
    };
    let Some(fd1) = fdalloc(wf) else {
        // SAFETY: ofile is private to the current process.
        unsafe { (*p).ofile[fd0] = core::ptr::null_mut() };
        // SAFETY: `rf` and `wf` is an open file we hold a reference on (argfd, filealloc or our ofile).
        unsafe {
            fileclose(rf);
            fileclose(wf);
        }
        return ERR;
    };
    // SAFETY: pagetable and ofile are private to the current process.
    unsafe {
        if crate::proc::copyout_user(fdarray, &(fd0 as i32).to_le_bytes()).is_err()
            || crate::proc::copyout_user(fdarray + 4, &(fd1 as i32).to_le_bytes()).is_err()
        {
            (*p).ofile[fd0] = core::ptr::null_mut();
            (*p).ofile[fd1] = core::ptr::null_mut();
            fileclose(rf);
            fileclose(wf);
            return ERR;
        }
    }
    0
}
