//! A full page-table dump of every process (a benchmark, not a timed test).
//!
//! The kernel is booted under QEMU with a few background processes, then
//! paused. For every live process kinspect walks its user page table and
//! its per-process kernel page table, every level, every entry:
//!
//! 1. in one process over one connection, the way the TUI and `check` do
//!    it: cold (every table page read through the gdb stub) and warm (the
//!    pages already cached);
//! 2. as a user would from the shell: `kinspect vmprint --pid N` and
//!    `kinspect vmprint --pid N --kernel-pt` for every N, whole processes.
//!
//! Run: `cargo bench -p kinspect --bench pagetables` (after `cargo xtask
//! build`), or `cargo xtask bench`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinspect::model::{Kernel, PhysCache, Profile, TableSel};
use kinspect::target::qemu::QemuTarget;
use kinspect_sv39::{walk, Ram};
use kinspect_symbols::Symbols;
use kinspect_testkit::{kernel_elf, Machine};

const BACKGROUND: usize = 6;
const RUNS: usize = 9;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Walk every live process's user and kernel page table; returns the live
/// pids and the number of table pages and valid PTEs seen.
fn dump_all(kernel: &Kernel, phys: &mut PhysCache<'_>, ram: Ram) -> (Vec<i64>, usize, usize) {
    let state = kernel
        .read_state(phys, ram)
        .expect("reading proc[] and cpus[]");
    let (mut tables, mut entries) = (0, 0);
    let pids: Vec<i64> = state.live().map(|p| p.pid).collect();
    for &pid in &pids {
        for sel in [TableSel::User { pid }, TableSel::ProcKernel { pid }] {
            let table = kernel.select(&state, sel).expect("selecting a page table");
            let w = walk(phys, table.root, Kernel::limits(ram)).expect("walking");
            tables += w.tables.len();
            entries += w.entries.len();
        }
    }
    (pids, tables, entries)
}

fn main() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(60));
    for _ in 0..BACKGROUND {
        let mark = m.console_len();
        m.send(b"cat &\n");
        m.wait_for_after(mark, "$ ", Duration::from_secs(30));
    }
    std::thread::sleep(Duration::from_millis(500));
    m.pause();
    let addr = m.gdb_addr();
    let ram = Ram::default();

    let syms = Symbols::open(kernel_elf()).expect("loading kernel.elf");
    let kernel = Kernel::new(&syms, Profile::default()).expect("the kernel model");
    let mut target = QemuTarget::connect(&addr).expect("connecting to the stub");
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut shape = (Vec::new(), 0, 0);
    for _ in 0..RUNS {
        let mut phys = PhysCache::new(&mut target);
        let s = Instant::now();
        shape = dump_all(&kernel, &mut phys, ram);
        cold.push(s.elapsed());
        let s = Instant::now();
        dump_all(&kernel, &mut phys, ram);
        warm.push(s.elapsed());
    }
    target.finish().expect("detaching");
    let (pids, tables, entries) = shape;
    let procs = pids.len();

    let bin = env!("CARGO_BIN_EXE_kinspect");
    let root = kinspect_testkit::root();
    let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    let mut shell = Vec::new();
    for _ in 0..3 {
        let s = Instant::now();
        for pid in &pids {
            for extra in [&[][..], &["--kernel-pt"][..]] {
                let ok = Command::new(bin)
                    .current_dir(&root)
                    .args(["--gdb", &addr, "vmprint", "--pid", pid])
                    .args(extra)
                    .stdout(Stdio::null())
                    .status()
                    .expect("running kinspect")
                    .success();
                assert!(ok, "kinspect vmprint --pid {pid} {extra:?} failed");
            }
        }
        shell.push(s.elapsed());
    }

    println!(
        "page-table dump of every process: {procs} processes, {tables} table pages, \
         {entries} valid PTEs (user + kernel page tables); medians"
    );
    println!();
    println!("| what | time |");
    println!("|---|---|");
    println!(
        "| one process, one connection, cold (pages read through the stub) | {} |",
        ms(median(cold))
    );
    println!("| the same again, pages cached | {} |", ms(median(warm)));
    println!(
        "| `kinspect vmprint --pid N [--kernel-pt]` for every process, {} whole processes | {} |",
        2 * procs,
        ms(median(shell))
    );
}
