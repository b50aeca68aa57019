//! `kinspect vmprint`: a page table as the xv6 pgtbl lab's `vmprint` tree.
//!
//! One line per valid PTE, ` ..` per level, index in decimal (or, with
//! `--va`, the virtual address the entry starts at), values as xv6's `%p`.
//! `--va-range START-END` keeps the entries that map some of that range
//! (and the pointers on the way down to them): the kernel's table has
//! ~34,000 entries, its top gigabyte a few dozen.

use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{Finding, VirtAddr, WalkEntry};
use serde::Serialize;

use super::{parse_va, require_sv39, resolve_root, walk_root, Ctx, Root};
use super::{Needs, Run, Select};
use crate::error::{Error, Result};

/// Print a page table as the xv6 pgtbl lab's vmprint tree.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One line per valid PTE, depth shown by ` ..`, index in decimal:

  page table 0x0000000087f6e000
   ..0: pte 0x0000000021fda801 pa 0x0000000087f6a000
   .. ..0: pte 0x0000000021fda401 pa 0x0000000087f69000
   .. .. ..0: pte 0x0000000021fdac1f pa 0x0000000087f6b000

With --va each line starts with the virtual address the entry maps
instead (as newer lab versions print). --va-range keeps only the entries
that map some of a virtual range, and the pointers down to them:

  kinspect vmprint --kernel --va-range 0x3fc0000000-0x4000000000
                                        the top gigabyte (root entry 255)
  kinspect vmprint --pid 1 --va-range 0..0x4000   pid 1's first four pages")]
pub struct Args {
    #[command(flatten)]
    pub select: Select,
    /// Label entries with their virtual address instead of their index.
    #[arg(long)]
    pub va: bool,
    /// Only entries that map some of [START, END): `START-END` or
    /// `START..END`, numbers or symbols (END is not included).
    #[arg(long, value_name = "START-END")]
    pub va_range: Option<String>,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Target {
            trusts_symbols: self.select.names_symbols() || self.va_range.is_some(),
        }
    }

fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, &self.select, self.va, self.va_range.as_deref())
    }
}


/// `--json` output of `vmprint`.
#[derive(Debug, Serialize)]
pub struct VmprintJson {
    #[serde(flatten)]
    pub root: Root,
    /// `--va-range`: the range asked for, `[start, end)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub va_range: Option<VaRange>,
    /// Every valid entry in walk order (within `va_range`): level
    /// (2 = root), index, va, pte, table (the page holding the entry).
    pub entries: Vec<WalkEntry>,
    pub findings: Vec<Finding>,
}

/// A virtual range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VaRange {
    pub start: VirtAddr,
    pub end: VirtAddr,
}

/// Parse `START-END` or `START..END`; each end a number or a symbol
/// expression; END excluded, so it must be above START.
pub fn parse_va_range(ctx: &mut Ctx<'_>, s: &str) -> Result<VaRange> {
    let (a, b) = s
        .split_once("..")
        .or_else(|| s.split_once('-'))
        .ok_or_else(|| {
            Error::BadInput(format!(
                "--va-range `{s}`: expected START-END or START..END, e.g. 0x3fc0000000-0x4000000000"
            ))
        })?;
    let start = parse_va(ctx, a.trim())?;
    let end = parse_va(ctx, b.trim())?;
    if start >= end {
        return Err(Error::BadInput(format!(
            "--va-range `{s}`: the end {end:#x} is not above the start {start:#x} (END is excluded)"
        )));
    }
    Ok(VaRange { start, end })
}

pub fn run(ctx: &mut Ctx<'_>, select: &Select, va: bool, va_range: Option<&str>) -> Result<()> {
    let range = va_range.map(|s| parse_va_range(ctx, s)).transpose()?;
    let root = resolve_root(ctx, select)?;
    require_sv39(&root)?;
    let mut w = walk_root(ctx, root.root)?;
    let (start, end) = range.map_or((VirtAddr(0), VirtAddr(u64::MAX)), |r| (r.start, r.end));
    if ctx.json {
        w.entries.retain(|e| vmprint::meets(e, start, end));
        return ctx.json(&VmprintJson {
            root,
            va_range: range,
            entries: w.entries,
            findings: w.findings,
        });
    }
    let label = if va { Label::Va } else { Label::Index };
    for line in vmprint::lines_in(&w, label, start, end) {
        writeln!(ctx.out, "{line}")?;
    }
    ctx.warn_findings(&w.findings)
}
