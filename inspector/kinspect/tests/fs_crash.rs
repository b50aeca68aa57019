//! The file system survives power loss: QEMU is killed while `stressfs`
//! writes, and the disk image is then checked by a small fsck written here
//! from xv6's on-disk format (independent of the kernel's code), both
//! after replaying the log on the host and after the kernel itself has
//! rebooted on the image and recovered.
//!
//! Each 512-byte `write` is one log transaction, so after recovery every
//! stressfs file must be a whole number of writes long, all of it `a`s.
//!
//! `FS_CRASH_KERNEL=path` runs the crash test against another kernel ELF
//! (a deliberately broken one, to see this test fail).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kinspect_testkit::{fs_img, kernel_elf};

const BSIZE: usize = 1024;

/// QEMU on `img` with xv6-riscv's command line, console on pipes.
struct Qemu {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Qemu {
    fn boot(img: &Path) -> Qemu {
        let mut child = Command::new("qemu-system-riscv64")
            .args(["-machine", "virt", "-bios", "none", "-kernel"])
            .arg(std::env::var_os("FS_CRASH_KERNEL").map_or_else(kernel_elf, PathBuf::from))
            .args(["-m", "128M", "-smp", "3", "-nographic"])
            .args(["-global", "virtio-mmio.force-legacy=false", "-drive"])
            .arg(format!("file={},if=none,format=raw,id=x0", img.display()))
            .args([
                "-device",
                "virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting qemu-system-riscv64");
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let mut stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Qemu { child, out }
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Wait until the console shows `needle` `count` times.
    fn wait_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.console().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; console:\n{}",
                self.console()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn send(&mut self, s: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Power loss: SIGKILL, no chance to finish anything.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.console()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a small, independent fsck -------------------------------------------

/// Fail the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

struct Image(Vec<u8>);

struct Sb {
    size: u32,
    nblocks: u32,
    ninodes: u32,
    nlog: u32,
    logstart: u32,
    inodestart: u32,
    bmapstart: u32,
}

struct Dinode {
    typ: u16,
    nlink: u16,
    size: u32,
    addrs: [u32; 13],
}

impl Image {
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
    }
    fn block(&self, b: u32) -> &[u8] {
        &self.0[b as usize * BSIZE..(b as usize + 1) * BSIZE]
    }
    fn sb(&self) -> Sb {
        let f = |i: usize| self.u32_at(BSIZE + 4 * i);
        assert_eq!(f(0), 0x1020_3040, "bad superblock magic");
        Sb {
            size: f(1),
            nblocks: f(2),
            ninodes: f(3),
            nlog: f(4),
            logstart: f(5),
            inodestart: f(6),
            bmapstart: f(7),
        }
    }
    fn inode(&self, sb: &Sb, inum: u32) -> Dinode {
        let off = (sb.inodestart + inum / 16) as usize * BSIZE + (inum % 16) as usize * 64;
        let h = |o: usize| u16::from_le_bytes([self.0[off + o], self.0[off + o + 1]]);
        let mut addrs = [0u32; 13];
        for (i, a) in addrs.iter_mut().enumerate() {
            *a = self.u32_at(off + 12 + 4 * i);
        }
        Dinode {
            typ: h(0),
            nlink: h(6),
            size: self.u32_at(off + 8),
            addrs,
        }
    }
    /// Committed-but-uninstalled log blocks, as the kernel's recovery
    /// would copy them; returns how many there were.
    fn replay_log(&mut self, sb: &Sb) -> usize {
        let head = sb.logstart as usize * BSIZE;
        let n = self.u32_at(head) as usize;
        assert!(n < sb.nlog as usize, "log header claims {n} blocks");
        for i in 0..n {
            let dst = self.u32_at(head + 4 + 4 * i);
            assert!(dst < sb.size, "log names block {dst}");
            let src = self.block(sb.logstart + 1 + i as u32).to_vec();
            let d = dst as usize * BSIZE;
            self.0[d..d + BSIZE].copy_from_slice(&src);
        }
        self.0[head..head + 4].copy_from_slice(&0u32.to_le_bytes());
        n
    }
    /// The data blocks of an inode (direct, indirect, and the indirect
    /// block itself), in file order, plus the indirect block if any.
    fn blocks(&self, d: &Dinode) -> (Vec<u32>, Option<u32>) {
        let nb = (d.size as usize).div_ceil(BSIZE);
        let mut v = Vec::new();
        for n in 0..nb {
            let b = if n < 12 {
                d.addrs[n]
            } else {
                self.u32_at(d.addrs[12] as usize * BSIZE + (n - 12) * 4)
            };
            v.push(b);
        }
        let ind = (d.addrs[12] != 0).then_some(d.addrs[12]);
        (v, ind)
    }
    fn contents(&self, d: &Dinode) -> Vec<u8> {
        let mut out = Vec::new();
        for b in self.blocks(d).0 {
            out.extend_from_slice(self.block(b));
        }
        out.truncate(d.size as usize);
        out
    }
    fn bit(&self, sb: &Sb, b: u32) -> bool {
        self.0[sb.bmapstart as usize * BSIZE + b as usize / 8] & (1 << (b % 8)) != 0
    }

    /// Check the file system; returns the root directory's (name, inum).
    fn fsck(&self) -> Result<Vec<(String, u32)>, String> {
        let sb = self.sb();
        ensure!(
            sb.size as usize * BSIZE == self.0.len(),
            "image is not {} blocks",
            sb.size
        );
        let nmeta = sb.size - sb.nblocks;
        let mut owner = vec![0u32; sb.size as usize];
        let mut refs = vec![0u32; sb.ninodes as usize];
        let mut seen = vec![false; sb.ninodes as usize];
        let mut root_entries = Vec::new();
        let mut stack = vec![1u32];
        seen[1] = true;
        refs[1] = 1; // the root's implicit link
        while let Some(dir) = stack.pop() {
            let d = self.inode(&sb, dir);
            ensure!(
                d.typ == 1,
                "inode {dir} reached as a directory is type {}",
                d.typ
            );
            let data = self.contents(&d);
            ensure!(data.len() % 16 == 0, "directory {dir} size {}", d.size);
            for e in data.chunks(16) {
                let inum = u16::from_le_bytes([e[0], e[1]]) as u32;
                if inum == 0 {
                    continue;
                }
                let name: Vec<u8> = e[2..].iter().copied().take_while(|&c| c != 0).collect();
                let name = String::from_utf8_lossy(&name).into_owned();
                ensure!(inum < sb.ninodes, "{dir}/{name} -> inode {inum}");
                let t = self.inode(&sb, inum);
                ensure!(t.typ != 0, "{dir}/{name} names free inode {inum}");
                if dir == 1 {
                    root_entries.push((name.clone(), inum));
                }
                if name == "." {
                    ensure!(inum == dir, "{dir}/. is {inum}");
                    continue;
                }
                if name == ".." && dir == 1 {
                    ensure!(inum == 1, "/.. is {inum}");
                    continue;
                }
                refs[inum as usize] += 1;
                if name != ".." && t.typ == 1 {
                    ensure!(!seen[inum as usize], "directory {inum} linked twice");
                }
                if name != ".." && !seen[inum as usize] {
                    seen[inum as usize] = true;
                    if t.typ == 1 {
                        stack.push(inum);
                    }
                }
            }
        }
        for inum in 1..sb.ninodes {
            let d = self.inode(&sb, inum);
            if d.typ == 0 {
                continue;
            }
            if seen[inum as usize] {
                ensure!(
                    d.nlink as u32 == refs[inum as usize],
                    "inode {inum}: nlink {} but {} links",
                    d.nlink,
                    refs[inum as usize]
                );
            } else {
                // xv6 may leave an allocated inode that nothing names only
                // if it had no links (open at the crash, then unlinked).
                ensure!(d.nlink == 0, "inode {inum} is allocated but unreachable");
            }
            ensure!(
                d.size as usize <= 268 * BSIZE,
                "inode {inum} size {}",
                d.size
            );
            let (data, ind) = self.blocks(&d);
            for b in data.into_iter().chain(ind) {
                ensure!(b >= nmeta && b < sb.size, "inode {inum} uses block {b}");
                ensure!(
                    owner[b as usize] == 0,
                    "block {b} used by inodes {} and {inum}",
                    owner[b as usize]
                );
                owner[b as usize] = inum;
            }
        }
        for b in 0..sb.size {
            let used = b < nmeta || owner[b as usize] != 0;
            ensure!(
                self.bit(&sb, b) == used,
                "block {b}: bitmap says {}, inodes say {}",
                self.bit(&sb, b),
                used
            );
        }
        Ok(root_entries)
    }
}

fn check_stressfs_files(img: &Image) -> Vec<u32> {
    let sb = img.sb();
    let mut sizes = Vec::new();
    for (name, inum) in img.fsck().unwrap_or_else(|e| panic!("fsck: {e}")) {
        if name.starts_with("stressfs") && name != "stressfs" {
            let d = img.inode(&sb, inum);
            let data = img.contents(&d);
            assert_eq!(
                data.len() % 512,
                0,
                "{name}: {} bytes is not whole writes",
                data.len()
            );
            assert!(
                data.iter().all(|&c| c == b'a'),
                "{name}: holds bytes stressfs never wrote"
            );
            sizes.push(d.size);
        }
    }
    sizes
}

/// A private copy of fs.img, removed when dropped (also when a check fails).
struct TempImage(PathBuf);

impl TempImage {
    fn new(tag: &str) -> TempImage {
        let p = std::env::temp_dir().join(format!("fs-crash-{}-{tag}.img", std::process::id()));
        std::fs::copy(fs_img(), &p).expect("copying fs.img");
        TempImage(p)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn fsck_accepts_a_fresh_image() {
    let img = Image(std::fs::read(fs_img()).unwrap());
    let names: Vec<String> = img.fsck().unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"usertests".to_string()), "{names:?}");
}

#[test]
fn fsck_catches_a_corrupt_bitmap() {
    let mut img = Image(std::fs::read(fs_img()).unwrap());
    let sb = img.sb();
    // Free a block the root directory uses.
    let root = img.inode(&sb, 1);
    let b = root.addrs[0];
    img.0[sb.bmapstart as usize * BSIZE + b as usize / 8] &= !(1 << (b % 8));
    let e = img
        .fsck()
        .expect_err("fsck missed a used block marked free");
    assert!(e.contains(&format!("block {b}: bitmap says false")), "{e}");
}

#[test]
fn power_loss_during_writes_leaves_a_consistent_disk() {
    // Several crash points: right as the writers start, and a little later.
    for (round, delay_ms) in [0u64, 20, 40, 80, 120, 200].into_iter().enumerate() {
        let tmp = TempImage::new(&format!("r{round}"));
        let path = tmp.0.clone();
        let mut q = Qemu::boot(&path);
        q.wait_count("$ ", 1, Duration::from_secs(60));
        q.send("stressfs\n");
        q.wait_count("write ", 3, Duration::from_secs(60));
        thread::sleep(Duration::from_millis(delay_ms));
        let console = q.kill();
        assert!(!console.contains("panic"), "{console}");

        // 1. Replay the log on the host, as recovery would, and check.
        let mut img = Image(std::fs::read(&path).unwrap());
        let sb = img.sb();
        let replayed = img.replay_log(&sb);
        let sizes = check_stressfs_files(&img);
        eprintln!("round {round}: crash after {delay_ms} ms, {replayed} log blocks to replay, stressfs files {sizes:?}");

        // 2. Let the kernel recover, use the disk, and check again.
        let mut q = Qemu::boot(&path);
        q.wait_count("$ ", 1, Duration::from_secs(60));
        q.send("echo after > after; cat after\n");
        q.wait_count("after\n", 1, Duration::from_secs(60));
        q.wait_count("$ ", 2, Duration::from_secs(60));
        let console = q.kill();
        assert!(!console.contains("panic"), "{console}");
        let img = Image(std::fs::read(&path).unwrap());
        let head = img.u32_at(img.sb().logstart as usize * BSIZE);
        assert_eq!(
            head, 0,
            "the log is not empty after the kernel recovered and went idle"
        );
        let after = check_stressfs_files(&img);
        assert_eq!(
            after, sizes,
            "the kernel's recovery disagrees with the host's replay"
        );
    }
}
