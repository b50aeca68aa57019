//! `kinspect top`: the process table and one process's page table,
//! refreshed about ten times a second while the guest runs, never halted.
//!
//! It needs the RAM fast path ([`crate::target::fastram`]): memory is read
//! from the QEMU process while the harts execute, so a frame costs no
//! stop. The guest is halted once at connect (QEMU does that on attach) to
//! check the kernel image, then resumed if it was running, and left so.
//!
//! Reads of a running guest can tear: a `struct proc` may change between
//! the first and the last byte read. Each frame therefore reads `proc[]`
//! (and the selected page table) twice; a slot whose two reads differ is
//! marked `~` (changed while read) instead of being shown as one instant.
//! What changed since the previous frame is marked too: `+` a new process,
//! `*` a changed one (state, size, page table), `-` one that exited; the
//! selected page table's mapped pages are counted with the difference
//! (`+1 page` after an `sbrk`) and "freed" when its process is gone.
//! See docs/fast-path.md ("Live mode").

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Ctx, Needs, Run};
use crate::error::{Error, Result};
use crate::model::{Kernel, PhysCache};
use crate::session::Session;
use crate::target::fastram::{FastPath, FastQemu};
use crate::target::Target;

/// Watch processes and one page table change while the guest runs,
/// refreshed about 10 times a second, without halting it (needs the
/// RAM fast path: QEMU on this host).
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "\
  kinspect top                       refresh until Ctrl-C
  kinspect top --pid 3               follow pid 3's page table
  kinspect top --once                one frame
  kinspect --json top --frames 20    20 frames as one JSON document

Marks: + new process, * changed (state, size, page table), - exited,
~ changed while it was being read (shown, but not one instant). The
followed page table's user pages are counted with the change since the
last frame (+1 after an sbrk) and reported freed when its process exits.
See docs/fast-path.md.")]
pub struct Args {
    /// Print one frame and stop.
    #[arg(long, conflicts_with = "frames")]
    pub once: bool,
    /// Stop after N frames.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub frames: Option<u64>,
    /// Milliseconds between frames.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=60000))]
    pub interval: u64,
    /// Follow this process's user page table [default: the newest].
    #[arg(long, value_name = "N")]
    pub pid: Option<i64>,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        // The live QEMU, through the fast path, opened here.
        Needs::Itself
    }

    fn read_only(&self) -> bool {
        // It runs the guest, which a snapshot cannot.
        false
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        if ctx.session.snapshot.is_some() {
            return Err(Error::BadInput(
                "top needs a live QEMU on this host (not --snapshot): kinspect --gdb HOST:PORT top"
                    .into(),
            ));
        }
        main(ctx.session, self, ctx.out, ctx.warn)
    }
}

/// One process as a frame shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TopProc {
    pub pid: i64,
    pub state: String,
    pub name: String,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub sz: Option<u64>,
    pub pagetable: kinspect_sv39::PhysAddr,
    /// `new`, `changed` or `same` since the previous frame.
    pub change: &'static str,
    /// The slot changed between the two reads of this frame.
    pub torn: bool,
}

/// The followed process's user page table.
#[derive(Clone, Debug, Serialize)]
pub struct TopTable {
    pub pid: i64,
    pub name: String,
    pub root: kinspect_sv39::PhysAddr,
    /// Mapped user pages (leaves with U), 4 KiB each.
    pub user_pages: u64,
    /// Table pages of the walk.
    pub table_pages: usize,
    /// `user_pages` minus the previous frame's, same table.
    pub delta: i64,
    /// The two walks of this frame differed.
    pub torn: bool,
    /// The process the previous frame followed is gone: its table was freed.
    pub freed: Option<String>,
}

/// One refresh.
#[derive(Clone, Debug, Serialize)]
pub struct Frame {
    pub frame: u64,
    /// Milliseconds since the first frame.
    pub ms: u64,
    /// The kernel's `ticks`, where the kernel has that integer (C xv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticks: Option<u64>,
    /// How long reading this frame took, in microseconds.
    pub read_us: u64,
    pub procs: Vec<TopProc>,
    /// Processes of the previous frame that are gone.
    pub exited: Vec<TopProc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<TopTable>,
    /// The frame could not be read whole (after retries): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `kinspect top`: connect, resume, refresh until done or Ctrl-C.
fn main(session: &Session, args: &Args, out: &mut dyn Write, warn: &mut dyn Write) -> Result<()> {
    let debug = session.symbols().ok_or_else(|| {
        Error::BadInput(
            session
                .elf_error()
                .unwrap_or(
                    "top reads proc[] and needs the kernel ELF with debug info (give --elf PATH)",
                )
                .into(),
        )
    })?;
    if session.fast_path == FastPath::Off {
        return Err(Error::BadInput(
            "top reads the guest while it runs, which only the fast path can: drop --no-fast-path"
                .into(),
        ));
    }
    let mut t = session.connect(warn)?;
    let r = run(session, args, debug, &mut t, out);
    let done = t.finish().map_err(Error::from);
    r.and(done)
}

fn run(
    session: &Session,
    args: &Args,
    debug: &kinspect_symbols::Symbols,
    t: &mut FastQemu,
    out: &mut dyn Write,
) -> Result<()> {
    if t.fast().is_none() {
        return Err(Error::Failed(format!(
            "top reads the guest while it runs and needs the fast path: {}",
            t.fallback().unwrap_or("not available")
        )));
    }
    let ram = session.ram;
    let profile = session.profile.clone();
    let kernel = Kernel::new(debug, profile)?;
    // Once, halted: is this the kernel the ELF describes?
    {
        let mut phys = PhysCache::new(&mut *t);
        kernel.verify_image(&mut phys)?;
    }
    let ticks = debug
        .global("ticks")
        .ok()
        .filter(|g| g.ty.and_then(|ty| debug.size_of(ty).ok()) == Some(4));
    // From here on nothing halts the guest: memory only, from the host.
    t.set_live(true);
    if t.stub().was_running() {
        t.stub()
            .session()
            .resume()
            .map_err(|e| Error::Failed(e.to_string()))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop));
    let tty = !session.json && std::io::stdout().is_terminal() && !args.once;
    let limit = if args.once { Some(1) } else { args.frames };
    let interval = Duration::from_millis(args.interval);
    let start = Instant::now();
    let mut prev: Option<Frame> = None;
    let mut frames = Vec::new();
    let mut n = 0u64;
    while limit.is_none_or(|l| n < l) && !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let frame = read_frame(
            &kernel,
            t,
            ram,
            ticks.as_ref().map(|g| g.addr),
            args.pid,
            prev.as_ref(),
            n,
            start,
        );
        if session.json {
            frames.push(frame.clone());
        } else {
            if tty {
                write!(out, "\x1b[H\x1b[2J")?;
            }
            write!(out, "{}", render(&frame))?;
            out.flush()?;
        }
        prev = Some(frame);
        n += 1;
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        let spent = t0.elapsed();
        if spent < interval {
            std::thread::sleep(interval - spent);
        }
    }
    if session.json {
        let s = serde_json::to_string_pretty(&serde_json::json!({ "frames": frames }))
            .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
        writeln!(out, "{s}")?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn read_frame(
    kernel: &Kernel<'_>,
    t: &mut FastQemu,
    ram: kinspect_sv39::Ram,
    ticks_at: Option<u64>,
    want_pid: Option<i64>,
    prev: Option<&Frame>,
    n: u64,
    start: Instant,
) -> Frame {
    let t0 = Instant::now();
    let ticks = ticks_at.and_then(|pa| {
        let mut b = [0u8; 4];
        t.read_phys(pa, &mut b)
            .ok()
            .map(|_| u64::from(u32::from_le_bytes(b)))
    });
    let mut frame = Frame {
        frame: n,
        ms: start.elapsed().as_millis() as u64,
        ticks,
        read_us: 0,
        procs: Vec::new(),
        exited: Vec::new(),
        table: None,
        error: None,
    };
    let (a, b, torn) = match crate::live::procs_twice(kernel, t, ram) {
        Ok(twice) => (twice.first, twice.second, twice.torn),
        Err(e) => {
            frame.error = Some(e);
            frame.read_us = t0.elapsed().as_micros() as u64;
            return frame;
        }
    };
    let before: BTreeMap<i64, &TopProc> = prev
        .map(|p| p.procs.iter().map(|x| (x.pid, x)).collect())
        .unwrap_or_default();
    for (pa, pb) in a.procs.iter().zip(&b.procs) {
        if !pb.is_live() && !pa.is_live() {
            continue;
        }
        let p = if pb.is_live() { pb } else { pa };
        let mut row = TopProc {
            pid: p.pid,
            state: p.state.name(),
            name: p.name.clone(),
            sz: p.sz,
            pagetable: p.pagetable,
            change: "same",
            torn: torn.contains(&pb.slot),
        };
        row.change = match before.get(&row.pid) {
            None if prev.is_some() => "new",
            Some(old)
                if old.state != row.state
                    || old.sz != row.sz
                    || old.pagetable != row.pagetable
                    || old.name != row.name =>
            {
                "changed"
            }
            _ => "same",
        };
        frame.procs.push(row);
    }
    frame.procs.sort_by_key(|p| p.pid);
    if let Some(p) = prev {
        frame.exited = p
            .procs
            .iter()
            .filter(|o| !frame.procs.iter().any(|x| x.pid == o.pid))
            .cloned()
            .collect();
    }
    // The followed table: the asked pid, else the previous frame's, else
    // the newest process.
    let follow = want_pid
        .or_else(|| prev.and_then(|p| p.table.as_ref().map(|t| t.pid)))
        .filter(|pid| frame.procs.iter().any(|p| p.pid == *pid))
        .or_else(|| frame.procs.iter().map(|p| p.pid).max());
    let freed = prev
        .and_then(|p| p.table.as_ref())
        .filter(|old| !frame.procs.iter().any(|p| p.pid == old.pid))
        .map(|old| {
            format!(
                "pid {} ({}) exited: table {:#x} freed",
                old.pid, old.name, old.root
            )
        });
    if let Some(row) = follow.and_then(|pid| frame.procs.iter().find(|p| p.pid == pid)) {
        if row.pagetable.0 != 0 {
            let (walk, walk_torn) = crate::live::walk_twice(t, row.pagetable, ram);
            let counted = walk.ok().map(|w| {
                let pages: u64 = w
                    .leaves()
                    .filter(|l| l.pte.has(kinspect_sv39::PteFlags::U))
                    .map(|l| l.size / 4096)
                    .sum();
                (pages, w.tables.len())
            });
            if let Some((pages, tables)) = counted {
                let old = prev
                    .and_then(|p| p.table.as_ref())
                    .filter(|o| o.pid == row.pid && o.root == row.pagetable);
                frame.table = Some(TopTable {
                    pid: row.pid,
                    name: row.name.clone(),
                    root: row.pagetable,
                    user_pages: pages,
                    table_pages: tables,
                    delta: old.map_or(0, |o| pages as i64 - o.user_pages as i64),
                    torn: walk_torn,
                    freed: freed.clone(),
                });
            }
        }
    }
    if frame.table.is_none() {
        if let Some(f) = freed {
            // Keep saying what happened to the table we followed.
            frame.table = prev.and_then(|p| p.table.clone()).map(|mut t| {
                t.freed = Some(f);
                t.user_pages = 0;
                t.table_pages = 0;
                t
            });
        }
    }
    frame.read_us = t0.elapsed().as_micros() as u64;
    frame
}

/// A frame as text.
pub fn render(f: &Frame) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "kinspect top: frame {}, {:.1} s",
        f.frame,
        f.ms as f64 / 1000.0
    ));
    if let Some(t) = f.ticks {
        s.push_str(&format!(", ticks {t}"));
    }
    s.push_str(&format!(
        ", read in {:.2} ms, guest running (not halted)\n",
        f.read_us as f64 / 1000.0
    ));
    if let Some(e) = &f.error {
        s.push_str(&format!("  (no consistent read this frame: {e})\n"));
        return s;
    }
    s.push_str("    PID  STATE     NAME             SZ        PAGETABLE\n");
    for p in &f.procs {
        let mark = match (p.torn, p.change) {
            (true, _) => '~',
            (false, "new") => '+',
            (false, "changed") => '*',
            _ => ' ',
        };
        s.push_str(&format!(
            "  {mark} {:>4}  {:<8}  {:<15}  {:<8}  {:#x}{}\n",
            p.pid,
            p.state,
            p.name,
            p.sz.map_or("-".to_string(), |z| format!("{z:#x}")),
            p.pagetable,
            if p.torn { "  (changed while read)" } else { "" }
        ));
    }
    for p in &f.exited {
        s.push_str(&format!("  - {:>4}  exited    {}\n", p.pid, p.name));
    }
    if let Some(t) = &f.table {
        match &t.freed {
            Some(why) if t.table_pages == 0 => s.push_str(&format!("  page table: {why}\n")),
            _ => {
                let delta = match t.delta {
                    0 => String::new(),
                    d => format!(" ({d:+} since the last frame)"),
                };
                s.push_str(&format!(
                    "  pid {} ({}) user page table {:#x}: {} user pages mapped{delta}, {} table pages{}\n",
                    t.pid,
                    t.name,
                    t.root,
                    t.user_pages,
                    t.table_pages,
                    if t.torn { " (changed while read)" } else { "" }
                ));
                if let Some(why) = &t.freed {
                    s.push_str(&format!("  page table: {why}\n"));
                }
            }
        }
    }
    s.push_str("  + new  * changed  - exited  ~ changed while read\n");
    s
}
