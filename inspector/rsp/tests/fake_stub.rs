//! The client end to end against a fake QEMU built on the `gdbstub` crate
//! (tests/support), over real TCP on 127.0.0.1: no QEMU needed.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use kinspect_rsp::{ConnectOptions, Error, RunState, Session, StopReply, ThreadId};
use support::{core_value, csr_value, ram_image, Fake, Options, RAM_BASE, SATP, SSTATUS};

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

#[test]
fn memory_reads_are_split_to_fit_the_advertised_packet_size() {
    let fake = Fake::start(Options {
        packet_size: 256,
        ..Options::default()
    });
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    assert_eq!(s.features().packet_size, 256);
    assert_eq!(s.max_read(), 128);
    let mut buf = vec![0u8; 5000];
    s.read_memory(RAM_BASE + 10, &mut buf).unwrap();
    assert_eq!(buf, ram_image(64 * 1024)[10..5010]);
    s.finish().unwrap();

    let reads = fake.memory_reads();
    assert_eq!(reads.len(), 5000usize.div_ceil(128), "{reads:?}");
    assert!(reads.iter().all(|&(_, len)| len <= 128), "{reads:?}");
    // Contiguous, in order, covering exactly what was asked.
    let mut next = RAM_BASE + 10;
    for (a, len) in reads {
        assert_eq!(a, next);
        next += len as u64;
    }
    assert_eq!(next, RAM_BASE + 5010);
    // The zero run in the image came run-length encoded ("0*" + count).
    assert!(
        fake.sent().contains("0*"),
        "gdbstub sent no run-length encoding"
    );
}

#[test]
fn harts_registers_and_csrs_by_name() {
    let fake = Fake::start(Options::default());
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    assert!(!s.was_running(), "gdbstub sends no stop reply on attach");
    let threads = s.threads().unwrap();
    assert_eq!(
        threads,
        [
            ThreadId::for_hart(0),
            ThreadId::for_hart(1),
            ThreadId::for_hart(2)
        ]
    );
    for (h, &t) in threads.iter().enumerate() {
        let regs = s.core_regs(t).unwrap();
        assert_eq!(regs.x[5], core_value(h, 5));
        assert_eq!(regs.pc, RAM_BASE + 0x1000 * h as u64);
        assert_eq!(s.read_register(t, "satp").unwrap(), csr_value(h, SATP));
        assert_eq!(
            s.read_register(t, "sstatus").unwrap(),
            csr_value(h, SSTATUS)
        );
        // priv has no regnum: numbered after the 33 core and 32 FP registers.
        assert_eq!(s.regnum("priv").unwrap(), 65);
        assert_eq!(s.read_register(t, "priv").unwrap(), 1);
    }
    assert_eq!(s.regnum("satp").unwrap(), 450);
    assert!(matches!(
        s.read_register(threads[0], "mstatus"),
        Err(Error::NoRegister(_))
    ));
    assert!(matches!(
        s.core_regs(ThreadId::for_hart(7)),
        Err(Error::NoThread(_))
    ));
    s.finish().unwrap();
    // The target description was read once, include by include.
    let wire = fake.received();
    assert_eq!(wire.matches("qXfer:features:read:target.xml:0,").count(), 1);
    assert!(wire.contains("qXfer:features:read:riscv-csr.xml:"));
}

#[test]
fn monitor_output_is_collected_from_o_packets_until_ok() {
    let fake = Fake::start(Options {
        monitor_lines: 2000,
        ..Options::default()
    });
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    let out = s.monitor("info mem").unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2002);
    assert_eq!(
        lines[2],
        "0000000000000000 0000000080000000 0000000000001000 rw--ad-"
    );
    assert_eq!(
        lines[2001],
        "00000000007cf000 00000000807cf000 0000000000001000 rw--ad-"
    );
    assert_eq!(s.monitor("bogus").unwrap(), "unknown command: 'bogus'\n");
    s.finish().unwrap();
}

#[test]
fn unreadable_memory_and_missing_physical_mode_are_clear_errors() {
    let fake = Fake::start(Options::default());
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    let mut buf = [0u8; 16];
    let e = s.read_memory(0x1000, &mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Memory {
                addr: 0x1000,
                len: 16,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("cannot read 16 bytes of memory at 0x1000"),
        "{e}"
    );
    // gdbstub is not QEMU: no Qqemu.PhyMemMode.
    let e = s.read_physical(RAM_BASE, &mut buf).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("PhyMemMode"), "{e}");
    s.finish().unwrap();
}

#[test]
fn step_breakpoints_resume_halt_and_a_clean_finish() {
    let fake = Fake::start(Options::default());
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    let t = ThreadId::for_hart(1);
    let stop = s.step(t).unwrap();
    assert!(
        matches!(stop, StopReply::Signal { signal: 5, .. }),
        "{stop:?}"
    );
    assert_eq!(s.core_regs(t).unwrap().pc, RAM_BASE + 0x1000 + 4);
    s.insert_breakpoint(RAM_BASE + 0x40, 4).unwrap();
    s.resume().unwrap();
    assert_eq!(s.state(), RunState::Running);
    let mut buf = [0u8; 4];
    assert!(matches!(
        s.read_memory(RAM_BASE, &mut buf),
        Err(Error::State(_))
    ));
    assert_eq!(s.wait_for_stop(Duration::from_millis(50)).unwrap(), None);
    s.halt().unwrap();
    assert_eq!(s.state(), RunState::Halted);
    s.read_memory(RAM_BASE, &mut buf).unwrap();
    s.finish().unwrap();

    let wire = fake.received();
    let m = fake.handle.join().unwrap().expect("fake ran");
    assert_eq!(m.stepped, [1]);
    assert!(
        m.scheduler_locked,
        "the other harts stay stopped during a step"
    );
    assert!(m.breakpoints.is_empty(), "finish removes our breakpoints");
    assert!(wire.contains("$vCont;s:p1.2#"), "{wire}");
    assert!(wire.contains('\x03'));
    for never in ["$k#", "$vKill", "$?#"] {
        assert!(!wire.contains(never), "sent {never}: {wire}");
    }
}

#[test]
fn a_stub_that_dies_mid_packet_is_an_error_not_a_hang() {
    let fake = Fake::start(Options {
        die_after: Some(1500),
        ..Options::default()
    });
    let mut s = Session::connect(
        &fake.addr,
        &ConnectOptions {
            timeout: Duration::from_secs(30),
            ..opts()
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 2048];
    let e = s.read_memory(RAM_BASE, &mut buf).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("closed the connection in the middle of the reply to m80000000,800"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // Dropping a session whose peer is gone neither hangs nor panics.
    drop(s);
}

#[test]
fn a_corrupted_reply_is_refused_with_a_nack_not_delivered() {
    // gdbstub does not resend on '-' (it hangs up), so the read must fail
    // cleanly rather than return the damaged bytes.
    let fake = Fake::start(Options {
        corrupt_after: Some(400),
        ..Options::default()
    });
    let mut s = Session::connect(&fake.addr, &opts()).unwrap();
    let mut buf = [0u8; 256];
    let e = s.read_memory(RAM_BASE, &mut buf).unwrap_err();
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    let wire = fake.received();
    assert!(
        wire.ends_with('-'),
        "the client answered the bad packet with '-': {wire}"
    );
}

#[test]
fn something_that_is_not_a_gdb_stub_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let t0 = Instant::now();
    let e = Session::connect(&addr, &opts()).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(4));
    let msg = e.to_string();
    assert!(
        msg.contains("is not a gdb stub") && msg.contains("SSH-2.0"),
        "{msg}"
    );
    server.join().unwrap();
}

#[test]
fn silence_and_hang_ups_are_bounded() {
    // Accepts and says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (c, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        drop(c);
    });
    let e = Session::connect(
        &addr,
        &ConnectOptions {
            timeout: Duration::from_millis(500),
            ..opts()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("did not answer qSupported"), "{e}");
    server.join().unwrap();

    // Accepts and hangs up at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || drop(listener.accept().unwrap()));
    let e = Session::connect(&addr, &opts()).unwrap_err();
    assert!(matches!(e, Error::Disconnected { .. }), "{e}");
    server.join().unwrap();
}

/// A stub that freezes mid-session (QEMU under SIGSTOP) costs one time-out,
/// not one per request left: the time-out says how long it waited and it
/// is true; every later request fails at once instead of taking the late
/// reply for its own; `finish` sends blind, at once, what leaves the
/// machine as found (our breakpoint removed) and the stub acts on it when
/// it is thawed.
#[test]
fn a_frozen_stub_costs_one_time_out_and_a_late_reply_is_never_taken_for_another() {
    let fake = Fake::start(Options::default());
    let timeout = Duration::from_millis(400);
    let mut s = Session::connect(&fake.addr, &ConnectOptions { timeout, ..opts() }).unwrap();
    let t = ThreadId::for_hart(0);
    s.insert_breakpoint(RAM_BASE + 0x40, 4).unwrap();
    let satp_before = s.read_register(t, "satp").unwrap();
    assert_eq!(satp_before, csr_value(0, SATP));

    fake.freeze();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let e = s.read_memory(RAM_BASE, &mut buf).unwrap_err();
    let waited = t0.elapsed();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("within 400ms"), "{e}");
    assert!(
        waited >= timeout && waited < timeout + Duration::from_millis(300),
        "waited {waited:?} for a {timeout:?} time-out"
    );

    // Thawed, the stub answers the m packet late: that reply must not be
    // read as the answer to the next request.
    fake.thaw();
    std::thread::sleep(Duration::from_millis(100));
    let t1 = Instant::now();
    let e = s.read_register(t, "satp").unwrap_err();
    assert!(matches!(e, Error::OutOfStep { .. }), "{e}");
    assert!(t1.elapsed() < Duration::from_millis(50));
    assert!(e.to_string().contains("reconnect"), "{e}");

    // Frozen again: finish does not wait on it.
    fake.freeze();
    let t2 = Instant::now();
    s.finish().unwrap();
    assert!(
        t2.elapsed() < Duration::from_millis(200),
        "finish took {:?}",
        t2.elapsed()
    );
    fake.thaw();
    let received = std::sync::Arc::clone(&fake.received);
    let m = fake.handle.join().unwrap().expect("fake ran");
    let wire = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
    assert!(
        m.breakpoints.is_empty(),
        "the blind z0 removed our breakpoint: {wire}"
    );
    let late = wire.rfind("$m").unwrap();
    assert!(wire[late..].contains("$z0,80000040,4#"), "{wire}");
}

/// The undertaker's decision, scripted: a stub that takes the connection
/// late, halting a running guest for it (stop reply first), gets `D;1`;
/// one whose guest was halted already gets nothing but the close.
#[test]
fn a_late_taken_connection_is_detached_only_if_the_guest_was_halted_for_it() {
    use kinspect_rsp::client::Client;
    use kinspect_rsp::transport::{StubAddr, Transport};
    use kinspect_rsp::undertaker::{settle, Settled};
    use std::io::Read;

    fn packet(p: &str) -> Vec<u8> {
        let sum = p.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        format!("${p}#{sum:02x}").into_bytes()
    }
    for halted_for_us in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            // Busy with another client for a while: not accepting yet.
            std::thread::sleep(Duration::from_millis(300));
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            // The qSupported sent before we were taken.
            while !String::from_utf8_lossy(&got).contains('#') {
                let n = c.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            if halted_for_us {
                c.write_all(&packet("T02thread:01;")).unwrap();
            }
            c.write_all(b"+").unwrap();
            c.write_all(&packet("PacketSize=1000;qXfer:features:read+"))
                .unwrap();
            // Then whatever comes, up to the client's end of file.
            loop {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        if String::from_utf8_lossy(&got).contains("$D;1#") {
                            c.write_all(b"+").unwrap();
                            c.write_all(&packet("OK")).unwrap();
                        }
                    }
                }
            }
            String::from_utf8_lossy(&got).into_owned()
        });
        let conn =
            Transport::connect(&StubAddr::parse(&addr).unwrap(), Duration::from_secs(2)).unwrap();
        let mut client = Client::new(conn, Duration::from_millis(100));
        client.send(b"qSupported:multiprocess+").unwrap();
        let settled = settle(&mut client, "D;1", Instant::now() + Duration::from_secs(5)).unwrap();
        let wire = server.join().unwrap();
        if halted_for_us {
            assert_eq!(settled, Settled::Resumed("D;1".into()));
            assert!(wire.contains("$D;1#b0"), "{wire}");
        } else {
            assert_eq!(settled, Settled::LeftHalted);
            assert!(!wire.contains("$D"), "resumed a halted guest: {wire}");
        }
    }
}

/// A stub that halts a running guest for us (stop reply), acks our first
/// packet and then says nothing more: the connect times out, and the
/// guest it halted for us is resumed (a blind `D;1`) rather than left
/// paused.
#[test]
fn a_stub_that_halts_the_guest_and_then_falls_silent_gets_it_resumed() {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(b"$T02thread:01;#04").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let mut acked = false;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if !acked && String::from_utf8_lossy(&got).contains("qSupported") {
                        c.write_all(b"+").unwrap();
                        acked = true;
                    }
                }
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let e = Session::connect(
        &addr,
        &ConnectOptions {
            timeout: Duration::from_millis(300),
            ..opts()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    let wire = server.join().unwrap();
    assert!(
        wire.contains("$D;1#b0"),
        "the halted guest was not resumed: {wire}"
    );
}
