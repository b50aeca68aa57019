//! Rendering tests of every TUI view, drawn into ratatui's `TestBackend`
//! over a crafted `MemoryTarget` laid out like the real kernel: process
//! slots and `cpus[]` written at the addresses and field offsets the
//! kernel's DWARF gives, page tables with superpages, three harts (one in
//! user mode). The worker runs synchronously ([`Worker::handle`]), so the
//! frames are deterministic; each is compared with a snapshot file in
//! tests/snapshots/ (reviewed by eye once, then kept).

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use kinspect::target::memory::{HartState, MemoryTarget};
use kinspect::target::{Csr, RunState};
use kinspect::tui::app::{App, Focus, Tab};
use kinspect::tui::view;
use kinspect::tui::worker::{Reply, Request, Worker};
use kinspect_sv39::Ram;
use kinspect_symbols::Symbols;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const V: u64 = 1;
const R: u64 = 2;
const W: u64 = 4;
const X: u64 = 8;
const U: u64 = 16;
const G: u64 = 32;
const A: u64 = 64;
const D: u64 = 128;

fn pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << 10) | flags
}

// Physical pages of the crafted page tables.
const USER_ROOT: u64 = 0x87f0_0000;
const USER_L1: u64 = 0x87f0_1000;
const USER_L0: u64 = 0x87f0_2000;
const USER_TOP_L1: u64 = 0x87f0_3000;
const USER_TOP_L0: u64 = 0x87f0_4000;
const KERN_ROOT: u64 = 0x87f0_5000;
const KERN_TOP_L1: u64 = 0x87f0_6000;
const KERN_TOP_L0: u64 = 0x87f0_7000;
const KSTACK1_PA: u64 = 0x87f2_0000;
const KSTACK0_PA: u64 = 0x87f2_1000;
/// KSTACK(0): init's kernel stack page.
const KSTACK0: u64 = 0x3f_ffff_d000;
const BOOT_STACK: u64 = 0x87ff_0000;

fn symbols() -> Arc<Symbols> {
    let elf = kinspect_testkit::kernel_elf();
    Arc::new(Symbols::open(&elf).expect("the kernel ELF loads"))
}

fn zero_global(t: &mut MemoryTarget, syms: &Symbols, name: &str) -> u64 {
    let g = syms.global(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let size = g.size.unwrap_or(8) as usize;
    t.mem.write(g.addr, &vec![0u8; size]);
    g.addr
}

/// A machine with init (slot 0, sleeping), sh (slot 1, running on hart 1
/// in user mode) and a zombie (slot 2), hart 0 in the scheduler.
fn machine(syms: &Symbols) -> MemoryTarget {
    let mut t = MemoryTarget {
        name: "crafted machine".into(),
        ..MemoryTarget::default()
    };
    let proc_base = zero_global(&mut t, syms, "proc");
    let cpus_base = zero_global(&mut t, syms, "cpus");
    let kpt = zero_global(&mut t, syms, "kernel_pagetable");
    zero_global(&mut t, syms, "panicked");
    zero_global(&mut t, syms, "panicmsg");
    t.mem.write_u64(kpt, KERN_ROOT);

    let proc_t = syms.type_named("Proc").expect("Proc type");
    let cpu_t = syms.type_named("Cpu").expect("Cpu type");
    let psize = syms.size_of(proc_t).expect("sizeof Proc");
    let csize = syms.size_of(cpu_t).expect("sizeof Cpu");
    let off = |f: &str| syms.field_offset(proc_t, f).expect(f).0;
    let procs = [
        (0u64, 1i32, 2u32, "init", USER_ROOT),
        (1, 2, 4, "sh", USER_ROOT),
        (2, 3, 5, "ls", 0),
    ];
    for (slot, pid, state, name, pt) in procs {
        let p = proc_base + slot * psize;
        t.mem.write(p + off("state"), &state.to_le_bytes());
        t.mem.write(p + off("pid"), &pid.to_le_bytes());
        let mut n = [0u8; 16];
        n[..name.len()].copy_from_slice(name.as_bytes());
        t.mem.write(p + off("name"), &n);
        t.mem.write_u64(p + off("sz"), 0x4000);
        t.mem.write_u64(p + off("pagetable"), pt);
        t.mem.write_u64(p + off("kpagetable"), KERN_ROOT);
    }
    // Every slot keeps its kernel stack for life: KSTACK(i).
    for slot in 0..64u64 {
        let kstack = 0x3f_ffff_f000 - (slot + 1) * 2 * 4096;
        t.mem
            .write_u64(proc_base + slot * psize + off("kstack"), kstack);
    }
    // cpus[1].proc = &proc[1]
    let cpu_proc = syms.field_offset(cpu_t, "proc").expect("Cpu.proc").0;
    t.mem
        .write_u64(cpus_base + csize + cpu_proc, proc_base + psize);

    // The user page table: text and data at 0, a 2 MiB superpage at
    // 0x200000, trapframe and trampoline at the top.
    t.mem.write(USER_ROOT, &[0; 4096]);
    t.mem.write(USER_L1, &[0; 4096]);
    t.mem.write(USER_L0, &[0; 4096]);
    t.mem.write(USER_TOP_L1, &[0; 4096]);
    t.mem.write(USER_TOP_L0, &[0; 4096]);
    t.mem.write_u64(USER_ROOT, pte(USER_L1, V));
    t.mem.write_u64(USER_L1, pte(USER_L0, V));
    t.mem
        .write_u64(USER_L0, pte(0x87f1_0000, V | R | X | U | A));
    t.mem
        .write_u64(USER_L0 + 8, pte(0x87f1_1000, V | R | W | U | A | D));
    t.mem
        .write_u64(USER_L1 + 8, pte(0x87e0_0000, V | R | W | U | A | D));
    t.mem.write_u64(USER_ROOT + 255 * 8, pte(USER_TOP_L1, V));
    t.mem.write_u64(USER_TOP_L1 + 511 * 8, pte(USER_TOP_L0, V));
    t.mem
        .write_u64(USER_TOP_L0 + 510 * 8, pte(0x87f1_2000, V | R | W | A | D));
    t.mem
        .write_u64(USER_TOP_L0 + 511 * 8, pte(0x8000_c000, V | R | X | A));

    // The kernel page table: RAM as one 1 GiB superpage (direct map),
    // the trampoline and one kernel stack at the top.
    t.mem.write(KERN_ROOT, &[0; 4096]);
    t.mem.write(KERN_TOP_L1, &[0; 4096]);
    t.mem.write(KERN_TOP_L0, &[0; 4096]);
    t.mem.write_u64(
        KERN_ROOT + 2 * 8,
        pte(0x8000_0000, V | R | W | X | G | A | D),
    );
    t.mem.write_u64(KERN_ROOT + 255 * 8, pte(KERN_TOP_L1, V));
    t.mem.write_u64(KERN_TOP_L1 + 511 * 8, pte(KERN_TOP_L0, V));
    t.mem
        .write_u64(KERN_TOP_L0 + 511 * 8, pte(0x8000_c000, V | R | X | A));
    t.mem
        .write_u64(KERN_TOP_L0 + 507 * 8, pte(KSTACK1_PA, V | R | W | A | D));
    let mut stack = vec![0u8; 4096];
    stack[..16].copy_from_slice(b"kstack of sh!\0\0\0");
    t.mem.write(KSTACK1_PA, &stack);

    // init (slot 0) sleeps: swtch saved ra (in sched) and s0 in its
    // context; one frame record on its kernel stack names sleep.
    t.mem
        .write_u64(KERN_TOP_L0 + 509 * 8, pte(KSTACK0_PA, V | R | W | A | D));
    t.mem.write(KSTACK0_PA, &[0; 4096]);
    let sched_fn = syms.global("sched").expect("sched").addr;
    let sleep_fn = syms.global("sleep").expect("sleep").addr;
    let s0 = KSTACK0 + 0x1000 - 0x20;
    t.mem
        .write_u64(proc_base + off("context.ra"), sched_fn + 0x10);
    t.mem.write_u64(proc_base + off("context.s0"), s0);
    t.mem
        .write_u64(KSTACK0_PA + (s0 - KSTACK0) - 8, sleep_fn + 0x30); // ra
    t.mem.write_u64(KSTACK0_PA + (s0 - KSTACK0) - 16, 0); // caller's s0

    // Hart 0 in the scheduler, with one frame record below its s0.
    let sched = syms.global("scheduler").expect("scheduler").addr;
    let main = syms.global("main").expect("main").addr;
    t.mem.write(BOOT_STACK - 4096, &[0; 4096]);
    t.mem.write_u64(BOOT_STACK - 8, main + 0x40); // ra
    t.mem.write_u64(BOOT_STACK - 16, 0); // caller's s0: end
    let kern_satp = (8u64 << 60) | (KERN_ROOT >> 12);
    let user_satp = (8u64 << 60) | (USER_ROOT >> 12);
    for h in 0..3u64 {
        let mut hs = HartState::default();
        let user = h == 1;
        hs.regs.pc = if user { 0x1c } else { sched + 0x20 };
        hs.regs.x[1] = main + 0x40;
        hs.regs.x[2] = BOOT_STACK - 0x20 - h * 0x100;
        hs.regs.x[8] = if user { 0x3fe0 } else { BOOT_STACK };
        hs.regs.x[10] = h;
        let satp = if user { user_satp } else { kern_satp };
        for (c, v) in [
            (Csr::Satp, satp),
            (
                Csr::Sstatus,
                if user {
                    0x8000_0002_0000_6020
                } else {
                    0x8000_0002_0000_6122
                },
            ),
            (Csr::Sepc, 0x1c),
            (Csr::Scause, 8),
            (Csr::Stval, 0),
            (Csr::Stvec, sched),
            (Csr::Sscratch, 0),
            (Csr::Sie, 0x222),
            (Csr::Sip, 0x20),
            (Csr::Priv, if user { 0 } else { 1 }),
        ] {
            hs.csrs.insert(c, v);
        }
        t.harts.push(hs);
    }
    t
}

struct Rig {
    app: App,
    worker: Worker,
}

impl Rig {
    fn new(launched: bool) -> Rig {
        Rig::with(launched, |_, _| {})
    }

    /// A rig over the crafted machine as `change` leaves it.
    fn with(launched: bool, change: impl FnOnce(&mut MemoryTarget, &Symbols)) -> Rig {
        let syms = symbols();
        let mut t = machine(&syms);
        change(&mut t, &syms);
        let mut worker = Worker::new(
            Box::new(t),
            Some(syms.clone()),
            kinspect::model::Profile::default(),
            Ram::default(),
        );
        let mut app = App::new("crafted machine".into(), Some(syms), launched);
        for r in worker.attach() {
            app.apply(r);
        }
        let mut rig = Rig { app, worker };
        rig.settle();
        // Ages are shown relative to a frozen clock.
        let taken = rig.app.snapshot.as_ref().expect("a snapshot").taken;
        rig.app.now = Some(taken + Duration::from_millis(3200));
        rig
    }

    /// Run what the app asked for until it asks for nothing more.
    fn settle(&mut self) {
        for _ in 0..20 {
            self.app.tick();
            let reqs: Vec<Request> = self.app.outbox.drain(..).collect();
            if reqs.is_empty() {
                return;
            }
            for r in reqs {
                for rep in self.worker.handle(r) {
                    self.app.apply(rep);
                }
            }
        }
        panic!("the app kept asking");
    }

    fn key(&mut self, code: KeyCode) {
        self.app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
        self.settle();
    }

    fn keys(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    fn command(&mut self, line: &str) {
        self.key(KeyCode::Char(':'));
        self.keys(line);
        self.key(KeyCode::Enter);
    }

    /// The screen with what depends on the kernel build (code addresses,
    /// source line numbers) replaced by names, so the snapshot files only
    /// change when the TUI does.
    fn screen(&mut self, w: u16, h: u16) -> String {
        let raw = self.raw_screen(w, h);
        let syms = self.app.symbols.clone().expect("symbols");
        let mut s = raw;
        for (name, off) in [
            ("scheduler", 0x20u64),
            ("main", 0x40),
            ("scheduler", 0),
            ("sched", 0x10),
            ("sleep", 0x30),
        ] {
            let a = syms.global(name).expect(name).addr + off;
            s = s.replace(&format!("{a:#018x}"), &format!("<{name}+{off:#x}>"));
        }
        redact_lines(&s)
    }

    fn raw_screen(&mut self, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        let app = &mut self.app;
        term.draw(|f| app.hits = view::draw(f, app)).expect("draw");
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..h {
            let mut line = String::new();
            for x in 0..w {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `proc.rs:709` becomes `proc.rs:N`.
fn redact_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(".rs:") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            out.push('N');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn process_table_and_page_table_at_80x24() {
    let mut r = Rig::new(false);
    let s = r.screen(80, 24);
    assert!(
        s.contains("init") && s.contains("sh") && s.contains("ls"),
        "{s}"
    );
    assert!(s.contains("HALTED"), "{s}");
    insta::assert_snapshot!("page_table_80x24", s);
}

#[test]
fn expanding_the_page_table_level_by_level() {
    let mut r = Rig::new(false);
    r.key(KeyCode::Enter); // focus the detail area
    r.key(KeyCode::Enter); // expand root entry 0
    r.key(KeyCode::Down);
    r.key(KeyCode::Enter); // expand its level-1 entry 0
    let s = r.screen(80, 24);
    assert!(s.contains("2M superpage"), "{s}");
    assert!(s.contains(" .. .. ..1: "), "{s}");
    insta::assert_snapshot!("page_table_expanded_80x24", s);
    // Fold again, then the kernel table with its 1 GiB superpage.
    r.key(KeyCode::Up);
    r.key(KeyCode::Enter);
    r.key(KeyCode::Char('u'));
    let s = r.screen(80, 24);
    assert!(s.contains("kernel page table of pid 1"), "{s}");
    assert!(s.contains("1G superpage"), "{s}");
    insta::assert_snapshot!("kernel_page_table_80x24", s);
}

#[test]
fn maps_registers_memory_backtrace_tabs() {
    let mut r = Rig::new(false);
    r.key(KeyCode::Char('2'));
    let s = r.screen(80, 24);
    assert!(
        s.contains("0000000000200000 0000000087e00000 0000000000200000 rw-u-ad"),
        "{s}"
    );
    insta::assert_snapshot!("maps_80x24", s);

    r.key(KeyCode::Char('3'));
    let s = r.screen(80, 24);
    assert!(s.contains("scheduler+0x20"), "{s}");
    assert!(s.contains("Sv39 asid 0 root 0x87f05000"), "{s}");
    insta::assert_snapshot!("registers_80x24", s);

    r.key(KeyCode::Char('t')); // hart 1, in user mode
    r.key(KeyCode::Char('5'));
    let s = r.screen(80, 24);
    assert!(s.contains("user mode"), "{s}");
    r.key(KeyCode::Char('t'));
    r.key(KeyCode::Char('t')); // back to hart 0
    let s = r.screen(80, 24);
    assert!(s.contains("#0") && s.contains("scheduler+0x20"), "{s}");
    assert!(s.contains("#1") && s.contains("main+0x40"), "{s}");
    // init is not on a hart: its chain from the context swtch saved.
    assert!(
        s.contains("pid 1 `init` (sleeping): its saved context"),
        "{s}"
    );
    assert!(s.contains("sched+0x10") && s.contains("sleep+0x30"), "{s}");
    insta::assert_snapshot!("backtrace_80x24", s);

    // Memory at sh's kernel stack, through the kernel page table.
    r.command("proc 1");
    r.command("goto proc[1].kstack");
    let s = r.screen(80, 24);
    assert!(s.contains("|kstack o|"), "{s}");
    insta::assert_snapshot!("memory_80x24", s);
}

#[test]
fn command_line_translates_and_completes() {
    let mut r = Rig::new(false);
    r.command("proc 1");
    r.key(KeyCode::Char('u'));
    r.command("translate proc[1].kstack");
    let s = r.screen(100, 30);
    assert!(s.contains("-> 0x87f20000"), "{s}");
    insta::assert_snapshot!("translate_popup_100x30", s);
    r.key(KeyCode::Esc);
    // Completion of symbol names.
    r.key(KeyCode::Char(':'));
    r.keys("goto kernel_pag");
    r.key(KeyCode::Tab);
    assert_eq!(
        r.app.input.as_ref().map(|i| i.text.as_str()),
        Some("goto kernel_pagetable")
    );
    r.key(KeyCode::Esc);
    // Completion of a struct's fields.
    r.key(KeyCode::Char(':'));
    r.keys("translate proc[0].kst");
    r.key(KeyCode::Tab);
    assert_eq!(
        r.app.input.as_ref().map(|i| i.text.as_str()),
        Some("translate proc[0].kstack")
    );
    r.key(KeyCode::Esc);
    // History.
    r.key(KeyCode::Char(':'));
    r.key(KeyCode::Up);
    assert_eq!(
        r.app.input.as_ref().map(|i| i.text.as_str()),
        Some("translate proc[1].kstack")
    );
    r.key(KeyCode::Esc);
    r.command("vmprint");
    let s = r.screen(100, 30);
    assert!(s.contains("page table 0x0000000087f05000"), "{s}");
    r.key(KeyCode::Esc);
    r.command("frobnicate");
    assert!(r.screen(80, 24).contains("unknown command `frobnicate`"));
}

#[test]
fn filter_help_quit_and_a_wide_terminal() {
    let mut r = Rig::new(true);
    r.key(KeyCode::Char('/'));
    r.keys("zomb");
    r.key(KeyCode::Enter);
    let s = r.screen(80, 24);
    assert!(s.contains("ls") && !s.contains("init  "), "{s}");
    r.key(KeyCode::Esc);
    r.key(KeyCode::Char('?'));
    let s = r.screen(100, 40);
    for (k, _) in kinspect::tui::keys::KEYS {
        assert!(s.contains(k), "help lists `{k}`:\n{s}");
    }
    insta::assert_snapshot!("help_100x40", s);
    r.key(KeyCode::Esc);
    r.key(KeyCode::Char('q'));
    let s = r.screen(80, 24);
    assert!(s.contains("kill QEMU"), "{s}");
    insta::assert_snapshot!("quit_dialog_80x24", s);
    r.key(KeyCode::Esc);
    assert!(r.app.quit.is_none());
    r.app
        .console_bytes(b"xv6 kernel is booting\r\n\r\ninit: starting sh\r\n$ ");
    r.key(KeyCode::Char('6'));
    let s = r.screen(160, 40);
    assert!(s.contains("init: starting sh"), "{s}");
    insta::assert_snapshot!("console_wide_160x40", s);
}

#[test]
fn running_guest_shows_stale_views() {
    let mut r = Rig::new(false);
    r.app.state = RunState::Running;
    let s = r.screen(80, 24);
    assert!(s.contains("RUNNING"), "{s}");
    assert!(s.contains("[stale 3.2s]"), "{s}");
    insta::assert_snapshot!("stale_80x24", s);
    // With a console there are seven tabs: at 80 columns the short
    // titles keep every number on screen, and the stale tag, which no
    // longer fits whole, is left to the status bar rather than cut.
    let mut l = Rig::new(true);
    l.app.state = RunState::Running;
    let s = l.screen(80, 24);
    let bar = s
        .lines()
        .find(|x| x.contains("1 Pages"))
        .unwrap_or_else(|| panic!("no short tab bar in\n{s}"));
    assert!(
        bar.contains("6 Console │ 7 Changes") && !bar.contains("[st"),
        "{s}"
    );
    assert!(s.contains("stale 3.2s"), "{s}");
    // A crafted machine cannot run: continue is refused with a reason.
    r.app.state = RunState::Halted;
    r.key(KeyCode::Char('c'));
    assert!(r.app.message.contains("cannot run"), "{}", r.app.message);
}

#[test]
fn lost_connection_is_shown() {
    let mut r = Rig::new(false);
    r.app
        .apply(Reply::Lost("connection lost: QEMU exited".into()));
    let s = r.screen(80, 24);
    assert!(s.contains("CONNECTION LOST"), "{s}");
    assert!(s.contains("press R to reconnect"), "{s}");
}

#[test]
fn no_color_means_no_colour() {
    let mut r = Rig::new(false);
    r.app.no_color = true;
    let mut term = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    term.draw(|f| {
        view::draw(f, &r.app);
    })
    .expect("draw");
    let buf = term.backend().buffer().clone();
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset);
        assert_eq!(cell.bg, ratatui::style::Color::Reset);
    }
    r.app.no_color = false;
    term.draw(|f| {
        view::draw(f, &r.app);
    })
    .expect("draw");
    let coloured = term
        .backend()
        .buffer()
        .content()
        .iter()
        .any(|c| c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset);
    assert!(coloured, "colours are on without NO_COLOR");
    assert_eq!(r.app.tab, Tab::PageTable);
}

#[test]
fn mouse_selects_a_process_and_a_tab() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut r = Rig::new(false);
    r.screen(80, 24); // lays out the panes the clicks land on
    let click = |column: u16, row: u16| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    let row = r.app.hits.procs_first_row + 1;
    r.app.on_mouse(click(10, row));
    r.settle();
    assert_eq!(r.app.slot, Some(1), "the second row is slot 1");
    let (_, x, _) = *r
        .app
        .hits
        .tabs
        .iter()
        .find(|(t, _, _)| *t == Tab::Maps)
        .expect("a Maps tab title");
    let y = r.app.hits.detail.y;
    r.app.on_mouse(click(x + 1, y));
    r.settle();
    assert_eq!(r.app.tab, Tab::Maps);
    let s = r.screen(80, 24);
    assert!(s.contains("user page table of pid 2 `sh`"), "{s}");
}

#[test]
fn attach_without_a_terminal_is_one_line_and_exit_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kinspect"))
        .args(["--gdb", "localhost:1", "attach"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kinspect");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("need a terminal"), "{err}");
}

/// Issue 12, item 6: guest output is UTF-8, and no control character of it
/// ever reaches the terminal (ESC sequences, C1 CSI, malformed bytes).
#[test]
fn console_output_is_utf8_and_never_controls_the_terminal() {
    let mut r = Rig::new(true);
    r.app
        .console_bytes("h\u{e9}llo \u{2713} \x1b[31mred\x1b[0m \u{9b}2J".as_bytes());
    r.app.console_bytes(b" \x9b\xff\x07end\r\n$ ");
    r.key(KeyCode::Char('6'));
    let mut term = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    term.draw(|f| {
        view::draw(f, &r.app);
    })
    .expect("draw");
    for cell in term.backend().buffer().content() {
        assert!(
            !cell.symbol().chars().any(char::is_control),
            "a control character reaches the terminal: {:?}",
            cell.symbol()
        );
    }
    let s = r.screen(80, 24);
    assert!(
        s.contains("h\u{e9}llo \u{2713} ^[[31mred^[[0m M-^[2J \u{fffd}\u{fffd}^Gend"),
        "{s}"
    );
}

/// The top-left corner of the pane whose title contains `title`.
fn corner(s: &str, title: &str) -> char {
    s.lines()
        .find(|l| l.contains(title))
        .and_then(|l| l.chars().next())
        .unwrap_or('?')
}

/// Issue 12, item 10: the focused pane has a thick border; Tab moves
/// between the process table and the detail area only, so a digit after
/// Tab picks a tab and never reaches the guest; `i` (and only `i`) types
/// to the guest, and the bottom line says so; Esc leaves.
#[test]
fn focus_is_unmistakable_and_typing_to_the_guest_is_deliberate() {
    let mut r = Rig::new(true);
    let s = r.screen(100, 30);
    assert_eq!(corner(&s, "Processes"), '┏', "{s}");
    assert_eq!(corner(&s, "1 Page table"), '┌', "{s}");
    assert!(
        s.contains("i type to guest") && s.contains("1-7 tabs"),
        "{s}"
    );
    r.key(KeyCode::Tab);
    let s = r.screen(100, 30);
    assert_eq!(corner(&s, "Processes"), '┌', "{s}");
    assert_eq!(corner(&s, "1 Page table"), '┏', "{s}");
    for _ in 0..3 {
        r.key(KeyCode::Tab);
        r.key(KeyCode::Char('5'));
        assert_eq!(r.app.tab, Tab::Backtrace);
        r.key(KeyCode::BackTab);
        r.key(KeyCode::Char('6'));
        assert_eq!(r.app.tab, Tab::Console);
        r.key(KeyCode::Enter);
    }
    assert!(r.app.console_out.is_empty(), "{:?}", r.app.console_out);
    assert_ne!(r.app.focus, Focus::Console);
    r.key(KeyCode::Char('i'));
    let s = r.screen(100, 30);
    assert!(
        s.contains("typing to the guest: every key goes to it"),
        "{s}"
    );
    assert!(s.contains("typing goes to the guest"), "{s}");
    r.key(KeyCode::Char('5'));
    assert_eq!(r.app.console_out, b"5");
    r.key(KeyCode::Esc);
    r.key(KeyCode::Char('2'));
    assert_eq!(r.app.tab, Tab::Maps);
    assert_eq!(r.app.console_out, b"5");
    insta::assert_snapshot!("focus_detail_100x30", r.screen(100, 30));
    // attach has six tabs (Changes last) and no console to type to.
    let mut a = Rig::new(false);
    let s = a.screen(100, 30);
    assert!(s.contains("1-6 tabs") && !s.contains("Console"), "{s}");
    a.key(KeyCode::Char('i'));
    assert!(a.app.message.contains("no console"), "{}", a.app.message);
}

/// Issue 12, item 10: Enter on a process row shows its page table.
#[test]
fn enter_on_a_process_shows_its_page_table() {
    let mut r = Rig::new(false);
    r.key(KeyCode::Char('3'));
    r.key(KeyCode::Tab);
    assert_eq!(r.app.focus, Focus::Procs);
    r.key(KeyCode::Down);
    r.key(KeyCode::Enter);
    assert_eq!(r.app.tab, Tab::PageTable);
    let s = r.screen(80, 24);
    assert!(s.contains("user page table of pid 2 `sh`, root"), "{s}");
    assert_eq!(corner(&s, "1 Page table"), '┏', "{s}");
}

/// Issue 12, item 9: a corrupt PTE is marked on its own entry (and, folded,
/// on the tables above it), and its address is PTE2PA as the CLI's vmprint
/// prints it, reserved bits included.
#[test]
fn corrupt_ptes_are_marked_on_their_entries() {
    // Reserved bits 54..60 (and PBMT=1) over a text page at 0x87f41000,
    // and a root entry pointing to a table page nobody wrote.
    let bad = 0x3fc0_0000_0000_0000 | pte(0x87f4_1000, V | R | X | U | A);
    let mut r = Rig::with(false, |t, _| {
        t.mem.write_u64(USER_L0 + 2 * 8, bad);
        t.mem.write_u64(USER_ROOT + 8, pte(0x87f0_9000, V));
    });
    let s = r.screen(120, 30);
    assert!(
        s.contains("▸ ..0: pte") && s.contains("⚠ 1 finding below"),
        "{s}"
    );
    assert!(s.contains("2 findings: "), "{s}");
    let one = s
        .lines()
        .find(|l| l.contains("▸ ..1: pte"))
        .unwrap_or_else(|| panic!("no root entry 1:\n{s}"));
    assert!(one.contains("⚠ its table is unreadable"), "{one}");
    r.key(KeyCode::Char('e'));
    let s = r.screen(120, 30);
    let line = s
        .lines()
        .find(|l| l.contains(" .. .. ..2: "))
        .unwrap_or_else(|| panic!("no entry 2:\n{s}"));
    assert!(
        line.contains(&format!("pte {bad:#018x} pa 0xff00000087f41000 r-xu-a-")),
        "{line}"
    );
    assert!(line.contains("⚠ reserved bits 54..60 set"), "{line}");
    assert!(
        !s.contains("finding below"),
        "expanded, the mark is on the entry:\n{s}"
    );
    insta::assert_snapshot!("corrupt_pte_120x30", s);
}

/// Issue 12, item 9: a return address is named by the call before it
/// (`ra - 1`), as the report's unwinder does: after a call that never
/// returns, `ra` is already the next function's first byte.
#[test]
fn backtrace_names_return_addresses_by_their_call() {
    let syms = symbols();
    let next_fn = syms.global("sleep").expect("sleep").addr;
    let (caller, off) = syms
        .symbolize(next_fn - 1)
        .expect("a function before sleep");
    let want = format!("{caller}+{:#x}", off + 1);
    let mut r = Rig::with(false, |t, _| t.mem.write_u64(BOOT_STACK - 8, next_fn));
    r.key(KeyCode::Char('5'));
    let s = r.raw_screen(100, 30);
    let frame1 = s
        .lines()
        .find(|l| l.contains("#1 "))
        .unwrap_or_else(|| panic!("no frame #1:\n{s}"));
    assert!(frame1.contains(&want), "want {want}:\n{s}");
    assert!(!frame1.contains(" sleep"), "{frame1}");
}

/// Issue 12, item 9: after a panic the hart that panicked and the process
/// it ran are selected, and the message is in the status bar.
#[test]
fn a_panic_selects_its_hart_and_process_and_says_why() {
    let r = Rig::with(false, |t, syms| {
        let panic_fn = syms.elf_symbol("panic").expect("panic").addr;
        let panicked = syms.global("panicked").expect("panicked").addr;
        t.mem.write(panicked, &1i32.to_le_bytes());
        let msg = syms.global("panicmsg").expect("panicmsg").addr;
        t.mem.write(msg, b"mappages: remap\0");
        t.harts[2].regs.pc = panic_fn + 0x10;
        // cpus[2].proc = &proc[2], running.
        let proc_t = syms.type_named("Proc").expect("Proc");
        let cpu_t = syms.type_named("Cpu").expect("Cpu");
        let psize = syms.size_of(proc_t).expect("sizeof Proc");
        let csize = syms.size_of(cpu_t).expect("sizeof Cpu");
        let proc_base = syms.global("proc").expect("proc").addr;
        let cpus = syms.global("cpus").expect("cpus").addr;
        let state = syms.field_offset(proc_t, "state").expect("state").0;
        t.mem
            .write(proc_base + 2 * psize + state, &4u32.to_le_bytes());
        let cpu_proc = syms.field_offset(cpu_t, "proc").expect("Cpu.proc").0;
        t.mem
            .write_u64(cpus + 2 * csize + cpu_proc, proc_base + 2 * psize);
    });
    let mut r = r;
    assert_eq!(r.app.hart, 2);
    assert_eq!(r.app.slot, Some(2));
    let s = r.screen(80, 24);
    let top = s.lines().next().unwrap_or_default();
    assert!(top.contains("HALTED  PANIC: mappages: remap"), "{s}");
    assert!(
        s.contains("the kernel panicked on hart 2 (pid 3 `ls`): mappages: remap"),
        "{s}"
    );
    assert!(s.contains("▸hart2"), "{s}");
}

/// The Changes tab: the first halt has nothing to compare with; a later
/// one shows the worker's Diff (hand-made here) under the two halts it
/// compares, and scrolls like the other lists.
#[test]
fn changes_tab_shows_what_changed_since_the_halt_before() {
    use kinspect::diff::{Diff, FieldChange, ProcChange, RangeChange, TableDiff};
    use kinspect::tui::worker::{Changes, Halt};
    use kinspect_sv39::{PhysAddr, VirtAddr};

    let mut r = Rig::new(false);
    // The attach is the first halt: the worker read a view to compare
    // the next halt with, and says there is nothing yet.
    r.key(KeyCode::Char('6'));
    assert_eq!(r.app.tab, Tab::Changes);
    let s = r.screen(80, 24);
    assert!(
        s.contains("first halt (halt 1 (attach)): nothing to compare yet"),
        "{s}"
    );
    insta::assert_snapshot!("changes_first_halt_80x24", s);

    let before = Halt {
        n: 1,
        why: "attach".into(),
    };
    let after = Halt {
        n: 2,
        why: "halt".into(),
    };
    let range = |change, va: u64, pages, pa: u64, perms: &str| RangeChange {
        change,
        va: VirtAddr(va),
        pages,
        pa_before: (change != "added").then_some(PhysAddr(pa)),
        pa_after: (change != "removed").then_some(PhysAddr(pa)),
        perms_before: (change != "added").then(|| perms.to_string()),
        perms_after: (change != "removed").then(|| perms.to_string()),
    };
    let diff = Diff {
        before: before.to_string(),
        after: after.to_string(),
        ad: false,
        processes: vec![
            ProcChange {
                change: "changed",
                pid: 3,
                name: "vmsteps".into(),
                slot: 2,
                state_before: Some("SLEEPING".into()),
                state_after: Some("SLEEPING".into()),
                fields: vec![FieldChange {
                    field: "sz",
                    before: "0x7000".into(),
                    after: "0x9000".into(),
                }],
            },
            ProcChange {
                change: "appeared",
                pid: 4,
                name: "vmsteps".into(),
                slot: 3,
                state_before: None,
                state_after: Some("RUNNABLE".into()),
                fields: Vec::new(),
            },
        ],
        page_tables: vec![TableDiff {
            pid: 3,
            name: "vmsteps".into(),
            root_before: Some(PhysAddr(0x87f2_1000)),
            root_after: Some(PhysAddr(0x87f2_1000)),
            ranges: vec![
                range("added", 0x7000, 1, 0x87f2_2000, "rw-u-ad"),
                range("added", 0x8000, 1, 0x87f5_1000, "rw-u-ad"),
            ],
            pages_added: 2,
            pages_removed: 0,
            pages_changed: 0,
            notes: Vec::new(),
        }],
    };
    r.app.apply(Reply::Changes(Box::new(Changes {
        halt: after,
        since: Some(before),
        diff: Ok(Some(diff)),
    })));
    let s = r.screen(80, 24);
    for want in [
        "since the halt before: halt 1 (attach) -> halt 2 (halt)",
        "~ pid 3   vmsteps          sz 0x7000 -> 0x9000",
        "+ pid 4   vmsteps          appeared in slot 3 (RUNNABLE)",
        "pid 3 vmsteps, table 0x87f21000: 2 pages added, 0 removed, 0 changed",
        "+ 0x0000007000-0x0000007fff 1 page    -> 0x87f22000  rw-u-ad",
    ] {
        assert!(s.contains(want), "no {want:?} in\n{s}");
    }
    insta::assert_snapshot!("changes_since_the_halt_before_80x24", s);
    // The list scrolls: End puts the cursor on the last line.
    r.key(KeyCode::End);
    let last = kinspect::tui::view::changes_lines(&r.app).len() - 1;
    assert_eq!(r.app.changes_list.cursor, last);

    // A halt whose processes could not be read says so, and which halt
    // the next one is compared with.
    r.app.apply(Reply::Changes(Box::new(Changes {
        halt: Halt {
            n: 3,
            why: "step on hart 0".into(),
        },
        since: Some(Halt {
            n: 2,
            why: "halt".into(),
        }),
        diff: Err("reading proc[]: bad address".into()),
    })));
    let s = r.screen(80, 24);
    assert!(
        s.contains("halt 3 (step on hart 0): the processes could not be read"),
        "{s}"
    );
    assert!(
        s.contains("the next halt is compared with halt 2 (halt)"),
        "{s}"
    );
}

/// Live mode (issue 14): a frame read while the guest runs refreshes the
/// process table and the shown page table, marks what is new or changed
/// (`*`) and what changed while read (`~`), tags those views `[live]`
/// and says so in the status bar, while the registers keep their stale
/// tag. `L` asks the worker; a target without the fast path says why.
#[test]
fn live_frames_refresh_the_running_views_and_mark_changes() {
    use kinspect::tui::worker::LiveFrame;

    let mut r = Rig::new(false);
    r.app.state = RunState::Running;
    let mut procs = match &r.app.snapshot.as_ref().expect("snapshot").procs {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    };
    // sh grew (changed since the frame before); init was caught mid-update.
    let sh = procs.iter().position(|p| p.name == "sh").expect("sh");
    procs[sh].sz += 0x2000;
    let sh_slot = procs[sh].slot;
    let init_slot = procs.iter().find(|p| p.name == "init").expect("init").slot;
    let kpt = r.app.snapshot.as_ref().and_then(|s| s.kernel_pagetable);
    // The shown table (init's), as walked at the attach.
    let (root, _) = r.app.shown_root().expect("a shown table");
    let walk = match r.app.walks.get(&root) {
        Some(kinspect::tui::panes::WalkState::Done(w)) => w.clone(),
        other => panic!("init's table not walked: {other:?}"),
    };
    r.app.apply(Reply::Live(Box::new(LiveFrame {
        n: 42,
        procs,
        kernel_pagetable: kpt,
        torn: vec![init_slot],
        changed: vec![sh_slot],
        walk: Some((root, Ok(walk), false)),
        pages: Some((7, 2)),
        read: Duration::from_micros(1370),
        error: None,
        panicked: false,
    })));
    let s = r.screen(100, 30);
    insta::assert_snapshot!("live_100x30", s);
    assert!(
        s.contains("LIVE frame 42 read in 1.4 ms, never halted"),
        "{s}"
    );
    assert!(s.contains("Processes [live]"), "{s}");
    assert!(s.contains(&format!("{sh_slot}*")), "{s}");
    assert!(s.contains(&format!("{init_slot}~")), "{s}");
    assert!(!s.contains("views from"), "{s}");
    assert!(s.contains("7 pages mapped, +2 just now"), "{s}");
    // The shown process exits: said once, with the table that went.
    let mut gone = match &r.app.snapshot.as_ref().expect("snapshot").procs {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    };
    let shown = r.app.selected_proc().expect("a selected process").clone();
    gone.retain(|p| p.slot != shown.slot);
    r.app.apply(Reply::Live(Box::new(LiveFrame {
        n: 43,
        procs: gone,
        kernel_pagetable: kpt,
        torn: Vec::new(),
        changed: Vec::new(),
        walk: None,
        pages: None,
        read: Duration::from_micros(900),
        error: None,
        panicked: false,
    })));
    let said = format!(
        "pid {} ({}) exited: its page table {:#x} was freed",
        shown.pid, shown.name, shown.pagetable
    );
    assert_eq!(r.app.message, said);
    assert_ne!(
        r.app.slot,
        Some(shown.slot),
        "the gone process is still selected"
    );
    // The registers are not memory: still as the last halt read them.
    r.key(KeyCode::Char('3'));
    let s = r.screen(100, 30);
    assert!(s.contains("[stale 3.2s]"), "{s}");

    // L: off, through the worker; this crafted machine has no fast path,
    // so turning it on again is refused with the reason.
    r.app
        .on_key(KeyEvent::new(KeyCode::Char('L'), KeyModifiers::NONE));
    assert_eq!(r.app.outbox, [Request::Live(false)]);
    r.settle();
    assert_eq!(r.app.live_mode, Ok(false));
    assert!(r.app.live.is_none());
    let s = r.screen(100, 30);
    assert!(s.contains("views from 3.2s ago"), "{s}");
    r.app
        .on_key(KeyEvent::new(KeyCode::Char('L'), KeyModifiers::NONE));
    assert_eq!(r.app.outbox, [Request::Live(true)]);
    r.settle();
    assert!(r.app.live_mode.is_err(), "{:?}", r.app.live_mode);
    assert!(r.app.message.contains("RAM fast path"), "{}", r.app.message);
    // A halt ends live frames.
    r.app.apply(Reply::State(RunState::Halted));
    assert!(r.app.live.is_none());
}
