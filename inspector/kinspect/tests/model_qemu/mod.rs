//! Helpers for the kernel-model tests against the real kernel under QEMU:
//! run the real `kinspect` binary, and write physical memory behind its
//! back through gdb-multiarch (`Qqemu.PhyMemMode:1`, then `disconnect` so
//! the paused machine stays paused).

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use kinspect_testkit::{gdb_batch, kernel_elf, root, Machine};

pub const T: Duration = Duration::from_secs(90);

pub struct Out {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// `kinspect --gdb ADDR --elf target/kernel/kernel.elf ARGS...`, the real binary.
pub fn kinspect(m: &Machine, args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .current_dir(root())
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(kernel_elf())
        .args(args)
        .output()
        .expect("running kinspect");
    Out {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn json(m: &Machine, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let r = kinspect(m, &a);
    assert!(
        r.code == 0 || r.code == 4 || r.code == 5,
        "kinspect {args:?}: code {} stderr {}",
        r.code,
        r.err
    );
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{e}: {}", r.out))
}

/// Write 64-bit values at physical addresses through QEMU's gdb stub,
/// leaving a paused machine paused.
pub fn write_phys(m: &Machine, writes: &[(u64, u64)]) {
    // The kernel is Rust: `{type}` casts need gdb's C parser.
    let mut cmds = vec![
        "set language c".to_string(),
        "maint packet Qqemu.PhyMemMode:1".to_string(),
    ];
    for (pa, v) in writes {
        cmds.push(format!("set {{unsigned long}}{pa:#x} = {v:#x}"));
    }
    cmds.push("maint packet Qqemu.PhyMemMode:0".into());
    cmds.push("disconnect".into());
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    gdb_batch(&m.gdb_addr(), &refs);
}

/// QEMU's `xp` (physical) for one 64-bit value: an oracle beside kinspect.
pub fn xp(m: &mut Machine, pa: u64) -> u64 {
    parse_x(&m.hmp(0, &format!("xp /1gx {pa:#x}")))
}

/// QEMU's `x` (virtual, through hart `cpu`'s satp) for one 64-bit value.
pub fn x_virt(m: &mut Machine, cpu: u32, va: u64) -> u64 {
    parse_x(&m.hmp(cpu, &format!("x /1gx {va:#x}")))
}

fn parse_x(text: &str) -> u64 {
    // `0000003fffffb000: 0x0000000000000000`
    let v = text
        .split(": ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected x output {text:?}"))
        .trim();
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// A hart's satp from QEMU's `info registers`.
pub fn satp_of(m: &mut Machine, cpu: u32) -> u64 {
    let regs = m.hmp(cpu, "info registers");
    let line = regs
        .lines()
        .find(|l| l.trim_start().starts_with("satp"))
        .unwrap_or_else(|| panic!("no satp in {regs}"));
    let v = line.split_whitespace().nth(1).unwrap();
    u64::from_str_radix(v, 16).unwrap()
}

/// Boot to the shell, start `n` background cats, press Ctrl-P and pause:
/// returns the kernel's own list.
pub fn boot_with_cats(n: usize) -> (Machine, Vec<(i64, String, String)>) {
    let mut m = Machine::shell_with_background_cats(n);
    let listed = m.procdump();
    m.pause();
    (m, listed)
}
