//! Measure the TUI on the booted kernel (a benchmark, not a timed test):
//!
//! 1. attach → first complete frame: open the ELF and build the DWARF
//!    index, connect to QEMU's gdb stub, read the snapshot (harts, CSRs,
//!    backtraces, `proc[]`, `cpus[]`), walk the selected process's page
//!    table, draw the whole screen (120x40) into ratatui's `TestBackend`;
//! 2. redraw after a halt: with the guest running, halt it, read the new
//!    snapshot, walk the page table again, draw.
//!
//! The same code paths as `kinspect attach` (the worker's requests and the
//! app's state), minus the terminal. Run: `cargo bench -p kinspect --bench
//! tui` (after `cargo xtask build`). The figures in docs/tui.md come from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kinspect::target::qemu::QemuTarget;
use kinspect::tui::app::App;
use kinspect::tui::worker::{Leave, Request, Worker};
use kinspect::tui::{open_symbols, view};
use kinspect_sv39::Ram;
use kinspect_symbols::Symbols;
use kinspect_testkit::Machine;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Serve the app's requests until it asks for nothing more (the walk of
/// the shown page table, mostly).
fn settle(app: &mut App, worker: &mut Worker) {
    for _ in 0..10 {
        app.tick();
        let reqs: Vec<Request> = app.outbox.drain(..).collect();
        if reqs.is_empty() {
            return;
        }
        for r in reqs {
            for rep in worker.handle(r) {
                app.apply(rep);
            }
        }
    }
}

fn draw(app: &mut App, term: &mut Terminal<TestBackend>) {
    term.draw(|f| app.hits = view::draw(f, app)).expect("draw");
}

/// Where the time of a first frame goes.
#[derive(Default)]
struct Phases {
    load: Vec<Duration>,
    connect: Vec<Duration>,
    snapshot: Vec<Duration>,
    walk: Vec<Duration>,
    draw: Vec<Duration>,
    total: Vec<Duration>,
}

/// Attach and draw the first complete frame; the app and worker after it.
fn first_frame(addr: &str, elf: &std::path::Path, ph: &mut Phases) -> (App, Worker) {
    let start = Instant::now();
    let symbols: Option<Arc<Symbols>> = open_symbols(Some(elf)).expect("the kernel ELF loads");
    let t1 = Instant::now();
    let target = QemuTarget::connect(addr).expect("connecting to the stub");
    let t2 = Instant::now();
    let mut worker = Worker::new(
        Box::new(target),
        symbols.clone(),
        kinspect::model::Profile::default(),
        Ram::default(),
    );
    let mut app = App::new(format!("QEMU gdb stub at {addr}"), symbols, false);
    for r in worker.attach() {
        app.apply(r);
    }
    let t3 = Instant::now();
    settle(&mut app, &mut worker);
    let t4 = Instant::now();
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    draw(&mut app, &mut term);
    let t5 = Instant::now();
    ph.load.push(t1 - start);
    ph.connect.push(t2 - t1);
    ph.snapshot.push(t3 - t2);
    ph.walk.push(t4 - t3);
    ph.draw.push(t5 - t4);
    ph.total.push(t5 - start);
    assert!(
        app.visible_procs().iter().any(|p| p.name == "sh"),
        "the first frame shows sh"
    );
    (app, worker)
}

fn main() {
    let m = Machine::start();
    m.wait_for("init: starting sh", Duration::from_secs(60));
    m.wait_for("$ ", Duration::from_secs(30));
    let addr = m.gdb_addr();
    let elf = kinspect_testkit::kernel_elf();
    let runs = 7;

    let mut ph = Phases::default();
    for _ in 0..runs {
        let (_app, mut worker) = first_frame(&addr, &elf, &mut ph);
        // Detach leaving the guest running, as `q r` does.
        for r in worker.handle(Request::Finish(Leave::Running)) {
            drop(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let (mut app, mut worker) = first_frame(&addr, &elf, &mut Phases::default());
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut redraws = Vec::new();
    let mut halts = Vec::new();
    for _ in 0..runs * 2 {
        if !app.running() {
            for r in worker.handle(Request::Resume) {
                app.apply(r);
            }
        }
        std::thread::sleep(Duration::from_millis(150));
        let start = Instant::now();
        for r in worker.handle(Request::Halt) {
            app.apply(r);
        }
        halts.push(start.elapsed());
        settle(&mut app, &mut worker);
        draw(&mut app, &mut term);
        redraws.push(start.elapsed());
        assert!(!app.running());
    }
    let _ = worker.handle(Request::Finish(Leave::Running));

    println!("TUI timings against the real kernel under QEMU (120x40 frame, {runs}+ runs, median [min..max])");
    let row = |name: &str, v: &[Duration]| {
        let lo = v.iter().min().copied().unwrap_or_default();
        let hi = v.iter().max().copied().unwrap_or_default();
        println!(
            "{name:<52} {:>9}  [{} .. {}]",
            ms(median(v.to_vec())),
            ms(lo),
            ms(hi)
        );
    };
    row("  open the ELF, build the DWARF index", &ph.load);
    row(
        "  connect to the gdb stub (QEMU halts the guest)",
        &ph.connect,
    );
    row(
        "  snapshot: harts, CSRs, backtraces, proc[], cpus[]",
        &ph.snapshot,
    );
    row("  walk the selected process's page table", &ph.walk);
    row("  draw 120x40", &ph.draw);
    row(
        "attach -> first complete frame (sum of the above)",
        &ph.total,
    );
    row("halt: interrupt + snapshot read", &halts);
    row("halt -> redrawn frame (snapshot, walk, draw)", &redraws);
}
