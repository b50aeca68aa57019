//! `kinspect vmprint`: a page table as the xv6 pgtbl lab's `vmprint` tree.
//!
//! One line per valid PTE, ` ..` per level, index in decimal (or, with
//! `--va`, the virtual address the entry starts at), values as xv6's `%p`.

use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{Finding, WalkEntry};
use serde::Serialize;

use super::{require_sv39, resolve_root, walk_root, Ctx, Root};
use crate::cli::{Result, Select};

/// `--json` output of `vmprint`.
#[derive(Debug, Serialize)]
pub struct VmprintJson {
    #[serde(flatten)]
    pub root: Root,
    /// Every valid entry in walk order: level (2 = root), index, va,
    /// pte, table (the page holding the entry).
    pub entries: Vec<WalkEntry>,
    pub findings: Vec<Finding>,
}

pub fn run(ctx: &mut Ctx<'_>, select: &Select, va: bool) -> Result<()> {
    let root = resolve_root(ctx, select)?;
    require_sv39(&root)?;
    let w = walk_root(ctx, root.root)?;
    if ctx.json {
        return ctx.json(&VmprintJson {
            root,
            entries: w.entries,
            findings: w.findings,
        });
    }
    let label = if va { Label::Va } else { Label::Index };
    for line in vmprint::lines(&w, label) {
        writeln!(ctx.out, "{line}")?;
    }
    ctx.warn_findings(&w.findings)
}
