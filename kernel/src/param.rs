//! Compile-time limits, the same numbers as xv6-riscv's param.h.

/// Maximum number of processes (slots in `proc`).
pub const NPROC: usize = 64;
/// Maximum number of harts (slots in `cpus`).
pub const NCPU: usize = 8;
/// Open files per process.
pub const NOFILE: usize = 16;
/// Open files per system.
pub const NFILE: usize = 100;
/// Maximum number of active i-nodes.
pub const NINODE: usize = 50;
/// Maximum major device number.
pub const NDEV: usize = 10;
/// Device number of the file system root disk.
pub const ROOTDEV: u32 = 1;
/// Maximum exec arguments.
pub const MAXARG: usize = 32;
/// Max number of blocks any FS op writes.
pub const MAXOPBLOCKS: usize = 10;
/// Max data blocks in on-disk log.
pub const LOGSIZE: usize = MAXOPBLOCKS * 3;
/// Size of the disk block cache.
pub const NBUF: usize = MAXOPBLOCKS * 3;
/// Size of the file system in blocks.
pub const FSSIZE: usize = 2000;
/// Maximum file path name.
pub const MAXPATH: usize = 128;
/// User stack pages (xv6-riscv 2024 uses 1; plus one guard page below).
pub const USERSTACK: usize = 1;
