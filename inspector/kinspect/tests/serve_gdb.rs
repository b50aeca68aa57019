//! Stock `gdb-multiarch` in batch mode against `kinspect serve`: harts as
//! threads, registers, virtual and physical memory, and a monitor command,
//! checked against the snapshot's own contents and QEMU's `xp` of the
//! machine the snapshot was taken of (still paused at the same moment).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kinspect_testkit::{json_u64, kernel_elf, Machine};

const WAIT: Duration = Duration::from_secs(60);

fn kinspect(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(args)
        .output()
        .expect("running kinspect");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Kills the server by PID when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn gdb_reads_registers_memory_and_runs_a_view_from_a_served_snapshot() {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    m.pause();
    let elf = kernel_elf();
    let elf = elf.to_str().unwrap();
    let file = std::env::temp_dir().join(format!("kinspect-serve-{}.kisnap", std::process::id()));
    let file_s = file.to_str().unwrap();
    let (code, _, err) = kinspect(&[
        "--gdb",
        &m.gdb_addr(),
        "--elf",
        elf,
        "snapshot",
        "-o",
        file_s,
    ]);
    assert_eq!(code, 0, "{err}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--elf", elf, "serve", file_s, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kinspect serve");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .to_string();

    // What the snapshot says, through kinspect's own offline commands.
    let regs = |h: &str| -> serde_json::Value {
        let (c, o, e) = kinspect(&[
            "--snapshot",
            file_s,
            "--elf",
            elf,
            "--json",
            "regs",
            "--hart",
            h,
        ]);
        assert_eq!(c, 0, "{e}");
        serde_json::from_str(&o).unwrap()
    };
    let r1 = regs("1");
    let (_, maps0, _) = kinspect(&["--snapshot", file_s, "--elf", elf, "maps", "--hart", "0"]);
    let kpt = {
        use object::{Object, ObjectSymbol};
        let data = std::fs::read(elf).unwrap();
        let f = object::File::parse(&*data).unwrap();
        let s = f
            .symbols()
            .find(|s| s.name() == Ok("kernel_pagetable"))
            .unwrap();
        s.address()
    };
    // QEMU's own reading of the same memory (the machine is still paused).
    let xp = m.hmp(0, &format!("xp /1gx {kpt:#x}"));
    let root = xp.split(':').nth(1).unwrap().trim().to_string();
    let xp_text = m.hmp(0, "xp /2gx 0x80000000");
    let text: Vec<String> = xp_text
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();

    let out = Command::new("gdb-multiarch")
        .args(["-nx", "-batch", elf])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", "info threads"])
        .args(["-ex", "thread 2"])
        .args(["-ex", "p/x $pc"])
        .args(["-ex", "p/x $sp"])
        .args(["-ex", "x/2gx 0x80000000"])
        .args(["-ex", "monitor phys on"])
        .args(["-ex", &format!("x/1gx {kpt:#x}")])
        .args(["-ex", "monitor maps --hart 0"])
        .args(["-ex", "detach"])
        .output()
        .expect("running gdb-multiarch");
    let text_out = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    drop(server);
    let _ = std::fs::remove_file(&file);

    assert!(
        text_out.contains("Thread 1.3"),
        "three harts as threads:\n{text_out}\n{err}"
    );
    assert!(!text_out.contains("Thread 1.4"), "{text_out}");
    let pc = format!("$1 = {:#x}", json_u64(&r1["pc"]).unwrap());
    assert!(
        text_out.contains(&pc),
        "hart 1's pc {pc}:\n{text_out}\n{err}"
    );
    let sp = format!("$2 = {:#x}", json_u64(&r1["gprs"][1]["value"]).unwrap());
    assert!(text_out.contains(&sp), "hart 1's sp {sp}:\n{text_out}");
    // Kernel text, read virtually through hart 1's satp, equals QEMU's xp.
    let line = text_out
        .lines()
        .find(|l| l.starts_with("0x80000000"))
        .unwrap_or_else(|| panic!("no x/2gx line:\n{text_out}\n{err}"));
    for word in &text {
        assert!(line.contains(word.as_str()), "{line} vs xp {text:?}");
    }
    // kernel_pagetable, read physically, equals QEMU's xp.
    let line = text_out
        .lines()
        .find(|l| l.starts_with(&format!("{kpt:#x}")))
        .unwrap_or_else(|| panic!("no x/1gx line:\n{text_out}"));
    assert!(line.ends_with(&root), "{line} vs xp {root}");
    // The monitor command prints what `kinspect --snapshot maps` prints
    // (gdb writes monitor output to its stderr in batch mode).
    assert!(maps0.lines().count() > 5, "{maps0}");
    assert!(err.contains("addresses are physical"), "{err}");
    assert!(
        err.contains(&maps0),
        "monitor maps:\n{text_out}\nstderr:\n{err}\nexpected:\n{maps0}"
    );
}
