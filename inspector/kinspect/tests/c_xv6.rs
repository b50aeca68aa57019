//! kinspect on the kernels its users bring: real C xv6 kernels, built by
//! `cargo xtask xv6` from `../shared/xv6/` plus this project's patches
//! (`tests/xv6/`), booted under the real QEMU with xv6's own command line.
//!
//! Correct kernels (stock xv6-riscv, the 2020 lab handout, our lab
//! solutions): `procs` equals the kernel's own Ctrl-P list, finds each
//! solution's per-process kernel page table by itself (whatever the
//! student called the field) and maps every kernel stack, which QEMU's
//! `xp` confirms by finding the sleeping process's frame record in the
//! page kinspect names; `vmprint --pid N --kernel-pt` prints that table;
//! `maps` equals QEMU's `info mem`; `check` exits 0.
//!
//! Buggy kernels (each classic pgtbl-lab bug): `kinspect watch` catches
//! the panic, and the report gives the kernel's message (read from
//! `panic`'s argument: C xv6 keeps no copy), the diagnosis the manifest
//! names and a backtrace that reaches the function to fix; a snapshot of
//! the panicked machine gives the same report.

mod xv6_common;

use std::process::Command;
use std::time::{Duration, Instant};

use kinspect_testkit::xv6::variant;
use kinspect_testkit::{Boot, Machine};
use serde_json::Value;
use xv6_common::{hex, json, kinspect, shell, text, BOOT};

/// QEMU's `xp` (physical) for a whole page, as 512 64-bit words.
fn xp_page(m: &mut Machine, pa: u64) -> Vec<u64> {
    let t = m.hmp(0, &format!("xp /512gx {pa:#x}"));
    let words: Vec<u64> = t
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, r)| r))
        .flat_map(str::split_whitespace)
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .collect();
    assert_eq!(words.len(), 512, "unexpected xp output {t:?}");
    words
}

/// `procs` equals Ctrl-P, the per-process kernel page table is found by
/// itself, and every kernel stack is mapped where QEMU finds the process's
/// own frame record.
fn correct_kernel(name: &str) {
    let v = variant(name);
    assert!(v.is_correct(), "{name} is a buggy variant");
    let (mut m, listed) = shell(&v);
    let elf = v.elf();
    let p = json(&m, &elf, &["procs"], 0);
    let state_word = |s: &str| match s {
        "USED" => "used",
        "SLEEPING" => "sleep",
        "RUNNABLE" => "runble",
        "RUNNING" => "run",
        "ZOMBIE" => "zombie",
        other => panic!("state {other}"),
    };
    let procs = p["procs"].as_array().expect("procs");
    let ours: Vec<(i64, String, String)> = procs
        .iter()
        .map(|q| {
            (
                q["pid"].as_i64().unwrap(),
                state_word(q["state"].as_str().unwrap()).to_string(),
                q["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ours, listed, "{name}: kinspect procs differs from Ctrl-P");
    assert_eq!(
        p["kpagetable_field"].as_str(),
        v.kpt_field.as_deref(),
        "{name}: the per-process kernel page table field: {}",
        p["kpt"]
    );
    assert_eq!(p["kpt_warning"], Value::Null, "{name}");
    let kernel_pagetable = hex(&p["kernel_pagetable"]);
    let syms = kinspect_symbols::Symbols::open(&elf).expect("the C kernel's symbols");
    for q in procs {
        let pid = q["pid"].as_i64().unwrap();
        assert_eq!(q["guard_unmapped"], true, "{name} pid {pid}");
        let table = hex(&q["kstack_table"]);
        match &v.kpt_field {
            Some(_) => {
                let own = hex(&q["kpagetable"]);
                assert_eq!(
                    table, own,
                    "{name} pid {pid}: kstack not read through its own table"
                );
                assert_ne!(own, kernel_pagetable, "{name} pid {pid}");
            }
            None => assert_eq!(table, kernel_pagetable, "{name} pid {pid}"),
        }
        let kstack = hex(&q["kstack"]);
        let pa = q["kstack_pa"]
            .as_str()
            .map(|s| hex(&Value::String(s.into())))
            .or_else(|| q["kstack_pa"].as_u64())
            .unwrap_or_else(|| panic!("{name} pid {pid}: kernel stack UNMAPPED: {q}"));
        // Every listed process sleeps: sched's frame on its kernel stack
        // holds the return address into sleep(). QEMU's own physical read
        // of the page kinspect names must find it above the saved sp.
        let ctx_sp = hex(&q["context_sp"]);
        assert!(
            ctx_sp > kstack && ctx_sp <= kstack + 4096,
            "{name} pid {pid}: context.sp {ctx_sp:#x} outside its kstack {kstack:#x}"
        );
        let page = xp_page(&mut m, pa);
        let live = &page[((ctx_sp - kstack) / 8) as usize..];
        assert!(
            live.iter()
                .any(|w| syms.symbolize(w.wrapping_sub(1)).is_some_and(|(f, _)| f == "sleep")),
            "{name} pid {pid}: no return address into sleep() on the stack page at {pa:#x} (QEMU xp)"
        );
    }

    // vmprint of a process's kernel page table prints that table.
    let pid = procs[0]["pid"].as_i64().unwrap().to_string();
    let out = kinspect(&m, &elf, &["vmprint", "--pid", &pid, "--kernel-pt"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first = text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let want_root = match &v.kpt_field {
        Some(_) => hex(&procs[0]["kpagetable"]),
        None => kernel_pagetable,
    };
    assert_eq!(
        first,
        format!("page table {want_root:#018x}"),
        "{name}: vmprint --kernel-pt root; stderr {}",
        text(&out.stderr)
    );

    // maps equals QEMU's info mem on every hart.
    for hart in 0..3u32 {
        let ours = kinspect(&m, &elf, &["maps", "--hart", &hart.to_string()]);
        assert_eq!(ours.status.code(), Some(0), "{}", text(&ours.stderr));
        let qemu = text(m.hmp(hart, "info mem").as_bytes());
        assert_eq!(text(&ours.stdout), qemu, "{name}: maps --hart {hart}");
    }

    // check: every error on a correct kernel would be a false alarm.
    let c = kinspect(&m, &elf, &["check"]);
    assert_eq!(
        c.status.code(),
        Some(0),
        "{name}: check on a correct kernel:\n{}\n{}",
        text(&c.stdout),
        text(&c.stderr)
    );
}

macro_rules! correct {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            correct_kernel($name);
        }
    )*};
}

correct! {
    stock_xv6_riscv => "stock",
    lab_2020_handout => "lab-handout",
    solution_kpagetable => "sol-kpagetable",
    solution_kernelpgtbl_with_mirror => "sol-kernelpgtbl",
    solution_prockpt_with_mirror => "sol-prockpt",
    solution_kernel_pt_sharing_tables => "sol-kernel_pt",
}

/// The report's frames on `hart`, by function name.
fn functions(r: &Value, hart: &Value) -> Vec<String> {
    r["harts"]
        .as_array()
        .expect("harts")
        .iter()
        .find(|h| &h["hart"] == hart)
        .expect("the panicking hart")["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("??").to_string())
        .collect()
}

/// Catch a buggy variant's panic with `kinspect watch`, check the report,
/// then save the panicked machine and check the report of the snapshot.
fn buggy_kernel(name: &str, reaches: &[&str], says: &[&str]) {
    let v = variant(name);
    let want_msg = v.panic.clone().expect("a buggy variant names its panic");
    let want_kind = v
        .diagnosis
        .clone()
        .expect("a buggy variant names its diagnosis");
    // A kernel that panics while booting waits for the debugger (-S).
    let mut m = v.boot_with(Boot {
        wait_for_debugger: v.run.is_none(),
        ..Boot::default()
    });
    if v.run.is_some() {
        m.wait_for("$ ", BOOT);
    }
    let elf = v.elf();
    let dir = std::env::temp_dir().join(format!("kinspect-c-xv6-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let report = dir.join("report.json");
    let (mut child, mut err, line) =
        xv6_common::start_watch(&m, &elf, &["--report".as_ref(), report.as_os_str()]);
    if let Some(cmd) = &v.run {
        m.send(format!("{cmd}\n").as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for watch") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: watch caught no panic; console:\n{}",
            m.console()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(
        status.success(),
        "{name}: watch failed: {line}{rest}\nconsole:\n{}",
        m.console()
    );
    let live: Value = serde_json::from_slice(&std::fs::read(&report).expect("the report file"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    check_report(name, &live, &want_msg, &want_kind, reaches, says);

    // The same machine, saved and reopened: watch left it halted on
    // panic's first instruction, where a0 still holds the message.
    m.pause();
    let snap = dir.join("crash.kisnap");
    let o = kinspect(
        &m,
        &elf,
        &["snapshot", "-o", snap.to_str().expect("utf-8 path")],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: snapshot: {}",
        text(&o.stderr)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--snapshot")
        .arg(&snap)
        .arg("--elf")
        .arg(&elf)
        .args(["--json", "report"])
        .output()
        .expect("running kinspect report");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{name}: report of the snapshot: {}",
        text(&o.stderr)
    );
    let saved: Value = serde_json::from_slice(&o.stdout).expect("report JSON");
    assert_eq!(
        saved["diagnosis"]["kind"],
        want_kind.as_str(),
        "{name}: from the snapshot: {saved}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_report(name: &str, r: &Value, msg: &str, kind: &str, reaches: &[&str], says: &[&str]) {
    assert_eq!(r["message"], msg, "{name}: the message: {r}");
    let d = &r["diagnosis"];
    assert_eq!(d["kind"], kind, "{name}: the diagnosis: {r}");
    let cause = d["cause"].as_str().unwrap_or_default();
    for want in says {
        assert!(
            cause.contains(want),
            "{name}: the cause does not say {want:?}: {d:#}"
        );
    }
    let hart = &r["panicking_hart"];
    let f = functions(r, hart);
    assert_eq!(
        f.first().map(String::as_str),
        Some("panic"),
        "{name}: {f:?}"
    );
    for want in reaches {
        assert!(
            f.iter().any(|x| x == want),
            "{name}: the backtrace does not reach {want}: {f:?}"
        );
    }
}

macro_rules! buggy {
    ($($test:ident => $name:literal reaches [$($f:literal),*] says [$($w:literal),*]),* $(,)?) => {$(
        #[test]
        fn $test() {
            buggy_kernel($name, &[$($f),*], &[$($w),*]);
        }
    )*};
}

// Each backtrace must reach the function a student has to fix (the README
// in tests/xv6/ says where each bug is).
buggy! {
    kernel_stack_mapped_twice => "bug-kstack-twice"
        reaches ["mappages", "allocproc"]
        says ["a kernel stack mapped twice", "0x3fffffd000", "still UNUSED"],
    trampoline_mapped_twice => "bug-trampoline-twice"
        reaches ["mappages", "kpt_new", "allocproc"]
        says ["the trampoline mapped twice", "kpt_new"],
    kvmpa_walks_kernel_pagetable => "bug-kvmpa-global"
        reaches ["kvmpa", "virtio_disk_rw"]
        says ["kvmpa must walk the process's kernel page table", "kernelpgtbl", "not kernel_pagetable"],
    per_process_table_freed_with_freewalk => "bug-freewalk-leaf"
        reaches ["freewalk", "proc_kpt_free", "freeproc"]
        says ["free the per-process kernel table without freeing the kernel's shared leaf pages", "proc_kpt_free"],
    kernel_leaves_freed => "bug-kfree-shared"
        reaches ["kfree", "kvmfree_k", "freeproc"]
        says ["free the per-process kernel table without freeing the kernel's shared leaf pages", "kvmfree_k"],
    user_mirror_runs_into_clint => "bug-mirror-into-device"
        reaches ["mappages", "kvm_mirror", "growproc"]
        says ["the user mirror ran into a device", "CLINT", "0x2000000"],
    stock_uvmalloc_without_roundup => "stock-uvmalloc-rounding"
        reaches ["mappages", "uvmalloc", "growproc"]
        says ["a user region grown over an existing mapping", "uvmalloc"],
}

/// `check` sampled while `usertests forkforkfork` creates and reaps
/// processes as fast as it can: processes caught between states (a ZOMBIE
/// inside `wait → freeproc`, a USED slot inside `allocproc`/`exec`) are
/// info, never errors, on a correct kernel.
#[test]
fn check_never_cries_wolf_while_processes_come_and_go() {
    let v = variant("stock");
    let mut m = v.boot();
    m.wait_for("$ ", BOOT);
    let elf = v.elf();
    let mark = m.console_len();
    m.send(b"usertests forkforkfork\n");
    // usertests first counts free memory a page at a time (countfree), which
    // takes minutes on a loaded machine: wait as long as for the end.
    m.wait_for_after(mark, "test forkforkfork", Duration::from_secs(600));
    let mut samples = 0;
    let mut transient = 0;
    while samples < 40 && !m.console()[mark..].contains("forkforkfork: OK") {
        let c = json(&m, &elf, &["check"], 0);
        samples += 1;
        let findings = c["findings"].as_array().expect("findings");
        transient += findings
            .iter()
            .filter(|f| {
                f["evidence"]
                    .as_str()
                    .is_some_and(|e| e.contains("being torn down") || e.contains("being built"))
            })
            .count();
    }
    assert!(
        samples >= 3,
        "forkforkfork ended before check could sample it"
    );
    m.wait_for_after(mark, "ALL TESTS PASSED", Duration::from_secs(600));
    eprintln!("{samples} samples, {transient} findings about processes between states");
}

/// Another kernel's ELF (here a C xv6's, against our Rust kernel) is
/// refused by every command that trusts symbols, with one line and exit 2,
/// instead of a confident wrong answer; `satp` and a plain `maps` need no
/// symbols and still work.
#[test]
fn a_mismatched_elf_is_refused_before_any_answer() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    m.pause();
    let wrong = variant("stock").elf();
    for args in [
        &["regs"][..],
        &["translate", "etext"],
        &["vmprint", "--root", "proc[0].pagetable"],
        &["procs"],
        &["check"],
        &["report"],
    ] {
        let o = kinspect(&m, &wrong, args);
        let err = text(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {err}\n{}",
            text(&o.stdout)
        );
        assert!(
            err.starts_with("kinspect: the running kernel is not kernel: the code of `"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: {}", text(&o.stdout));
    }
    for args in [&["satp"][..], &["maps"]] {
        let o = kinspect(&m, &wrong, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
    }
}

/// A process asleep on a pipe sleeps on an address inside a page kalloc
/// handed out: `procs` names that page, not `end+0x…` past the image.
#[test]
fn a_pipe_sleeper_is_named_by_its_page() {
    let v = variant("stock");
    let mut m = v.boot();
    m.wait_for("$ ", BOOT);
    let mark = m.console_len();
    m.send(b"cat | cat &\n");
    m.wait_for_after(mark, "$ ", BOOT);
    let elf = v.elf();
    let deadline = Instant::now() + BOOT;
    let chans = loop {
        m.pause();
        let p = json(&m, &elf, &["procs"], 0);
        m.resume();
        let chans: Vec<String> = p["procs"]
            .as_array()
            .expect("procs")
            .iter()
            .filter(|q| q["name"] == "cat" && q["state"] == "SLEEPING")
            .filter_map(|q| q["chan_symbol"].as_str().map(String::from))
            .collect();
        if chans.len() == 2 {
            break chans;
        }
        assert!(
            Instant::now() < deadline,
            "two sleeping cats never showed: {p}"
        );
    };
    assert!(
        chans.iter().any(|c| c.starts_with("kalloc'd page 0x8")),
        "the pipe reader's channel: {chans:?}"
    );
    assert!(chans.iter().all(|c| !c.starts_with("end+")), "{chans:?}");
}
