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
            "kmaps differs from QEMU's info mem on hart {h}\n{out}"
        );
    }
}

#[test]
fn kprocs_matches_the_kernels_own_process_list() {
    let mut m = Machine::shell_with_background_cats(1);
    // init, sh and cat, all asleep (shell_with_background_cats waited for
    // that): a shorter list is Ctrl-P's output cut by a stalled console.
    let deadline = std::time::Instant::now() + T;
    let listed = loop {
        let l = m.procdump();
        if l.len() == 3 {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Ctrl-P never listed 3 processes: {l:?}"
        );
    };
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
    assert_eq!(rows, listed, "kprocs vs Ctrl-P {listed:?}\n{out}");
}

#[test]
fn ktranslate_finds_a_kernel_stack_and_its_guard() {
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    // gdb's language follows the frame a hart stopped in: asm when it is in
    // the trampoline or in timervec, which happens at random on a busy
    // machine. The commands speak the kernel's language whatever it is.
    let out = gdb_batch(
        &m.gdb_addr(),
        &[
            "ktranslate proc[0].kstack 1 kernel",
            "ktranslate proc[0].kstack-4096 1 kernel",
            "kprocs",
            "set language asm",
            "ktranslate proc[0].kstack 1 kernel",
        ],
    );
    assert!(
        out[4].contains("leaf (4 KiB page)"),
        "with gdb's language asm (a hart in assembly code), the kernel stack:\n{out}"
    );
    assert!(
        out[0].contains("leaf (4 KiB page)"),
        "kernel stack not mapped:\n{out}"
    );
    assert!(
        out[1].contains("invalid: not mapped"),
        "guard page below the kernel stack is mapped:\n{out}"
    );
    // The pa that ktranslate found is where QEMU's own walk through the same hart goes
    // when that process's kernel page table is loaded; cross-check the VA against KSTACK(0).
    let kstack0 = 0x3f_ffff_f000u64 - 2 * 4096;
    assert!(
        out[0].contains(&format!("va 0x{kstack0:016x}")),
        "proc[0].kstack is not KSTACK(0):\n{out}"
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
            "kmaps and kinspect maps differ on hart {h}\n{out}"
        );
    }
    assert_eq!(
        out[7], vmprint,
        "kvmprint and kinspect vmprint differ\n{out}"
    );
    assert_eq!(
        out[8], vmprint_va,
        "kvmprint --va and kinspect vmprint --va differ\n{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&translate).expect("translate --json");
    let pa = json_u64(&json["pa"]).unwrap_or_else(|| panic!("no pa in {translate}"));
    assert!(
        out[9].contains(&format!("pa 0x{pa:016x}")),
        "ktranslate disagrees with kinspect ({pa:#x}):\n{out}"
    );
}

#[test]
fn ktranslate_takes_symbols_and_kprocs_finds_the_kernel_table_like_kinspect() {
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    let header = kinspect(&m, &["procs"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let procs: serde_json::Value =
        serde_json::from_str(&kinspect(&m, &["--json", "procs"])).expect("procs --json");
    let syms = kinspect_symbols::Symbols::open(kinspect_testkit::kernel_elf()).expect("symbols");
    let out = gdb_batch(
        &m.gdb_addr(),
        &[
            "kprocs",
            "kprocs --json",
            "ktranslate etext kernel",
            "ktranslate trampoline kernel",
            // RAM as QEMU's memory tree says (-m 128M), then a smaller
            // setting: every table page above 64 MiB is outside it.
            "show kinspect ram-mib",
            "set kinspect ram-mib 64",
            "kmaps kernel",
        ],
    );
    assert_eq!(
        out[0].lines().next(),
        Some(header.as_str()),
        "kprocs' first line is not kinspect procs'\n{out}"
    );
    let ours: serde_json::Value =
        serde_json::from_str(out[1].trim()).unwrap_or_else(|e| panic!("kprocs --json: {e}\n{out}"));
    assert_eq!(ours["kpagetable_field"], "kpagetable", "{out}");
    assert_eq!(ours["kpagetable_field"], procs["kpagetable_field"], "{out}");
    assert_eq!(ours["kpt"]["how"], procs["kpt"]["how"], "{out}");
    // Rust sees neither linker symbols nor assembler labels: the scripts
    // take their address from the ELF's symbol table.
    for (i, sym) in [(2, "etext"), (3, "trampoline")] {
        let a = syms
            .elf_symbol(sym)
            .unwrap_or_else(|| panic!("no ELF symbol {sym}"))
            .addr;
        assert!(
            out[i].contains(&format!("va {a:#018x}")) && out[i].contains(&format!("pa {a:#018x}")),
            "ktranslate {sym} kernel ({a:#x})\n{out}"
        );
    }
    assert!(
        out[4].contains("The RAM size is 128 MiB at 0x80000000 (QEMU's memory tree)"),
        "{out}"
    );
    assert!(
        out[6].contains("outside RAM; not followed") && out[6].lines().count() > 2,
        "kmaps kernel with 64 MiB of RAM:\n{out}"
    );
}

/// A QEMU that stops answering for 3 s in the middle of a gdb session (a
/// loaded machine that does not schedule it) makes the scripts slower,
/// never empty or wrong, even with gdb's own 2 s `remotetimeout`: before
/// the scripts held the stub to a longer one, a late reply desynced the
/// session and the rest of its commands printed nothing (issue 12).
#[test]
fn a_stalled_stub_slows_the_scripts_but_never_empties_them() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    const N: usize = 120;
    const STALL_AFTER: usize = 10;
    let mut m = Machine::start();
    m.wait_for("$ ", T);
    m.pause();
    let mut cmd = Command::new("gdb-multiarch");
    cmd.current_dir(kinspect_testkit::root())
        .args(["-nx", "-batch", "-ex", "set architecture riscv:rv64", "-ex"])
        .arg(format!("file {}", kinspect_testkit::kernel_elf().display()))
        .args(["-ex", "source gdb-scripts/kinspect.py", "-ex"])
        .arg(format!("target remote {}", m.gdb_addr()));
    for _ in 0..N {
        cmd.args([
            "-ex",
            "echo @@\\n",
            "-ex",
            "ktranslate proc[0].kstack 1 kernel",
        ]);
    }
    let mut gdb = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running gdb-multiarch");
    let stdout = gdb.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut marks = 0;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "@@" {
                marks += 1;
                if marks == STALL_AFTER {
                    let _ = tx.send(());
                }
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    // Stall QEMU once gdb is well into its commands.
    let stalled = rx.recv_timeout(T).is_ok();
    if stalled {
        let qemu = m.pid() as libc::pid_t;
        // SAFETY: kill(2) on our own child QEMU's pid; no memory involved.
        unsafe { libc::kill(qemu, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_secs(3));
        // SAFETY: as above.
        unsafe { libc::kill(qemu, libc::SIGCONT) };
    }
    let stdout = reader.join().expect("reader thread");
    let out = gdb.wait_with_output().expect("waiting for gdb");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stalled,
        "gdb never ran {STALL_AFTER} commands:\n{stdout}\n{stderr}"
    );
    let parts: Vec<&str> = stdout.split("@@\n").skip(1).collect();
    assert_eq!(
        parts.len(),
        N,
        "gdb's stdout:\n{stdout}\ngdb's stderr:\n{stderr}"
    );
    let first = parts[0].trim_end_matches("[Inferior 1 (process 1) detached]\n");
    assert!(first.contains("leaf (4 KiB page)"), "{first}\n{stderr}");
    for (i, p) in parts.iter().enumerate() {
        let p = p.trim_end_matches("[Inferior 1 (process 1) detached]\n");
        assert_eq!(
            p, first,
            "command {i} of {N} printed something else after QEMU stalled:\ngdb's stderr:\n{stderr}"
        );
    }
}
