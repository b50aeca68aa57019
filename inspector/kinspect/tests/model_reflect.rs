//! The kernel model's DWARF reflection: on the gcc C fixtures (stock,
//! pgtbl-lab, NPROC 256/1024) and on this repository's kernel ELF, read
//! from the ELF's own initial image (what QEMU loads before the first
//! instruction), so no QEMU is needed.

mod model_common;

use kinspect::model::{Kernel, PhysCache, ProcState, Profile};
use kinspect::target::memory::MemoryTarget;
use kinspect_sv39::Ram;
use kinspect_symbols::Symbols;
use model_common::*;

#[test]
fn the_c_fixtures_are_found_by_name() {
    for (elf, nproc) in [
        ("xv6_c.elf", 64),
        ("xv6_c_nproc256.elf", 256),
        ("xv6_c_nproc1024.elf", 1024),
    ] {
        let syms = Symbols::open(fixture(elf)).unwrap();
        let k = Kernel::new(&syms, Profile::default()).unwrap();
        assert_eq!(k.nproc(), nproc, "{elf}");
        assert!(k.kpt_candidates().is_empty(), "{elf}");
    }
    let syms = Symbols::open(fixture("xv6_lab.elf")).unwrap();
    // A lab kernel's field is found by its type, whatever its name.
    let k = Kernel::new(&syms, Profile::default()).unwrap();
    assert_eq!(k.kpt_candidates(), ["kernelpt_root"]);
    let k = Kernel::new(&syms, Profile::default().with_kpt_field("kernelpt_root")).unwrap();
    assert_eq!(k.kpt_candidates(), ["kernelpt_root"]);
    let k = Kernel::new(&syms, Profile::default().with_kpt_field("none")).unwrap();
    assert!(k.kpt_candidates().is_empty());
    let e = Kernel::new(&syms, Profile::default().with_kpt_field("nope"))
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("--kpt-field: no field `nope` in `struct proc`"),
        "{e}"
    );
}

#[test]
fn the_c_fixtures_state_decodes_at_gccs_offsets() {
    let mut b = scene("xv6_c.elf");
    let syms = Symbols::open(fixture("xv6_c.elf")).unwrap();
    let k = Kernel::new(&syms, Profile::builtin("xv6-riscv").unwrap()).unwrap();
    let mut phys = PhysCache::new(&mut b.t);
    let s = k.read_state(&mut phys, Ram::default()).unwrap();
    assert_eq!(s.procs.len(), 64);
    assert_eq!(s.proc_size, b.l.proc_size);
    let live: Vec<(usize, i64, ProcState, &str)> = s
        .live()
        .map(|p| (p.slot, p.pid, p.state.clone(), p.name.as_str()))
        .collect();
    assert_eq!(
        live,
        [
            (0, 1, ProcState::Sleeping, "init"),
            (1, 2, ProcState::Sleeping, "sh"),
            (2, 3, ProcState::Running, "cat"),
            (5, 4, ProcState::Zombie, "zombie")
        ]
    );
    assert_eq!(s.cpus.len(), 8);
    assert_eq!(s.hart_of(2), Some(1));
    assert_eq!(s.procs[2].parent_slot, Some(1));
    let fl = k.free_list(&mut phys, Ram::default()).unwrap().unwrap();
    let free: Vec<u64> = fl.pages.iter().map(|p| p.0).collect();
    assert_eq!(free, b.made.free);
    assert_eq!(fl.problem, None);
}

#[test]
fn this_kernels_objects_are_found_by_name() {
    let elf = kinspect_testkit::root().join("target/kernel/kernel.elf");
    if !elf.exists() {
        eprintln!("{} not built (cargo xtask build): skipping", elf.display());
        return;
    }
    let syms = Symbols::open(&elf).unwrap();
    let k = Kernel::new(&syms, Profile::default()).unwrap();
    assert_eq!(k.nproc(), 64);
    assert_eq!(k.kpt_candidates(), ["kpagetable"]);
    // The image QEMU loads, before the kernel has run: every slot UNUSED,
    // no page tables yet, and the code is what the ELF says.
    let mut t = MemoryTarget::default();
    let end = syms.global("end").unwrap().addr;
    let mut image = syms.file_memory();
    let mut a = 0x8000_0000u64;
    while a < end {
        let mut page = [0u8; 4096];
        for (i, chunk) in page.chunks_mut(8).enumerate() {
            let _ = kinspect_symbols::Memory::read(&mut image, a + 8 * i as u64, chunk);
        }
        t.mem.write(a, &page);
        a += 4096;
    }
    let mut phys = PhysCache::new(&mut t);
    let s = k.read_state(&mut phys, Ram::default()).unwrap();
    assert_eq!(s.procs.len(), 64);
    assert!(s.procs.iter().all(|p| p.state == ProcState::Unused));
    assert_eq!(s.kernel_pagetable.0, 0);
    assert_eq!(s.cpus.len(), 8);
    assert_eq!(s.kpagetable_field.as_deref(), Some("kpagetable"));
    assert_eq!(
        s.proc_size,
        syms.size_of(syms.type_named("Proc").unwrap()).unwrap()
    );
}

#[test]
fn the_committed_fixtures_rebuild_from_their_source() {
    let have_gcc = std::process::Command::new("riscv64-linux-gnu-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_gcc {
        eprintln!("riscv64-linux-gnu-gcc not installed: skipping the fixture rebuild");
        return;
    }
    let dir = std::env::temp_dir().join(format!("kinspect-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("sh")
        .arg(fixture("build.sh"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    for elf in [
        "xv6_c.elf",
        "xv6_lab.elf",
        "xv6_c_nproc256.elf",
        "xv6_c_nproc1024.elf",
    ] {
        let fresh = Symbols::open(dir.join(elf)).unwrap();
        let committed = Symbols::open(fixture(elf)).unwrap();
        // same layout as the committed file (gcc's offsetof table)
        assert_eq!(
            format!("{:?}", layout(&fresh)),
            format!("{:?}", layout(&committed)),
            "{elf}"
        );
        let k = Kernel::new(
            &fresh,
            Profile::default().with_kpt_field(if elf == "xv6_lab.elf" {
                "kernelpt_root"
            } else {
                "none"
            }),
        )
        .unwrap();
        assert_eq!(k.nproc(), layout(&fresh).nproc, "{elf}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
