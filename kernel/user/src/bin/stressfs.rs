//! stressfs: four processes each write and read back their own file at
//! the same time, exercising the log and buffer cache under concurrency.

#![no_std]
#![no_main]

use user::*;

entry!(main);

fn main(_args: Args) -> i32 {
    let mut path = *b"stressfs0";
    let mut data = [b'a'; 512];
    println!("stressfs starting");
    let mut i = 0u8;
    while i < 4 {
        if fork() > 0 {
            break;
        }
        i += 1;
    }
    println!("write {}", i);
    path[8] += i;
    let name = core::str::from_utf8(&path).unwrap_or("stressfs?");
    let fd = open(name, O_CREATE | O_RDWR);
    for _ in 0..20 {
        write(fd, &data);
    }
    close(fd);
    println!("read");
    let fd = open(name, O_RDONLY);
    for _ in 0..20 {
        read(fd, &mut data);
    }
    close(fd);
    wait(None);
    0
}
