//! gdb-scripts/kinspect.py on a C xv6 kernel: the fake C xv6 machine of
//! the model tests (a gcc -g fixture, laid out at gcc's own offsets) is
//! saved as a snapshot, served to the real gdb-multiarch by `kinspect
//! serve`, and the gdb views read it through gdb's C symbols and types.

mod model_common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kinspect_testkit::gdb_batch_with;
use model_common::*;

const ELF: &str = "xv6_c.elf";

struct Served {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Save the builder's machine (only the pages it wrote) and serve it.
fn serve(b: &mut Builder) -> Served {
    let port = kinspect_qemu::free_tcp_port().expect("a free port");
    let dir = std::env::temp_dir().join(format!("kinspect-gdb-c-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("c-xv6.kisnap");
    save_snapshot(b, ELF, &file);
    let child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--elf")
        .arg(fixture(ELF))
        .arg("serve")
        .arg(&file)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kinspect serve");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "kinspect serve never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { child, addr, dir }
}

#[test]
fn the_gdb_views_read_a_c_xv6_kernel() {
    let mut b = scene(ELF);
    let kstack_pa_sh = b.made.kstack_pa[&1];
    let served = serve(&mut b);
    let out = gdb_batch_with(
        &fixture(ELF),
        &served.addr,
        &[
            "kprocs",
            "kvmprint 2",
            "ktranslate proc[1].kstack 2 kernel",
            "ktranslate proc[1].kstack-4096 kernel",
        ],
    );
    // The scene's processes, read through gdb's C types (enum procstate, char name[16]).
    let rows: Vec<(i64, String, String)> = out[0]
        .lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((
                w.get(1)?.parse().ok()?,
                w.get(2)?.to_string(),
                w.get(3)?.to_string(),
            ))
        })
        .collect();
    let want: Vec<(i64, String, String)> = [
        (1, "SLEEPING", "init"),
        (2, "SLEEPING", "sh"),
        (3, "RUNNING", "cat"),
        (4, "ZOMBIE", "zombie"),
    ]
    .iter()
    .map(|(p, s, n)| (*p, s.to_string(), n.to_string()))
    .collect();
    assert_eq!(rows, want, "kprocs on C xv6:\n{out}");
    // sh's user page table, walked in gdb, is the one the builder made.
    let (user_root, _, _, _) = b.made.user[&1];
    assert!(
        out[1].starts_with(&format!("page table 0x{user_root:016x}\n")),
        "kvmprint 2:\n{out}"
    );
    // C xv6 has no per-process kernel page table: `2 kernel` falls back to
    // kernel_pagetable, where sh's kernel stack is mapped to the page the
    // builder gave it, and the guard page below it is not mapped.
    assert!(out[2].contains("kernel_pagetable"), "{out}");
    assert!(
        out[2].contains(&format!("pa 0x{kstack_pa_sh:016x}")),
        "{out}"
    );
    assert!(out[3].contains("invalid: not mapped"), "{out}");
}
