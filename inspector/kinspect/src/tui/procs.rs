//! The process table as the TUI shows it, read through the kernel-objects
//! model ([`crate::model`]): `proc[]` and `cpus[]` found by DWARF name and
//! field (never by offset), so the same code reads this kernel and a C
//! xv6-riscv kernel built with `-g`. This module only turns the model's
//! [`Proc`](crate::model::Proc) into the rows the table draws.

use kinspect_sv39::{PhysAddr, Ram, VirtAddr};
use kinspect_symbols::Symbols;

use crate::model::{Kernel, KernelState, ModelError, PhysCache, ProcState, Profile};
use crate::target::Target;

/// One process slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcRow {
    /// Index in `proc[]`.
    pub slot: usize,
    pub pid: i64,
    pub state: ProcState,
    pub name: String,
    /// Virtual address of the kernel stack page, `KSTACK(slot)`.
    pub kstack: VirtAddr,
    /// Bytes of user memory.
    pub sz: u64,
    /// Root of the user page table (physical), 0 when none.
    pub pagetable: PhysAddr,
    /// Root of the per-process kernel page table, where the kernel has one
    /// (this kernel does; C xv6 does not).
    pub kpagetable: Option<PhysAddr>,
    /// The channel it sleeps on, 0 when none.
    pub chan: u64,
    /// The hart running it (`cpus[h].proc == &proc[slot]`).
    pub hart: Option<usize>,
}

impl ProcRow {
    pub fn unused(&self) -> bool {
        self.state == ProcState::Unused
    }

    /// `unused`, `used`, `sleeping`, `runnable`, `running`, `zombie`
    /// (the enumerator's name in lower case; `?N` for an unknown value).
    pub fn state_name(&self) -> String {
        self.state.name().to_ascii_lowercase()
    }
}

/// Every slot of `proc[]`, with the hart that runs each (from `cpus[]`),
/// and `kernel_pagetable`.
pub fn read_procs(
    syms: &Symbols,
    profile: &Profile,
    target: &mut dyn Target,
    ram: Ram,
) -> Result<(Vec<ProcRow>, PhysAddr), ModelError> {
    let kernel = Kernel::new(syms, profile.clone())?;
    let mut phys = PhysCache::new(target);
    let state = kernel.read_state(&mut phys, ram)?;
    Ok((rows(&state), state.kernel_pagetable))
}

/// The rows of every slot of a process table read through the model.
pub fn rows(state: &KernelState) -> Vec<ProcRow> {
    state
        .procs
        .iter()
        .map(|p| ProcRow {
            slot: p.slot,
            pid: p.pid,
            state: p.state.clone(),
            name: p.name.clone(),
            kstack: p.kstack,
            sz: p.sz.unwrap_or(0),
            pagetable: p.pagetable,
            kpagetable: p.kpagetable,
            chan: p.chan.unwrap_or(0),
            hart: state.hart_of(p.slot),
        })
        .collect()
}
