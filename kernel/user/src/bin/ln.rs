//! ln: make a second name (hard link) for a file.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    if args.len() != 3 {
        eprintln!("Usage: ln old new");
        exit(1);
    }
    let (old, new) = (args.get(1).unwrap_or(""), args.get(2).unwrap_or(""));
    if link(old, new) < 0 {
        eprintln!("link {} {}: failed", old, new);
    }
    0
}
