//! The worker's reading requests: walks, kernel memory, expressions,
//! translations and a sleeping process's chain, each answered as data
//! ([`Reply`]) for the UI to draw.
//!
//! Kernel virtual addresses are read through the model's one reader,
//! [`KernelMemory`], and physical memory through the target; a transport
//! failure met on the way (the connection is gone) becomes
//! [`Reply::Lost`], anything else an error for the message line.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use kinspect_sv39::{translate, walk, PhysAddr, PhysRead, ReadError, VirtAddr, Walk, WalkLimits};

use super::worker::{Reply, Translated, Worker};
use crate::model::{KernelMemory, PhysCache, VaError};
use crate::target::{Target, TargetError};

/// Reports how many table pages a walk has read, every few pages.
struct Counting<'a, 'b> {
    inner: &'a mut (dyn Target + 'b),
    pages: usize,
    progress: Option<&'a Sender<Reply>>,
    root: PhysAddr,
}

impl PhysRead for Counting<'_, '_> {
    type Error = TargetError;

    fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), ReadError<TargetError>> {
        self.pages += 1;
        if self.pages % 16 == 0 {
            if let Some(tx) = self.progress {
                let _ = tx.send(Reply::WalkProgress {
                    root: self.root,
                    pages: self.pages,
                });
            }
        }
        PhysRead::read(&mut *self.inner, pa, buf)
    }
}

impl Worker {
    pub(super) fn walk_inner(&mut self, root: PhysAddr) -> Result<Arc<Walk>, Vec<Reply>> {
        let limits = WalkLimits {
            ram: self.ram,
            ..WalkLimits::default()
        };
        let progress = self.progress.clone();
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return Err(self.fail("walking", e)),
        };
        let r = {
            let mut counting = Counting {
                inner: t,
                pages: 0,
                progress: progress.as_ref(),
                root,
            };
            walk(&mut counting, root, limits)
        };
        match r {
            Ok(w) => Ok(Arc::new(w)),
            Err(e) => Err(self.fail("walking", e)),
        }
    }

    pub(super) fn walk(&mut self, root: PhysAddr) -> Vec<Reply> {
        match self.walk_inner(root) {
            Ok(w) => vec![Reply::Walk(root, Ok(w))],
            Err(e) => e,
        }
    }

    /// Evaluate an expression to a kernel virtual address
    /// (`proc[3].kstack`, `etext`, `0x80000000`).
    pub(super) fn eval(
        &mut self,
        expr: &str,
        root: Option<PhysAddr>,
    ) -> Result<VirtAddr, Vec<Reply>> {
        if let Ok(v) = crate::parse::parse_u64(expr) {
            return Ok(VirtAddr(v));
        }
        let Some(syms) = self.symbols.clone() else {
            return Err(vec![Reply::Error(format!(
                "`{expr}`: no kernel ELF to look symbols up in (give --elf)"
            ))]);
        };
        let ram = self.ram;
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return Err(self.fail("evaluating", e)),
        };
        let mut phys = PhysCache::new(t);
        let mut mem = KernelMemory::new(&mut phys, ram, root);
        match crate::model::split_lost(syms.eval_address(expr, &mut mem)) {
            Err(lost) => Err(self.fail("evaluating", lost)),
            Ok(r) => r
                .map(VirtAddr)
                .map_err(|e| vec![Reply::Error(format!("`{expr}`: {e}"))]),
        }
    }

    pub(super) fn read_mem(
        &mut self,
        addr: VirtAddr,
        len: usize,
        root: Option<PhysAddr>,
        label: String,
    ) -> Vec<Reply> {
        let ram = self.ram;
        let len = len.min(4096);
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading memory", e),
        };
        let mut phys = PhysCache::new(t);
        let mut mem = KernelMemory::new(&mut phys, ram, root);
        let mut bytes = vec![None; len];
        let mut note = None;
        // Page by page: an unmapped page shows as `??`, the rest still reads.
        let mut off = 0usize;
        while off < len {
            let va = addr.wrapping_add(off as u64);
            let n = ((4096 - va.page_offset()) as usize).min(len - off);
            let mut buf = vec![0u8; n];
            match mem.read(va, &mut buf) {
                Ok(()) => {
                    for (i, b) in buf.into_iter().enumerate() {
                        bytes[off + i] = Some(b);
                    }
                }
                Err(VaError::Lost(f)) => return self.fail("reading memory", f),
                Err(VaError::Unreadable(why)) => {
                    note.get_or_insert(why);
                }
            }
            off += n;
        }
        vec![Reply::Mem {
            addr,
            label,
            bytes,
            note,
        }]
    }

    pub(super) fn translate(&mut self, expr: &str, root: PhysAddr, what: &str) -> Vec<Reply> {
        let va = match self.eval(expr, None) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let ram = self.ram;
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail("translating", e),
        };
        let t = match translate(t, root, va, ram) {
            Ok(t) => t,
            Err(f) => return self.fail("translating", f),
        };
        vec![Reply::Translated(Box::new(Translated {
            expr: expr.to_string(),
            what: what.to_string(),
            translation: t,
        }))]
    }

    pub(super) fn proc_backtrace(&mut self, slot: usize) -> Vec<Reply> {
        let Some(syms) = self.symbols.clone() else {
            return vec![Reply::ProcBacktrace(
                slot,
                Err("no kernel ELF to find the process's context".into()),
            )];
        };
        let ram = self.ram;
        let t = match self.target() {
            Ok(t) => t,
            Err(e) => return self.fail("reading a saved context", e),
        };
        let r = super::snapshot::saved_context_backtrace(t, &syms, ram, slot);
        match r {
            Ok(bt) => vec![Reply::ProcBacktrace(slot, bt)],
            Err(e) => self.fail("reading a saved context", e),
        }
    }
}
