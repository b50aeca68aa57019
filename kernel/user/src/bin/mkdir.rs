//! mkdir: make directories.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    if args.len() < 2 {
        eprintln!("Usage: mkdir files...");
        exit(1);
    }
    for d in args.iter().skip(1) {
        if mkdir(d) < 0 {
            eprintln!("mkdir: {} failed to create", d);
            break;
        }
    }
    0
}
