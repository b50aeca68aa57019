//! `kinspect trace` and `kinspect blame` on the real kernel and on stock
//! C xv6 under the real QEMU.
//!
//! QEMU starts halted at reset; the trace resumes it, so every mapping the
//! kernel makes is recorded. Then `blame` must name the function that
//! made three kinds of mapping: exec's (a program's text at VA 0), sbrk's
//! (the top of a grown heap) and the kernel's at boot (the UART in
//! `kernel_pagetable`). The function names are facts of the kernels'
//! sources; the recorded physical page is checked against what the page
//! table maps now, read by `translate` (the page-table walker), so the
//! recording and the walker must agree.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod xv6_common;

use kinspect_testkit::xv6::variant;
use kinspect_testkit::{kernel_elf, Boot, Machine};
use serde_json::Value;
use xv6_common::{hex, text};

const WAIT: Duration = Duration::from_secs(180);

fn kinspect(gdb: &str, elf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", gdb, "--elf"])
        .arg(elf)
        .args(args)
        .output()
        .expect("running kinspect")
}

fn json_of(o: &Output, what: &str) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {}", text(&o.stdout)))
}

/// A running `kinspect trace`; its stderr goes to a file, printed if the
/// test fails while it runs.
struct Tracing {
    child: Option<Child>,
    err: PathBuf,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!(
                    "kinspect trace's stderr:\n{}",
                    std::fs::read_to_string(&self.err).unwrap_or_default()
                );
            }
        }
    }
}

/// `kinspect trace -o FILE` on a machine halted at reset.
/// A machine booted by `boot` frozen at reset, traced into `file` from
/// its first instruction on.
fn boot_traced(boot: impl FnOnce(Boot) -> Machine, elf: &Path, file: &Path) -> (Machine, Tracing) {
    let m = boot(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let trace = start_trace(&m, elf, file);
    (m, trace)
}

fn start_trace(m: &Machine, elf: &Path, file: &Path) -> Tracing {
    let err = file.with_extension("stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", &m.gdb_addr(), "--elf"])
        .arg(elf)
        .args(["trace", "--quiet", "-o"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("starting kinspect trace");
    Tracing {
        child: Some(child),
        err,
    }
}

/// Wait for the trace to end (bounded), and return its stderr; it must
/// have exited 0.
fn wait_trace(mut t: Tracing, what: &str) -> String {
    let mut child = t.child.take().expect("a running trace");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match child.try_wait().expect("waiting for trace") {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "trace did not end {what}: {}",
                    std::fs::read_to_string(&t.err).unwrap_or_default()
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let err = std::fs::read_to_string(&t.err).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "trace: {err}");
    err
}

/// Ctrl-C the trace and wait for it to write its file.
fn stop_trace(t: Tracing, file: &Path) -> Value {
    let pid = t.child.as_ref().expect("a running trace").id().to_string();
    let k = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(k.success());
    let err = wait_trace(t, "after SIGINT");
    assert!(err.contains("from reset"), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let s = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}; trace said: {err}"));
    let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    assert_eq!(v["from_reset"], true, "{err}");
    v
}

/// `blame VA SELECT...` as JSON, checked against the walker: the page the
/// recorded call mapped is the page the table maps now.
fn blame(gdb: &str, elf: &Path, file: &Path, va: u64, select: &[&str]) -> Value {
    let va_s = format!("{va:#x}");
    let f = file.to_string_lossy().into_owned();
    let mut args = vec!["--json", "blame", &va_s, "--trace", &f];
    args.extend_from_slice(select);
    let b = json_of(&kinspect(gdb, elf, &args), &format!("blame {va_s}"));
    assert_eq!(b["mapped_now"], true, "{b}");
    let e = &b["mapped"];
    assert_eq!(e["kind"], "map", "{b}");
    assert!(b["unmapped"].is_null(), "{b}");
    let mut targs = vec!["--json", "translate", &va_s];
    targs.extend_from_slice(select);
    let t = json_of(&kinspect(gdb, elf, &targs), "translate");
    let pa_now = hex(&t["pa"]);
    let recorded = hex(&e["pa"]) + ((va & !0xfff) - hex(&e["va"]));
    assert_eq!(pa_now & !0xfff, recorded, "blame {b}\ntranslate {t}");
    b
}

fn chain(b: &Value) -> Vec<String> {
    b["mapped"]["chain"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_string())
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kinspect-trace-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("trace.json")
}

/// The procs listing's entry for a pid.
fn proc_of(gdb: &str, elf: &Path, pid: i64) -> Value {
    let p = json_of(&kinspect(gdb, elf, &["--json", "procs"]), "procs");
    p["procs"]
        .as_array()
        .unwrap_or_else(|| panic!("{p}"))
        .iter()
        .find(|x| x["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("no pid {pid}: {p}"))
}

#[test]
fn blame_names_exec_sbrk_and_boot_on_our_kernel() {
    let elf = kernel_elf();
    let file = temp("ours");
    let (mut m, trace) = boot_traced(Machine::boot, &elf, &file);
    m.wait_for("$ ", WAIT);
    let mark = m.console_len();
    m.send(b"vmsteps\n");
    // It stops after each step until Enter: start, then sbrk.
    m.wait_for_after(mark, "vmsteps: start pid ", WAIT);
    let mark = m.console_len();
    m.send(b"\n");
    let con = m.wait_for_after(mark, "vmsteps: sbrk pid ", WAIT);
    let pid: i64 = con[con.rfind("vmsteps: sbrk pid ").unwrap() + 18..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{con}"));
    let t = stop_trace(trace, &file);
    assert!(t["events"].as_array().is_some_and(|e| e.len() > 10), "{t}");
    let gdb = m.gdb_addr();
    let pid_s = pid.to_string();

    let b = blame(&gdb, &elf, &file, 0x0, &["--pid", &pid_s]);
    assert_eq!(b["made_by"], "exec", "{b}");

    let sz = hex(&proc_of(&gdb, &elf, pid)["sz"]);
    let b = blame(&gdb, &elf, &file, sz - 1, &["--pid", &pid_s]);
    assert_eq!(b["made_by"], "growproc", "{b}");
    assert!(chain(&b).iter().any(|f| f == "sys_sbrk"), "{b}");
    assert_eq!(b["mapped"]["pid"], pid, "{b}");

    let b = blame(&gdb, &elf, &file, 0x1000_0000, &["--kernel"]);
    assert_eq!(b["made_by"], "kvmmake", "{b}");
    assert!(chain(&b).iter().any(|f| f == "kvmmap"), "{b}");
    assert!(b["mapped"]["pid"].is_null(), "{b}");

    // The text form says the same.
    let o = kinspect(
        &gdb,
        &elf,
        &[
            "blame",
            "0x0",
            "--pid",
            &pid_s,
            "--trace",
            &file.to_string_lossy(),
        ],
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("mapped by exec at tick "),
        "{out}\n{}",
        text(&o.stderr)
    );
}

#[test]
fn blame_names_exec_sbrk_and_boot_on_stock_xv6() {
    let v = variant("stock");
    let elf = v.elf();
    let file = temp("stock");
    let (mut m, trace) = boot_traced(|b| v.boot_with(b), &elf, &file);
    m.wait_for("$ ", WAIT);
    // sh parses a command in a child, whose malloc grows it with sbrk; for
    // a pipe that child forks both sides and waits for them, so it stays,
    // heap and all, while the first cat waits for the console.
    let mark = m.console_len();
    m.send(b"cat | cat\n");
    let gdb = m.gdb_addr();
    let deadline = Instant::now() + WAIT;
    let middle = loop {
        let l = m.procdump();
        let cats = l
            .iter()
            .filter(|(_, s, n)| s == "sleep" && n == "cat")
            .count();
        let shs: Vec<_> = l
            .iter()
            .filter(|(_, s, n)| s == "sleep" && n == "sh")
            .collect();
        if cats == 2 && shs.len() == 2 {
            break shs.iter().map(|p| p.0).max().unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "Ctrl-P: {l:?}\n{}", m.console());
    };
    let _ = mark;
    let t = stop_trace(trace, &file);
    assert!(t["events"].as_array().is_some_and(|e| e.len() > 10), "{t}");

    let b = blame(&gdb, &elf, &file, 0x0, &["--pid", "2"]);
    assert_eq!(b["made_by"], "exec", "{b}");

    let pid_s = middle.to_string();
    let sz = hex(&proc_of(&gdb, &elf, middle)["sz"]);
    let b = blame(&gdb, &elf, &file, sz - 1, &["--pid", &pid_s]);
    assert_eq!(b["made_by"], "growproc", "{b}");
    assert!(chain(&b).iter().any(|f| f == "sys_sbrk"), "{b}");

    let b = blame(&gdb, &elf, &file, 0x1000_0000, &["--kernel"]);
    assert_eq!(b["made_by"], "kvmmake", "{b}");
    assert!(chain(&b).iter().any(|f| f == "kvmmap"), "{b}");
}

/// Wait for a trace to end by itself (the kernel panicked).
fn trace_until_panic(t: Tracing, file: &Path) {
    let err = wait_trace(t, "with a panic");
    assert!(err.contains("the kernel panicked"), "{err}");
    assert!(file.exists(), "{err}");
}

/// `report --trace FILE` as JSON: the diagnosis's facts.
fn remap_facts(gdb: &str, elf: &Path, file: &Path) -> Vec<String> {
    let f = file.to_string_lossy().into_owned();
    let r = json_of(
        &kinspect(gdb, elf, &["--json", "report", "--trace", &f]),
        "report --trace",
    );
    assert_eq!(r["diagnosis"]["kind"], "remap", "{r}");
    r["diagnosis"]["facts"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|f| f.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_remap_report_names_who_made_the_mapping_on_our_kernel() {
    let elf = kernel_elf();
    let file = temp("remap-ours");
    let (mut m, trace) = boot_traced(Machine::boot, &elf, &file);
    m.wait_for("$ ", WAIT);
    let mark = m.console_len();
    m.send(b"kfault enable\n");
    m.wait_for_after(mark, "kdebug: fault injection enabled by pid", WAIT);
    // uvmalloc(p->pagetable, 0, PGSIZE): VA 0 is the program's text,
    // mapped by exec.
    m.send(b"kfault remap\n");
    trace_until_panic(trace, &file);
    let facts = remap_facts(&m.gdb_addr(), &elf, &file);
    let made = facts
        .iter()
        .find(|f| f.starts_with("the existing mapping of 0x0 was made by "))
        .unwrap_or_else(|| panic!("{facts:#?}"));
    assert!(made.contains("made by exec "), "{made}");
    assert!(made.contains("pid "), "{made}");
    assert!(
        facts
            .iter()
            .any(|f| f.starts_with("the colliding call: ") && f.contains("kdebug")),
        "{facts:#?}"
    );
}

#[test]
fn a_remap_report_names_who_made_the_mapping_on_c_lab_bugs() {
    // A per-process kernel table copied entry by entry from
    // kernel_pagetable already has the stack procinit mapped there.
    let v = variant("bug-kstack-twice");
    let file = temp("remap-kstack");
    let (m, trace) = boot_traced(|b| v.boot_with(b), &v.elf(), &file);
    trace_until_panic(trace, &file);
    let facts = remap_facts(&m.gdb_addr(), &v.elf(), &file);
    assert!(
        facts.iter().any(|f| f.contains("written some other way")
            && f.contains("holds the page that procinit mapped")),
        "{facts:#?}"
    );
    drop(m);

    // A table sharing kernel_pagetable's top-level entry for the
    // trampoline's gigabyte: the entry is kernel_pagetable's, mapped by
    // kvminit.
    let v = variant("bug-trampoline-twice");
    let file = temp("remap-trampoline");
    let (m, trace) = boot_traced(|b| v.boot_with(b), &v.elf(), &file);
    trace_until_panic(trace, &file);
    let facts = remap_facts(&m.gdb_addr(), &v.elf(), &file);
    let made = facts
        .iter()
        .find(|f| f.starts_with("the existing mapping of 0x3ffffff000 was made by "))
        .unwrap_or_else(|| panic!("{facts:#?}"));
    assert!(made.contains("made by kvminit "), "{made}");
}
