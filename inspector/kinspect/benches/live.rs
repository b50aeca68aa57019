//! Live mode, measured (issue 14): what a frame costs while the guest runs
//! `usertests`, and what watching costs the guest.
//!
//! The kernel boots with its RAM in a shared file (as `cargo xtask qemu`
//! gives it). `usertests -q` runs three times, timed from the command to
//! `ALL TESTS PASSED` on the console: alone, with the TUI's worker and a
//! 120x40 screen in live mode (a frame every 100 ms: `proc[]` read twice,
//! the selected process's page table walked twice, applied and drawn into
//! ratatui's `TestBackend`, as `kinspect attach` does minus the terminal),
//! and alone again. The slowdown is the watched run against the mean of
//! the two alone.
//!
//! `cargo bench -p kinspect --bench live` (after `cargo xtask build`); the
//! figures are in docs/benchmarks.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinspect::target::fastram::{FastPath, FastQemu};
use kinspect::target::qemu::QemuTarget;
use kinspect::tui::app::App;
use kinspect::tui::view;
use kinspect::tui::worker::{Leave, Reply, Request, Worker};
use kinspect_sv39::Ram;
use kinspect_symbols::Symbols;
use kinspect_testkit::Machine;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn usertests(m: &mut Machine) -> Duration {
    let mark = m.console_len();
    let t = Instant::now();
    m.send(b"usertests -q\n");
    m.wait_for_after(mark, "ALL TESTS PASSED", Duration::from_secs(1800));
    let took = t.elapsed();
    let after = m.console_len();
    m.wait_for_after(after, "$ ", Duration::from_secs(60));
    took
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(120));
    let alone1 = usertests(&mut m);
    println!("usertests -q alone: {:.1} s", alone1.as_secs_f64());

    let syms = Arc::new(Symbols::open(kinspect_testkit::kernel_elf()).expect("kernel ELF"));
    let target = FastQemu::new(
        QemuTarget::connect(&m.gdb_addr()).expect("connect"),
        FastPath::Auto,
    );
    assert!(target.fallback().is_none(), "{:?}", target.fallback());
    let mut w = Worker::new(
        Box::new(target),
        Some(Arc::clone(&syms)),
        kinspect::model::Profile::default(),
        Ram::default(),
    );
    let attach = w.attach();
    let (req, req_rx) = channel();
    let (tx, rx) = channel();
    let worker = std::thread::spawn(move || w.run(req_rx, tx));
    req.send(Request::Live(true)).expect("worker");
    let stop = Arc::new(AtomicBool::new(false));
    let ui = {
        let stop = Arc::clone(&stop);
        let req = req.clone();
        std::thread::spawn(move || {
            let mut app = App::new("live bench".into(), Some(syms), false);
            for r in attach {
                app.apply(r);
            }
            let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
            // (read, read + apply + draw) per frame, in ms.
            let mut frames: Vec<(f64, f64)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(r) = rx.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                let read = match &r {
                    Reply::Live(f) => Some(f.read),
                    _ => None,
                };
                let t = Instant::now();
                app.apply(r);
                app.tick();
                for q in app.outbox.drain(..) {
                    let _ = req.send(q);
                }
                term.draw(|f| app.hits = view::draw(f, &app)).expect("draw");
                if let Some(read) = read {
                    let ms = read.as_secs_f64() * 1e3;
                    frames.push((ms, ms + t.elapsed().as_secs_f64() * 1e3));
                }
            }
            frames
        })
    };
    let watched = usertests(&mut m);
    stop.store(true, Ordering::Relaxed);
    let frames = ui.join().expect("ui thread");
    req.send(Request::Finish(Leave::Running)).expect("worker");
    let _ = worker.join();
    let alone2 = usertests(&mut m);

    let mean_alone = (alone1 + alone2).as_secs_f64() / 2.0;
    println!("usertests -q watched live: {:.1} s", watched.as_secs_f64());
    println!("usertests -q alone again: {:.1} s", alone2.as_secs_f64());
    println!(
        "slowdown while watched: {:+.1}% (against the mean of the two alone)",
        (watched.as_secs_f64() / mean_alone - 1.0) * 100.0
    );
    let n = frames.len();
    let mut read: Vec<f64> = frames.iter().map(|f| f.0).collect();
    let mut full: Vec<f64> = frames.iter().map(|f| f.1).collect();
    println!(
        "{n} live frames in {:.1} s ({:.1} a second)",
        watched.as_secs_f64(),
        n as f64 / watched.as_secs_f64()
    );
    println!(
        "frame read (proc[] twice, page table twice): median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        pct(&mut read, 0.5),
        pct(&mut read, 0.95),
        pct(&mut read, 1.0)
    );
    println!(
        "frame read + apply + draw (120x40): median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        pct(&mut full, 0.5),
        pct(&mut full, 0.95),
        pct(&mut full, 1.0)
    );
}
