//! echo: print the arguments, separated by spaces, and a newline.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(args: Args) -> i32 {
    let n = args.len();
    for i in 1..n {
        write(1, args.bytes(i).unwrap_or(b""));
        write(1, if i + 1 < n { b" " } else { b"\n" });
    }
    0
}
