//! wc: count lines, words and bytes, printed as `lines words bytes name`.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn wc(fd: i32, name: &str) {
    let mut buf = [0u8; 512];
    let (mut l, mut w, mut c) = (0usize, 0usize, 0usize);
    let mut inword = false;
    loop {
        let n = read(fd, &mut buf);
        if n == 0 {
            break;
        }
        if n < 0 {
            println!("wc: read error");
            exit(1);
        }
        for &b in &buf[..n as usize] {
            c += 1;
            if b == b'\n' {
                l += 1;
            }
            if b" \r\t\n\x0b".contains(&b) {
                inword = false;
            } else if !inword {
                w += 1;
                inword = true;
            }
        }
    }
    println!("{} {} {} {}", l, w, c, name);
}

fn main(args: Args) -> i32 {
    if args.len() <= 1 {
        wc(0, "");
        return 0;
    }
    for name in args.iter().skip(1) {
        let fd = open(name, O_RDONLY);
        if fd < 0 {
            println!("wc: cannot open {}", name);
            exit(1);
        }
        wc(fd, name);
        close(fd);
    }
    0
}
