//! `kinspect translate` over a crafted MemoryTarget: mapped addresses,
//! faults with exit code 4, `--explain`, symbol arguments.

mod cli_common;
use cli_common::*;

#[test]
fn translates_pages_megapages_and_the_trampoline() {
    let mut t = machine();
    let r = run(&mut t, &["translate", "0x80001234"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        "0x0000000080001234 -> 0x0000000080001234  (4 KiB page, r-x--a-)\n"
    );
    let r = run(&mut t, &["translate", "0x80234567"]);
    assert!(
        r.out
            .starts_with("0x0000000080234567 -> 0x0000000080234567  (2 MiB page"),
        "{}",
        r.out
    );
    let r = run(&mut t, &["translate", &TRAMPOLINE.to_string()]);
    assert_eq!(
        r.out,
        "0x0000003ffffff000 -> 0x0000000080007000  (4 KiB page, r-x--a-)\n"
    );
}

#[test]
fn unmapped_addresses_exit_4_with_one_line() {
    let mut t = machine();
    // KSTACK(0)'s guard page, just below it.
    let guard = format!("{:#x}", KSTACK0 - 4096);
    let r = run(&mut t, &["translate", &guard]);
    assert_eq!(r.code, 4);
    assert_eq!(r.out, "");
    assert_eq!(r.err.lines().count(), 1);
    assert!(
        r.err
            .starts_with("kinspect: 0x3fffffc000 does not translate (level 0)"),
        "{}",
        r.err
    );
    let r = run(&mut t, &["translate", "0x4000000000"]);
    assert_eq!(r.code, 4);
    assert!(r.err.contains("not canonical"), "{}", r.err);
}

#[test]
fn explain_shows_every_level() {
    let mut t = machine();
    let r = run(&mut t, &["translate", "0x3ffffff123", "--explain"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let l: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        l[0],
        "translate 0x0000003ffffff123 through hart 0 satp 0x8000000000087fff (Sv39, root 0x87fff000)"
    );
    assert_eq!(
        l[1],
        "  VPN[2] = 255  VPN[1] = 511  VPN[0] = 511  offset = 0x123"
    );
    assert!(l[2].starts_with("level 2: table 0x0000000087fff000 [255] at 0x0000000087fff7f8  pte 0x0000000021ffe801  V - - - - - - -  pointer to the level-1 table 0x0000000087ffa000"), "{}", l[2]);
    assert!(
        l[4].contains("V R - X - - A -  leaf: 4 KiB page at 0x0000000080007000"),
        "{}",
        l[4]
    );
    assert_eq!(l[5], "=> 0x0000003ffffff123 -> 0x0000000080007123");

    let r = run(&mut t, &["translate", "0x20000000", "--explain"]);
    assert_eq!(r.code, 4);
    let last = r.out.lines().last().unwrap();
    assert_eq!(
        last,
        "=> page fault: the walk stops at level 1: PTE 256 of the level-1 table is not valid (V=0)"
    );
}

#[test]
fn json_carries_the_steps() {
    let mut t = machine();
    let r = run(&mut t, &["--json", "translate", "0x80008010"]);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["va"], "0x80008010");
    assert_eq!(v["pa"], "0x80008010");
    let steps = v["translation"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["index"], 2);
    assert_eq!(steps[2]["kind"], "leaf");
    assert_eq!(v["translation"]["outcome"]["result"], "mapped");
    let r = run(&mut t, &["--json", "translate", "0x1000"]);
    assert_eq!(r.code, 4);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert!(v["pa"].is_null());
    assert_eq!(v["translation"]["outcome"]["result"], "fault");
}

#[test]
fn symbols_need_an_elf_and_bad_numbers_are_bad_input() {
    let mut t = machine();
    let r = run(&mut t, &["translate", "kernelvec"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("no ELF"), "{}", r.err);
    let r = run(&mut t, &["translate", "0xzz"]);
    assert_eq!(r.code, 2);
    let r = run(
        &mut t,
        &["--elf", "/nonexistent/kernel.elf", "translate", "0x1000"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.err
            .starts_with("kinspect: cannot read ELF /nonexistent/kernel.elf"),
        "{}",
        r.err
    );
}
