//! kinspect against QEMU's own monitor, on the real kernel under the real
//! QEMU: `kinspect maps --hart N` must equal `info mem` on hart N line
//! for line, and `kinspect translate` must agree with `gva2gpa`.
//!
//! The machine is paused through QMP first (so page-table A/D bits cannot
//! change between the two views) and QMP is only used while no gdb client
//! is connected (the stub serves one client at a time). kinspect must
//! leave the paused machine paused.

use std::process::{Command, Output};
use std::time::Duration;

use kinspect_testkit::{json_u64, kernel_elf, Machine};

const BOOT: Duration = Duration::from_secs(60);

fn kinspect(m: &Machine, args: &[&str]) -> Output {
    let elf = kernel_elf();
    let mut full = vec![
        "--gdb".to_string(),
        m.gdb_addr(),
        "--elf".to_string(),
        elf.display().to_string(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(&full)
        .output()
        .expect("running kinspect")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\r', "")
}

fn booted() -> Machine {
    let mut m = Machine::start();
    // The shell prompt, not "hart 2 starting": a hart prints that line before
    // it loads satp (as xv6 does), so its satp may still be 0 right after.
    m.wait_for("$ ", BOOT);
    m.pause();
    m
}

fn assert_paused(m: &mut Machine) {
    let status = m.hmp(0, "info status");
    assert!(
        status.contains("paused"),
        "kinspect resumed a paused machine: {status}"
    );
}

#[test]
fn maps_equals_info_mem_on_every_hart() {
    let mut m = booted();
    for hart in 0..3u32 {
        let ours = kinspect(&m, &["maps", "--hart", &hart.to_string()]);
        assert_eq!(
            ours.status.code(),
            Some(0),
            "kinspect maps --hart {hart} failed: {}",
            text(&ours.stderr)
        );
        let qemu = text(m.hmp(hart, "info mem").as_bytes());
        let ours = text(&ours.stdout);
        assert!(
            ours.lines().count() > 10,
            "suspiciously few ranges:\n{ours}"
        );
        let (q, k): (Vec<&str>, Vec<&str>) = (qemu.lines().collect(), ours.lines().collect());
        for (i, (q, k)) in q.iter().zip(&k).enumerate() {
            assert_eq!(q, k, "hart {hart}, line {}", i + 1);
        }
        assert_eq!(q.len(), k.len(), "hart {hart}: line counts differ");
        assert_paused(&mut m);
    }
}

/// `gva2gpa` on hart `hart`: Some(pa) or None for "Unmapped".
fn gva2gpa(m: &mut Machine, hart: u32, va: u64) -> Option<u64> {
    let out = m.hmp(hart, &format!("gva2gpa {va:#x}"));
    let out = out.trim();
    match out.strip_prefix("gpa: 0x") {
        Some(hex) => Some(u64::from_str_radix(hex, 16).expect("gva2gpa's number")),
        None => {
            assert!(
                out.contains("Unmapped"),
                "unexpected gva2gpa output: {out:?}"
            );
            None
        }
    }
}

#[test]
fn translate_agrees_with_gva2gpa() {
    let mut m = booted();
    const TRAMPOLINE: u64 = (1 << 38) - 4096;
    const KSTACK0: u64 = TRAMPOLINE - 2 * 4096;
    // Harts in S-mode translate through satp in QEMU's debug walk.
    let mut checked = 0;
    for hart in 0..3u32 {
        let regs = kinspect(&m, &["--json", "regs", "--hart", &hart.to_string()]);
        assert_eq!(regs.status.code(), Some(0), "{}", text(&regs.stderr));
        let regs: serde_json::Value = serde_json::from_slice(&regs.stdout).unwrap();
        if regs["priv"] != "S" {
            continue;
        }
        checked += 1;
        for (what, va) in [
            ("main", None),
            ("TRAMPOLINE", Some(TRAMPOLINE + 0x10)),
            ("KSTACK(0)", Some(KSTACK0 + 0x123)),
            ("the guard page under KSTACK(0)", Some(KSTACK0 - 4096)),
            ("address 0", Some(0)),
            ("the UART", Some(0x1000_0000)),
        ] {
            let arg = va.map(|v| format!("{v:#x}")).unwrap_or(what.to_string());
            let out = kinspect(
                &m,
                &["--json", "translate", "--hart", &hart.to_string(), &arg],
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{what}: {e}: {}", text(&out.stderr)));
            let va = json_u64(&v["va"]).unwrap();
            let ours = json_u64(&v["pa"]);
            let qemu = gva2gpa(&mut m, hart, va);
            assert_eq!(ours, qemu, "hart {hart}, {what} ({va:#x})");
            let want = if qemu.is_some() { 0 } else { 4 };
            assert_eq!(
                out.status.code(),
                Some(want),
                "hart {hart}, {what}: {}",
                text(&out.stderr)
            );
        }
        assert_paused(&mut m);
    }
    assert!(checked > 0, "no hart was in S-mode to compare with gva2gpa");
}

#[test]
fn a_running_machine_is_left_running() {
    let mut m = Machine::start();
    // The shell prompt, not "hart 2 starting": a hart prints that line before
    // it loads satp (as xv6 does), so its satp may still be 0 right after.
    m.wait_for("$ ", BOOT);
    let out = kinspect(&m, &["satp"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = m.hmp(0, "info status");
    assert!(
        status.contains("running"),
        "kinspect left a running machine halted: {status}"
    );
}
