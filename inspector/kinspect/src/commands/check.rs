//! `kinspect check`: the kernel model's consistency checks
//! ([`crate::model::check`]) over the live kernel, with kalloc's numbers.
//!
//! Text: one block per finding (severity, check, object, evidence, why),
//! then a summary line. Exit code 5 ([`crate::cli::exit::FINDINGS`]) when
//! at least one finding is an error.

use serde::Serialize;

use super::{model_error, need_debug, read_kernel, Ctx};
use crate::cli::{Error, Result};
use crate::model::check::{self, Finding, KallocStats, Severity};
use crate::model::{PhysCache, PhysMap};

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
    let map = PhysMap::build(&kernel, &mut phys, &state, ram).map_err(model_error)?;
    let (findings, kalloc) =
        check::run(&kernel, &mut phys, &state, &map, ram).map_err(model_error)?;
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
                "{} free pages ({} KiB) of {m} kalloc manages",
                kalloc.free_pages,
                kalloc.free_bytes / 1024
            ),
            None => format!(
                "{} free pages ({} KiB)",
                kalloc.free_pages,
                kalloc.free_bytes / 1024
            ),
        };
        let nfree = kalloc
            .nfree
            .map(|n| format!(", kmem.nfree {n}"))
            .unwrap_or_default();
        writeln!(
            ctx.out,
            "{} checks over {processes} processes and {page_tables} page tables: {errors} errors, {warnings} warnings; kalloc: {free}{nfree}",
            check::CHECKS.len()
        )?;
    }
    if errors > 0 {
        return Err(Error::Findings(format!(
            "check: {errors} error finding(s) in the kernel"
        )));
    }
    Ok(())
}
