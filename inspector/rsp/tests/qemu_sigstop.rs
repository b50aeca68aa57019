//! The real QEMU 7.2 when its stub does not answer, as issue 12 found it:
//!
//! - frozen with SIGSTOP in the middle of a session: the read times out
//!   once, in the time it says; restoring `PhyMemMode` and detaching do not
//!   wait on the frozen stub (before: three time-outs in a row, 31 s for a
//!   "within 10s" message); once QEMU is continued it acts on what was
//!   sent blind, so the guest runs again, as found, `PhyMemMode` back to 0;
//! - busy with another client, or frozen before we connect: the connection
//!   times out, and when QEMU takes it later (which halts the guest) the
//!   guest is resumed, as found, instead of staying paused with no
//!   debugger (`kinspect_rsp::undertaker`).

use std::process::Command;
use std::time::{Duration, Instant};

use kinspect_rsp::{ConnectOptions, Error, Session};
use kinspect_testkit::Machine;

fn signal(m: &Machine, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &m.pid().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {}", m.pid());
}

#[test]
fn a_qemu_stopped_mid_read_times_out_once_and_is_left_as_found() {
    let m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(90));
    let timeout = Duration::from_secs(1);
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        timeout,
        ..ConnectOptions::default()
    };
    let mut s = Session::connect(&m.gdb_addr(), &opts).unwrap();
    assert!(s.was_running(), "the guest runs at its shell prompt");

    let mut phys = s.physical().unwrap();
    signal(&m, "-STOP");
    let t0 = Instant::now();
    let mut buf = [0u8; 8];
    let e = phys.read(0x8000_0000, &mut buf).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("within 1s"), "{e}");
    let restore = phys.restore();
    assert!(
        matches!(restore, Err(Error::OutOfStep { .. })),
        "{restore:?}"
    );
    s.finish().unwrap();
    let took = t0.elapsed();
    signal(&m, "-CONT");
    assert!(
        took < timeout + Duration::from_millis(500),
        "read, restore and finish on a frozen QEMU took {took:?} with a {timeout:?} time-out"
    );

    // QEMU, continued, read the m packet, PhyMemMode:0 and D;1 we left.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match Session::connect(&m.gdb_addr(), &opts) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                eprintln!("reconnecting: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("QEMU does not take a new client after SIGCONT: {e}"),
        }
    };
    assert!(
        again.was_running(),
        "the guest was left paused: the blind D;1 did not reach QEMU"
    );
    assert!(!again.phys_mem_mode().unwrap(), "PhyMemMode left at 1");
    again.finish().unwrap();
}

/// QEMU's own word on the run state (QMP), independent of the gdb stub.
fn running(m: &mut Machine) -> bool {
    m.hmp(0, "info status").contains("VM status: running")
}

fn wait_running(m: &mut Machine, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if running(m) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running(m)
}

fn quick(timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        timeout,
        ..ConnectOptions::default()
    }
}

#[test]
fn a_connection_queued_behind_another_client_leaves_the_guest_running() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(90));
    let first = Session::connect(&m.gdb_addr(), &quick(Duration::from_secs(5))).unwrap();
    assert!(first.was_running());
    // QEMU serves `first`: this one waits in the backlog, unanswered.
    let t0 = Instant::now();
    let e = Session::connect(&m.gdb_addr(), &quick(Duration::from_millis(500))).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert!(e.to_string().contains("another debugger"), "{e}");
    // `first` leaves (D;1: running again); QEMU takes the queued one, which
    // halts the guest, and the undertaker resumes it.
    first.finish().unwrap();
    assert!(
        wait_running(&mut m, Duration::from_secs(5)),
        "the guest stayed paused after QEMU took the queued connection"
    );
    // ... for good: the shell still answers.
    let mark = m.console_len();
    m.send(b"echo still-running\n");
    m.wait_for_after(mark, "still-running\n", Duration::from_secs(10));
}

#[test]
fn a_qemu_frozen_before_we_connect_times_out_in_time_and_is_left_as_found() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(90));
    signal(&m, "-STOP");
    let t0 = Instant::now();
    let e = Session::connect(&m.gdb_addr(), &quick(Duration::from_secs(1))).unwrap_err();
    let took = t0.elapsed();
    signal(&m, "-CONT");
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("within 1s"), "{e}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(
        wait_running(&mut m, Duration::from_secs(5)),
        "the guest stayed paused after QEMU, continued, took the connection"
    );
}

/// The same, halted: a guest halted when QEMU takes the connection stays
/// halted (no `D`).
#[test]
fn a_queued_connection_leaves_a_halted_guest_halted() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(90));
    m.pause();
    let first = Session::connect(&m.gdb_addr(), &quick(Duration::from_secs(5))).unwrap();
    assert!(!first.was_running());
    let _ = Session::connect(&m.gdb_addr(), &quick(Duration::from_millis(500))).unwrap_err();
    first.finish().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(!running(&mut m), "a halted guest was resumed");
    m.resume();
}
