//! `kinspect watch`: wait for the live kernel to panic, then report
//! ([`crate::postmortem::watch`]).

use std::path::PathBuf;

use super::{Ctx, Needs, Run};
use crate::error::{Error, Result};

/// Wait for the kernel to panic (a breakpoint on `panic`), then report.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect watch --report crash.md
A kernel that has already panicked is reported at once.")]
pub struct Args {
    /// Also write the report to FILE (.md Markdown, .json JSON, else text).
    #[arg(long = "report", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// md, json or text [default: from FILE's extension].
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 86400)]
    pub timeout: u64,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        if ctx.session.snapshot.is_some() {
            return Err(Error::BadInput(
                "watch needs a live QEMU (not --snapshot): kinspect --gdb HOST:PORT watch".into(),
            ));
        }
        crate::postmortem::watch::watch(
            ctx.session,
            self.file.as_deref(),
            self.format.as_deref(),
            self.timeout,
            ctx.out,
            ctx.warn,
        )
    }
}
