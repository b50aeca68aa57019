//! The xv6 pgtbl lab's `vmprint`, from a [`Walk`].
//!
//! ```text
//! page table 0x0000000087f6e000
//!  ..0: pte 0x0000000021fda801 pa 0x0000000087f6a000
//!  .. ..0: pte 0x0000000021fda401 pa 0x0000000087f69000
//!  .. .. ..0: pte 0x0000000021fdac1f pa 0x0000000087f6b000
//! ```
//!
//! One line per valid entry, one ` ..` per level below the root, the index
//! in decimal, values as xv6's `%p` prints them, and `pa` as `PTE2PA`
//! computes it (`(pte >> 10) << 12`). Newer lab versions print the virtual
//! address the entry starts at instead of its index ([`Label::Va`]).

use crate::walk::Walk;
use crate::LEVELS;

/// What each line starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The index in its table, in decimal (the classic lab).
    Index,
    /// The first virtual address, sign-extended (the 2024 lab).
    Va,
}

/// The lines of `vmprint`, header first.
pub fn lines(walk: &Walk, label: Label) -> Vec<String> {
    let mut out = vec![format!("page table 0x{:016x}", walk.root)];
    for e in &walk.entries {
        let dots = " ..".repeat(LEVELS - e.level);
        let what = match label {
            Label::Index => e.index.to_string(),
            Label::Va => format!("0x{:016x}", e.va),
        };
        out.push(format!(
            "{dots}{what}: pte 0x{:016x} pa 0x{:016x}",
            e.pte.0,
            e.pte.raw_pa()
        ));
    }
    out
}
