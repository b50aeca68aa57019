//! Taking a snapshot of a target: every hart's registers and CSRs first,
//! then RAM, all while the machine stays halted.
//!
//! RAM comes the fast way when the target has QEMU's monitor and QEMU runs
//! on this host: `pmemsave` writes the bytes to a temporary file in one
//! go (about 1 s for 128 MiB, against about 10 s through 2 KiB `m`
//! packets). Anything else (no monitor, the file not appearing because
//! QEMU is elsewhere) falls back to [`Target::read_phys`] in 64 KiB pieces.
//! With the RAM fast path ([`Target::direct_ram`]) RAM is simply read: a
//! copy from host memory, faster than `pmemsave`'s file (docs/benchmarks.md).
//! A sparse capture (`pages`) reads only the listed pages: that is how the
//! small committed test fixtures are made.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use kinspect_sv39::Ram;

use super::{HartRecord, KernelId, Meta, Region, Snapshot, PAGE};
use crate::target::{Csr, Target, TargetError};

/// What to capture.
#[derive(Clone, Debug)]
pub struct Options {
    /// The RAM range to save.
    pub ram: Ram,
    /// The kernel the machine runs, if known.
    pub kernel: Option<KernelId>,
    /// Only these pages (physical, page-aligned); `None` = all of RAM.
    pub pages: Option<BTreeSet<u64>>,
    /// May QEMU's `pmemsave` be used?
    pub pmemsave: bool,
}

/// How RAM was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RamVia {
    Pmemsave,
    Reads,
    /// The fast path: a copy of QEMU's RAM from host memory.
    Direct,
}

/// Read every hart's registers and every CSR the backend has.
pub fn harts(target: &mut dyn Target) -> Result<Vec<HartRecord>, TargetError> {
    let mut out = Vec::new();
    for h in target.harts()? {
        let regs = target.regs(h)?;
        let mut rec = HartRecord::new(h, &regs);
        // mepc too: a hart in the M-mode timer handler resumes there.
        for csr in Csr::ALL.into_iter().chain([Csr::Mepc]) {
            match target.csr(h, csr) {
                Ok(v) => {
                    rec.csrs.insert(csr.name().to_string(), v);
                }
                Err(TargetError::Unsupported(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.push(rec);
    }
    Ok(out)
}

/// RAM through the monitor's `pmemsave`, or `None` if that is not possible.
fn ram_by_pmemsave(target: &mut dyn Target, ram: Ram) -> Option<Vec<u8>> {
    let mon = target.monitor()?;
    let path = std::env::temp_dir().join(format!(
        "kinspect-pmemsave-{}-{}.bin",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let cmd = format!(
        "pmemsave {:#x} {:#x} \"{}\"",
        ram.base,
        ram.size,
        path.display()
    );
    let said = mon.monitor(&cmd).ok()?;
    let bytes = std::fs::read(&path).ok();
    let _ = std::fs::remove_file(&path);
    let bytes = bytes?;
    if !said.trim().is_empty() || bytes.len() as u64 != ram.size {
        return None;
    }
    Some(bytes)
}

/// Take a snapshot of `target` (which should be halted: a live QEMU
/// backend halts on its first read and stays so until it is finished).
pub fn capture(target: &mut dyn Target, opts: &Options) -> Result<(Snapshot, RamVia), TargetError> {
    let harts = harts(target)?;
    let pages = (opts.ram.size / PAGE) as usize;
    let mut region = Region::new(opts.ram.base.0, pages);
    let mut via = RamVia::Reads;
    match &opts.pages {
        Some(list) => {
            let mut buf = vec![0u8; PAGE as usize];
            for &pa in list {
                if pa < region.base || pa >= region.end() {
                    continue;
                }
                let i = ((pa - region.base) / PAGE) as usize;
                target.read_phys(pa & !(PAGE - 1), &mut buf)?;
                region.set_page(i, &buf);
            }
        }
        None => {
            let fast = if opts.pmemsave && !target.direct_ram() {
                ram_by_pmemsave(target, opts.ram)
            } else {
                None
            };
            match fast {
                Some(bytes) => {
                    region.data = bytes;
                    region.present.fill(true);
                    via = RamVia::Pmemsave;
                }
                None => {
                    const CHUNK: usize = 64 * 1024;
                    let mut at = 0usize;
                    while at < region.data.len() {
                        let n = CHUNK.min(region.data.len() - at);
                        let pa = region.base + at as u64;
                        target.read_phys(pa, &mut region.data[at..at + n])?;
                        at += n;
                    }
                    region.present.fill(true);
                    if target.direct_ram() {
                        via = RamVia::Direct;
                    }
                }
            }
        }
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut notes = Vec::new();
    if opts.pages.is_some() {
        notes.push(format!(
            "sparse: only {} of {} RAM pages were saved",
            region.present.iter().filter(|p| **p).count(),
            pages
        ));
    }
    let meta = Meta {
        format: "kinspect snapshot".into(),
        writer: format!("kinspect {}", env!("CARGO_PKG_VERSION")),
        created,
        source: target.describe(),
        kernel: opts.kernel.clone(),
        notes,
    };
    Ok((
        Snapshot {
            meta,
            harts,
            regions: vec![region],
        },
        via,
    ))
}

/// A target that remembers which physical pages were read through it:
/// run the commands a fixture must support through it, then
/// [`capture`] with `pages: Some(recording.pages)` keeps just those.
pub struct Recording<'a> {
    pub inner: &'a mut dyn Target,
    pub pages: BTreeSet<u64>,
}

impl Target for Recording<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn harts(&mut self) -> crate::target::Result<Vec<crate::target::Hart>> {
        self.inner.harts()
    }

    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> crate::target::Result<()> {
        self.inner.read_phys(pa, buf)?;
        let end = pa.saturating_add(buf.len() as u64);
        let mut p = pa & !(PAGE - 1);
        while p < end {
            self.pages.insert(p);
            p += PAGE;
        }
        Ok(())
    }

    fn regs(
        &mut self,
        hart: crate::target::Hart,
    ) -> crate::target::Result<crate::target::GeneralRegs> {
        self.inner.regs(hart)
    }

    fn csr(&mut self, hart: crate::target::Hart, csr: Csr) -> crate::target::Result<u64> {
        self.inner.csr(hart, csr)
    }

    fn run_state(&mut self) -> crate::target::Result<crate::target::RunState> {
        self.inner.run_state()
    }
}
