//! zombie: leave a child that exits while its parent sleeps, so the
//! process list (Ctrl-P) shows a zombie for a moment.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    if fork() > 0 {
        sleep(5); // let the child exit before the parent
    }
    0
}
