//! The on-disk format (xv6's `kernel/fs.h`): what `mkfs` writes and the
//! kernel's `fs.rs` reads, xv6-riscv's exactly.
//!
//! ```text
//! [ boot block | super block | log | inode blocks | free bit map | data blocks ]
//! ```

/// Root i-number.
pub const ROOTINO: u32 = 1;
/// Block size.
pub const BSIZE: usize = 1024;
/// The superblock's magic number.
pub const FSMAGIC: u32 = 0x1020_3040;
/// Direct block addresses in an inode.
pub const NDIRECT: usize = 12;
/// Block addresses in the indirect block.
pub const NINDIRECT: usize = BSIZE / 4;
/// Largest file, in blocks.
pub const MAXFILE: usize = NDIRECT + NINDIRECT;
/// Size of an on-disk inode.
pub const DINODE_SIZE: usize = 64;
/// Inodes per block.
pub const IPB: u32 = (BSIZE / DINODE_SIZE) as u32;
/// Bitmap bits per block.
pub const BPB: u32 = (BSIZE * 8) as u32;
/// A directory is a file holding a sequence of [`Dirent`]s; DIRSIZ is the
/// length of a name in one (not NUL-terminated when full).
pub const DIRSIZ: usize = 14;
/// Size of a directory entry on disk.
pub const DIRENT_SIZE: u32 = 16;

/// Disk layout:
/// `[ boot block | super block | log | inode blocks | free bit map | data blocks ]`
///
/// mkfs computes the super block and builds an initial file system. The
/// super block describes the disk layout: eight little-endian u32s at the
/// start of block 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuperBlock {
    /// Must be FSMAGIC.
    pub magic: u32,
    /// Size of file system image (blocks).
    pub size: u32,
    /// Number of data blocks.
    pub nblocks: u32,
    /// Number of inodes.
    pub ninodes: u32,
    /// Number of log blocks.
    pub nlog: u32,
    /// Block number of first log block.
    pub logstart: u32,
    /// Block number of first inode block.
    pub inodestart: u32,
    /// Block number of first free map block.
    pub bmapstart: u32,
}

impl SuperBlock {
    /// Block containing inode i.
    pub fn iblock(&self, i: u32) -> u32 {
        i / IPB + self.inodestart
    }
    /// Block of free map containing bit for block b.
    pub fn bblock(&self, b: u32) -> u32 {
        b / BPB + self.bmapstart
    }

    /// Blocks before the first data block.
    pub fn nmeta(&self) -> u32 {
        self.size - self.nblocks
    }

    /// The 32 bytes on disk, little-endian (block 1).
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

/// On-disk inode structure.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dinode {
    /// File type (0 = free).
    pub typ: i16,
    /// Major device number (T_DEVICE only).
    pub major: i16,
    /// Minor device number (T_DEVICE only).
    pub minor: i16,
    /// Number of links to inode in file system.
    pub nlink: i16,
    /// Size of file (bytes).
    pub size: u32,
    /// Data block addresses: NDIRECT direct ones, then the indirect block's.
    pub addrs: [u32; NDIRECT + 1],
}

impl Dinode {
    /// The 64 bytes on disk, little-endian.
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

    /// Decode [`Dinode::to_bytes`].
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

/// A directory entry on disk; inode number 0 marks a free slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dirent {
    pub inum: u16,
    pub name: [u8; DIRSIZ],
}

const _: () = assert!(core::mem::size_of::<SuperBlock>() == 32);
const _: () = assert!(core::mem::size_of::<Dinode>() == DINODE_SIZE);
const _: () = assert!(core::mem::size_of::<Dirent>() == DIRENT_SIZE as usize);

impl Dirent {
    /// The name, without its NUL padding.
    pub fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(DIRSIZ);
        &self.name[..n]
    }

    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), 16 bytes without padding.
        unsafe { core::slice::from_raw_parts(self as *const Dirent as *const u8, 16) }
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; any bytes are a valid Dirent.
        unsafe { core::slice::from_raw_parts_mut(self as *mut Dirent as *mut u8, 16) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::T_FILE;

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
