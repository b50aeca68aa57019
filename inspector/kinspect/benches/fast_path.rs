//! The RAM fast path next to the gdb stub, and both next to gdb's own
//! `monitor info mem`, whole processes, one machine, one run (a benchmark,
//! not a timed test). Ratios are to gdb-multiarch's `monitor info mem`
//! measured alternately with each command, so a loaded machine slows both
//! sides alike.
//!
//! 1. bytes/s of physical reads: 128 MiB directly (the shared RAM file,
//!    then /proc/PID/mem of a second QEMU with private RAM), 4 MiB through
//!    the stub;
//! 2. `maps --hart 0`, `check`, `procs`, `vmprint`, every process's
//!    tables (`vmprint --pid N` for each pid), `snapshot -o` and reopening
//!    the snapshot (`--snapshot F maps --hart 0`): fast path and stub.
//!
//! Run: `cargo bench -p kinspect --bench fast_path` (after `cargo xtask
//! build`), or `cargo xtask bench`. docs/benchmarks.md holds a run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinspect::target::fastram::{FastPath, FastQemu};
use kinspect::target::qemu::QemuTarget;
use kinspect::target::Target;
use kinspect_testkit::{Boot, Machine};

const RUNS: usize = 9;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn at_shell(share_ram: bool) -> Machine {
    let mut m = Machine::boot(Boot {
        share_ram,
        ..Boot::default()
    });
    m.wait_for("$ ", Duration::from_secs(120));
    m.pause();
    m
}

/// MiB/s reading `total` bytes of RAM in `chunk`-byte reads.
fn read_rate(t: &mut dyn Target, total: u64, chunk: usize) -> f64 {
    let mut buf = vec![0u8; chunk];
    t.read_phys(0x8000_0000, &mut buf).expect("read");
    let start = Instant::now();
    let mut pa = 0x8000_0000u64;
    while pa < 0x8000_0000 + total {
        t.read_phys(pa, &mut buf).expect("read");
        pa += chunk as u64;
    }
    total as f64 / start.elapsed().as_secs_f64() / (1 << 20) as f64
}

fn kinspect(addr: &str, args: &[&str]) -> Duration {
    let s = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(addr)
        .arg("--elf")
        .arg(kinspect_testkit::kernel_elf())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("kinspect");
    let t = s.elapsed();
    // check exits 5 on findings; anything else is a failed run.
    assert!(
        matches!(o.status.code(), Some(0) | Some(5)),
        "kinspect {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    t
}

fn gdb_info_mem(port: u16) -> Duration {
    let s = Instant::now();
    let ok = Command::new("gdb-multiarch")
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
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "gdb-multiarch monitor info mem failed");
    s.elapsed()
}

/// Median time of `args` (fast path, then `--no-fast-path`) and of gdb's
/// `info mem`, alternating.
fn compare(m: &Machine, args: &[&str]) -> (Duration, Duration, Duration) {
    let addr = m.gdb_addr();
    let mut slow_args = vec!["--no-fast-path"];
    slow_args.extend_from_slice(args);
    let (mut f, mut s, mut g) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        f.push(kinspect(&addr, args));
        g.push(gdb_info_mem(m.gdb_port()));
        s.push(kinspect(&addr, &slow_args));
    }
    (median(f), median(s), median(g))
}

fn pids(m: &Machine) -> Vec<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", &m.gdb_addr(), "--json", "procs", "--elf"])
        .arg(kinspect_testkit::kernel_elf())
        .output()
        .expect("kinspect procs");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("procs JSON");
    v["procs"]
        .as_array()
        .expect("procs")
        .iter()
        .map(|p| p["pid"].to_string())
        .collect()
}

fn main() {
    let m = at_shell(true);
    let addr = m.gdb_addr();

    // 1. bytes per second.
    let (mapped, mapped_4k, stub_rate) = {
        let mut t = FastQemu::new(QemuTarget::connect(&addr).expect("stub"), FastPath::Auto);
        assert!(t.fast().is_some(), "no fast path: {:?}", t.fallback());
        let mapped = read_rate(&mut t, 128 << 20, 1 << 20);
        let mapped_4k = read_rate(&mut t, 128 << 20, 4096);
        let stub = read_rate(t.stub(), 4 << 20, 4096);
        t.finish().expect("detach");
        (mapped, mapped_4k, stub)
    };
    let procmem = {
        let m2 = at_shell(false);
        let mut t = FastQemu::new(
            QemuTarget::connect(&m2.gdb_addr()).expect("stub"),
            FastPath::Auto,
        );
        assert!(t.fast().is_some(), "no fast path: {:?}", t.fallback());
        let r = (
            read_rate(&mut t, 128 << 20, 1 << 20),
            read_rate(&mut t, 128 << 20, 4096),
        );
        t.finish().expect("detach");
        r
    };

    // 2. whole commands.
    let mut rows: Vec<(String, (Duration, Duration, Duration))> = Vec::new();
    for args in [
        &["maps", "--hart", "0"][..],
        &["satp"],
        &["check"],
        &["procs"],
        &["vmprint"],
    ] {
        rows.push((format!("`kinspect {}`", args.join(" ")), compare(&m, args)));
    }
    // Every process's tables, one vmprint per pid.
    let pids = pids(&m);
    let (mut f, mut s) = (Duration::ZERO, Duration::ZERO);
    for pid in &pids {
        f += kinspect(&addr, &["vmprint", "--pid", pid]);
        s += kinspect(&addr, &["--no-fast-path", "vmprint", "--pid", pid]);
    }
    let g = gdb_info_mem(m.gdb_port());
    rows.push((
        format!("`vmprint --pid N` for each of {} processes", pids.len()),
        (f, s, g),
    ));
    // Snapshot write and reopen.
    let dir = std::env::temp_dir().join(format!("kinspect-bench-fast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fast_snap = dir.join("fast.kisnap");
    let stub_snap = dir.join("stub.kisnap");
    let (mut f, mut s, mut g, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        f.push(kinspect(
            &addr,
            &["snapshot", "-o", fast_snap.to_str().unwrap()],
        ));
        g.push(gdb_info_mem(m.gdb_port()));
        s.push(kinspect(
            &addr,
            &[
                "--no-fast-path",
                "snapshot",
                "-o",
                stub_snap.to_str().unwrap(),
            ],
        ));
        let t0 = Instant::now();
        let ok = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .args([
                "--snapshot",
                fast_snap.to_str().unwrap(),
                "maps",
                "--hart",
                "0",
            ])
            .arg("--elf")
            .arg(kinspect_testkit::kernel_elf())
            .stdout(Stdio::null())
            .status()
            .expect("reopen")
            .success();
        assert!(ok, "reopening the snapshot failed");
        r.push(t0.elapsed());
    }
    rows.push((
        "`kinspect snapshot -o F` (fast: direct copy; stub: pmemsave)".into(),
        (median(f), median(s), median(g)),
    ));
    let reopen = median(r);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "kinspect fast path vs gdb stub: kernel at the shell prompt, paused; medians of {RUNS} runs"
    );
    println!();
    println!("| reads | MiB/s |");
    println!("|---|---|");
    println!("| direct, shared RAM file, 1 MiB reads (128 MiB) | {mapped:.0} |");
    println!("| direct, shared RAM file, 4 KiB reads (128 MiB) | {mapped_4k:.0} |");
    println!(
        "| direct, /proc/PID/mem, 1 MiB reads (128 MiB) | {:.0} |",
        procmem.0
    );
    println!(
        "| direct, /proc/PID/mem, 4 KiB reads (128 MiB) | {:.0} |",
        procmem.1
    );
    println!("| gdb stub, 4 KiB reads (4 MiB) | {stub_rate:.1} |");
    println!();
    println!("| command (whole process) | fast path | stub | gdb `monitor info mem` | fast / gdb | stub / gdb |");
    println!("|---|---|---|---|---|---|");
    for (name, (f, s, g)) in rows {
        let gs = g.as_secs_f64();
        println!(
            "| {name} | {} | {} | {} | {:.2} | {:.2} |",
            ms(f),
            ms(s),
            ms(g),
            f.as_secs_f64() / gs,
            s.as_secs_f64() / gs
        );
    }
    println!();
    println!(
        "| `kinspect --snapshot F maps --hart 0` (reopen) | {} |",
        ms(reopen)
    );
}
