//! Measure kinspect on the booted kernel (a benchmark, not a timed test):
//!
//! 1. bytes/s of physical reads through QEMU's gdb stub (4 KiB reads, the
//!    size the page-table walker uses);
//! 2. the time of one full walk of the kernel page table (hart 0's satp);
//! 3. the whole-process time of `kinspect maps --hart 0` next to
//!    `gdb-multiarch -batch ... -ex 'monitor info mem'`, same machine, same run.
//!
//! Run: `cargo bench -p kinspect --bench maps` (after `cargo xtask build`).
//! Prints a table; the figures in docs/commands/maps.md come from it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinspect::target::qemu::QemuTarget;
use kinspect::target::{Csr, Target};
use kinspect_sv39::{walk, Satp, WalkLimits};
use kinspect_testkit::Machine;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be ignored.
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(60));
    m.pause();
    let addr = m.gdb_addr();
    let runs = 15;

    // 1 and 2: one connection, like a command.
    let (bytes_per_s, walk_time, tables, entries) = {
        let mut t = QemuTarget::connect(&addr).expect("connecting to the stub");
        let satp = t.csr(0, Csr::Satp).expect("hart 0 satp");
        let root = Satp(satp).root();
        let total: usize = 1 << 20;
        let mut buf = vec![0u8; 4096];
        // Warm up (the backend asks QEMU for the memory map once).
        t.read_phys(0x8000_0000, &mut buf).expect("read");
        let start = Instant::now();
        let mut pa = 0x8000_0000u64;
        while pa < 0x8000_0000 + total as u64 {
            t.read_phys(pa, &mut buf).expect("read");
            pa += 4096;
        }
        let bytes_per_s = total as f64 / start.elapsed().as_secs_f64();
        let mut times = Vec::new();
        let mut shape = (0, 0);
        for _ in 0..runs {
            let mem: &mut dyn kinspect::target::Target = &mut t;
            let s = Instant::now();
            let w = walk(mem, root, WalkLimits::default()).expect("walk");
            times.push(s.elapsed());
            shape = (w.tables.len(), w.entries.len());
        }
        t.finish().expect("detaching");
        (bytes_per_s, median(times), shape.0, shape.1)
    };

    // 3: whole processes, alternating so both see the same machine state.
    let bin = env!("CARGO_BIN_EXE_kinspect");
    let port = m.gdb_port();
    let mut ours = Vec::new();
    let mut gdb = Vec::new();
    let mut gdb_ok = true;
    for _ in 0..runs {
        let s = Instant::now();
        let o = Command::new(bin)
            .args(["--gdb", &addr, "maps", "--hart", "0"])
            .stdout(Stdio::null())
            .status()
            .expect("kinspect");
        ours.push(s.elapsed());
        assert!(o.success(), "kinspect maps failed");
        let s = Instant::now();
        let g = Command::new("gdb-multiarch")
            .args([
                "-batch",
                "-nx",
                "-ex",
                "set architecture riscv:rv64",
                "-ex",
                &format!("target remote 127.0.0.1:{port}"),
                "-ex",
                "monitor info mem",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        gdb.push(s.elapsed());
        gdb_ok &= g.map(|s| s.success()).unwrap_or(false);
    }

    println!("kinspect benchmark: kernel booted under QEMU, paused; medians of {runs} runs");
    println!();
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| physical reads through the gdb stub (4 KiB reads, 1 MiB) | {:.2} MiB/s |",
        bytes_per_s / (1 << 20) as f64
    );
    println!(
        "| full walk of the kernel page table ({tables} table pages, {entries} valid PTEs) | {} |",
        ms(walk_time)
    );
    println!(
        "| `kinspect maps --hart 0`, whole process | {} |",
        ms(median(ours))
    );
    println!(
        "| `gdb-multiarch -batch ... -ex 'monitor info mem'`, whole process{} | {} |",
        if gdb_ok { "" } else { " (FAILED)" },
        ms(median(gdb))
    );
}
