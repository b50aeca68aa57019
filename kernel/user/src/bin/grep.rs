//! grep: print the lines that match a regular expression, using Kernighan
//! and Pike's little matcher (`c`, `.`, `*`, `^`, `$`), as xv6 does.

#![no_std]
#![no_main]

use user::alloc::vec;
use user::*;

entry!(main);

fn grep(pattern: &[u8], fd: i32) {
    let mut buf = vec![0u8; 1024];
    let mut m = 0;
    loop {
        if m == buf.len() {
            // A line longer than the buffer: drop it, as xv6 does.
            m = 0;
        }
        let n = read(fd, &mut buf[m..]);
        if n <= 0 {
            break;
        }
        m += n as usize;
        let mut start = 0;
        while let Some(nl) = buf[start..m].iter().position(|&c| c == b'\n') {
            let line = &buf[start..start + nl];
            if is_match(pattern, line) {
                write(1, &buf[start..start + nl + 1]);
            }
            start += nl + 1;
        }
        buf.copy_within(start..m, 0);
        m -= start;
    }
}

fn main(args: Args) -> i32 {
    if args.len() <= 1 {
        eprintln!("usage: grep pattern [file ...]");
        exit(1);
    }
    let pattern = args.bytes(1).unwrap_or(b"");
    if args.len() <= 2 {
        grep(pattern, 0);
        return 0;
    }
    for name in args.iter().skip(2) {
        let fd = open(name, O_RDONLY);
        if fd < 0 {
            println!("grep: cannot open {}", name);
            exit(1);
        }
        grep(pattern, fd);
        close(fd);
    }
    0
}

/// Does `re` match anywhere in `text`?
fn is_match(re: &[u8], text: &[u8]) -> bool {
    if let Some(rest) = re.strip_prefix(b"^") {
        return match_here(rest, text);
    }
    let mut t = text;
    loop {
        // must look even at the empty string
        if match_here(re, t) {
            return true;
        }
        match t.split_first() {
            Some((_, rest)) => t = rest,
            None => return false,
        }
    }
}

/// Does `re` match at the beginning of `text`?
fn match_here(re: &[u8], text: &[u8]) -> bool {
    match re {
        [] => true,
        [c, b'*', rest @ ..] => match_star(*c, rest, text),
        [b'$'] => text.is_empty(),
        [c, rest @ ..] => match text.split_first() {
            Some((t, trest)) if *c == b'.' || c == t => match_here(rest, trest),
            _ => false,
        },
    }
}

/// Does `c*re` match at the beginning of `text`?
fn match_star(c: u8, re: &[u8], text: &[u8]) -> bool {
    let mut t = text;
    loop {
        // a * matches zero or more instances
        if match_here(re, t) {
            return true;
        }
        match t.split_first() {
            Some((first, rest)) if *first == c || c == b'.' => t = rest,
            _ => return false,
        }
    }
}
