//! `kinspect blame VA`: who mapped this page, from a `kinspect trace`
//! recording.
//!
//! The table is chosen as for `translate` (`--pid N`, `--kernel`, `--root`,
//! default hart 0's satp) on the live machine or a snapshot; the answer is
//! the last event of the recording that mapped the page in that table
//! ([`crate::trace::Trace::blame`]), and whether it was unmapped since.
//! What the table maps now is read too, so a mapping older than the
//! recording is told apart from one that is gone.

use std::path::PathBuf;

use kinspect_sv39::{PhysAddr, VirtAddr};
use serde::Serialize;

use super::{parse_va, resolve_root, Ctx, Root, Run, Select};
use crate::error::{Error, Result};
use crate::trace::{Event, Trace};

/// Who mapped the page at VA: the recording's answer (kinspect trace).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect trace -o trace.json             record (Ctrl-C to stop)
  kinspect blame 0x4000 --pid 3 --trace trace.json
  kinspect blame 0x10000000 --kernel --trace trace.json
Example answer:
  0x4000 in pid 3's user page table (root 0x87f41000):
    mapped by growproc at tick 312 on hart 1, pid 3 (sh)
    call chain: mappages <- uvmalloc <- growproc <- sys_sbrk <- syscall
    va 0x4000-0x14000 -> pa 0x87f2c000 rw-u (one call)
A page mapped before the recording began has no answer: start QEMU halted
(-S) and trace from reset to record every mapping.")]
pub struct Args {
    /// The virtual address (hex, decimal, or a symbol expression).
    pub va: String,
    /// The recording, from `kinspect trace -o FILE`.
    #[arg(long, value_name = "FILE")]
    pub trace: PathBuf,
    #[command(flatten)]
    pub select: Select,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, self)
    }
}

/// `--json`.
#[derive(Debug, Serialize)]
struct BlameJson<'t> {
    va: VirtAddr,
    table: Root,
    /// The last mapping of the page in the recording.
    mapped: Option<&'t Event>,
    /// An unmapping after it.
    unmapped: Option<&'t Event>,
    /// The function that asked for the mapping (callers past the helpers).
    made_by: Option<&'t str>,
    /// Whether the table maps the page now.
    mapped_now: bool,
    /// When no call mapped it in this table: the mapping of the same
    /// page in another table (an entry copied from there).
    copied_from: Option<&'t Event>,
}

fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result<()> {
    let trace = Trace::load(&args.trace).map_err(Error::BadInput)?;
    if let Some(syms) = ctx.symbols() {
        if syms.file_name() != trace.elf {
            writeln!(
                ctx.warn,
                "kinspect: warning: {} was recorded with {}, not {}",
                args.trace.display(),
                trace.elf,
                syms.file_name()
            )?;
        }
    }
    let va = parse_va(ctx, &args.va)?;
    let root = resolve_root(ctx, &args.select)?;
    super::require_sv39(&root)?;
    let ram = ctx.ram;
    let mut phys = crate::model::PhysCache::new(ctx.target()?);
    // The recording holds raw numbers (PTE addresses, VAs, PAs).
    let mut slot_of =
        |table: u64| crate::trace::leaf_slot(&mut phys, PhysAddr(table), va, ram).map(|s| s.0);
    let mapped_now = slot_of(root.root.0).is_some();
    let b = trace.blame(root.root.0, va.0, None, &mut slot_of);
    let copied_from = match b.mapped {
        None => crate::trace::leaf(&mut phys, root.root, va, ram)
            .and_then(|(_, pa)| trace.same_page(va.0, pa.0, None)),
        Some(_) => None,
    };
    drop(phys);
    if ctx.json {
        return ctx.json(&BlameJson {
            va,
            made_by: b.mapped.map(Event::made_by),
            mapped: b.mapped,
            unmapped: b.unmapped,
            table: root,
            mapped_now,
            copied_from,
        });
    }
    let out = &mut *ctx.out;
    writeln!(out, "{va:#x} in {}:", root.describe())?;
    match b.mapped {
        Some(e) => {
            writeln!(out, "  mapped by {} {}, {}", e.made_by(), e.when(), e.who())?;
            writeln!(out, "  call chain: {}", e.chain.join(" <- "))?;
            writeln!(
                out,
                "  va {:#x}-{:#x} -> pa {:#x} {} (one call)",
                e.va,
                e.va.wrapping_add(e.size),
                e.pa.unwrap_or(0),
                e.perm.as_deref().unwrap_or("?")
            )?;
            if let Some(u) = b.unmapped {
                writeln!(
                    out,
                    "  unmapped since by {} {}, {}{}",
                    u.made_by(),
                    u.when(),
                    u.who(),
                    if u.free == Some(true) {
                        " (pages freed)"
                    } else {
                        ""
                    }
                )?;
                writeln!(out, "  call chain: {}", u.chain.join(" <- "))?;
            }
        }
        None => {
            if let Some(u) = b.unmapped {
                writeln!(
                    out,
                    "  mapped before the recording began; unmapped by {} {}, {}",
                    u.made_by(),
                    u.when(),
                    u.who()
                )?;
            } else if let Some(e) = copied_from {
                writeln!(
                    out,
                    "  no call mapped it in this table: the entry was written some other way (a table copied entry by entry?)"
                )?;
                writeln!(
                    out,
                    "  it holds the page that {} mapped in the table at {:#x} {}, {}",
                    e.made_by(),
                    e.table,
                    e.when(),
                    e.who()
                )?;
                writeln!(out, "  call chain: {}", e.chain.join(" <- "))?;
            } else if mapped_now {
                writeln!(
                    out,
                    "  mapped, but not by any call in {} ({}): made before the recording began",
                    args.trace.display(),
                    if trace.from_reset {
                        "recorded from reset, so not through mappages: a table copied or written directly?"
                    } else {
                        "start QEMU halted and trace from reset to see every mapping"
                    }
                )?;
            } else {
                writeln!(
                    out,
                    "  not mapped, and no call in {} mapped it",
                    args.trace.display()
                )?;
            }
        }
    }
    if b.mapped.is_some() && b.unmapped.is_none() && !mapped_now {
        writeln!(
            out,
            "  note: the table does not map it now: changed after the recording ended"
        )?;
    }
    Ok(())
}
