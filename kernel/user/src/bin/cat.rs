//! cat: copy files (or standard input) to standard output.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn cat(fd: i32) {
    let mut buf = [0u8; 512];
    loop {
        let n = read(fd, &mut buf);
        if n == 0 {
            return;
        }
        if n < 0 {
            eprintln!("cat: read error");
            exit(1);
        }
        if write(1, &buf[..n as usize]) != n {
            eprintln!("cat: write error");
            exit(1);
        }
    }
}

fn main(args: Args) -> i32 {
    if args.len() <= 1 {
        cat(0);
        return 0;
    }
    for name in args.iter().skip(1) {
        let fd = open(name, O_RDONLY);
        if fd < 0 {
            eprintln!("cat: cannot open {}", name);
            exit(1);
        }
        cat(fd);
        close(fd);
    }
    0
}
