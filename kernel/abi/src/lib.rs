//! The xv6 ABI and on-disk format, defined once (xv6's shared headers
//! `kernel/syscall.h`, `stat.h`, `fcntl.h` and `fs.h`).
//!
//! A `no_std` crate with no dependencies, used by the kernel (re-exported
//! as `kernel::abi`), by the user library (`user::abi`) and by the host tool
//! `mkfs`: so it holds only constants and `#[repr(C)]` structs, and builds
//! both for riscv64gc-unknown-none-elf and on the host. The values and
//! layouts are xv6-riscv's: changing one breaks the user ABI or the disk
//! format (docs/kernel-contract.md, docs/filesystem.md).

#![no_std]

pub mod fcntl;
pub mod fs_format;
pub mod stat;
pub mod syscalls;
