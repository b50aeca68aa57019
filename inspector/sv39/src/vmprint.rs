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

use crate::walk::{Walk, WalkEntry};
use crate::{page_size, VirtAddr, LEVELS};

/// What each line starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The index in its table, in decimal (the classic lab).
    Index,
    /// The first virtual address, sign-extended (the 2024 lab).
    Va,
}

/// Whether the virtual range entry `e` covers (one page, megapage,
/// gigapage, or a whole subtree for a pointer) meets `[start, end)`.
/// Addresses are canonical (sign-extended), as [`WalkEntry::va`] is.
pub fn meets(e: &WalkEntry, start: VirtAddr, end: VirtAddr) -> bool {
    let first = u128::from(e.va.0);
    let past = first + u128::from(page_size(e.level));
    first < u128::from(end.0) && u128::from(start.0) < past
}

/// The lines of `vmprint`, header first.
pub fn lines(walk: &Walk, label: Label) -> Vec<String> {
    lines_in(walk, label, VirtAddr(0), VirtAddr(u64::MAX))
}

/// The lines of `vmprint` for the entries that cover some of the virtual
/// range `[start, end)` (the pointers on the way down to them included),
/// header first.
pub fn lines_in(walk: &Walk, label: Label, start: VirtAddr, end: VirtAddr) -> Vec<String> {
    let mut out = vec![format!("page table 0x{:016x}", walk.root)];
    for e in walk.entries.iter().filter(|e| meets(e, start, end)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PhysAddr, Pte};

    fn entry(level: usize, va: u64) -> WalkEntry {
        WalkEntry {
            level,
            index: 0,
            va: VirtAddr(va),
            pte: Pte(1),
            table: PhysAddr(0x8000_0000),
            visit: 0,
        }
    }

    #[test]
    fn an_entry_meets_a_range_that_overlaps_what_it_maps() {
        let page = entry(0, 0x1000);
        assert!(meets(&page, VirtAddr(0x1fff), VirtAddr(0x2000)));
        assert!(meets(&page, VirtAddr(0), VirtAddr(0x1001)));
        assert!(!meets(&page, VirtAddr(0x2000), VirtAddr(0x3000)));
        assert!(!meets(&page, VirtAddr(0), VirtAddr(0x1000)));
        // A root entry covers its whole gigabyte.
        let top = entry(2, 0x3f_c000_0000);
        assert!(meets(
            &top,
            VirtAddr(0x3f_ffff_f000),
            VirtAddr(0x40_0000_0000)
        ));
        assert!(!meets(&top, VirtAddr(0), VirtAddr(0x3f_c000_0000)));
        // The last gigabyte of the canonical high half does not overflow.
        let last = entry(2, 0xffff_ffff_c000_0000);
        assert!(meets(
            &last,
            VirtAddr(0xffff_ffff_ffff_f000),
            VirtAddr(u64::MAX)
        ));
    }
}
