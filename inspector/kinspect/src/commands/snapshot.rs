//! `kinspect snapshot -o FILE`: save the halted machine to a file that
//! `--snapshot FILE` and `serve FILE` read back (docs/snapshots.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Ctx, Needs, Run};
use crate::error::{Error, Result};
use crate::snapshot::capture::{self, Options, RamVia};
use crate::snapshot::format;

/// Save the halted machine (RAM, every hart's registers and CSRs, the
/// kernel's identity) to a snapshot file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
  kinspect snapshot -o crash.kisnap
  kinspect --snapshot crash.kisnap maps --hart 0     any read-only command, offline
  kinspect serve crash.kisnap                        to gdb

The format is in docs/snapshots.md. A snapshot is refused (exit 6) by a
kinspect whose --elf is another kernel build.")]
pub struct Args {
    /// The file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Deflate level, 0 (store) to 9 (smallest).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub level: u32,
}

impl Run for Args {
    fn needs(&self) -> Needs {
        Needs::Target {
            trusts_symbols: false,
        }
    }

    /// Writes a file: not from gdb's `monitor`.
    fn read_only(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<()> {
        run(ctx, &self.output, self.level)
    }
}

/// `kinspect snapshot -o FILE`: save the machine.
fn run(ctx: &mut Ctx<'_>, output: &Path, level: u32) -> Result<()> {
    let kernel = crate::snapshot::open::kernel_id(ctx.session)?;
    let opts = Options {
        ram: ctx.ram,
        kernel,
        pages: None,
        pmemsave: true,
    };
    let t0 = Instant::now();
    let (snap, via) = capture::capture(ctx.target()?, &opts)?;
    let read = t0.elapsed();
    let size = format::write(&snap, output, level.min(9))
        .map_err(|e| Error::Failed(format!("writing {}: {e}", output.display())))?;
    let total = t0.elapsed();
    if ctx.json {
        return ctx.json(&serde_json::json!({
            "file": output.display().to_string(),
            "bytes": size,
            "harts": snap.harts.len(),
            "pages": snap.present_pages(),
            "ram_via": match via { RamVia::Pmemsave => "pmemsave", RamVia::Reads => "gdb stub reads", RamVia::Direct => "direct" },
            "seconds": total.as_secs_f64(),
        }));
    }
    writeln!(
        ctx.out,
        "{}: {} harts, {} MiB of RAM ({} pages saved, via {}) in {} bytes, {:.2} s (reading {:.2} s)",
        output.display(),
        snap.harts.len(),
        ctx.ram.size >> 20,
        snap.present_pages(),
        match via {
            RamVia::Pmemsave => "QEMU's pmemsave",
            RamVia::Reads => "gdb stub reads",
            RamVia::Direct => "direct reads of QEMU's RAM",
        },
        size,
        total.as_secs_f64(),
        read.as_secs_f64()
    )?;
    Ok(())
}
