//! The user library every program in `src/bin/` links with: xv6's
//! `user/usys.S`, `ulib.c`, `printf.c` and `umalloc.c`, in Rust.
//!
//! A program is `#![no_std] #![no_main]` and names its main function with
//! [`entry!`]; the kernel's exec jumps to [`_start`] (at address 0 or near
//! it, see `user.ld`) with a0 = argc and a1 = argv, `_start` calls main and
//! exits with what it returns.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use user::*;
//! entry!(main);
//! fn main(args: Args) -> i32 {
//!     println!("hello from {}", args.prog());
//!     0
//! }
//! ```

#![no_std]

pub extern crate alloc;

/// The ABI the kernel defines (the `abi` crate, `kernel/abi/`: system call
/// numbers, open flags, `struct stat`, the on-disk format).
pub use ::abi;
pub mod args;
pub mod print;
pub mod string;
pub mod syscall;
pub mod umalloc;

pub use args::Args;
pub use string::{atoi, Bytes};
pub use syscall::*;

#[global_allocator]
static ALLOCATOR: umalloc::Umalloc = umalloc::Umalloc::new();

extern "Rust" {
    /// The program's main, defined by [`entry!`].
    fn __user_main(args: Args) -> i32;
}

/// Where exec starts a program: call main(argc, argv), then exit with its
/// return value.
///
/// # Safety
/// Only the kernel calls this, with exec's argc and argv.
#[no_mangle]
#[link_section = ".text._start"]
pub unsafe extern "C" fn _start(argc: i32, argv: *const *const u8) -> ! {
    // SAFETY: exec put argc strings at argv on our stack.
    let args = unsafe { Args::new(argc, argv) };
    // SAFETY: entry! defines __user_main with this signature.
    let status = unsafe { __user_main(args) };
    exit(status)
}

/// Name the program's `fn main(args: Args) -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __user_main(args: $crate::Args) -> i32 {
            let f: fn($crate::Args) -> i32 = $main;
            f(args)
        }
    };
}

/// A panic (a bug, or running out of heap) prints where and exits with -1.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    eprintln!("panic: pid {}: {}", getpid(), info);
    exit(-1)
}

/// Print `msg` with the program's name to fd 2 and exit(1): xv6's
/// `fprintf(2, ...); exit(1);` idiom.
pub fn die(args: &Args, msg: core::fmt::Arguments) -> ! {
    eprintln!("{}: {}", args.prog(), msg);
    exit(1)
}
