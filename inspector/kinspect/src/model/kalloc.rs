//! kalloc's free list: `kmem.freelist`, a chain of `struct run` whose
//! `next` lives in the first bytes of each free page.
//!
//! The walk trusts nothing it reads: it stops at a link outside RAM, an
//! unaligned one, an unreadable page, a page met before (a cycle) or after
//! as many steps as RAM has pages, and says which.

use std::collections::HashSet;

use kinspect_sv39::{PhysAddr, Ram};
use kinspect_symbols::TypeKind;
use serde::Serialize;

use super::{Kernel, ModelError, PhysCache, Result};

/// Links read through the target before asking for a RAM dump.
const DUMP_AFTER: usize = 64;

/// Why the free-list walk stopped before a null link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FreeListProblem {
    /// Link number `index` (0 = the head) points outside RAM.
    OutsideRam {
        index: usize,
        addr: PhysAddr,
        from: PhysAddr,
    },
    /// It is not page-aligned.
    Unaligned {
        index: usize,
        addr: PhysAddr,
        from: PhysAddr,
    },
    /// It points to a page already on the list: a cycle.
    Cycle {
        index: usize,
        addr: PhysAddr,
        from: PhysAddr,
    },
    /// The page could not be read.
    Unreadable { index: usize, addr: PhysAddr },
    /// More links than RAM has pages.
    TooLong { limit: usize },
}

impl std::fmt::Display for FreeListProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = |from: &PhysAddr| {
            if from.0 == 0 {
                "kmem.freelist".to_string()
            } else {
                format!("the free page {from:#x}")
            }
        };
        match self {
            FreeListProblem::OutsideRam {
                index,
                addr,
                from: f0,
            } => write!(
                f,
                "link {index} ({} -> {addr:#x}) points outside RAM",
                from(f0)
            ),
            FreeListProblem::Unaligned {
                index,
                addr,
                from: f0,
            } => write!(
                f,
                "link {index} ({} -> {addr:#x}) is not page-aligned",
                from(f0)
            ),
            FreeListProblem::Cycle {
                index,
                addr,
                from: f0,
            } => write!(
                f,
                "link {index} ({} -> {addr:#x}) points back to a page already on the list: a cycle",
                from(f0)
            ),
            FreeListProblem::Unreadable { index, addr } => {
                write!(f, "free page {index} at {addr:#x} is unreadable")
            }
            FreeListProblem::TooLong { limit } => {
                write!(f, "more than {limit} links, more than RAM has pages")
            }
        }
    }
}

/// The free list as walked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FreeList {
    /// `kmem.freelist` (a page kalloc hands out: its pointer is its
    /// physical address).
    pub head: PhysAddr,
    /// The free pages in list order, up to where the walk stopped.
    pub pages: Vec<PhysAddr>,
    pub problem: Option<FreeListProblem>,
    /// The kernel's own count, when `kmem` keeps one (`nfree`).
    pub nfree: Option<u64>,
}

impl Kernel<'_> {
    /// Walk `kmem.freelist`. Returns `Ok(None)` when the kernel has no
    /// `kmem` with a free list (nothing to walk).
    pub fn free_list(&self, phys: &mut PhysCache<'_>, ram: Ram) -> Result<Option<FreeList>> {
        let syms = self.syms;
        let Ok(g) = syms.global(&self.profile.kmem) else {
            return Ok(None);
        };
        let Some(ty) = g.ty else { return Ok(None) };
        let Ok(m) = syms.member(ty, &self.profile.freelist) else {
            return Ok(None);
        };
        // `struct run *`: the offset and size of `next` inside a run.
        let run = syms.resolve(m.ty).ok().and_then(|t| match t.kind {
            TypeKind::Pointer { pointee } => pointee,
            _ => None,
        });
        let (next_off, next_size) =
            match run.and_then(|r| syms.member(r, &self.profile.run_next).ok()) {
                Some(n) => (n.offset, syms.size_of(n.ty).unwrap_or(8)),
                None => {
                    return Err(ModelError::FreeListType(format!(
                        "`{}.{}` is not a pointer to a struct with `{}`",
                        self.profile.kmem, self.profile.freelist, self.profile.run_next
                    )))
                }
            };
        if !(1..=8).contains(&next_size) {
            return Err(ModelError::FreeListType(format!(
                "`struct run`'s `{}` is {next_size} bytes",
                self.profile.run_next
            )));
        }
        let kmem = self.load(phys, ram, g.addr, ty)?;
        let head = kmem
            .field(&self.profile.freelist)
            .and_then(|v| v.as_u64())
            .map(PhysAddr)
            .map_err(|e| ModelError::Value {
                what: "`kmem`".into(),
                source: e,
            })?;
        let nfree = super::state::opt_u64(&kmem, "nfree");
        let limit = (ram.size / 4096) as usize + 1;
        let mut pages = Vec::new();
        let mut seen = HashSet::new();
        let mut problem = None;
        let (mut at, mut from) = (head, PhysAddr(0));
        while at.0 != 0 {
            let index = pages.len();
            if index >= limit {
                problem = Some(FreeListProblem::TooLong { limit });
                break;
            }
            if !ram.contains(at) {
                problem = Some(FreeListProblem::OutsideRam {
                    index,
                    addr: at,
                    from,
                });
                break;
            }
            if at.page_offset() != 0 {
                problem = Some(FreeListProblem::Unaligned {
                    index,
                    addr: at,
                    from,
                });
                break;
            }
            if !seen.insert(at) {
                problem = Some(FreeListProblem::Cycle {
                    index,
                    addr: at,
                    from,
                });
                break;
            }
            pages.push(at);
            if pages.len() == DUMP_AFTER {
                // A long list: one RAM dump beats thousands of round trips.
                phys.try_ram_dump(ram, at + next_off);
            }
            let mut b = [0u8; 8];
            match phys.peek(at + next_off, &mut b[..next_size as usize]) {
                Ok(()) => {}
                Err(None) => {
                    problem = Some(FreeListProblem::Unreadable { index, addr: at });
                    break;
                }
                Err(Some(e)) => return Err(ModelError::Target(e)),
            }
            from = at;
            at = PhysAddr(u64::from_le_bytes(b));
        }
        Ok(Some(FreeList {
            head,
            pages,
            problem,
            nfree,
        }))
    }
}
