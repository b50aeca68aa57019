//! `kinspect check`: the kernel model's consistency checks
//! ([`crate::model::check`]) over the live kernel, with kalloc's numbers.
//!
//! Text: one block per finding (severity, check, object, evidence, why),
//! then a summary line. Exit code 5 ([`crate::error::exit::FINDINGS`]) when
//! at least one finding is an error.

use serde::Serialize;

use super::{need_debug, read_kernel, Ctx};
use super::Run;
use crate::error::{Error, Result};
use crate::model::check::{self, Finding, KallocStats, Severity};
use crate::model::{PhysCache, PhysMap};
use crate::words::count;

/// Consistency checks over the live kernel's processes, page tables
/// and free list.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each finding has a severity (error, warning, info), the object, the
evidence read from memory and why it matters. Checks: kernel stacks mapped
R W (not U, not X) in the table each process runs on in the kernel; guard
pages unmapped; TRAMPOLINE mapped R X to `trampoline` in every page table;
TRAPFRAME mapping the process's own trapframe; per-process kernel page
tables equal to kernel_pagetable apart from kernel stacks; the free list
bounded, in RAM, aligned, without cycles and holding no page in use;
no user page shared between processes or writable and executable.
kalloc's statistics come with it.

Exit code 5 when there is at least one error-severity finding.")]
pub struct Args {}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx)
    }
}


/// `--json` output of `check`.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// Errors, then warnings, then infos.
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
    pub kalloc: KallocStats,
    /// Live processes and page tables looked at.
    pub processes: usize,
    pub page_tables: usize,
    /// Which checks ran: (name, what it checks).
    pub checks: Vec<(&'static str, &'static str)>,
}

pub fn run(ctx: &mut Ctx<'_>) -> Result<()> {
    let debug = need_debug(ctx, "check")?;
    let ram = ctx.ram;
    let profile = ctx.profile.clone();
    let mut phys = PhysCache::new(ctx.target()?);
    let (kernel, state) = read_kernel(debug, &profile, &mut phys, ram)?;
    let map = PhysMap::build(&kernel, &mut phys, &state, ram)?;
    let (findings, kalloc) =
        check::run(&kernel, &mut phys, &state, &map, ram)?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let processes = state.live().count();
    let page_tables = map.walks.len();
    if ctx.json {
        ctx.json(&CheckJson {
            findings,
            errors,
            warnings,
            kalloc,
            processes,
            page_tables,
            checks: check::CHECKS.to_vec(),
        })?;
    } else {
        for f in &findings {
            writeln!(ctx.out, "{}: [{}] {}", f.severity, f.check, f.object)?;
            writeln!(ctx.out, "    evidence: {}", f.evidence)?;
            writeln!(ctx.out, "    why: {}", f.why)?;
        }
        let free = match kalloc.managed_pages {
            Some(m) => format!(
                "{} ({} KiB) of {m} kalloc manages",
                count(kalloc.free_pages, "free page", "free pages"),
                kalloc.free_bytes / 1024
            ),
            None => format!(
                "{} ({} KiB)",
                count(kalloc.free_pages, "free page", "free pages"),
                kalloc.free_bytes / 1024
            ),
        };
        let nfree = kalloc
            .nfree
            .map(|n| format!(", kmem.nfree {n}"))
            .unwrap_or_default();
        writeln!(
            ctx.out,
            "{} over {} and {}: {}, {}; kalloc: {free}{nfree}",
            count(check::CHECKS.len(), "check", "checks"),
            count(processes, "process", "processes"),
            count(page_tables, "page table", "page tables"),
            count(errors, "error", "errors"),
            count(warnings, "warning", "warnings"),
        )?;
    }
    if errors > 0 {
        return Err(Error::Findings(format!(
            "check: {} in the kernel",
            count(errors, "error finding", "error findings")
        )));
    }
    Ok(())
}
