//! ls: list files, one per line as `name type inode size` (name padded to
//! DIRSIZ, as xv6 prints it); a directory lists its entries.

#![no_std]
#![no_main]

use user::alloc::vec::Vec;
use user::*;

entry!(main);

/// The last path element, padded with blanks to DIRSIZ.
fn fmtname(path: &[u8]) -> [u8; DIRSIZ] {
    let start = path.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    let name = &path[start..];
    let mut buf = [b' '; DIRSIZ];
    let n = name.len().min(DIRSIZ);
    buf[..n].copy_from_slice(&name[..n]);
    buf
}

fn stat_path(path: &[u8], st: &mut Stat) -> i32 {
    let Ok(p) = core::str::from_utf8(path) else {
        return -1;
    };
    let fd = open(p, O_RDONLY);
    if fd < 0 {
        return -1;
    }
    let r = fstat(fd, st);
    close(fd);
    r
}

fn show(path: &[u8], st: &Stat) {
    println!(
        "{} {} {} {}",
        Bytes(&fmtname(path)),
        st.typ,
        st.ino,
        st.size as u32
    );
}

fn ls(path: &str) {
    let fd = open(path, O_RDONLY);
    if fd < 0 {
        eprintln!("ls: cannot open {}", path);
        return;
    }
    let mut st = Stat::default();
    if fstat(fd, &mut st) < 0 {
        eprintln!("ls: cannot stat {}", path);
        close(fd);
        return;
    }
    match st.typ {
        T_DIR => {
            if path.len() + 1 + DIRSIZ + 1 > 512 {
                println!("ls: path too long");
            } else {
                let mut de = Dirent::default();
                while read(fd, de.as_bytes_mut()) == 16 {
                    if de.inum == 0 {
                        continue;
                    }
                    let mut buf: Vec<u8> = Vec::from(path.as_bytes());
                    buf.push(b'/');
                    buf.extend_from_slice(de.name());
                    let mut est = Stat::default();
                    if stat_path(&buf, &mut est) < 0 {
                        println!("ls: cannot stat {}", Bytes(&buf));
                        continue;
                    }
                    show(&buf, &est);
                }
            }
        }
        _ => show(path.as_bytes(), &st),
    }
    close(fd);
}

fn main(args: Args) -> i32 {
    if args.len() < 2 {
        ls(".");
        return 0;
    }
    for p in args.iter().skip(1) {
        ls(p);
    }
    0
}
