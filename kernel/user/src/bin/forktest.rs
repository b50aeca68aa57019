//! forktest: fork until the process table is full, then reap every child;
//! checks that fork fails cleanly and wait finds exactly the children.

#![no_std]
#![no_main]

use user::*;

entry!(main);

const N: i32 = 1000;

fn main(_args: Args) -> i32 {
    println!("fork test");
    let mut n = 0;
    while n < N {
        let pid = fork();
        if pid < 0 {
            break;
        }
        if pid == 0 {
            exit(0);
        }
        n += 1;
    }
    if n == N {
        println!("fork claimed to work {} times!", N);
        exit(1);
    }
    while n > 0 {
        if wait(None) < 0 {
            println!("wait stopped early");
            exit(1);
        }
        n -= 1;
    }
    if wait(None) != -1 {
        println!("wait got too many");
        exit(1);
    }
    println!("fork test OK");
    0
}
