//! The RAM fast path against the real QEMU: guest RAM read directly from
//! the QEMU process (its shared RAM file, or /proc/PID/mem) must equal what
//! QEMU's own gdb stub returns, byte for byte, and every read-only command
//! must print exactly the same on both paths, on our kernel and on stock
//! C xv6. Where the fast path cannot be had (a proxy between kinspect and
//! QEMU, as an ssh tunnel would be), kinspect says why in one line and
//! reads through the stub.

mod xv6_common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kinspect::target::fastram::{FastPath, FastQemu};
use kinspect::target::qemu::QemuTarget;
use kinspect::target::Target;
use kinspect_testkit::{Boot, Machine};
use xv6_common::text;

const BOOT: Duration = Duration::from_secs(120);

/// Booted to the shell prompt, then paused by QEMU's monitor so memory
/// holds still between the runs compared.
fn at_shell(share_ram: bool) -> Machine {
    let mut m = Machine::boot(Boot {
        share_ram,
        ..Boot::default()
    });
    m.wait_for("init: starting sh", BOOT);
    m.wait_for("$ ", BOOT);
    m.pause();
    m
}

/// Pages spread over all of RAM: the kernel's first 2 MiB, every 61st page
/// after that, and the last page.
fn sample_pages() -> Vec<u64> {
    let mut v: Vec<u64> = (0..512).map(|i| 0x8000_0000 + i * 4096).collect();
    v.extend((512..32768).step_by(61).map(|i| 0x8000_0000 + i * 4096));
    v.push(0x8800_0000 - 4096);
    v
}

fn compare_with_stub(m: &Machine, expect: &str) {
    let stub = QemuTarget::connect(&m.gdb_addr()).expect("connecting");
    let mut fast = FastQemu::new(stub, FastPath::Auto);
    assert!(
        fast.fallback().is_none(),
        "no fast path: {:?}",
        fast.fallback()
    );
    let ram = fast.fast().expect("fast path");
    assert_eq!(ram.range(), 0x8000_0000..0x8800_0000);
    assert_eq!(ram.pid(), m.pid() as i32, "the QEMU we booted");
    assert!(
        ram.describe().contains(expect),
        "{} should read through {expect}",
        ram.describe()
    );
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 4096];
    let mut nonzero = 0;
    for pa in sample_pages() {
        fast.read_phys(pa, &mut a).unwrap();
        fast.stub().read_phys(pa, &mut b).unwrap();
        assert!(
            a == b,
            "page {pa:#x} differs between the fast path and the stub"
        );
        nonzero += usize::from(a.iter().any(|x| *x != 0));
    }
    assert!(nonzero > 100, "only {nonzero} sampled pages hold anything");
    // Unaligned and straddling reads, and nothing outside RAM.
    let mut x = [0u8; 100];
    let mut y = [0u8; 100];
    fast.read_phys(0x8000_0ff0, &mut x).unwrap();
    fast.stub().read_phys(0x8000_0ff0, &mut y).unwrap();
    assert_eq!(x, y);
    assert!(fast.read_phys(0x8800_0000 - 50, &mut x).is_err());
    assert!(
        fast.read_phys(0x1000_0000, &mut x).is_err(),
        "the UART is no RAM"
    );
    // ROM is outside RAM: it still comes from the stub.
    fast.read_phys(0x1000, &mut x).unwrap();
    fast.finish().unwrap();
}

#[test]
fn a_mapped_ram_file_reads_what_the_stub_reads() {
    let m = at_shell(true);
    compare_with_stub(&m, "mapped /dev/shm/");
}

#[test]
fn proc_pid_mem_reads_what_the_stub_reads() {
    let m = at_shell(false);
    compare_with_stub(&m, &format!("/proc/{}/mem", m.pid()));
}

/// kinspect at `gdb` with these arguments.
fn kinspect(gdb: &str, elf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(gdb)
        .arg("--elf")
        .arg(elf)
        .args(args)
        .output()
        .expect("running kinspect")
}

/// The read-only commands, text and JSON.
const COMMANDS: &[&[&str]] = &[
    &["satp"],
    &["regs", "--hart", "0"],
    &["regs", "--hart", "2"],
    &["maps", "--hart", "0"],
    &["maps", "--pid", "1"],
    &["maps", "--pid", "2", "--filter", "u"],
    &["vmprint"],
    &["vmprint", "--kernel", "--va"],
    &["vmprint", "--pid", "2"],
    &["procs", "--all"],
    &["check"],
    &["translate", "0x3ffffff000", "--explain"],
    &["translate", "--pid", "1", "0x0"],
    &["report"],
    &["--json", "maps", "--hart", "1"],
    &["--json", "vmprint", "--pid", "1"],
    &["--json", "procs"],
    &["--json", "check"],
    &["--json", "regs", "--hart", "1"],
    &["--json", "report"],
];

/// Every command gives the same stdout, stderr and exit code with and
/// without the fast path (the report's `from` line names the path).
fn same_both_ways(gdb: &str, elf: &Path) {
    let v = kinspect(gdb, elf, &["-v", "satp"]);
    let says = text(&v.stderr);
    assert!(
        says.contains("read directly"),
        "-v should say RAM is read directly: {says}"
    );
    for args in COMMANDS {
        let fast = kinspect(gdb, elf, args);
        let mut slow_args = vec!["--no-fast-path"];
        slow_args.extend_from_slice(args);
        let slow = kinspect(gdb, elf, &slow_args);
        let normal = |o: &Output| {
            let s = text(&o.stdout);
            match s.find(", RAM read directly (") {
                Some(i) => {
                    let end = s[i..].find(')').map_or(s.len(), |j| i + j + 1);
                    format!("{}{}", &s[..i], &s[end..])
                }
                None => s,
            }
        };
        assert_eq!(
            fast.status.code(),
            slow.status.code(),
            "kinspect {args:?}: exit codes differ\nfast stderr: {}\nstub stderr: {}",
            text(&fast.stderr),
            text(&slow.stderr)
        );
        assert!(
            !text(&fast.stdout).is_empty(),
            "kinspect {args:?} printed nothing: {}",
            text(&fast.stderr)
        );
        assert_eq!(
            normal(&fast),
            normal(&slow),
            "kinspect {args:?}: output differs between the fast path and the stub"
        );
        assert_eq!(
            text(&fast.stderr),
            text(&slow.stderr),
            "kinspect {args:?}: warnings differ"
        );
    }
}

#[test]
fn every_read_only_command_prints_the_same_on_both_paths() {
    let m = at_shell(true);
    same_both_ways(&m.gdb_addr(), &kinspect_testkit::kernel_elf());
}

#[test]
fn every_read_only_command_prints_the_same_on_c_xv6() {
    let v = kinspect_testkit::xv6::variant("stock");
    let (m, _) = xv6_common::shell(&v);
    same_both_ways(&m.gdb_addr(), &v.elf());
}

/// Forward one connection from a loopback port to `to`, as an ssh tunnel
/// or socat would: the stub's peer is then this process, not QEMU.
fn proxy(to: String) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&to) else {
                return;
            };
            for (mut a, mut b) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        match a.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if b.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = b.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    port
}

#[test]
fn through_a_tunnel_it_says_why_and_reads_through_the_stub() {
    let m = at_shell(true);
    let elf = kinspect_testkit::kernel_elf();
    let port = proxy(format!("127.0.0.1:{}", m.gdb_port()));
    let tunnel = format!("127.0.0.1:{port}");
    let o = kinspect(&tunnel, &elf, &["maps", "--hart", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("kinspect: memory through the gdb stub: the stub is served by pid ")
            && err.contains("not QEMU"),
        "{err}"
    );
    let direct = kinspect(&m.gdb_addr(), &elf, &["maps", "--hart", "0"]);
    assert_eq!(text(&o.stdout), text(&direct.stdout));
    // --no-fast-path asks for the stub: nothing to explain.
    let o = kinspect(&tunnel, &elf, &["--no-fast-path", "maps", "--hart", "0"]);
    assert_eq!(text(&o.stderr), "");
}

/// `kinspect top` while the guest runs usertests: processes appear and go
/// frame after frame, and the guest is never halted (its console keeps
/// printing while top runs, and QEMU says it is running afterwards).
#[test]
fn top_follows_a_forking_workload_without_halting_it() {
    let mut m = Machine::boot(Boot::default());
    m.wait_for("$ ", BOOT);
    let mark = m.console_len();
    m.send(b"usertests\n");
    // Wait until usertests is well under way (it has printed a test name).
    m.wait_for_after(mark, "test ", BOOT);
    let elf = kinspect_testkit::kernel_elf();
    let child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", &m.gdb_addr(), "--elf"])
        .arg(&elf)
        .args(["--json", "top", "--frames", "40", "--interval", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kinspect top");
    let during_start = m.console_len();
    let o = child.wait_with_output().expect("kinspect top");
    let during_end = m.console_len();
    assert_eq!(o.status.code(), Some(0), "top: {}", text(&o.stderr));
    assert!(
        during_end > during_start,
        "the console printed nothing while top ran: the guest was halted?"
    );
    assert_eq!(m.hmp(0, "info status").trim(), "VM status: running");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("top JSON");
    let frames = v["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 40);
    let mut pids = std::collections::BTreeSet::new();
    let mut new = 0;
    let mut exited = 0;
    let mut ms = Vec::new();
    for f in frames {
        ms.push(f["ms"].as_u64().unwrap());
        if f.get("error").is_some() {
            continue;
        }
        for p in f["procs"].as_array().unwrap() {
            pids.insert(p["pid"].as_i64().unwrap());
            new += usize::from(p["change"] == "new");
            // 64-bit values as "0x…" strings.
            assert!(p["pagetable"].as_str().unwrap().starts_with("0x"));
        }
        exited += f["exited"].as_array().unwrap().len();
    }
    assert!(
        pids.contains(&1) && pids.contains(&2),
        "init and sh: {pids:?}"
    );
    assert!(
        pids.len() > 3 && new > 0 && exited > 0,
        "usertests forks: processes should come and go, saw pids {pids:?}, {new} new, {exited} exited"
    );
    assert!(
        ms.windows(2).all(|w| w[0] < w[1]),
        "frames in time order: {ms:?}"
    );
    // Every frame is a consistent read or says it is not: none is empty.
    assert!(frames
        .iter()
        .all(|f| f.get("error").is_some() || !f["procs"].as_array().unwrap().is_empty()));
}

/// On stock C xv6 `top` shows the kernel's `ticks`: they advance frame
/// after frame, so the guest ran while top read it, and usertests'
/// children show up.
#[test]
fn top_on_c_xv6_shows_ticks_advancing() {
    let v = kinspect_testkit::xv6::variant("stock");
    let mut m = v.boot();
    m.wait_for("$ ", BOOT);
    let mark = m.console_len();
    m.send(b"usertests\n");
    m.wait_for_after(mark, "test ", BOOT);
    let o = kinspect(
        &m.gdb_addr(),
        &v.elf(),
        &["--json", "top", "--frames", "15", "--interval", "100"],
    );
    assert_eq!(o.status.code(), Some(0), "top: {}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("top JSON");
    let frames = v["frames"].as_array().expect("frames");
    let ticks: Vec<u64> = frames.iter().filter_map(|f| f["ticks"].as_u64()).collect();
    assert_eq!(ticks.len(), 15, "every frame has ticks: {v}");
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]), "{ticks:?}");
    assert!(
        ticks[14] > ticks[0],
        "ticks never advanced over 1.5 s: the guest was halted? {ticks:?}"
    );
    let pids: std::collections::BTreeSet<i64> = frames
        .iter()
        .flat_map(|f| f["procs"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["pid"].as_i64())
        .collect();
    assert!(pids.len() > 3, "usertests' children: {pids:?}");
    assert_eq!(m.hmp(0, "info status").trim(), "VM status: running");
}

/// With the fast path, QEMU's target description is kept between runs
/// (in `$XDG_CACHE_HOME/kinspect`): the first run reads the five
/// documents, the next only `target.xml`, and both print the same CSRs.
/// A damaged cache file is read past and written again.
#[test]
fn the_target_description_is_fetched_once_per_qemu_binary() {
    let m = at_shell(true);
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .args(["--gdb", &m.gdb_addr(), "regs", "--hart", "1"])
            .env("XDG_CACHE_HOME", cache.path())
            .env("KINSPECT_RSP_TRACE", "1")
            .output()
            .expect("running kinspect");
        let err = text(&out.stderr);
        assert!(out.status.success(), "kinspect regs failed:\n{err}");
        let fetched: Vec<String> = err
            .lines()
            .filter_map(|l| l.strip_prefix("-> $qXfer:features:read:"))
            .filter_map(|l| l.split(':').next())
            .map(str::to_string)
            .collect();
        (text(&out.stdout), fetched)
    };
    let (first, fetched) = run();
    assert!(
        fetched.iter().any(|d| d == "riscv-csr.xml"),
        "the first run read {fetched:?}"
    );
    let (second, fetched) = run();
    assert_eq!(fetched, ["target.xml"], "the second run read more");
    assert_eq!(first, second, "the cached description reads other CSRs");
    assert!(first.contains("satp"), "{first}");

    let dir = cache.path().join("kinspect");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("target-description-")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(files[0].path(), b"riscv-csr.xml\n99999\n<feat").unwrap();
    let (third, fetched) = run();
    assert!(
        fetched.len() > 1,
        "a damaged cache was believed: {fetched:?}"
    );
    assert_eq!(first, third);
    let (_, fetched) = run();
    assert_eq!(fetched, ["target.xml"], "the cache was not written again");
}

/// QEMU's memory map (`info mtree -f`) and where its RAM sits
/// (`gpa2hva`) are asked once per QEMU process and kept: the next run
/// sends no monitor command at all. What was kept is checked against the
/// stub like the rest, so a wrong address is noticed, asked again and
/// the fast path still taken.
#[test]
fn qemus_memory_map_is_asked_once_per_process() {
    let m = at_shell(true);
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .args(["--gdb", &m.gdb_addr(), "-v", "maps", "--hart", "0"])
            .env("XDG_CACHE_HOME", cache.path())
            .env("KINSPECT_RSP_TRACE", "1")
            .output()
            .expect("running kinspect");
        let err = text(&out.stderr);
        assert!(out.status.success(), "kinspect maps failed:\n{err}");
        assert!(
            err.contains("read directly"),
            "no fast path:\n{}",
            err.lines()
                .filter(|l| l.starts_with("kinspect:"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let monitor = err.lines().filter(|l| l.starts_with("-> $qRcmd,")).count();
        (text(&out.stdout), monitor)
    };
    let (first, asked) = run();
    assert_eq!(asked, 2, "info mtree -f and gpa2hva the first time");
    let (second, asked) = run();
    assert_eq!(asked, 0, "the second run asked QEMU's monitor again");
    assert_eq!(first, second);

    let dir = cache.path().join("kinspect");
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("qemu-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("qemu-{}-", m.pid())), "{name}");
    // hva, how RAM is opened (the shared file), QEMU's memory map.
    let text_kept = std::fs::read_to_string(kept[0].path()).unwrap();
    let mut lines = text_kept.splitn(3, '\n');
    let (hva, how, mtree) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    assert!(hva.starts_with("hva 0x"), "{hva}");
    assert!(
        how.starts_with("file ") && how.contains("kinspect-ram-"),
        "{how}"
    );
    assert!(mtree.contains("FlatView"), "{mtree}");
    // Kept wrong: RAM through /proc/PID/mem at an address QEMU has no
    // mapping at.
    std::fs::write(kept[0].path(), format!("hva 0x1000\nmem\n{mtree}")).unwrap();
    let (third, asked) = run();
    assert_eq!(asked, 2, "a wrong kept address was not asked again");
    assert_eq!(first, third);
    let (_, asked) = run();
    assert_eq!(asked, 0, "the corrected file was not kept");
}

/// The ELF is parsed only by commands that use it: `satp` runs with an
/// `--elf` that is an ELF by its first bytes and nothing after, while
/// `procs` refuses it in one line, exit 2, before connecting.
#[test]
fn only_commands_that_use_the_elf_parse_it() {
    let m = at_shell(true);
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("kernel");
    std::fs::write(&broken, b"\x7fELF and then nothing").unwrap();
    let out = kinspect(&m.gdb_addr(), &broken, &["satp"]);
    assert!(
        out.status.success(),
        "satp with a broken ELF it does not need:\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Sv39"), "{}", text(&out.stdout));
    let out = kinspect("localhost:1", &broken, &["procs"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("is not a readable ELF file"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
