//! The live backend against the real QEMU 7.2 running the real kernel,
//! with QEMU's own monitor (QMP `hmp`) as the independent oracle:
//! registers and CSRs (`info registers`), physical memory (`xp`,
//! `pmemsave`), `info mem`, and the run state (`info status`).

use std::time::Duration;

use kinspect::target::qemu::QemuTarget;
use kinspect::target::{Csr, RunState, Target, TargetError};
use kinspect_testkit::{Boot, Machine};

const BOOT: Duration = Duration::from_secs(60);

/// A machine whose kernel has reached the shell prompt.
fn booted() -> Machine {
    let m = Machine::start();
    m.wait_for("init: starting sh", BOOT);
    m.wait_for("$ ", BOOT);
    m
}

/// A value from QEMU's `info registers` (`satp`, `pc`, `x10/a0`, ...).
fn info_register(dump: &str, name: &str) -> Option<u64> {
    let mut words = dump.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return u64::from_str_radix(words.next()?, 16).ok();
        }
    }
    None
}

/// `info status` says "VM status: running" or "VM status: paused (...)".
fn vm_status(m: &mut Machine) -> String {
    m.hmp(0, "info status").trim().to_string()
}

#[test]
fn three_harts_with_the_registers_and_csrs_qemu_reports() {
    let mut m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    assert!(t.was_running());
    assert_eq!(t.run_state().unwrap(), RunState::Halted);
    assert_eq!(t.harts().unwrap(), [0, 1, 2]);
    for hart in 0..3 {
        // The machine is halted by our session, so QMP sees the same state.
        let dump = m.hmp(hart as u32, "info registers");
        let satp = t.csr(hart, Csr::Satp).unwrap();
        assert_eq!(
            Some(satp),
            info_register(&dump, "satp"),
            "hart {hart}:\n{dump}"
        );
        assert_eq!(satp >> 60, 8, "the kernel runs with Sv39 on hart {hart}");
        for csr in [
            Csr::Stvec,
            Csr::Sepc,
            Csr::Scause,
            Csr::Stval,
            Csr::Sscratch,
        ] {
            let want = info_register(&dump, csr.name()).unwrap();
            assert_eq!(t.csr(hart, csr).unwrap(), want, "{csr} of hart {hart}");
        }
        let regs = t.regs(hart).unwrap();
        assert_eq!(
            Some(regs.pc),
            info_register(&dump, "pc"),
            "pc of hart {hart}"
        );
        assert_eq!(
            Some(regs.x[2]),
            info_register(&dump, "x2/sp"),
            "sp of hart {hart}"
        );
        assert_eq!(
            Some(regs.x[10]),
            info_register(&dump, "x10/a0"),
            "a0 of hart {hart}"
        );
        let privilege = t.csr(hart, Csr::Priv).unwrap();
        assert!(
            privilege == 0 || privilege == 1,
            "hart {hart} in mode {privilege}"
        );
        // The remaining CSRs are readable too.
        for csr in [Csr::Sstatus, Csr::Sie, Csr::Sip] {
            t.csr(hart, csr).unwrap();
        }
    }
    assert!(matches!(t.regs(3), Err(TargetError::NoHart(3))));
    t.finish().unwrap();
}

#[test]
fn physical_memory_matches_qemus_xp_and_pmemsave() {
    let mut m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();

    let mut head = [0u8; 32];
    t.read_phys(0x8000_0000, &mut head).unwrap();
    let xp = m.hmp(0, "xp /4gx 0x80000000");
    let words: Vec<u64> = xp
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("0x"))
        .map(|w| u64::from_str_radix(w, 16).unwrap())
        .collect();
    assert_eq!(words.len(), 4, "{xp}");
    for (i, w) in words.iter().enumerate() {
        assert_eq!(
            u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().unwrap()),
            *w
        );
    }
    assert_ne!(
        head, [0; 32],
        "the kernel's first instructions are not zeros"
    );

    // 1 MiB + 3 bytes from an odd address: many `m` packets, none aligned.
    let file = std::env::temp_dir().join(format!("kinspect-pmem-{}.bin", std::process::id()));
    let (start, len) = (0x8000_0ffd_u64, (1 << 20) + 3);
    let out = m.hmp(
        0,
        &format!("pmemsave {start:#x} {len:#x} \"{}\"", file.display()),
    );
    assert!(out.trim().is_empty(), "pmemsave said {out}");
    let oracle = std::fs::read(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let mut ours = vec![0u8; len];
    t.read_phys(start, &mut ours).unwrap();
    assert!(ours == oracle, "physical read differs from pmemsave");

    // PhyMemMode is back to 0 afterwards: virtual reads work as before.
    assert!(!t.session().phys_mem_mode().unwrap());
    t.finish().unwrap();
}

#[test]
fn physical_mode_is_restored_on_every_path() {
    let m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let s = t.session();
    // An early return with the guard alive (the `?` path) restores it.
    let failing = |s: &mut kinspect_rsp::Session| -> kinspect_rsp::Result<()> {
        let mut p = s.physical()?;
        let mut b = [0u8; 8];
        p.read(0x8000_0000, &mut b)?;
        Err(kinspect_rsp::Error::State("a failure half-way".into()))
    };
    assert!(failing(s).is_err());
    assert!(!s.phys_mem_mode().unwrap());
    // A mode that was already 1 stays 1.
    s.set_phys_mem_mode(true).unwrap();
    let mut b = [0u8; 8];
    s.read_physical(0x8000_0000, &mut b).unwrap();
    assert!(s.phys_mem_mode().unwrap());
    s.set_phys_mem_mode(false).unwrap();
    t.finish().unwrap();
}

#[test]
fn reads_outside_ram_are_errors_not_zeros() {
    let m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let mut b = [0u8; 16];
    for pa in [0x0, 0x9000_0000, 0x1000_0000, 0x87ff_fff8, u64::MAX - 8] {
        let e = t.read_phys(pa, &mut b).unwrap_err();
        assert!(
            matches!(e, TargetError::Memory { addr, len: 16 } if addr == pa),
            "{pa:#x}: {e}"
        );
    }
    // The last bytes of RAM are fine.
    t.read_phys(0x87ff_fff0, &mut b).unwrap();
    t.finish().unwrap();
}

#[test]
fn info_mem_through_the_gdb_monitor_is_qemus() {
    let mut m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let ours = t.monitor().unwrap().monitor("info mem").unwrap();
    assert!(ours.starts_with("vaddr"), "{ours}");
    assert!(ours.lines().count() > 5, "{ours}");
    let qmp: Vec<String> = (0..3)
        .map(|cpu| m.hmp(cpu, "info mem").replace("\r\n", "\n"))
        .collect();
    assert!(qmp.contains(&ours), "gdb monitor:\n{ours}\nQMP:\n{qmp:#?}");
    t.finish().unwrap();
}

#[test]
fn a_running_guest_runs_again_after_a_one_shot_session() {
    let mut m = booted();
    assert_eq!(vm_status(&mut m), "VM status: running");
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    assert!(t.was_running());
    assert!(vm_status(&mut m).starts_with("VM status: paused"));
    t.csr(0, Csr::Satp).unwrap();
    t.finish().unwrap();
    assert_eq!(vm_status(&mut m), "VM status: running");
    // And the kernel really runs: the shell answers.
    let mark = m.console_len();
    m.send(b"echo kinspect-was-here\n");
    m.wait_for_after(mark, "kinspect-was-here\n", BOOT);

    // Dropping without finish does the same.
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    t.regs(1).unwrap();
    drop(t);
    assert_eq!(vm_status(&mut m), "VM status: running");
}

#[test]
fn a_halted_guest_stays_halted() {
    let mut m = booted();
    m.pause();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    assert!(!t.was_running());
    t.regs(0).unwrap();
    t.finish().unwrap();
    assert!(
        vm_status(&mut m).starts_with("VM status: paused"),
        "{}",
        vm_status(&mut m)
    );
    m.resume();

    // A machine frozen at reset (-S) needs no kernel to be inspected.
    let mut m = Machine::boot(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    assert!(!t.was_running());
    assert_eq!(t.harts().unwrap(), [0, 1, 2]);
    assert_eq!(
        t.regs(2).unwrap().pc,
        0x1000,
        "harts start at the MROM reset vector"
    );
    t.finish().unwrap();
    let status = vm_status(&mut m);
    assert!(!status.contains("running"), "{status}");
}

#[test]
fn step_runs_one_instruction_on_one_hart() {
    let m = Machine::boot(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let before: Vec<u64> = (0..3).map(|h| t.regs(h).unwrap().pc).collect();
    assert_eq!(before, [0x1000; 3]);
    t.control().unwrap().step(1).unwrap();
    let after: Vec<u64> = (0..3).map(|h| t.regs(h).unwrap().pc).collect();
    assert_eq!(after, [0x1000, 0x1004, 0x1000]);
    t.finish().unwrap();
}

#[test]
fn a_breakpoint_stops_the_machine_where_it_was_set() {
    let m = Machine::boot(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let s = t.session();
    // Every hart jumps from the reset vector to the kernel's _entry.
    s.insert_breakpoint(0x8000_0000, 4).unwrap();
    s.resume().unwrap();
    assert_eq!(s.state(), kinspect_rsp::RunState::Running);
    // The harts reach _entry within a few instructions; the target's run
    // state notices the stop by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.run_state().unwrap() == RunState::Running {
        assert!(
            std::time::Instant::now() < deadline,
            "no stop at the breakpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pcs: Vec<u64> = (0..3).map(|h| t.regs(h).unwrap().pc).collect();
    assert!(
        pcs.contains(&0x8000_0000),
        "no hart at the breakpoint: {pcs:x?}"
    );
    let s = t.session();
    s.remove_breakpoint(0x8000_0000, 4).unwrap();
    t.control().unwrap().halt().unwrap();
    t.finish().unwrap();
}

#[test]
fn qemu_dying_mid_session_is_a_one_line_error() {
    let m = booted();
    let mut t = QemuTarget::connect(&m.gdb_addr()).unwrap();
    t.harts().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", &m.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let e = t.regs(0).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(e, TargetError::Disconnected(_)), "{e}");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("closed the connection") && !msg.contains('\n'),
        "{msg}"
    );
    drop(t);
}

#[test]
fn nothing_listening_is_the_error_the_user_can_act_on() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = QemuTarget::connect(&format!(":{port}")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot reach QEMU's gdb stub at localhost:{port}: connection refused — is QEMU running with -gdb tcp::{port}?")
    );
}
