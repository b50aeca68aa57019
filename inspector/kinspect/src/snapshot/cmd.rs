//! The command-line side of snapshots: `kinspect snapshot -o FILE` and the
//! global `--snapshot FILE`, which runs any read-only command offline.
//!
//! [`crate::cli`] calls [`main_hook`] before it would connect to QEMU: with
//! `--snapshot` it opens the file as a [`SnapshotTarget`], refuses one from
//! another kernel build than the ELF in use, and hands the target to the
//! same `run_on` a live session gets. Every snapshot problem is one line
//! and exit code [`crate::cli::exit::BAD_SNAPSHOT`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::capture::{self, Options, RamVia};
use super::{format, identity, SnapshotError};
use crate::cli::{self, Cli, Command, Error, Result};
use crate::commands::Ctx;
use crate::target::elfcore;
use crate::target::snapshot::SnapshotTarget;

impl From<SnapshotError> for Error {
    fn from(e: SnapshotError) -> Error {
        Error::Snapshot(e.to_string())
    }
}

/// The ELF in use: `--elf`, or the default path when it exists.
pub fn elf_path(cli: &Cli) -> Option<PathBuf> {
    match &cli.elf {
        Some(p) => Some(p.clone()),
        None => {
            let d = PathBuf::from("target/kernel/kernel.elf");
            d.exists().then_some(d)
        }
    }
}

/// Open `path` for `cli`'s ELF: check the kernel identity, recover satp
/// for QEMU cores. Notes for the user are written to `warn`.
pub fn open(cli: &Cli, path: &Path, warn: &mut dyn Write) -> Result<SnapshotTarget> {
    let mut t = SnapshotTarget::open(path)?;
    let elf = elf_path(cli);
    if let Some(elf) = &elf {
        let id = identity::of_elf_file(elf).map_err(Error::BadInput)?;
        t.snapshot()
            .check_kernel(&path.display().to_string(), &elf.display().to_string(), &id)?;
    }
    if t.meta().format == elfcore::FORMAT {
        if let Some(elf) = &elf {
            check_core_build_id(&mut t, path, elf)?;
        }
        let va = elf
            .as_deref()
            .and_then(|e| crate::commands::symbols::Symbols::load(e).ok())
            .and_then(|s| s.lookup("kernel_pagetable"));
        match va {
            Some(va) => {
                let mut note = elfcore::recover_satp(&mut t, va).map_err(|e| {
                    Error::Snapshot(format!("{}: {e}", path.display()))
                })?;
                let debug = elf
                    .as_deref()
                    .and_then(|e| kinspect_symbols::Symbols::open(e).ok());
                let profile = crate::cli::profile(cli).ok();
                if let (Some(debug), Some(profile)) = (debug, profile) {
                    let ram = kinspect_sv39::Ram {
                        base: 0x8000_0000,
                        size: cli.ram_mib.saturating_mul(1 << 20),
                    };
                    let refined = elfcore::refine_satp(&mut t, &debug, profile, ram);
                    if !refined.is_empty() {
                        note.push_str("; except ");
                        note.push_str(&refined.join(", "));
                    }
                }
                t.snapshot_mut().meta.notes = vec![note.clone()];
                writeln!(warn, "kinspect: note: {note}")?;
            }
            None => writeln!(
                warn,
                "kinspect: note: a QEMU ELF core has no CSRs, and without the kernel ELF (--elf) satp cannot be recovered"
            )?,
        }
    } else {
        for n in &t.meta().notes {
            writeln!(warn, "kinspect: note: {n}")?;
        }
    }
    Ok(t)
}

/// A QEMU core carries no identity of its own, but a kernel that loads its
/// GNU build-id note into RAM (symbol `build_id`: namesz, descsz, type,
/// "GNU\0", then the id at `build_id + 16`; docs/kernel-contract.md)
/// carries it in the core's memory: compare that with the ELF's note.
fn check_core_build_id(t: &mut SnapshotTarget, path: &Path, elf: &Path) -> Result<()> {
    use crate::target::Target;
    let Ok(id) = identity::of_elf_file(elf) else {
        return Ok(());
    };
    let Some(want) = id.build_id else {
        return Ok(());
    };
    let Some(addr) = crate::commands::symbols::Symbols::load(elf)
        .ok()
        .and_then(|s| s.lookup("build_id"))
    else {
        return Ok(());
    };
    let mut got = vec![0u8; want.len() / 2];
    if t.read_phys(addr.wrapping_add(16), &mut got).is_err() {
        return Ok(());
    }
    let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
    if got != want {
        return Err(Error::Snapshot(format!(
            "{} holds a kernel with build id {got}, but {} has build id {want}: pass the kernel it was taken of with --elf",
            path.display(),
            elf.display()
        )));
    }
    Ok(())
}

/// Called by `cli::main` before connecting: `Some` when the command runs
/// from a file (`--snapshot FILE`, `serve FILE`).
pub fn main_hook(cli: &Cli, out: &mut dyn Write, warn: &mut dyn Write) -> Option<Result<()>> {
    if let Command::Serve { file, port } = &cli.command {
        let file = file.clone();
        let port = *port;
        return Some(open(cli, &file, warn).and_then(|t| {
            let elf = elf_path(cli);
            crate::serve::serve(cli, t, elf, port, out, warn)
        }));
    }
    if let Command::Watch {
        file,
        format,
        timeout,
    } = &cli.command
    {
        if cli.snapshot.is_none() {
            return Some(crate::postmortem::watch::watch(
                cli,
                file.as_deref(),
                format.as_deref(),
                *timeout,
                out,
                warn,
            ));
        }
    }
    let path = cli.snapshot.as_ref()?;
    Some(open(cli, path, warn).and_then(|mut t| cli::run_on(cli, Some(&mut t), out, warn)))
}

/// `kinspect snapshot -o FILE`: save the machine.
pub fn run(ctx: &mut Ctx<'_>, cli: &Cli, output: &Path, level: u32) -> Result<()> {
    let kernel = match elf_path(cli) {
        Some(p) => Some(identity::of_elf_file(&p).map_err(Error::BadInput)?),
        None => None,
    };
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
