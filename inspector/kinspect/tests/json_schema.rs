//! The `--json` contract (docs/json.md) over the real kernel under the
//! real QEMU: every read-only command's output is checked field by field,
//! recursively, against the schema's one rule for numbers: addresses,
//! PTEs, CSRs, register values and sizes are `"0x…"` strings; a bare JSON
//! number appears only under a key the schema lists as always fitting in
//! 53 bits (pids, counts, indices, levels, harts). Then Debian's jq 1.6,
//! which holds numbers as doubles, must give every output back unchanged,
//! and satp digit for digit.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kinspect_testkit::{json_u64, kernel_elf, root, Machine};
use serde_json::Value;

/// Keys whose numbers always fit in 53 bits: the only keys a JSON number
/// may appear under (docs/json.md, "Numbers").
const NUMBER_KEYS: &[&str] = &[
    // machine and kernel objects
    "hart",
    "harts",
    "slot",
    "pid",
    "ppid",
    "xstate",
    "panicked",
    "panicking_hart",
    "nproc",
    "noff",
    "intena",
    // page tables
    "level",
    "index",
    "mode_bits",
    "asid",
    "tables",
    "entries",
    "limit",
    // registers, source lines
    "x",
    "line",
    // counts
    "errors",
    "warnings",
    "processes",
    "page_tables",
    "free_pages",
    "free_bytes",
    "nfree",
    "managed_pages",
    "exit_code",
];

/// Keys that hold a 64-bit value: a `"0x…"` string or null, never a number.
const HEX_KEYS: &[&str] = &[
    "va",
    "pa",
    "size",
    "root",
    "satp",
    "ppn",
    "pte",
    "pte_addr",
    "pc",
    "sp",
    "value",
    "bits",
    "kstack",
    "kstack_pa",
    "kstack_table",
    "pagetable",
    "kpagetable",
    "kernel_pagetable",
    "trapframe",
    "context_ra",
    "context_sp",
    "chan",
    "sz",
    "page_va",
    "page_pa",
    "page_size",
    "start",
    "end",
];

fn is_hex(s: &str) -> bool {
    s.strip_prefix("0x").is_some_and(|h| {
        !h.is_empty() && h.len() <= 16 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
    })
}

/// Every violation of the number rule in `v`, with its path. Array
/// elements are checked under their array's key.
fn violations(v: &Value, key: &str, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Number(n) => {
            if !NUMBER_KEYS.contains(&key) {
                out.push(format!("{path}: bare number {n} under `{key}`"));
            } else if n.as_u64().or(n.as_i64().map(|i| i.unsigned_abs())) > Some(1 << 53) {
                out.push(format!("{path}: {n} does not fit in 53 bits"));
            }
        }
        Value::String(s) => {
            if HEX_KEYS.contains(&key) && !is_hex(s) {
                out.push(format!("{path}: `{key}` is {s:?}, not \"0x…\""));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                violations(x, key, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                violations(x, k, &format!("{path}.{k}"), out);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

fn kinspect(m: &Machine, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .current_dir(root())
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(kernel_elf())
        .args(args)
        .output()
        .expect("running kinspect")
}

/// `jq ARGS` over `input`; its stdout.
fn jq(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("jq")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jq (apt-get install jq)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        o.status.success(),
        "jq {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn every_command_writes_64_bit_values_as_hex_strings_and_jq_keeps_them() {
    let m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(90));
    // (arguments, exit code): each read-only command, and failures.
    let commands: &[(&[&str], i32)] = &[
        (&["satp"], 0),
        (&["satp", "0x8000000000087fff"], 0),
        (&["regs", "--hart", "0"], 0),
        (&["regs", "--hart", "2"], 0),
        (&["maps", "--hart", "1"], 0),
        (&["maps", "--kernel"], 0),
        (&["maps", "--pid", "1"], 0),
        (&["vmprint", "--pid", "1"], 0),
        (&["vmprint", "--kernel"], 0),
        (
            &[
                "vmprint",
                "--kernel",
                "--va-range",
                "0x3fc0000000-0x4000000000",
            ],
            0,
        ),
        (&["translate", "0x3ffffff000", "--explain"], 0),
        (&["translate", "kernelvec", "--kernel"], 0),
        (&["translate", "0x0", "--kernel"], 4),
        (&["procs", "--all"], 0),
        (&["check"], 0),
        (&["report"], 0),
        (&["regs", "--hart", "9"], 2),
        (&["translate", "no_such_symbol"], 2),
    ];
    let mut bad = Vec::new();
    for (args, code) in commands {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = kinspect(&m, &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {err}");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document ({e}): {}\nstderr: {err}",
                String::from_utf8_lossy(&o.stdout)
            )
        });
        if *code == 2 {
            assert_eq!(v["exit_code"], 2, "{args:?}: {v}");
            assert!(v["error"].is_string(), "{args:?}: {v}");
        }
        let mut found = Vec::new();
        violations(&v, "", "$", &mut found);
        bad.extend(found.into_iter().map(|f| format!("{args:?} {f}")));
        // jq 1.6 reads numbers as doubles: nothing may change on the way.
        let back: Value = serde_json::from_str(&jq(&["-c", "."], &o.stdout)).unwrap();
        assert!(back == v, "{args:?}: jq changed the output");
    }
    assert!(
        bad.is_empty(),
        "{} violations:\n{}",
        bad.len(),
        bad.join("\n")
    );

    // satp through jq, digit for digit, against the text output.
    let text = kinspect(&m, &["satp"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let row = text.lines().nth(1).expect("a hart row");
    let want = row.split_whitespace().nth(1).unwrap();
    let want = u64::from_str_radix(want.trim_start_matches("0x"), 16).unwrap();
    assert!(
        want > 1 << 53,
        "satp {want:#x} of an Sv39 hart is above 2^53"
    );
    let o = kinspect(&m, &["--json", "satp"]);
    let got = jq(&["-r", ".[0].satp"], &o.stdout);
    assert_eq!(got.trim(), format!("{want:#x}"), "jq .[0].satp");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json_u64(&v[0]["satp"]), Some(want));
}

#[test]
fn the_rule_catches_a_bare_address() {
    let mut found = Vec::new();
    let v = serde_json::json!({"hart": 0, "satp": 9223372036855333000u64, "ranges": [{"va": "0x1000", "pa": 4096}]});
    violations(&v, "", "$", &mut found);
    assert_eq!(
        found,
        [
            "$.ranges[0].pa: bare number 4096 under `pa`",
            "$.satp: bare number 9223372036855333000 under `satp`"
        ]
    );
}
