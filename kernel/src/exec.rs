//! exec: replace the current process's memory with an ELF program from the
//! file system (xv6's exec.c and sys_exec).
//!
//! The new image: the program's PT_LOAD segments from address 0, then a
//! guard page (no PTE_U), then the user stack (USERSTACK pages) holding the
//! argument strings and the argv[] array. main(argc, argv) gets argc in a0
//! (exec's return value) and argv in a1. Like the pgtbl lab's kernel, exec
//! prints the first process's page table (`vmprint`) when pid 1 execs.

use crate::fs::{ilock, iunlockput, namei, readi, Inode};
use crate::kalloc::{kalloc, kfree};
use crate::log::{begin_op, end_op};
use crate::memlayout::TRAPFRAME;
use crate::param::{MAXARG, MAXPATH, USERSTACK};
use crate::proc::{myproc, proc_freepagetable, proc_pagetable, set_name};
use crate::riscv::{pg_round_up, Pagetable, PagetableRef, PhysAddr, PteFlags, VirtAddr, PGSIZE};
use crate::syscall::{argaddr, argstr, fetchaddr, fetchstr};
use crate::vm::{copyout, uvmalloc, uvmclear, walkaddr};

/// "\x7FELF" in little endian.
pub const ELF_MAGIC: u32 = 0x464C_457F;
/// Values for ProgHdr type.
pub const ELF_PROG_LOAD: u32 = 1;
/// Size of the ELF64 file header and program header.
pub const ELF_HDR_SIZE: usize = 64;
pub const PROG_HDR_SIZE: usize = 56;

/// The fields of an ELF64 file header exec uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfHdr {
    pub magic: u32,
    pub entry: u64,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
}

/// Little-endian u16 at byte `o` of `b` (which must be long enough).
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
/// Little-endian u32 at byte `o` of `b`.
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
/// Little-endian u64 at byte `o` of `b`.
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

impl ElfHdr {
    /// Decode a little-endian ELF64 header.
    pub fn parse(b: &[u8; ELF_HDR_SIZE]) -> ElfHdr {
        ElfHdr {
            magic: u32_at(b, 0),
            entry: u64_at(b, 24),
            phoff: u64_at(b, 32),
            phentsize: u16_at(b, 54),
            phnum: u16_at(b, 56),
        }
    }
}

/// An ELF64 program section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgHdr {
    pub typ: u32,
    pub flags: u32,
    pub off: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

impl ProgHdr {
    pub fn parse(b: &[u8; PROG_HDR_SIZE]) -> ProgHdr {
        ProgHdr {
            typ: u32_at(b, 0),
            flags: u32_at(b, 4),
            off: u64_at(b, 8),
            vaddr: u64_at(b, 16),
            filesz: u64_at(b, 32),
            memsz: u64_at(b, 40),
        }
    }

    /// Can this segment be loaded into a user address space? Page-aligned,
    /// memsz >= filesz, no overflow, below the trapframe.
    pub fn is_loadable(&self) -> bool {
        self.memsz >= self.filesz
            && self.vaddr.is_multiple_of(PGSIZE)
            && self
                .vaddr
                .checked_add(self.memsz)
                .is_some_and(|end| end <= TRAPFRAME)
    }
}

/// PTE permissions for ELF segment flags (PF_X = 1, PF_W = 2).
pub fn flags2perm(flags: u32) -> PteFlags {
    let mut perm = PteFlags::NONE;
    if flags & 0x1 != 0 {
        perm = PteFlags::X;
    }
    if flags & 0x2 != 0 {
        perm |= PteFlags::W;
    }
    perm
}

/// Read `n` bytes at `off` of the locked inode `ip` into kernel buffer
/// `dst`; false on a short read.
fn read_exact(ip: *mut Inode, dst: &mut [u8], off: u64) -> bool {
    let Ok(off) = u32::try_from(off) else {
        return false;
    };
    let n = dst.len() as u32;
    // SAFETY: a kernel destination: dst, n bytes, ours.
    unsafe { readi(ip, false, dst.as_mut_ptr() as u64, off, n) == n as i32 }
}

/// Load a program segment into pagetable at virtual address `va`. `va` must
/// be page-aligned and the pages from va to va+sz must already be mapped.
/// Returns false if the file is short.
fn loadseg(pagetable: PagetableRef<'_>, va: u64, ip: *mut Inode, offset: u64, sz: u64) -> bool {
    let mut i = 0;
    while i < sz {
        let pa = match walkaddr(pagetable, VirtAddr(va + i)) {
            Some(pa) => pa,
            None => panic!("loadseg: address should exist"),
        };
        let n = (sz - i).min(PGSIZE);
        let Ok(off) = u32::try_from(offset + i) else {
            return false;
        };
        // SAFETY: a kernel destination: pa is a whole page of ours, just
        // mapped by uvmalloc, and n <= PGSIZE.
        if unsafe { readi(ip, false, pa.0, off, n as u32) } != n as i32 {
            return false;
        }
        i += PGSIZE;
    }
    true
}

/// exec's argument strings: each in a kalloc'd page of its own (kept
/// compact, since exec runs on a one-page kernel stack).
pub struct Argv {
    /// Physical address of argument i's page.
    page: [u64; MAXARG],
    /// Length of argument i, without the NUL.
    len: [u16; MAXARG],
    /// How many arguments.
    argc: usize,
}

impl Argv {
    /// Argument `i` (< argc), without its NUL.
    pub fn get(&self, i: usize) -> &[u8] {
        // SAFETY: page[i] holds len[i] bytes fetched by sys_exec, alive
        // until Argv::free.
        unsafe {
            core::slice::from_raw_parts(self.page[i] as usize as *const u8, self.len[i] as usize)
        }
    }

    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Give the pages back.
    fn free(&mut self) {
        for i in 0..MAXARG {
            if self.page[i] != 0 {
                kfree(PhysAddr(self.page[i]));
                self.page[i] = 0;
            }
        }
        self.argc = 0;
    }
}

/// Build the user image for `path` with arguments `argv` and switch the
/// current process to it. Returns argc, or -1 with the old image untouched.
#[cfg_attr(not(test), no_mangle)]
pub fn exec(path: &[u8], argv: &Argv) -> i64 {
    let p = myproc();

    begin_op();
    let ip = namei(path);
    if ip.is_null() {
        end_op();
        return -1;
    }
    // SAFETY: `ip` holds a reference taken above and not yet put.
    unsafe { ilock(ip) };

    let mut sz: u64 = 0;
    // Everything up to here that needs undoing on failure: ip (locked, in
    // a log op) and the new page table of `sz` bytes.
    let fail = |pagetable: Option<Pagetable>, sz: u64, ip: *mut Inode| -> i64 {
        if let Some(pagetable) = pagetable {
            proc_freepagetable(pagetable, sz);
        }
        if !ip.is_null() {
            // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
            unsafe { iunlockput(ip) };
            end_op();
        }
        -1
    };

    // Check ELF header
    let mut eb = [0u8; ELF_HDR_SIZE];
    if !read_exact(ip, &mut eb, 0) {
        return fail(None, sz, ip);
    }
    let elf = ElfHdr::parse(&eb);
    if elf.magic != ELF_MAGIC {
        return fail(None, sz, ip);
    }

    // SAFETY: p is the current process; its trapframe is allocated.
    let pagetable = match unsafe { proc_pagetable(p) } {
        Some(pt) => pt,
        None => return fail(None, sz, ip),
    };

    // Load program into memory.
    let mut off = elf.phoff;
    for _ in 0..elf.phnum {
        let mut pb = [0u8; PROG_HDR_SIZE];
        if !read_exact(ip, &mut pb, off) {
            return fail(Some(pagetable), sz, ip);
        }
        off += PROG_HDR_SIZE as u64;
        let ph = ProgHdr::parse(&pb);
        if ph.typ != ELF_PROG_LOAD {
            continue;
        }
        if !ph.is_loadable() {
            return fail(Some(pagetable), sz, ip);
        }
        match uvmalloc(pagetable.view(), sz, ph.vaddr + ph.memsz, flags2perm(ph.flags)) {
            Ok(sz1) => sz = sz1,
            Err(_) => return fail(Some(pagetable), sz, ip),
        }
        if !loadseg(pagetable.view(), ph.vaddr, ip, ph.off, ph.filesz) {
            return fail(Some(pagetable), sz, ip);
        }
    }
    // SAFETY: `ip` holds a reference taken above and not yet put, and we hold its lock.
    unsafe { iunlockput(ip) };
    end_op();
    let ip: *mut Inode = core::ptr::null_mut();

    // SAFETY: sz is private to the current process.
    let oldsz = unsafe { (*p).sz };

    // Allocate some pages at the next page boundary. Make the first
    // inaccessible as a stack guard. Use the rest as the user stack.
    sz = pg_round_up(sz);
    if sz + (USERSTACK as u64 + 1) * PGSIZE > TRAPFRAME {
        return fail(Some(pagetable), sz, ip);
    }
    match uvmalloc(
        pagetable.view(),
        sz,
        sz + (USERSTACK as u64 + 1) * PGSIZE,
        PteFlags::W,
    ) {
        Ok(sz1) => sz = sz1,
        Err(_) => return fail(Some(pagetable), sz, ip),
    }
    uvmclear(pagetable.view(), VirtAddr(sz - (USERSTACK as u64 + 1) * PGSIZE));
    let mut sp = sz;
    let stackbase = sp - USERSTACK as u64 * PGSIZE;

    // Push argument strings, prepare rest of stack in ustack.
    let mut ustack = [0u64; MAXARG + 1];
    for (i, slot) in ustack.iter_mut().enumerate().take(argv.argc()) {
        let arg = argv.get(i);
        let len = arg.len() as u64 + 1;
        if len > sp - stackbase {
            return fail(Some(pagetable), sz, ip);
        }
        sp -= len;
        sp -= sp % 16; // riscv sp must be 16-byte aligned
        if sp < stackbase
            || copyout(pagetable.view(), sp, arg).is_err()
            || copyout(pagetable.view(), sp + arg.len() as u64, &[0]).is_err()
        {
            return fail(Some(pagetable), sz, ip);
        }
        *slot = sp;
    }
    let argc = argv.argc();
    ustack[argc] = 0;

    // push the array of argv[] pointers.
    let bytes = (argc as u64 + 1) * 8;
    if bytes > sp - stackbase {
        return fail(Some(pagetable), sz, ip);
    }
    sp -= bytes;
    sp -= sp % 16;
    if sp < stackbase {
        return fail(Some(pagetable), sz, ip);
    }
    for (i, a) in ustack[..=argc].iter().enumerate() {
        if copyout(pagetable.view(), sp + 8 * i as u64, &a.to_le_bytes()).is_err() {
            return fail(Some(pagetable), sz, ip);
        }
    }

    // SAFETY: the current process's private fields; from here on exec
    // cannot fail.
    unsafe {
        let tf = &mut *(*p).trapframe;
        // arguments to user main(argc, argv): argc is returned via the
        // system call return value, which goes in a0.
        tf.a1 = sp;

        // Save program name for debugging.
        let last = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
        set_name(&mut (*p).name, last);

        // As in the pgtbl lab: show the first process's page table once,
        // an oracle for page-table inspectors.
        if (*p).pid == 1 {
            crate::vm::vmprint(pagetable.view());
        }

        // Commit to the user image.
        let oldpagetable = core::mem::replace(&mut (*p).pagetable, pagetable.into_raw());
        (*p).sz = sz;
        tf.epc = elf.entry; // initial program counter = main
        tf.sp = sp; // initial stack pointer
                    // The field no longer names the old table, so this handle is the
                    // only one: proc_pagetable made it (allocproc or an earlier exec).
        if let Some(old) = Pagetable::from_raw(oldpagetable) {
            proc_freepagetable(old, oldsz);
        }
    }
    argc as i64
}

/// exec(path, argv): fetch the path and the argument strings (one kalloc'd
/// page each) from user space, then exec.
pub fn sys_exec() -> u64 {
    let mut path = [0u8; MAXPATH];
    let uargv = argaddr(1);
    let Some(plen) = argstr(0, &mut path) else {
        return u64::MAX;
    };

    let mut argv = Argv {
        page: [0; MAXARG],
        len: [0; MAXARG],
        argc: 0,
    };
    let mut ok = false;
    while argv.argc < MAXARG {
        let i = argv.argc;
        let Some(uarg) = fetchaddr(uargv + 8 * i as u64) else {
            break;
        };
        if uarg == 0 {
            ok = true;
            break;
        }
        let Some(page) = kalloc() else {
            break;
        };
        argv.page[i] = page.0;
        // SAFETY: a fresh page, ours until argv.free().
        let buf =
            unsafe { core::slice::from_raw_parts_mut(page.as_mut_ptr::<u8>(), PGSIZE as usize) };
        match fetchstr(uarg, buf) {
            Some(n) => argv.len[i] = n as u16,
            None => break,
        }
        argv.argc += 1;
    }

    let ret = if ok { exec(&path[..plen], &argv) } else { -1 };
    argv.free();
    ret as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_elf64_header() {
        let mut b = [0u8; ELF_HDR_SIZE];
        b[..4].copy_from_slice(b"\x7fELF");
        b[24..32].copy_from_slice(&0x1234u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&3u16.to_le_bytes());
        let h = ElfHdr::parse(&b);
        assert_eq!(h.magic, ELF_MAGIC);
        assert_eq!(
            (h.entry, h.phoff, h.phentsize, h.phnum),
            (0x1234, 64, 56, 3)
        );
    }

    #[test]
    fn program_header_checks() {
        let mut b = [0u8; PROG_HDR_SIZE];
        b[0..4].copy_from_slice(&ELF_PROG_LOAD.to_le_bytes());
        b[4..8].copy_from_slice(&5u32.to_le_bytes());
        b[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        b[16..24].copy_from_slice(&0x0u64.to_le_bytes());
        b[32..40].copy_from_slice(&0x800u64.to_le_bytes());
        b[40..48].copy_from_slice(&0x900u64.to_le_bytes());
        let ph = ProgHdr::parse(&b);
        assert_eq!(
            (ph.typ, ph.flags, ph.off, ph.filesz, ph.memsz),
            (1, 5, 0x1000, 0x800, 0x900)
        );
        assert!(ph.is_loadable());
        assert!(!ProgHdr { vaddr: 0x10, ..ph }.is_loadable(), "unaligned");
        assert!(
            !ProgHdr { memsz: 0x10, ..ph }.is_loadable(),
            "memsz < filesz"
        );
        assert!(
            !ProgHdr {
                vaddr: !0xfff,
                ..ph
            }
            .is_loadable(),
            "overflow"
        );
        assert!(
            !ProgHdr {
                vaddr: TRAPFRAME,
                ..ph
            }
            .is_loadable(),
            "into the trapframe"
        );
        assert_eq!(flags2perm(5), PteFlags::X);
        assert_eq!(flags2perm(6), PteFlags::W);
        assert_eq!(flags2perm(4), PteFlags::NONE);
    }
}
