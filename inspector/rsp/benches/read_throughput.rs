//! How fast physical memory comes through QEMU's gdb stub: boot the real
//! kernel, let it reach the shell, then read 1 MiB of RAM with
//! `PhyMemMode` on (512 `m` packets of 2048 bytes on QEMU 7.2), time small
//! reads (one round trip each) and a whole one-shot session.
//!
//! `cargo bench -p kinspect-rsp --bench read_throughput`; the numbers are in
//! docs/protocol.md.

use std::time::{Duration, Instant};

use kinspect_rsp::{ConnectOptions, Session, ThreadId};
use kinspect_testkit::Machine;

const MIB: usize = 1 << 20;
const ROUNDS: usize = 5;
const SMALL_READS: usize = 1000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let m = Machine::start();
    m.wait_for("init: starting sh", Duration::from_secs(60));
    let opts = ConnectOptions::default();

    let mut s = Session::connect(&m.gdb_addr(), &opts).expect("connect");
    println!(
        "packet size {} bytes, {} bytes per m packet",
        s.features().packet_size,
        s.max_read()
    );
    let mut buf = vec![0u8; MIB];
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        s.read_physical(0x8000_0000, &mut buf).expect("read 1 MiB");
        times.push(t.elapsed());
    }
    let med = median(times.clone());
    let best = times.iter().min().copied().unwrap_or(med);
    println!(
        "1 MiB physical read: median {:.1} ms ({:.1} MiB/s), best {:.1} ms ({:.1} MiB/s), {ROUNDS} rounds",
        med.as_secs_f64() * 1e3,
        1.0 / med.as_secs_f64(),
        best.as_secs_f64() * 1e3,
        1.0 / best.as_secs_f64()
    );

    // How kinspect reads: one page per call, `PhyMemMode` set and put
    // back around each (in the same pipeline as the page's `m` packets).
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for (k, page) in buf.chunks_mut(4096).enumerate() {
            s.read_physical(0x8000_0000 + (k as u64) * 4096, page)
                .expect("read a page");
        }
        times.push(t.elapsed());
    }
    let med = median(times);
    println!(
        "1 MiB physical read a page at a time: median {:.1} ms ({:.1} MiB/s), {ROUNDS} rounds",
        med.as_secs_f64() * 1e3,
        1.0 / med.as_secs_f64()
    );

    let mut word = [0u8; 8];
    let mut phys = s.physical().expect("PhyMemMode");
    let t = Instant::now();
    for i in 0..SMALL_READS {
        phys.read(0x8000_0000 + 8 * i as u64, &mut word)
            .expect("read 8 bytes");
    }
    let per = t.elapsed() / SMALL_READS as u32;
    phys.restore().expect("restore PhyMemMode");
    println!(
        "8-byte read (one round trip): {:.1} µs each over {SMALL_READS}",
        per.as_secs_f64() * 1e6
    );

    let t = Instant::now();
    for _ in 0..100 {
        s.read_register(ThreadId::for_hart(1), "satp")
            .expect("satp");
    }
    println!(
        "satp read (p packet): {:.1} µs each",
        t.elapsed().as_secs_f64() * 1e4
    );
    s.finish().expect("finish");

    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut s = Session::connect(&m.gdb_addr(), &opts).expect("connect");
        s.read_register(ThreadId::for_hart(0), "satp")
            .expect("satp");
        s.finish().expect("finish");
        times.push(t.elapsed());
    }
    println!(
        "one-shot session (attach, target.xml, satp, resume, detach): median {:.1} ms",
        median(times).as_secs_f64() * 1e3
    );
}
