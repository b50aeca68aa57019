//! The symbol layer against the real kernel: `target/kernel/kernel.elf`
//! as `cargo xtask build` leaves it. Skips with a note when the ELF has
//! not been built (the full `cargo xtask test` run always builds it).
//!
//! Oracles: the kernel's own source for `ProcState`'s variants, xv6's
//! NPROC/NCPU, the ELF symbol table for addresses and sizes, and the
//! zero-initialised tables in the ELF's .bss for a whole-table load.

use std::path::{Path, PathBuf};

use kinspect_symbols::{Symbols, TypeKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kernel() -> Option<Symbols> {
    let path = root().join("target/kernel/kernel.elf");
    if !path.exists() {
        println!(
            "note: {} not built (cargo xtask build); skipping",
            path.display()
        );
        return None;
    }
    Some(Symbols::open(&path).unwrap())
}

/// The variant names of `pub enum ProcState { ... }` in the kernel source.
fn procstate_in_source() -> Vec<String> {
    let src = std::fs::read_to_string(root().join("kernel/src/proc.rs")).unwrap();
    let start = src
        .find("pub enum ProcState {")
        .expect("ProcState in kernel/src/proc.rs");
    let body = &src[start + "pub enum ProcState {".len()..];
    let body = &body[..body.find('}').unwrap()];
    body.split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && !v.starts_with("//"))
        .collect()
}

#[test]
fn kernel_objects_are_found_by_name() {
    let Some(syms) = kernel() else { return };
    for name in [
        "proc",
        "cpus",
        "kernel_pagetable",
        "kmem",
        "panicked",
        "panicmsg",
    ] {
        let g = syms.global(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sym = syms
            .elf_symbol(name)
            .unwrap_or_else(|| panic!("{name} not in .symtab"));
        assert_eq!(g.addr, sym.addr, "{name}");
        assert_eq!(g.size, Some(sym.size), "{name}");
        assert!(g.ty.is_some(), "{name} has a DWARF type");
    }
    let proc = syms.global("proc").unwrap();
    let TypeKind::Array { element, len } = syms.resolve(proc.ty.unwrap()).unwrap().kind else {
        panic!("proc is not an array")
    };
    assert_eq!(len, Some(64), "NPROC");
    for field in ["pid", "state", "kstack", "name", "pagetable"] {
        syms.member(element, field)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let cpus = syms.global("cpus").unwrap();
    let TypeKind::Array { len, .. } = syms.resolve(cpus.ty.unwrap()).unwrap().kind else {
        panic!("cpus is not an array")
    };
    assert_eq!(len, Some(8), "NCPU");
    let (_, state) = syms.field_offset(element, "state").unwrap();
    let TypeKind::Enum(e) = &syms.resolve(state).unwrap().kind else {
        panic!("state is not an enum")
    };
    let variants: Vec<String> = e.enumerators.iter().map(|x| x.name.clone()).collect();
    assert_eq!(variants, procstate_in_source());
    // Each codegen unit has its own copy of the type: same name, same values.
    let by_name = syms.resolve(syms.type_named("ProcState").unwrap()).unwrap();
    let TypeKind::Enum(e2) = &by_name.kind else {
        panic!("ProcState is not an enum")
    };
    assert_eq!(e2.enumerators, e.enumerators);
}

#[test]
fn kernel_tables_load_from_the_image() {
    let Some(syms) = kernel() else { return };
    // Before boot, the tables are .bss zeros: every slot UNUSED, no pids.
    let mut mem = syms.file_memory();
    let procs = syms.load_global(&mut mem, "proc").unwrap();
    assert_eq!(procs.items().len(), 64);
    for p in procs.items() {
        assert_eq!(p.field("state").unwrap().variant(), Some("Unused"));
        assert_eq!(p.field("pid").unwrap().as_i64().unwrap(), 0);
        assert_eq!(p.field("name").unwrap().as_cstr().unwrap(), "");
    }
    // Not panicked: the message buffer is empty.
    let msg = syms.load_global(&mut mem, "panicmsg").unwrap();
    assert_eq!(msg.as_cstr().unwrap(), "");
    assert_eq!(
        syms.load_global(&mut mem, "panicked")
            .unwrap()
            .as_u64()
            .unwrap(),
        0
    );
    let cpus = syms.load_global(&mut mem, "cpus").unwrap();
    assert_eq!(
        cpus.index(2)
            .unwrap()
            .field("proc")
            .unwrap()
            .as_addr()
            .unwrap(),
        0
    );
    // Expressions over the real types.
    let proc = syms.global("proc").unwrap().addr;
    let psize = syms
        .size_of(
            syms.resolve(syms.global("proc").unwrap().ty.unwrap())
                .unwrap()
                .id,
        )
        .unwrap()
        / 64;
    assert_eq!(
        syms.eval_address("&proc[2]", &mut mem).unwrap(),
        proc + 2 * psize
    );
    assert_eq!(syms.eval_address("proc[3].kstack", &mut mem).unwrap(), 0);
    assert_eq!(
        syms.eval_address("cpus[1].proc->pid", &mut mem)
            .unwrap_err()
            .to_string(),
        "`cpus[1].proc` is null"
    );
    assert_eq!(
        syms.eval_address("proc[64]", &mut mem)
            .unwrap_err()
            .to_string(),
        "index 64 out of range for `proc` (64 elements)"
    );
}

#[test]
fn kernel_code_symbolizes_to_source() {
    let Some(syms) = kernel() else { return };
    let mut checked = 0;
    for f in ["kalloc", "scheduler", "main"] {
        let Some(sym) = syms
            .elf_symbols()
            .find(|s| s.demangled == f || s.demangled.ends_with(&format!("::{f}")))
        else {
            println!("note: no function `{f}` in the kernel");
            continue;
        };
        let sym = sym.clone();
        let (name, off) = syms.symbolize(sym.addr + 2).unwrap();
        assert_eq!((name, off), (sym.demangled.as_str(), 2));
        let frames = syms.lines(sym.addr).unwrap();
        let last = frames.last().unwrap_or_else(|| panic!("no line for {f}"));
        assert!(
            last.file.as_deref().is_some_and(|p| p.ends_with(".rs")),
            "{last}"
        );
        assert!(last.line.is_some(), "{last}");
        checked += 1;
    }
    assert!(checked > 0, "none of kalloc, scheduler, main found");
}
