//! `kinspect maps` and `vmprint` over a crafted MemoryTarget, through the
//! real argument parser and command code (no transport).

use kinspect_testkit::hex;
mod cli_common;
use cli_common::*;

const MAPS: &str = "\
vaddr            paddr            size             attr
---------------- ---------------- ---------------- -------
0000000010000000 0000000010000000 0000000000001000 rw-----
0000000080000000 0000000080000000 0000000000008000 r-x--a-
0000000080008000 0000000080008000 0000000000002000 rw---ad
0000000080200000 0000000080200000 0000000000200000 rw---ad
0000003fffffd000 0000000087ff8000 0000000000001000 rw---ad
0000003ffffff000 0000000080007000 0000000000001000 r-x--a-
";

#[test]
fn maps_prints_info_mem_format() {
    let mut t = machine();
    for args in [
        &["maps"][..],
        &["maps", "--hart", "2"],
        &["maps", "--satp", "0x8000000000087fff"],
        &["maps", "--root", "0x87fff000"],
    ] {
        let r = run(&mut t, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
        assert_eq!(r.out, MAPS, "{args:?}");
        assert_eq!(r.err, "");
    }
}

#[test]
fn maps_filters_by_attributes() {
    let mut t = machine();
    let r = run(&mut t, &["maps", "--filter", "x"]);
    assert_eq!(r.code, 0);
    let lines: Vec<&str> = r.out.lines().skip(2).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.ends_with("r-x--a-")));
    let r = run(&mut t, &["maps", "--filter", "w,!d"]);
    assert_eq!(
        r.out.lines().skip(2).collect::<Vec<_>>(),
        vec!["0000000010000000 0000000010000000 0000000000001000 rw-----"]
    );
    let r = run(&mut t, &["maps", "--filter", "q"]);
    assert_eq!(r.code, 2);
    assert!(r.err.starts_with("kinspect: --filter `q`"), "{}", r.err);
}

#[test]
fn maps_json_writes_64_bit_values_as_hex_strings() {
    let mut t = machine();
    let r = run(&mut t, &["--json", "maps"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["hart"], 0);
    assert_eq!(v["satp"], hex(SATP));
    assert_eq!(v["satp"], "0x8000000000087fff");
    assert_eq!(v["root"], hex(ROOT));
    assert_eq!(v["mode"], "sv39");
    assert_eq!(v["tables"], 7);
    let ranges = v["ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 6);
    assert_eq!(ranges[5]["va"], hex(TRAMPOLINE));
    assert_eq!(ranges[5]["pa"], "0x80007000");
    assert_eq!(ranges[5]["size"], "0x1000");
    assert_eq!(ranges[5]["attrs"], "r-x--a-");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn maps_reports_findings_on_stderr_and_keeps_stdout_exact() {
    let mut t = machine();
    // root[3] points outside RAM; root[4] points back at the root (a cycle).
    t.mem.write_u64(ROOT + 3 * 8, pte(0x9000_0000, V));
    t.mem.write_u64(ROOT + 4 * 8, pte(ROOT, V));
    let r = run(&mut t, &["maps"]);
    assert_eq!(r.code, 0);
    assert!(r.out.starts_with("vaddr "));
    let warnings: Vec<&str> = r.err.lines().collect();
    assert!(
        warnings
            .iter()
            .all(|l| l.starts_with("kinspect: warning: ")),
        "{}",
        r.err
    );
    assert!(r.err.contains("0x90000000, outside RAM"), "{}", r.err);
    assert!(r.err.contains("(a cycle)"), "{}", r.err);
    // A bigger --ram-mib makes 0x90000000 RAM: now it is merely unreadable.
    let r = run(&mut t, &["--ram-mib", "512", "maps"]);
    assert!(r.err.contains("unreadable"), "{}", r.err);
}

#[test]
fn warnings_beyond_the_first_twenty_are_counted_in_the_right_number() {
    let mut t = machine();
    // 21 root entries pointing outside RAM: 20 warnings, then "1 more finding".
    for i in 100..121 {
        t.mem.write_u64(ROOT + i * 8, pte(0x9000_0000, V));
    }
    let r = run(&mut t, &["maps"]);
    assert_eq!(r.code, 0);
    let last = r.err.lines().last().unwrap();
    assert_eq!(
        last,
        "kinspect: warning: ... and 1 more finding (--json lists them all)"
    );
    assert_eq!(r.err.lines().count(), 21, "{}", r.err);
}

#[test]
fn vmprint_va_range_keeps_the_entries_that_map_part_of_it() {
    let mut t = machine();
    // The top gigabyte: root entry 255 and what hangs under it.
    for range in ["0x3fc0000000-0x4000000000", "0x3fc0000000..0x4000000000"] {
        let r = run(&mut t, &["vmprint", "--va-range", range]);
        assert_eq!(r.code, 0, "{}", r.err);
        assert_eq!(
            r.out,
            "page table 0x0000000087fff000\n \
             ..255: pte 0x0000000021ffe801 pa 0x0000000087ffa000\n \
             .. ..511: pte 0x0000000021ffe401 pa 0x0000000087ff9000\n \
             .. .. ..509: pte 0x0000000021ffe0c7 pa 0x0000000087ff8000\n \
             .. .. ..511: pte 0x0000000020001c4b pa 0x0000000080007000\n",
            "{range}"
        );
    }
    // A range inside one page keeps that page and the pointers to it; the
    // megapage at 0x80200000 is kept by any address inside it.
    let r = run(&mut t, &["vmprint", "--va-range", "0x80001010-0x80001011"]);
    assert_eq!(r.out.lines().count(), 1 + 3, "{}", r.out);
    assert!(
        r.out
            .ends_with(" .. .. ..1: pte 0x000000002000044b pa 0x0000000080001000\n"),
        "{}",
        r.out
    );
    let r = run(&mut t, &["vmprint", "--va-range", "0x80300000..0x80300001"]);
    assert_eq!(r.out.lines().count(), 1 + 2, "{}", r.out);
    let r = run(
        &mut t,
        &[
            "--json",
            "vmprint",
            "--va-range",
            "0x3fc0000000-0x4000000000",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["va_range"]["start"], "0x3fc0000000");
    assert_eq!(v["entries"].as_array().unwrap().len(), 4);
    // Bad ranges are bad input.
    for bad in ["0x4000-0x1000", "0x1000", "0x1000-banana"] {
        let r = run(&mut t, &["vmprint", "--va-range", bad]);
        assert_eq!(r.code, 2, "{bad}: {}", r.err);
        assert!(r.err.starts_with("kinspect: "), "{}", r.err);
    }
}

#[test]
fn bare_satp_prints_qemus_words() {
    let mut t = machine();
    let r = run(&mut t, &["maps", "--satp", "0"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.out, "No translation or protection\n");
}

#[test]
fn selectors_conflict_and_bad_harts_are_bad_input() {
    let mut t = machine();
    let r = run(&mut t, &["maps", "--hart", "1", "--root", "0x87fff000"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(r.err.starts_with("kinspect: "));
    let r = run(&mut t, &["maps", "--hart", "7"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.err, "kinspect: no hart 7: the machine has harts 0..2\n");
    let r = run(&mut t, &["maps", "--root", "0x87fff008"]);
    assert_eq!(r.code, 2);
    let r = run(&mut t, &["maps", "--satp", "0x9000000000087fff"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not Sv39"), "{}", r.err);
}

#[test]
fn vmprint_prints_the_lab_tree() {
    let mut t = machine();
    let r = run(&mut t, &["vmprint"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines[0], "page table 0x0000000087fff000");
    assert_eq!(
        lines[1],
        " ..0: pte 0x0000000021fff801 pa 0x0000000087ffe000"
    );
    assert_eq!(
        lines[2],
        " .. ..128: pte 0x0000000021fff401 pa 0x0000000087ffd000"
    );
    assert_eq!(
        lines[3],
        " .. .. ..0: pte 0x0000000004000007 pa 0x0000000010000000"
    );
    assert_eq!(
        lines.last().copied(),
        Some(" .. .. ..511: pte 0x0000000020001c4b pa 0x0000000080007000")
    );
    // The header, then every valid entry once: root, low, kernel, top.
    assert_eq!(lines.len(), 1 + 3 + (1 + 1) + (2 + 10) + (1 + 2));
    let r = run(&mut t, &["vmprint", "--va"]);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some(" .. .. ..0x0000003ffffff000: pte 0x0000000020001c4b pa 0x0000000080007000")
    );
    let r = run(&mut t, &["--json", "vmprint"]);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), lines.len() - 1);
    assert_eq!(v["entries"][0]["level"], 2);
    assert_eq!(v["entries"][0]["pte"], "0x21fff801");
}
