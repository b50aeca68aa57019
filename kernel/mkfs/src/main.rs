//! `mkfs fs.img file...`: make the kernel's disk image, in xv6-riscv's
//! on-disk format, holding the given files in its root directory.
//!
//! `cargo xtask build` runs it with the README and every user program; the
//! kernel's `fs.rs` reads the result (so does a stock xv6-riscv kernel).
//! Each file is stored under its base name with a leading `_` dropped.

// The on-disk format's one definition: the `abi` crate (kernel/abi/).
use ::abi;
mod image;
mod layout;

use std::process::ExitCode;

use image::{short_name, Image};

fn run(args: &[String]) -> Result<(), String> {
    let [img_path, files @ ..] = args else {
        return Err("usage: mkfs fs.img files...".into());
    };
    let mut img = Image::new();
    for path in files {
        let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        img.add_file(short_name(path), &data)
            .map_err(|e| format!("{path}: {e}"))?;
    }
    let free = img.free_blocks();
    std::fs::write(img_path, img.finish()).map_err(|e| format!("{img_path}: {e}"))?;
    let sb = layout::xv6_superblock();
    eprintln!(
        "mkfs: {img_path}: {} files, nmeta {} (boot, super, log blocks {} inode blocks {}, bitmap blocks {}) blocks {} total {}, {free} data blocks free",
        files.len(),
        sb.nmeta(),
        sb.nlog,
        sb.bmapstart - sb.inodestart,
        sb.nmeta() - sb.bmapstart,
        sb.nblocks,
        sb.size
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkfs: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    //! Build images through the command-line entry point, then read them
    //! back with a small reader written from xv6's `fs.h` and nothing else.

    use super::run;
    use std::path::PathBuf;

    const BSIZE: usize = 1024;

    struct Reader(Vec<u8>);

    impl Reader {
        fn u32(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
        }
        fn u16(&self, off: usize) -> u16 {
            u16::from_le_bytes(self.0[off..off + 2].try_into().unwrap())
        }
        fn sb(&self, field: usize) -> u32 {
            self.u32(BSIZE + field * 4)
        }
        /// (type, nlink, size, addrs[13]) of inode `inum`.
        fn inode(&self, inum: u32) -> (u16, u16, u32, Vec<u32>) {
            let inodestart = self.sb(6) as usize;
            let off = (inodestart + inum as usize / 16) * BSIZE + (inum as usize % 16) * 64;
            let addrs = (0..13).map(|i| self.u32(off + 12 + 4 * i)).collect();
            (self.u16(off), self.u16(off + 6), self.u32(off + 8), addrs)
        }
        fn block_of(&self, addrs: &[u32], n: usize) -> u32 {
            if n < 12 {
                addrs[n]
            } else {
                self.u32(addrs[12] as usize * BSIZE + (n - 12) * 4)
            }
        }
        fn contents(&self, inum: u32) -> Vec<u8> {
            let (_, _, size, addrs) = self.inode(inum);
            let mut out = Vec::new();
            let mut n = 0;
            while out.len() < size as usize {
                let b = self.block_of(&addrs, n) as usize;
                let take = (size as usize - out.len()).min(BSIZE);
                out.extend_from_slice(&self.0[b * BSIZE..b * BSIZE + take]);
                n += 1;
            }
            out
        }
        fn dir(&self, inum: u32) -> Vec<(u16, String)> {
            self.contents(inum)
                .chunks(16)
                .filter(|e| e[0] != 0 || e[1] != 0)
                .map(|e| {
                    let name: Vec<u8> = e[2..].iter().copied().take_while(|&c| c != 0).collect();
                    (
                        u16::from_le_bytes([e[0], e[1]]),
                        String::from_utf8(name).unwrap(),
                    )
                })
                .collect()
        }
        fn bit(&self, b: u32) -> bool {
            let bmap = self.sb(7) as usize * BSIZE;
            self.0[bmap + b as usize / 8] & (1 << (b % 8)) != 0
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mkfs-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn make(tag: &str, files: &[(&str, Vec<u8>)]) -> Result<Reader, String> {
        let dir = tempdir(tag);
        let img = dir.join("fs.img");
        let mut args = vec![img.display().to_string()];
        for (name, data) in files {
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            args.push(p.display().to_string());
        }
        let r = run(&args).map(|()| Reader(std::fs::read(&img).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn superblock_is_xv6s() {
        let r = make("sb", &[]).unwrap();
        assert_eq!(r.0.len(), 2000 * BSIZE);
        // magic size nblocks ninodes nlog logstart inodestart bmapstart
        let sb: Vec<u32> = (0..8).map(|i| r.sb(i)).collect();
        assert_eq!(sb, [0x10203040, 2000, 1954, 200, 30, 2, 32, 45]);
        assert!(r.0[..BSIZE].iter().all(|&b| b == 0), "boot block is zero");
    }

    #[test]
    fn root_directory_has_dot_and_dotdot_and_files() {
        let big = pattern(70_000, 7); // needs the indirect block
        let r = make(
            "root",
            &[
                ("README.md", b"hello xv6\n".to_vec()),
                ("_cat", pattern(5000, 1)),
                ("_usertests", big.clone()),
            ],
        )
        .unwrap();
        let (typ, nlink, size, _) = r.inode(1);
        assert_eq!((typ, nlink), (1, 1), "root is a directory");
        assert_eq!(size % BSIZE as u32, 0, "root's size rounded to a block");
        let names = r.dir(1);
        assert_eq!(
            names,
            [
                (1, ".".to_string()),
                (1, "..".to_string()),
                (2, "README.md".to_string()),
                (3, "cat".to_string()),
                (4, "usertests".to_string()),
            ]
        );
        assert_eq!(r.inode(2).0, 2, "a plain file");
        assert_eq!(r.contents(2), b"hello xv6\n");
        assert_eq!(r.contents(3), pattern(5000, 1));
        assert_eq!(r.inode(4).2, 70_000);
        assert_ne!(r.inode(4).3[12], 0, "the indirect block is used");
        assert_eq!(r.contents(4), big);
        assert_eq!(r.inode(5).0, 0, "the next inode is free");
    }

    #[test]
    fn bitmap_marks_exactly_the_used_blocks() {
        let r = make("bitmap", &[("a", pattern(3000, 2))]).unwrap();
        // 46 metadata blocks, root dir 1 block, "a" 3 blocks.
        let used = 46 + 1 + 3;
        for b in 0..2000 {
            assert_eq!(r.bit(b), b < used, "block {b}");
        }
        // Every block an inode names is below the free line.
        for inum in 1..=2 {
            let (_, _, size, addrs) = r.inode(inum);
            for n in 0..(size as usize).div_ceil(BSIZE) {
                let b = r.block_of(&addrs, n);
                assert!((46..used).contains(&b), "inode {inum} block {b}");
            }
        }
    }

    #[test]
    fn errors_are_reported_not_panics() {
        assert!(run(&[]).unwrap_err().contains("usage"));
        let e = make("toolong", &[("fifteen_letters", vec![1])])
            .err()
            .unwrap();
        assert!(e.contains("1 to 14 bytes"), "{e}");
        let e = make("huge", &[("huge", vec![0; 268 * BSIZE + 1])])
            .err()
            .unwrap();
        assert!(e.contains("larger than the largest file"), "{e}");
        let files: Vec<(String, Vec<u8>)> = (0..8)
            .map(|i| (format!("f{i}"), vec![9u8; 268 * BSIZE]))
            .collect();
        let refs: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        let e = make("full", &refs).err().unwrap();
        assert!(e.contains("out of data blocks"), "{e}");
        let e = run(&["/nonexistent/dir/fs.img".into(), "/nonexistent/file".into()]).unwrap_err();
        assert!(e.contains("/nonexistent/file"), "{e}");
    }

    #[test]
    fn names_are_base_names_without_underscore() {
        use super::image::short_name;
        assert_eq!(short_name("target/riscv/release/_sh"), "sh");
        assert_eq!(short_name("/a/b/README.md"), "README.md");
        assert_eq!(short_name("ls"), "ls");
    }
}
