//! QEMU 7.2's `info mem` for RISC-V, reproduced from a [`Walk`].
//!
//! QEMU (target/riscv/monitor.c, `walk_pte`) walks the tree depth first
//! and merges consecutive leaves into one range while all of these hold:
//!
//! - the attribute byte (V R W X U G A D, not RSW) is the same;
//! - the physical address continues the previous leaf
//!   (`last_paddr + last_size == paddr`, with `paddr = (pte >> 10) << 12`,
//!   so PBMT/reserved bits leak into it exactly as QEMU prints them);
//! - the virtual address continues the previous leaf *of the same table
//!   page visit* (`last_start` is local to each recursive call).
//!
//! The last rule means a range never crosses a table page: 4 KiB pages in
//! two level-0 tables print as two ranges even when contiguous, and a
//! 2 MiB megapage never merges with 4 KiB pages. Verified against
//! `qemu-system-riscv64` 7.2 with crafted tables (see the tests).

use serde::Serialize;

use crate::pte::{PteFlags, PteKind};
use crate::walk::Walk;
use crate::{page_size, PhysAddr, VirtAddr, VA_BITS};

/// QEMU's two header lines.
pub const HEADER: &str = "vaddr            paddr            size             attr\n\
                          ---------------- ---------------- ---------------- -------";

/// One merged range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Range {
    /// Canonical (sign-extended) first virtual address.
    pub va: VirtAddr,
    /// As QEMU computes it (`(pte >> 10) << 12`, see [`crate::Pte::raw_pa`]).
    pub pa: PhysAddr,
    #[serde(serialize_with = "crate::json::hex")]
    pub size: u64,
    /// QEMU's attr byte: V R W X U G A D.
    #[serde(skip)]
    pub attr: PteFlags,
    /// The attr column, `rwxugad` with `-` for a clear bit.
    pub attrs: String,
}

impl Range {
    /// The line QEMU prints: `%016lx %016lx %016lx %s`.
    pub fn line(&self) -> String {
        format!(
            "{:016x} {:016x} {:016x} {}",
            self.va, self.pa, self.size, self.attrs
        )
    }

    pub fn has(&self, letter: char) -> bool {
        self.attrs.contains(letter)
    }
}

/// Merge the walk's leaves into ranges exactly as QEMU 7.2 does.
pub fn ranges(walk: &Walk) -> Vec<Range> {
    let va_mask = (1u64 << VA_BITS) - 1;
    let mut out = Vec::new();
    // QEMU's state, with its initial values.
    let mut vbase: u64 = u64::MAX;
    let mut pbase: u64 = u64::MAX;
    let mut last_paddr: u64 = u64::MAX;
    let mut last_size: u64 = 0;
    let mut last_attr = PteFlags::empty();
    // `last_start` lives in each walk_pte call: one per table visit, by
    // visit number (numbered from 0 in walk order, so a vector).
    let mut last_start: Vec<u64> = Vec::new();

    let emit = |out: &mut Vec<Range>, vbase: u64, pbase: u64, size: u64, attr: PteFlags| {
        if vbase >= 1 << VA_BITS || size == 0 {
            return;
        }
        out.push(Range {
            va: VirtAddr(vbase).canonical(),
            pa: PhysAddr(pbase),
            size,
            attr,
            attrs: attr.letters(),
        });
    };

    for e in walk.entries.iter().filter(|e| e.kind() == PteKind::Leaf) {
        // QEMU's arithmetic, kept on raw numbers: it wraps where QEMU's does.
        let start = e.va.0 & va_mask;
        let paddr = e.pte.raw_pa().0;
        let attr = e.pte.flags();
        let frame_start = last_start.get(e.visit).copied().unwrap_or(u64::MAX);
        if last_attr != attr
            || last_paddr.wrapping_add(last_size) != paddr
            || frame_start.wrapping_add(last_size) != start
        {
            let size = last_paddr.wrapping_add(last_size).wrapping_sub(pbase);
            emit(&mut out, vbase, pbase, size, last_attr);
            vbase = start;
            pbase = paddr;
            last_attr = attr;
        }
        // A walk numbers at most one visit per entry; anything beyond is
        // not from a walk and is not remembered.
        if e.visit >= last_start.len() && e.visit <= walk.entries.len() {
            last_start.resize(e.visit + 1, u64::MAX);
        }
        if let Some(s) = last_start.get_mut(e.visit) {
            *s = start;
        }
        last_paddr = paddr;
        last_size = page_size(e.level);
    }
    let size = last_paddr.wrapping_add(last_size).wrapping_sub(pbase);
    emit(&mut out, vbase, pbase, size, last_attr);
    out
}

/// The whole `info mem` text: header, then one line per range.
pub fn render(ranges: &[Range]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in ranges {
        s.push_str(&r.line());
        s.push('\n');
    }
    s
}
