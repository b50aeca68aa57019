//! vmsteps: make the classic page-table changes one step at a time, and
//! stop after each so a debugger can look (`kinspect snapshot`, then
//! `kinspect diff`; docs/diff.md).
//!
//! Each step prints the process's user page table the way the pgtbl lab's
//! `vmprint` does (through `kdebug` op 9, which only prints) and then
//! waits for a line on the console:
//!
//! 1. `start`: as exec left it;
//! 2. `sbrk`: two more pages of heap, written so they are dirty;
//! 3. `fork`: a child, a copy of it (the parent waits for the child);
//! 4. `exec`: the child runs `vmsteps exec`, a fresh image.
//!
//! Each stop is announced as `vmsteps: STEP pid N, press Enter`.

#![no_std]
#![no_main]

use user::raw::call;
use user::*;

entry!(main);

const SYS_KDEBUG: usize = 30;
const KDEBUG_VMPRINT: usize = 9;

/// Print this process's page table, then wait for Enter.
fn stop(step: &str) {
    // SAFETY: kdebug takes one integer and writes no user memory.
    if unsafe { call(SYS_KDEBUG, &[KDEBUG_VMPRINT]) } < 0 {
        eprintln!("vmsteps: the kernel has no kdebug vmprint");
        exit(1);
    }
    println!("vmsteps: {} pid {}, press Enter", step, getpid());
    let mut b = [0u8; 1];
    while read(0, &mut b) == 1 && b[0] != b'\n' {}
}

fn main(args: Args) -> i32 {
    if args.get(1) == Some("exec") {
        stop("exec");
        return 0;
    }
    stop("start");
    let old = sbrk(2 * 4096);
    if old == usize::MAX {
        eprintln!("vmsteps: sbrk failed");
        return 1;
    }
    // SAFETY: sbrk just gave these two pages to this process.
    unsafe { core::ptr::write_bytes(old as *mut u8, 0x5a, 2 * 4096) };
    stop("sbrk");
    let pid = fork();
    if pid < 0 {
        eprintln!("vmsteps: fork failed");
        return 1;
    }
    if pid == 0 {
        stop("fork");
        exec("vmsteps", &["vmsteps", "exec"]);
        eprintln!("vmsteps: exec failed");
        exit(1);
    }
    wait(None);
    0
}
