//! Measure the kernel itself (a benchmark, not a timed test): wall time
//! from starting QEMU to the shell's first prompt, of `usertests -q`, and
//! of the full `usertests` (every test, the slow ones too) on a fresh boot.
//!
//! Run: `cargo bench -p kinspect --bench usertests` (after `cargo xtask
//! build`), or `cargo xtask bench`. The full run takes about ten minutes
//! on a 2-core machine; `KINSPECT_BENCH_QUICK=1` leaves it out. The
//! figures in docs/userland.md come from it.

use std::time::{Duration, Instant};

use kinspect_testkit::Machine;

/// Boot to the prompt; returns the machine and how long that took.
fn boot() -> (Machine, Duration) {
    let t0 = Instant::now();
    let m = Machine::start();
    m.wait_for("init: starting sh", Duration::from_secs(60));
    m.wait_for("$ ", Duration::from_secs(60));
    (m, t0.elapsed())
}

/// Run one shell line that must end in `ALL TESTS PASSED`; returns its
/// wall time and how many tests it ran.
fn usertests(m: &mut Machine, line: &str, limit: Duration) -> (Duration, usize) {
    let mark = m.console_len();
    let t = Instant::now();
    m.send(format!("{line}\n").as_bytes());
    let out = m.wait_for_after(mark, "\n$ ", limit);
    let took = t.elapsed();
    let out = &out[mark..];
    assert!(
        out.contains("ALL TESTS PASSED"),
        "`{line}` failed, so its time means nothing:\n{out}"
    );
    (took, out.lines().filter(|l| l.starts_with("test ")).count())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be ignored.
    let (mut m, boot_time) = boot();
    let (quick, nquick) = usertests(&mut m, "usertests -q", Duration::from_secs(900));
    drop(m);
    let full = if std::env::var_os("KINSPECT_BENCH_QUICK").is_some() {
        None
    } else {
        let (mut m, _) = boot();
        Some(usertests(&mut m, "usertests", Duration::from_secs(3600)))
    };

    println!("kernel benchmark (QEMU TCG, 3 harts)");
    println!(
        "  boot to first prompt    {:>8.2} s",
        boot_time.as_secs_f64()
    );
    println!(
        "  usertests -q            {:>8.1} s  ({nquick} tests)",
        quick.as_secs_f64()
    );
    match full {
        Some((t, n)) => println!(
            "  usertests (full)        {:>8.1} s  ({n} tests)",
            t.as_secs_f64()
        ),
        None => println!("  usertests (full)        skipped (KINSPECT_BENCH_QUICK)"),
    }
}
