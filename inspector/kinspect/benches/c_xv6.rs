//! `check` and `report` on C xv6 next to this project's kernel (a
//! benchmark, not a timed test): whole-process times of the real binary,
//! ELF and DWARF load included, against the kernels booted under QEMU.
//!
//! - `check` at the shell prompt: our kernel; stock xv6-riscv; the lab
//!   solution `sol-kernelpgtbl` (per-process kernel tables with the user
//!   mirror).
//! - `report` on a panicked machine: our kernel after `kfault remap`; the
//!   lab bug `bug-kstack-twice` held by `watch` on panic's entry.
//! - `report --batch` over 100 snapshots of that panic, each beside its
//!   kernel: files per second on all cores and on one.
//!
//! Run: `cargo bench -p kinspect --bench c_xv6` (after `cargo xtask build`
//! and `cargo xtask xv6`). The figures in docs/benchmarks.md come from it.

#[path = "../tests/xv6_common/mod.rs"]
mod xv6_common;

use std::path::Path;
use std::time::{Duration, Instant};

use kinspect_testkit::xv6::variant;
use kinspect_testkit::{kernel_elf, Boot, Machine};
use xv6_common::kinspect;

const WAIT: Duration = Duration::from_secs(120);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Median and minimum of `runs` whole-process runs; `ok` lists the exit
/// codes that count as success.
fn time(m: &Machine, elf: &Path, args: &[&str], runs: usize, ok: &[i32]) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let out = kinspect(m, elf, args);
        times.push(start.elapsed());
        assert!(
            ok.contains(&out.status.code().unwrap_or(-1)),
            "kinspect {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let min = *times.iter().min().unwrap_or(&Duration::ZERO);
    (median(times), min)
}

fn line(what: &str, (med, min): (Duration, Duration), runs: usize) {
    println!(
        "   {what:<44} median {:>9}  min {:>9}  ({runs} runs)",
        ms(med),
        ms(min)
    );
}

fn main() {
    println!("1. check at the shell prompt (guest paused), whole process");
    {
        let mut m = Machine::start();
        m.wait_for("$ ", WAIT);
        m.pause();
        line(
            "ours (Rust, per-process kernel tables)",
            time(&m, &kernel_elf(), &["check"], 9, &[0]),
            9,
        );
    }
    for name in ["stock", "sol-kernelpgtbl"] {
        let v = variant(name);
        let mut m = v.boot();
        m.wait_for("$ ", WAIT);
        m.pause();
        line(
            &format!("C xv6 {name}"),
            time(&m, &v.elf(), &["check"], 9, &[0]),
            9,
        );
    }

    println!("2. report on a panicked machine, whole process");
    {
        let mut m = Machine::start();
        m.wait_for("$ ", WAIT);
        let mark = m.console_len();
        m.send(b"kfault enable\n");
        m.wait_for_after(mark, "kdebug: fault injection enabled", WAIT);
        let mark = m.console_len();
        m.send(b"kfault remap\n");
        m.wait_for_after(mark, "    at src/", WAIT);
        m.pause();
        line(
            "ours after `kfault remap`",
            time(&m, &kernel_elf(), &["report"], 9, &[0]),
            9,
        );
    }
    {
        let v = variant("bug-kstack-twice");
        let m = v.boot_with(Boot {
            wait_for_debugger: true,
            ..Boot::default()
        });
        let start = Instant::now();
        let out = kinspect(&m, &v.elf(), &["watch", "--timeout", "300"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "   {:<44} {:>9}  (boot to the panic, report included)",
            "C xv6 bug-kstack-twice: watch",
            ms(start.elapsed())
        );
        line(
            "C xv6 bug-kstack-twice: report",
            time(&m, &v.elf(), &["report"], 9, &[0]),
            9,
        );

        println!("3. report --batch over 100 snapshots of that panic, whole process");
        let dir = std::env::temp_dir().join(format!("kinspect-bench-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let one = dir.join("one.kisnap");
        let out = kinspect(
            &m,
            &v.elf(),
            &["snapshot", "-o", one.to_str().expect("utf-8")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let section = dir.join("section");
        std::fs::create_dir_all(&section).expect("temp dir");
        for i in 0..100 {
            let f = section.join(format!("{i:03}.kisnap"));
            std::fs::copy(&one, &f).expect("copy");
            std::os::unix::fs::symlink(v.elf(), f.with_extension("elf")).expect("link");
        }
        for jobs in [None, Some("1")] {
            let mut times = Vec::new();
            for _ in 0..3 {
                let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kinspect"));
                c.args(["report", "--batch"]).arg(&section);
                if let Some(j) = jobs {
                    c.args(["--jobs", j]);
                }
                let start = Instant::now();
                let out = c.output().expect("running kinspect");
                times.push(start.elapsed());
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let med = median(times);
            println!(
                "   {:<44} median {:>9}  {:.0} files/s  (3 runs)",
                format!(
                    "100 files, {}",
                    jobs.map_or("one thread per CPU".to_string(), |j| format!("{j} thread"))
                ),
                ms(med),
                100.0 / med.as_secs_f64()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
