//! gdb-scripts/kinspect.py on real C xv6 kernels (stock xv6-riscv, the
//! 2020 pgtbl-lab handout and this project's lab solutions, built by
//! `cargo xtask xv6`), booted under the real QEMU and checked against
//! kinspect itself on the same halted machine:
//!
//! - the per-process kernel page table: `kprocs` finds the same
//!   `struct proc` field, the same way (`kpagetable_field`, `kpt.how`,
//!   the candidates), with no setting, and prints the same first line as
//!   `kinspect procs`; `set kinspect kpt-field` / `--kpt-field` override it
//!   as kinspect's `--kpt-field` does;
//! - `kvmprint PID kernel` prints what `kinspect vmprint --pid PID
//!   --kernel-pt` prints, and `ktranslate proc[S].kstack PID kernel` walks
//!   that table to the page where kinspect found the kernel stack;
//! - `ktranslate etext`, `main` and `trampoline` (an array, a function and
//!   an assembler label) translate the symbol's address.

mod xv6_common;

use std::path::Path;

use kinspect_testkit::xv6::{variant, variants};
use kinspect_testkit::{gdb_batch_with, Machine};
use serde_json::Value;
use xv6_common::{hex, kinspect, shell, text};

fn kinspect_json(m: &Machine, elf: &Path, args: &[&str]) -> Value {
    xv6_common::json(m, elf, args, 0)
}

/// kinspect's stdout; it must succeed.
fn kinspect_ok(m: &Machine, elf: &Path, args: &[&str]) -> String {
    let o = kinspect(m, elf, args);
    assert!(
        o.status.success(),
        "kinspect {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// The detection as gdb's `kprocs --json` and kinspect's `--json procs`
/// both report it, with the warning about harts on unrecognised tables.
fn detection(j: &Value) -> (Value, Value, Value, Value) {
    (
        j["kpagetable_field"].clone(),
        j["kpt"]["how"].clone(),
        j["kpt"]["candidates"].clone(),
        j["kpt_warning"].clone(),
    )
}

fn gdb_and_kinspect_agree(name: &str) {
    let v = variant(name);
    assert!(v.is_correct(), "{name} is a buggy variant");
    let elf = v.elf();
    let syms = kinspect_symbols::Symbols::open(&elf).expect("the C kernel's symbols");
    let addr_of = |s: &str| {
        syms.elf_symbol(s)
            .unwrap_or_else(|| panic!("{name}: no ELF symbol {s}"))
            .addr
    };
    let (m, _) = shell(&v);

    // kinspect first: it leaves a halted machine halted.
    let procs = kinspect_json(&m, &elf, &["procs"]);
    let header = kinspect_ok(&m, &elf, &["procs"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let rows = procs["procs"].as_array().expect("procs");
    assert!(rows.len() >= 3, "{name}: {procs}");
    // A process other than init (sh, in slot 1 on xv6): its slot and pid.
    let p = &rows[1];
    let (slot, pid) = (p["slot"].as_u64().unwrap(), p["pid"].as_i64().unwrap());
    let kstack_pa = hex(&p["kstack_pa"]);
    let kernel_pagetable = hex(&procs["kernel_pagetable"]);
    let own_table = match &v.kpt_field {
        Some(_) => hex(&p["kpagetable"]),
        None => kernel_pagetable,
    };
    let vmprint = kinspect_ok(
        &m,
        &elf,
        &["vmprint", "--pid", &pid.to_string(), "--kernel-pt"],
    );
    // Naming the field by hand (only where the kernel has one).
    let named = v.kpt_field.clone();
    let named_procs = named
        .as_ref()
        .map(|f| kinspect_json(&m, &elf, &["--kpt-field", f, "procs"]));
    let none_procs = kinspect_json(&m, &elf, &["--kpt-field", "none", "procs"]);

    let out = gdb_batch_with(
        &elf,
        &m.gdb_addr(),
        &[
            "kprocs --json",
            "kprocs",
            &format!("kvmprint {pid} kernel"),
            &format!("ktranslate proc[{slot}].kstack {pid} kernel"),
            &format!("ktranslate proc[{slot}].kstack kernel"),
            "ktranslate etext kernel",
            "ktranslate main kernel",
            "ktranslate trampoline kernel",
            &format!(
                "set kinspect kpt-field {}",
                named.as_deref().unwrap_or("auto")
            ),
            "kprocs --json",
            "set kinspect kpt-field auto",
            "kprocs --json --kpt-field none",
        ],
    );
    let gdb_json = |i: usize| -> Value {
        serde_json::from_str(out[i].trim())
            .unwrap_or_else(|e| panic!("{name}: kprocs --json: {e}\n{out}"))
    };

    // The same field, found the same way, with no setting.
    let ours = gdb_json(0);
    assert_eq!(
        detection(&ours),
        detection(&procs),
        "{name}: gdb and kinspect detect the per-process kernel page table differently\n{out}"
    );
    assert_eq!(
        ours["kpagetable_field"].as_str(),
        v.kpt_field.as_deref(),
        "{name}: the per-process kernel page-table field\n{out}"
    );
    if v.kpt_field.is_some() {
        assert_eq!(ours["kpt"]["how"], "memory", "{name}\n{out}");
    }
    assert_eq!(
        out[1].lines().next(),
        Some(header.as_str()),
        "{name}: kprocs' first line is not kinspect procs'\n{out}"
    );

    // kvmprint PID kernel is kinspect's vmprint of the same table.
    assert!(
        out[2].starts_with(&format!("page table {own_table:#018x}\n")),
        "{name}: kvmprint {pid} kernel walks the wrong table\n{out}"
    );
    assert_eq!(
        out[2], vmprint,
        "{name}: kvmprint {pid} kernel differs from kinspect vmprint --pid {pid} --kernel-pt\n{out}"
    );

    // The process's kernel stack, through its own kernel page table.
    let want_in = match &v.kpt_field {
        Some(f) => format!("in kernel page table of pid {pid} ({f})\n"),
        None => "in kernel_pagetable (no per-process kernel page table)\n".into(),
    };
    assert!(out[3].starts_with(&want_in), "{name}\n{out}");
    assert!(
        out[3].contains(&format!("root {own_table:#018x}")),
        "{name}\n{out}"
    );
    assert!(
        out[3].contains(&format!("pa {kstack_pa:#018x}")),
        "{name}: ktranslate proc[{slot}].kstack {pid} kernel does not reach the page kinspect found ({kstack_pa:#x})\n{out}"
    );
    // `kernel` alone is kernel_pagetable; where a lab kernel keeps the
    // stack only in the process's table, it says which table to ask.
    assert!(
        out[4].starts_with("in kernel_pagetable\n")
            && out[4].contains(&format!("root {kernel_pagetable:#018x}")),
        "{name}\n{out}"
    );
    if !out[4].contains("leaf (") {
        let f = v.kpt_field.as_deref().unwrap_or("?");
        assert!(
            out[4].contains(&format!(
                "note: this kernel has per-process kernel page tables (struct proc's {f})"
            )),
            "{name}\n{out}"
        );
    }

    // Symbols of arrays, functions and labels: their address, identity-mapped.
    for (i, sym) in [(5, "etext"), (6, "main"), (7, "trampoline")] {
        let a = addr_of(sym);
        assert!(
            out[i].contains(&format!("va {a:#018x}")) && out[i].contains(&format!("pa {a:#018x}")),
            "{name}: ktranslate {sym} kernel ({a:#x})\n{out}"
        );
    }

    // The overrides: a name, and none, as kinspect's --kpt-field.
    if let (Some(f), Some(theirs)) = (&named, &named_procs) {
        let forced = gdb_json(9);
        assert_eq!(
            forced["kpagetable_field"].as_str(),
            Some(f.as_str()),
            "{name}\n{out}"
        );
        assert_eq!(forced["kpt"]["how"], "named", "{name}\n{out}");
        assert_eq!(detection(&forced), detection(theirs), "{name}\n{out}");
    }
    let none = gdb_json(11);
    assert_eq!(none["kpagetable_field"], Value::Null, "{name}\n{out}");
    assert_eq!(detection(&none), detection(&none_procs), "{name}\n{out}");
}

macro_rules! agree {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                gdb_and_kinspect_agree($name);
            }
        )*

        /// Every correct kernel of the manifest (stock and each lab
        /// solution) has its test above: a solution added to
        /// tests/xv6/variants.toml must be added here too.
        #[test]
        fn every_correct_variant_is_covered() {
            let covered = [$($name),*];
            let all = variants().unwrap_or_else(|e| panic!("{e}"));
            for v in all.iter().filter(|v| v.is_correct()) {
                assert!(
                    covered.contains(&v.name.as_str()),
                    "xv6 variant {} has no gdb-scripts agreement test in {}",
                    v.name,
                    file!()
                );
            }
        }
    };
}

agree! {
    stock_xv6_riscv => "stock",
    lab_2020_handout => "lab-handout",
    sol_kpagetable => "sol-kpagetable",
    sol_kernelpgtbl => "sol-kernelpgtbl",
    sol_prockpt => "sol-prockpt",
    sol_kernel_pt => "sol-kernel_pt",
}
