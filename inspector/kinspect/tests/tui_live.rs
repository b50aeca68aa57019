//! Issue 14: the TUI's live mode against the real kernel under the real
//! QEMU, through the RAM fast path. The TUI's worker runs on its own
//! thread as in `kinspect attach`; while the guest runs, it must send a
//! live frame about ten times a second (the process table and the followed
//! page table, read from the QEMU process) and never halt the guest: no
//! halted state, no snapshot (which needs registers, so a halt). The
//! frames must follow `vmsteps`: it appears in the process table, and its
//! `sbrk` of two pages shows as two more user pages in its page table.

use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinspect::target::fastram::{FastPath, FastQemu};
use kinspect::target::qemu::QemuTarget;
use kinspect::target::{Control, Csr, GeneralRegs, Hart, Result as TResult, RunState, Target};
use kinspect::tui::worker::{Leave, LiveFrame, Reply, Request, Worker};
use kinspect_sv39::{PhysAddr, PteFlags, Ram};
use kinspect_symbols::Symbols;
use kinspect_testkit::Machine;
use std::sync::atomic::{AtomicUsize, Ordering};

const BOOT: Duration = Duration::from_secs(120);

/// The fast-path target, counting every halt asked of it.
struct Counting {
    inner: FastQemu,
    halts: Arc<AtomicUsize>,
}

impl Target for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn harts(&mut self) -> TResult<Vec<Hart>> {
        self.inner.harts()
    }
    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> TResult<()> {
        self.inner.read_phys(pa, buf)
    }
    fn regs(&mut self, hart: Hart) -> TResult<GeneralRegs> {
        self.inner.regs(hart)
    }
    fn csr(&mut self, hart: Hart, csr: Csr) -> TResult<u64> {
        self.inner.csr(hart, csr)
    }
    fn run_state(&mut self) -> TResult<RunState> {
        self.inner.run_state()
    }
    fn control(&mut self) -> Option<&mut dyn Control> {
        Some(self)
    }
    fn direct_ram(&self) -> bool {
        self.inner.direct_ram()
    }
    fn set_live(&mut self, on: bool) -> bool {
        self.inner.set_live(on)
    }
}

impl Control for Counting {
    fn halt(&mut self) -> TResult<()> {
        self.halts.fetch_add(1, Ordering::SeqCst);
        self.inner.control().expect("control").halt()
    }
    fn resume(&mut self) -> TResult<()> {
        self.inner.control().expect("control").resume()
    }
    fn step(&mut self, hart: Hart) -> TResult<()> {
        self.inner.control().expect("control").step(hart)
    }
    fn state_at_attach(&self) -> RunState {
        self.inner.stub_ref().state_at_attach()
    }
    fn insert_breakpoint(&mut self, addr: u64) -> TResult<()> {
        self.inner
            .control()
            .expect("control")
            .insert_breakpoint(addr)
    }
    fn remove_breakpoint(&mut self, addr: u64) -> TResult<()> {
        self.inner
            .control()
            .expect("control")
            .remove_breakpoint(addr)
    }
    fn wait_for_stop(&mut self, wait: Duration) -> TResult<RunState> {
        self.inner.control().expect("control").wait_for_stop(wait)
    }
    fn resumed_elsewhere(&mut self, wait: Duration) -> TResult<bool> {
        self.inner
            .control()
            .expect("control")
            .resumed_elsewhere(wait)
    }
    fn detach(&mut self) -> TResult<()> {
        self.inner.control().expect("control").detach()
    }
}

/// The pid `vmsteps` printed at `step`, from the console after `mark`.
fn vmsteps_stop(m: &Machine, mark: usize, step: &str) -> i64 {
    let prefix = format!("vmsteps: {step} pid ");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let con = m.console().replace('\r', "");
        let tail = &con[mark.min(con.len())..];
        if let Some(i) = tail.find(&prefix) {
            if let Some((pid, _)) = tail[i + prefix.len()..].split_once(", press Enter") {
                return pid.trim().parse().expect("a pid");
            }
        }
        assert!(
            Instant::now() < deadline,
            "vmsteps never stopped at {step}; console:\n{tail}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live frames until `want` takes one; anything that says the guest was
/// halted (or a request failed) fails the test.
fn frame_where(
    rx: &Receiver<Reply>,
    what: &str,
    frames: &mut u64,
    mut want: impl FnMut(&LiveFrame) -> bool,
) -> LiveFrame {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no live frame with {what} in time");
        match rx.recv_timeout(left) {
            Ok(Reply::Live(f)) => {
                assert!(f.n > *frames, "frame {} after {}", f.n, frames);
                *frames = f.n;
                if want(&f) {
                    return *f;
                }
            }
            Ok(Reply::State(s)) => panic!("the worker says the guest is {s:?}: it was halted"),
            Ok(Reply::Snapshot(_)) => {
                panic!("a snapshot (registers) was read: the guest was halted")
            }
            Ok(Reply::Error(e)) | Ok(Reply::Lost(e)) => panic!("{e}"),
            Ok(Reply::LiveMode(Err(e))) => panic!("no live mode: {e}"),
            Ok(_) => {}
            Err(e) => panic!("waiting for a live frame with {what}: {e}"),
        }
    }
}

fn user_pages(f: &LiveFrame, root: PhysAddr) -> Option<u64> {
    let (r, walk, _) = f.walk.as_ref()?;
    let walk = walk.as_ref().ok()?;
    (*r == root).then(|| {
        walk.leaves()
            .filter(|l| l.pte.has(PteFlags::U))
            .map(|l| l.size / 4096)
            .sum()
    })
}

#[test]
fn live_frames_follow_a_process_and_its_sbrk_without_halting_the_guest() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let syms = Arc::new(Symbols::open(kinspect_testkit::kernel_elf()).expect("kernel ELF"));
    let stub = QemuTarget::connect(&m.gdb_addr()).expect("connecting");
    let target = FastQemu::new(stub, FastPath::Auto);
    assert!(target.fallback().is_none(), "{:?}", target.fallback());
    let profile = kinspect::session::resolve_profile("auto", None).expect("profile");
    let ram = Ram {
        base: PhysAddr(0x8000_0000),
        size: 128 << 20,
    };
    let halts = Arc::new(AtomicUsize::new(0));
    let target = Counting {
        inner: target,
        halts: Arc::clone(&halts),
    };
    let mut w = Worker::new(Box::new(target), Some(syms), profile, ram);
    // The attach halts (QEMU does) and reads; the guest is then let run.
    let attach = w.attach();
    assert!(
        attach
            .iter()
            .any(|r| matches!(r, Reply::State(RunState::Running))),
        "the guest was not resumed after the attach"
    );
    let (req, req_rx) = channel();
    let (tx, rx) = channel();
    let worker = std::thread::spawn(move || w.run(req_rx, tx));
    req.send(Request::Live(true)).unwrap();
    let halted_at_attach = halts.load(Ordering::SeqCst);

    let mut frames = 0;
    let mark = m.console_len();
    m.send(b"vmsteps\n");
    let pid = vmsteps_stop(&m, mark, "start");
    let f = frame_where(&rx, "vmsteps", &mut frames, |f| {
        f.procs
            .iter()
            .any(|p| p.pid == pid && p.name == "vmsteps" && p.pagetable.0 != 0)
    });
    let root = f
        .procs
        .iter()
        .find(|p| p.pid == pid)
        .map(|p| p.pagetable)
        .expect("vmsteps' row");
    // The page-table tab asks for its walk; frames walk it from then on.
    req.send(Request::Walk(root)).unwrap();
    let f = frame_where(&rx, "vmsteps' page table", &mut frames, |f| {
        user_pages(f, root).is_some()
    });
    let before = user_pages(&f, root).unwrap_or(0);
    assert!(before > 0, "vmsteps has no user pages");

    let mark = m.console_len();
    m.send(b"\n");
    vmsteps_stop(&m, mark, "sbrk");
    let f = frame_where(&rx, "the sbrk's two pages", &mut frames, |f| {
        user_pages(f, root) == Some(before + 2)
    });
    assert!(f.read < Duration::from_secs(5), "{f:?}");
    // The frame says the table grew (by both pages, or by the second if a
    // frame fell between the sbrk's two mappings).
    assert!(
        f.pages.is_some_and(|(_, change)| change > 0),
        "no growth in {:?}",
        f.pages
    );
    // Ten frames a second, give or take a busy machine: at least a few.
    assert!(frames >= 3, "only {frames} frames");
    assert_eq!(
        halts.load(Ordering::SeqCst),
        halted_at_attach,
        "the guest was halted while live"
    );

    req.send(Request::Finish(Leave::Running)).unwrap();
    let _ = worker.join();
    m.send(b"\n");
}

/// A panic while live: the frame that sees the kernel's `panicked` set
/// makes the worker halt once and read the panic whole (the snapshot
/// carries the message), then let the guest run on as it was; no more
/// halts after that.
#[test]
fn a_panic_seen_live_is_read_whole_with_one_halt() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let syms = Arc::new(Symbols::open(kinspect_testkit::kernel_elf()).expect("kernel ELF"));
    let target = FastQemu::new(
        QemuTarget::connect(&m.gdb_addr()).expect("connecting"),
        FastPath::Auto,
    );
    assert!(target.fallback().is_none(), "{:?}", target.fallback());
    let halts = Arc::new(AtomicUsize::new(0));
    let target = Counting {
        inner: target,
        halts: Arc::clone(&halts),
    };
    let profile = kinspect::session::resolve_profile("auto", None).expect("profile");
    let ram = Ram {
        base: PhysAddr(0x8000_0000),
        size: 128 << 20,
    };
    let mut w = Worker::new(Box::new(target), Some(syms), profile, ram);
    let _ = w.attach();
    let (req, req_rx) = channel();
    let (tx, rx) = channel();
    let worker = std::thread::spawn(move || w.run(req_rx, tx));
    req.send(Request::Live(true)).unwrap();
    let before = halts.load(Ordering::SeqCst);

    let mark = m.console_len();
    m.send(b"kfault enable\n");
    m.wait_for_after(mark, "$ ", Duration::from_secs(60));
    m.send(b"kfault remap\n");
    m.wait_for_after(mark, "panic: remap", Duration::from_secs(60));

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut frames_after = 0;
    let mut message = None;
    while frames_after < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no panic read in time (message {message:?})"
        );
        match rx.recv_timeout(left) {
            Ok(Reply::Snapshot(s)) => message = s.panic.clone(),
            Ok(Reply::Live(f)) if message.is_some() => {
                assert!(f.panicked, "a frame after the panic without it");
                frames_after += 1;
            }
            Ok(Reply::Error(e)) | Ok(Reply::Lost(e)) => panic!("{e}"),
            Ok(_) => {}
            Err(e) => panic!("waiting for the panic: {e}"),
        }
    }
    assert_eq!(message.as_deref(), Some("remap"));
    assert_eq!(
        halts.load(Ordering::SeqCst),
        before + 1,
        "the panic should cost one halt"
    );
    req.send(Request::Finish(Leave::Running)).unwrap();
    let _ = worker.join();
}
