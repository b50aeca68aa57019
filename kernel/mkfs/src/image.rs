//! Building a file system image in memory, the way xv6's `mkfs.c` does:
//! zero every block, write the superblock, make the root directory, append
//! each file, then mark every block used so far in the free bitmap.

use std::fmt;

use crate::layout::*;

/// Why an image cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// More files than inodes.
    OutOfInodes,
    /// The data blocks ran out.
    OutOfBlocks,
    /// A file is larger than MAXFILE blocks.
    TooBig { name: String, size: usize },
    /// A name longer than DIRSIZ, empty, or with a '/'.
    BadName(String),
    /// Two files with the same name.
    Duplicate(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OutOfInodes => write!(f, "out of inodes ({NINODES})"),
            Error::OutOfBlocks => write!(f, "out of data blocks (image is {FSSIZE} blocks)"),
            Error::TooBig { name, size } => write!(
                f,
                "{name}: {size} bytes is larger than the largest file ({} bytes)",
                MAXFILE * BSIZE
            ),
            Error::BadName(n) => write!(f, "{n:?}: a name must be 1 to {DIRSIZ} bytes without '/'"),
            Error::Duplicate(n) => write!(f, "{n}: two files with this name"),
        }
    }
}

impl std::error::Error for Error {}

/// An image being built.
pub struct Image {
    sb: SuperBlock,
    disk: Vec<u8>,
    freeinode: u32,
    freeblock: u32,
    names: Vec<Vec<u8>>,
}

impl Image {
    /// An empty file system: superblock and a root directory holding `.` and `..`.
    pub fn new() -> Image {
        let sb = xv6_superblock();
        let mut img = Image {
            sb,
            disk: vec![0u8; FSSIZE as usize * BSIZE],
            freeinode: 1,
            freeblock: sb.nmeta(),
            names: Vec::new(),
        };
        img.block_mut(1)[..32].copy_from_slice(&sb.to_bytes());
        let root = img.ialloc(T_DIR).expect("the first inode is free");
        assert_eq!(root, ROOTINO);
        img.iappend(root, &dirent_bytes(root as u16, b"."))
            .expect("an empty image has room");
        img.iappend(root, &dirent_bytes(root as u16, b".."))
            .expect("an empty image has room");
        img
    }

    /// Add a file to the root directory under `name`.
    pub fn add_file(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        let nb = name.as_bytes();
        if nb.is_empty() || nb.len() > DIRSIZ || nb.contains(&b'/') {
            return Err(Error::BadName(name.to_string()));
        }
        if self.names.iter().any(|n| n == nb) {
            return Err(Error::Duplicate(name.to_string()));
        }
        if data.len() > MAXFILE * BSIZE {
            return Err(Error::TooBig {
                name: name.to_string(),
                size: data.len(),
            });
        }
        let inum = self.ialloc(T_FILE)?;
        self.iappend(ROOTINO, &dirent_bytes(inum as u16, nb))?;
        self.iappend(inum, data)?;
        self.names.push(nb.to_vec());
        Ok(())
    }

    /// Finish: round the root directory's size up to a whole block (as
    /// mkfs.c does) and mark blocks 0..freeblock used in the bitmap.
    pub fn finish(mut self) -> Vec<u8> {
        let mut din = self.rinode(ROOTINO);
        din.size = (din.size / BSIZE as u32 + 1) * BSIZE as u32;
        self.winode(ROOTINO, din);
        let used = self.freeblock;
        assert!(used < BPB, "one bitmap block covers the whole image");
        let bmap = self.sb.bmapstart;
        let b = self.block_mut(bmap);
        for i in 0..used as usize {
            b[i / 8] |= 1 << (i % 8);
        }
        self.disk
    }

    /// Data blocks still free.
    pub fn free_blocks(&self) -> u32 {
        self.sb.size - self.freeblock
    }

    fn block_mut(&mut self, bno: u32) -> &mut [u8] {
        let o = bno as usize * BSIZE;
        &mut self.disk[o..o + BSIZE]
    }

    fn inode_offset(&self, inum: u32) -> usize {
        let bno = self.sb.inodestart + inum / IPB;
        bno as usize * BSIZE + (inum % IPB) as usize * DINODE_SIZE
    }

    fn rinode(&self, inum: u32) -> Dinode {
        let o = self.inode_offset(inum);
        let mut b = [0u8; DINODE_SIZE];
        b.copy_from_slice(&self.disk[o..o + DINODE_SIZE]);
        Dinode::from_bytes(&b)
    }

    fn winode(&mut self, inum: u32, d: Dinode) {
        let o = self.inode_offset(inum);
        self.disk[o..o + DINODE_SIZE].copy_from_slice(&d.to_bytes());
    }

    fn ialloc(&mut self, typ: i16) -> Result<u32, Error> {
        if self.freeinode >= NINODES {
            return Err(Error::OutOfInodes);
        }
        let inum = self.freeinode;
        self.freeinode += 1;
        self.winode(
            inum,
            Dinode {
                typ,
                nlink: 1,
                ..Dinode::default()
            },
        );
        Ok(inum)
    }

    fn balloc(&mut self) -> Result<u32, Error> {
        if self.freeblock >= self.sb.size {
            return Err(Error::OutOfBlocks);
        }
        let b = self.freeblock;
        self.freeblock += 1;
        Ok(b)
    }

    /// Append `data` to inode `inum`, allocating blocks (and the indirect
    /// block) as needed.
    fn iappend(&mut self, inum: u32, mut data: &[u8]) -> Result<(), Error> {
        let mut din = self.rinode(inum);
        let mut off = din.size as usize;
        while !data.is_empty() {
            let fbn = off / BSIZE;
            if fbn >= MAXFILE {
                return Err(Error::OutOfBlocks);
            }
            let bno = if fbn < NDIRECT {
                if din.addrs[fbn] == 0 {
                    din.addrs[fbn] = self.balloc()?;
                }
                din.addrs[fbn]
            } else {
                if din.addrs[NDIRECT] == 0 {
                    din.addrs[NDIRECT] = self.balloc()?;
                }
                let ind = din.addrs[NDIRECT] as usize * BSIZE;
                let slot = ind + (fbn - NDIRECT) * 4;
                let mut x = u32::from_le_bytes(
                    self.disk[slot..slot + 4]
                        .try_into()
                        .expect("a 4-byte slice"),
                );
                if x == 0 {
                    x = self.balloc()?;
                    self.disk[slot..slot + 4].copy_from_slice(&x.to_le_bytes());
                }
                x
            };
            let boff = off % BSIZE;
            let n = data.len().min(BSIZE - boff);
            let o = bno as usize * BSIZE + boff;
            self.disk[o..o + n].copy_from_slice(&data[..n]);
            off += n;
            data = &data[n..];
        }
        din.size = off as u32;
        self.winode(inum, din);
        Ok(())
    }
}

impl Default for Image {
    fn default() -> Self {
        Image::new()
    }
}

/// The name a file is stored under: its base name, a leading `_` dropped
/// (xv6's Makefile names user programs `_cat`, `_ls`, ...).
pub fn short_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.strip_prefix('_').unwrap_or(base)
}
