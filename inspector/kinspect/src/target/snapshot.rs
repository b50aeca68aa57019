//! The post-mortem backend: a saved machine (a `.kisnap` snapshot or a
//! QEMU ELF core) served through [`Target`].
//!
//! It reads; it cannot run: [`Target::control`] and [`Target::monitor`]
//! are `None`, so commands that need a live machine say so before they
//! start. Memory reads succeed only inside saved pages (a page a sparse
//! snapshot did not keep is an error, never zeros), like
//! [`super::memory::MemoryTarget`], which it resembles with whole regions
//! instead of a page map so that 128 MiB opens in a fraction of a second.

use std::path::Path;

use super::{Csr, GeneralRegs, Hart, Result, RunState, Target, TargetError};
use crate::snapshot::{format, HartRecord, Meta, Region, Snapshot, SnapshotError};

/// A loaded snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotTarget {
    name: String,
    snapshot: Snapshot,
}

impl SnapshotTarget {
    /// Serve a snapshot already in memory; `name` is what `describe` says.
    pub fn new(name: impl Into<String>, snapshot: Snapshot) -> SnapshotTarget {
        SnapshotTarget {
            name: name.into(),
            snapshot,
        }
    }

    /// Open a `.kisnap` file or a QEMU `dump-guest-memory` ELF core.
    pub fn open(path: &Path) -> std::result::Result<SnapshotTarget, SnapshotError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| SnapshotError::Io {
            path: name.clone(),
            why: e.to_string(),
        })?;
        let snapshot = if format::is_snapshot(&bytes) {
            format::decode(&bytes, &name)?
        } else if super::elfcore::is_elf(&bytes) {
            super::elfcore::decode(&bytes, &name)?
        } else {
            return Err(SnapshotError::BadMagic { path: name });
        };
        let kind = if snapshot.meta.format == super::elfcore::FORMAT {
            "QEMU ELF core"
        } else {
            "snapshot"
        };
        Ok(SnapshotTarget::new(format!("{kind} {name}"), snapshot))
    }

    pub fn meta(&self) -> &Meta {
        &self.snapshot.meta
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn snapshot_mut(&mut self) -> &mut Snapshot {
        &mut self.snapshot
    }

    fn hart(&self, hart: Hart) -> Result<&HartRecord> {
        self.snapshot
            .harts
            .iter()
            .find(|h| h.hart == hart)
            .ok_or(TargetError::NoHart(hart))
    }

    fn region(&self, pa: u64) -> Option<&Region> {
        self.snapshot
            .regions
            .iter()
            .find(|r| r.base <= pa && pa < r.end())
    }
}

impl Target for SnapshotTarget {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn harts(&mut self) -> Result<Vec<Hart>> {
        let mut h: Vec<Hart> = self.snapshot.harts.iter().map(|h| h.hart).collect();
        h.sort_unstable();
        h.dedup();
        Ok(h)
    }

    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        let err = || TargetError::Memory { addr: pa, len };
        if buf.is_empty() {
            return Ok(());
        }
        let r = self.region(pa).ok_or_else(err)?;
        r.read(pa, buf).ok_or_else(err)
    }

    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs> {
        Ok(self.hart(hart)?.regs())
    }

    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64> {
        let name = self.name.clone();
        self.hart(hart)?.csr(csr).ok_or_else(|| {
            TargetError::Unsupported(format!("{csr} of hart {hart} is not in {name}"))
        })
    }

    fn run_state(&mut self) -> Result<RunState> {
        Ok(RunState::Halted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::PAGE;

    #[test]
    fn reads_saved_pages_refuses_the_rest_and_cannot_run() {
        let mut r = Region::new(0x8000_0000, 2);
        r.set_page(0, &[7; PAGE as usize]);
        let mut h = HartRecord {
            x: vec![0; 32],
            pc: 0x8000_0000,
            ..HartRecord::default()
        };
        h.csrs.insert("satp".into(), 5);
        let mut t = SnapshotTarget::new(
            "snapshot t",
            Snapshot {
                meta: Meta::default(),
                harts: vec![h],
                regions: vec![r],
            },
        );
        let mut b = [0u8; 8];
        t.read_phys(0x8000_0ff8, &mut b).unwrap();
        assert_eq!(b, [7; 8]);
        assert!(
            t.read_phys(0x8000_0ffc, &mut b).is_err(),
            "crosses into an absent page"
        );
        assert!(t.read_phys(0x7fff_fff8, &mut b).is_err());
        assert!(t.read_phys(u64::MAX - 3, &mut b).is_err());
        assert_eq!(t.csr(0, Csr::Satp).unwrap(), 5);
        assert!(matches!(
            t.csr(0, Csr::Stval),
            Err(TargetError::Unsupported(_))
        ));
        assert!(matches!(t.regs(1), Err(TargetError::NoHart(1))));
        assert!(t.control().is_none());
        assert!(t.monitor().is_none());
    }
}
