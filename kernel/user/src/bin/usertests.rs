//! usertests: what a kernel must survive, in the spirit of xv6-riscv's
//! `user/usertests.c` (the same ground, written fresh).
//!
//! `usertests` runs every test; `usertests -q` skips the slow ones;
//! `usertests NAME` runs one. Each test runs in its own child process, so
//! a test that the kernel kills, or that exits non-zero, fails alone. Before
//! and after, the free pages are counted (sbrk until it fails) and any
//! difference fails the run as a leak. The last line is `ALL TESTS PASSED`
//! or `SOME TESTS FAILED`.

#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use user::alloc::format;
use user::alloc::string::String;
use user::alloc::vec;
use user::alloc::vec::Vec;
use user::syscall::raw;
use user::*;

entry!(main);

const PGSIZE: usize = 4096;
const BSIZE: usize = 1024;
const MAXFILE: usize = 12 + BSIZE / 4;
const NINODE: usize = 50;
const KERNBASE: usize = 0x8000_0000;
const MAXVA: usize = 1 << 38;
const TRAMPOLINE: usize = MAXVA - PGSIZE;
const ERR: usize = usize::MAX;

/// Fail the current test: print why and exit(1).
macro_rules! fail {
    ($s:expr, $($arg:tt)*) => {{
        println!("{}: {}", $s, format_args!($($arg)*));
        exit(1)
    }};
}

type Test = fn(&str);

struct Entry {
    name: &'static str,
    f: Test,
}

macro_rules! tests {
    ($($name:ident),* $(,)?) => { &[$(Entry { name: stringify!($name), f: $name }),*] };
}

const QUICK: &[Entry] = tests![
    copyin,
    copyout,
    copyinstr1,
    copyinstr2,
    copyinstr3,
    badptrs,
    rwsbrk,
    truncate1,
    truncate2,
    truncate3,
    openiput,
    exitiput,
    iput,
    opentest,
    writetest,
    writebig,
    createtest,
    dirtest,
    exectest,
    fdtest,
    fstattest,
    pipe1,
    pipebig,
    killstatus,
    preempt,
    exitwait,
    reparent,
    twochildren,
    forkfork,
    forkforkfork,
    reparent2,
    mem,
    sharedfd,
    fourfiles,
    createdelete,
    unlinkread,
    linktest,
    concreate,
    linkunlink,
    subdir,
    bigwrite,
    bigfile,
    fourteen,
    rmdot,
    dirfile,
    iref,
    forktest,
    sbrkbasic,
    sbrkmuch,
    kernmem,
    maxvaplus,
    sbrkfail,
    sbrkarg,
    validatetest,
    bsstest,
    bigargtest,
    argptest,
    stacktest,
    textwrite,
    pgbug,
    sbrkbugs,
    sbrklast,
    badarg,
];

const SLOW: &[Entry] = tests![bigdir, manywrites, badwrite, execout, diskfull, outofinodes];

// ---- the runner ----------------------------------------------------------

/// Run `t` in a child; true if it exited 0.
fn run(t: &Entry) -> bool {
    print!("test {}: ", t.name);
    let pid = fork();
    if pid < 0 {
        println!("runtest: fork error");
        exit(1);
    }
    if pid == 0 {
        (t.f)(t.name);
        exit(0);
    }
    let mut xstatus = 0;
    wait(Some(&mut xstatus));
    if xstatus != 0 {
        println!("FAILED");
    } else {
        println!("OK");
    }
    xstatus == 0
}

/// Free physical pages, counted by growing this process a page at a time
/// until sbrk fails (touching each page so it is really there), then
/// shrinking back.
fn countfree() -> usize {
    let sz0 = sbrk(0);
    let mut n = 0;
    loop {
        let a = sbrk(PGSIZE as isize);
        if a == ERR {
            break;
        }
        // SAFETY: sbrk just mapped this page for us.
        unsafe { write_volatile((a + PGSIZE - 1) as *mut u8, 1) };
        n += 1;
    }
    let now = sbrk(0);
    sbrk(-((now - sz0) as isize));
    n
}

fn main(args: Args) -> i32 {
    let mut quick = false;
    let mut justone: Option<&str> = None;
    for a in args.iter().skip(1) {
        match a {
            "-q" => quick = true,
            s if !s.starts_with('-') => justone = Some(s),
            _ => {
                println!("Usage: usertests [-q] [testname]");
                exit(1);
            }
        }
    }
    println!("usertests starting");
    // Allocate before the first count: the heap grows 64 KiB at a time and
    // never shrinks, which would look like a leak.
    let mut failed: Vec<&str> = Vec::with_capacity(QUICK.len() + SLOW.len() + 1);
    let free0 = countfree();
    let lists: &[&[Entry]] = if quick { &[QUICK] } else { &[QUICK, SLOW] };
    let mut ran = 0;
    for list in lists {
        for t in list.iter() {
            if justone.is_some_and(|j| j != t.name) {
                continue;
            }
            ran += 1;
            if !run(t) {
                failed.push(t.name);
            }
        }
    }
    if let Some(j) = justone {
        if ran == 0 {
            println!("usertests: no test named {}", j);
            exit(1);
        }
    }
    let free1 = countfree();
    if free1 < free0 {
        println!(
            "FAILED -- lost some free pages {} (out of {})",
            free1, free0
        );
        failed.push("free pages");
    } else {
        println!("free pages: {} before, {} after", free0, free1);
    }
    if failed.is_empty() {
        println!("ALL TESTS PASSED");
        0
    } else {
        print!("failed:");
        for f in &failed {
            print!(" {}", f);
        }
        println!();
        println!("SOME TESTS FAILED");
        1
    }
}

// ---- helpers -------------------------------------------------------------

/// A raw system call with integer arguments (for bad pointers).
fn sys(n: usize, args: &[usize]) -> isize {
    // SAFETY: the kernel must check every pointer; these tests pass bad
    // ones on purpose, and never a good pointer to memory they care about.
    unsafe { raw::call(n, args) }
}

/// A NUL-terminated copy of `s` (lives as long as the Vec).
fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

/// Create `name` holding `data`.
fn mkfile(s: &str, name: &str, data: &[u8]) {
    let fd = open(name, O_CREATE | O_WRONLY | O_TRUNC);
    if fd < 0 {
        fail!(s, "create {} failed", name);
    }
    if write(fd, data) != data.len() as i32 {
        fail!(s, "write {} failed", name);
    }
    close(fd);
}

/// Wait for one child; its exit status.
fn wait_status() -> i32 {
    let mut st = 0;
    if wait(Some(&mut st)) < 0 {
        return i32::MIN;
    }
    st
}

/// Run `f` in a child and expect the kernel to kill it (status -1).
fn expect_killed(s: &str, what: &str, f: impl FnOnce()) {
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        f();
        exit(0);
    }
    let st = wait_status();
    if st != -1 {
        fail!(
            s,
            "{}: exit status {}, expected the kernel to kill it",
            what,
            st
        );
    }
}

/// Load a byte from `addr` with one `lb`: for addresses the kernel must
/// fault on (a Rust read of them would be undefined behaviour).
fn peek(addr: usize) -> u8 {
    let v: usize;
    // SAFETY: a single load; if it faults, the kernel kills this process.
    unsafe { core::arch::asm!("lbu {v}, 0({a})", a = in(reg) addr, v = out(reg) v) };
    v as u8
}

/// Store a byte at `addr` with one `sb` (see [`peek`]).
fn poke(addr: usize, val: u8) {
    // SAFETY: a single store; if it faults, the kernel kills this process.
    unsafe { core::arch::asm!("sb {v}, 0({a})", a = in(reg) addr, v = in(reg) val as usize) };
}

fn read_sp() -> usize {
    let sp: usize;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
    sp
}

// ---- bad pointers --------------------------------------------------------

const BAD_ADDRS: [usize; 5] = [
    KERNBASE,
    0x8000_0000 + 0x20_0000,
    TRAMPOLINE,
    MAXVA,
    usize::MAX,
];

/// write() from kernel or invalid addresses must fail.
fn copyin(s: &str) {
    for &addr in &BAD_ADDRS {
        let fd = open("copyin1", O_CREATE | O_WRONLY);
        if fd < 0 {
            fail!(s, "open(copyin1) failed");
        }
        let n = sys(SYS_WRITE, &[fd as usize, addr, 8192]);
        if n >= 0 {
            fail!(s, "write(fd, {:#x}, 8192) returned {}, not -1", addr, n);
        }
        close(fd);
        unlink("copyin1");
        let n = sys(SYS_WRITE, &[1, addr, 8192]);
        if n > 0 {
            fail!(s, "write(1, {:#x}, 8192) returned {}, not -1 or 0", addr, n);
        }
        let mut fds = [0i32; 2];
        if pipe(&mut fds) < 0 {
            fail!(s, "pipe() failed");
        }
        let n = sys(SYS_WRITE, &[fds[1] as usize, addr, 8192]);
        if n > 0 {
            fail!(
                s,
                "write(pipe, {:#x}, 8192) returned {}, not -1 or 0",
                addr,
                n
            );
        }
        close(fds[0]);
        close(fds[1]);
    }
}

/// read() into kernel or invalid addresses must fail.
fn copyout(s: &str) {
    mkfile(s, "copyout1", &[b'x'; 8192]);
    for &addr in &BAD_ADDRS {
        let fd = open("copyout1", O_RDONLY);
        if fd < 0 {
            fail!(s, "open(copyout1) failed");
        }
        let n = sys(SYS_READ, &[fd as usize, addr, 8192]);
        if n > 0 {
            fail!(s, "read(fd, {:#x}, 8192) returned {}, not -1 or 0", addr, n);
        }
        close(fd);
        let mut fds = [0i32; 2];
        if pipe(&mut fds) < 0 {
            fail!(s, "pipe() failed");
        }
        if write(fds[1], b"x") != 1 {
            fail!(s, "pipe write failed");
        }
        let n = sys(SYS_READ, &[fds[0] as usize, addr, 8192]);
        if n > 0 {
            fail!(
                s,
                "read(pipe, {:#x}, 8192) returned {}, not -1 or 0",
                addr,
                n
            );
        }
        close(fds[0]);
        close(fds[1]);
    }
    unlink("copyout1");
}

/// open() with a path at a kernel or invalid address must fail.
fn copyinstr1(s: &str) {
    for &addr in &BAD_ADDRS {
        let fd = sys(SYS_OPEN, &[addr, (O_CREATE | O_WRONLY) as usize]);
        if fd >= 0 {
            fail!(s, "open({:#x}) returned {}, not -1", addr, fd);
        }
    }
}

/// Strings as long as MAXPATH (no room for the NUL) must be refused, and
/// exec's arguments longer than a page too.
fn copyinstr2(s: &str) {
    let long: String = core::iter::repeat_n('x', MAXPATH).collect();
    if unlink(&long) != -1 {
        fail!(s, "unlink(MAXPATH x's) did not fail");
    }
    if open(&long, O_CREATE | O_WRONLY) != -1 {
        fail!(s, "open(MAXPATH x's) did not fail");
    }
    if link(&long, &long) != -1 {
        fail!(s, "link(MAXPATH x's) did not fail");
    }
    if exec(&long, &["xx"]) != -1 {
        fail!(s, "exec(MAXPATH x's) did not fail");
    }
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        let big: String = core::iter::repeat_n('x', PGSIZE).collect();
        exec("echo", &[&big, &big, &big]);
        exit(747); // exec must fail and return
    }
    let st = wait_status();
    if st != 747 {
        fail!(
            s,
            "exec(echo, page-long args) did not return -1 (status {})",
            st
        );
    }
}

/// A path that runs off the end of the process's memory must be refused.
fn copyinstr3(s: &str) {
    sbrk(8192);
    let top = sbrk(0);
    if !top.is_multiple_of(PGSIZE) {
        sbrk((PGSIZE - top % PGSIZE) as isize);
    }
    let top = sbrk(0);
    if !top.is_multiple_of(PGSIZE) {
        fail!(s, "oops, break {:#x} not page-aligned", top);
    }
    let b = top - 1;
    // SAFETY: the last byte of our memory.
    unsafe { write_volatile(b as *mut u8, b'x') };
    if sys(SYS_UNLINK, &[b]) != -1 {
        fail!(s, "unlink(unterminated) did not fail");
    }
    if sys(SYS_OPEN, &[b, (O_CREATE | O_WRONLY) as usize]) != -1 {
        fail!(s, "open(unterminated) did not fail");
    }
    if sys(SYS_LINK, &[b, b]) != -1 {
        fail!(s, "link(unterminated) did not fail");
    }
    let args = [c"xx".as_ptr().cast::<u8>(), core::ptr::null()];
    if sys(SYS_EXEC, &[b, args.as_ptr() as usize]) != -1 {
        fail!(s, "exec(unterminated) did not fail");
    }
}

/// Every system call that takes a pointer refuses a bad one, with -1,
/// and without leaking what it allocated on the way.
fn badptrs(s: &str) {
    let path = cstr("badptrs");
    mkfile(s, "badptrs", b"hello");
    for &addr in &BAD_ADDRS {
        let checks: [(&str, usize, Vec<usize>); 11] = [
            ("exec(path)", SYS_EXEC, vec![addr, 0]),
            (
                "exec(argv)",
                SYS_EXEC,
                vec![c"echo".as_ptr() as usize, addr],
            ),
            ("fstat", SYS_FSTAT, vec![0, addr]),
            ("chdir", SYS_CHDIR, vec![addr]),
            ("open", SYS_OPEN, vec![addr, O_RDONLY as usize]),
            ("mknod", SYS_MKNOD, vec![addr, 1, 0]),
            ("unlink", SYS_UNLINK, vec![addr]),
            ("link(old)", SYS_LINK, vec![addr, path.as_ptr() as usize]),
            ("link(new)", SYS_LINK, vec![path.as_ptr() as usize, addr]),
            ("mkdir", SYS_MKDIR, vec![addr]),
            ("pipe", SYS_PIPE, vec![addr]),
        ];
        for (what, n, args) in checks.iter() {
            let r = sys(*n, args);
            if r != -1 {
                fail!(s, "{}({:#x}) returned {}, not -1", what, addr, r);
            }
        }
        // A failed pipe() must not leave descriptors behind.
        let fd = open("badptrs", O_RDONLY);
        if fd != 3 {
            fail!(
                s,
                "after pipe({:#x}) the lowest free fd is {}, not 3",
                addr,
                fd
            );
        }
        close(fd);
        // wait() with a bad status pointer fails, and the child is still
        // there for a good wait.
        let pid = fork();
        if pid == 0 {
            exit(3);
        }
        if sys(SYS_WAIT, &[addr]) != -1 {
            fail!(s, "wait({:#x}) did not fail", addr);
        }
        let mut st = 0;
        if wait(Some(&mut st)) != pid || st != 3 {
            fail!(s, "child lost after wait({:#x}) failed", addr);
        }
    }
    unlink("badptrs");
}

/// read/write into memory that sbrk gave back must fail.
fn rwsbrk(s: &str) {
    let a = sbrk(8192);
    if a == ERR {
        fail!(s, "sbrk(rwsbrk) failed");
    }
    if sbrk(-8192) == ERR {
        fail!(s, "sbrk(rwsbrk) shrink failed");
    }
    let fd = open("rwsbrk", O_CREATE | O_WRONLY);
    if fd < 0 {
        fail!(s, "open(rwsbrk) failed");
    }
    let n = sys(SYS_WRITE, &[fd as usize, a + PGSIZE, 1024]);
    if n >= 0 {
        fail!(
            s,
            "write(fd, {:#x}, 1024) returned {}, not -1",
            a + PGSIZE,
            n
        );
    }
    close(fd);
    unlink("rwsbrk");
    mkfile(s, "rwsbrk", &[b'r'; 100]);
    let fd = open("rwsbrk", O_RDONLY);
    let n = sys(SYS_READ, &[fd as usize, a + PGSIZE, 10]);
    if n >= 0 {
        fail!(s, "read(fd, {:#x}, 10) returned {}, not -1", a + PGSIZE, n);
    }
    close(fd);
    unlink("rwsbrk");
}

// ---- files ---------------------------------------------------------------

/// O_TRUNC truncates, and other descriptors see it.
fn truncate1(s: &str) {
    let mut buf = [0u8; 32];
    unlink("truncfile");
    mkfile(s, "truncfile", b"1234");
    let fd2 = open("truncfile", O_RDONLY);
    let n = read(fd2, &mut buf);
    if n != 4 {
        fail!(s, "read {} bytes, wanted 4", n);
    }
    let fd1 = open("truncfile", O_WRONLY | O_TRUNC);
    let fd3 = open("truncfile", O_RDONLY);
    let n = read(fd3, &mut buf);
    if n != 0 {
        fail!(s, "read {} bytes after truncate, wanted 0", n);
    }
    let n = read(fd2, &mut buf);
    if n != 0 {
        fail!(s, "fd2 read {} bytes after truncate, wanted 0", n);
    }
    write(fd1, b"abcdef");
    let n = read(fd3, &mut buf);
    if n != 6 {
        fail!(s, "read {} bytes, wanted 6", n);
    }
    let n = read(fd2, &mut buf);
    if n != 2 {
        fail!(s, "read {} bytes, wanted 2", n);
    }
    unlink("truncfile");
    close(fd1);
    close(fd2);
    close(fd3);
}

/// A write at an offset past the end of a file that another open truncated
/// must fail (writei refuses off > size), not leave a hole.
fn truncate2(s: &str) {
    unlink("truncfile");
    let fd1 = open("truncfile", O_CREATE | O_TRUNC | O_WRONLY);
    write(fd1, b"abcd");
    let fd2 = open("truncfile", O_TRUNC | O_WRONLY);
    let n = write(fd1, b"x");
    if n != -1 {
        fail!(s, "write returned {}, expected -1", n);
    }
    unlink("truncfile");
    close(fd1);
    close(fd2);
}

/// Truncation racing with reads and writes from another process.
fn truncate3(s: &str) {
    mkfile(s, "truncfile", b"");
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        for _ in 0..100 {
            let mut buf = [0u8; 32];
            let fd = open("truncfile", O_WRONLY);
            if fd < 0 {
                fail!(s, "open failed");
            }
            if write(fd, b"1234567890") != 10 {
                fail!(s, "write failed");
            }
            close(fd);
            let fd = open("truncfile", O_RDONLY);
            read(fd, &mut buf);
            close(fd);
        }
        exit(0);
    }
    for _ in 0..150 {
        let fd = open("truncfile", O_CREATE | O_WRONLY | O_TRUNC);
        if fd < 0 {
            fail!(s, "open failed");
        }
        if write(fd, b"xxx") != 3 {
            fail!(s, "write got wrong count");
        }
        close(fd);
    }
    if wait_status() != 0 {
        fail!(s, "child failed");
    }
    unlink("truncfile");
}

/// Unlink a directory while a process's cwd, then exit (iput on exit).
fn iput(s: &str) {
    if mkdir("iputdir") < 0 {
        fail!(s, "mkdir failed");
    }
    if chdir("iputdir") < 0 {
        fail!(s, "chdir iputdir failed");
    }
    if unlink("../iputdir") < 0 {
        fail!(s, "unlink ../iputdir failed");
    }
    if chdir("/") < 0 {
        fail!(s, "chdir / failed");
    }
}

fn exitiput(s: &str) {
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        if mkdir("iputdir") < 0 {
            fail!(s, "mkdir failed");
        }
        if chdir("iputdir") < 0 {
            fail!(s, "child chdir failed");
        }
        if unlink("../iputdir") < 0 {
            fail!(s, "unlink ../iputdir failed");
        }
        exit(0);
    }
    if wait_status() != 0 {
        fail!(s, "child failed");
    }
}

/// open() of a directory for writing fails, racing with its unlink.
fn openiput(s: &str) {
    if mkdir("oidir") < 0 {
        fail!(s, "mkdir oidir failed");
    }
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        let fd = open("oidir", O_RDWR);
        if fd >= 0 {
            fail!(s, "open directory for write succeeded");
        }
        exit(0);
    }
    sleep(1);
    if unlink("oidir") != 0 {
        fail!(s, "unlink failed");
    }
    if wait_status() != 0 {
        fail!(s, "child failed");
    }
}

fn opentest(s: &str) {
    let fd = open("echo", O_RDONLY);
    if fd < 0 {
        fail!(s, "open echo failed!");
    }
    close(fd);
    if open("doesnotexist", O_RDONLY) >= 0 {
        fail!(s, "open doesnotexist succeeded!");
    }
}

fn writetest(s: &str) {
    const N: usize = 100;
    let fd = open("small", O_CREATE | O_RDWR);
    if fd < 0 {
        fail!(s, "error: creat small failed!");
    }
    for i in 0..N {
        if write(fd, b"aaaaaaaaaa") != 10 {
            fail!(s, "error: write aa {} new file failed", i);
        }
        if write(fd, b"bbbbbbbbbb") != 10 {
            fail!(s, "error: write bb {} new file failed", i);
        }
    }
    close(fd);
    let fd = open("small", O_RDONLY);
    if fd < 0 {
        fail!(s, "error: open small failed!");
    }
    let mut buf = vec![0u8; N * 20];
    let n = read(fd, &mut buf);
    if n != (N * 20) as i32 {
        fail!(s, "read failed: {}", n);
    }
    for i in 0..N {
        if &buf[i * 20..i * 20 + 10] != b"aaaaaaaaaa"
            || &buf[i * 20 + 10..i * 20 + 20] != b"bbbbbbbbbb"
        {
            fail!(s, "wrong data at record {}", i);
        }
    }
    close(fd);
    if unlink("small") < 0 {
        fail!(s, "unlink small failed");
    }
}

/// The largest file xv6 allows (direct + indirect blocks), each block
/// stamped with its number.
fn writebig(s: &str) {
    let fd = open("big", O_CREATE | O_RDWR);
    if fd < 0 {
        fail!(s, "error: creat big failed!");
    }
    let mut buf = vec![0u8; BSIZE];
    for i in 0..MAXFILE {
        buf[..4].copy_from_slice(&(i as u32).to_le_bytes());
        if write(fd, &buf) != BSIZE as i32 {
            fail!(s, "error: write big file failed at block {}", i);
        }
    }
    // One block more than the largest file must not be written.
    if write(fd, &buf) > 0 {
        fail!(s, "wrote past MAXFILE");
    }
    close(fd);
    let fd = open("big", O_RDONLY);
    if fd < 0 {
        fail!(s, "error: open big failed!");
    }
    let mut n = 0;
    loop {
        let i = read(fd, &mut buf);
        if i == 0 {
            if n != MAXFILE {
                fail!(s, "read only {} blocks from big", n);
            }
            break;
        }
        if i != BSIZE as i32 {
            fail!(s, "read failed {}", i);
        }
        let got = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if got != n as u32 {
            fail!(s, "read content of block {} is {}", n, got);
        }
        n += 1;
    }
    close(fd);
    if unlink("big") < 0 {
        fail!(s, "unlink big failed");
    }
}

/// Many files in one directory.
fn createtest(s: &str) {
    const N: u8 = 52;
    for i in 0..N {
        let name = format!("a{}", (b'0' + i) as char);
        let fd = open(&name, O_CREATE | O_RDWR);
        if fd < 0 {
            fail!(s, "create {} failed", name);
        }
        close(fd);
    }
    for i in 0..N {
        let name = format!("a{}", (b'0' + i) as char);
        if unlink(&name) < 0 {
            fail!(s, "unlink {} failed", name);
        }
    }
}

fn dirtest(s: &str) {
    if mkdir("dir0") < 0 {
        fail!(s, "mkdir failed");
    }
    if chdir("dir0") < 0 {
        fail!(s, "chdir dir0 failed");
    }
    if chdir("..") < 0 {
        fail!(s, "chdir .. failed");
    }
    if unlink("dir0") < 0 {
        fail!(s, "unlink dir0 failed");
    }
}

/// exec keeps open descriptors: echo's output lands in our file.
fn exectest(s: &str) {
    unlink("echo-ok");
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        close(1);
        let fd = open("echo-ok", O_CREATE | O_WRONLY);
        if fd < 0 {
            fail!(s, "create failed");
        }
        if fd != 1 {
            fail!(s, "wrong fd {}", fd);
        }
        exec("echo", &["echo", "OK"]);
        fail!(s, "exec echo failed");
    }
    let st = wait_status();
    if st != 0 {
        exit(st);
    }
    let fd = open("echo-ok", O_RDONLY);
    if fd < 0 {
        fail!(s, "open failed");
    }
    let mut buf = [0u8; 3];
    if read(fd, &mut buf[..2]) != 2 {
        fail!(s, "read failed");
    }
    unlink("echo-ok");
    if &buf[..2] != b"OK" {
        fail!(s, "wrong output");
    }
    close(fd);
}

/// File descriptors: the lowest free one is used, NOFILE (16) is the
/// limit, dup shares the offset, close frees, bad descriptors fail.
fn fdtest(s: &str) {
    mkfile(s, "fdtest", b"0123456789");
    let mut fds = Vec::new();
    loop {
        let fd = open("fdtest", O_RDONLY);
        if fd < 0 {
            break;
        }
        fds.push(fd);
        if fds.len() > 64 {
            fail!(s, "open never ran out of descriptors");
        }
    }
    // 0, 1 and 2 are the console.
    if fds.len() != 16 - 3 || fds[0] != 3 || fds[fds.len() - 1] != 15 {
        fail!(s, "got descriptors {:?}, expected 3..=15", fds);
    }
    if dup(0) != -1 {
        fail!(s, "dup succeeded with every descriptor in use");
    }
    close(7);
    if open("fdtest", O_RDONLY) != 7 {
        fail!(s, "the lowest free descriptor (7) was not reused");
    }
    for &fd in &fds {
        close(fd);
    }
    let fd = open("fdtest", O_RDONLY);
    let fd2 = dup(fd);
    if fd != 3 || fd2 != 4 {
        fail!(s, "open/dup gave {} and {}, expected 3 and 4", fd, fd2);
    }
    let mut buf = [0u8; 4];
    read(fd, &mut buf);
    if read(fd2, &mut buf) != 4 || &buf != b"4567" {
        fail!(s, "dup does not share the file offset");
    }
    close(fd);
    if read(fd2, &mut buf) != 2 || &buf[..2] != b"89" {
        fail!(s, "closing the original broke the duplicate");
    }
    close(fd2);
    for bad in [-1, 16, 100, 3] {
        if read(bad, &mut buf) != -1 || write(bad, b"x") != -1 || close(bad) != -1 {
            fail!(
                s,
                "descriptor {} is not open, yet a call on it succeeded",
                bad
            );
        }
        let mut st = Stat::default();
        if fstat(bad, &mut st) != -1 || dup(bad) != -1 {
            fail!(s, "fstat or dup of closed descriptor {} succeeded", bad);
        }
    }
    // Read-only and write-only descriptors refuse the other direction.
    let fd = open("fdtest", O_RDONLY);
    if write(fd, b"x") != -1 {
        fail!(s, "write to an O_RDONLY descriptor succeeded");
    }
    close(fd);
    let fd = open("fdtest", O_WRONLY);
    if read(fd, &mut buf) != -1 {
        fail!(s, "read from an O_WRONLY descriptor succeeded");
    }
    close(fd);
    unlink("fdtest");
}

/// fstat reports xv6's type, link count and size, and they change as
/// the file does.
fn fstattest(s: &str) {
    unlink("st1");
    unlink("st2");
    mkfile(s, "st1", &[b'x'; 1500]);
    let mut st = Stat::default();
    let fd = open("st1", O_RDONLY);
    if fstat(fd, &mut st) != 0 || st.typ != T_FILE || st.nlink != 1 || st.size != 1500 {
        fail!(s, "fstat(st1) = {:?}", st);
    }
    let ino = st.ino;
    link("st1", "st2");
    fstat(fd, &mut st);
    if st.nlink != 2 || st.ino != ino {
        fail!(s, "after link: {:?}", st);
    }
    unlink("st1");
    fstat(fd, &mut st);
    if st.nlink != 1 {
        fail!(s, "after unlink: {:?}", st);
    }
    close(fd);
    let fd = open("st2", O_WRONLY | O_TRUNC);
    fstat(fd, &mut st);
    if st.size != 0 || st.ino != ino {
        fail!(s, "after O_TRUNC: {:?}", st);
    }
    close(fd);
    unlink("st2");
    let fd = open(".", O_RDONLY);
    if fstat(fd, &mut st) != 0 || st.typ != T_DIR || st.size % 16 != 0 {
        fail!(s, "fstat(.) = {:?}", st);
    }
    close(fd);
    let fd = open("console", O_RDWR);
    if fstat(fd, &mut st) != 0 || st.typ != T_DEVICE {
        fail!(s, "fstat(console) = {:?}", st);
    }
    close(fd);
}

// ---- pipes and processes -------------------------------------------------

/// Data through a pipe arrives in order, read in growing chunks.
fn pipe1(s: &str) {
    const N: usize = 5;
    const SZ: usize = 1033;
    let mut fds = [0i32; 2];
    if pipe(&mut fds) != 0 {
        fail!(s, "pipe() failed");
    }
    let pid = fork();
    let mut seq: u8 = 0;
    if pid == 0 {
        close(fds[0]);
        let mut buf = [0u8; SZ];
        for _ in 0..N {
            for b in buf.iter_mut() {
                *b = seq;
                seq = seq.wrapping_add(1);
            }
            if write(fds[1], &buf) != SZ as i32 {
                fail!(s, "pipe1 oops 1");
            }
        }
        exit(0);
    } else if pid > 0 {
        close(fds[1]);
        let mut total = 0;
        let mut cc = 1;
        // On the heap: the user stack is one page.
        let mut buf = vec![0u8; 8192];
        loop {
            let n = read(fds[0], &mut buf[..cc]);
            if n <= 0 {
                break;
            }
            for &b in &buf[..n as usize] {
                if b != seq {
                    fail!(s, "pipe1 oops 2");
                }
                seq = seq.wrapping_add(1);
            }
            total += n as usize;
            cc = (cc * 2).min(buf.len());
        }
        if total != N * SZ {
            fail!(s, "pipe1 oops 3 total {}", total);
        }
        close(fds[0]);
        if wait_status() != 0 {
            fail!(s, "writer failed");
        }
    } else {
        fail!(s, "fork() failed");
    }
}

/// Writes much larger than the pipe's buffer block until read, and a
/// writer gets -1 once every reader has gone.
fn pipebig(s: &str) {
    let mut fds = [0i32; 2];
    if pipe(&mut fds) != 0 {
        fail!(s, "pipe() failed");
    }
    let pid = fork();
    if pid == 0 {
        close(fds[0]);
        let buf = vec![0x5au8; 20000];
        if write(fds[1], &buf) != 20000 {
            fail!(s, "big pipe write came up short");
        }
        exit(0);
    }
    close(fds[1]);
    let mut total = 0;
    let mut buf = [0u8; 700];
    loop {
        let n = read(fds[0], &mut buf);
        if n <= 0 {
            break;
        }
        if buf[..n as usize].iter().any(|&b| b != 0x5a) {
            fail!(s, "corrupt pipe data");
        }
        total += n;
    }
    close(fds[0]);
    if total != 20000 || wait_status() != 0 {
        fail!(s, "read {} of 20000 bytes", total);
    }
    // No readers: the writer must see an error, not block forever.
    let mut fds = [0i32; 2];
    pipe(&mut fds);
    close(fds[0]);
    if write(fds[1], b"x") != -1 {
        fail!(s, "write to a pipe without readers did not fail");
    }
    close(fds[1]);
}

/// A killed process exits with status -1.
fn killstatus(s: &str) {
    for _ in 0..100 {
        let pid1 = fork();
        if pid1 < 0 {
            fail!(s, "fork failed");
        }
        if pid1 == 0 {
            loop {
                getpid();
            }
        }
        sleep(1);
        kill(pid1);
        let st = wait_status();
        if st != -1 {
            fail!(s, "status should be -1, is {}", st);
        }
    }
}

/// Spinning processes do not starve others (timer preemption) and can
/// be killed.
fn preempt(s: &str) {
    let pid1 = fork();
    if pid1 < 0 {
        fail!(s, "fork failed");
    }
    if pid1 == 0 {
        loop {
            core::hint::spin_loop();
        }
    }
    let pid2 = fork();
    if pid2 < 0 {
        fail!(s, "fork failed");
    }
    if pid2 == 0 {
        loop {
            core::hint::spin_loop();
        }
    }
    let mut pfds = [0i32; 2];
    pipe(&mut pfds);
    let pid3 = fork();
    if pid3 < 0 {
        fail!(s, "fork failed");
    }
    if pid3 == 0 {
        close(pfds[0]);
        if write(pfds[1], b"x") != 1 {
            println!("{}: preempt write error", s);
        }
        close(pfds[1]);
        loop {
            core::hint::spin_loop();
        }
    }
    close(pfds[1]);
    let mut buf = [0u8; 1];
    if read(pfds[0], &mut buf) != 1 {
        fail!(s, "preempt read error");
    }
    close(pfds[0]);
    kill(pid1);
    kill(pid2);
    kill(pid3);
    for _ in 0..3 {
        if wait_status() != -1 {
            fail!(s, "a killed spinner did not exit with -1");
        }
    }
}

/// wait returns each child's pid and exit status.
fn exitwait(s: &str) {
    for i in 0..100 {
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            exit(i);
        }
        let mut st = 0;
        if wait(Some(&mut st)) != pid {
            fail!(s, "wait wrong pid");
        }
        if st != i {
            fail!(s, "wait wrong exit status {} != {}", st, i);
        }
    }
    // No children left: wait fails at once.
    if wait(None) != -1 {
        fail!(s, "wait with no children did not fail");
    }
}

/// Orphans go to init, and their parents' waits still work.
fn reparent(s: &str) {
    let master = getpid();
    for _ in 0..200 {
        let pid = fork();
        if pid == 0 {
            if fork() < 0 {
                kill(master);
            }
            exit(0);
        } else if pid < 0 {
            fail!(s, "fork failed");
        } else if wait(None) != pid {
            fail!(s, "wait wrong pid");
        }
    }
}

fn twochildren(s: &str) {
    for _ in 0..1000 {
        let pid1 = fork();
        if pid1 < 0 {
            fail!(s, "fork failed");
        }
        if pid1 == 0 {
            exit(0);
        }
        let pid2 = fork();
        if pid2 < 0 {
            fail!(s, "fork failed");
        }
        if pid2 == 0 {
            exit(0);
        }
        wait(None);
        wait(None);
    }
}

/// Concurrent forks from two processes.
fn forkfork(s: &str) {
    const N: usize = 2;
    for _ in 0..N {
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            for _ in 0..200 {
                let pid1 = fork();
                if pid1 < 0 {
                    exit(1);
                }
                if pid1 == 0 {
                    exit(0);
                }
                wait(None);
            }
            exit(0);
        }
    }
    for _ in 0..N {
        if wait_status() != 0 {
            fail!(s, "fork in child failed");
        }
    }
}

/// Fill the process table with forking processes, then stop them.
fn forkforkfork(s: &str) {
    unlink("stopforking");
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        loop {
            let fd = open("stopforking", O_RDONLY);
            if fd >= 0 {
                exit(0);
            }
            if fork() < 0 {
                close(open("stopforking", O_CREATE | O_RDWR));
            }
        }
    }
    sleep(20); // two seconds
    close(open("stopforking", O_CREATE | O_RDWR));
    wait(None);
    sleep(10); // one second: let the others see the file and exit
    unlink("stopforking");
}

/// Grandchildren orphaned in bulk.
fn reparent2(s: &str) {
    for _ in 0..800 {
        let pid1 = fork();
        if pid1 < 0 {
            fail!(s, "fork failed");
        }
        if pid1 == 0 {
            fork();
            fork();
            exit(0);
        }
        wait(None);
    }
}

/// Allocate until malloc fails, free it all, and allocate again.
fn mem(s: &str) {
    let pid = fork();
    if pid == 0 {
        let mut m1: *mut *mut u8 = core::ptr::null_mut();
        while let Some(m2) = umalloc::malloc(10001) {
            let m2 = m2.as_ptr() as *mut *mut u8;
            // SAFETY: a fresh 10001-byte block; its first word links the list.
            unsafe { *m2 = m1 as *mut u8 };
            m1 = m2;
        }
        while !m1.is_null() {
            // SAFETY: walking the list built above.
            let next = unsafe { *m1 } as *mut *mut u8;
            // SAFETY: each block came from malloc.
            unsafe { umalloc::free(core::ptr::NonNull::new_unchecked(m1 as *mut u8)) };
            m1 = next;
        }
        if umalloc::malloc(1024 * 20).is_none() {
            fail!(s, "couldn't allocate mem?!!");
        }
        exit(0);
    }
    let st = wait_status();
    if st == -1 {
        // Probably a page fault: tolerated, as xv6 does.
        exit(0);
    }
    exit(st);
}

/// Two processes writing through one shared descriptor (one offset).
fn sharedfd(s: &str) {
    const N: usize = 1000;
    const SZ: usize = 10;
    unlink("sharedfd");
    let fd = open("sharedfd", O_CREATE | O_RDWR);
    if fd < 0 {
        fail!(s, "cannot open sharedfd for writing");
    }
    let pid = fork();
    let c = if pid == 0 { b'c' } else { b'p' };
    let buf = [c; SZ];
    for _ in 0..N {
        if write(fd, &buf) != SZ as i32 {
            fail!(s, "write sharedfd failed");
        }
    }
    if pid == 0 {
        exit(0);
    }
    if wait_status() != 0 {
        exit(1);
    }
    close(fd);
    let fd = open("sharedfd", O_RDONLY);
    if fd < 0 {
        fail!(s, "cannot open sharedfd for reading");
    }
    let (mut nc, mut np) = (0, 0);
    let mut buf = [0u8; SZ];
    loop {
        let n = read(fd, &mut buf);
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if b == b'c' {
                nc += 1;
            }
            if b == b'p' {
                np += 1;
            }
        }
    }
    close(fd);
    unlink("sharedfd");
    if nc != N * SZ || np != N * SZ {
        fail!(s, "nc/np test fails ({} {})", nc, np);
    }
}

/// Four processes write four files at once.
fn fourfiles(s: &str) {
    const N: usize = 12;
    const SZ: usize = 500;
    let names = ["f0", "f1", "f2", "f3"];
    for (pi, fname) in names.iter().enumerate() {
        unlink(fname);
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            let fd = open(fname, O_CREATE | O_RDWR);
            if fd < 0 {
                fail!(s, "create failed");
            }
            let buf = [b'0' + pi as u8; SZ];
            for _ in 0..N {
                let n = write(fd, &buf);
                if n != SZ as i32 {
                    fail!(s, "write failed {}", n);
                }
            }
            exit(0);
        }
    }
    for _ in 0..names.len() {
        if wait_status() != 0 {
            exit(1);
        }
    }
    let mut buf = [0u8; 1024];
    for (i, fname) in names.iter().enumerate() {
        let fd = open(fname, O_RDONLY);
        let mut total = 0;
        loop {
            let n = read(fd, &mut buf);
            if n <= 0 {
                break;
            }
            if buf[..n as usize].iter().any(|&b| b != b'0' + i as u8) {
                fail!(s, "wrong char in {}", fname);
            }
            total += n as usize;
        }
        close(fd);
        if total != N * SZ {
            fail!(s, "wrong length {}", total);
        }
        unlink(fname);
    }
}

/// Four processes create and delete files with interleaved names.
fn createdelete(s: &str) {
    const N: usize = 20;
    const NCHILD: usize = 4;
    let name = |pi: usize, i: usize| -> String {
        format!("{}{}", (b'p' + pi as u8) as char, (b'0' + i as u8) as char)
    };
    for pi in 0..NCHILD {
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            for i in 0..N {
                let n = name(pi, i);
                let fd = open(&n, O_CREATE | O_RDWR);
                if fd < 0 {
                    fail!(s, "create {} failed", n);
                }
                close(fd);
                if i > 0 && i % 2 == 0 {
                    let n = name(pi, i / 2);
                    if unlink(&n) < 0 {
                        fail!(s, "unlink {} failed", n);
                    }
                }
            }
            exit(0);
        }
    }
    for _ in 0..NCHILD {
        if wait_status() != 0 {
            exit(1);
        }
    }
    for i in 0..N {
        for pi in 0..NCHILD {
            let n = name(pi, i);
            let fd = open(&n, O_RDONLY);
            let should_exist = i == 0 || i >= N / 2;
            if should_exist && fd < 0 {
                fail!(s, "oops createdelete {} didn't exist", n);
            } else if !should_exist && fd >= 0 {
                fail!(s, "oops createdelete {} did exist", n);
            }
            if fd >= 0 {
                close(fd);
            }
        }
    }
    for i in 0..N {
        for pi in 0..NCHILD {
            unlink(&name(pi, i));
        }
    }
}

/// An unlinked file stays readable through an open descriptor.
fn unlinkread(s: &str) {
    const SZ: usize = 5;
    mkfile(s, "unlinkread", b"hello");
    let fd = open("unlinkread", O_RDWR);
    if fd < 0 {
        fail!(s, "open unlinkread failed");
    }
    if unlink("unlinkread") != 0 {
        fail!(s, "unlink unlinkread failed");
    }
    let fd1 = open("unlinkread", O_CREATE | O_RDWR);
    write(fd1, b"yyy");
    close(fd1);
    let mut buf = [0u8; 8];
    if read(fd, &mut buf) != SZ as i32 {
        fail!(s, "unlinkread read failed");
    }
    if buf[0] != b'h' {
        fail!(s, "unlinkread wrong data");
    }
    if write(fd, &buf) != 8 {
        fail!(s, "unlinkread write failed");
    }
    close(fd);
    unlink("unlinkread");
}

fn linktest(s: &str) {
    unlink("lf1");
    unlink("lf2");
    mkfile(s, "lf1", b"hello");
    if link("lf1", "lf2") < 0 {
        fail!(s, "link lf1 lf2 failed");
    }
    unlink("lf1");
    if open("lf1", O_RDONLY) >= 0 {
        fail!(s, "unlinked lf1 but it is still there!");
    }
    let fd = open("lf2", O_RDONLY);
    if fd < 0 {
        fail!(s, "open lf2 failed");
    }
    let mut buf = [0u8; 16];
    if read(fd, &mut buf) != 5 {
        fail!(s, "read lf2 failed");
    }
    close(fd);
    if link("lf2", "lf2") >= 0 {
        fail!(s, "link lf2 lf2 succeeded! oops");
    }
    unlink("lf2");
    if link("lf2", "lf1") >= 0 {
        fail!(s, "link non-existent succeeded! oops");
    }
    if link(".", "lf1") >= 0 {
        fail!(s, "link . lf1 succeeded! oops");
    }
}

/// Two processes create, link and unlink the same 40 names at once.
fn concreate(s: &str) {
    const N: usize = 40;
    let name = |i: usize| format!("C{}", i);
    for i in 0..N {
        let file = name(i);
        unlink(&file);
        let pid = fork();
        if (pid != 0 && i % 3 == 1) || (pid == 0 && i % 5 == 1) {
            link("C0", &file);
        } else {
            let fd = open(&file, O_CREATE | O_RDWR);
            if fd < 0 {
                fail!(s, "concreate create {} failed", file);
            }
            close(fd);
        }
        if pid == 0 {
            exit(0);
        }
        if wait_status() != 0 {
            exit(1);
        }
    }
    let mut fa = [false; N];
    let fd = open(".", O_RDONLY);
    let mut de = Dirent::default();
    let mut n = 0;
    while read(fd, de.as_bytes_mut()) > 0 {
        if de.inum == 0 {
            continue;
        }
        let nm = de.name();
        if nm.len() >= 2 && nm[0] == b'C' {
            let Ok(i) = core::str::from_utf8(&nm[1..]).map(atoi) else {
                continue;
            };
            if i < 0 || i as usize >= N {
                fail!(s, "concreate weird file {}", Bytes(nm));
            }
            if fa[i as usize] {
                fail!(s, "concreate duplicate file {}", Bytes(nm));
            }
            fa[i as usize] = true;
            n += 1;
        }
    }
    close(fd);
    if n != N {
        fail!(s, "concreate not enough files in directory listing ({})", n);
    }
    for i in 0..N {
        let file = name(i);
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if (i % 3 == 0 && pid == 0) || (i % 3 == 1 && pid != 0) {
            for _ in 0..4 {
                close(open(&file, O_RDONLY));
            }
        } else {
            for _ in 0..4 {
                unlink(&file);
            }
        }
        if pid == 0 {
            exit(0);
        }
        wait(None);
    }
}

/// Random create/link/unlink of one name from two processes.
fn linkunlink(_s: &str) {
    unlink("x");
    let pid = fork();
    if pid < 0 {
        fail!(_s, "fork failed");
    }
    let mut x: u32 = if pid != 0 { 1 } else { 97 };
    for _ in 0..100 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        match x % 3 {
            0 => {
                close(open("x", O_RDWR | O_CREATE));
            }
            1 => {
                link("cat", "x");
            }
            _ => {
                unlink("x");
            }
        }
    }
    if pid != 0 {
        wait(None);
    } else {
        exit(0);
    }
    unlink("x");
}

/// Directories: nested creation, lookups through `..`, unlinking, errors.
fn subdir(s: &str) {
    unlink("ff");
    if mkdir("dd") != 0 {
        fail!(s, "mkdir dd failed");
    }
    mkfile(s, "dd/ff", b"ff");
    if unlink("dd") >= 0 {
        fail!(s, "unlink dd (non-empty dir) succeeded!");
    }
    if mkdir("/dd/dd") != 0 {
        fail!(s, "subdir mkdir dd/dd failed");
    }
    mkfile(s, "dd/dd/ff", b"FF");
    let mut buf = [0u8; 16];
    let fd = open("dd/dd/../ff", O_RDONLY);
    if fd < 0 {
        fail!(s, "open dd/dd/../ff failed");
    }
    let n = read(fd, &mut buf);
    if n != 2 || &buf[..2] != b"ff" {
        fail!(s, "dd/dd/../ff wrong content");
    }
    close(fd);
    if link("dd/dd/ff", "dd/dd/ffff") != 0 {
        fail!(s, "link dd/dd/ff dd/dd/ffff failed");
    }
    if unlink("dd/dd/ff") != 0 {
        fail!(s, "unlink dd/dd/ff failed");
    }
    if open("dd/dd/ff", O_RDONLY) >= 0 {
        fail!(s, "open (unlinked) dd/dd/ff succeeded");
    }
    if chdir("dd") != 0 {
        fail!(s, "chdir dd failed");
    }
    if chdir("dd/../../dd") != 0 {
        fail!(s, "chdir dd/../../dd failed");
    }
    if chdir("dd/../../../dd") != 0 {
        fail!(s, "chdir dd/../../../dd failed");
    }
    if chdir("./..") != 0 {
        fail!(s, "chdir ./.. failed");
    }
    let fd = open("dd/dd/ffff", O_RDONLY);
    if fd < 0 {
        fail!(s, "open dd/dd/ffff failed");
    }
    if read(fd, &mut buf) != 2 {
        fail!(s, "read dd/dd/ffff wrong len");
    }
    close(fd);
    if open("dd/dd/ff", O_RDONLY) >= 0 {
        fail!(s, "open (unlinked) dd/dd/ff succeeded!");
    }
    if open("dd/ff/ff", O_CREATE | O_RDWR) >= 0 {
        fail!(s, "create dd/ff/ff succeeded!");
    }
    if open("dd/xx/ff", O_CREATE | O_RDWR) >= 0 {
        fail!(s, "create dd/xx/ff succeeded!");
    }
    if open("dd", O_CREATE) >= 0 {
        fail!(s, "create dd succeeded!");
    }
    if open("dd", O_RDWR) >= 0 {
        fail!(s, "open dd rdwr succeeded!");
    }
    if open("dd", O_WRONLY) >= 0 {
        fail!(s, "open dd wronly succeeded!");
    }
    if link("dd/ff/ff", "dd/dd/xx") == 0 {
        fail!(s, "link dd/ff/ff dd/dd/xx succeeded!");
    }
    if link("dd/xx/ff", "dd/dd/xx") == 0 {
        fail!(s, "link dd/xx/ff dd/dd/xx succeeded!");
    }
    if link("dd/ff", "dd/dd/ffff") == 0 {
        fail!(s, "link dd/ff dd/dd/ffff succeeded!");
    }
    if mkdir("dd/ff/ff") == 0 {
        fail!(s, "mkdir dd/ff/ff succeeded!");
    }
    if mkdir("dd/xx/ff") == 0 {
        fail!(s, "mkdir dd/xx/ff succeeded!");
    }
    if mkdir("dd/dd/ffff") == 0 {
        fail!(s, "mkdir dd/dd/ffff succeeded!");
    }
    if unlink("dd/xx/ff") == 0 {
        fail!(s, "unlink dd/xx/ff succeeded!");
    }
    if unlink("dd/ff/ff") == 0 {
        fail!(s, "unlink dd/ff/ff succeeded!");
    }
    if chdir("dd/ff") == 0 {
        fail!(s, "chdir dd/ff succeeded!");
    }
    if chdir("dd/xx") == 0 {
        fail!(s, "chdir dd/xx succeeded!");
    }
    if unlink("dd/dd/ffff") != 0 {
        fail!(s, "unlink dd/dd/ffff failed");
    }
    if unlink("dd/ff") != 0 {
        fail!(s, "unlink dd/ff failed");
    }
    if unlink("dd") == 0 {
        fail!(s, "unlink non-empty dd succeeded!");
    }
    if unlink("dd/dd") < 0 {
        fail!(s, "unlink dd/dd failed");
    }
    if unlink("dd") < 0 {
        fail!(s, "unlink dd failed");
    }
}

/// Single writes of many sizes, up to a whole log transaction and more.
fn bigwrite(s: &str) {
    unlink("bigwrite");
    let buf = vec![0u8; 12 * BSIZE];
    let mut sz = 499;
    while sz < 12 * BSIZE {
        let fd = open("bigwrite", O_CREATE | O_RDWR);
        if fd < 0 {
            fail!(s, "cannot create bigwrite");
        }
        for _ in 0..2 {
            let cc = write(fd, &buf[..sz]);
            if cc != sz as i32 {
                fail!(s, "write({}) ret {}", sz, cc);
            }
        }
        close(fd);
        unlink("bigwrite");
        sz += 471;
    }
}

fn bigfile(s: &str) {
    const N: usize = 20;
    const SZ: usize = 600;
    unlink("bigfile.dat");
    let fd = open("bigfile.dat", O_CREATE | O_RDWR);
    if fd < 0 {
        fail!(s, "cannot create bigfile");
    }
    for i in 0..N {
        if write(fd, &[i as u8; SZ]) != SZ as i32 {
            fail!(s, "write bigfile failed");
        }
    }
    close(fd);
    let fd = open("bigfile.dat", O_RDONLY);
    if fd < 0 {
        fail!(s, "cannot open bigfile");
    }
    let mut total = 0;
    let mut i = 0;
    let mut buf = [0u8; SZ / 2];
    loop {
        let cc = read(fd, &mut buf);
        if cc < 0 {
            fail!(s, "read bigfile failed");
        }
        if cc == 0 {
            break;
        }
        if cc != (SZ / 2) as i32 {
            fail!(s, "short read bigfile");
        }
        if buf[0] != (i / 2) as u8 || buf[SZ / 2 - 1] != (i / 2) as u8 {
            fail!(s, "read bigfile wrong data");
        }
        total += cc as usize;
        i += 1;
    }
    close(fd);
    if total != N * SZ {
        fail!(s, "read bigfile wrong total");
    }
    unlink("bigfile.dat");
}

/// Names of DIRSIZ (14) characters, and longer ones cut to 14.
fn fourteen(s: &str) {
    if mkdir("12345678901234") != 0 {
        fail!(s, "mkdir 12345678901234 failed");
    }
    if mkdir("12345678901234/123456789012345") != 0 {
        fail!(s, "mkdir 12345678901234/123456789012345 failed");
    }
    let fd = open("123456789012345/123456789012345/123456789012345", O_CREATE);
    if fd < 0 {
        fail!(
            s,
            "create 123456789012345/123456789012345/123456789012345 failed"
        );
    }
    close(fd);
    let fd = open("12345678901234/12345678901234/12345678901234", O_RDONLY);
    if fd < 0 {
        fail!(
            s,
            "open 12345678901234/12345678901234/12345678901234 failed"
        );
    }
    close(fd);
    if mkdir("12345678901234/12345678901234") == 0 {
        fail!(s, "mkdir 12345678901234/12345678901234 succeeded!");
    }
    if mkdir("123456789012345/12345678901234") == 0 {
        fail!(s, "mkdir 12345678901234/123456789012345 succeeded!");
    }
    unlink("123456789012345/12345678901234/12345678901234");
    unlink("12345678901234/12345678901234");
    unlink("12345678901234");
}

fn rmdot(s: &str) {
    if mkdir("dots") != 0 {
        fail!(s, "mkdir dots failed");
    }
    if chdir("dots") != 0 {
        fail!(s, "chdir dots failed");
    }
    if unlink(".") == 0 {
        fail!(s, "rm . worked!");
    }
    if unlink("..") == 0 {
        fail!(s, "rm .. worked!");
    }
    if chdir("/") != 0 {
        fail!(s, "chdir / failed");
    }
    if unlink("dots/.") == 0 {
        fail!(s, "unlink dots/. worked!");
    }
    if unlink("dots/..") == 0 {
        fail!(s, "unlink dots/.. worked!");
    }
    if unlink("dots") != 0 {
        fail!(s, "unlink dots failed!");
    }
}

/// A file used as a directory.
fn dirfile(s: &str) {
    mkfile(s, "dirfile", b"");
    if chdir("dirfile") == 0 {
        fail!(s, "chdir dirfile succeeded!");
    }
    if open("dirfile/xx", O_RDONLY) >= 0 {
        fail!(s, "open dirfile/xx succeeded!");
    }
    if open("dirfile/xx", O_CREATE) >= 0 {
        fail!(s, "create dirfile/xx succeeded!");
    }
    if mkdir("dirfile/xx") == 0 {
        fail!(s, "mkdir dirfile/xx succeeded!");
    }
    if unlink("dirfile/xx") == 0 {
        fail!(s, "unlink dirfile/xx succeeded!");
    }
    if link("README.md", "dirfile/xx") == 0 {
        fail!(s, "link to dirfile/xx succeeded!");
    }
    if unlink("dirfile") != 0 {
        fail!(s, "unlink dirfile failed!");
    }
    if open(".", O_RDWR) >= 0 {
        fail!(s, "open . for writing succeeded!");
    }
    let fd = open(".", O_RDONLY);
    if write(fd, b"x") > 0 {
        fail!(s, "write . succeeded!");
    }
    close(fd);
}

/// Failed creations must not leak in-memory inodes: more iterations than
/// the kernel has inode slots.
fn iref(s: &str) {
    for _ in 0..NINODE + 1 {
        if mkdir("irefd") != 0 {
            fail!(s, "mkdir irefd failed");
        }
        if chdir("irefd") != 0 {
            fail!(s, "chdir irefd failed");
        }
        mkdir("");
        link("README.md", "");
        let fd = open("", O_CREATE);
        if fd >= 0 {
            close(fd);
        }
        let fd = open("xx", O_CREATE);
        if fd >= 0 {
            close(fd);
        }
        unlink("xx");
    }
    for _ in 0..NINODE + 1 {
        chdir("..");
        unlink("irefd");
    }
    chdir("/");
}

/// fork until the process table is full; fork fails cleanly.
fn forktest(s: &str) {
    const N: i32 = 1000;
    let mut n = 0;
    while n < N {
        let pid = fork();
        if pid < 0 {
            break;
        }
        if pid == 0 {
            exit(0);
        }
        n += 1;
    }
    if n == 0 {
        fail!(s, "no fork at all!");
    }
    if n == N {
        fail!(s, "fork claimed to work {} times!", N);
    }
    while n > 0 {
        if wait(None) < 0 {
            fail!(s, "wait stopped early");
        }
        n -= 1;
    }
    if wait(None) != -1 {
        fail!(s, "wait got too many");
    }
}

// ---- memory --------------------------------------------------------------

/// sbrk of 1 byte at a time, a request too big, and fork of a grown process.
fn sbrkbasic(s: &str) {
    const TOOMUCH: isize = 1024 * 1024 * 1024;
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed in sbrkbasic");
    }
    if pid == 0 {
        let a = sbrk(TOOMUCH);
        if a == ERR {
            exit(0); // the kernel refused: good
        }
        let mut b = a;
        while b < a + TOOMUCH as usize {
            // SAFETY: sbrk claims to have mapped it.
            unsafe { write_volatile(b as *mut u8, 99) };
            b += PGSIZE;
        }
        exit(1); // we should not get here
    }
    if wait_status() == 1 {
        fail!(s, "too much memory allocated!");
    }
    let mut a = sbrk(0);
    for i in 0..5000 {
        let b = sbrk(1);
        if b != a {
            fail!(s, "sbrk test failed {} {:#x} {:#x}", i, a, b);
        }
        // SAFETY: the byte sbrk just added.
        unsafe { write_volatile(b as *mut u8, 1) };
        a = b + 1;
    }
    let pid = fork();
    if pid < 0 {
        fail!(s, "sbrk test fork failed");
    }
    let c = sbrk(1);
    let c2 = sbrk(1);
    if c2 != c + 1 {
        fail!(s, "sbrk test failed post-fork");
    }
    if pid == 0 {
        exit(0);
    }
    if wait_status() != 0 {
        exit(1);
    }
}

/// Grow to 100 MB, shrink, and grow again; freed memory is really gone
/// and regrown memory is zero.
fn sbrkmuch(s: &str) {
    const BIG: usize = 100 * 1024 * 1024;
    let oldbrk = sbrk(0);
    let a = sbrk(0);
    let amt = BIG - a;
    let p = sbrk(amt as isize);
    if p != a {
        fail!(
            s,
            "sbrk test failed to grow big address space; enough phys mem?"
        );
    }
    let mut pp = a;
    while pp < a + amt {
        // SAFETY: mapped by the sbrk above.
        unsafe { write_volatile(pp as *mut u8, 1) };
        pp += PGSIZE;
    }
    let lastaddr = BIG - 1;
    // SAFETY: the last byte of the region.
    unsafe { write_volatile(lastaddr as *mut u8, 99) };

    let a = sbrk(0);
    let c = sbrk(-(PGSIZE as isize));
    if c == ERR {
        fail!(s, "sbrk could not deallocate");
    }
    let c = sbrk(0);
    if c != a - PGSIZE {
        fail!(
            s,
            "sbrk deallocation produced wrong address, a {:#x} c {:#x}",
            a,
            c
        );
    }
    let a = sbrk(0);
    let c = sbrk(PGSIZE as isize);
    if c != a || sbrk(0) != a + PGSIZE {
        fail!(s, "sbrk re-allocation failed, a {:#x} c {:#x}", a, c);
    }
    // SAFETY: re-mapped just now.
    if unsafe { read_volatile(lastaddr as *const u8) } == 99 {
        fail!(s, "sbrk de-allocation didn't really deallocate");
    }
    let a = sbrk(0);
    let c = sbrk(-((sbrk(0) - oldbrk) as isize));
    if c != a {
        fail!(s, "sbrk downsize failed, a {:#x} c {:#x}", a, c);
    }
}

/// Reading kernel memory kills the process.
fn kernmem(s: &str) {
    let mut a = KERNBASE;
    while a < KERNBASE + 2_000_000 {
        expect_killed(s, "read of kernel memory", || {
            let v = peek(a); // the kernel must kill us here
            println!("{}: oops could read {:#x} = {:#x}", s, a, v);
            exit(1);
        });
        a += 50_000;
    }
}

/// Writing at and above MAXVA kills the process.
fn maxvaplus(s: &str) {
    let mut a = MAXVA;
    while a != 0 {
        expect_killed(s, "write above MAXVA", || {
            poke(a, 99); // the kernel must kill us here
            println!("{}: oops wrote {:#x}", s, a);
            exit(1);
        });
        a <<= 1;
    }
}

/// Running out of memory: sbrk fails cleanly, memory comes back when the
/// hogs die, and a child that touches memory it could not get is killed.
fn sbrkfail(s: &str) {
    const BIG: usize = 100 * 1024 * 1024;
    let mut fds = [0i32; 2];
    if pipe(&mut fds) != 0 {
        fail!(s, "pipe() failed");
    }
    let mut pids = [0i32; 10];
    for p in pids.iter_mut() {
        *p = fork();
        if *p == 0 {
            // Allocate a lot of memory, if we can.
            sbrk(BIG as isize - sbrk(0) as isize);
            write(fds[1], b"x");
            // Sit around until killed.
            loop {
                sleep(1000);
            }
        }
        if *p != -1 {
            let mut c = [0u8; 1];
            read(fds[0], &mut c);
        }
    }
    // If those failed to allocate, this should fail too; but once they are
    // killed the memory is back.
    let c = sbrk(PGSIZE as isize);
    let _ = c;
    for &p in &pids {
        if p == -1 {
            continue;
        }
        kill(p);
        wait(None);
    }
    let c = sbrk(PGSIZE as isize);
    if c == ERR {
        fail!(s, "failed sbrk leaked memory");
    }
    close(fds[0]);
    close(fds[1]);
    // A child that asks for far too much and touches it.
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        let a = sbrk(0);
        sbrk(10 * BIG as isize);
        let mut n: usize = 0;
        let mut i = 0;
        while i < 10 * BIG {
            // If sbrk failed, the kernel must kill us here.
            n += peek(a + i) as usize;
            i += PGSIZE;
        }
        println!("{}: allocate a lot of memory succeeded {}", s, n);
        exit(1);
    }
    let st = wait_status();
    if st != -1 && st != 2 {
        exit(1);
    }
}

/// sbrk'd memory works as a system call buffer (write from it, pipe into it).
fn sbrkarg(s: &str) {
    let a = sbrk(PGSIZE as isize);
    if a == ERR {
        fail!(s, "sbrk failed");
    }
    let fd = open("sbrk", O_CREATE | O_WRONLY);
    unlink("sbrk");
    if fd < 0 {
        fail!(s, "open sbrk failed");
    }
    let n = sys(SYS_WRITE, &[fd as usize, a, PGSIZE]);
    if n < 0 {
        fail!(s, "write sbrk failed");
    }
    close(fd);
    let a = sbrk(PGSIZE as isize);
    if sys(SYS_PIPE, &[a]) != 0 {
        fail!(s, "pipe() failed");
    }
}

/// Many invalid pointers, none of which may crash the kernel.
fn validatetest(s: &str) {
    let hi: usize = 1100 * 1024;
    let mut p = 0;
    let name = cstr("nosuchfile");
    while p <= hi {
        // Try to crash the kernel by passing in a bad string pointer.
        if sys(SYS_LINK, &[name.as_ptr() as usize, p]) != -1 {
            fail!(s, "link should not succeed");
        }
        p += PGSIZE;
    }
}

static mut UNINIT: [u8; 10000] = [0; 10000];

/// The bss is zero.
fn bsstest(s: &str) {
    let base = core::ptr::addr_of!(UNINIT) as *const u8;
    for i in 0..10000 {
        // SAFETY: one thread; reading our own static.
        if unsafe { read_volatile(base.add(i)) } != 0 {
            fail!(s, "bss test failed");
        }
    }
}

/// exec with arguments too large for the user stack must fail cleanly.
fn bigargtest(s: &str) {
    unlink("bigarg-ok");
    let pid = fork();
    if pid == 0 {
        let arg: String = core::iter::repeat_n(' ', 400).collect();
        let args: Vec<&str> = (0..MAXARG - 1).map(|_| arg.as_str()).collect();
        // 31 * 401 bytes is more than the one-page user stack holds.
        exec("echo", &args);
        close(open("bigarg-ok", O_CREATE));
        exit(0);
    } else if pid < 0 {
        fail!(s, "bigargtest: fork failed");
    }
    if wait_status() != 0 {
        exit(1);
    }
    let fd = open("bigarg-ok", O_RDONLY);
    if fd < 0 {
        fail!(s, "bigarg test failed!");
    }
    close(fd);
    unlink("bigarg-ok");
}

/// A read whose buffer starts just below the break and a huge length.
fn argptest(s: &str) {
    let fd = open("init", O_RDONLY);
    if fd < 0 {
        fail!(s, "open failed");
    }
    let n = sys(SYS_READ, &[fd as usize, sbrk(0) - 1, usize::MAX]);
    if n > 1 {
        fail!(s, "read returned {} past the end of memory", n);
    }
    close(fd);
}

/// Touching the guard page under the user stack kills the process.
fn stacktest(s: &str) {
    expect_killed(s, "read of the stack guard page", || {
        let sp = read_sp() - PGSIZE;
        let v = peek(sp); // the kernel must kill us here
        println!("{}: stacktest: read below stack {:#x}", s, v);
        exit(1);
    });
}

/// Writing to the program's text kills the process.
fn textwrite(s: &str) {
    expect_killed(s, "write to text", || {
        poke(0, 10); // the kernel must kill us here
        exit(1);
    });
    expect_killed(s, "write to code", || {
        let f = main as *const () as usize;
        poke(f, 0); // the kernel must kill us here
        exit(1);
    });
}

/// exec with a wild argv pointer must fail, not crash the kernel.
fn pgbug(_s: &str) {
    let big: usize = 0xeaeb_0b5b_0000_2f5e;
    sys(SYS_EXEC, &[big, big]);
    exit(0);
}

/// sbrk that frees the program itself, or leaves the break mid-page.
fn sbrkbugs(s: &str) {
    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        let sz = sbrk(0);
        // Free all user memory; there is no way for this process to continue.
        sbrk(-(sz as isize));
        // user page fault here.
        exit(0);
    }
    wait(None);

    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        let sz = sbrk(0);
        // Leave only a fraction of the first page.
        sbrk(-((sz - 3500) as isize));
        exit(0);
    }
    wait(None);

    let pid = fork();
    if pid < 0 {
        fail!(s, "fork failed");
    }
    if pid == 0 {
        // Set the break just past a page boundary.
        let top = sbrk(0);
        sbrk((10 * PGSIZE + 2048 - top % PGSIZE) as isize);
        sbrk(-10);
        exit(0);
    }
    wait(None);
    exit(0);
}

/// A system call's string at the very end of a shrunk heap.
fn sbrklast(s: &str) {
    let top = sbrk(0);
    if !top.is_multiple_of(PGSIZE) {
        sbrk((PGSIZE - top % PGSIZE) as isize);
    }
    let p = sbrk(PGSIZE as isize);
    sbrk(10);
    sbrk(-20);
    let top = sbrk(0);
    if p == ERR || top < p + PGSIZE - 64 {
        fail!(s, "sbrk failed");
    }
    let name = top - 64;
    // SAFETY: within memory sbrk left us.
    unsafe {
        core::ptr::copy_nonoverlapping(c"x".as_ptr().cast::<u8>(), name as *mut u8, 2);
    }
    let fd = sys(SYS_OPEN, &[name, (O_RDWR | O_CREATE) as usize]);
    if fd < 0 {
        fail!(s, "open failed");
    }
    write(fd as i32, b"x");
    close(fd as i32);
    let fd = open("x", O_RDWR);
    let mut buf = [0u8; 1];
    if read(fd, &mut buf) != 1 || buf[0] != b'x' {
        fail!(s, "wrong contents");
    }
    close(fd);
    unlink("x");
}

/// exec with an argv element pointing at nothing, many times.
fn badarg(s: &str) {
    let path = cstr("echo");
    for _ in 0..50_000 {
        let argv = [0xffff_ffffusize, 0];
        if sys(SYS_EXEC, &[path.as_ptr() as usize, argv.as_ptr() as usize]) != -1 {
            fail!(s, "exec with a bad argv succeeded");
        }
    }
}

// ---- slow tests ----------------------------------------------------------

/// Hundreds of links in one directory.
fn bigdir(s: &str) {
    const N: usize = 500;
    unlink("bd");
    let fd = open("bd", O_CREATE);
    if fd < 0 {
        fail!(s, "bigdir create failed");
    }
    close(fd);
    let name = |i: usize| {
        format!(
            "x{}{}",
            (b'0' + (i / 64) as u8) as char,
            (b'0' + (i % 64) as u8) as char
        )
    };
    for i in 0..N {
        if link("bd", &name(i)) != 0 {
            fail!(s, "bigdir i={} link(bd, {}) failed", i, name(i));
        }
    }
    unlink("bd");
    for i in 0..N {
        if unlink(&name(i)) != 0 {
            fail!(s, "bigdir unlink failed");
        }
    }
}

/// Four processes each write a big file in their own directory.
fn manywrites(s: &str) {
    const NCHILD: usize = 4;
    const HOWMANY: usize = 30;
    for ci in 0..NCHILD {
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            let name = format!("b{}", (b'a' + ci as u8) as char);
            unlink(&name);
            let buf = vec![ci as u8; 3 * BSIZE];
            for _ in 0..HOWMANY {
                for _ in 0..ci + 1 {
                    let fd = open(&name, O_CREATE | O_RDWR);
                    if fd < 0 {
                        fail!(s, "cannot create {}", name);
                    }
                    let cc = write(fd, &buf);
                    if cc != (3 * BSIZE) as i32 {
                        fail!(s, "write({}) ret {}", 3 * BSIZE, cc);
                    }
                    close(fd);
                }
                unlink(&name);
            }
            unlink(&name);
            exit(0);
        }
    }
    for _ in 0..NCHILD {
        if wait_status() != 0 {
            exit(1);
        }
    }
}

/// Bad write pointers must not leak inodes or blocks.
fn badwrite(s: &str) {
    let assumed_free = 600;
    unlink("junk");
    for _ in 0..assumed_free {
        let fd = open("junk", O_CREATE | O_WRONLY);
        if fd < 0 {
            fail!(s, "open junk failed");
        }
        sys(SYS_WRITE, &[fd as usize, 0xff_ffff_ffff, 1]);
        close(fd);
        unlink("junk");
    }
    let fd = open("junk", O_CREATE | O_WRONLY);
    if fd < 0 {
        fail!(s, "open junk failed");
    }
    if write(fd, b"x") != 1 {
        fail!(s, "write failed");
    }
    close(fd);
    unlink("junk");
}

/// exec with almost no free memory must fail or succeed, never crash.
fn execout(s: &str) {
    for avail in 0..15 {
        let pid = fork();
        if pid < 0 {
            fail!(s, "fork failed");
        }
        if pid == 0 {
            // Allocate all of memory.
            loop {
                let a = sbrk(PGSIZE as isize);
                if a == ERR {
                    break;
                }
                // SAFETY: just mapped.
                unsafe { write_volatile((a + PGSIZE - 1) as *mut u8, 1) };
            }
            // Free a few pages, to cause exec() to fail at different points.
            for _ in 0..avail {
                sbrk(-(PGSIZE as isize));
            }
            close(1);
            exec("echo", &["echo", "x"]);
            exit(0);
        }
        wait(None);
    }
}

/// Filling the disk: writes fail, the file system stays consistent, and
/// the space comes back.
fn diskfull(s: &str) {
    let mut done = false;
    let mut fi = 0;
    unlink("diskfulldir");
    while !done && fi < 100 {
        let name = format!("bigf{}", fi);
        unlink(&name);
        let fd = open(&name, O_CREATE | O_RDWR | O_TRUNC);
        if fd < 0 {
            println!("{}: could not create file {}", s, name);
            done = true;
            break;
        }
        let buf = [0u8; BSIZE];
        for _ in 0..MAXFILE {
            if write(fd, &buf) != BSIZE as i32 {
                done = true;
                close(fd);
                break;
            }
        }
        if !done {
            close(fd);
        }
        fi += 1;
    }
    if !done {
        fail!(s, "the disk never filled up");
    }
    // Now that the disk is full, creating files and directories must fail
    // gracefully or succeed, never corrupt anything.
    for i in 0..10 {
        let name = format!("zz{}", i);
        unlink(&name);
        let fd = open(&name, O_CREATE | O_RDWR | O_TRUNC);
        if fd < 0 {
            break;
        }
        close(fd);
    }
    // This mkdir may fail; it must not corrupt the disk.
    if mkdir("diskfulldir") == 0 {
        println!("{}: mkdir(diskfulldir) unexpectedly succeeded!", s);
    }
    unlink("diskfulldir");
    for i in 0..10 {
        unlink(&format!("zz{}", i));
    }
    for i in 0..fi {
        unlink(&format!("bigf{}", i));
    }
    // The space is back.
    mkfile(s, "diskfull-after", &[7u8; 5 * BSIZE]);
    unlink("diskfull-after");
}

/// Creating files until the inodes run out, then deleting them all.
fn outofinodes(s: &str) {
    let nzz = 32 * 32;
    for i in 0..nzz {
        let name = format!("z{}", i);
        unlink(&name);
        let fd = open(&name, O_CREATE | O_RDWR | O_TRUNC);
        if fd < 0 {
            break; // out of inodes
        }
        close(fd);
    }
    for i in 0..nzz {
        unlink(&format!("z{}", i));
    }
    mkfile(s, "outofinodes-after", b"ok");
    unlink("outofinodes-after");
}
