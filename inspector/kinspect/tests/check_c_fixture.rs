//! `kinspect check` on a fake C xv6 machine (tests/fixtures/xv6_c.elf and
//! the pgtbl-lab variant): clean when healthy; each corruption is named
//! with its object, and the exit code is 5.

mod model_common;

use model_common::*;

const ELF: &str = "xv6_c.elf";
const LAB: &str = "xv6_lab.elf";

fn check(b: &mut Builder, elf: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    args.push("check");
    let r = run(b, elf, &args);
    assert!(
        r.code == 0 || r.code == 5,
        "code {} stderr {}",
        r.code,
        r.err
    );
    (r.code, serde_json::from_str(&r.out).unwrap())
}

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

#[test]
fn a_healthy_kernel_is_clean_and_kalloc_is_counted() {
    for elf in [ELF, LAB] {
        let mut b = scene(elf);
        let extra: &[&str] = if elf == LAB {
            &["--kpt-field", "kernelpt_root"]
        } else {
            &[]
        };
        let (code, v) = check(&mut b, elf, extra);
        assert_eq!(code, 0, "{elf}: {v:#}");
        assert_eq!(v["errors"], 0, "{elf}: {v:#}");
        assert_eq!(v["warnings"], 0, "{elf}: {v:#}");
        assert_eq!(v["kalloc"]["free_pages"], 8);
        assert_eq!(v["processes"], 4);
        // kernel + 4 user tables (+ 4 per-process kernel tables)
        assert_eq!(v["page_tables"], if elf == LAB { 9 } else { 5 });
    }
    let mut b = scene(ELF);
    let r = run(&mut b, ELF, &["check"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.starts_with("13 checks over 4 processes and 5 page tables: 0 errors, 0 warnings; kalloc: 8 free pages (32 KiB)"),
        "{}",
        r.out
    );
}

#[test]
fn a_mapped_guard_page_is_an_error_naming_the_process() {
    let mut b = scene(ELF);
    let g = b.pte_addr(b.made.kernel_pagetable, kstack_va(1) - PG);
    b.w64(g, pte(0x8700_0000, V | R | W));
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "guard-unmapped");
    assert_eq!(
        e[0].1,
        format!("pid 2 (sh, slot 1) guard page {:#x}", kstack_va(1) - PG)
    );
    assert!(e[0].2.contains("mapped to 0x87000000"), "{}", e[0].2);
    let r = run(&mut b, ELF, &["check"]);
    assert_eq!(r.code, 5);
    assert!(
        r.out
            .starts_with("error: [guard-unmapped] pid 2 (sh, slot 1) guard page"),
        "{}",
        r.out
    );
    assert_eq!(r.err, "kinspect: check: 1 error finding in the kernel\n");
    assert!(
        r.out
            .contains("13 checks over 4 processes and 5 page tables: 1 error, 0 warnings;"),
        "{}",
        r.out
    );
}

#[test]
fn an_unmapped_or_user_accessible_kernel_stack_is_an_error() {
    let mut b = scene(ELF);
    let kroot = b.made.kernel_pagetable;
    let s = b.pte_addr(kroot, kstack_va(2));
    b.w64(s, 0);
    let s0 = b.pte_addr(kroot, kstack_va(0));
    let ks0 = b.made.kstack_pa[&0];
    b.w64(s0, pte(ks0, V | R | W | U));
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    assert!(
        e.iter().any(|(c, o, ev)| c == "kstack-mapped"
            && o == &format!("pid 3 (cat, slot 2) kernel stack {:#x}", kstack_va(2))
            && ev.starts_with("not mapped in kernel_pagetable")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|(c, o, ev)| c == "kstack-mapped"
            && o.starts_with("pid 1 (init, slot 0)")
            && ev.starts_with("mapped rw-u")),
        "{e:?}"
    );
}

#[test]
fn a_mapped_page_on_the_free_list_is_an_error() {
    let mut b = scene(ELF);
    let (uroot, _, _, text) = b.made.user[&1];
    // sh's text page, and the level-0 table that maps its TRAPFRAME (whose
    // entry 0, where the list link goes, is unused)
    let l0 = b.pte_addr(uroot, TRAPFRAME) & !0xfff;
    let mut free = b.made.free.clone();
    free.insert(3, text);
    free.push(l0);
    b.set_free_list(&free);
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    let objects: Vec<&str> = e
        .iter()
        .filter(|x| x.0 == "free-in-use")
        .map(|x| x.2.as_str())
        .collect();
    assert_eq!(objects.len(), 2, "{e:?}");
    assert!(
        objects
            .iter()
            .any(|ev| ev.contains("user page of pid 2 (slot 1) at va 0x0")),
        "{e:?}"
    );
    assert!(
        objects
            .iter()
            .any(|ev| ev.contains("page-table page (level 0) of pid 2's user page table")),
        "{e:?}"
    );
}

#[test]
fn a_broken_free_list_is_an_error_and_the_walk_stops() {
    // a cycle
    let mut b = scene(ELF);
    let f = b.made.free.clone();
    b.w64(f[5], f[2]);
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    assert_eq!(e[0].0, "freelist");
    assert!(
        e[0].2.contains("after 6 pages") && e[0].2.contains("a cycle"),
        "{e:?}"
    );
    assert_eq!(v["kalloc"]["free_pages"], 6);
    // outside RAM
    let mut b = scene(ELF);
    let f = b.made.free.clone();
    b.w64(f[1], 0x1000_0000);
    let (_, v) = check(&mut b, ELF, &[]);
    let e = errors(&v);
    assert!(e[0].2.contains("points outside RAM"), "{e:?}");
    // unaligned
    let mut b = scene(ELF);
    let f = b.made.free.clone();
    b.w64(f[0], f[1] + 8);
    let (_, v) = check(&mut b, ELF, &[]);
    assert!(errors(&v)[0].2.contains("not page-aligned"));
}

#[test]
fn trampoline_and_trapframe_mappings_are_checked() {
    let mut b = scene(ELF);
    let (uroot, _, _, _) = b.made.user[&2];
    // pid 3's TRAPFRAME points at pid 2's trapframe; init's trampoline writable
    let (_, _, tf2, _) = b.made.user[&1];
    let t = b.pte_addr(uroot, TRAPFRAME);
    b.w64(t, pte(tf2, V | R | W));
    let (iroot, _, _, _) = b.made.user[&0];
    let tramp = sym(&b.syms, "trampoline");
    let t = b.pte_addr(iroot, TRAMPOLINE);
    b.w64(t, pte(tramp, V | R | W | X));
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    assert!(
        e.iter()
            .any(|(c, o, _)| c == "trapframe" && o.starts_with("pid 3 (cat, slot 2) TRAPFRAME")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|(c, o, ev)| c == "trampoline"
            && o.starts_with("pid 1's user page table")
            && ev.contains("rwx-")),
        "{e:?}"
    );
}

#[test]
fn shared_and_wx_user_pages() {
    let mut b = scene(ELF);
    let (r2, _, _, _) = b.made.user[&1];
    let (_, _, _, text3) = b.made.user[&2];
    // sh maps cat's text page writable at 0x5000, and an rwx page
    b.map(r2, 5 * PG, text3, R | W | U, 0);
    let extra = b.alloc();
    b.map(r2, 6 * PG, extra, R | W | X | U, 0);
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let f = v["findings"].as_array().unwrap();
    assert!(
        f.iter().any(|x| x["check"] == "user-shared"
            && x["severity"] == "error"
            && x["object"] == format!("physical page {text3:#x}")),
        "{v:#}"
    );
    assert!(
        f.iter()
            .any(|x| x["check"] == "user-wx" && x["severity"] == "warning"),
        "{v:#}"
    );
}

#[test]
fn a_per_process_kernel_table_that_differs_from_the_kernels() {
    let mut b = scene(LAB);
    // pid 2's kernel table also maps pid 3's stack
    let (_, kpt, _, _) = b.made.user[&1];
    let ks3 = b.made.kstack_pa[&2];
    b.map(kpt, kstack_va(2), ks3, R | W, 0);
    let (code, v) = check(&mut b, LAB, &["--kpt-field", "kernelpt_root"]);
    assert_eq!(code, 0, "{v:#}");
    let f = &v["findings"][0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["check"], "kpt-equals-kernel");
    assert_eq!(
        f["object"],
        format!("pid 2 (sh, slot 1) kernel page table {kpt:#x}")
    );
    assert_eq!(
        f["evidence"],
        format!(
            "maps 1 other slot's kernel stack: {:#x} -> {ks3:#x}",
            kstack_va(2)
        )
    );
    // ... and one that maps a page the kernel does not, or lacks one it does
    let mut b = scene(LAB);
    let (_, kpt, _, _) = b.made.user[&1];
    let stray = b.alloc();
    b.map(kpt, 0x3f_0000_0000, stray, R | W, 0);
    let l0 = b.made.kpt_top_l0[&1];
    b.w64(l0 + 8 * 511, 0); // TRAMPOLINE gone
    let (code, v) = check(&mut b, LAB, &["--kpt-field", "kernelpt_root"]);
    assert_eq!(code, 5);
    let e = errors(&v);
    let d: Vec<_> = e.iter().filter(|x| x.0 == "kpt-equals-kernel").collect();
    assert_eq!(d.len(), 1, "{e:?}");
    assert_eq!(
        d[0].1,
        format!("pid 2 (sh, slot 1) kernel page table {kpt:#x}")
    );
    assert!(d[0].2.starts_with("2 pages differ"), "{}", d[0].2);
    assert!(
        d[0].2.contains("0x3f00000000 -> ") && d[0].2.contains("unmapped in kernel_pagetable"),
        "{}",
        d[0].2
    );
    assert!(
        e.iter()
            .any(|x| x.0 == "trampoline" && x.1.starts_with("pid 2's kernel page table")),
        "{e:?}"
    );
    // a guard page mapped in a per-process table is found there
    let mut b = scene(LAB);
    let l0 = b.made.kpt_top_l0[&0];
    let idx = (kstack_va(0) - PG) >> 12 & 511;
    b.w64(l0 + 8 * idx, pte(0x8700_0000, V | R | W));
    let (_, v) = check(&mut b, LAB, &["--kpt-field", "kernelpt_root"]);
    let e = errors(&v);
    assert!(
        e.iter().any(|(c, o, ev)| c == "guard-unmapped"
            && o.starts_with("pid 1 (init, slot 0)")
            && ev.contains("its kernel page table")),
        "{e:?}"
    );
}

#[test]
fn a_user_table_full_of_gigapages_is_bounded_work() {
    let mut b = scene(ELF);
    let (uroot, _, _, _) = b.made.user[&1];
    for i in 0..255u64 {
        b.w64(uroot + 8 * i, pte(i << 30, V | R | U));
    }
    let start = std::time::Instant::now();
    let (code, v) = check(&mut b, ELF, &[]);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // 255 GiB of user memory: the owner map records the first 2^18 user
    // pages and stops (a documented bound), so the run stays fast and
    // small; the checks still ran, and the gigapage over KERNBASE exposes
    // the kernel to user mode.
    assert_eq!(code, 5, "{v:#}");
    assert_eq!(v["processes"], 4);
    assert_eq!(v["page_tables"], 5);
    let e = errors(&v);
    assert!(
        e.iter().any(|x| x.0 == "user-maps-kernel"
            && x.2
                .starts_with("0x80000000 -> 0x80000000 r--u is kernel text")),
        "{e:?}"
    );
}

#[test]
fn a_user_mapping_of_kernel_memory_is_an_error() {
    let mut b = scene(ELF);
    let (uroot, _, _, _) = b.made.user[&1];
    let (_, _, tf3, _) = b.made.user[&2];
    let ks0 = b.made.kstack_pa[&0];
    b.map(uroot, 5 * PG, ks0, R | W | U, 0); // init's kernel stack
    b.map(uroot, 6 * PG, tf3, R | U, 0); // cat's trapframe
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5);
    let e = errors(&v);
    let k: Vec<_> = e.iter().filter(|x| x.0 == "user-maps-kernel").collect();
    assert_eq!(k.len(), 1, "{e:?}");
    assert_eq!(
        k[0].1,
        format!("pid 2's user page table (slot 1) {uroot:#x}")
    );
    assert!(
        k[0].2.contains(&format!(
            "0x5000 -> {ks0:#x} rw-u is kernel stack of pid 1 (slot 0)"
        )),
        "{}",
        k[0].2
    );
    assert!(k[0].2.contains("trapframe of pid 3 (slot 2)"), "{}", k[0].2);
}

#[test]
fn a_zombie_being_torn_down_is_info_and_the_same_on_a_sleeper_is_an_error() {
    // wait -> freeproc frees a ZOMBIE's tables while it is still ZOMBIE:
    // its TRAMPOLINE and TRAPFRAME may already be gone.
    let mut b = scene(ELF);
    let (zroot, _, _, _) = b.made.user[&5];
    for va in [TRAMPOLINE, TRAPFRAME] {
        let p = b.pte_addr(zroot, va);
        b.w64(p, 0);
    }
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 0, "{v:#}");
    let torn: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "info")
        .collect();
    assert_eq!(torn.len(), 2, "{v:#}");
    for f in torn {
        assert!(
            f["evidence"]
                .as_str()
                .unwrap()
                .contains("a ZOMBIE being torn down"),
            "{f:#}"
        );
    }
    // The same on a sleeping process is a broken kernel.
    let mut b = scene(ELF);
    let (sroot, _, _, _) = b.made.user[&1];
    let p = b.pte_addr(sroot, TRAPFRAME);
    b.w64(p, 0);
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5, "{v:#}");
    assert!(
        errors(&v)
            .iter()
            .any(|(c, o, _)| c == "trapframe" && o.starts_with("pid 2 (sh, slot 1)")),
        "{v:#}"
    );
}

#[test]
fn an_invalid_proc_state_is_an_error() {
    let mut b = scene(ELF);
    let state = sym(&b.syms, "proc") + b.l.proc_size + b.l.state;
    b.t.mem.write(state, &9u32.to_le_bytes());
    let (code, v) = check(&mut b, ELF, &[]);
    assert_eq!(code, 5, "{v:#}");
    assert!(
        errors(&v)
            .iter()
            .any(|(c, o, e)| c == "proc-state" && o.starts_with("proc[1]") && e.contains("9")),
        "{v:#}"
    );
}
