//! Measure snapshots of the booted kernel (a benchmark, not a timed test):
//! size on disk and the time to write and to reopen one, next to QEMU's own
//! `dump-guest-memory` of the same paused machine.
//!
//! 1. `kinspect snapshot` the fast way (QEMU's `pmemsave` for RAM) at
//!    deflate levels 1 and 6, and once reading RAM through the gdb stub;
//! 2. reopening each (`SnapshotTarget::open`: read, check, inflate);
//! 3. QEMU's `dump-guest-memory` (an uncompressed ELF core), and reopening
//!    that with kinspect.
//!
//! Run: `cargo bench -p kinspect --bench snapshot` (after `cargo xtask
//! build`). Prints a table; docs/snapshots.md quotes it.

use std::path::Path;
use std::time::{Duration, Instant};

use kinspect::snapshot::capture::{capture, Options};
use kinspect::snapshot::format;
use kinspect::target::qemu::QemuTarget;
use kinspect::target::snapshot::SnapshotTarget;
use kinspect_sv39::Ram;
use kinspect_testkit::Machine;

fn s(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

fn reopen(path: &Path) -> Duration {
    let t0 = Instant::now();
    let t = SnapshotTarget::open(path).expect("reopening");
    let d = t0.elapsed();
    assert!(t.snapshot().present_pages() > 0);
    d
}

fn main() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(60));
    m.pause();
    let dir = std::env::temp_dir().join(format!("kinspect-snapbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ram = Ram {
        base: kinspect_sv39::PhysAddr(0x8000_0000),
        size: 128 << 20,
    };
    let mut rows: Vec<(String, u64, Duration, Duration)> = Vec::new();
    for (label, level, pmemsave) in [
        ("kinspect snapshot (pmemsave, deflate 1)", 1, true),
        ("kinspect snapshot (pmemsave, deflate 6)", 6, true),
        ("kinspect snapshot (gdb stub reads, deflate 1)", 1, false),
    ] {
        let path = dir.join(format!("bench-{level}-{pmemsave}.kisnap"));
        let mut t = QemuTarget::connect(&m.gdb_addr()).expect("connecting");
        let t0 = Instant::now();
        let opts = Options {
            ram,
            kernel: None,
            pages: None,
            pmemsave,
        };
        let (snap, _) = capture(&mut t, &opts).expect("capture");
        let size = format::write(&snap, &path, level).expect("write");
        let took = t0.elapsed();
        t.finish().expect("finish");
        let back = reopen(&path);
        rows.push((label.to_string(), size, took, back));
    }
    let core = dir.join("qemu.core");
    let t0 = Instant::now();
    let said = m.hmp(0, &format!("dump-guest-memory {}", core.display()));
    let took = t0.elapsed();
    assert!(said.trim().is_empty(), "dump-guest-memory: {said}");
    let size = std::fs::metadata(&core).expect("core").len();
    let back = reopen(&core);
    rows.push(("QEMU dump-guest-memory (ELF core)".into(), size, took, back));
    println!(
        "| {:<46} | {:>10} | {:>8} | {:>8} |",
        "what", "size", "write", "reopen"
    );
    println!("|{:-<48}|{:->12}|{:->10}|{:->10}|", "", "", "", "");
    for (label, size, w, r) in rows {
        println!(
            "| {label:<46} | {:>10} | {:>8} | {:>8} |",
            mib(size),
            s(w),
            s(r)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
