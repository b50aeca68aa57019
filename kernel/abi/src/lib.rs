//! The xv6 ABI and on-disk format, defined once (xv6's shared headers
//! `kernel/syscall.h`, `stat.h`, `fcntl.h` and `fs.h`).
//!
//! The kernel compiles these files as `crate::abi`; the user library
//! (`user/src/lib.rs`) and the host tool `mkfs` (`mkfs/src/main.rs`)
//! compile the very same files with `#[path = ".../src/abi/mod.rs"] mod abi;`.
//! So they hold only constants and `#[repr(C)]` structs with no `crate::`
//! or `super::` paths, and build both `no_std` on riscv64 and on the host.
//! The values and layouts are xv6-riscv's: changing one breaks the user
//! ABI or the disk format (docs/kernel-contract.md, docs/filesystem.md).

pub mod fcntl;
pub mod fs_format;
pub mod stat;
pub mod syscalls;
