//! The on-disk format, xv6-riscv's exactly (`kernel/fs.h`, `kernel/param.h`).
//!
//! The constants and structs, and their little-endian encoding, are the
//! `abi` crate's (`kernel/abi/src/fs_format.rs`, re-exported here); this
//! file adds mkfs's sizes (param.h), the superblock they give, and
//! directory entries as bytes.
//! A disk made here boots a stock xv6-riscv kernel too.
//!
//! ```text
//! block: 0      1       2 .. 31   32 .. 44      45       46 .. 1999
//!       [boot | super | log     | inode blocks | bitmap | data      ]
//! ```

pub use crate::abi::fs_format::*;
pub use crate::abi::stat::{T_DIR, T_FILE};

/// Size of the file system image in blocks.
pub const FSSIZE: u32 = 2000;
/// Max data blocks any one file-system operation writes.
pub const MAXOPBLOCKS: u32 = 10;
/// Blocks in the on-disk log (its header block included).
pub const LOGSIZE: u32 = MAXOPBLOCKS * 3;
/// Number of inodes.
pub const NINODES: u32 = 200;

/// The superblock mkfs.c computes for FSSIZE, NINODES and LOGSIZE.
pub fn xv6_superblock() -> SuperBlock {
    let nbitmap = FSSIZE / BPB + 1;
    let ninodeblocks = NINODES / IPB + 1;
    let nlog = LOGSIZE;
    let nmeta = 2 + nlog + ninodeblocks + nbitmap;
    SuperBlock {
        magic: FSMAGIC,
        size: FSSIZE,
        nblocks: FSSIZE - nmeta,
        ninodes: NINODES,
        nlog,
        logstart: 2,
        inodestart: 2 + nlog,
        bmapstart: 2 + nlog + ninodeblocks,
    }
}

/// A directory entry's bytes: inum, then the name NUL-padded to DIRSIZ.
pub fn dirent_bytes(inum: u16, name: &[u8]) -> [u8; DIRENT_SIZE as usize] {
    let mut b = [0u8; DIRENT_SIZE as usize];
    b[0..2].copy_from_slice(&inum.to_le_bytes());
    let n = name.len().min(DIRSIZ);
    b[2..2 + n].copy_from_slice(&name[..n]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_xv6_mkfs() {
        // mkfs.c prints: "nmeta 46 (boot, super, log blocks 30 inode blocks 13,
        // bitmap blocks 1) blocks 1954 total 2000"
        let sb = xv6_superblock();
        assert_eq!(sb.nmeta(), 46);
        assert_eq!(sb.nblocks, 1954);
        assert_eq!((sb.logstart, sb.inodestart, sb.bmapstart), (2, 32, 45));
    }
}
