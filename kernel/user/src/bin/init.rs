//! init: the first user program. Opens the console as fds 0, 1 and 2
//! (making the device file if the disk has none), then runs `sh` forever,
//! reaping orphans that the kernel re-parents to it.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    if open("console", O_RDWR) < 0 {
        mknod("console", CONSOLE, 0);
        open("console", O_RDWR);
    }
    dup(0); // stdout
    dup(0); // stderr

    loop {
        println!("init: starting sh");
        let pid = fork();
        if pid < 0 {
            println!("init: fork failed");
            exit(1);
        }
        if pid == 0 {
            exec("sh", &["sh"]);
            println!("init: exec sh failed");
            exit(1);
        }
        loop {
            // Returns when the shell exits or a parentless process exits.
            let wpid = wait(None);
            if wpid == pid {
                break; // the shell exited; restart it
            } else if wpid < 0 {
                println!("init: wait returned an error");
                exit(1);
            }
        }
    }
}
