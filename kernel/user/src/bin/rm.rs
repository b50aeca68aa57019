//! rm: remove names (unlink).

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    if args.len() < 2 {
        eprintln!("Usage: rm files...");
        exit(1);
    }
    for f in args.iter().skip(1) {
        if unlink(f) < 0 {
            eprintln!("rm: {} failed to delete", f);
            break;
        }
    }
    0
}
