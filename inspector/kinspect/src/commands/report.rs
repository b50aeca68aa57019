//! `kinspect report`: explain the panic of a halted machine or a snapshot
//! ([`crate::postmortem`]).

use std::path::PathBuf;

use super::{Ctx, Run};
use crate::error::Result;

/// Explain a panicked kernel: message, harts, processes, backtraces,
/// and what the page tables say about remap, kvmpa, uvmunmap, freewalk
/// and kernel page faults.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect report                          the live machine (halted while read)
  kinspect --snapshot crash.kisnap report  a saved one
  kinspect report --report crash.md        also write Markdown (or .json)

See docs/postmortem.md.")]
pub struct Args {
    /// Also write the report to FILE (.md Markdown, .json JSON, else text).
    #[arg(long = "report", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// md, json or text [default: from FILE's extension].
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

impl Run for Args {
    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        crate::postmortem::watch::run_report(ctx, self.file.as_deref(), self.format.as_deref())
    }
}
