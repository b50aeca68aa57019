//! kill: kill the processes whose pids are given.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    if args.len() < 2 {
        eprintln!("usage: kill pid...");
        exit(1);
    }
    for a in args.iter().skip(1) {
        kill(atoi(a));
    }
    0
}
