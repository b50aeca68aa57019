//! `kinspect proxy` on the real kernel under the real QEMU: gdb-multiarch
//! and kinspect on one gdb stub at once.
//!
//! 1. gdb in batch mode breaks at `uartintr`, continues and waits;
//!    meanwhile one-shot `kinspect procs` and `satp` read the machine
//!    through the proxy and succeed; a key typed into the console stops
//!    gdb at its breakpoint, it steps, and its `kill` leaves QEMU alive.
//! 2. In tmux: the TUI (`kinspect attach` on the proxy) and an interactive
//!    gdb; gdb stops at a breakpoint and steps, and after each stop the
//!    TUI shows the pc gdb printed.
//!
//! Every wait is on a condition with a bound; a failure prints the
//! proxy's log (and the screens).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kinspect_testkit::{gdb_batch, kernel_elf, Machine, GDB_REMOTE_TIMEOUT_S};

/// Bound on a boot to the shell prompt (a loaded machine is slow).
const BOOT: Duration = Duration::from_secs(120);
/// Bound on anything one client waits for.
const WAIT: Duration = Duration::from_secs(60);

/// A `kinspect proxy` process, killed (SIGTERM, then SIGKILL) by PID when
/// dropped; its stderr (one line per client event) is collected.
struct Proxy {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    fn start(gdb: &str) -> Proxy {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kinspect"))
            .args(["--gdb", gdb, "proxy", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kinspect runs");
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("read stdout");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_string);
        let mut p = Proxy {
            child,
            addr: String::new(),
            log,
        };
        match addr {
            Some(a) => p.addr = a,
            None => panic!(
                "the proxy did not say where it listens: {line:?}\n{}",
                p.log()
            ),
        }
        p
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until the proxy's log contains `needle` (after byte `from`).
    fn wait_log(&self, from: usize, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let l = self.log();
            if l.get(from..).is_some_and(|t| t.contains(needle)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy never logged {needle:?}; its log:\n{l}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kinspect(gdb: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .arg("--elf")
        .arg(kernel_elf())
        .args(["--gdb", gdb])
        .args(args)
        .output()
        .expect("kinspect runs")
}

/// Run a one-shot command through the proxy; its stdout, or a panic with
/// its stderr and the proxy's log.
fn one_shot(p: &Proxy, args: &[&str]) -> String {
    let o = kinspect(&p.addr, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "kinspect {args:?} through the proxy failed ({}):\nstdout:\n{out}\nstderr:\n{}\nproxy log:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        p.log()
    );
    out
}

fn has_procs(out: &str) -> bool {
    out.contains(" init ") && out.contains(" sh ")
}

#[test]
fn gdb_batch_and_one_shot_commands_share_the_stub() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let mut proxy = Proxy::start(&m.gdb_addr());

    let addr = proxy.addr.clone();
    let gdb = std::thread::spawn(move || {
        gdb_batch(
            &addr,
            &[
                "break kernel::uart::uartintr",
                "continue",
                "printf \"PC0=%lx\\n\", $pc",
                "stepi",
                "printf \"PC1=%lx\\n\", $pc",
                "stepi",
                "printf \"PC2=%lx\\n\", $pc",
                "kill",
            ],
        )
    });
    // gdb attached (the proxy paused the run for it) and continued: it
    // joined the run and waits in `continue` for the breakpoint.
    proxy.wait_log(0, "joined the run");
    assert!(!gdb.is_finished(), "gdb ended early:\n{}", proxy.log());

    // One-shot commands read the machine while gdb waits.
    let procs = one_shot(&proxy, &["procs"]);
    assert!(has_procs(&procs), "{procs}\nproxy log:\n{}", proxy.log());
    let satp = one_shot(&proxy, &["satp"]);
    assert!(satp.contains("Sv39"), "{satp}");
    let json = one_shot(&proxy, &["--json", "procs"]);
    assert!(json.contains("\"init\""), "{json}");
    assert!(
        !gdb.is_finished(),
        "gdb's continue ended while kinspect read:\n{}",
        proxy.log()
    );

    // A key typed into the console: the UART interrupt reaches uartintr.
    m.send(b"x");
    let deadline = Instant::now() + WAIT;
    while !gdb.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // (QEMU is killed on the way out, which ends gdb.)
    assert!(
        gdb.is_finished(),
        "gdb did not stop at uartintr; proxy log:\n{}",
        proxy.log()
    );
    let run = gdb.join().expect("the gdb thread");
    let log = proxy.log();
    assert!(
        run[1].contains("Breakpoint 1") && run[1].contains("uartintr"),
        "gdb did not stop at uartintr:\n{run}\nproxy log:\n{log}"
    );
    let pc = |i: usize, key: &str| -> u64 {
        run[i]
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no {key} in gdb's output:\n{run}\nproxy log:\n{log}"))
    };
    let (pc0, pc1, pc2) = (pc(2, "PC0="), pc(4, "PC1="), pc(6, "PC2="));
    assert!(
        pc0 != pc1 && pc1 != pc2,
        "stepi moved the pc: {pc0:#x} {pc1:#x} {pc2:#x}\n{run}"
    );
    assert!(
        log.contains("sent kill: it leaves, QEMU stays"),
        "gdb's kill reached the proxy:\n{log}"
    );

    // gdb's kill did not kill QEMU, and the proxy serves on.
    assert!(proxy.alive(), "the proxy ended:\n{log}");
    let procs = one_shot(&proxy, &["procs"]);
    assert!(has_procs(&procs), "{procs}");
    assert!(
        std::path::Path::new(&format!("/proc/{}", m.pid())).exists(),
        "QEMU is gone"
    );
}

/// A detached tmux session, killed when dropped.
struct Tmux {
    session: String,
}

impl Tmux {
    fn start(session: String, width: u16, height: u16, shell: &str) -> Tmux {
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session])
            .args(["-x", &width.to_string(), "-y", &height.to_string(), shell])
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(ok.success(), "tmux new-session failed");
        Tmux { session }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_line(&self, text: &str) {
        let _ = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "-l", text])
            .status();
        self.keys(&["Enter"]);
    }

    fn keys(&self, keys: &[&str]) {
        let _ = Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// Wait until `pred` holds for some screen; on time-out panic with both
/// screens, the TUI's stderr and the proxy's log.
fn wait_screens(
    what: &str,
    tui: &Tmux,
    gdb: &Tmux,
    proxy: &Proxy,
    stderr: &PathBuf,
    pred: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (t, g) = (tui.screen(), gdb.screen());
        if pred(&t, &g) {
            return (t, g);
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\nthe TUI:\n{t}\ngdb:\n{g}\nTUI stderr:\n{}\nproxy log:\n{}",
                std::fs::read_to_string(stderr).unwrap_or_default(),
                proxy.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value gdb printed for `marker` (`printf "STOP3=%lx\n", $pc`).
fn printed(gdb_screen: &str, marker: &str) -> Option<u64> {
    gdb_screen
        .lines()
        .find_map(|l| l.trim().strip_prefix(marker))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[test]
fn tmux_gdb_steps_and_the_tui_shows_each_stop() {
    let m = Machine::start();
    m.wait_for("$ ", BOOT);
    let proxy = Proxy::start(&m.gdb_addr());
    let elf = kernel_elf();
    let dir = std::env::temp_dir().join(format!("kinspect-proxy-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let stderr = dir.join("stderr");
    let bin = env!("CARGO_BIN_EXE_kinspect");

    let tui = Tmux::start(
        format!("kinspect-proxy-tui-{}", std::process::id()),
        200,
        40,
        &format!(
            "{bin} --elf {} --gdb {} attach 2>{}; sleep 120",
            elf.display(),
            proxy.addr,
            stderr.display()
        ),
    );
    let gdb = Tmux::start(
        format!("kinspect-proxy-gdb-{}", std::process::id()),
        160,
        50,
        &format!(
            "gdb-multiarch -q -nx -ex 'set architecture riscv:rv64' -ex 'set confirm off' \
             -ex 'set pagination off' -ex 'set remotetimeout {GDB_REMOTE_TIMEOUT_S}' \
             -ex 'file {}' -ex 'target remote {}'; sleep 120",
            elf.display(),
            proxy.addr
        ),
    );
    wait_screens(
        "the TUI's processes",
        &tui,
        &gdb,
        &proxy,
        &stderr,
        |t, _| t.contains(" init ") && t.contains(" sh "),
    );
    wait_screens("gdb's prompt", &tui, &gdb, &proxy, &stderr, |_, g| {
        g.contains("(gdb)")
    });
    // The registers tab shows the selected hart's pc.
    tui.keys(&["3"]);

    // A breakpoint every hart passes often (timer interrupts in the kernel).
    gdb.type_line("break kerneltrap");
    gdb.type_line("continue");
    wait_screens(
        "gdb at its breakpoint",
        &tui,
        &gdb,
        &proxy,
        &stderr,
        |_, g| g.contains("hit Breakpoint 1"),
    );
    gdb.type_line("delete");
    gdb.type_line("printf \"STOP0=%lx\\n\", $pc");
    for i in 0..4 {
        let marker = format!("STOP{i}=");
        let (_, g) = wait_screens(
            &format!("gdb's pc at stop {i}"),
            &tui,
            &gdb,
            &proxy,
            &stderr,
            |_, g| printed(g, &marker).is_some(),
        );
        let pc = printed(&g, &marker).unwrap_or_default();
        let shown = format!("pc {pc:#018x}");
        wait_screens(
            &format!("the TUI at stop {i} ({shown})"),
            &tui,
            &gdb,
            &proxy,
            &stderr,
            |t, _| t.contains(&shown),
        );
        if i < 3 {
            gdb.type_line("stepi");
            gdb.type_line(&format!("printf \"STOP{}=%lx\\n\", $pc", i + 1));
        }
    }
    // gdb leaves; the TUI is told nothing went wrong.
    gdb.type_line("detach");
    wait_screens("gdb detached", &tui, &gdb, &proxy, &stderr, |_, g| {
        g.contains("Detaching") || g.contains("detached")
    });
    let log = proxy.log();
    assert!(log.contains("client 2 detached"), "{log}");
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}
