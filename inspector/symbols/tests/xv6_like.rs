//! The symbol layer against gcc's DWARF: `fixtures/xv6_like.elf` (DWARF 5,
//! gcc 12's default) and `fixtures/xv6_like_dwarf4.elf`, built from
//! `fixtures/xv6_like.c` whose structs follow C xv6-riscv.
//!
//! The oracle for layouts is the fixture's own `layout[]` array: gcc's
//! `offsetof`/`sizeof` values, read from the ELF's .rodata, independent of
//! the DWARF under test. Memory images for reflection are laid out with
//! those offsets too.

use std::path::{Path, PathBuf};

use kinspect_symbols::{
    Evaluated, ImageMemory, Memory, NoMemory, SymbolError, Symbols, TypeKind, Value,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const FIXTURES: [&str; 2] = ["xv6_like.elf", "xv6_like_dwarf4.elf"];

// Indices into the fixture's `layout[]` (see xv6_like.c).
const PROC_SIZE: usize = 0;
const PROC_FIELDS: [&str; 15] = [
    "lock",
    "state",
    "chan",
    "killed",
    "xstate",
    "pid",
    "parent",
    "kstack",
    "sz",
    "pagetable",
    "trapframe",
    "context",
    "ofile",
    "cwd",
    "name",
];
const CPU_SIZE: usize = 16;
const CPU_FIELDS: [&str; 4] = ["proc", "context", "noff", "intena"];
const CONTEXT_SIZE: usize = 21;
const SPINLOCK_SIZE: usize = 24;
const KMEM_SIZE: usize = 28;
const KMEM_FREELIST: usize = 29;
const SHAPES_SIZE: usize = 30;
const SHAPES_FIELDS: [&str; 6] = ["grid", "csr", "w", "ok", "delta", "states"];

/// gcc's layout numbers, read from the ELF's data (no DWARF involved in
/// the bytes; DWARF only says where `layout` is, which the ELF symbol
/// table confirms).
fn oracle(syms: &Symbols) -> Vec<u64> {
    let sym = syms.elf_symbol("layout").expect("layout in .symtab");
    let g = syms.global("layout").unwrap();
    assert_eq!(g.addr, sym.addr);
    let mut mem = syms.file_memory();
    let mut bytes = vec![0u8; sym.size as usize];
    mem.read(sym.addr, &mut bytes).unwrap();
    bytes
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn type_layouts_agree_with_gcc_offsetof() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        let l = oracle(&syms);
        assert_eq!(l.len(), 37, "{f}: layout[] length");

        let proc_t = syms.type_named("struct proc").unwrap();
        assert_eq!(syms.size_of(proc_t).unwrap(), l[PROC_SIZE], "{f}");
        for (i, field) in PROC_FIELDS.iter().enumerate() {
            let (off, _) = syms.field_offset(proc_t, field).unwrap();
            assert_eq!(off, l[1 + i], "{f}: offsetof(struct proc, {field})");
        }
        let cpu_t = syms.type_named("struct cpu").unwrap();
        assert_eq!(syms.size_of(cpu_t).unwrap(), l[CPU_SIZE]);
        for (i, field) in CPU_FIELDS.iter().enumerate() {
            assert_eq!(
                syms.field_offset(cpu_t, field).unwrap().0,
                l[CPU_SIZE + 1 + i],
                "{f}: {field}"
            );
        }
        let ctx_t = syms.type_named("struct context").unwrap();
        assert_eq!(syms.size_of(ctx_t).unwrap(), l[CONTEXT_SIZE]);
        assert_eq!(
            syms.field_offset(ctx_t, "sp").unwrap().0,
            l[CONTEXT_SIZE + 1]
        );
        assert_eq!(
            syms.field_offset(ctx_t, "s11").unwrap().0,
            l[CONTEXT_SIZE + 2]
        );
        // Nested paths agree with the sums of gcc's offsets.
        assert_eq!(
            syms.field_offset(cpu_t, "context.sp").unwrap().0,
            l[CPU_SIZE + 2] + l[CONTEXT_SIZE + 1]
        );
        let sl = syms.type_named("struct spinlock").unwrap();
        assert_eq!(syms.size_of(sl).unwrap(), l[SPINLOCK_SIZE]);
        for (i, field) in ["locked", "name", "cpu"].iter().enumerate() {
            assert_eq!(
                syms.field_offset(sl, field).unwrap().0,
                l[SPINLOCK_SIZE + 1 + i]
            );
        }
        // kmem's struct is anonymous: reached through the variable.
        let kmem = syms.global("kmem").unwrap();
        assert_eq!(kmem.size, Some(l[KMEM_SIZE]));
        assert_eq!(
            syms.field_offset(kmem.ty.unwrap(), "freelist").unwrap().0,
            l[KMEM_FREELIST]
        );
        let shapes = syms.type_named("struct shapes").unwrap();
        assert_eq!(syms.size_of(shapes).unwrap(), l[SHAPES_SIZE]);
        for (i, field) in SHAPES_FIELDS.iter().enumerate() {
            assert_eq!(
                syms.field_offset(shapes, field).unwrap().0,
                l[SHAPES_SIZE + 1 + i],
                "{f}: {field}"
            );
        }
    }
}

#[test]
fn type_shapes_are_described() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        let proc_t = syms.type_named("struct proc").unwrap();
        let name = |path: &str| syms.type_name(syms.field_offset(proc_t, path).unwrap().1);
        assert_eq!(name("lock"), "struct spinlock");
        assert_eq!(name("state"), "enum procstate");
        assert_eq!(name("chan"), "void *");
        assert_eq!(name("parent"), "struct proc *");
        assert_eq!(name("kstack"), "uint64");
        assert_eq!(name("pagetable"), "pagetable_t");
        assert_eq!(name("trapframe"), "struct trapframe *");
        assert_eq!(name("ofile"), "struct file *[16]");
        assert_eq!(name("ofile[3]"), "struct file *");
        assert_eq!(name("cwd"), "struct inode *");
        assert_eq!(name("name"), "char[16]");
        assert_eq!(name("context.s11"), "uint64");

        // pagetable_t is a typedef of a pointer to a typedef of unsigned long.
        let pt = syms.type_named("pagetable_t").unwrap();
        assert!(matches!(
            syms.ty(pt).unwrap().kind,
            TypeKind::Typedef { .. }
        ));
        let TypeKind::Pointer { pointee: Some(p) } = syms.resolve(pt).unwrap().kind else {
            panic!("pagetable_t is not a pointer")
        };
        assert_eq!(syms.type_name(p), "uint64");
        assert_eq!(syms.size_of(p).unwrap(), 8);

        // The enum and its values.
        let st = syms.type_named("enum procstate").unwrap();
        let TypeKind::Enum(e) = &syms.ty(st).unwrap().kind else {
            panic!("not an enum")
        };
        let names: Vec<(&str, i128)> = e
            .enumerators
            .iter()
            .map(|x| (x.name.as_str(), x.value))
            .collect();
        assert_eq!(
            names,
            [
                ("UNUSED", 0),
                ("USED", 1),
                ("SLEEPING", 2),
                ("RUNNABLE", 3),
                ("RUNNING", 4),
                ("ZOMBIE", 5)
            ]
        );

        // Arrays: lengths from DW_AT_upper_bound (gcc), multi-dimensional.
        let g = syms.global("proc").unwrap();
        let TypeKind::Array { len, .. } = syms.resolve(g.ty.unwrap()).unwrap().kind else {
            panic!()
        };
        assert_eq!(len, Some(64));
        assert_eq!(syms.type_name(g.ty.unwrap()), "struct proc[64]");
        let shapes = syms.type_named("struct shapes").unwrap();
        let (_, grid) = syms.field_offset(shapes, "grid").unwrap();
        assert_eq!(syms.type_name(grid), "short int[3][4]");
        let (off, row) = syms.field_offset(shapes, "grid[2]").unwrap();
        assert_eq!(off, syms.field_offset(shapes, "grid").unwrap().0 + 2 * 8);
        assert_eq!(syms.type_name(row), "short int[4]");
        assert_eq!(syms.size_of(row).unwrap(), 8);
        let (_, csr) = syms.field_offset(shapes, "csr").unwrap();
        assert_eq!(syms.type_name(csr), "volatile const uint64");
        assert_eq!(
            syms.type_name(syms.field_offset(shapes, "w").unwrap().1),
            "union word"
        );

        // Bit-fields: DWARF 5 says DW_AT_data_bit_offset, gcc's DWARF 4 the
        // older DW_AT_bit_offset; both must give the psABI's placement
        // (first field in the low bits of the byte after `w`).
        let ok = syms.field_offset(shapes, "ok").unwrap().0;
        let flags = syms.member(shapes, "flags").unwrap().bits.unwrap();
        let mode = syms.member(shapes, "mode").unwrap().bits.unwrap();
        assert_eq!((flags.bit_offset, flags.bit_size), ((ok - 1) * 8, 3), "{f}");
        assert_eq!(
            (mode.bit_offset, mode.bit_size),
            ((ok - 1) * 8 + 3, 5),
            "{f}"
        );
    }
}

#[test]
fn globals_are_found_where_the_elf_puts_them() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        for (name, ty) in [
            ("proc", "struct proc[64]"),
            ("cpus", "struct cpu[8]"),
            ("kernel_pagetable", "pagetable_t"),
            ("kmem", "struct <anonymous>"),
            ("panicked", "volatile int"),
            ("banner", "char[22]"),
        ] {
            let g = syms.global(name).unwrap();
            let sym = syms.elf_symbol(name).unwrap();
            assert_eq!(g.addr, sym.addr, "{f}: {name}");
            assert_eq!(g.size, Some(sym.size), "{f}: {name}");
            assert_eq!(syms.type_name(g.ty.unwrap()), ty, "{f}: {name}");
            assert!(!g.is_code);
        }
        // `proc` is declared (no location) in xv6_like.h for both units and
        // defined once with DW_AT_specification: the definition wins.
        assert_eq!(
            syms.global("proc").unwrap().addr,
            syms.elf_symbol("proc").unwrap().addr
        );
        // A pointer to a forward-declared struct reaches its definition.
        let initproc = syms.global("initproc").unwrap();
        let TypeKind::Pointer { pointee: Some(p) } =
            syms.resolve(initproc.ty.unwrap()).unwrap().kind
        else {
            panic!("initproc is not a pointer")
        };
        assert_eq!(syms.size_of(p).unwrap(), 360, "{f}");
        assert_eq!(syms.member(p, "pid").unwrap().offset, 48, "{f}");
        // Linker labels and functions: ELF only, no type.
        let etext = syms.global("etext").unwrap();
        assert_eq!((etext.ty, etext.is_code), (None, true));
        let tramp = syms.global("trampoline").unwrap();
        assert_eq!(tramp.ty, None);
        assert!(tramp.is_code);
        assert!(syms.global("kalloc").unwrap().is_code);
        assert_eq!(
            syms.global("nosuch").unwrap_err().to_string(),
            "no symbol `nosuch` (neither a DWARF variable nor an ELF symbol)"
        );
        assert_eq!(
            syms.type_named("struct nosuch").unwrap_err().to_string(),
            "no type `struct nosuch` in the DWARF"
        );
    }
}

#[test]
fn symbolize_and_source_lines() {
    let syms = Symbols::open(fixture("xv6_like.elf")).unwrap();
    let kalloc = syms.elf_symbol("kalloc").unwrap().addr;
    assert_eq!(syms.symbolize(kalloc + 6), Some(("kalloc", 6)));
    let proc = syms.elf_symbol("proc").unwrap().addr;
    assert_eq!(syms.symbolize(proc + 400), Some(("proc", 400)));
    // A label covers up to the next symbol; `trampoline` and `uservec`
    // share an address and the first defined one is chosen.
    let tramp = syms.elf_symbol("trampoline").unwrap().addr;
    assert_eq!(syms.symbolize(tramp + 4), Some(("trampoline", 4)));
    assert_eq!(syms.symbolize(0x1000), None);

    // kalloc's first line is its opening line in the C source.
    let src = std::fs::read_to_string(fixture("xv6_like.c")).unwrap();
    let line_of = |needle: &str| src.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let frames = syms.lines(kalloc).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].function.as_deref(), Some("kalloc"));
    assert_eq!(frames[0].file.as_deref(), Some("./xv6_like.c"));
    assert_eq!(frames[0].line, Some(line_of("void *kalloc(void) {")));

    // cpuid() is always inlined into mycpu(): some address in mycpu has
    // two frames, the inlined callee first, then the caller at the call.
    let mycpu = syms.elf_symbol("mycpu").unwrap();
    let inlined = (mycpu.addr..mycpu.addr + mycpu.size)
        .step_by(2)
        .map(|a| syms.lines(a).unwrap())
        .find(|f| f.len() == 2)
        .expect("an inlined frame in mycpu");
    assert_eq!(inlined[0].function.as_deref(), Some("cpuid"));
    assert!(inlined[0].inlined);
    assert_eq!(
        inlined[0].line,
        Some(line_of("int cpuid(void) { return 0; }"))
    );
    assert_eq!(inlined[1].function.as_deref(), Some("mycpu"));
    assert!(!inlined[1].inlined);
    assert_eq!(inlined[1].line, Some(line_of("int id = cpuid();")));
    assert_eq!(
        inlined[1].to_string(),
        format!("mycpu at ./xv6_like.c:{}", line_of("int id = cpuid();"))
    );
}

/// A kernel image as a C xv6 would leave it: proc[1] is init, proc[3] is
/// `sh` running on hart 1, the free list has one page. Offsets come from
/// gcc's `layout[]`, not from the DWARF under test.
struct Image {
    mem: ImageMemory,
    proc: u64,
    cpus: u64,
    shapes: u64,
}

const P3_KSTACK: u64 = 0x3f_ffff_9000;
const KPT: u64 = 0x87ff_f000;

fn image(syms: &Symbols) -> Image {
    let l = oracle(syms);
    let at = |name: &str| syms.elf_symbol(name).unwrap().addr;
    let (proc, cpus, shapes) = (at("proc"), at("cpus"), at("shapes"));
    let psize = l[PROC_SIZE];
    let pf = |i: u64, field: &str| {
        proc + i * psize + l[1 + PROC_FIELDS.iter().position(|f| *f == field).unwrap()]
    };
    let mut mem = syms.file_memory(); // .data and .bss as linked, .bss zeros
    let mut w = |addr: u64, bytes: &[u8]| assert!(mem.write(addr, bytes), "{addr:#x} not mapped");
    // proc[1]: init, sleeping.
    w(pf(1, "state"), &2u32.to_le_bytes());
    w(pf(1, "pid"), &1i32.to_le_bytes());
    w(pf(1, "name"), b"init\0");
    // proc[3]: sh, running, child of init.
    w(pf(3, "state"), &4u32.to_le_bytes());
    w(pf(3, "pid"), &7i32.to_le_bytes());
    w(pf(3, "xstate"), &(-1i32).to_le_bytes());
    w(pf(3, "parent"), &(proc + psize).to_le_bytes());
    w(pf(3, "kstack"), &P3_KSTACK.to_le_bytes());
    w(pf(3, "sz"), &0x3000u64.to_le_bytes());
    w(pf(3, "pagetable"), &0x87f6_e000u64.to_le_bytes());
    w(pf(3, "name"), b"sh\0garbage-after");
    w(pf(3, "lock") + l[SPINLOCK_SIZE + 1], &1u32.to_le_bytes()); // locked
    w(
        pf(3, "lock") + l[SPINLOCK_SIZE + 2],
        &at("banner").to_le_bytes(),
    ); // name
    w(
        pf(3, "context") + l[CONTEXT_SIZE + 1],
        &(P3_KSTACK + 0xf80).to_le_bytes(),
    );
    // proc[4]: a state no enumerator names (memory corruption, or a newer kernel).
    w(pf(4, "state"), &9u32.to_le_bytes());
    // cpus[1] runs proc[3].
    w(
        cpus + l[CPU_SIZE] + l[CPU_SIZE + 1],
        &(proc + 3 * psize).to_le_bytes(),
    );
    w(cpus + l[CPU_SIZE] + l[CPU_SIZE + 3], &1i32.to_le_bytes());
    w(at("kernel_pagetable"), &KPT.to_le_bytes());
    w(at("initproc"), &(proc + 3 * psize).to_le_bytes());
    w(at("kmem") + l[KMEM_FREELIST], &0x8700_0000u64.to_le_bytes());
    // shapes
    let sf = |field: &str| {
        shapes + l[SHAPES_SIZE + 1 + SHAPES_FIELDS.iter().position(|f| *f == field).unwrap()]
    };
    w(sf("grid") + (2 * 4 + 3) * 2, &(-5i16).to_le_bytes());
    w(sf("grid") + 4 * 2, &300i16.to_le_bytes());
    w(sf("csr"), &0x8000_0000_0000_8000u64.to_le_bytes());
    w(sf("w"), &0x1122_3344_5566_7788u64.to_le_bytes());
    w(sf("ok") - 1, &[(17 << 3) | 5]); // mode = 17, flags = 5
    w(sf("ok"), &[1]);
    w(sf("delta"), &(-3i8).to_le_bytes());
    w(sf("states") + 4, &5u32.to_le_bytes());
    Image {
        mem,
        proc,
        cpus,
        shapes,
    }
}

#[test]
fn reflection_reads_processes_by_field_name() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        let mut img = image(&syms);
        let procs = syms.load_global(&mut img.mem, "proc").unwrap();
        assert_eq!(procs.items().len(), 64);
        let p3 = procs.index(3).unwrap();
        assert_eq!(p3.field("pid").unwrap().as_i64().unwrap(), 7);
        assert_eq!(p3.field("xstate").unwrap().as_i64().unwrap(), -1);
        assert_eq!(p3.field("state").unwrap().variant(), Some("RUNNING"));
        assert_eq!(p3.field("state").unwrap().as_u64().unwrap(), 4);
        assert_eq!(p3.field("kstack").unwrap().as_u64().unwrap(), P3_KSTACK);
        assert_eq!(p3.field("sz").unwrap().as_u64().unwrap(), 0x3000);
        assert_eq!(
            p3.field("pagetable").unwrap().as_addr().unwrap(),
            0x87f6_e000
        );
        // Pointers are addresses, never followed.
        let parent = p3.field("parent").unwrap();
        assert!(matches!(parent, Value::Pointer { .. }));
        assert_eq!(
            parent.as_addr().unwrap(),
            img.proc
                + syms
                    .size_of(syms.type_named("struct proc").unwrap())
                    .unwrap()
        );
        assert_eq!(p3.field("name").unwrap().as_cstr().unwrap(), "sh");
        assert_eq!(
            p3.field("lock")
                .unwrap()
                .field("locked")
                .unwrap()
                .as_u64()
                .unwrap(),
            1
        );
        assert_eq!(
            p3.field("context")
                .unwrap()
                .field("sp")
                .unwrap()
                .as_u64()
                .unwrap(),
            P3_KSTACK + 0xf80
        );
        assert_eq!(p3.field("ofile").unwrap().items().len(), 16);
        assert_eq!(
            procs
                .index(1)
                .unwrap()
                .field("name")
                .unwrap()
                .as_cstr()
                .unwrap(),
            "init"
        );
        assert_eq!(
            procs.index(1).unwrap().field("state").unwrap().variant(),
            Some("SLEEPING")
        );
        assert_eq!(
            procs.index(0).unwrap().field("state").unwrap().variant(),
            Some("UNUSED")
        );
        // An unknown enum value still loads, with its number.
        let bad = procs.index(4).unwrap().field("state").unwrap();
        assert_eq!(bad.variant(), None);
        assert_eq!(bad.as_i64().unwrap(), 9);
        assert_eq!(bad.to_string(), "<unknown enum procstate 9>");
        // Errors name what is missing.
        assert_eq!(
            p3.field("kstak").unwrap_err().to_string(),
            "no field `kstak` in `struct proc` (fields: lock, state, chan, killed, xstate, pid, parent, \
             kstack, sz, pagetable, trapframe, context, ofile, cwd, name)"
        );
        assert_eq!(
            procs.index(64).unwrap_err().to_string(),
            "index 64 out of range for `array` (64 elements)"
        );

        let cpus = syms.load_global(&mut img.mem, "cpus").unwrap();
        assert_eq!(cpus.items().len(), 8);
        assert_eq!(
            cpus.index(1)
                .unwrap()
                .field("proc")
                .unwrap()
                .as_addr()
                .unwrap(),
            img.proc + 3 * 360
        );
        assert_eq!(
            cpus.index(1)
                .unwrap()
                .field("noff")
                .unwrap()
                .as_i64()
                .unwrap(),
            1
        );
        let kmem = syms.load_global(&mut img.mem, "kmem").unwrap();
        assert_eq!(
            kmem.field("freelist").unwrap().as_addr().unwrap(),
            0x8700_0000
        );
        let kpt = syms.load_global(&mut img.mem, "kernel_pagetable").unwrap();
        assert_eq!(kpt.as_addr().unwrap(), KPT);
        assert!(!syms
            .load_global(&mut img.mem, "panicked")
            .unwrap()
            .as_bool()
            .unwrap());
        assert_eq!(
            syms.load_global(&mut img.mem, "banner")
                .unwrap()
                .as_cstr()
                .unwrap(),
            "xv6 kernel is booting"
        );
        let _ = img.cpus;
    }
}

#[test]
fn reflection_of_arrays_unions_bitfields_and_qualifiers() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        let mut img = image(&syms);
        let s = syms.load_global(&mut img.mem, "shapes").unwrap();
        let grid = s.field("grid").unwrap();
        assert_eq!(grid.items().len(), 3);
        assert_eq!(grid.index(2).unwrap().items().len(), 4);
        assert_eq!(
            grid.index(2).unwrap().index(3).unwrap().as_i64().unwrap(),
            -5
        );
        assert_eq!(
            grid.index(1).unwrap().index(0).unwrap().as_i64().unwrap(),
            300
        );
        assert_eq!(
            s.field("csr").unwrap().as_u64().unwrap(),
            0x8000_0000_0000_8000
        );
        let w = s.field("w").unwrap();
        assert_eq!(
            w.field("u").unwrap().as_u64().unwrap(),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            w.field("half").unwrap().index(0).unwrap().as_u64().unwrap(),
            0x5566_7788
        );
        assert_eq!(
            w.field("bytes")
                .unwrap()
                .index(7)
                .unwrap()
                .as_u64()
                .unwrap(),
            0x11
        );
        assert_eq!(s.field("flags").unwrap().as_u64().unwrap(), 5, "{f}");
        assert_eq!(s.field("mode").unwrap().as_u64().unwrap(), 17, "{f}");
        assert!(s.field("ok").unwrap().as_bool().unwrap());
        assert_eq!(s.field("delta").unwrap().as_i64().unwrap(), -3);
        let states = s.field("states").unwrap();
        assert_eq!(states.index(0).unwrap().variant(), Some("UNUSED"));
        assert_eq!(states.index(1).unwrap().variant(), Some("ZOMBIE"));
        let _ = img.shapes;
    }
}

#[test]
fn absurd_sizes_are_refused() {
    let syms = Symbols::open(fixture("xv6_like.elf")).unwrap();
    let huge = syms.type_named("huge_t").unwrap();
    assert_eq!(syms.size_of(huge).unwrap(), 360_000_000_000);
    let mut mem = syms.file_memory();
    let err = syms.load(&mut mem, 0x8000_0000, huge).unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to load `huge_t` at 0x80000000: 360000000000 bytes (the limit is 16 MiB)"
    );
    // The same through decode() of bytes the caller already has.
    let err = syms.decode(huge, &[0u8; 64]).unwrap_err();
    assert!(err.to_string().contains("1000000000 elements"), "{err}");
    // A struct decoded from too few bytes is an error, not a panic.
    let proc_t = syms.type_named("struct proc").unwrap();
    let err = syms.decode(proc_t, &[0u8; 100]).unwrap_err();
    assert!(
        err.to_string().contains("lies outside `struct proc`"),
        "{err}"
    );
    // A memory that fails mid-way is reported with its address.
    let err = syms.load_global(&mut NoMemory, "proc").unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read 23040 bytes at 0x"),
        "{err}"
    );
}

fn eval(syms: &Symbols, mem: &mut dyn Memory, text: &str) -> Result<u64, String> {
    syms.eval_address(text, mem).map_err(|e| e.to_string())
}

#[test]
fn expressions_evaluate_against_memory() {
    for f in FIXTURES {
        let syms = Symbols::open(fixture(f)).unwrap();
        let mut img = image(&syms);
        let m = &mut img.mem;
        let at = |name: &str| syms.elf_symbol(name).unwrap().addr;
        let psize = 360;
        assert_eq!(eval(&syms, m, "0x80001000"), Ok(0x8000_1000));
        assert_eq!(eval(&syms, m, "kernel_pagetable"), Ok(KPT));
        assert_eq!(
            eval(&syms, m, "&kernel_pagetable"),
            Ok(at("kernel_pagetable"))
        );
        assert_eq!(eval(&syms, m, "etext"), Ok(at("etext")));
        assert_eq!(
            eval(&syms, m, "trampoline+0x40"),
            Ok(at("trampoline") + 0x40)
        );
        assert_eq!(
            eval(&syms, m, "trampoline + 0x40 - 8"),
            Ok(at("trampoline") + 0x38)
        );
        assert_eq!(eval(&syms, m, "proc[3].kstack"), Ok(P3_KSTACK));
        assert_eq!(eval(&syms, m, "&proc[2]"), Ok(img.proc + 2 * psize));
        assert_eq!(eval(&syms, m, "proc[2]"), Ok(img.proc + 2 * psize));
        assert_eq!(eval(&syms, m, "proc"), Ok(img.proc));
        assert_eq!(eval(&syms, m, "cpus[1].proc->pid"), Ok(7));
        assert_eq!(eval(&syms, m, "cpus[1].proc->parent->pid"), Ok(1));
        assert_eq!(eval(&syms, m, "(*cpus[1].proc).pid"), Ok(7));
        assert_eq!(eval(&syms, m, "cpus[1].proc[0].pid"), Ok(7));
        assert_eq!(
            eval(&syms, m, "proc[3].name"),
            Ok(img.proc + 3 * psize + 344)
        );
        assert_eq!(
            eval(&syms, m, "&proc[3].context.sp"),
            Ok(img.proc + 3 * psize + 96 + 8)
        );
        assert_eq!(eval(&syms, m, "proc[3].context.sp"), Ok(P3_KSTACK + 0xf80));
        assert_eq!(eval(&syms, m, "proc[3].state"), Ok(4));
        assert_eq!(eval(&syms, m, "proc[3].xstate"), Ok(u64::MAX));
        assert_eq!(eval(&syms, m, "*proc[3].lock.name"), Ok(u64::from(b'x')));
        assert_eq!(eval(&syms, m, "proc[3].lock.name[4]"), Ok(u64::from(b'k')));
        assert_eq!(eval(&syms, m, "cpus[cpus[1].noff].proc->pid"), Ok(7));
        assert_eq!(eval(&syms, m, "kmem.freelist"), Ok(0x8700_0000));
        // xv6_initproc.c sees `struct proc` only as a declaration; its
        // definition comes from xv6_like.c's unit.
        assert_eq!(eval(&syms, m, "initproc->pid"), Ok(7));
        assert_eq!(
            eval(&syms, m, "initproc[0].context.sp"),
            Ok(P3_KSTACK + 0xf80)
        );
        assert_eq!(eval(&syms, m, "shapes.grid[2][3]"), Ok((-5i64) as u64));

        // Places keep their types for the caller.
        let Ok(Evaluated::Place { addr, ty: Some(ty) }) = syms.eval("cpus[1].proc->name", m) else {
            panic!("not a typed place")
        };
        assert_eq!(addr, img.proc + 3 * psize + 344);
        assert_eq!(syms.load(m, addr, ty).unwrap().as_cstr().unwrap(), "sh");

        // Errors name the part that failed.
        assert_eq!(
            eval(&syms, m, "proc[3].kstak"),
            Err("no field `kstak` in `struct proc` (fields: lock, state, chan, killed, xstate, pid, parent, \
                 kstack, sz, pagetable, trapframe, context, ofile, cwd, name)"
                .into())
        );
        assert_eq!(
            eval(&syms, m, "proc[70]"),
            Err("index 70 out of range for `proc` (64 elements)".into())
        );
        assert_eq!(
            eval(&syms, m, "proc[-1]"),
            Err("index -1 out of range for `proc` (64 elements)".into())
        );
        assert_eq!(
            eval(&syms, m, "proc[3].ofile[16]"),
            Err("index 16 out of range for `proc[3].ofile` (16 elements)".into())
        );
        assert_eq!(
            eval(&syms, m, "cpus[2].proc->pid"),
            Err("`cpus[2].proc` is null".into())
        );
        assert_eq!(
            eval(&syms, m, "*proc[3].ofile[0]"),
            Err("`proc[3].ofile[0]` is null".into())
        );
        assert_eq!(
            eval(&syms, m, "cpus[1].proc.pid"),
            Err("`cpus[1].proc` is a pointer (`struct proc *`); use `cpus[1].proc->pid`".into())
        );
        assert_eq!(eval(&syms, m, "proc->pid"), Ok(0)); // an array decays, as in C
        assert_eq!(
            eval(&syms, m, "proc[3].pid->x"),
            Err("`proc[3].pid` is not a pointer (it is `int`)".into())
        );
        assert_eq!(
            eval(&syms, m, "etext[1]"),
            Err(
                "`etext` has no DWARF type (an ELF symbol only): it can only be used as an address"
                    .into()
            )
        );
        assert_eq!(
            eval(&syms, m, "proc[3].chan->x"),
            Err("`proc[3].chan` is null".into())
        );
        assert_eq!(
            eval(&syms, m, "shapes.flags"),
            Err("`shapes.flags` is a bit-field: it has no address of its own".into())
        );
        assert_eq!(
            eval(&syms, m, "&3"),
            Err("cannot take the address of `3`: it is a value, not an object in memory".into())
        );
        assert_eq!(
            eval(&syms, m, "kmem.freelist->next"),
            Err("cannot read `kmem.freelist->next`: cannot read 8 bytes at 0x87000000: not in the memory image".into())
        );
        assert_eq!(
            eval(&syms, m, "prc[1]"),
            Err("no symbol `prc` (neither a DWARF variable nor an ELF symbol)".into())
        );
        assert_eq!(
            eval(&syms, m, "proc[3"),
            Err("cannot parse `proc[3`: expected `]` at column 7".into())
        );
    }
}

#[test]
fn expressions_without_memory_need_no_reads_for_addresses() {
    let syms = Symbols::open(fixture("xv6_like.elf")).unwrap();
    let proc = syms.elf_symbol("proc").unwrap().addr;
    assert_eq!(
        syms.eval_address("&proc[2]", &mut NoMemory).unwrap(),
        proc + 720
    );
    assert_eq!(
        syms.eval_address("&proc[2].kstack", &mut NoMemory).unwrap(),
        proc + 720 + 64
    );
    assert_eq!(
        syms.eval_address("kernel_pagetable", &mut NoMemory).unwrap_err().to_string(),
        format!(
            "cannot read `kernel_pagetable`: cannot read 8 bytes at {:#x}: no target memory (give a live target or a snapshot)",
            syms.elf_symbol("kernel_pagetable").unwrap().addr
        )
    );
}

/// The ELF with its `.debug_info` renamed away, as `strip --strip-debug`
/// would leave it for our purposes.
fn without_debug_info() -> Vec<u8> {
    let mut bytes = std::fs::read(fixture("xv6_like.elf")).unwrap();
    let needle = b".debug_info\0";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at..at + needle.len()].copy_from_slice(b".nodbg_info\0");
    bytes
}

#[test]
fn no_debug_info_is_a_clear_error_and_elf_symbols_still_work() {
    let syms = Symbols::from_bytes("kernel.elf", without_debug_info()).unwrap();
    assert!(!syms.has_debug_info());
    let msg = "kernel.elf has no DWARF debug info; build with debug = 2 / gcc -g";
    assert_eq!(syms.type_named("struct proc").unwrap_err().to_string(), msg);
    assert_eq!(
        syms.load_global(&mut NoMemory, "proc")
            .unwrap_err()
            .to_string(),
        msg
    );
    assert_eq!(
        syms.eval_address("proc[3].kstack", &mut NoMemory)
            .unwrap_err()
            .to_string(),
        msg
    );
    assert_eq!(syms.lines(0x8000_0000).unwrap_err().to_string(), msg);
    let proc = syms.global("proc").unwrap();
    assert_eq!((proc.ty, proc.size), (None, Some(23040)));
    assert_eq!(
        syms.eval_address("etext", &mut NoMemory).unwrap(),
        syms.elf_symbol("etext").unwrap().addr
    );
    assert_eq!(
        syms.symbolize(syms.elf_symbol("kalloc").unwrap().addr + 2)
            .unwrap()
            .0,
        "kalloc"
    );
}

#[test]
fn not_an_elf_is_a_clear_error() {
    let err = Symbols::from_bytes("notes.txt", b"hello, world".to_vec()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notes.txt is not a readable ELF file: "),
        "{err}"
    );
    let err = Symbols::open("/nonexistent/kernel.elf").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/kernel.elf: "),
        "{err}"
    );
    // Truncated ELFs fail cleanly at every length tried.
    let bytes = std::fs::read(fixture("xv6_like.elf")).unwrap();
    for len in (0..bytes.len()).step_by(997) {
        if let Ok(s) = Symbols::from_bytes("cut.elf", bytes[..len].to_vec()) {
            let _ = s.global("proc");
            let _ = s.eval_address("cpus[1].proc->pid", &mut NoMemory);
            let _ = s.lines(0x8000_0000);
        }
    }
}

#[test]
fn corrupt_debug_info_does_not_panic() {
    // Flip bytes inside .debug_info and .debug_abbrev (where a flip changes
    // what gimli parses); every query must return (Ok or Err), never panic,
    // overflow or hang.
    use object::{Object, ObjectSection};
    let clean = std::fs::read(fixture("xv6_like.elf")).unwrap();
    let ranges: Vec<(usize, usize)> = {
        let file = object::File::parse(&*clean).unwrap();
        [".debug_info", ".debug_abbrev"]
            .iter()
            .map(|n| {
                let (off, len) = file.section_by_name(n).unwrap().file_range().unwrap();
                (off as usize, len as usize)
            })
            .collect()
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // KINSPECT_FUZZ_ROUNDS=N runs longer by hand.
    let rounds = std::env::var("KINSPECT_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    for round in 0..rounds {
        let mut bytes = clean.clone();
        let (off, len) = ranges[round % ranges.len()];
        for _ in 0..1 + round % 4 {
            let r = next();
            bytes[off + (r as usize) % len] ^= (r >> 32) as u8 | 1;
        }
        let Ok(s) = Symbols::from_bytes("fuzz.elf", bytes) else {
            continue;
        };
        let mut mem = s.file_memory();
        for name in ["proc", "cpus", "shapes", "kmem", "initproc"] {
            if let Ok(v) = s.load_global(&mut mem, name) {
                let _ = v.to_string();
            }
        }
        let _ = s.eval_address("cpus[1].proc->pid", &mut mem);
        let _ = s.eval_address("initproc->context.sp", &mut mem);
        if let Ok(t) = s.type_named("struct shapes") {
            let _ = s.field_offset(t, "w.half[1]");
            let _ = s.size_of(t);
        }
        let _ = s.type_named("struct proc").map(|t| s.type_name(t));
        let _ = s.lines(0x8000_0040);
    }
}

/// Rebuild the C fixture with the cross compiler, when it is installed,
/// and check the fresh ELF still loads and agrees with gcc's offsetof.
#[test]
fn fixture_rebuilds_with_riscv64_gcc() {
    let have_gcc = std::process::Command::new("riscv64-linux-gnu-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_gcc {
        println!("note: riscv64-linux-gnu-gcc not on PATH; using the committed fixtures only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("kinspect-symbols-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("sh")
        .arg(fixture("build.sh"))
        .arg(&dir)
        .arg("c")
        .status()
        .unwrap();
    assert!(status.success(), "build.sh failed");
    for f in FIXTURES {
        let syms = Symbols::open(dir.join(f)).unwrap();
        let l = oracle(&syms);
        let proc_t = syms.type_named("struct proc").unwrap();
        assert_eq!(syms.size_of(proc_t).unwrap(), l[PROC_SIZE]);
        for (i, field) in PROC_FIELDS.iter().enumerate() {
            assert_eq!(
                syms.field_offset(proc_t, field).unwrap().0,
                l[1 + i],
                "{f}: {field}"
            );
        }
        assert_eq!(
            syms.global("proc").unwrap().addr,
            syms.elf_symbol("proc").unwrap().addr
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_are_one_line() {
    let syms = Symbols::open(fixture("xv6_like.elf")).unwrap();
    let errors: Vec<SymbolError> = vec![
        syms.global("x").unwrap_err(),
        syms.eval("proc[", &mut NoMemory).unwrap_err(),
        syms.eval("proc[1].x", &mut NoMemory).unwrap_err(),
        syms.eval("cpus[0].proc->pid", &mut NoMemory).unwrap_err(),
    ];
    for e in errors {
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}
