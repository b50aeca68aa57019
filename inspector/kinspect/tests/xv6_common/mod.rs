//! What the tests on the C xv6 kernels share: running the real kinspect
//! binary on a kernel's ELF at a booted machine, reading its JSON, and
//! booting a kernel to a quiet shell.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kinspect_testkit::xv6::Variant;
use kinspect_testkit::Machine;
use serde_json::Value;

/// Generous: CI machines are shared and slow down without warning.
pub const BOOT: Duration = Duration::from_secs(120);

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\r', "")
}

/// The real kinspect binary on `elf` at `m`'s stub.
pub fn kinspect(m: &Machine, elf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(elf)
        .args(args)
        .output()
        .expect("running kinspect")
}

/// `kinspect --json ARGS`, which must exit with `code`; its stdout and
/// stderr are in the message when it does not.
pub fn json(m: &Machine, elf: &Path, args: &[&str], code: i32) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = kinspect(m, elf, &a);
    assert_eq!(
        o.status.code(),
        Some(code),
        "kinspect {args:?}: stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("kinspect {args:?}: {e}: {}", text(&o.stdout)))
}

/// An address of kinspect's JSON (`"0x…"`) as a number.
pub fn hex(v: &Value) -> u64 {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("{e}: {s}")),
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a u64: {n}")),
        other => panic!("not an address: {other}"),
    }
}

/// Boot to the shell with one background `cat` (a third sleeping
/// process), wait until the kernel's own Ctrl-P lists init, sh and cat
/// asleep, and pause the machine; returns that list.
pub fn shell(v: &Variant) -> (Machine, Vec<(i64, String, String)>) {
    let mut m = v.boot();
    m.wait_for("$ ", BOOT);
    let mark = m.console_len();
    m.send(b"cat &\n");
    m.wait_for_after(mark, "$ ", BOOT);
    // The forked shell sleeps on the disk inside exec still named `sh`:
    // wait for the cat by its new name, with everything else asleep too.
    let deadline = Instant::now() + BOOT;
    let listed = loop {
        let l = m.procdump();
        let cat = l.iter().any(|(_, s, n)| s == "sleep" && n == "cat");
        if cat && l.len() == 3 && l.iter().all(|(_, s, _)| s == "sleep") {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "{}: Ctrl-P never listed init, sh and cat asleep: {l:?}",
            v.name
        );
    };
    m.pause();
    (m, listed)
}

/// Start `kinspect watch --timeout 600 EXTRA...` on `elf` at `m` and wait
/// until it says it is watching (its breakpoint is in); returns the child,
/// its stderr for the rest, and that first line.
pub fn start_watch(
    m: &Machine,
    elf: &Path,
    extra: &[&std::ffi::OsStr],
) -> (Child, BufReader<ChildStderr>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(elf)
        .args(["watch", "--timeout", "600"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kinspect watch");
    let mut err = BufReader::new(child.stderr.take().expect("watch's stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("watch's first line");
    assert!(
        line.contains("watching for a panic"),
        "{}: watch said {line:?}",
        elf.display()
    );
    (child, err, line)
}
