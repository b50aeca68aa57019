//! `kinspect diff BEFORE AFTER|--live`: what changed between two moments
//! ([`crate::diff`]).

use std::path::PathBuf;

use super::{Ctx, Needs, Run};
use crate::error::{Error, Result};

/// What changed between two moments: processes that appeared, ended or
/// changed, and each process's user page-table mappings added, removed
/// or changed, grouped into ranges.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect snapshot -o before.kisnap      (then let the kernel run: fork, exec, sbrk ...)
  kinspect snapshot -o after.kisnap
  kinspect diff before.kisnap after.kisnap
  kinspect diff before.kisnap --live      against the machine as it is now

Both sides must be of the kernel build the ELF (--elf) is. Changes of the
accessed/dirty bits alone are left out unless --ad. See docs/diff.md.")]
pub struct Args {
    /// The earlier moment: a snapshot or QEMU core.
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,
    /// The later moment: a snapshot or QEMU core.
    #[arg(value_name = "AFTER", required_unless_present = "live", conflicts_with = "live")]
    pub after: Option<PathBuf>,
    /// Compare with the machine on --gdb now (halted while read).
    #[arg(long)]
    pub live: bool,
    /// Count changes of the accessed (A) and dirty (D) bits too.
    #[arg(long)]
    pub ad: bool,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        // Two sides, opened here: snapshots, and the live machine.
        Needs::Itself
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        let session = ctx.session;
        let syms = session.need_symbols("diff")?;
        let open = |p: &std::path::Path, warn: &mut dyn std::io::Write| {
            crate::snapshot::open::open(session, p, warn)
        };
        let mut b = open(&self.before, ctx.warn)?;
        let before = crate::diff::view(&mut b, syms, &session.profile, session.ram)?;
        let after = match &self.after {
            Some(p) => {
                let mut a = open(p, ctx.warn)?;
                crate::diff::view(&mut a, syms, &session.profile, session.ram)?
            }
            None => {
                let mut t = session.connect(ctx.warn)?;
                let r = (|| {
                    let mut phys = crate::model::PhysCache::new(&mut t);
                    crate::model::verify_image(syms, &mut phys)?;
                    drop(phys);
                    crate::diff::view(&mut t, syms, &session.profile, session.ram)
                })();
                // Leave the machine as found, even after a failure.
                let done = t.finish().map_err(Error::from);
                let v = r?;
                done?;
                v
            }
        };
        let d = crate::diff::diff(&before, &after, self.ad);
        if ctx.json {
            return ctx.json(&d);
        }
        write!(ctx.out, "{}", d.text())?;
        Ok(())
    }
}
