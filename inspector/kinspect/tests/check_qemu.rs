//! `kinspect check` against the real kernel under the real QEMU: clean on
//! a healthy kernel; after corrupting one object through the gdb stub's
//! physical writes, the finding names that object and the exit code is 5.
//! Each corruption is undone and the kernel is clean again.

mod model_qemu;

use kinspect_testkit::json_u64;
use model_qemu::*;

fn errors(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["object"].as_str().unwrap().to_string(),
                f["evidence"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The level-0 PTE address and value the walk read for `va`.
fn leaf_pte(m: &kinspect_testkit::Machine, va: u64, table: &[&str]) -> (u64, u64) {
    let mut args = vec!["translate", "--explain"];
    let s = format!("{va:#x}");
    args.push(&s);
    args.extend_from_slice(table);
    let t = json(m, &args);
    let step = t["translation"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["level"] == 0)
        .unwrap_or_else(|| panic!("no level-0 step for {va:#x}: {t:#}"))
        .clone();
    (
        json_u64(&step["pte_addr"]).unwrap(),
        json_u64(&step["pte"]).unwrap(),
    )
}

fn assert_clean(m: &kinspect_testkit::Machine) -> serde_json::Value {
    let r = kinspect(m, &["check"]);
    assert_eq!(r.code, 0, "check is not clean:\n{}{}", r.out, r.err);
    let v = json(m, &["check"]);
    assert_eq!(v["errors"], 0, "{v:#}");
    v
}

#[test]
fn check_is_clean_and_names_each_corrupted_object() {
    let (mut m, _) = boot_with_cats(1);
    let v = assert_clean(&m);
    assert!(v["kalloc"]["free_pages"].as_u64().unwrap() > 30000, "{v:#}");
    assert_eq!(v["kalloc"]["nfree"], v["kalloc"]["free_pages"]);
    let procs = json(&m, &["procs"]);
    let cat = procs["procs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cat")
        .unwrap()
        .clone();
    let pid = cat["pid"].as_i64().unwrap();
    let pid_s = pid.to_string();
    let kpt = ["--pid", pid_s.as_str(), "--kernel-pt"];
    let who = format!("pid {pid} (cat, slot {})", cat["slot"]);
    let kstack = json_u64(&cat["kstack"]).unwrap();

    // 1. the guard page below cat's stack made valid in its kernel page table
    let (guard_at, guard_old) = leaf_pte(&m, kstack - 4096, &kpt);
    let (stack_at, stack_pte) = leaf_pte(&m, kstack, &kpt);
    assert_eq!(guard_old & 1, 0);
    write_phys(&m, &[(guard_at, stack_pte)]);
    let r = kinspect(&m, &["check"]);
    assert_eq!(r.code, 5, "{}{}", r.out, r.err);
    let e = errors(&json(&m, &["check"]));
    assert!(
        e.iter().any(|(c, o, _)| c == "guard-unmapped"
            && o == &format!("{who} guard page {:#x}", kstack - 4096)),
        "{e:?}"
    );
    write_phys(&m, &[(guard_at, guard_old)]);
    assert_clean(&m);

    // 2. cat's kernel stack unmapped in its kernel page table
    write_phys(&m, &[(stack_at, 0)]);
    let e = errors(&json(&m, &["check"]));
    assert!(
        e.iter().any(|(c, o, ev)| c == "kstack-mapped"
            && o == &format!("{who} kernel stack {kstack:#x}")
            && ev.starts_with("not mapped in its kernel page table")),
        "{e:?}"
    );
    write_phys(&m, &[(stack_at, stack_pte)]);
    assert_clean(&m);

    // 3. cat's first user page pushed onto kalloc's free list
    let maps = json(&m, &["maps", "--pid", &pid_s]);
    let user_pa = json_u64(&maps["ranges"][0]["pa"]).unwrap();
    let head_at = json_u64(&json(&m, &["translate", "&kmem.freelist", "--kernel"])["va"]).unwrap();
    let head = json_u64(&json(&m, &["translate", "kmem.freelist", "--kernel"])["va"]).unwrap();
    let user_old = xp(&mut m, user_pa);
    write_phys(&m, &[(user_pa, head), (head_at, user_pa)]);
    let r = kinspect(&m, &["check"]);
    assert_eq!(r.code, 5, "{}{}", r.out, r.err);
    let e = errors(&json(&m, &["check"]));
    assert!(
        e.iter().any(|(c, o, ev)| c == "free-in-use"
            && o == &format!("free page {user_pa:#x}")
            && ev.contains(&format!("user page of pid {pid}"))),
        "{e:?}"
    );
    write_phys(&m, &[(head_at, head), (user_pa, user_old)]);
    assert_clean(&m);
}
