//! The symbol layer against rustc's DWARF: `fixtures/rust_like.elf`, built
//! from `fixtures/rust_like.rs` for riscv64gc-unknown-none-elf (DWARF 4,
//! namespaces, mangled statics, `DW_TAG_variant_part`).
//!
//! The oracles are values rustc encoded itself (statics initialised in
//! the source and stored in .rodata) and rustc's own `offset_of!`
//! (`LAYOUT`): decoding them must give back what the source says.

use std::path::{Path, PathBuf};

use kinspect_symbols::{Memory, NoMemory, Symbols, TypeKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// rustc's default DWARF 4 (what the kernel has) and `-C dwarf-version=5`.
const FIXTURES: [&str; 2] = ["rust_like.elf", "rust_like_dwarf5.elf"];

fn open_all() -> Vec<Symbols> {
    FIXTURES
        .iter()
        .map(|f| Symbols::open(fixture(f)).unwrap())
        .collect()
}

#[test]
fn statics_are_found_by_name_path_and_linkage_name() {
    for syms in open_all() {
        // #[no_mangle] statics: DWARF name = ELF name.
        for name in ["proc", "panicked"] {
            let g = syms.global(name).unwrap();
            assert_eq!(g.addr, syms.elf_symbol(name).unwrap().addr, "{name}");
            assert!(g.ty.is_some());
        }
        assert_eq!(
            syms.type_name(syms.global("proc").unwrap().ty.unwrap()),
            "[Proc; 4]"
        );
        assert_eq!(
            syms.type_name(syms.global("panicked").unwrap().ty.unwrap()),
            "bool"
        );
        // Mangled statics: by DWARF name, by Rust path, by linkage (ELF) name,
        // by demangled ELF name; all the same object with its type.
        let ticks = syms.global("TICKS").unwrap();
        let mangled = syms
            .elf_symbols()
            .find(|s| s.demangled == "rust_like::TICKS")
            .unwrap()
            .clone();
        assert_eq!(ticks.addr, mangled.addr);
        for name in ["rust_like::TICKS", mangled.name.as_str()] {
            let g = syms.global(name).unwrap();
            assert_eq!((g.addr, g.ty), (ticks.addr, ticks.ty), "{name}");
        }
        assert_eq!(syms.type_name(ticks.ty.unwrap()), "u64");
        assert_eq!(
            syms.symbolize(ticks.addr + 3),
            Some(("rust_like::TICKS", 3))
        );
    }
}

#[test]
fn rust_types_by_name_and_path() {
    for syms in open_all() {
        let st = syms.type_named("ProcState").unwrap();
        assert_eq!(syms.type_named("rust_like::proc::ProcState").unwrap(), st);
        let TypeKind::Enum(e) = &syms.ty(st).unwrap().kind else {
            panic!("ProcState is not an enum")
        };
        let names: Vec<&str> = e.enumerators.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            ["Unused", "Used", "Sleeping", "Runnable", "Running", "Zombie"]
        );
        assert_eq!(syms.size_of(st).unwrap(), 1);

        // Rust reorders fields: the DWARF offsets must match rustc's offset_of!.
        let mut mem = syms.file_memory();
        let layout = syms.load_global(&mut mem, "LAYOUT").unwrap();
        let l: Vec<u64> = layout.items().iter().map(|v| v.as_u64().unwrap()).collect();
        let p = syms.type_named("rust_like::proc::Proc").unwrap();
        assert_eq!(syms.size_of(p).unwrap(), l[0]);
        for (i, f) in [
            "state",
            "pid",
            "kstack",
            "pagetable",
            "name",
            "wait",
            "parent",
            "killed",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                syms.field_offset(p, f).unwrap().0,
                l[1 + i],
                "offset_of!(Proc, {f})"
            );
        }
        assert_eq!(
            syms.type_name(syms.field_offset(p, "name").unwrap().1),
            "[u8; 16]"
        );
        assert_eq!(
            syms.type_name(syms.field_offset(p, "pagetable").unwrap().1),
            "*mut u64"
        );
        // Multi-dimensional Rust arrays.
        let grid = syms.global("GRID").unwrap();
        assert_eq!(syms.type_name(grid.ty.unwrap()), "[[u16; 3]; 2]");
        let v = syms.load_global(&mut mem, "GRID").unwrap();
        assert_eq!(v.index(1).unwrap().index(2).unwrap().as_u64().unwrap(), 6);
        assert_eq!(v.index(0).unwrap().index(1).unwrap().as_u64().unwrap(), 2);
    }
}

#[test]
fn a_type_name_two_modules_define_is_ambiguous() {
    for syms in open_all() {
        assert_eq!(
        syms.type_named("Context").unwrap_err().to_string(),
        "type `Context` is ambiguous (rust_like::sched::Context, rust_like::trap::Context); give its path"
    );
        let t = syms.type_named("rust_like::trap::Context").unwrap();
        assert_eq!(syms.member(t, "sepc").unwrap().offset, 0);
        let mut mem = syms.file_memory();
        let v = syms.load_global(&mut mem, "SCHED_CONTEXT").unwrap();
        assert_eq!(v.field("sp").unwrap().as_u64().unwrap(), 0x8000_9000);
    }
}

#[test]
fn rust_enums_with_data_decode_as_rustc_encoded_them() {
    for syms in open_all() {
        let mut mem = syms.file_memory();
        let waits = syms.load_global(&mut mem, "WAITS").unwrap();
        assert_eq!(waits.items().len(), 3);
        assert_eq!(
            waits.to_string(),
            "[Nothing, Channel(2748), Child {pid = 3, status = -1}]"
        );
        assert_eq!(waits.index(0).unwrap().variant(), Some("Nothing"));
        let ch = waits.index(1).unwrap();
        assert_eq!(ch.variant(), Some("Channel"));
        assert_eq!(ch.field("__0").unwrap().as_u64().unwrap(), 0xabc);
        let child = waits.index(2).unwrap();
        assert_eq!(child.variant(), Some("Child"));
        assert_eq!(child.field("pid").unwrap().as_i64().unwrap(), 3);
        assert_eq!(child.field("status").unwrap().as_i64().unwrap(), -1);
        assert_eq!(child.to_string(), "Child {pid = 3, status = -1}");

        let init = syms.load_global(&mut mem, "INIT").unwrap();
        assert_eq!(init.field("state").unwrap().variant(), Some("Sleeping"));
        assert_eq!(init.field("pid").unwrap().as_i64().unwrap(), 1);
        assert_eq!(
            init.field("kstack").unwrap().as_u64().unwrap(),
            0x3f_ffff_d000
        );
        assert_eq!(init.field("name").unwrap().as_cstr().unwrap(), "initcode");
        assert!(init.field("killed").unwrap().as_bool().unwrap());
        assert_eq!(init.field("wait").unwrap().variant(), Some("Channel"));
        // Option<&Proc> is niche-encoded: None is a null pointer, Some the
        // default variant.
        assert_eq!(init.field("parent").unwrap().variant(), Some("None"));
        let child = syms.load_global(&mut mem, "CHILD").unwrap();
        let parent = child.field("parent").unwrap();
        assert_eq!(parent.variant(), Some("Some"));
        assert_eq!(
            parent.field("__0").unwrap().as_addr().unwrap(),
            syms.global("INIT").unwrap().addr
        );
        assert_eq!(child.field("state").unwrap().variant(), Some("Zombie"));
        assert_eq!(child.field("name").unwrap().as_cstr().unwrap(), "sh");
        assert_eq!(
            child
                .field("wait")
                .unwrap()
                .field("status")
                .unwrap()
                .as_i64()
                .unwrap(),
            7
        );

        // Expressions through Rust data: tuple fields are written `.0`.
        assert_eq!(
            syms.eval_address("CHILD.wait.Child.pid", &mut mem).unwrap(),
            2
        );
        assert_eq!(
            syms.eval_address("CHILD.parent.Some.0->pid", &mut mem)
                .unwrap(),
            1
        );
        assert_eq!(
            syms.eval_address("WAITS[1].Channel.0", &mut mem).unwrap(),
            0xabc
        );
        assert_eq!(
            syms.eval_address("WAITS[1].Child.pid", &mut mem)
                .unwrap_err()
                .to_string(),
            "`WAITS[1]` is `Channel`, not `Child`"
        );
        assert_eq!(
            syms.eval_address("INIT.parent.Some.0->pid", &mut mem)
                .unwrap_err()
                .to_string(),
            "`INIT.parent` is `None`, not `Some`"
        );
        assert_eq!(
            syms.eval_address("INIT.wait.Chanel", &mut mem)
                .unwrap_err()
                .to_string(),
            "no field `Chanel` in `Wait` (fields: Nothing, Channel, Child)"
        );
        assert_eq!(
        syms.eval_address("CHILD.parent.Some.0->kstack", &mut NoMemory).unwrap_err().to_string(),
        format!(
            "cannot read `CHILD.parent`: cannot read 8 bytes at {:#x}: no target memory (give a live target or a snapshot)",
            syms.global("CHILD").unwrap().addr + syms.field_offset(syms.type_named("rust_like::proc::Proc").unwrap(), "parent").unwrap().0
        )
    );
    }
}

#[test]
fn fixture_rebuilds_with_rustc() {
    let has_target = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|root| {
            Path::new(root.trim())
                .join("lib/rustlib/riscv64gc-unknown-none-elf")
                .exists()
        });
    if !has_target {
        println!("note: rustc has no riscv64gc-unknown-none-elf target; using the committed fixture only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("kinspect-symbols-rs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("sh")
        .arg(fixture("build.sh"))
        .arg(&dir)
        .arg("rust")
        .status()
        .unwrap();
    assert!(status.success(), "build.sh rust failed");
    for f in FIXTURES {
        let syms = Symbols::open(dir.join(f)).unwrap();
        let mut mem = syms.file_memory();
        let waits = syms.load_global(&mut mem, "WAITS").unwrap();
        assert_eq!(
            waits
                .index(2)
                .unwrap()
                .field("status")
                .unwrap()
                .as_i64()
                .unwrap(),
            -1
        );
        let mut buf = [0u8; 8];
        mem.read(syms.global("LAYOUT").unwrap().addr, &mut buf)
            .unwrap();
        assert_eq!(
            u64::from_le_bytes(buf),
            syms.size_of(syms.type_named("rust_like::proc::Proc").unwrap())
                .unwrap()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
