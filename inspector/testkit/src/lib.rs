//! The harness every QEMU-booting test and benchmark shares.
//!
//! [`Machine::boot`] starts the kernel that `cargo xtask build` left in
//! `target/kernel/` under the real `qemu-system-riscv64`, with xv6-riscv's
//! command line plus:
//!
//! - a gdb stub on a free loopback port ([`Machine::gdb_addr`]),
//! - a QMP socket, so a test can ask QEMU's own monitor (`info mem`,
//!   `gva2gpa`, ...) as an oracle independent of kinspect ([`Machine::hmp`]),
//! - the console captured ([`Machine::wait_for`]) and writable ([`Machine::send`]),
//! - a private copy of fs.img (QEMU locks its image for writing).
//!
//! Dropping the `Machine` kills QEMU by PID and removes its files.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kinspect_qemu::{free_tcp_port, VirtMachine};

pub mod xv6;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives in inspector/testkit")
        .to_path_buf()
}

/// target/kernel/kernel.elf, or a panic telling the reader how to make it.
pub fn kernel_elf() -> PathBuf {
    built("kernel.elf")
}

/// target/kernel/fs.img, or a panic telling the reader how to make it.
pub fn fs_img() -> PathBuf {
    built("fs.img")
}

fn built(name: &str) -> PathBuf {
    let p = root().join("target/kernel").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask build` (or `cargo xtask test`, which builds first)",
        p.display()
    );
    p
}

/// How to boot.
#[derive(Clone, Debug)]
pub struct Boot {
    pub smp: u32,
    /// Freeze at reset until a debugger continues (`-S`).
    pub wait_for_debugger: bool,
    /// Another kernel than target/kernel/kernel.elf.
    pub kernel: Option<PathBuf>,
    /// Another disk than target/kernel/fs.img (a C xv6's own).
    pub fs_img: Option<PathBuf>,
    /// `-global virtio-mmio.force-legacy=false` (false: the 2020 lab trees).
    pub modern_virtio: bool,
    /// This gdb port instead of a free one (a QEMU restarted where a
    /// debugger expects it).
    pub gdb_port: Option<u16>,
    /// Guest RAM in a shared file in /dev/shm, as `cargo xtask qemu` boots
    /// it, so kinspect maps it (false: private RAM, read through
    /// /proc/PID/mem). See docs/fast-path.md.
    pub share_ram: bool,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            smp: 3,
            wait_for_debugger: false,
            kernel: None,
            fs_img: None,
            modern_virtio: true,
            gdb_port: None,
            share_ram: true,
        }
    }
}

#[derive(Default)]
struct Console {
    bytes: Vec<u8>,
    closed: bool,
}

/// A running QEMU with the kernel in it.
pub struct Machine {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<Console>, Condvar)>,
    gdb_port: u16,
    qmp: Option<BufReader<UnixStream>>,
    dir: PathBuf,
    ram_file: Option<PathBuf>,
}

impl Machine {
    /// Boot with xv6's defaults (3 harts, running).
    pub fn start() -> Machine {
        Machine::boot(Boot::default())
    }

    /// Boot QEMU; panics (failing the test) if QEMU cannot be started.
    pub fn boot(opts: Boot) -> Machine {
        let mut last_err = String::new();
        // The free port can be taken between our probe and QEMU's bind.
        for _ in 0..5 {
            match Machine::try_boot(&opts) {
                Ok(m) => return m,
                Err(e) => last_err = e,
            }
        }
        panic!("cannot boot QEMU: {last_err}");
    }

    fn try_boot(opts: &Boot) -> Result<Machine, String> {
        let gdb_port = match opts.gdb_port {
            Some(p) => p,
            None => free_tcp_port().map_err(|e| format!("no free port: {e}"))?,
        };
        let dir =
            std::env::temp_dir().join(format!("kinspect-test-{}-{gdb_port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let img = dir.join("fs.img");
        let src_img = opts.fs_img.clone().unwrap_or_else(fs_img);
        std::fs::copy(&src_img, &img).map_err(|e| format!("copying {}: {e}", src_img.display()))?;
        let qmp_path = dir.join("qmp.sock");
        let kernel = opts.kernel.clone().unwrap_or_else(kernel_elf);
        let mut vm = VirtMachine::new(kernel, &img);
        vm.smp = opts.smp;
        vm.gdb_port = Some(gdb_port);
        vm.wait_for_debugger = opts.wait_for_debugger;
        vm.modern_virtio = opts.modern_virtio;
        if opts.share_ram {
            let ram = VirtMachine::ram_file_path(&format!("test-{gdb_port}"));
            vm.share_ram(&ram)
                .map_err(|e| format!("creating {}: {e}", ram.display()))?;
        }
        let ram_file = vm.ram_file.clone();
        let remove_ram = || {
            if let Some(p) = &ram_file {
                let _ = std::fs::remove_file(p);
            }
        };
        vm.extra_args = vec![
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp_path.display()),
        ];
        let mut child = vm
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                remove_ram();
                format!("spawning {}: {e}", kinspect_qemu::QEMU)
            })?;
        let console = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&console);
        thread::spawn(move || pump(stdout, sink));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stdin = child.stdin.take();

        // QEMU is up once its QMP socket accepts.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                let _ = stderr.read_to_string(&mut err);
                let _ = std::fs::remove_dir_all(&dir);
                remove_ram();
                return Err(format!("QEMU exited at start ({status}): {}", err.trim()));
            }
            if let Ok(s) = UnixStream::connect(&qmp_path) {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dir);
                remove_ram();
                return Err("QEMU's QMP socket never appeared".into());
            }
            thread::sleep(Duration::from_millis(20));
        };
        thread::spawn(move || {
            // Drain stderr so QEMU never blocks on it.
            let mut sink = Vec::new();
            let _ = stderr.read_to_end(&mut sink);
        });
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut m = Machine {
            child,
            stdin,
            console,
            gdb_port,
            qmp: Some(BufReader::new(stream)),
            dir,
            ram_file,
        };
        m.qmp_handshake();
        Ok(m)
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gdb stub's address, as kinspect's `--gdb` takes it.
    pub fn gdb_addr(&self) -> String {
        format!("127.0.0.1:{}", self.gdb_port)
    }

    pub fn gdb_port(&self) -> u16 {
        self.gdb_port
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        let (lock, _) = &*self.console;
        String::from_utf8_lossy(&lock.lock().expect("console lock").bytes).into_owned()
    }

    /// Wait until the console has printed `needle` (anywhere in its whole
    /// output); returns the console so far. Panics with the console's text
    /// on time-out or when QEMU exits first.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_after(0, needle, timeout)
    }

    /// Like [`wait_for`](Self::wait_for), looking only at output after byte `from`.
    pub fn wait_for_after(&self, from: usize, needle: &str, timeout: Duration) -> String {
        let (lock, cv) = &*self.console;
        let deadline = Instant::now() + timeout;
        let mut con = lock.lock().expect("console lock");
        loop {
            let tail = &con.bytes[from.min(con.bytes.len())..];
            if String::from_utf8_lossy(tail).contains(needle) {
                return String::from_utf8_lossy(&con.bytes).into_owned();
            }
            let now = Instant::now();
            if con.closed || now >= deadline {
                let why = if con.closed {
                    "QEMU exited"
                } else {
                    "timed out"
                };
                let printed = String::from_utf8_lossy(&con.bytes).into_owned();
                // Not while holding the lock: the console thread goes on.
                drop(con);
                panic!("{why} waiting for {needle:?} on the console; it printed:\n{printed}");
            }
            con = cv
                .wait_timeout(con, deadline - now)
                .expect("console lock")
                .0;
        }
    }

    /// How many console bytes there are so far (a mark for `wait_for_after`).
    pub fn console_len(&self) -> usize {
        self.console.0.lock().expect("console lock").bytes.len()
    }

    /// Type into the console.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("console stdin");
        stdin.write_all(bytes).expect("writing to QEMU's console");
        stdin.flush().expect("flushing QEMU's console");
    }

    fn qmp_handshake(&mut self) {
        let greeting = self.qmp_line();
        assert!(
            greeting.get("QMP").is_some(),
            "unexpected QMP greeting: {greeting}"
        );
        self.qmp_execute(serde_json::json!({"execute": "qmp_capabilities"}));
    }

    fn qmp_line(&mut self) -> serde_json::Value {
        let qmp = self.qmp.as_mut().expect("QMP connection");
        let mut line = String::new();
        qmp.read_line(&mut line).expect("reading QMP");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad QMP line {line:?}: {e}"))
    }

    fn qmp_execute(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        let qmp = self.qmp.as_mut().expect("QMP connection");
        let mut text = cmd.to_string();
        text.push('\n');
        qmp.get_mut()
            .write_all(text.as_bytes())
            .expect("writing QMP");
        loop {
            let v = self.qmp_line();
            if v.get("event").is_some() {
                continue;
            }
            if let Some(r) = v.get("return") {
                return r.clone();
            }
            panic!("QMP command {cmd} failed: {v}");
        }
    }

    /// Run a human monitor command (`info mem`, `gva2gpa 0x...`) on hart
    /// `cpu` through QMP and return what it printed. This is QEMU's own
    /// view, independent of kinspect.
    pub fn hmp(&mut self, cpu: u32, command: &str) -> String {
        let r = self.qmp_execute(serde_json::json!({
            "execute": "human-monitor-command",
            "arguments": {"command-line": command, "cpu-index": cpu}
        }));
        r.as_str().unwrap_or_default().to_string()
    }

    /// Stop every hart (QMP `stop`), independently of any gdb client.
    pub fn pause(&mut self) {
        self.qmp_execute(serde_json::json!({"execute": "stop"}));
    }

    /// Resume every hart (QMP `cont`).
    pub fn resume(&mut self) {
        self.qmp_execute(serde_json::json!({"execute": "cont"}));
    }

    /// Boot (xv6's defaults) to the shell prompt and start `cats`
    /// background `cat`s: each sleeps reading the console, so the process
    /// table holds init, sh and them, all sleeping, until the test is done.
    pub fn shell_with_background_cats(cats: usize) -> Machine {
        let timeout = Duration::from_secs(90);
        let mut m = Machine::start();
        m.wait_for("$ ", timeout);
        for _ in 0..cats {
            let mark = m.console_len();
            m.send(b"cat &\n");
            m.wait_for_after(mark, "$ ", timeout);
        }
        // Each cat is forked, execs and only then sleeps reading the
        // console: wait until the kernel itself lists init, sh and every
        // cat as sleeping, however long a loaded machine takes.
        let deadline = Instant::now() + timeout;
        loop {
            let listed = m.procdump();
            if listed.len() == cats + 2 && listed.iter().all(|(_, s, _)| s == "sleep") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Ctrl-P never listed init, sh and {cats} cat(s) all sleeping: {listed:?}"
            );
        }
        m
    }

    /// Press Ctrl-P and return the kernel's own process list
    /// (`pid state name`), read once the console has gone quiet.
    pub fn procdump(&mut self) -> Vec<(i64, String, String)> {
        let mark = self.console_len();
        self.send(&[0x10]);
        self.wait_quiet(mark, Duration::from_millis(300), Duration::from_secs(10));
        parse_procdump(&self.console()[mark..])
    }

    /// Wait until the console has printed something after byte `from` and
    /// then nothing for `quiet`; gives up after `timeout`.
    pub fn wait_quiet(&self, from: usize, quiet: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = self.console_len();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            let now = self.console_len();
            if now != last {
                last = now;
                since = Instant::now();
            } else if now > from && since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Wait for QEMU to exit by itself (the test finisher, a kill from a
    /// test); returns its exit code or `None` on time-out.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn pump(mut stdout: impl Read, sink: Arc<(Mutex<Console>, Condvar)>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf).unwrap_or(0);
        let (lock, cv) = &*sink;
        // A test that failed while holding the lock leaves it poisoned;
        // the bytes are still worth keeping.
        let mut con = lock.lock().unwrap_or_else(|e| e.into_inner());
        if n == 0 {
            con.closed = true;
            cv.notify_all();
            return;
        }
        con.bytes.extend_from_slice(&buf[..n]);
        cv.notify_all();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.qmp.take();
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(p) = &self.ram_file {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What one `gdb-multiarch -batch` run printed: each command's stdout
/// (`out[i]`), and the whole stdout and stderr for failure messages
/// (`{out}` prints both).
#[derive(Debug)]
pub struct GdbRun {
    /// The output of each command, in order.
    pub parts: Vec<String>,
    pub stdout: String,
    pub stderr: String,
}

impl std::ops::Index<usize> for GdbRun {
    type Output = String;
    fn index(&self, i: usize) -> &String {
        &self.parts[i]
    }
}

impl std::fmt::Display for GdbRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gdb's stdout:\n{}\ngdb's stderr:\n{}",
            self.stdout, self.stderr
        )
    }
}

/// How long gdb waits for one reply from the stub, and for the TCP
/// connection, in seconds. gdb's defaults (2 s per reply) are a timing
/// assumption that a loaded machine breaks: the stub answers, just late,
/// and gdb gives up with the command's output empty. A halted QEMU always
/// answers, so waiting long costs nothing when it is quick.
pub const GDB_REMOTE_TIMEOUT_S: u32 = 120;

/// Run `gdb-multiarch` in batch mode against `gdb_addr` with the kernel's
/// ELF and `gdb-scripts/kinspect.py` loaded, executing `commands` in order.
/// Each command's output is returned separately (split on markers the
/// helper echoes between commands). Panics if gdb cannot be run, cannot
/// connect, or did not run every command, printing gdb's stdout and stderr.
pub fn gdb_batch(gdb_addr: &str, commands: &[&str]) -> GdbRun {
    gdb_batch_with(&kernel_elf(), gdb_addr, commands)
}

/// [`gdb_batch`] with another kernel ELF than target/kernel/kernel.elf
/// (a C xv6 kernel, a fixture).
pub fn gdb_batch_with(elf: &Path, gdb_addr: &str, commands: &[&str]) -> GdbRun {
    const MARK: &str = "@@kinspect-test-mark@@";
    const CONNECTED: &str = "@@kinspect-test-connected@@";
    let mut cmd = std::process::Command::new("gdb-multiarch");
    cmd.current_dir(root())
        .args([
            "-nx",
            "-batch",
            "-ex",
            "set architecture riscv:rv64",
            "-ex",
            "set confirm off",
        ])
        .arg("-ex")
        .arg(format!("set remotetimeout {GDB_REMOTE_TIMEOUT_S}"))
        .arg("-ex")
        .arg(format!("set tcp connect-timeout {GDB_REMOTE_TIMEOUT_S}"))
        .arg("-ex")
        .arg(format!("file {}", elf.display()))
        .args(["-ex", "source gdb-scripts/kinspect.py"])
        .arg("-ex")
        .arg(format!("target remote {gdb_addr}"))
        // Printed only when `target remote` succeeded: gdb -batch goes on
        // after a failed command, and every later command would fail too.
        .arg("-ex")
        .arg(format!(
            "python print('{CONNECTED}' if gdb.selected_inferior().pid > 0 else '')"
        ));
    for c in commands {
        cmd.arg("-ex")
            .arg(format!("echo {MARK}\\n"))
            .arg("-ex")
            .arg(c);
    }
    cmd.arg("-ex").arg(format!("echo {MARK}\\n"));
    let out = cmd
        .output()
        .expect("running gdb-multiarch (cargo xtask test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let parts: Vec<String> = stdout
        .split(&format!("{MARK}\n"))
        .skip(1)
        .map(str::to_string)
        .collect();
    let mut run = GdbRun {
        parts,
        stdout,
        stderr,
    };
    assert!(
        run.stdout.contains(CONNECTED),
        "gdb did not connect to {gdb_addr}:\n{run}"
    );
    assert_eq!(
        run.parts.len(),
        commands.len() + 1,
        "gdb did not run every command:\n{run}"
    );
    run.parts.truncate(commands.len());
    run
}

/// The kernel's Ctrl-P process list (`pid state name` lines) printed after
/// console byte `from`, up to the next prompt.
pub fn parse_procdump(console_tail: &str) -> Vec<(i64, String, String)> {
    console_tail
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let pid = w.next()?.parse::<i64>().ok()?;
            let state = w.next()?.to_string();
            let name = w.next()?.to_string();
            Some((pid, state, name))
        })
        .collect()
}

/// kinspect's `--json` writes addresses, PTEs, CSRs and other 64-bit
/// values as `"0x…"` strings (docs/json.md): the value one holds, or `None`
/// when `v` is not such a string.
pub fn json_u64(v: &serde_json::Value) -> Option<u64> {
    let s = v.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(s, 16).ok()
}

/// `v` as kinspect's `--json` writes it: `"0x…"`, lower case, no padding.
pub fn hex(v: u64) -> serde_json::Value {
    serde_json::Value::String(format!("{v:#x}"))
}
