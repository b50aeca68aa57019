//! `kinspect report`: explain the panic of a halted machine or a snapshot
//! ([`crate::postmortem`]).

use std::path::PathBuf;

use super::{Ctx, Needs, Run};
use crate::error::Result;

/// Explain a panicked kernel: message, harts, processes, backtraces,
/// and what the page tables say about remap, kvmpa, uvmunmap, freewalk
/// and kernel page faults.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect report                          the live machine (halted while read)
  kinspect --snapshot crash.kisnap report  a saved one
  kinspect report --report crash.md        also write Markdown (or .json)
  kinspect report --batch crashes/         every snapshot and QEMU core in a
                                           directory, grouped by cause

With --batch, each file's kernel is --elf, else FILE.elf, else kernel,
kernel.elf or kernel/kernel beside the file (the first of the same build).
Exit 6 if any file could not be reported; the others are reported anyway.
See docs/postmortem.md.")]
pub struct Args {
    /// Also write the report to FILE (.md Markdown, .json JSON, else text).
    #[arg(long = "report", value_name = "FILE", conflicts_with = "batch")]
    pub file: Option<PathBuf>,
    /// md, json or text [default: from FILE's extension].
    #[arg(long, value_name = "FORMAT", conflicts_with = "batch")]
    pub format: Option<String>,
    /// Report many snapshots or QEMU cores (directories are searched),
    /// one line each, then a count of each diagnosis.
    /// A recording from `kinspect trace -o FILE`: a `remap` report then
    /// names who made the mapping the kernel collided with.
    #[arg(long, value_name = "FILE", conflicts_with = "batch")]
    pub trace: Option<PathBuf>,
    #[arg(long, value_name = "DIR|FILE", num_args = 1..)]
    pub batch: Vec<PathBuf>,
    /// With --batch: files read at once [default: one per CPU].
    #[arg(long, value_name = "N", requires = "batch", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        if self.batch.is_empty() {
            Needs::Target {
                trusts_symbols: true,
            }
        } else {
            // Each file is opened with its own kernel.
            Needs::Nothing
        }
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        if !self.batch.is_empty() {
            let opts = crate::postmortem::batch::Options {
                session: ctx.session.clone(),
                jobs: self.jobs.map(|j| j as usize).unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, |n| n.get())
                }),
            };
            return crate::postmortem::batch::main(&self.batch, &opts, ctx.json, ctx.out);
        }
        crate::postmortem::watch::run_report(
            ctx,
            self.file.as_deref(),
            self.format.as_deref(),
            self.trace.as_deref(),
        )
    }
}
