//! Reading the target for the model: a page cache over physical memory
//! and the kernel's virtual address space on top of it.
//!
//! A model read happens while the machine is halted, so every page read
//! once is kept for the rest of the command: the process table, shared
//! page-table pages walked from 64 roots and the free list each cost one
//! read per page, and the picture they give is one consistent instant.
//!
//! A long walk of small reads (the free list: 8 bytes from each of ~32000
//! pages) is slow over the gdb stub, one round trip per link. For that
//! case [`PhysCache::try_ram_dump`] asks QEMU's monitor to `pmemsave` RAM
//! into a temporary file (about 0.4 s for 128 MiB) and serves small reads
//! from it. It only works when QEMU runs on this machine (the file must
//! appear here); the dump is checked against a read through the stub and
//! deleted when the cache is dropped. Otherwise reads stay on the stub.
//! With the RAM fast path ([`Target::direct_ram`]) no dump is made: small
//! reads already cost nanoseconds.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use kinspect_sv39::{translate, PhysAddr, PhysRead, Ram, ReadError, StepOutcome, VirtAddr};
use kinspect_symbols::{Memory, MemoryError, SymbolError};

use crate::target::{Target, TargetError};

const PAGE: u64 = 4096;

/// Physical memory through a [`Target`], cached by 4 KiB page.
///
/// Unreadable memory is remembered as unreadable; any other target error
/// (the connection went away) is returned to the reader, and through the
/// symbol layer it travels as the source of its [`MemoryError`] (see
/// [`lost`]).
pub struct PhysCache<'t> {
    target: &'t mut dyn Target,
    pages: HashMap<PhysAddr, Option<Box<[u8]>>>,
    /// Pages read from the target (for measurements).
    pub reads: usize,
    dump: Option<RamDump>,
    dump_tried: bool,
}

/// RAM saved by QEMU's `pmemsave` into a file on this machine.
struct RamDump {
    base: PhysAddr,
    size: u64,
    file: File,
    path: PathBuf,
}

impl Drop for RamDump {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl<'t> PhysCache<'t> {
    pub fn new(target: &'t mut dyn Target) -> PhysCache<'t> {
        PhysCache {
            target,
            pages: HashMap::new(),
            reads: 0,
            dump: None,
            dump_tried: false,
        }
    }

    /// Ask QEMU's monitor to save RAM into a temporary file here, so that
    /// many small reads cost no round trips. Tried once; `false` when the
    /// target has no monitor, QEMU is on another machine, or the dump does
    /// not match what the stub reads at `check_pa` (8 bytes).
    pub fn try_ram_dump(&mut self, ram: Ram, check_pa: PhysAddr) -> bool {
        if self.dump_tried {
            return self.dump.is_some();
        }
        self.dump_tried = true;
        if self.target.direct_ram() {
            // The fast path reads RAM from host memory already: a dump
            // would only copy it once more (docs/fast-path.md).
            return false;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("kinspect-ram-{}-{nanos}.bin", std::process::id()));
        let Some(text) = path.to_str().filter(|t| !t.contains('"')) else {
            return false;
        };
        let cmd = format!("pmemsave {:#x} {:#x} \"{text}\"", ram.base, ram.size);
        let Some(monitor) = self.target.monitor() else {
            return false;
        };
        if monitor.monitor(&cmd).is_err() {
            let _ = std::fs::remove_file(&path);
            return false;
        }
        let Ok(file) = File::open(&path) else {
            return false;
        };
        let dump = RamDump {
            base: ram.base,
            size: ram.size,
            file,
            path,
        };
        let complete = dump.file.metadata().is_ok_and(|m| m.len() == ram.size);
        let mut from_stub = [0u8; 8];
        let mut from_dump = [0u8; 8];
        let same = self.target.read_phys(check_pa.0, &mut from_stub).is_ok()
            && dump_read(&dump, check_pa, &mut from_dump)
            && from_stub == from_dump;
        if complete && same {
            self.dump = Some(dump);
        }
        self.dump.is_some()
    }

    /// The target underneath (for registers and CSRs).
    pub fn target(&mut self) -> &mut dyn Target {
        self.target
    }

    /// Forget what was read (after the machine ran or memory was written).
    pub fn clear(&mut self) {
        self.pages.clear();
    }

    /// Read pages `first..first+count` that are not cached yet, in runs of
    /// consecutive missing pages, one target read per run (a run that
    /// fails is retried page by page so one bad page does not hide the rest).
    fn fill(&mut self, first: PhysAddr, count: u64) -> Result<(), TargetError> {
        let mut i = 0;
        while i < count {
            let pa = first + i * PAGE;
            if self.pages.contains_key(&pa) {
                i += 1;
                continue;
            }
            let mut n = 1;
            while i + n < count && !self.pages.contains_key(&(pa + n * PAGE)) {
                n += 1;
            }
            let mut buf = vec![0u8; (n * PAGE) as usize];
            match self.target.read_phys(pa.0, &mut buf) {
                Ok(()) => {
                    self.reads += n as usize;
                    for (k, chunk) in buf.chunks_exact(PAGE as usize).enumerate() {
                        self.pages.insert(pa + k as u64 * PAGE, Some(chunk.into()));
                    }
                }
                Err(TargetError::Memory { .. }) if n > 1 => {
                    for k in 0..n {
                        let p = pa + k * PAGE;
                        let mut one = vec![0u8; PAGE as usize];
                        match self.target.read_phys(p.0, &mut one) {
                            Ok(()) => {
                                self.reads += 1;
                                self.pages.insert(p, Some(one.into()));
                            }
                            Err(TargetError::Memory { .. }) => {
                                self.pages.insert(p, None);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(TargetError::Memory { .. }) => {
                    self.pages.insert(pa, None);
                }
                Err(e) => return Err(e),
            }
            i += n;
        }
        Ok(())
    }

    /// Fill `buf` from physical `pa`. `Err(None)`: unreadable memory;
    /// `Err(Some(e))`: the transport failed.
    pub fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), Option<TargetError>> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = pa.checked_add(buf.len() as u64).ok_or(None)?;
        let first = pa.page_down();
        let count = (end.0 - first.0).div_ceil(PAGE);
        if let Err(e) = self.fill(first, count) {
            return Err(Some(e));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let a = pa + done as u64;
            let page = a.page_down();
            let off = a.page_offset() as usize;
            let n = (PAGE as usize - off).min(buf.len() - done);
            match self.pages.get(&page) {
                Some(Some(bytes)) => buf[done..done + n].copy_from_slice(&bytes[off..off + n]),
                _ => return Err(None),
            }
            done += n;
        }
        Ok(())
    }

    /// Read a few bytes inside one page without caching the page (a
    /// free-list link: one small read instead of a whole page).
    pub fn peek(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), Option<TargetError>> {
        let page = pa.page_down();
        let fits = pa
            .page_offset()
            .checked_add(buf.len() as u64)
            .is_some_and(|e| e <= PAGE);
        if !fits || self.pages.contains_key(&page) {
            return self.read(pa, buf);
        }
        if let Some(d) = &self.dump {
            if dump_read(d, pa, buf) {
                return Ok(());
            }
        }
        match self.target.read_phys(pa.0, buf) {
            Ok(()) => Ok(()),
            Err(TargetError::Memory { .. }) => Err(None),
            Err(e) => Err(Some(e)),
        }
    }

    /// A little-endian u64 at physical `pa`.
    pub fn u64(&mut self, pa: PhysAddr) -> Result<u64, Option<TargetError>> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Read from the dump if `pa..pa+len` lies inside it.
fn dump_read(d: &RamDump, pa: PhysAddr, buf: &mut [u8]) -> bool {
    let Some(off) = pa.offset_from(d.base) else {
        return false;
    };
    let inside = off
        .checked_add(buf.len() as u64)
        .is_some_and(|end| end <= d.size);
    inside && d.file.read_exact_at(buf, off).is_ok()
}

impl PhysRead for PhysCache<'_> {
    type Error = TargetError;

    fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), ReadError<TargetError>> {
        match PhysCache::read(self, pa, buf) {
            Ok(()) => Ok(()),
            Err(None) => Err(ReadError::Unreadable(format!(
                "cannot read {} bytes of physical memory at {pa:#x}",
                buf.len()
            ))),
            Err(Some(e)) => Err(ReadError::Fatal(e)),
        }
    }
}

/// Why a kernel virtual address could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VaError {
    /// Nothing readable there: outside the direct map with no page table
    /// to translate it, not mapped, or unreadable physical memory.
    #[error("{0}")]
    Unreadable(String),
    /// The target failed (the connection went away).
    #[error(transparent)]
    Lost(#[from] TargetError),
}

/// The kernel's virtual address space: the one kernel-VA reader the model,
/// the unwinder, the TUI, `serve` and symbol expressions all use.
///
/// Addresses inside RAM are read physically (xv6 maps RAM at its own
/// address, and the kernel's globals are linked there); anything else (a
/// kernel stack at the top of the address space) is translated through
/// `root` by kinspect's own Sv39 walk.
pub struct KernelMemory<'c, 't> {
    pub phys: &'c mut PhysCache<'t>,
    pub ram: Ram,
    /// The page table for addresses outside RAM (`kernel_pagetable`, a
    /// process's kernel page table, a hart's satp); `None`: only RAM is
    /// readable.
    pub root: Option<PhysAddr>,
}

/// xv6's direct map: a kernel virtual address inside RAM is the physical
/// address of the same number (`KERNBASE..PHYSTOP` is mapped to itself).
pub fn direct_map(ram: Ram, va: VirtAddr) -> Option<PhysAddr> {
    let pa = PhysAddr(va.0);
    ram.contains(pa).then_some(pa)
}

impl<'c, 't> KernelMemory<'c, 't> {
    pub fn new(phys: &'c mut PhysCache<'t>, ram: Ram, root: Option<PhysAddr>) -> Self {
        KernelMemory { phys, ram, root }
    }

    /// The physical address of `va`, or why there is none.
    pub fn to_phys(&mut self, va: VirtAddr) -> Result<PhysAddr, VaError> {
        if let Some(pa) = direct_map(self.ram, va) {
            return Ok(pa);
        }
        let Some(root) = self.root else {
            return Err(VaError::Unreadable(format!(
                "{va:#x} is outside the direct map and there is no page table to translate it"
            )));
        };
        let t = translate(&mut *self.phys, root, va, self.ram)?;
        match t.outcome {
            StepOutcome::Mapped { pa, .. } => Ok(pa),
            StepOutcome::Fault { level, reason } => Err(VaError::Unreadable(format!(
                "{va:#x} is not mapped in the page table at {root:#x} (level {level}: {reason})"
            ))),
        }
    }

    /// Fill `buf` from kernel virtual `addr`, page by page (consecutive
    /// virtual pages need not be consecutive physical ones).
    pub fn read(&mut self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), VaError> {
        let mut done = 0usize;
        while done < buf.len() {
            let va = addr
                .checked_add(done as u64)
                .ok_or_else(|| VaError::Unreadable("address overflow".into()))?;
            let n = ((PAGE - va.page_offset()) as usize).min(buf.len() - done);
            let pa = self.to_phys(va)?;
            // Within RAM the mapping is the identity: read the rest at once.
            let n = if pa.0 == va.0 {
                let ram_end = self.ram.end();
                ((ram_end.0.saturating_sub(pa.0)) as usize).min(buf.len() - done)
            } else {
                n
            };
            match self.phys.read(pa, &mut buf[done..done + n]) {
                Ok(()) => {}
                Err(None) => {
                    return Err(VaError::Unreadable(format!(
                        "physical memory at {pa:#x} is unreadable"
                    )))
                }
                Err(Some(e)) => return Err(VaError::Lost(e)),
            }
            done += n.max(1);
        }
        Ok(())
    }

    /// A little-endian u64 at kernel virtual `va`.
    pub fn u64(&mut self, va: VirtAddr) -> Result<u64, VaError> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// The symbol layer reads through the same reader. A lost connection
/// rides in the [`MemoryError`] as its source, so it comes back out of a
/// load or an expression for [`lost`] to find.
impl Memory for KernelMemory<'_, '_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        KernelMemory::read(self, VirtAddr(addr), buf).map_err(|e| match e {
            VaError::Unreadable(why) => MemoryError::new(addr, len, why),
            VaError::Lost(t) => MemoryError::new(addr, len, t.to_string()).with_source(t),
        })
    }
}

/// A symbol-layer error taken apart: `Err` with the [`TargetError`] when a
/// read under it failed because the connection went away (the caller
/// reports that with its own exit code), else `Ok` with the error as it was.
pub fn lost(mut e: SymbolError) -> Result<SymbolError, TargetError> {
    if let Some(m) = e.memory_mut() {
        if let Some(source) = m.source.take() {
            match source.downcast::<TargetError>() {
                Ok(t) => return Err(*t),
                Err(other) => m.source = Some(other),
            }
        }
    }
    Ok(e)
}

/// A symbol-layer result with a lost connection taken out of it (see
/// [`lost`]): the outer `Err` is the transport's, the inner result the data's.
pub fn split_lost<T>(r: Result<T, SymbolError>) -> Result<Result<T, SymbolError>, TargetError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => lost(e).map(Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Csr, GeneralRegs, Hart, RunState};

    /// RAM at 0x80000000 that answers until the connection "goes away" at
    /// `dead_from`; physical memory elsewhere is unreadable.
    struct Dying {
        dead_from: u64,
    }

    impl Target for Dying {
        fn describe(&self) -> String {
            "a dying machine".into()
        }
        fn harts(&mut self) -> crate::target::Result<Vec<Hart>> {
            Ok(vec![0])
        }
        fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> crate::target::Result<()> {
            if pa >= self.dead_from {
                return Err(TargetError::Disconnected(
                    "QEMU closed the connection".into(),
                ));
            }
            if pa < 0x8000_0000 {
                return Err(TargetError::Memory {
                    addr: pa,
                    len: buf.len(),
                });
            }
            buf.fill(0xab);
            Ok(())
        }
        fn regs(&mut self, _: Hart) -> crate::target::Result<GeneralRegs> {
            Ok(GeneralRegs::default())
        }
        fn csr(&mut self, _: Hart, _: Csr) -> crate::target::Result<u64> {
            Ok(0)
        }
        fn run_state(&mut self) -> crate::target::Result<RunState> {
            Ok(RunState::Halted)
        }
    }

    fn read_through_symbols(t: &mut Dying, va: u64) -> Result<[u8; 8], SymbolError> {
        let mut phys = PhysCache::new(t);
        let ram = Ram {
            base: PhysAddr(0x8000_0000),
            size: 0x100_0000,
        };
        let mut mem = KernelMemory::new(&mut phys, ram, None);
        let mut b = [0u8; 8];
        Memory::read(&mut mem, va, &mut b).map_err(|source| SymbolError::Read {
            what: "x".into(),
            source,
        })?;
        Ok(b)
    }

    #[test]
    fn a_lost_connection_comes_back_out_of_the_symbol_layer() {
        let mut t = Dying {
            dead_from: 0x8080_0000,
        };
        assert_eq!(
            read_through_symbols(&mut t, 0x8000_1000).unwrap(),
            [0xab; 8]
        );
        let e = read_through_symbols(&mut t, 0x8090_0000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read `x`: cannot read 8 bytes at 0x80900000: connection lost: QEMU closed the connection"
        );
        match lost(e) {
            Err(TargetError::Disconnected(m)) => assert_eq!(m, "QEMU closed the connection"),
            other => panic!("{other:?}"),
        }
        // Memory that is not there is the data's problem, not the transport's.
        let e = read_through_symbols(&mut t, 0x1000).unwrap_err();
        let e = lost(e).expect("not lost");
        assert!(e.to_string().contains("is outside the direct map"), "{e}");
        assert!(matches!(split_lost(Ok::<u8, SymbolError>(1)), Ok(Ok(1))));
    }
}
