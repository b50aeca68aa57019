//! Measure `kinspect procs` (a benchmark, not a timed test):
//!
//! 1. the whole-process time of `kinspect procs` (and `--json procs`,
//!    and `check`) on the real kernel under QEMU, loading the ELF each time;
//! 2. how `procs --all` scales with NPROC: the C fixtures built with
//!    NPROC 64, 256 and 1024 (tests/fixtures), every slot live, on a
//!    `MemoryTarget`, in-process (argument parsing, ELF and DWARF load,
//!    one read of the table, each kernel stack translated, JSON out).
//!
//! Run: `cargo bench -p kinspect --bench procs` (after `cargo xtask build`).
//! The figures in docs/commands/procs.md come from it.

#[path = "../tests/model_common/mod.rs"]
mod model_common;

use std::process::Command;
use std::time::{Duration, Instant};

use kinspect_testkit::{kernel_elf, root, Machine};
use model_common::{Builder, P};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn whole_process(addr: &str, args: &[&str], runs: usize) -> (Duration, Duration) {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .current_dir(root())
            .arg("--gdb")
            .arg(addr)
            .arg("--elf")
            .arg(kernel_elf())
            .args(args)
            .output()
            .expect("running kinspect");
        times.push(start.elapsed());
        assert!(
            out.status.success(),
            "kinspect {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let min = *times.iter().min().unwrap_or(&Duration::ZERO);
    (median(times), min)
}

fn main() {
    println!("1. whole process on the real kernel (QEMU, 3 harts, init + sh + 2 cats)");
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(60));
    for _ in 0..2 {
        let mark = m.console_len();
        m.send(b"cat &\n");
        m.wait_for_after(mark, "$ ", Duration::from_secs(60));
    }
    let addr = m.gdb_addr();
    for (what, args, runs) in [
        ("procs (running guest)", vec!["procs"], 15),
        ("--json procs (running guest)", vec!["--json", "procs"], 15),
        ("check (running guest)", vec!["check"], 5),
    ] {
        let (med, min) = whole_process(&addr, &args, runs);
        println!(
            "   {what:<32} median {:>9}  min {:>9}  ({runs} runs)",
            ms(med),
            ms(min)
        );
    }
    m.pause();
    let (med, min) = whole_process(&addr, &["procs"], 15);
    println!(
        "   {:<32} median {:>9}  min {:>9}  (15 runs)",
        "procs (paused guest)",
        ms(med),
        ms(min)
    );
    drop(m);

    println!("2. procs --all --json, every slot live, in-process on a MemoryTarget");
    for elf in ["xv6_c.elf", "xv6_c_nproc256.elf", "xv6_c_nproc1024.elf"] {
        let mut b = Builder::new(elf);
        b.kernel();
        let n = b.l.nproc;
        for slot in 0..n {
            b.process(&P {
                slot,
                pid: slot as i32 + 1,
                state: 2,
                name: "proc",
                parent_slot: (slot > 0).then_some(0),
                chan: 0,
                hart: None,
            });
        }
        b.free_pages(16);
        b.harts();
        let path = model_common::fixture(elf);
        let args = [
            "kinspect",
            "--elf",
            path.to_str().unwrap_or_default(),
            "--json",
            "procs",
            "--all",
        ];
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..10 {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let start = Instant::now();
            let code = kinspect::cli::run_args_on(&args, &mut b.t, &mut out, &mut err);
            times.push(start.elapsed());
            assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
            bytes = out.len();
        }
        let min = *times.iter().min().unwrap_or(&Duration::ZERO);
        println!(
            "   NPROC {n:>5}: median {:>9}  min {:>9}  ({bytes} bytes of JSON)",
            ms(median(times)),
            ms(min)
        );
    }
}
