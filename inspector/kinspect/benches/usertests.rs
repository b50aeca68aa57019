//! Measure the kernel itself (a benchmark, not a timed test): wall time
//! from starting QEMU to the shell's first prompt, and of `usertests -q`.
//!
//! Run: `cargo bench -p kinspect --bench usertests` (after `cargo xtask
//! build`), or `cargo xtask bench`. The figures in docs/userland.md come
//! from it.

use std::time::{Duration, Instant};

use kinspect_testkit::Machine;

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be ignored.
    let t0 = Instant::now();
    let mut m = Machine::start();
    m.wait_for("init: starting sh", Duration::from_secs(60));
    m.wait_for("$ ", Duration::from_secs(60));
    let boot = t0.elapsed();

    let mark = m.console_len();
    let t1 = Instant::now();
    m.send(b"usertests -q\n");
    let out = m.wait_for_after(mark, "\n$ ", Duration::from_secs(900));
    let tests = t1.elapsed();
    let out = &out[mark..];
    assert!(
        out.contains("ALL TESTS PASSED"),
        "usertests -q failed, so its time means nothing:\n{out}"
    );
    let ntests = out.lines().filter(|l| l.starts_with("test ")).count();

    println!("kernel benchmark (QEMU TCG, 3 harts)");
    println!("  boot to first prompt    {:>8.2} s", boot.as_secs_f64());
    println!(
        "  usertests -q            {:>8.1} s  ({ntests} tests)",
        tests.as_secs_f64()
    );
}
