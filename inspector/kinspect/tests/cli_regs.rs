//! `kinspect regs` and `kinspect satp` over a crafted MemoryTarget, and
//! the real binary's offline `satp` and exit codes.

mod cli_common;
use cli_common::*;

use std::process::Command;

#[test]
fn regs_names_registers_and_decodes_csrs() {
    let mut t = machine();
    let r = run(&mut t, &["regs", "--hart", "1"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let l: Vec<&str> = r.out.lines().collect();
    assert_eq!(l[0], "hart 1  priv S (supervisor)");
    assert_eq!(l[1], "pc            0x0000000080001001");
    assert_eq!(l[2], "ra   x1       0x0000000000001001");
    assert_eq!(l[9], "s0   x8       0x0000000000001008");
    assert_eq!(l[32], "t6   x31      0x000000000000101f");
    assert!(
        r.out
            .contains("sstatus       0x0000000000040102  SIE SPP=S SUM\n"),
        "{}",
        r.out
    );
    assert!(r
        .out
        .contains("scause        0x000000000000000d  load page fault\n"));
    assert!(r
        .out
        .contains("satp          0x8000000000087fff  Sv39 asid 0 root 0x87fff000\n"));
    assert!(r
        .out
        .contains("sie           0x0000000000000222  SSIE STIE SEIE\n"));
    assert!(r.out.contains("sip           0x0000000000000020  STIP\n"));
}

#[test]
fn regs_json_and_missing_csrs() {
    let mut t = machine();
    t.harts[0].csrs.remove(&kinspect::target::Csr::Stval);
    let r = run(&mut t, &["--json", "regs"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["priv"], "S");
    assert_eq!(v["gprs"][1]["abi"], "sp");
    assert_eq!(v["gprs"][1]["x"], 2);
    assert_eq!(v["gprs"][1]["value"], "0x2");
    let stval = v["csrs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stval")
        .unwrap();
    assert!(stval["value"].is_null());
    let r = run(&mut t, &["regs", "--hart", "3"]);
    assert_eq!(r.code, 2);
}

#[test]
fn satp_lists_every_hart_and_decodes_values() {
    let mut t = machine();
    let r = run(&mut t, &["satp"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.out,
        "hart  satp                mode  asid  root\n\
         0     0x8000000000087fff  Sv39  0     0x0000000087fff000\n\
         1     0x8000000000087fff  Sv39  0     0x0000000087fff000\n\
         2     0x8000000000087fff  Sv39  0     0x0000000087fff000\n"
    );
    let r = run(&mut t, &["--json", "satp", "0x9beef00000012345"]);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["mode"], "sv48");
    assert_eq!(v["mode_bits"], 9);
    assert_eq!(v["asid"], 0xbeef);
    assert_eq!(v["ppn"], "0x12345");
    assert_eq!(v["root"], "0x12345000");
    assert_eq!(v["satp"], "0x9beef00000012345");
}

fn kinspect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_binary_decodes_satp_offline() {
    let o = kinspect(&["--gdb", "127.0.0.1:1", "satp", "0x8000000000087fff"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "satp  0x8000000000087fff\n\
         mode  8 (Sv39: 3 levels, 39-bit virtual addresses)\n\
         asid  0\n\
         ppn   0x87fff\n\
         root  0x0000000087fff000 (ppn << 12)\n"
    );
    let o = kinspect(&["satp", "0xb000000000000000"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("reserved mode 11"));
}

#[test]
fn the_binary_exit_codes() {
    // Nothing listens on port 1.
    let o = kinspect(&["--gdb", "127.0.0.1:1", "maps"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("kinspect: "), "{err}");
    // Usage errors: 2, one line.
    let o = kinspect(&["maps", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kinspect: unexpected argument '--bogus'"),
        "{err}"
    );
    let o = kinspect(&["satp", "banana"]);
    assert_eq!(o.status.code(), Some(2));
    // A bad --gdb is bad input naming the part, not a protocol error.
    for (gdb, why) in [
        ("foo", "expected [HOST]:PORT, e.g. localhost:1234 or :1234"),
        (
            "localhost:99999",
            "port `99999` is not a number from 1 to 65535",
        ),
        ("localhost:", "no port after `:`"),
        (":0", "port `0` is not a number from 1 to 65535"),
    ] {
        let o = kinspect(&["--gdb", gdb, "maps"]);
        assert_eq!(o.status.code(), Some(2), "--gdb {gdb}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("kinspect: invalid value '{gdb}' for '--gdb"))
                && err.contains(why),
            "--gdb {gdb}: {err}"
        );
    }
    // --ram-mib 0 would make every table "outside RAM": refused.
    let o = kinspect(&["--ram-mib", "0", "satp", "0x1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("kinspect: invalid value '0' for '--ram-mib"),
        "{err}"
    );
    // Help teaches, with examples and exit codes, and exits 0.
    let o = kinspect(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:"),
        "{help}"
    );
}

/// Under `--json` a failure is one JSON object on stdout, with the same
/// exit code as the text one, and nothing on stderr.
#[test]
fn the_binary_reports_errors_as_json() {
    for (args, code, starts) in [
        (
            &["--json", "--gdb", "127.0.0.1:1", "maps"][..],
            3,
            "cannot reach",
        ),
        (&["--json", "satp", "banana"], 2, "invalid value 'banana'"),
        (
            &["maps", "--bogus", "--json"],
            2,
            "unexpected argument '--bogus'",
        ),
        (
            &["--json", "--elf", "/nonexistent/kernel.elf", "satp", "0x1"],
            2,
            "",
        ),
    ] {
        let o = kinspect(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), 1, "{args:?}: {out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(v["exit_code"], code, "{args:?}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(
            !error.is_empty() && error.starts_with(starts),
            "{args:?}: {error}"
        );
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
        assert!(
            o.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `kinspect completions SHELL` prints a script that completes the real
/// subcommands and options (bash is run for real).
#[test]
fn the_binary_prints_shell_completions() {
    for (shell, marker) in [
        ("bash", "_kinspect()"),
        ("zsh", "#compdef kinspect"),
        ("fish", "complete -c kinspect"),
    ] {
        let o = kinspect(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("va-range"), "{shell}: no --va-range");
    }
    // bash: complete `kinspect vmp` and `kinspect vmprint --va-r`.
    let script = String::from_utf8(kinspect(&["completions", "bash"]).stdout).unwrap();
    let file =
        std::env::temp_dir().join(format!("kinspect-completion-{}.bash", std::process::id()));
    std::fs::write(&file, script).unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; \
             COMP_WORDS=(kinspect vmp); COMP_CWORD=1; _kinspect kinspect vmp kinspect; echo \"${{COMPREPLY[*]}}\"; \
             COMP_WORDS=(kinspect vmprint --va-r); COMP_CWORD=2; _kinspect kinspect --va-r vmprint; echo \"${{COMPREPLY[*]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "vmprint\n--va-range\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = kinspect(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}
