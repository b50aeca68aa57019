//! `kinspect attach` and `kinspect launch`: the TUI a person debugs in.
//!
//! ```text
//!  terminal ──keys, mouse──▶ App (state) ──Request──▶ worker thread ──▶ Target (gdb stub)
//!      ▲                       │   ▲                        │
//!      └─ view::draw(&App) ◀───┘   └────────Reply───────────┘
//!  QEMU stdout ──bytes──▶ console pane      console keys ──▶ QEMU stdin  (launch)
//! ```
//!
//! The UI thread only draws and reacts; the [`worker`] owns the target, so
//! a slow or dead gdb stub never freezes the screen. The views show the
//! last halted state ([`snapshot`]) and mark it stale while the guest runs.
//! `launch` starts QEMU itself ([`console::Qemu`]) with xv6-riscv's command
//! line on a free gdb port, pipes its serial console into the console tab,
//! and then attaches like `attach`. See `docs/tui.md`.

pub mod app;
mod apply;
pub mod command;
pub mod console;
pub mod keys;
pub mod panes;
pub mod popup;
pub mod procs;
mod reads;
pub mod snapshot;
pub mod view;
pub mod worker;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event, KeyEventKind};
use kinspect_symbols::Symbols;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use app::App;
use console::Qemu;
use worker::{Leave, Reply, Request, Worker};

use crate::error::{Error, Result};
use crate::session::Session;
use crate::target::fastram::{FastPath, FastQemu};
use crate::target::qemu::QemuTarget;
use crate::target::{RunState, Target, TargetError};

/// What `launch` needs beyond the global options.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    pub kernel: PathBuf,
    pub fs_img: PathBuf,
    pub smp: u32,
}

/// Open the kernel ELF for the TUI: `--elf` must load; the default path
/// may be missing (no process table then).
pub fn open_symbols(elf: Option<&Path>) -> Result<Option<Arc<Symbols>>> {
    let (path, must) = match elf {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("target/kernel/kernel.elf"), false),
    };
    if !must && !path.exists() {
        return Ok(None);
    }
    match Symbols::open(&path) {
        Ok(s) => {
            // Build the DWARF index now, before the first frame needs it.
            if let Err(e) = s.index_now() {
                if must {
                    return Err(Error::BadInput(format!("{}: {e}", path.display())));
                }
            }
            Ok(Some(Arc::new(s)))
        }
        Err(e) if must => Err(Error::BadInput(e.to_string())),
        Err(_) => Ok(None),
    }
}

/// The session's ELF for the TUI, its DWARF index built before the first
/// frame needs it: `--elf` must load, the default path may be missing.
fn session_symbols(session: &Session, must: bool) -> Result<Option<Arc<Symbols>>> {
    match session.symbols_arc() {
        Some(s) => {
            if let Err(e) = s.index_now() {
                if must {
                    return Err(Error::BadInput(format!("{}: {e}", s.file_name())));
                }
            }
            Ok(Some(s.clone()))
        }
        None => match session.elf_error() {
            Some(e) if must => Err(Error::BadInput(e.to_string())),
            _ => Ok(None),
        },
    }
}

fn need_terminal() -> Result<()> {
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Error::BadInput(
            "attach and launch draw a full-screen TUI and need a terminal (for scripts use the one-shot commands: regs, maps, vmprint, translate)".into(),
        ))
    }
}

/// `kinspect attach`.
pub fn attach(session: &Session) -> Result<()> {
    need_terminal()?;
    if let Some(path) = &session.snapshot {
        return attach_snapshot(session, path);
    }
    let symbols = session_symbols(session, session.elf_given)?;
    let addr = session.gdb.clone();
    let target = FastQemu::new(
        QemuTarget::connect(&addr).map_err(Error::from)?,
        session.fast_path,
    );
    let worker = Worker::new(
        Box::new(target),
        symbols.clone(),
        session.profile.clone(),
        session.ram,
    )
    .reconnecting(reconnect_to(&addr, session.fast_path));
    let app = App::new(format!("QEMU gdb stub at {addr}"), symbols, false);
    let leave = run_ui(app, worker, None)?;
    if leave == Leave::Halted {
        eprintln!("kinspect: left the guest halted; `kinspect --gdb {addr} attach` comes back");
    }
    Ok(())
}

/// `kinspect --snapshot FILE attach`: the TUI over a saved machine,
/// read-only (it cannot run, so `c`, `h` and `s` say so).
fn attach_snapshot(session: &Session, path: &std::path::Path) -> Result<()> {
    let target = crate::snapshot::open::open(session, path, &mut std::io::stderr())?;
    let symbols = session_symbols(session, session.elf_given)?;
    let worker = Worker::new(
        Box::new(target),
        symbols.clone(),
        session.profile.clone(),
        session.ram,
    );
    let mut app = App::new(
        format!("snapshot {} (read-only)", path.display()),
        symbols,
        false,
    );
    app.read_only = true;
    run_ui(app, worker, None)?;
    Ok(())
}

/// `kinspect launch`: start QEMU, then attach.
pub fn launch(session: &Session, opts: &LaunchOptions) -> Result<()> {
    need_terminal()?;
    let symbols = match session.elf.as_deref() == Some(opts.kernel.as_path()) {
        true => session_symbols(session, true)?,
        false => None,
    };
    let symbols = match symbols {
        Some(s) => Some(s),
        None => open_symbols(Some(&opts.kernel))?,
    };
    let mut qemu = Qemu::start(&opts.kernel, &opts.fs_img, opts.smp).map_err(Error::Failed)?;
    let addr = format!("localhost:{}", qemu.gdb_port);
    // QEMU opens its stub a moment after it starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let target = loop {
        match QemuTarget::connect(&addr).map(|t| FastQemu::new(t, session.fast_path)) {
            Ok(b) => break b,
            Err(e) => {
                if let Some(status) = qemu.exited() {
                    return Err(Error::Failed(format!(
                        "QEMU exited ({status}) before kinspect could attach"
                    )));
                }
                if Instant::now() > deadline {
                    qemu.kill();
                    return Err(Error::from(e));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let worker = Worker::new(
        Box::new(target),
        symbols.clone(),
        session.profile.clone(),
        session.ram,
    )
    .reconnecting(reconnect_to(&addr, session.fast_path));
    let app = App::new(format!("QEMU pid {} gdb {addr}", qemu.pid()), symbols, true);
    let cmd = qemu.command_line.clone();
    let r = run_ui(app, worker, Some(&mut qemu));
    match r {
        Ok(Leave::Kill) | Err(_) => {
            qemu.kill();
            r.map(|_| ())
        }
        Ok(leave) => {
            let pid = qemu.release();
            let how = if leave == Leave::Halted {
                "halted"
            } else {
                "running"
            };
            eprintln!("kinspect: QEMU (pid {pid}) left {how}: {cmd}");
            eprintln!("kinspect: `kinspect --gdb {addr} attach` comes back; `kill {pid}` stops it");
            Ok(())
        }
    }
}

/// `R`: a new connection to the gdb stub at `addr`.
fn reconnect_to(addr: &str, fast: FastPath) -> worker::Connect {
    let addr = addr.to_string();
    Box::new(
        move || -> std::result::Result<Box<dyn Target + Send>, TargetError> {
            Ok(Box::new(FastQemu::new(QemuTarget::connect(&addr)?, fast)))
        },
    )
}

/// Restores the terminal however the UI ends (panics included).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// Leave now, from a helper thread: put the terminal back, kill the QEMU
/// `launch` started, exit.
fn bail(qemu_pid: Option<u32>, why: &str, code: i32) -> ! {
    // Not through `std::io::stdout()`: the UI thread may hold its lock
    // forever (writing to a terminal that is gone).
    let _ = crossterm::terminal::disable_raw_mode();
    let reset = b"\x1b[?1006l\x1b[?1015l\x1b[?1003l\x1b[?1002l\x1b[?1000l\x1b[?1049l\x1b[?25h";
    // SAFETY: writes `reset.len()` bytes from a live buffer to fd 1; the
    // result is ignored (the terminal may be gone).
    unsafe {
        libc::write(1, reset.as_ptr().cast(), reset.len());
    }
    if let Some(pid) = qemu_pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill(2) takes no pointers; `pid` is the QEMU this process
        // spawned and has not reaped (it is still our child).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    eprintln!("kinspect: {why}");
    std::process::exit(code);
}

/// Whether the terminal on stdin has hung up (its other side closed).
fn terminal_hung_up() -> bool {
    let mut fds = [libc::pollfd {
        fd: 0,
        events: 0,
        revents: 0,
    }];
    // SAFETY: `fds` is a valid array of one pollfd for the whole call;
    // events 0 asks only for the conditions poll always reports (hang-up,
    // error), so no input is consumed.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    n > 0 && fds[0].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Drain what the worker and QEMU sent; true if anything changed.
fn pump(app: &mut App, replies: &Receiver<Reply>, qemu: &mut Option<&mut Qemu>) -> bool {
    let mut changed = false;
    loop {
        match replies.try_recv() {
            Ok(r) => {
                app.apply(r);
                changed = true;
            }
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                if app.lost.is_none() {
                    app.lost = Some("the worker thread ended".into());
                    changed = true;
                }
                break;
            }
        }
    }
    if let Some(q) = qemu.as_deref_mut() {
        let mut n = 0;
        while let Ok(b) = q.output.try_recv() {
            app.console_bytes(&b);
            changed = true;
            n += 1;
            if n > 256 {
                break;
            }
        }
        if !app.qemu_exited {
            if let Some(status) = q.exited() {
                app.qemu_exited = true;
                if app.lost.is_none() {
                    app.lost = Some(format!("QEMU exited ({status})"));
                }
                app.state = RunState::Halted;
                changed = true;
            }
        }
    }
    changed
}

fn flush(app: &mut App, requests: &Sender<Request>, qemu: &mut Option<&mut Qemu>) {
    for r in app.outbox.drain(..) {
        let _ = requests.send(r);
    }
    if !app.console_out.is_empty() {
        let bytes = std::mem::take(&mut app.console_out);
        if let Some(q) = qemu.as_deref_mut() {
            if let Err(e) = q.send(&bytes) {
                app.message = e;
                app.message_is_error = true;
            }
        }
    }
}

/// The event loop. Returns how the user chose to leave the guest.
fn run_ui(mut app: App, mut worker: Worker, mut qemu: Option<&mut Qemu>) -> Result<Leave> {
    let qemu_pid = qemu.as_deref().map(|q| q.pid()).filter(|p| *p != 0);
    app.no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let (req_tx, req_rx) = channel::<Request>();
    let (rep_tx, rep_rx) = channel::<Reply>();
    let handle = std::thread::Builder::new()
        .name("kinspect-target".into())
        .spawn(move || {
            for r in worker.attach() {
                if rep_tx.send(r).is_err() {
                    return;
                }
            }
            worker.run(req_rx, rep_tx);
        })
        .map_err(|e| Error::Failed(format!("cannot start the worker thread: {e}")))?;

    // A closed terminal (SIGHUP) or a kill (SIGTERM, SIGINT) ends kinspect
    // at once, whatever the UI thread is doing (crossterm's poll can spin
    // on a terminal that is gone): the terminal is put back, and `launch`
    // kills the QEMU it started, which runs in its own process group and
    // would otherwise outlive us.
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])
        .map_err(|e| Error::Failed(format!("cannot watch for signals: {e}")))?;
    let signal_handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            bail(qemu_pid, &format!("stopped by signal {sig}"), 128 + sig);
        }
    });
    // The terminal can also vanish without a signal reaching us (tmux
    // killing the pane): its fd then reports a hang-up.
    std::thread::spawn(move || loop {
        if terminal_hung_up() {
            bail(qemu_pid, "the terminal is gone", 129);
        }
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut terminal = ratatui::init();
    let _guard = TerminalGuard;
    let _ = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut dirty = true;
    let leave = loop {
        dirty |= pump(&mut app, &rep_rx, &mut qemu);
        app.tick();
        flush(&mut app, &req_tx, &mut qemu);
        // Redraw on change, and twice a second for the stale-age clock.
        if dirty || last_draw.elapsed() > Duration::from_millis(500) {
            terminal
                .draw(|f| app.hits = view::draw(f, &app))
                .map_err(|e| Error::Failed(format!("drawing: {e}")))?;
            last_draw = Instant::now();
            dirty = false;
        }
        if let Some(l) = app.quit {
            break l;
        }
        // The terminal gone (its reads fail) ends the UI like a signal.
        let gone = if app.launched {
            Leave::Kill
        } else {
            Leave::Running
        };
        match event::poll(Duration::from_millis(30)) {
            Ok(true) => {
                match event::read() {
                    Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => app.on_key(k),
                    Ok(Event::Mouse(m)) => app.on_mouse(m),
                    Ok(_) => {}
                    Err(_) => break gone,
                }
                dirty = true;
            }
            Ok(false) => {}
            Err(_) => break gone,
        }
    };
    // Leave the guest as asked; bounded wait for the worker to confirm.
    let how = if leave == Leave::Halted {
        Leave::Halted
    } else {
        Leave::Running
    };
    let _ = req_tx.send(Request::Finish(how));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut result = Ok(());
    while Instant::now() < deadline {
        match rep_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Reply::Finished(r)) => {
                result = r;
                break;
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    signal_handle.close();
    drop(req_tx);
    if handle.is_finished() {
        let _ = handle.join();
    }
    drop(_guard);
    drop(terminal);
    if let Err(e) = result {
        if app.lost.is_none() && leave != Leave::Kill {
            eprintln!("kinspect: leaving the guest: {e}");
        }
    }
    Ok(leave)
}
