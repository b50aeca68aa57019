//! `kinspect diff` on the real kernel under the real QEMU, against the
//! kernel's own `vmprint`.
//!
//! `vmsteps` (a user program) prints its page table with the kernel's
//! `vmprint` and waits, after each of: start, sbrk of two pages, fork (the
//! child prints), exec (the child's new image prints). The test snapshots
//! the machine at each stop and checks `kinspect diff` of consecutive
//! snapshots against the difference of the kernel's two listings, page by
//! page: what sbrk added, the forked child's whole table, what exec
//! replaced. The accessed/dirty bits are left out on both sides (the
//! hardware sets them as the program runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod xv6_common;

use kinspect_testkit::xv6::variant;
use kinspect_testkit::{kernel_elf, Machine};
use serde_json::Value;
use xv6_common::{hex, text};

const WAIT: Duration = Duration::from_secs(120);

/// va -> (pa, V R W X U G bits), from the kernel's vmprint lines.
type Pages = BTreeMap<u64, (u64, u64)>;

/// Parse one `vmprint` listing (the pgtbl lab's format) into its leaves.
fn parse_vmprint(listing: &str) -> Pages {
    let mut idx = [0u64; 3];
    let mut out = Pages::new();
    for line in listing.lines() {
        let t = line.trim_start();
        let mut depth = 0;
        let mut rest = t;
        while let Some(r) = rest.strip_prefix("..") {
            depth += 1;
            rest = r.trim_start();
        }
        if depth == 0 {
            continue;
        }
        let (i, rest) = rest
            .split_once(": pte ")
            .unwrap_or_else(|| panic!("{line}"));
        let (pte, pa) = rest.split_once(" pa ").unwrap_or_else(|| panic!("{line}"));
        let num = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
        idx[depth - 1] = i.trim().parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        let pte = num(pte);
        if pte & 0xe == 0 {
            continue; // a pointer to the next level
        }
        assert_eq!(depth, 3, "a superpage in a user table: {line}");
        let mut va = (idx[0] << 30) | (idx[1] << 21) | (idx[2] << 12);
        if idx[0] >= 256 {
            va |= !((1u64 << 39) - 1);
        }
        out.insert(va, (num(pa), pte & 0x3f));
    }
    out
}

/// The listing the kernel printed between `from` and the stop line.
fn stop_listing(m: &Machine, from: usize, step: &str) -> (i64, Pages) {
    m.wait_for_after(from, &format!("vmsteps: {step} pid"), WAIT);
    // The whole stop line: under load the pid can arrive after its prefix.
    let con = m.wait_for_after(from, ", press Enter", WAIT);
    let con = con.replace('\r', "");
    let tail = &con[from.min(con.len())..];
    let start = tail.find("vmprint of pid ").expect("the kernel's vmprint");
    let stop = tail
        .find(&format!("vmsteps: {step} pid"))
        .expect("stop line");
    let pid: i64 = tail[stop..]
        .split_whitespace()
        .nth(3)
        .and_then(|p| p.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", &tail[stop..]));
    (pid, parse_vmprint(&tail[start..stop]))
}

fn snapshot(m: &mut Machine, dir: &Path, name: &str) -> PathBuf {
    snapshot_with(m, &kernel_elf(), dir, name)
}

fn snapshot_with(m: &mut Machine, elf: &Path, dir: &Path, name: &str) -> PathBuf {
    m.pause();
    let f = dir.join(format!("{name}.kisnap"));
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(elf)
        .args(["snapshot", "-o"])
        .arg(&f)
        .output()
        .expect("running kinspect snapshot");
    assert_eq!(
        o.status.code(),
        Some(0),
        "snapshot {name}: {}",
        text(&o.stderr)
    );
    m.resume();
    f
}

fn diff(a: &Path, b: &Path) -> Value {
    diff_with(&kernel_elf(), a, b)
}

fn diff_with(elf: &Path, a: &Path, b: &Path) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--elf")
        .arg(elf)
        .args(["--json", "diff"])
        .arg(a)
        .arg(b)
        .output()
        .expect("running kinspect diff");
    assert_eq!(
        o.status.code(),
        Some(0),
        "diff: stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

/// The page-level changes `kinspect diff` reports for `pid`:
/// va -> (before, after), each (pa, V R W X U G) or None.
type Changes = BTreeMap<u64, (Option<(u64, u64)>, Option<(u64, u64)>)>;

fn perm_bits(letters: &str) -> u64 {
    // `rwxugad` letters (a `-` where clear) back to V R W X U G.
    let l: Vec<char> = letters.chars().collect();
    let mut bits = 1;
    for (i, c) in ['r', 'w', 'x', 'u', 'g'].iter().enumerate() {
        if l.get(i) == Some(c) {
            bits |= 2 << i;
        }
    }
    bits
}

fn reported(d: &Value, pid: i64) -> Changes {
    let mut out = Changes::new();
    let Some(t) = d["page_tables"]
        .as_array()
        .expect("page_tables")
        .iter()
        .find(|t| t["pid"] == pid)
    else {
        return out;
    };
    for r in t["ranges"].as_array().expect("ranges") {
        let va = hex(&r["va"]);
        for k in 0..r["pages"].as_u64().expect("pages") {
            let side = |pa: &Value, perms: &Value| {
                (!pa.is_null())
                    .then(|| (hex(pa) + k * 4096, perm_bits(perms.as_str().unwrap_or(""))))
            };
            out.insert(
                va + k * 4096,
                (
                    side(&r["pa_before"], &r["perms_before"]),
                    side(&r["pa_after"], &r["perms_after"]),
                ),
            );
        }
    }
    out
}

/// What the kernel's two listings say changed.
fn expected(before: &Pages, after: &Pages) -> Changes {
    let mut out = Changes::new();
    for va in before.keys().chain(after.keys()) {
        let (b, a) = (before.get(va).copied(), after.get(va).copied());
        if b != a {
            out.insert(*va, (b, a));
        }
    }
    out
}

#[test]
fn fork_exec_and_sbrk_as_the_kernels_own_vmprint_sees_them() {
    let dir = std::env::temp_dir().join(format!("kinspect-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);

    let mark = m.console_len();
    m.send(b"vmsteps\n");
    let (pid, start) = stop_listing(&m, mark, "start");
    let a = snapshot(&mut m, &dir, "start");

    let mark = m.console_len();
    m.send(b"\n");
    let (pid2, grown) = stop_listing(&m, mark, "sbrk");
    assert_eq!(pid, pid2);
    let b = snapshot(&mut m, &dir, "sbrk");

    let mark = m.console_len();
    m.send(b"\n");
    let (child, forked) = stop_listing(&m, mark, "fork");
    assert_ne!(child, pid);
    let c = snapshot(&mut m, &dir, "fork");

    let mark = m.console_len();
    m.send(b"\n");
    let (child2, execd) = stop_listing(&m, mark, "exec");
    assert_eq!(child, child2);
    let d = snapshot(&mut m, &dir, "exec");

    // sbrk: two pages added at the old size, nothing else.
    let r = diff(&a, &b);
    let want = expected(&start, &grown);
    assert_eq!(want.len(), 2, "the kernel's listings: {start:?} {grown:?}");
    assert!(want.values().all(|(b, a)| b.is_none() && a.is_some()));
    assert_eq!(reported(&r, pid), want, "{r:#}");
    let sz = r["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == pid)
        .and_then(|p| p["fields"].as_array())
        .and_then(|f| f.iter().find(|f| f["field"] == "sz").cloned())
        .unwrap_or_else(|| panic!("no sz change for pid {pid}: {r:#}"));
    assert_eq!(hex(&sz["after"]) - hex(&sz["before"]), 2 * 4096, "{sz:#}");

    // fork: the child appeared with its whole table; the parent's is as it was.
    let r = diff(&b, &c);
    let p = r["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"] == child)
        .unwrap_or_else(|| panic!("pid {child} did not appear: {r:#}"));
    assert_eq!(p["change"], "appeared", "{p:#}");
    assert_eq!(
        reported(&r, child),
        expected(&Pages::new(), &forked),
        "{r:#}"
    );
    assert!(
        reported(&r, pid).is_empty(),
        "the parent's table changed: {r:#}"
    );
    // A copy: the same VAs and permissions as the parent's, other pages,
    // except the trampoline, which every table shares.
    assert_eq!(
        forked.keys().collect::<Vec<_>>(),
        grown.keys().collect::<Vec<_>>()
    );

    // exec: the child's table replaced; the changes are the difference of
    // the two listings.
    let r = diff(&c, &d);
    assert_eq!(reported(&r, child), expected(&forked, &execd), "{r:#}");
    let t = r["page_tables"]
        .as_array()
        .expect("page_tables")
        .iter()
        .find(|t| t["pid"] == child)
        .expect("the child's table");
    assert_ne!(
        t["root_before"], t["root_after"],
        "exec keeps no table: {t:#}"
    );

    // The text form says the same in words.
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--elf")
        .arg(kernel_elf())
        .arg("diff")
        .arg(&a)
        .arg(&b)
        .output()
        .expect("running kinspect diff");
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.contains(&format!("pid {pid} vmsteps")), "{out}");
    assert!(out.contains("2 pages added"), "{out}");

    // Against the live machine: the child's exec stop is still there.
    let o = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--gdb")
        .arg(m.gdb_addr())
        .arg("--elf")
        .arg(kernel_elf())
        .args(["--json", "diff"])
        .arg(&d)
        .arg("--live")
        .output()
        .expect("running kinspect diff --live");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let live: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(reported(&live, child).is_empty(), "{live:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// On stock C xv6: a background `cat` appears between two snapshots. The
/// kernel's own Ctrl-P list, before and after, says which process is new;
/// its table must hold the trampoline at the ELF's `trampoline` page, and
/// user text at VA 0.
#[test]
fn a_new_process_on_stock_xv6_as_ctrl_p_lists_it() {
    let v = variant("stock");
    let elf = v.elf();
    let dir = std::env::temp_dir().join(format!("kinspect-diff-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut m = v.boot();
    m.wait_for("$ ", WAIT);
    // Only init and sh, both asleep: sh alone reads the console, so what is
    // typed next is sh's (a background cat would compete for it).
    let deadline = std::time::Instant::now() + WAIT;
    let before_list = loop {
        let l = m.procdump();
        if l.len() == 2 && l.iter().all(|(_, s, _)| s == "sleep") {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "Ctrl-P: {l:?}");
    };
    let a = snapshot_with(&mut m, &elf, &dir, "before");
    let mark = m.console_len();
    m.send(b"cat &\n");
    m.wait_for_after(mark, "$ ", WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    let after_list = loop {
        let l = m.procdump();
        let cat = l.iter().any(|(_, s, n)| s == "sleep" && n == "cat");
        if cat && l.len() == 3 && l.iter().all(|(_, s, _)| s == "sleep") {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "Ctrl-P: {l:?}");
    };
    let new: Vec<_> = after_list
        .iter()
        .filter(|p| !before_list.iter().any(|q| q.0 == p.0))
        .collect();
    assert_eq!(new.len(), 1, "{before_list:?} -> {after_list:?}");
    let (pid, _, name) = new[0];
    let b = snapshot_with(&mut m, &elf, &dir, "after");

    let r = diff_with(&elf, &a, &b);
    let procs = r["processes"].as_array().expect("processes");
    let appeared: Vec<_> = procs.iter().filter(|p| p["change"] == "appeared").collect();
    assert_eq!(appeared.len(), 1, "{r:#}");
    assert_eq!(appeared[0]["pid"], *pid, "{r:#}");
    assert_eq!(appeared[0]["name"], name.as_str(), "{r:#}");
    assert!(
        procs.iter().all(|p| p["change"] != "ended"),
        "nothing ended: {r:#}"
    );
    let pages = reported(&r, *pid);
    let tramp = elf_symbol(&elf, "trampoline");
    let top = pages
        .get(&0x3f_ffff_f000)
        .and_then(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no trampoline page added: {r:#}"));
    assert_eq!(top.0, tramp, "the trampoline's page: {r:#}");
    assert_eq!(
        top.1 & 0x10,
        0,
        "the trampoline is not user-accessible: {r:#}"
    );
    let text = pages
        .get(&0)
        .and_then(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no page at VA 0: {r:#}"));
    assert_eq!(text.1 & 0x18, 0x18, "user text is u and x: {r:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An ELF symbol's address, read with the `object` crate (independent of
/// kinspect's symbol layer).
fn elf_symbol(elf: &Path, name: &str) -> u64 {
    use object::{Object, ObjectSymbol};
    let bytes = std::fs::read(elf).expect("the ELF");
    let file = object::File::parse(&*bytes).expect("an ELF");
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .unwrap_or_else(|| panic!("no symbol {name} in {}", elf.display()))
}
