//! Golden tests over a committed, sparse snapshot of the real kernel just
//! after `kfault remap`: only the pages the commands below read were kept
//! (a few dozen of 32768), so the fixture is small, and every command must
//! print exactly what it printed on the live machine when the fixture was
//! made (the golden files beside it).
//!
//! Regenerate (after a kernel change that matters) with
//! `cargo test -p kinspect --test snapshot_fixture -- --ignored`.

use std::path::PathBuf;
use std::time::Duration;

use kinspect::cli::run_args_on;
use kinspect::snapshot::capture::{capture, Options, Recording};
use kinspect::snapshot::format;
use kinspect::target::qemu::QemuTarget;
use kinspect::target::snapshot::SnapshotTarget;
use kinspect::target::Target;
use kinspect_testkit::Machine;

/// The commands the fixture serves, and their golden file names. No ELF
/// is given, so the outputs do not depend on a kernel build.
const COMMANDS: &[(&str, &[&str])] = &[
    ("satp", &["satp"]),
    ("regs-0", &["regs", "--hart", "0"]),
    ("regs-1", &["regs", "--hart", "1"]),
    ("regs-2", &["regs", "--hart", "2"]),
    ("maps-0", &["maps", "--hart", "0"]),
    ("maps-1", &["maps", "--hart", "1"]),
    ("maps-2", &["maps", "--hart", "2"]),
    // vmprint of the kernel's table is 30,000 lines: walked by maps above.
    (
        "translate-trampoline",
        &["translate", "0x3ffffff000", "--explain"],
    ),
    ("json-maps-2", &["--json", "maps", "--hart", "2"]),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn run(target: &mut dyn Target, args: &[&str]) -> (i32, String, String) {
    // No --elf: the tests run in inspector/kinspect, where the default
    // target/kernel/kernel.elf does not exist, so no symbols are used.
    let mut argv = vec!["kinspect"];
    argv.extend(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_args_on(&argv, target, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
#[ignore = "regenerates the committed fixture from a live QEMU"]
fn regenerate_fixture() {
    let mut m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(60));
    let mark = m.console_len();
    m.send(b"kfault enable\nkfault remap\n");
    m.wait_for_after(mark, "    at src/vm.rs:", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    m.pause();
    let mut live = QemuTarget::connect(&m.gdb_addr()).unwrap();
    let mut rec = Recording {
        inner: &mut live,
        pages: Default::default(),
    };
    std::fs::create_dir_all(dir().join("remap-sparse")).unwrap();
    for (name, args) in COMMANDS {
        let (code, out, _) = run(&mut rec, args);
        assert_eq!(code, 0, "{name}");
        std::fs::write(dir().join("remap-sparse").join(format!("{name}.txt")), out).unwrap();
    }
    let pages = rec.pages.clone();
    let opts = Options {
        ram: kinspect_sv39::Ram {
            base: kinspect_sv39::PhysAddr(0x8000_0000),
            size: 128 << 20,
        },
        kernel: None,
        pages: Some(pages),
        pmemsave: false,
    };
    let (snap, _) = capture(&mut live, &opts).unwrap();
    format::write(&snap, &dir().join("remap-sparse.kisnap"), 9).unwrap();
    live.finish().unwrap();
}

#[test]
fn the_sparse_fixture_prints_what_the_live_machine_printed() {
    let path = dir().join("remap-sparse.kisnap");
    let mut t = SnapshotTarget::open(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 64 * 1024, "the fixture grew to {size} bytes");
    let saved = t.snapshot().present_pages();
    assert!((10..2000).contains(&saved), "{saved} pages saved");
    assert!(t.meta().notes.iter().any(|n| n.starts_with("sparse:")));
    for (name, args) in COMMANDS {
        let golden =
            std::fs::read_to_string(dir().join("remap-sparse").join(format!("{name}.txt")))
                .unwrap();
        let (code, out, err) = run(&mut t, args);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out, golden, "{name} differs from the live run");
    }
    // A page the fixture did not keep is an error, never zeros.
    let mut b = [0u8; 8];
    assert!(t.read_phys(0x8700_0000, &mut b).is_err());
}
