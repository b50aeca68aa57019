//! `kinspect watch` and `kinspect report` against the real kernel under
//! the real QEMU: each panic is provoked with `kfault`, and the report's
//! facts are checked against what the test did (the message, the VA it
//! made the kernel map twice, who owns the page already there, the
//! backtrace's functions) and against the kernel's own console lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinspect_testkit::{hex, json_u64, kernel_elf, Machine};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn booted_with_kdebug() -> Machine {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    let mark = m.console_len();
    m.send(b"kfault enable\n");
    m.wait_for_after(mark, "kdebug: fault injection enabled", WAIT);
    m
}

fn functions(r: &Value, hart: u64) -> Vec<String> {
    r["harts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hart"] == hart)
        .unwrap()["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["function"]
                .as_str()
                .unwrap()
                .rsplit("::")
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn facts(r: &Value) -> String {
    r["diagnosis"]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Provoke `kind`, then `kinspect report --json` on the panicked machine.
fn report_after(kind: &str, console: &str) -> (Machine, Value, String) {
    let mut m = booted_with_kdebug();
    let mark = m.console_len();
    m.send(format!("kfault {kind}\n").as_bytes());
    m.wait_for_after(mark, console, WAIT);
    // The location line follows the whole message.
    let con = m.wait_for_after(mark, "    at src/", WAIT);
    // panic() sets `panicked` just after printing the location: report
    // until it has (a loaded host may run the guest slowly).
    let elf = kernel_elf();
    let deadline = Instant::now() + WAIT;
    let r = loop {
        let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .args([
                "--gdb",
                &m.gdb_addr(),
                "--elf",
                elf.to_str().unwrap(),
                "--json",
                "report",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        if r["panicked"] == 1 {
            break r;
        }
        assert!(Instant::now() < deadline, "panicked never became 1: {r:#}");
    };
    (m, r, con[mark..].to_string())
}

#[test]
fn watch_catches_remap_and_explains_it() {
    let mut m = booted_with_kdebug();
    let elf = kernel_elf();
    let file = std::env::temp_dir().join(format!("kinspect-watch-{}.json", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args([
            "--gdb",
            &m.gdb_addr(),
            "--elf",
            elf.to_str().unwrap(),
            "watch",
            "--timeout",
            "60",
            "--report",
        ])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("watching for a panic"), "{line}");
    let mark = m.console_len();
    m.send(b"kfault remap\n");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < WAIT, "watch did not return");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    assert!(status.success(), "{text}");
    m.wait_for_after(mark, "panic: remap", WAIT);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&file);

    assert_eq!(r["message"], "remap");
    assert_eq!(r["panicked"], 1);
    let d = &r["diagnosis"];
    assert_eq!(d["kind"], "remap");
    // The test mapped VA 0 again, in kfault's user page table.
    assert_eq!(d["va"], hex(0), "{d}");
    let f = facts(&r);
    let h = r["panicking_hart"].as_u64().unwrap();
    let hart = r["harts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["hart"] == h)
        .unwrap();
    let pid = hart["pid"].as_i64().unwrap();
    assert!(
        hart["process"].as_str().unwrap().contains("(kfault)"),
        "{hart}"
    );
    assert!(
        d["table"][1]
            .as_str()
            .unwrap()
            .contains(&format!("pid {pid} (kfault)'s user page table")),
        "{d}"
    );
    assert!(
        f.contains(&format!("owned by: user page of pid {pid}")) && f.contains("at va 0x0"),
        "{f}"
    );
    let fns = functions(&r, h);
    for want in [
        "panic",
        "mappages",
        "uvmalloc",
        "sys_kdebug",
        "syscall",
        "usertrap",
    ] {
        assert!(fns.iter().any(|f| f == want), "{want} missing from {fns:?}");
    }
    assert!(
        d["cause"]
            .as_str()
            .unwrap()
            .starts_with("a user region grown over an existing mapping"),
        "{d}"
    );
    // The terminal got the same report as text.
    assert!(text.starts_with("panic: remap"), "{text}");
}

#[test]
fn remap_of_a_kernel_stack_names_the_stack() {
    let (_m, r, _) = report_after("remap-kstack", "panic: remap");
    let d = &r["diagnosis"];
    let h = r["panicking_hart"].as_u64().unwrap();
    let hart = r["harts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["hart"] == h)
        .unwrap();
    let pid = hart["pid"].as_i64().unwrap();
    let f = facts(&r);
    assert!(
        f.contains(&format!("owned by: kernel stack of pid {pid}")),
        "{f}"
    );
    assert!(
        d["table"][1]
            .as_str()
            .unwrap()
            .contains("kernel page table"),
        "{d}"
    );
    // KSTACK(i) = TRAMPOLINE - (i+1)*2*PGSIZE.
    let va = json_u64(&d["va"]).unwrap();
    assert_eq!((0x3f_ffff_f000 - va) % 0x2000, 0, "{va:#x} is not a KSTACK");
    assert!(
        d["cause"]
            .as_str()
            .unwrap()
            .starts_with("a kernel stack mapped twice"),
        "{d}"
    );
}

#[test]
fn remap_of_the_trampoline_names_the_shared_top_entry() {
    let (_m, r, _) = report_after("remap-trampoline", "panic: remap");
    let d = &r["diagnosis"];
    assert_eq!(json_u64(&d["va"]), Some(0x3f_ffff_f000), "{d}");
    let f = facts(&r);
    assert!(f.contains("owned by: kernel text"), "{f}");
    assert!(
        d["cause"]
            .as_str()
            .unwrap()
            .starts_with("the trampoline mapped twice"),
        "{d}"
    );
}

#[test]
fn kvmpa_uvmunmap_freewalk_and_page_fault_are_explained() {
    let (_m, r, con) = report_after("kvmpa", "panic: kvmpa: 0x");
    let va = con
        .split("kvmpa: 0x")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let va = u64::from_str_radix(va, 16).unwrap();
    assert_eq!(r["diagnosis"]["va"], hex(va), "{}", r["diagnosis"]);
    assert!(facts(&r).contains("unmapped guard page"), "{}", facts(&r));

    let (_m, r, _) = report_after("uvmunmap", "panic: uvmunmap: not mapped");
    let f = facts(&r);
    assert!(f.contains("is beyond it"), "{f}");
    let h = r["panicking_hart"]
        .as_u64()
        .unwrap_or_else(|| panic!("{r:#}"));
    let fns = functions(&r, h);
    assert!(
        fns.iter().any(|f| f == "uvmunmap") && fns.iter().any(|f| f == "uvmdealloc"),
        "{fns:?}"
    );

    let (_m, r, _) = report_after("freewalk", "panic: freewalk: leaf");
    assert!(
        facts(&r).contains("leaf entries still there: [0]"),
        "{}",
        facts(&r)
    );

    let (_m, r, con) = report_after("pagefault", "panic: kerneltrap");
    // The kernel's own console line is the oracle for the CSRs.
    let stval = con
        .split("stval=0x")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let stval = u64::from_str_radix(stval, 16).unwrap();
    assert_eq!(r["diagnosis"]["va"], hex(stval));
    let f = facts(&r);
    assert!(f.contains("scause 0xd: load page fault"), "{f}");
    assert!(
        f.contains("sys_kdebug") || f.contains("read_volatile"),
        "{f}"
    );
    assert!(f.contains("unmapped guard page"), "{f}");
}
