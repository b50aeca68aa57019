//! `kinspect report --batch` over a lab section's worth of crashes: real
//! panics of C xv6 kernels with the classic pgtbl-lab bugs, caught by
//! `kinspect watch` under the real QEMU and saved with `kinspect snapshot`,
//! copied to 100 files (each beside its kernel as `NAME.elf`), with a
//! healthy kernel's snapshot and damaged files among them.
//!
//! The oracle for each file's diagnosis is `kinspect --snapshot FILE
//! report` run on its own, and the diagnosis each variant's manifest
//! names; the batch must group exactly as those say, report every damaged
//! file with its reason, and go on past them.

mod xv6_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kinspect_testkit::xv6::variant;
use kinspect_testkit::Boot;
use serde_json::Value;
use xv6_common::{kinspect, shell, text};

/// Boot `name` (it panics while booting), let `kinspect watch` catch the
/// panic, and save the machine to `out`.
fn panicked_snapshot(name: &str, out: &Path) {
    let v = variant(name);
    assert!(v.run.is_none(), "{name} must panic while booting");
    let mut m = v.boot_with(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let elf = v.elf();
    let (child, mut err, line) = xv6_common::start_watch(&m, &elf, &[]);
    let o = child.wait_with_output().expect("waiting for watch");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(
        o.status.success(),
        "{name}: watch failed: {line}{rest}\nconsole:\n{}",
        m.console()
    );
    m.pause();
    let o = kinspect(
        &m,
        &elf,
        &["snapshot", "-o", out.to_str().expect("utf-8 path")],
    );
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
}

/// `kinspect --snapshot FILE --elf ELF --json report` on its own.
fn single_report(file: &Path, elf: &Path) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--snapshot")
        .arg(file)
        .arg("--elf")
        .arg(elf)
        .args(["--json", "report"])
        .output()
        .expect("running kinspect report");
    assert_eq!(
        o.status.code(),
        Some(0),
        "report of {}: {}",
        file.display(),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("report JSON")
}

fn link(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from, to)
        .unwrap_or_else(|e| panic!("linking {}: {e}", to.display()));
}

#[test]
fn a_hundred_crashes_are_grouped_by_cause() {
    let dir = std::env::temp_dir().join(format!("kinspect-batch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let originals = dir.join("originals");
    let batch = dir.join("section");
    std::fs::create_dir_all(&originals).expect("temp dir");
    std::fs::create_dir_all(&batch).expect("temp dir");

    // The crashes, and a healthy kernel at its shell prompt.
    let buggy = [
        "bug-kstack-twice",
        "bug-trampoline-twice",
        "bug-kvmpa-global",
    ];
    let mut sources: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for name in buggy {
        let f = originals.join(format!("{name}.kisnap"));
        panicked_snapshot(name, &f);
        sources.push((name.to_string(), f, variant(name).elf()));
    }
    let stock = variant("stock");
    let (m, _) = shell(&stock);
    let healthy = originals.join("stock.kisnap");
    let o = kinspect(
        &m,
        &stock.elf(),
        &["snapshot", "-o", healthy.to_str().expect("utf-8 path")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // The same machine saved with a copy of its kernel that is then
    // deleted, as on the student's machine the snapshot came from.
    let gone = originals.join("gone");
    std::fs::create_dir_all(&gone).expect("temp dir");
    std::fs::copy(stock.elf(), gone.join("kernel")).expect("copy");
    let orphan = originals.join("orphan.kisnap");
    let o = kinspect(
        &m,
        &gone.join("kernel"),
        &["snapshot", "-o", orphan.to_str().expect("utf-8 path")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    std::fs::remove_dir_all(&gone).expect("removing the kernel copy");
    drop(m);
    sources.push(("stock".into(), healthy, stock.elf()));

    // The oracle: each original reported on its own.
    let mut class_of: BTreeMap<String, String> = BTreeMap::new();
    for (name, f, elf) in &sources {
        let r = single_report(f, elf);
        let class = match r["diagnosis"]["class"].as_str() {
            Some(c) => {
                let v = variant(name);
                assert_eq!(
                    r["diagnosis"]["kind"].as_str(),
                    v.diagnosis.as_deref(),
                    "{name}: {r:#}"
                );
                c.to_string()
            }
            None => {
                assert_eq!(name, "stock", "{name} has no diagnosis: {r:#}");
                assert_eq!(r["panicked"], 0, "{r:#}");
                "no-panic".to_string()
            }
        };
        class_of.insert(name.clone(), class);
    }
    // What a reader of each bug's README expects.
    assert_eq!(class_of["bug-kstack-twice"], "remap/kstack-twice");
    assert_eq!(class_of["bug-trampoline-twice"], "remap/trampoline-twice");
    assert_eq!(class_of["bug-kvmpa-global"], "kvmpa/wrong-table");

    // 100 files: 88 copies beside their kernels, and 12 that cannot be
    // reported: 4 truncated, 3 garbage, 3 empty, 2 beside another kernel.
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    let mut damaged = Vec::new();
    for i in 0..100usize {
        let (name, src, elf) = &sources[i % sources.len()];
        let f = batch.join(format!("{i:03}-{name}.kisnap"));
        let bytes = std::fs::read(src).expect("snapshot");
        let stem_elf = f.with_extension("elf");
        match i {
            0..=87 => {
                std::fs::copy(src, &f).expect("copy");
                link(elf, &stem_elf);
                *want.entry(class_of[name].clone()).or_default() += 1;
            }
            88..=91 => {
                std::fs::write(&f, &bytes[..bytes.len() * (i - 86) / 8]).expect("write");
                link(elf, &stem_elf);
                damaged.push(f);
            }
            92..=94 => {
                let junk: Vec<u8> = (0..4096u32)
                    .map(|x| (x.wrapping_mul(2_654_435_761u32) >> 24) as u8)
                    .collect();
                std::fs::write(&f, junk).expect("write");
                damaged.push(f);
            }
            95..=97 => {
                std::fs::write(&f, b"").expect("write");
                damaged.push(f);
            }
            _ => {
                // A stock snapshot beside a buggy kernel: another build.
                std::fs::copy(&orphan, &f).expect("copy");
                link(&sources[0].2, &stem_elf);
                damaged.push(f);
            }
        }
    }
    *want.entry("unreadable".into()).or_default() += damaged.len();

    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--json", "report", "--batch"])
        .arg(&batch)
        .output()
        .expect("running kinspect report --batch");
    assert_eq!(
        o.status.code(),
        Some(6),
        "a batch with damaged files exits 6 after reporting all: stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let b: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)));
    let files = b["files"].as_array().expect("files");
    assert_eq!(files.len(), 100, "{b:#}");
    let got: BTreeMap<String, usize> = b["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["class"].as_str().unwrap_or("?").to_string(),
                g["count"].as_u64().unwrap_or(0) as usize,
            )
        })
        .collect();
    assert_eq!(got, want, "{}", text(&o.stdout));
    // Each file: the class of its original, or its own reason.
    for e in files {
        let file = e["file"].as_str().expect("file");
        if damaged.iter().any(|d| d.to_str() == Some(file)) {
            assert_eq!(e["outcome"], "error", "{e:#}");
            let why = e["error"].as_str().unwrap_or_default();
            assert!(!why.is_empty() && !why.contains('\n'), "{e:#}");
            continue;
        }
        let name = sources
            .iter()
            .map(|s| s.0.as_str())
            .find(|n| file.ends_with(&format!("-{n}.kisnap")))
            .expect("a source");
        let class = e["class"].as_str().unwrap_or("no-panic");
        assert_eq!(class, class_of[name], "{e:#}");
        if name != "stock" {
            assert_eq!(
                e["message"].as_str(),
                variant(name).panic.as_deref(),
                "{e:#}"
            );
        }
    }
    // The wrong kernel is named as such, not as damage.
    let wrong = files
        .iter()
        .find(|e| e["file"].as_str().is_some_and(|f| f.contains("/098-")))
        .expect("file 098");
    assert!(
        wrong["error"]
            .as_str()
            .unwrap_or_default()
            .contains("is the kernel it was taken of"),
        "{wrong:#}"
    );

    // The text form: one line per file and the same counts.
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["report", "--batch"])
        .arg(&batch)
        .args(["--jobs", "2"])
        .output()
        .expect("running kinspect report --batch");
    assert_eq!(o.status.code(), Some(6), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        text(&o.stderr).contains("12 of 100 files could not be reported"),
        "{}",
        text(&o.stderr)
    );
    for (class, n) in &want {
        assert!(
            out.lines().any(|l| l
                .split_whitespace()
                .take(2)
                .eq([n.to_string().as_str(), class.as_str()])),
            "no `{n} {class}` line in:\n{out}"
        );
    }
    // KINSPECT_KEEP_BATCH=1 keeps the files for a look (docs/postmortem.md).
    if std::env::var_os("KINSPECT_KEEP_BATCH").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
}
