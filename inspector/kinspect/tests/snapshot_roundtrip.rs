//! Snapshots against the real kernel under the real QEMU: every read-only
//! command prints the same live and from a snapshot taken at the same
//! moment; damaged snapshots are one line and exit 6; QEMU's own
//! `dump-guest-memory` core opens too, its registers equal the live ones
//! and its recovered satp equals `kernel_pagetable` as QEMU's `xp` reads it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kinspect_testkit::{json_u64, kernel_elf, Machine};

const WAIT: Duration = Duration::from_secs(60);
const BAD_SNAPSHOT: i32 = 6;

fn kinspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(args)
        .output()
        .expect("running kinspect");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kinspect-snaptest-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// A halted machine at its shell prompt, with a snapshot of it.
fn halted_machine_and_snapshot(file: &Path) -> Machine {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    m.pause();
    let elf = kernel_elf();
    let (code, out, err) = kinspect(&[
        "--gdb",
        &m.gdb_addr(),
        "--elf",
        elf.to_str().unwrap(),
        "snapshot",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "snapshot failed: {out}{err}");
    assert!(out.contains("3 harts"), "{out}");
    m
}

#[test]
fn every_read_only_command_is_the_same_live_and_from_the_snapshot() {
    let file = tmp("live.kisnap");
    let m = halted_machine_and_snapshot(&file);
    let elf = kernel_elf();
    let elf = elf.to_str().unwrap();
    let gdb = m.gdb_addr();
    let commands: Vec<Vec<&str>> = vec![
        vec!["satp"],
        vec!["regs", "--hart", "0"],
        vec!["regs", "--hart", "1"],
        vec!["regs", "--hart", "2"],
        vec!["maps", "--hart", "0"],
        vec!["maps", "--hart", "1"],
        vec!["maps", "--hart", "2"],
        vec!["maps", "--hart", "0", "--filter", "u"],
        vec!["vmprint", "--hart", "0"],
        vec!["vmprint", "--va", "--hart", "2"],
        vec!["translate", "0x3ffffff000", "--explain"],
        vec!["translate", "kernelvec", "--hart", "1"],
        vec!["translate", "0x3fffffc000"],
        vec!["--json", "maps", "--hart", "1"],
        vec!["--json", "regs", "--hart", "2"],
        vec!["regs", "--hart", "7"],
    ];
    for c in &commands {
        let mut live = vec!["--gdb", gdb.as_str(), "--elf", elf];
        live.extend(c);
        let mut off = vec!["--snapshot", file.to_str().unwrap(), "--elf", elf];
        off.extend(c);
        let (lc, lo, le) = kinspect(&live);
        let (sc, so, se) = kinspect(&off);
        assert_eq!(
            lc, sc,
            "{c:?}: exit codes differ\nlive: {le}\nsnapshot: {se}"
        );
        assert_eq!(lo, so, "{c:?}: output differs");
        assert!(!lo.is_empty() || lc != 0, "{c:?} printed nothing");
    }
    let _ = std::fs::remove_file(&file);
}

#[test]
fn damaged_and_foreign_snapshots_are_one_line_and_exit_6() {
    let file = tmp("good.kisnap");
    let _m = halted_machine_and_snapshot(&file);
    let bytes = std::fs::read(&file).unwrap();
    let elf = kernel_elf();
    let elf = elf.to_str().unwrap();

    let check = |name: &str, content: &[u8], elf: &str, expect: &str| {
        let p = tmp(name);
        std::fs::write(&p, content).unwrap();
        let (code, out, err) = kinspect(&["--snapshot", p.to_str().unwrap(), "--elf", elf, "maps"]);
        assert_eq!(code, BAD_SNAPSHOT, "{name}: {out}{err}");
        assert!(out.is_empty(), "{name}: printed {out}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with("kinspect: ") && err.contains(expect),
            "{name}: {err}"
        );
        let _ = std::fs::remove_file(&p);
    };
    check(
        "truncated.kisnap",
        &bytes[..bytes.len() / 2],
        elf,
        "truncated",
    );
    let mut magic = bytes.clone();
    magic[..6].copy_from_slice(b"NOTSNP");
    check("magic.kisnap", &magic, elf, "not a kinspect snapshot");
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 100] ^= 0xff;
    check("flipped.kisnap", &flipped, elf, "checksum");

    // Another kernel build: one byte of its text changed.
    let mut other = std::fs::read(elf).unwrap();
    let off = {
        use object::{Object, ObjectSegment};
        let f = object::File::parse(&*other).unwrap();
        let seg = f.segments().next().unwrap();
        seg.file_range().0 as usize + 0x10
    };
    other[off] ^= 0x01;
    let other_elf = tmp("other-kernel.elf");
    std::fs::write(&other_elf, &other).unwrap();
    check(
        "good-copy.kisnap",
        &bytes,
        other_elf.to_str().unwrap(),
        "another kernel build",
    );

    // The same ELF copied elsewhere is the same kernel.
    let copy = tmp("same-kernel.elf");
    std::fs::copy(elf, &copy).unwrap();
    let (code, _, err) = kinspect(&[
        "--snapshot",
        file.to_str().unwrap(),
        "--elf",
        copy.to_str().unwrap(),
        "satp",
    ]);
    assert_eq!(code, 0, "{err}");
    // A snapshot cannot run.
    let _ = std::fs::remove_file(&file);
}

#[test]
fn qemu_elf_core_opens_with_live_registers_and_recovered_satp() {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    m.pause();
    let core = tmp("qemu.core");
    let said = m.hmp(0, &format!("dump-guest-memory {}", core.display()));
    assert!(said.trim().is_empty(), "dump-guest-memory said {said}");
    let elf = kernel_elf();
    let elf = elf.to_str().unwrap();
    let gdb = m.gdb_addr();
    for h in ["0", "1", "2"] {
        let (_, live, _) = kinspect(&["--gdb", &gdb, "--elf", elf, "--json", "regs", "--hart", h]);
        let (code, off, err) = kinspect(&[
            "--snapshot",
            core.to_str().unwrap(),
            "--elf",
            elf,
            "--json",
            "regs",
            "--hart",
            h,
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("note: QEMU ELF core: no CSRs"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let live: serde_json::Value = serde_json::from_str(&live).unwrap();
        let off: serde_json::Value = serde_json::from_str(&off).unwrap();
        assert_eq!(live["pc"], off["pc"], "hart {h}");
        assert_eq!(live["gprs"], off["gprs"], "hart {h}");
    }
    // kernel_pagetable, read independently by QEMU.
    let sym = {
        use object::{Object, ObjectSymbol};
        let data = std::fs::read(elf).unwrap();
        let f = object::File::parse(&*data).unwrap();
        let s = f
            .symbols()
            .find(|s| s.name() == Ok("kernel_pagetable"))
            .unwrap();
        s.address()
    };
    let xp = m.hmp(0, &format!("xp /1gx {sym:#x}"));
    let root = u64::from_str_radix(
        xp.split(':')
            .nth(1)
            .unwrap()
            .trim()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let (code, out, err) = kinspect(&[
        "--snapshot",
        core.to_str().unwrap(),
        "--elf",
        elf,
        "--json",
        "satp",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Each hart's recovered root is the table that hart really had in satp
    // (read live from the paused machine): kernel_pagetable on an idle
    // hart, the process's own table on a hart that was running one.
    let (code, live, err) = kinspect(&["--gdb", &gdb, "--elf", elf, "--json", "satp"]);
    assert_eq!(code, 0, "{err}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    let harts = v.as_array().unwrap();
    assert_eq!(harts.len(), 3, "{out}");
    for (h, l) in harts.iter().zip(live.as_array().unwrap()) {
        let recovered = json_u64(&h["root"]).unwrap();
        let real = json_u64(&l["root"]).unwrap();
        assert_eq!(
            recovered, real,
            "hart {}: recovered {out}\nlive {live}",
            h["hart"]
        );
    }
    assert!(
        live.as_array()
            .unwrap()
            .iter()
            .any(|l| json_u64(&l["root"]) == Some(root)),
        "no hart is on kernel_pagetable {root:#x}: {live}"
    );
    // The kernel page table walks the same from the core and live.
    let (_, live, _) = kinspect(&[
        "--gdb",
        &gdb,
        "--elf",
        elf,
        "vmprint",
        "--root",
        &format!("{root:#x}"),
    ]);
    let (code, off, err) = kinspect(&[
        "--snapshot",
        core.to_str().unwrap(),
        "--elf",
        elf,
        "vmprint",
        "--root",
        &format!("{root:#x}"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(live, off);
    assert!(live.lines().count() > 100, "{live}");
    // A core cut short is one line and exit 6.
    let bytes = std::fs::read(&core).unwrap();
    let cut = tmp("cut.core");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let (code, out, err) = kinspect(&["--snapshot", cut.to_str().unwrap(), "--elf", elf, "satp"]);
    assert_eq!(code, BAD_SNAPSHOT, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated"), "{err}");
    let _ = std::fs::remove_file(&cut);
    let _ = std::fs::remove_file(&core);
}
