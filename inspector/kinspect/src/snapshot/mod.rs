//! Snapshot files: a halted machine saved to disk and read back.
//!
//! Where it sits: [`capture`] reads a live [`crate::target::Target`] (RAM,
//! every hart's registers and CSRs) into a [`Snapshot`]; [`format`] writes
//! and reads the `.kisnap` file (documented byte by byte in
//! docs/snapshots.md); [`crate::target::snapshot::SnapshotTarget`] serves
//! a loaded snapshot through the same `Target` trait every command reads,
//! so `kinspect --snapshot FILE maps` runs the very code `kinspect maps`
//! runs. [`identity`] ties a snapshot to the kernel ELF it was taken of.
//!
//! Memory is kept per page with a state: a page can be absent (not saved:
//! sparse fixtures, or outside what a QEMU core holds), all zeros, a
//! "fill" page (8 bytes then one repeated byte: what xv6's `kfree` leaves,
//! `next` pointer then 0x01 junk), or raw.

pub mod capture;
pub mod format;
pub mod identity;
pub mod open;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::target::{Csr, GeneralRegs};

/// The page size snapshots are kept in.
pub const PAGE: u64 = 4096;

/// Why a snapshot could not be read or used. One line each; the CLI maps
/// them all to one exit code ([`crate::error::exit::BAD_SNAPSHOT`]).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}: {why}")]
    Io { path: String, why: String },
    #[error("{path} is not a kinspect snapshot or ELF core (bad magic)")]
    BadMagic { path: String },
    #[error("{path}: snapshot format version {version} is not supported (this kinspect reads version {})", format::VERSION)]
    Version { path: String, version: u32 },
    #[error("{path} is truncated: {what}")]
    Truncated { path: String, what: String },
    #[error("{path}: checksum mismatch in the {section} section (the file is damaged)")]
    Checksum { path: String, section: String },
    #[error("{path} is damaged: {what}")]
    Corrupt { path: String, what: String },
    #[error("{0}")]
    WrongKernel(String),
}

/// The kernel a snapshot was taken of (see [`identity`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelId {
    /// The ELF's path when the snapshot was taken (informational).
    pub elf: Option<String>,
    /// GNU build-id (hex), when the ELF has one.
    pub build_id: Option<String>,
    /// FNV-1a 64 of the ELF's loadable segments (hex): what is compared.
    pub load_hash: String,
}

/// What a snapshot says about itself (the `META` section, JSON).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    /// "kinspect snapshot".
    pub format: String,
    /// kinspect's version that wrote it.
    pub writer: String,
    /// Seconds since the Unix epoch when it was taken.
    pub created: u64,
    /// The target it was taken from (`QEMU gdb stub at ...`).
    pub source: String,
    /// The kernel ELF it belongs to; `None` if none was given.
    pub kernel: Option<KernelId>,
    /// Anything a reader should know (how registers were recovered ...).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One hart's registers and CSRs (the `HART` section holds a JSON array).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HartRecord {
    pub hart: usize,
    /// x0..x31.
    pub x: Vec<u64>,
    pub pc: u64,
    /// CSRs by name (`satp`, `sstatus`, ..., `priv`); missing = not saved.
    pub csrs: BTreeMap<String, u64>,
}

impl HartRecord {
    pub fn new(hart: usize, regs: &GeneralRegs) -> HartRecord {
        HartRecord {
            hart,
            x: regs.x.to_vec(),
            pc: regs.pc,
            csrs: BTreeMap::new(),
        }
    }

    pub fn regs(&self) -> GeneralRegs {
        let mut g = GeneralRegs {
            pc: self.pc,
            ..GeneralRegs::default()
        };
        for (d, s) in g.x.iter_mut().zip(&self.x) {
            *d = *s;
        }
        g
    }

    pub fn csr(&self, csr: Csr) -> Option<u64> {
        self.csrs.get(csr.name()).copied()
    }
}

/// A contiguous range of physical memory kept page by page.
#[derive(Clone, Debug, Default)]
pub struct Region {
    /// Page-aligned physical address of the first page.
    pub base: u64,
    /// The bytes of every page (absent pages read as zeros here, but
    /// [`Region::read`] refuses them), except the pages in `fills`.
    pub data: Vec<u8>,
    /// Which pages were saved.
    pub present: Vec<bool>,
    /// Pages kept as "8 bytes, then one byte repeated" (xv6's free pages:
    /// the free-list pointer, then kfree's junk) instead of in `data`, by
    /// page index, sorted: decoding a snapshot then touches only the pages
    /// that hold something else, not 128 MiB.
    pub fills: Vec<(usize, [u8; 8], u8)>,
}

impl Region {
    /// An empty (all absent) region of `pages` pages at `base`.
    pub fn new(base: u64, pages: usize) -> Region {
        Region {
            base,
            data: vec![0; pages * PAGE as usize],
            present: vec![false; pages],
            fills: Vec::new(),
        }
    }

    /// Page `i` as a fill (see `fills`), if it is kept as one.
    fn fill(&self, i: usize) -> Option<&(usize, [u8; 8], u8)> {
        self.fills
            .binary_search_by_key(&i, |f| f.0)
            .ok()
            .map(|k| &self.fills[k])
    }

    pub fn pages(&self) -> usize {
        self.present.len()
    }

    pub fn end(&self) -> u64 {
        self.base + self.pages() as u64 * PAGE
    }

    /// The bytes of page `i`.
    pub fn page(&self, i: usize) -> std::borrow::Cow<'_, [u8]> {
        match self.fill(i) {
            Some((_, head, byte)) => {
                let mut p = vec![*byte; PAGE as usize];
                p[..8].copy_from_slice(head);
                std::borrow::Cow::Owned(p)
            }
            None => {
                std::borrow::Cow::Borrowed(&self.data[i * PAGE as usize..(i + 1) * PAGE as usize])
            }
        }
    }

    /// Store page `i` and mark it present.
    pub fn set_page(&mut self, i: usize, bytes: &[u8]) {
        if let Ok(k) = self.fills.binary_search_by_key(&i, |f| f.0) {
            self.fills.remove(k);
        }
        let n = bytes.len().min(PAGE as usize);
        let at = i * PAGE as usize;
        self.data[at..at + n].copy_from_slice(&bytes[..n]);
        self.present[i] = true;
    }

    /// Mark page `i` present as `head` followed by `byte` repeated; pages
    /// must be given in increasing order.
    pub fn set_fill(&mut self, i: usize, head: [u8; 8], byte: u8) {
        debug_assert!(self.fills.last().is_none_or(|f| f.0 < i));
        self.fills.push((i, head, byte));
        self.present[i] = true;
    }

    /// Fill `buf` from `pa` if every byte lies in a saved page here.
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> Option<()> {
        let end = pa.checked_add(buf.len() as u64)?;
        if pa < self.base || end > self.end() {
            return None;
        }
        if !buf.is_empty() {
            let first = ((pa - self.base) / PAGE) as usize;
            let last = ((end - 1 - self.base) / PAGE) as usize;
            if !self.present[first..=last].iter().all(|p| *p) {
                return None;
            }
        }
        let off = (pa - self.base) as usize;
        buf.copy_from_slice(&self.data[off..off + buf.len()]);
        if !self.fills.is_empty() && !buf.is_empty() {
            let first = off / PAGE as usize;
            let last = (off + buf.len() - 1) / PAGE as usize;
            let from = self.fills.partition_point(|f| f.0 < first);
            for (i, head, byte) in self.fills[from..].iter().take_while(|f| f.0 <= last) {
                // The part of page i that buf covers, in page offsets.
                let page = i * PAGE as usize;
                let lo = off.max(page) - page;
                let hi = (off + buf.len()).min(page + PAGE as usize) - page;
                for o in lo..hi {
                    buf[page + o - off] = if o < 8 { head[o] } else { *byte };
                }
            }
        }
        Some(())
    }
}

/// A saved machine: what it is, its harts, its memory.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub meta: Meta,
    pub harts: Vec<HartRecord>,
    pub regions: Vec<Region>,
}

impl Snapshot {
    /// Pages saved, over all regions.
    pub fn present_pages(&self) -> usize {
        self.regions
            .iter()
            .map(|r| r.present.iter().filter(|p| **p).count())
            .sum()
    }

    /// Refuse a snapshot of another kernel than `elf_id` (when both are
    /// known). `path` names the snapshot in the message.
    pub fn check_kernel(
        &self,
        path: &str,
        elf_path: &str,
        elf_id: &KernelId,
    ) -> Result<(), SnapshotError> {
        let Some(theirs) = &self.meta.kernel else {
            return Ok(());
        };
        if theirs.load_hash == elf_id.load_hash {
            return Ok(());
        }
        Err(SnapshotError::WrongKernel(format!(
            "{path} was taken of another kernel build (load hash {}{}) than {elf_path} (load hash {}): pass the kernel it was taken of with --elf",
            theirs.load_hash,
            theirs
                .elf
                .as_deref()
                .map(|e| format!(", then at {e}"))
                .unwrap_or_default(),
            elf_id.load_hash
        )))
    }
}
