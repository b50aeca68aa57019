//! gdb-scripts/kinspect.py in the real gdb-multiarch against the real
//! kernel under the real QEMU, checked against QEMU's own monitor and the
//! kernel's own Ctrl-P list.

use std::time::Duration;

use kinspect_testkit::{gdb_batch, json_u64, Machine};

const T: Duration = Duration::from_secs(90);

/// xv6's procdump state names, by the state names kprocs prints.
fn procdump_state(kprocs_state: &str) -> &'static str {
    match kprocs_state {
        "UNUSED" => "unused",
        "USED" => "used",
        "SLEEPING" => "sleep",
        "RUNNABLE" => "runble",
        "RUNNING" => "run",
        "ZOMBIE" => "zombie",
        _ => "?",
    }
}

#[test]
fn kmaps_equals_qemus_info_mem_on_every_hart() {
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    let oracle: Vec<String> = (0..3).map(|h| m.hmp(h, "info mem")).collect();
    let gdb_cmds: Vec<String> = (0..3)
        .flat_map(|h| [format!("thread {}", h + 1), "kmaps".to_string()])
        .collect();
    let refs: Vec<&str> = gdb_cmds.iter().map(String::as_str).collect();
    let out = gdb_batch(&m.gdb_addr(), &refs);
    for h in 0..3 {
        let ours = &out[2 * h + 1];
        assert!(
            oracle[h].lines().count() > 2,
            "QEMU printed no ranges for hart {h}:\n{}",
            oracle[h]
        );
        assert_eq!(
            ours.trim_end(),
            oracle[h].replace("\r\n", "\n").trim_end(),
            "kmaps differs from QEMU's info mem on hart {h}"
        );
    }
}

#[test]
fn kprocs_matches_the_kernels_own_process_list() {
    let mut m = Machine::shell_with_background_cats(1);
    let listed = m.procdump();
    assert!(
        listed.len() >= 3,
        "Ctrl-P listed too few processes: {listed:?}"
    );
    m.pause();
    let out = gdb_batch(&m.gdb_addr(), &["kprocs"]);
    let rows: Vec<(i64, String, String)> = out[0]
        .lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((
                w.get(1)?.parse().ok()?,
                procdump_state(w.get(2)?).to_string(),
                w.get(3)?.to_string(),
            ))
        })
        .collect();
    assert_eq!(rows, listed, "kprocs:\n{}\nCtrl-P: {listed:?}", out[0]);
}

#[test]
fn ktranslate_finds_a_kernel_stack_and_its_guard() {
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    let out = gdb_batch(
        &m.gdb_addr(),
        &[
            "ktranslate proc[0].kstack 1 kernel",
            "ktranslate proc[0].kstack-4096 1 kernel",
            "kprocs",
        ],
    );
    assert!(
        out[0].contains("leaf (4 KiB page)"),
        "kernel stack not mapped:\n{}",
        out[0]
    );
    assert!(
        out[1].contains("invalid: not mapped"),
        "guard page below the kernel stack is mapped:\n{}",
        out[1]
    );
    // The pa that ktranslate found is where QEMU's own walk through the same hart goes
    // when that process's kernel page table is loaded; cross-check the VA against KSTACK(0).
    let kstack0 = 0x3f_ffff_f000u64 - 2 * 4096;
    assert!(
        out[0].contains(&format!("va 0x{kstack0:016x}")),
        "proc[0].kstack is not KSTACK(0):\n{}",
        out[0]
    );
}

fn kinspect(m: &Machine, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .current_dir(kinspect_testkit::root())
        .arg("--gdb")
        .arg(m.gdb_addr())
        .args(args)
        .output()
        .expect("running kinspect");
    assert!(
        out.status.success(),
        "kinspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gdb_and_kinspect_print_the_same_for_the_same_halted_machine() {
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    // kinspect leaves a halted machine halted, so gdb sees the same state.
    let maps: Vec<String> = (0..3)
        .map(|h| kinspect(&m, &["maps", "--hart", &h.to_string()]))
        .collect();
    let vmprint = kinspect(&m, &["vmprint", "--hart", "0"]);
    let vmprint_va = kinspect(&m, &["vmprint", "--hart", "0", "--va"]);
    let trampoline = 0x3f_ffff_f000u64 + 0x40;
    let translate = kinspect(
        &m,
        &[
            "--json",
            "translate",
            &format!("{trampoline:#x}"),
            "--hart",
            "0",
        ],
    );
    let out = gdb_batch(
        &m.gdb_addr(),
        &[
            "thread 1",
            "kmaps",
            "thread 2",
            "kmaps",
            "thread 3",
            "kmaps",
            "thread 1",
            "kvmprint",
            "kvmprint --va",
            &format!("ktranslate {trampoline:#x}"),
        ],
    );
    for h in 0..3 {
        assert_eq!(
            out[2 * h + 1],
            maps[h],
            "kmaps and kinspect maps differ on hart {h}"
        );
    }
    assert_eq!(out[7], vmprint, "kvmprint and kinspect vmprint differ");
    assert_eq!(
        out[8], vmprint_va,
        "kvmprint --va and kinspect vmprint --va differ"
    );
    let json: serde_json::Value = serde_json::from_str(&translate).expect("translate --json");
    let pa = json_u64(&json["pa"]).unwrap_or_else(|| panic!("no pa in {translate}"));
    assert!(
        out[9].contains(&format!("pa 0x{pa:016x}")),
        "ktranslate disagrees with kinspect ({pa:#x}):\n{}",
        out[9]
    );
}
