//! The on-disk format, xv6-riscv's exactly (`kernel/fs.h`, `kernel/param.h`).
//!
//! The constants and structs are the kernel's own, `kernel/src/abi/fs_format.rs`
//! (re-exported here); this file adds mkfs's sizes (param.h) and the
//! little-endian encoding of the superblock, inodes and directory entries.
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

impl SuperBlock {
    /// The layout mkfs.c computes for FSSIZE, NINODES and LOGSIZE.
    pub fn xv6() -> SuperBlock {
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

    /// Blocks before the first data block.
    pub fn nmeta(&self) -> u32 {
        self.size - self.nblocks
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        let fields = [
            self.magic,
            self.size,
            self.nblocks,
            self.ninodes,
            self.nlog,
            self.logstart,
            self.inodestart,
            self.bmapstart,
        ];
        for (i, f) in fields.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&f.to_le_bytes());
        }
        b
    }
}

impl Dinode {
    pub fn to_bytes(self) -> [u8; DINODE_SIZE] {
        let mut b = [0u8; DINODE_SIZE];
        b[0..2].copy_from_slice(&self.typ.to_le_bytes());
        b[2..4].copy_from_slice(&self.major.to_le_bytes());
        b[4..6].copy_from_slice(&self.minor.to_le_bytes());
        b[6..8].copy_from_slice(&self.nlink.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        for (i, a) in self.addrs.iter().enumerate() {
            b[12 + i * 4..16 + i * 4].copy_from_slice(&a.to_le_bytes());
        }
        b
    }

    pub fn from_bytes(b: &[u8; DINODE_SIZE]) -> Dinode {
        let i16_at = |o: usize| i16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut addrs = [0u32; NDIRECT + 1];
        for (i, a) in addrs.iter_mut().enumerate() {
            *a = u32_at(12 + i * 4);
        }
        Dinode {
            typ: i16_at(0),
            major: i16_at(2),
            minor: i16_at(4),
            nlink: i16_at(6),
            size: u32_at(8),
            addrs,
        }
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
        let sb = SuperBlock::xv6();
        assert_eq!(sb.nmeta(), 46);
        assert_eq!(sb.nblocks, 1954);
        assert_eq!((sb.logstart, sb.inodestart, sb.bmapstart), (2, 32, 45));
    }

    #[test]
    fn dinode_round_trips_and_is_64_bytes() {
        let mut d = Dinode {
            typ: T_FILE,
            nlink: 1,
            size: 12345,
            ..Dinode::default()
        };
        d.addrs[NDIRECT] = 0xdead;
        let b = d.to_bytes();
        assert_eq!(&b[60..64], &0xdeadu32.to_le_bytes());
        assert_eq!(Dinode::from_bytes(&b), d);
    }
}
