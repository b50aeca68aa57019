//! End to end: the real `kinspect launch` in a real terminal (tmux) against
//! the real kernel under the real QEMU. Every step is asserted from what
//! `tmux capture-pane -p` shows, as a person would see it: the process
//! table lists init and sh, a command typed into the console pane runs in
//! the guest's shell, halt, a page-table entry expands, a symbol
//! translates from the command line, and quitting kills QEMU.
//!
//! Waits are bounded; the tmux session and QEMU are killed by name and PID
//! at the end whatever happens.

mod model_common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kinspect_testkit::{Boot, Machine};

/// Bound on a boot to the shell prompt (a loaded machine is slow).
const BOOT: Duration = Duration::from_secs(90);

struct Tmux {
    session: String,
    qemu_pid: Option<u32>,
    dir: PathBuf,
}

impl Tmux {
    /// A detached tmux session of `width`x`height` running `shell`.
    fn start(session: String, dir: PathBuf, width: u16, height: u16, shell: &str) -> Tmux {
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session])
            .args(["-x", &width.to_string(), "-y", &height.to_string(), shell])
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(ok.success(), "tmux new-session failed");
        Tmux {
            session,
            qemu_pid: None,
            dir,
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.session])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session.as_str()];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.session, "-l", text]);
    }

    /// Wait until `pred` holds for the screen; the screen on time-out is
    /// in the panic message.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                let err = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
                panic!("timed out waiting for {what}; the screen:\n{s}\nstderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
        if let Some(pid) = self.qemu_pid {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process-table row: `slot pid state name`.
fn has_proc(screen: &str, name: &str) -> bool {
    screen.lines().any(|l| {
        let cols: Vec<&str> = l
            .trim_matches(|c| c == '│' || c == '┃' || c == ' ')
            .split_whitespace()
            .collect();
        cols.len() >= 4 && cols[3] == name && cols[0].parse::<u32>().is_ok()
    })
}

#[test]
fn launch_type_halt_expand_translate_quit() {
    let bin = env!("CARGO_BIN_EXE_kinspect");
    let elf = kinspect_testkit::kernel_elf();
    let dir = std::env::temp_dir().join(format!("kinspect-tui-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Our own copy of the disk: QEMU locks the image it writes.
    let img = dir.join("fs.img");
    std::fs::copy(kinspect_testkit::fs_img(), &img).expect("copy fs.img");
    let shell = format!(
        "{bin} --elf {} launch --fs-img {} 2>{}; echo kinspect-exited-$?; sleep 120",
        elf.display(),
        img.display(),
        dir.join("stderr").display()
    );
    let mut t = Tmux::start(
        format!("kinspect-e2e-{}", std::process::id()),
        dir.clone(),
        100,
        32,
        &shell,
    );

    // 1. The process table shows init and sh (follow mode refreshes it
    // once the shell's prompt has been printed).
    let s = t.wait(
        "init and sh in the process table",
        Duration::from_secs(90),
        |s| has_proc(s, "init") && has_proc(s, "sh"),
    );
    let pid = s
        .split("QEMU pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse::<u32>().ok());
    t.qemu_pid = pid;
    assert!(pid.is_some(), "the status bar names QEMU's pid:\n{s}");
    assert!(s.contains("RUNNING"), "the guest runs after launch:\n{s}");

    // 2. Type a shell command into the console pane and see its output.
    t.keys(&["6"]);
    t.keys(&["i"]);
    t.wait("the console pane", Duration::from_secs(10), |s| {
        s.contains("typing goes to the guest")
    });
    t.type_text("echo tui-says-hello");
    t.keys(&["Enter"]);
    t.wait("the command's output", Duration::from_secs(30), |s| {
        s.lines()
            .any(|l| l.trim_matches(|c| c == '│' || c == '┃' || c == ' ') == "tui-says-hello")
    });
    t.keys(&["Escape"]);
    t.wait("the console left", Duration::from_secs(10), |s| {
        !s.contains("typing goes to the guest")
    });

    // 3. Halt.
    t.keys(&["h"]);
    t.wait("HALTED", Duration::from_secs(20), |s| {
        s.contains(" HALTED ")
    });

    // 4. Select init (slot 0) and expand the first entry of its page table.
    t.keys(&[":"]);
    t.type_text("proc 0");
    t.keys(&["Enter"]);
    t.keys(&["1"]);
    let before = t.wait("the page table", Duration::from_secs(20), |s| {
        s.contains("user page table of pid 1 `init`") && s.contains("▸ ..0: pte")
    });
    assert!(!before.contains(" .. ..0: pte"), "{before}");
    t.keys(&["Enter"]);
    t.wait("an expanded level-1 entry", Duration::from_secs(20), |s| {
        s.contains("▾ ..0: pte") && s.contains(" .. ..0: pte")
    });

    // 5. Translate a symbol expression from the command line, through
    // init's own kernel page table (u), which maps the trampoline and only
    // its own kernel stack (docs/kernel-contract.md). KSTACK(i) is xv6's
    // TRAMPOLINE - (i+1)*2*PGSIZE.
    t.keys(&["u"]);
    t.wait("init's kernel page table", Duration::from_secs(20), |s| {
        s.contains("kernel page table of pid 1 `init`")
    });
    t.keys(&[":"]);
    t.type_text("translate proc[0].kstack");
    t.keys(&["Enter"]);
    t.wait("the translation", Duration::from_secs(20), |s| {
        s.contains("translate proc[0].kstack = 0x0000003fffffd000")
            && s.contains("=> proc[0].kstack = 0x3fffffd000 -> 0x8")
    });
    t.keys(&["Escape"]);
    t.wait("the pop-up closed", Duration::from_secs(10), |s| {
        !s.contains("Esc closes")
    });
    t.keys(&[":"]);
    t.type_text("translate proc[1].kstack");
    t.keys(&["Enter"]);
    t.wait(
        "sh's stack is not in init's kernel page table",
        Duration::from_secs(20),
        |s| s.contains("=> proc[1].kstack = 0x3fffffb000: page fault at level 0"),
    );
    t.keys(&["Escape"]);
    t.wait("the pop-up closed", Duration::from_secs(10), |s| {
        !s.contains("Esc closes")
    });

    // 6. Quit, killing QEMU.
    t.keys(&["q"]);
    t.wait("the quit dialog", Duration::from_secs(10), |s| {
        s.contains("kill QEMU")
    });
    t.keys(&["k"]);
    t.wait("kinspect to exit", Duration::from_secs(20), |s| {
        s.contains("kinspect-exited-0")
    });
    let pid = t.qemu_pid.expect("pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "QEMU (pid {pid}) still runs after `kill QEMU`"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kinspect --snapshot FILE attach`: the TUI over a saved C xv6 machine
/// (the model tests' gcc fixture scene), read-only: the processes show,
/// `c` says the snapshot cannot run, and `q` quits at once.
#[test]
fn a_snapshot_opens_read_only_in_the_tui() {
    const ELF: &str = "xv6_c.elf";
    let bin = env!("CARGO_BIN_EXE_kinspect");
    let dir = std::env::temp_dir().join(format!("kinspect-tui-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut b = model_common::scene(ELF);
    let file = dir.join("c-xv6.kisnap");
    model_common::save_snapshot(&mut b, ELF, &file);
    let shell = format!(
        "NO_COLOR=1 {bin} --elf {} --snapshot {} attach 2>{}; echo kinspect-exited-$?; sleep 60",
        model_common::fixture(ELF).display(),
        file.display(),
        dir.join("stderr").display()
    );
    let t = Tmux::start(
        format!("kinspect-snap-{}", std::process::id()),
        dir.clone(),
        100,
        30,
        &shell,
    );
    let s = t.wait("the scene's processes", Duration::from_secs(30), |s| {
        ["init", "sh", "cat"].iter().all(|n| has_proc(s, n))
    });
    assert!(s.contains("read-only"), "{s}");
    t.keys(&["c"]);
    t.wait("a refusal to run", Duration::from_secs(10), |s| {
        s.contains("cannot run")
    });
    t.keys(&["q"]);
    t.wait("kinspect to exit", Duration::from_secs(10), |s| {
        s.contains("kinspect-exited-0")
    });
}

/// `kinspect attach` to `m` in a tmux session of 100x32 (stderr kept in
/// the session's directory for failure messages).
fn attach_in_tmux(m: &Machine, name: &str) -> Tmux {
    attach_elf_in_tmux(m, name, &kinspect_testkit::kernel_elf())
}

/// [`attach_in_tmux`] with another kernel's ELF (a C xv6's).
fn attach_elf_in_tmux(m: &Machine, name: &str, elf: &std::path::Path) -> Tmux {
    let t = attach_elf_in_tmux_halted(m, name, elf);
    // The page table walked too (its last root entry, the trampoline's,
    // drawn): the worker halts the guest briefly for that walk, and a
    // QEMU monitor `stop` that lands inside that moment is undone by the
    // worker's resume, so tests that stop the guest behind kinspect's
    // back start once kinspect is idle.
    t.wait(
        "init and sh, running, the page table walked",
        Duration::from_secs(60),
        |s| {
            has_proc(s, "init")
                && has_proc(s, "sh")
                && s.contains(" RUNNING ")
                && s.contains("..255: ")
        },
    );
    t
}

/// `kinspect attach` on `elf` in tmux, without waiting for anything.
fn attach_elf_in_tmux_halted(m: &Machine, name: &str, elf: &std::path::Path) -> Tmux {
    let bin = env!("CARGO_BIN_EXE_kinspect");
    let dir = std::env::temp_dir().join(format!("kinspect-tui-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shell = format!(
        "{bin} --gdb {} --elf {} attach 2>{}; echo kinspect-exited-$?; sleep 120",
        m.gdb_addr(),
        elf.display(),
        dir.join("stderr").display()
    );
    Tmux::start(
        format!("kinspect-{name}-{}", std::process::id()),
        dir,
        100,
        32,
        &shell,
    )
}

/// Wait until the guest's shell has printed `line` as a line of output
/// (not as the echo of the command typed after the prompt), after `mark`;
/// the TUI's screen is in the message if it never does.
fn wait_output(m: &Machine, t: &Tmux, mark: usize, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let needle = format!("\n{line}");
    while !m.console()[mark..].contains(&needle) {
        assert!(
            Instant::now() < deadline,
            "the guest never printed {line:?} (is it running?); console:\n{}\nthe TUI:\n{}",
            &m.console()[mark..],
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 12, item 2: QEMU killed and started again on the same port; `R`
/// reconnects, the status leaves CONNECTION LOST, the panes read the new
/// machine, and the guest runs on as it did before `R`.
#[test]
fn reconnect_after_qemu_restarts_restores_the_session() {
    let m = Machine::start();
    m.wait_for("$ ", BOOT);
    let port = m.gdb_port();
    let t = attach_in_tmux(&m, "reconnect");
    t.wait("the page table", Duration::from_secs(20), |s| {
        s.contains("▸ ..0: pte")
    });
    drop(m); // kills QEMU
    t.wait("CONNECTION LOST", Duration::from_secs(30), |s| {
        s.contains("CONNECTION LOST")
    });
    // A pane that needs the target while the connection is gone waits.
    t.keys(&["u"]);
    t.wait(
        "the kernel page table, not read",
        Duration::from_secs(10),
        |s| s.contains("kernel page table of pid 1 `init`") && !s.contains("▸ ..0: pte"),
    );
    let mut m = Machine::boot(Boot {
        gdb_port: Some(port),
        ..Boot::default()
    });
    m.wait_for("$ ", BOOT);
    t.keys(&["R"]);
    let s = t.wait(
        "reconnected, running, the panes read again",
        Duration::from_secs(30),
        |s| {
            !s.contains("CONNECTION LOST")
                && s.contains(" RUNNING ")
                && has_proc(s, "sh")
                && s.contains("kernel page table of pid 1 `init`")
                && s.contains("▸ ..0: pte")
        },
    );
    assert!(s.contains("reconnected"), "{s}");
    // The guest really runs: its shell answers.
    let mark = m.console_len();
    m.send(b"echo back-again\n");
    wait_output(&m, &t, mark, "back-again");
    // And the session works: halt reads the new machine.
    t.keys(&["h"]);
    t.wait("HALTED", Duration::from_secs(20), |s| {
        s.contains(" HALTED ")
    });
}

/// Issue 12, item 3: `c` on a hart stopped at a breakpoint steps over it
/// first, so the guest makes progress (and the breakpoint stays).
#[test]
fn continue_at_a_breakpoint_steps_over_it() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let t = attach_in_tmux(&m, "break");
    t.keys(&[":"]);
    t.type_text("break exec");
    t.keys(&["Enter"]);
    t.wait("the breakpoint set", Duration::from_secs(20), |s| {
        s.contains("breakpoint at exec (0x")
    });
    let mark = m.console_len();
    m.send(b"echo stepped-over\n");
    t.wait("the breakpoint hit", Duration::from_secs(30), |s| {
        s.contains(" HALTED ") && s.contains("hit the breakpoint at exec")
    });
    t.keys(&["c"]);
    wait_output(&m, &t, mark, "stepped-over");
    t.wait("RUNNING", Duration::from_secs(20), |s| {
        s.contains(" RUNNING ") && !s.contains("hit the breakpoint")
    });
    // The breakpoint is still in: the next exec stops again.
    m.send(b"echo again\n");
    t.wait("the breakpoint hit again", Duration::from_secs(30), |s| {
        s.contains(" HALTED ") && s.contains("hit the breakpoint at exec")
    });
}

/// Halted by QEMU's monitor, and the page table of the new snapshot
/// walked: kinspect is idle. (The message comes after the snapshot that
/// cleared the old walk, so the walk shown with it is the new one.) A
/// `cont` behind kinspect's back while it still reads would race it:
/// QEMU takes the first byte of a packet sent to a running guest as an
/// interrupt, so that read goes unanswered.
fn stopped_and_idle(s: &str) -> bool {
    s.contains(" HALTED ") && s.contains("stopped outside kinspect") && s.contains("..255: ")
}

/// Issue 12, item 8: QEMU's own `stop` and `cont` (QMP here; the HMP
/// monitor is the same) done behind kinspect's back show in the status.
#[test]
fn the_run_state_follows_qemus_monitor() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let t = attach_in_tmux(&m, "drift");
    m.pause();
    t.wait(
        "HALTED after QMP stop",
        Duration::from_secs(60),
        stopped_and_idle,
    );
    m.resume();
    let s = t.wait("RUNNING after QMP cont", Duration::from_secs(60), |s| {
        s.contains(" RUNNING ")
    });
    assert!(s.contains("resumed outside kinspect"), "{s}");
    let mark = m.console_len();
    m.send(b"echo still-running\n");
    wait_output(&m, &t, mark, "still-running");
    // Again, to be sure it was no accident of timing.
    m.pause();
    t.wait("HALTED again", Duration::from_secs(60), stopped_and_idle);
    m.resume();
    t.wait("RUNNING again", Duration::from_secs(60), |s| {
        s.contains(" RUNNING ")
    });
}

/// Issue 12, item 9, on the real kernel: a panic (kfault remap: mappages
/// finds a valid PTE) shows in the status bar, selects the hart that
/// panicked and the process it ran, and the backtrace names mappages,
/// inlined at the call in uvmalloc (the return address looked up at ra-1).
#[test]
fn a_panic_is_shown_where_it_happened() {
    let bin = env!("CARGO_BIN_EXE_kinspect");
    let elf = kinspect_testkit::kernel_elf();
    let dir = std::env::temp_dir().join(format!("kinspect-tui-panic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let img = dir.join("fs.img");
    std::fs::copy(kinspect_testkit::fs_img(), &img).expect("copy fs.img");
    let shell = format!(
        "{bin} --elf {} launch --fs-img {} 2>{}; echo kinspect-exited-$?; sleep 120",
        elf.display(),
        img.display(),
        dir.join("stderr").display()
    );
    let mut t = Tmux::start(
        format!("kinspect-panic-{}", std::process::id()),
        dir.clone(),
        100,
        32,
        &shell,
    );
    let s = t.wait("init and sh", BOOT, |s| {
        has_proc(s, "init") && has_proc(s, "sh")
    });
    t.qemu_pid = s
        .split("QEMU pid ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse::<u32>().ok());
    t.keys(&["i"]);
    t.type_text("kfault enable");
    t.keys(&["Enter"]);
    t.wait("kfault enabled", Duration::from_secs(30), |s| {
        s.contains("fault injection enabled")
    });
    t.type_text("kfault remap");
    t.keys(&["Enter"]);
    let s = t.wait("the panic", Duration::from_secs(30), |s| {
        s.contains("PANIC: remap") && s.contains("the kernel panicked on hart")
    });
    assert!(
        s.contains("`kfault`): remap"),
        "the panicking process is named:\n{s}"
    );
    t.keys(&["Escape"]);
    t.keys(&["h"]);
    t.wait("HALTED", Duration::from_secs(20), |s| {
        s.contains(" HALTED ")
    });
    t.keys(&["5"]);
    t.wait("mappages in the backtrace", Duration::from_secs(20), |s| {
        s.contains("panic+") && s.contains("mappages+") && s.contains("uvmalloc+")
    });
    t.keys(&["q"]);
    t.wait("the quit dialog", Duration::from_secs(10), |s| {
        s.contains("kill QEMU")
    });
    t.keys(&["k"]);
    t.wait("kinspect to exit", Duration::from_secs(20), |s| {
        s.contains("kinspect-exited-0")
    });
}

/// Issue 11: on a student's pgtbl-lab kernel (C, the field called
/// `prockpt`), the TUI finds the per-process kernel page table as `procs`
/// does and shows a process's own kernel table with `u`, no flags given.
#[test]
fn the_tui_shows_a_c_lab_kernels_per_process_kernel_table() {
    let v = kinspect_testkit::xv6::variant("sol-prockpt");
    let mut m = v.boot();
    m.wait_for("$ ", BOOT);
    // kinspect procs' answer first (QEMU's stub takes one client at a time).
    m.pause();
    let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", &m.gdb_addr(), "--elf"])
        .arg(v.elf())
        .args(["--json", "procs"])
        .output()
        .expect("running kinspect procs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).expect("procs JSON");
    assert_eq!(p["kpagetable_field"], "prockpt", "{p}");
    let init_kpt = u64::from_str_radix(
        p["procs"][0]["kpagetable"]
            .as_str()
            .expect("init's kpagetable")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex");
    m.resume();
    let t = attach_elf_in_tmux(&m, "c-lab", &v.elf());
    t.keys(&["h"]);
    t.wait("HALTED", Duration::from_secs(30), |s| {
        s.contains(" HALTED ")
    });
    // The first row (init) is selected: its page table, then its kernel one.
    t.keys(&["Enter"]);
    t.wait("init's user page table", Duration::from_secs(30), |s| {
        s.contains("user page table of pid 1 `init`")
    });
    t.keys(&["u"]);
    let s = t.wait("init's kernel page table", Duration::from_secs(30), |s| {
        s.contains("kernel page table of pid 1 `init`")
    });
    assert!(
        s.contains(&format!("{init_kpt:#x}")),
        "the TUI's root is not procs' {init_kpt:#x}:\n{s}"
    );
}

/// A C xv6 keeps its panic message only in `panic`'s argument: held on
/// `panic`'s first instruction by `kinspect watch`, the TUI reads it from
/// a0 and names the panicking hart.
#[test]
fn the_tui_reads_a_c_kernels_panic_message_from_a0() {
    let v = kinspect_testkit::xv6::variant("bug-kstack-twice");
    let m = v.boot_with(Boot {
        wait_for_debugger: true,
        ..Boot::default()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", &m.gdb_addr(), "--elf"])
        .arg(v.elf())
        .args(["watch", "--timeout", "300"])
        .output()
        .expect("running kinspect watch");
    assert!(
        out.status.success(),
        "watch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = attach_elf_in_tmux_halted(&m, "c-panic", &v.elf());
    t.wait("the panic", Duration::from_secs(60), |s| {
        s.contains("PANIC: remap") && s.contains("the kernel panicked on hart")
    });
}

/// Wait for vmsteps' whole stop line for `step` after `mark` (its pid
/// arrives after the prefix under load); the pid.
fn vmsteps_stop(m: &Machine, t: &Tmux, mark: usize, step: &str) -> i64 {
    let prefix = format!("vmsteps: {step} pid ");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let con = m.console().replace('\r', "");
        let tail = &con[mark.min(con.len())..];
        if let Some(i) = tail.find(&prefix) {
            let rest = &tail[i + prefix.len()..];
            if let Some((pid, _)) = rest.split_once(", press Enter") {
                return pid
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
            }
        }
        assert!(
            Instant::now() < deadline,
            "vmsteps never stopped at {step}; console:\n{tail}\nthe TUI:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 15: the Changes tab compares each halt with the one before. The
/// attach is the first (nothing to compare); `vmsteps` started and halted
/// is halt 2 (it appeared); continued, Enter makes it sbrk two pages, and
/// halt 3 lists them as mappings added to its user page table.
#[test]
fn the_changes_tab_lists_the_mappings_added_between_two_halts() {
    let mut m = Machine::start();
    m.wait_for("$ ", BOOT);
    let t = attach_in_tmux(&m, "changes");
    t.keys(&["6"]);
    t.wait("the first halt, the attach", Duration::from_secs(20), |s| {
        s.contains("6 Changes")
            && s.contains("first halt (halt 1 (attach)): nothing to compare yet")
    });

    let mark = m.console_len();
    m.send(b"vmsteps\n");
    let pid = vmsteps_stop(&m, &t, mark, "start");
    t.keys(&["h"]);
    let appeared = format!("+ pid {pid:<3} vmsteps");
    let s = t.wait("halt 2: vmsteps appeared", Duration::from_secs(30), |s| {
        s.contains(" HALTED ")
            && s.contains("since the halt before: halt 1 (attach) -> halt 2 (halt)")
            && s.contains(&appeared)
    });
    assert!(s.contains(&format!("pid {pid} vmsteps, table 0x")), "{s}");

    t.keys(&["c"]);
    t.wait("RUNNING", Duration::from_secs(20), |s| {
        s.contains(" RUNNING ")
    });
    let mark = m.console_len();
    m.send(b"\n");
    vmsteps_stop(&m, &t, mark, "sbrk");
    t.keys(&["h"]);
    let table = format!("pid {pid} vmsteps, table 0x");
    let s = t.wait("halt 3: the sbrk's pages", Duration::from_secs(30), |s| {
        s.contains(" HALTED ")
            && s.contains("since the halt before: halt 2 (halt) -> halt 3 (halt)")
            && s.contains(&table)
    });
    let changed = format!("~ pid {pid:<3} vmsteps          sz 0x");
    assert!(s.contains(&changed), "no {changed:?} in\n{s}");
    let line = s
        .lines()
        .find(|l| l.contains(&table))
        .unwrap_or_else(|| panic!("no {table:?} in\n{s}"));
    assert!(
        line.contains(": 2 pages added, 0 removed, 0 changed"),
        "{line}\n{s}"
    );
    // The two pages, read/write/user, under the table's line.
    let added: usize = s
        .lines()
        .filter_map(|l| l.split_once("    + 0x"))
        .filter(|(_, r)| r.contains("rw-u"))
        .map(|(_, r)| {
            r.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(added, 2, "the sbrk's 2 pages as added ranges in\n{s}");
}
