//! `kinspect maps`: a page table's mapped ranges, printed exactly like
//! QEMU 7.2's `info mem`.
//!
//! The walk is kinspect's own (`kinspect_sv39::walk` over physical memory
//! read through the target); the merge rules are QEMU's
//! (`kinspect_sv39::info_mem`), so `maps --hart N` equals `info mem` on
//! hart N line for line. Findings about the table go to stderr.

use kinspect_sv39::info_mem::{self, Range};
use kinspect_sv39::{Finding, SatpMode};
use serde::Serialize;

use super::{require_sv39, resolve_root, walk_root, Ctx, Root};
use super::{Needs, Run, Select};
use crate::error::{Error, Result};

/// Mapped ranges of a page table, exactly like QEMU's `info mem`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One line per range of pages with contiguous virtual and physical addresses
and the same attributes, merged by QEMU 7.2's rules, so the output equals
`info mem` on the same hart line for line. attr letters: r w x (read, write,
execute), u (user), g (global), a (accessed), d (dirty); `-` when clear.

  kinspect maps --hart 1
  kinspect maps --satp 0x8000000000087f5e     a process's page table
  kinspect maps --filter u                    user-accessible ranges only
  kinspect maps --filter w,!u                 writable, not user

Odd things in the table (pointers outside RAM, cycles, reserved encodings)
are reported on stderr as `kinspect: warning: ...`.")]
pub struct Args {
    #[command(flatten)]
    pub select: Select,
    /// Keep ranges with every listed attribute (r,w,x,u,g,a,d);
    /// `!x` keeps ranges without it.
    #[arg(long, value_delimiter = ',', value_name = "ATTRS")]
    pub filter: Vec<String>,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Target {
            trusts_symbols: self.select.names_symbols(),
        }
    }

fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, &self.select, &self.filter)
    }
}


/// `--json` output of `maps`.
#[derive(Debug, Serialize)]
pub struct MapsJson {
    #[serde(flatten)]
    pub root: Root,
    /// Merged ranges: va (canonical), pa, size, attrs (`rwxugad`).
    pub ranges: Vec<Range>,
    /// Odd things found in the table (see docs/commands/maps.md).
    pub findings: Vec<Finding>,
    /// Table pages read.
    pub tables: usize,
}

/// One `--filter` term: an attribute letter that must be set (or clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    pub letter: char,
    pub set: bool,
}

/// Parse `--filter` items such as `w`, `u`, `!x`, `rw`.
pub fn parse_filter(items: &[String]) -> Result<Vec<Term>> {
    let mut terms = Vec::new();
    for item in items {
        let (set, letters) = match item.trim().strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, item.trim()),
        };
        if letters.is_empty() {
            return Err(Error::BadInput(format!(
                "--filter `{item}`: expected attribute letters from rwxugad"
            )));
        }
        for letter in letters.chars() {
            if !"rwxugad".contains(letter) {
                return Err(Error::BadInput(format!(
                    "--filter `{item}`: `{letter}` is not an attribute (use r w x u g a d, `!x` for clear)"
                )));
            }
            terms.push(Term { letter, set });
        }
    }
    Ok(terms)
}

pub fn run(ctx: &mut Ctx<'_>, select: &Select, filter: &[String]) -> Result<()> {
    let terms = parse_filter(filter)?;
    let root = resolve_root(ctx, select)?;
    if root.mode == SatpMode::Bare {
        if ctx.json {
            return ctx.json(&MapsJson {
                root,
                ranges: Vec::new(),
                findings: Vec::new(),
                tables: 0,
            });
        }
        // QEMU's own words for this case.
        writeln!(ctx.out, "No translation or protection")?;
        return Ok(());
    }
    require_sv39(&root)?;
    let w = walk_root(ctx, root.root)?;
    let ranges: Vec<Range> = info_mem::ranges(&w)
        .into_iter()
        .filter(|r| terms.iter().all(|t| r.has(t.letter) == t.set))
        .collect();
    if ctx.json {
        return ctx.json(&MapsJson {
            root,
            ranges,
            findings: w.findings,
            tables: w.tables.len(),
        });
    }
    write!(ctx.out, "{}", info_mem::render(&ranges))?;
    ctx.warn_findings(&w.findings)
}
