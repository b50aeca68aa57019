//! `kinspect procs` and the page-table selectors on a fake C xv6 machine
//! (tests/fixtures/xv6_c.elf, gcc -g): everything found by DWARF name,
//! compared with what the builder wrote at gcc's own offsets.

mod model_common;

use kinspect_testkit::hex;
use model_common::*;

const ELF: &str = "xv6_c.elf";

fn procs_json(b: &mut Builder, elf: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "procs"];
    args.extend_from_slice(extra);
    let r = run(b, elf, &args);
    assert_eq!(r.code, 0, "stderr: {}", r.err);
    serde_json::from_str(&r.out).unwrap()
}

#[test]
fn procs_lists_the_live_slots_with_what_the_kernel_wrote() {
    let mut b = scene(ELF);
    let v = procs_json(&mut b, ELF, &[]);
    assert_eq!(v["nproc"], 64);
    assert_eq!(v["kpagetable_field"], serde_json::Value::Null);
    assert_eq!(v["kernel_pagetable"], hex(b.made.kernel_pagetable));
    let procs = v["procs"].as_array().unwrap();
    let got: Vec<(u64, i64, &str, &str)> = procs
        .iter()
        .map(|p| {
            (
                p["slot"].as_u64().unwrap(),
                p["pid"].as_i64().unwrap(),
                p["state"].as_str().unwrap(),
                p["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, 1, "SLEEPING", "init"),
            (1, 2, "SLEEPING", "sh"),
            (2, 3, "RUNNING", "cat"),
            (5, 4, "ZOMBIE", "zombie")
        ]
    );
    for p in procs {
        let slot = p["slot"].as_u64().unwrap();
        assert_eq!(p["kstack"], hex(kstack_va(slot)));
        assert_eq!(p["kstack_pa"], hex(b.made.kstack_pa[&slot]), "slot {slot}");
        assert_eq!(p["kstack_table"], hex(b.made.kernel_pagetable));
        assert_eq!(p["guard_unmapped"], true);
        let (root, _, tf, _) = b.made.user[&slot];
        assert_eq!(p["pagetable"], hex(root));
        assert_eq!(p["trapframe"], hex(tf));
        assert_eq!(p["kpagetable"], serde_json::Value::Null);
        assert_eq!(p["sz"], hex(4 * PG));
        assert_eq!(p["context_ra_symbol"], "sched+0x10");
        assert_eq!(p["killed"], false);
    }
    assert_eq!(procs[0]["ppid"], serde_json::Value::Null);
    assert_eq!(procs[1]["ppid"], 1);
    assert_eq!(procs[2]["ppid"], 2);
    assert_eq!(procs[2]["hart"], 1);
    assert_eq!(procs[0]["hart"], serde_json::Value::Null);
    assert_eq!(procs[0]["chan_symbol"], "&proc[0]");
    assert_eq!(procs[1]["chan_symbol"], "ticks");
}

#[test]
fn procs_all_shows_every_slot_and_text_has_one_line_each() {
    let mut b = scene(ELF);
    let v = procs_json(&mut b, ELF, &["--all"]);
    assert_eq!(v["procs"].as_array().unwrap().len(), 64);
    assert_eq!(v["procs"][3]["state"], "UNUSED");
    let r = run(&mut b, ELF, &["procs"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert!(
        lines[0].ends_with(
            "per-process kernel page table: none (struct proc has no second page-table field)"
        ),
        "{}",
        r.out
    );
    assert!(lines[1].starts_with("SLOT  PID  STATE"), "{}", r.out);
    assert!(!lines[1].contains("KPAGETABLE"), "{}", r.out);
    assert_eq!(lines.len(), 1 + 1 + 4 + 1, "{}", r.out);
    assert!(lines[4].contains("RUNNING") && lines[4].contains("cat"));
    assert_eq!(lines[6], "4 of 64 slots in use", "{}", r.out);
}

#[test]
fn a_guard_page_mapped_and_a_stack_unmapped_show_in_procs() {
    let mut b = scene(ELF);
    let kroot = b.made.kernel_pagetable;
    // slot 1's guard page mapped, slot 2's stack unmapped
    let g = b.pte_addr(kroot, kstack_va(1) - PG);
    b.w64(g, pte(0x8700_0000, V | R | W));
    let s = b.pte_addr(kroot, kstack_va(2));
    b.w64(s, 0);
    let v = procs_json(&mut b, ELF, &[]);
    assert_eq!(v["procs"][1]["guard_unmapped"], false);
    assert_eq!(v["procs"][2]["kstack_pa"], serde_json::Value::Null);
    let r = run(&mut b, ELF, &["procs"]);
    assert!(
        r.out.contains("UNMAPPED") && r.out.contains("MAPPED"),
        "{}",
        r.out
    );
}

#[test]
fn pid_selectors_pick_the_processs_tables() {
    let mut b = scene(ELF);
    let (root, _, tf, text) = b.made.user[&1];
    // --pid: the user page table
    let r = run(&mut b, ELF, &["--json", "maps", "--pid", "2"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["root"], hex(root));
    assert!(v["table"]
        .as_str()
        .unwrap()
        .contains("pid 2 (sh, slot 1) user page table"));
    assert_eq!(v["ranges"][0]["pa"], hex(text));
    let r = run(&mut b, ELF, &["translate", "--pid", "2", "0x3fffffe000"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains(&format!("{tf:#018x}")), "{}", r.out);
    // --pid --kernel-pt on a kernel without per-process tables: kernel_pagetable
    let r = run(
        &mut b,
        ELF,
        &["--json", "vmprint", "--pid", "2", "--kernel-pt"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["root"], hex(b.made.kernel_pagetable));
    assert!(v["table"]
        .as_str()
        .unwrap()
        .contains("no per-process kernel page table"));
    // --kernel
    let r = run(&mut b, ELF, &["--json", "maps", "--kernel"]);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["root"], hex(b.made.kernel_pagetable));
    // an unknown pid is bad input naming the live ones
    let r = run(&mut b, ELF, &["maps", "--pid", "9"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.err,
        "kinspect: no process with pid 9 (live pids: 1 2 3 4)\n"
    );
    // --kernel-pt needs --pid; --pid and --hart exclude each other
    let r = run(&mut b, ELF, &["maps", "--kernel-pt"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.err,
        "kinspect: --kernel-pt needs --pid N: whose kernel page table? (--kernel is kernel_pagetable)\n"
    );
    assert_eq!(
        run(&mut b, ELF, &["maps", "--pid", "1", "--hart", "0"]).code,
        2
    );
}

#[test]
fn symbol_expressions_as_addresses() {
    let mut b = scene(ELF);
    let ks = b.made.kstack_pa[&2];
    let r = run(
        &mut b,
        ELF,
        &["translate", "proc[2].kstack", "--pid", "3", "--kernel-pt"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .starts_with(&format!("{:#018x} -> {ks:#018x}", kstack_va(2))),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("kernel stack of pid 3 (slot 2)"),
        "{}",
        r.out
    );
    // cpus[1].proc->kstack follows a pointer read from the target
    let r = run(
        &mut b,
        ELF,
        &["--json", "translate", "cpus[1].proc->kstack", "--kernel"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["va"], hex(kstack_va(2)));
    assert_eq!(v["pa"], hex(ks));
    assert_eq!(v["owner"][0]["kind"], "kernel_stack");
    // --root takes an expression too
    let (root, _, _, _) = b.made.user[&0];
    let r = run(
        &mut b,
        ELF,
        &["--json", "maps", "--root", "proc[0].pagetable"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["root"], hex(root));
    // errors name the part that failed
    let r = run(&mut b, ELF, &["translate", "proc[2].kstak"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.starts_with(
            "kinspect: `proc[2].kstak`: no field `kstak` in `struct proc` (fields: lock, state,"
        ),
        "{}",
        r.err
    );
    let r = run(&mut b, ELF, &["translate", "cpus[0].proc->kstack"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("`cpus[0].proc` is null"), "{}", r.err);
}

#[test]
fn the_lab_kernels_field_is_configurable() {
    const LAB: &str = "xv6_lab.elf";
    let mut b = scene(LAB);
    // its name is not one kinspect knows: found by its type, and confirmed
    // because each process's table maps the kernel like kernel_pagetable
    let v = procs_json(&mut b, LAB, &[]);
    assert_eq!(v["kpagetable_field"], "kernelpt_root", "{v:#}");
    assert_eq!(v["kpt"]["how"], "memory", "{v:#}");
    // --kpt-field none: the override wins
    let v = procs_json(&mut b, LAB, &["--kpt-field", "none"]);
    assert_eq!(v["kpagetable_field"], serde_json::Value::Null);
    // named: used as given, and kernel stacks are translated through it
    let v = procs_json(&mut b, LAB, &["--kpt-field", "kernelpt_root"]);
    assert_eq!(v["kpagetable_field"], "kernelpt_root");
    assert_eq!(v["kpt"]["how"], "named");
    for p in v["procs"].as_array().unwrap() {
        let slot = p["slot"].as_u64().unwrap();
        let (_, kpt, _, _) = b.made.user[&slot];
        assert_ne!(kpt, 0);
        assert_eq!(p["kpagetable"], hex(kpt));
        assert_eq!(p["kstack_table"], hex(kpt));
        assert_eq!(p["kstack_pa"], hex(b.made.kstack_pa[&slot]));
    }
    let r = run(
        &mut b,
        LAB,
        &[
            "--kpt-field",
            "kernelpt_root",
            "--json",
            "vmprint",
            "--pid",
            "3",
            "--kernel-pt",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["root"], hex(b.made.user[&2].1));
    // a wrong name is bad input listing the fields there are
    let r = run(&mut b, LAB, &["--kpt-field", "kpt", "procs"]);
    assert_eq!(r.code, 2);
    assert!(
        r.err.contains("no field `kpt` in `struct proc`") && r.err.contains("kernelpt_root"),
        "{}",
        r.err
    );
}

#[test]
fn no_debug_info_or_no_elf_is_one_line() {
    let mut b = scene(ELF);
    let mut full = vec!["kinspect", "procs"];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = kinspect::cli::run_args_on(&full, &mut b.t, &mut out, &mut err);
    assert_eq!(code, 2);
    assert_eq!(
        String::from_utf8(err).unwrap(),
        "kinspect: procs need the kernel ELF with debug info (give --elf PATH; default target/kernel/kernel.elf)\n"
    );
    // an ELF without DWARF: the stripped fixture
    let dir = std::env::temp_dir().join(format!("kinspect-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stripped = dir.join("stripped.elf");
    let st = std::process::Command::new("riscv64-linux-gnu-strip")
        .arg("-g")
        .arg(fixture(ELF))
        .arg("-o")
        .arg(&stripped)
        .status();
    if st.map(|s| s.success()).unwrap_or(false) {
        let p = stripped.to_str().unwrap().to_string();
        full = vec!["kinspect", "--elf", &p, "procs"];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = kinspect::cli::run_args_on(&full, &mut b.t, &mut out, &mut err);
        assert_eq!(code, 2);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("has no DWARF debug info"), "{err}");
        assert_eq!(err.lines().count(), 1);
    } else {
        eprintln!("riscv64-linux-gnu-strip not installed: skipping the stripped-ELF case");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_machine_running_another_build_is_refused_not_misread() {
    let mut b = scene(ELF);
    let sleep = sym(&b.syms, "sleep");
    let mut code = [0u8; 4];
    b.t.mem.read(sleep, &mut code).unwrap();
    code[0] ^= 0xff;
    b.t.mem.write(sleep, &code);
    let r = run(&mut b, ELF, &["procs"]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert_eq!(
        r.err,
        format!("kinspect: the running kernel is not xv6_c.elf: the code of `sleep` at {sleep:#x} differs (rebuilt since QEMU started?); give --elf the running kernel's ELF\n")
    );
    assert!(r.out.is_empty());
}

/// The machine, which loses its connection after `reads_left` reads of
/// physical memory.
struct Dying<'a> {
    inner: &'a mut kinspect::target::memory::MemoryTarget,
    reads_left: usize,
}

impl kinspect::target::Target for Dying<'_> {
    fn describe(&self) -> String {
        "a dying machine".into()
    }
    fn harts(&mut self) -> kinspect::target::Result<Vec<usize>> {
        self.inner.harts()
    }
    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> kinspect::target::Result<()> {
        if self.reads_left == 0 {
            return Err(kinspect::target::TargetError::Disconnected(
                "QEMU closed the connection".into(),
            ));
        }
        self.reads_left -= 1;
        self.inner.read_phys(pa, buf)
    }
    fn regs(&mut self, hart: usize) -> kinspect::target::Result<kinspect::target::GeneralRegs> {
        self.inner.regs(hart)
    }
    fn csr(&mut self, hart: usize, csr: kinspect::target::Csr) -> kinspect::target::Result<u64> {
        self.inner.csr(hart, csr)
    }
    fn run_state(&mut self) -> kinspect::target::Result<kinspect::target::RunState> {
        Ok(kinspect::target::RunState::Halted)
    }
}

/// A connection lost under the kernel model or a symbol expression (the
/// reads go through the DWARF loader) is exit code 3 with one line, at
/// every point; with enough reads the output is the whole of it.
#[test]
fn losing_the_machine_under_the_model_is_exit_3_with_one_line() {
    let mut b = scene(ELF);
    let path = fixture(ELF);
    let elf = path.to_str().unwrap();
    for args in [&["procs"][..], &["translate", "proc[1].kstack"]] {
        let mut full = vec!["kinspect", "--elf", elf];
        full.extend_from_slice(args);
        let run = |t: &mut dyn kinspect::target::Target| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = kinspect::cli::run_args_on(&full, t, &mut out, &mut err);
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        let whole = run(&mut b.t);
        assert_eq!(whole.0, 0, "{args:?}: {}", whole.2);
        let mut lost = 0;
        for reads in 0..200 {
            let mut t = Dying {
                inner: &mut b.t,
                reads_left: reads,
            };
            let r = run(&mut t);
            if r.0 == 0 {
                assert_eq!(r, whole, "{args:?} after {reads} reads");
                break;
            }
            lost += 1;
            assert_eq!(r.0, 3, "{args:?} after {reads} reads: {}", r.2);
            assert_eq!(
                r.2, "kinspect: connection lost: QEMU closed the connection\n",
                "{args:?} after {reads} reads"
            );
            assert_eq!(r.1, "", "{args:?} after {reads} reads: a partial view");
        }
        assert!(lost > 2, "{args:?}: the machine died only {lost} times");
    }
}
