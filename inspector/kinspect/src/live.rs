//! Reading a guest while it runs, without halting it: what `kinspect top`
//! and the TUI's live mode share.
//!
//! The target's live reads must be on ([`crate::target::Target::set_live`]).
//! A running guest can change memory in the middle of a read, so each
//! thing is read twice and compared: a process slot or a page table whose
//! two reads differ is reported as changed while read (torn), never shown
//! as one instant. A read that fails outright (a pointer caught
//! half-written) is tried again, a bounded number of times.

use kinspect_sv39::{PhysAddr, Ram, Walk, WalkLimits};

use crate::model::{Kernel, KernelState, PhysCache, Proc};
use crate::target::Target;

/// Tries before a frame's process table is given up as unreadable.
const TRIES: usize = 3;

/// What a frame shows of a process: a slot whose two reads differ in it
/// is torn. (A running process's saved context changes at every switch
/// and is not shown, so it does not count.)
fn shown(p: &Proc) -> impl PartialEq + '_ {
    (p.pid, &p.state, &p.name, p.sz, p.pagetable)
}

/// Two reads of the process table, one after the other.
pub struct Twice {
    pub first: KernelState,
    pub second: KernelState,
    /// The slots whose two reads differ in what a frame shows.
    pub torn: Vec<usize>,
}

/// The process table, read twice.
pub fn procs_twice(kernel: &Kernel<'_>, t: &mut dyn Target, ram: Ram) -> Result<Twice, String> {
    let mut last = String::new();
    for _ in 0..TRIES {
        let mut once = || {
            let mut phys = PhysCache::new(&mut *t);
            kernel.read_state(&mut phys, ram).map_err(|e| e.to_string())
        };
        match once().and_then(|a| once().map(|b| (a, b))) {
            Ok((a, b)) => {
                let torn = a
                    .procs
                    .iter()
                    .zip(&b.procs)
                    .filter(|(x, y)| shown(x) != shown(y))
                    .map(|(_, y)| y.slot)
                    .collect();
                return Ok(Twice {
                    first: a,
                    second: b,
                    torn,
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The page table at `root`, walked twice: the second walk, and whether
/// the two differ.
pub fn walk_twice(t: &mut dyn Target, root: PhysAddr, ram: Ram) -> (Result<Walk, String>, bool) {
    let limits = WalkLimits {
        ram,
        ..WalkLimits::default()
    };
    let mut walk = || kinspect_sv39::walk(&mut *t, root, limits).map_err(|e| e.to_string());
    let first = walk();
    let second = walk();
    let torn = match (&first, &second) {
        (Ok(a), Ok(b)) => a.entries != b.entries,
        _ => first.is_ok() != second.is_ok(),
    };
    (second, torn)
}
