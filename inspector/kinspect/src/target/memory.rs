//! An in-memory target: physical memory as sparse pages plus registers.
//!
//! It is what tests build crafted machines from (page tables with cycles,
//! PTEs pointing outside RAM) and what snapshot files load into.

use std::collections::BTreeMap;

use super::{Csr, GeneralRegs, Hart, Result, RunState, Target, TargetError};

const PAGE: u64 = 4096;

/// Sparse physical memory: only the pages that were written exist.
#[derive(Clone, Debug, Default)]
pub struct PhysMemory {
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

impl PhysMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Write bytes at `pa`, creating zeroed pages as needed.
    pub fn write(&mut self, pa: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = pa + i as u64;
            let page = self
                .pages
                .entry(a & !(PAGE - 1))
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page[(a % PAGE) as usize] = *b;
        }
    }

    pub fn write_u64(&mut self, pa: u64, v: u64) {
        self.write(pa, &v.to_le_bytes());
    }

    /// Read bytes at `pa`; `None` if any byte lies in a page never written.
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = pa.checked_add(i as u64)?;
            *b = self.pages.get(&(a & !(PAGE - 1)))?[(a % PAGE) as usize];
        }
        Some(())
    }

    /// The pages present, as (physical address, contents).
    pub fn pages(&self) -> impl Iterator<Item = (u64, &[u8; PAGE as usize])> {
        self.pages.iter().map(|(a, p)| (*a, &**p))
    }
}

/// One hart's saved state.
#[derive(Clone, Debug, Default)]
pub struct HartState {
    pub regs: GeneralRegs,
    pub csrs: BTreeMap<Csr, u64>,
}

/// A halted machine held in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryTarget {
    pub name: String,
    pub mem: PhysMemory,
    pub harts: Vec<HartState>,
}

impl Target for MemoryTarget {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn harts(&mut self) -> Result<Vec<Hart>> {
        Ok((0..self.harts.len()).collect())
    }

    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.mem.read(pa, buf).ok_or(TargetError::Memory {
            addr: pa,
            len: buf.len(),
        })
    }

    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs> {
        self.harts
            .get(hart)
            .map(|h| h.regs)
            .ok_or(TargetError::NoHart(hart))
    }

    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64> {
        let h = self.harts.get(hart).ok_or(TargetError::NoHart(hart))?;
        h.csrs
            .get(&csr)
            .copied()
            .ok_or_else(|| TargetError::Unsupported(format!("{csr} of hart {hart} was not saved")))
    }

    fn run_state(&mut self) -> Result<RunState> {
        Ok(RunState::Halted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_across_a_page_boundary() {
        let mut t = MemoryTarget::default();
        t.mem.write(0x8000_0ffc, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut b = [0u8; 8];
        t.read_phys(0x8000_0ffc, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn unwritten_memory_is_an_error_not_zeroes() {
        let mut t = MemoryTarget::default();
        t.mem.write(0x8000_0000, &[0; 8]);
        let mut b = [0u8; 8];
        let e = t.read_phys(0x8000_0ffc, &mut b).unwrap_err();
        assert!(matches!(
            e,
            TargetError::Memory {
                addr: 0x8000_0ffc,
                len: 8
            }
        ));
        assert!(t.read_phys(u64::MAX - 2, &mut b).is_err());
    }

    #[test]
    fn a_memory_target_cannot_run() {
        let mut t = MemoryTarget::default();
        assert!(t.control().is_none());
        assert!(t.monitor().is_none());
    }
}
