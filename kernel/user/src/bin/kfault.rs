//! kfault: crash the kernel on purpose, for post-mortem demos and tests.
//!
//! `kfault enable` releases the safety catch of the kernel-debugging system
//! call `kdebug` (number 30, kernel/src/sysdebug.rs) until the next boot;
//! `kfault KIND` then provokes one panic through the kernel's real code:
//! remap, remap-kstack, kvmpa, uvmunmap, freewalk, pagefault,
//! remap-trampoline.
//! `kfault status` prints whether it is enabled. See docs/kernel-contract.md.

#![no_std]
#![no_main]

use user::raw::call;
use user::*;

entry!(main);

const SYS_KDEBUG: usize = 30;

/// The kinds, in the kernel's operation order (op = index + 2).
const KINDS: [&str; 7] = [
    "remap",
    "remap-kstack",
    "kvmpa",
    "uvmunmap",
    "freewalk",
    "pagefault",
    "remap-trampoline",
];

fn kdebug(op: i32) -> i32 {
    // SAFETY: kdebug takes one integer and writes no user memory.
    unsafe { call(SYS_KDEBUG, &[op as usize]) as i32 }
}

fn usage() -> ! {
    eprintln!("usage: kfault enable | status | remap | remap-kstack | kvmpa | uvmunmap | freewalk | pagefault | remap-trampoline");
    exit(1)
}

fn main(args: Args) -> i32 {
    let Some(what) = args.get(1) else { usage() };
    match what {
        "status" => {
            let s = kdebug(0);
            println!("kdebug {}", if s == 1 { "enabled" } else { "disabled" });
            0
        }
        "enable" => {
            if kdebug(1) < 0 {
                eprintln!("kfault: the kernel refused (no kdebug system call?)");
                return 1;
            }
            0
        }
        kind => {
            let Some(i) = KINDS.iter().position(|k| *k == kind) else {
                usage()
            };
            println!("kfault: {}", kind);
            let r = kdebug(i as i32 + 2);
            // Only reached when the kernel said no.
            eprintln!("kfault: kdebug returned {}: run `kfault enable` first", r);
            1
        }
    }
}
