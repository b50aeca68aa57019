//! The RISC-V Sv39 model kinspect reads page tables with.
//!
//! Pure logic, no I/O: everything here works on numbers and on physical
//! memory seen through the small [`PhysRead`] trait, so it is tested on the
//! host over crafted memory images. In kinspect's data flow it sits between
//! a `Target` (which reads physical memory of the live QEMU or a snapshot)
//! and the views (CLI text, `--json`, TUI):
//!
//! ```text
//!  Target ──read 4 KiB table pages──▶ walk::walk / walk::translate
//!                                        │
//!                     ┌──────────────────┼───────────────────┐
//!              info_mem::ranges     vmprint::lines     Translation (steps)
//!            (QEMU `info mem`)     (xv6 pgtbl lab)     (`translate --explain`)
//! ```
//!
//! - [`addr`]: [`PhysAddr`] and [`VirtAddr`], so the two never mix.
//! - [`satp`]: decode the satp CSR (mode, ASID, root page table).
//! - [`pte`]: decode one page-table entry ([`PteFlags`] for its V R W X U G
//!   A D bits) and flag reserved encodings.
//! - [`va`]: [`VirtAddr`]'s Sv39 arithmetic: VPN indices, canonical sign extension.
//! - [`walk`]: bounded walks over physical memory, with findings for
//!   everything odd (cycles, shared tables, PTEs pointing outside RAM).
//! - [`info_mem`] and [`vmprint`]: the two text views people already know.
//! - [`json`]: how `--json` writes 64-bit values (`"0x…"` strings).
//!
//! `docs/sv39.md` is the primer that explains the pictures behind all this.

pub mod addr;
pub mod info_mem;
pub mod json;
pub mod pte;
pub mod satp;
pub mod va;
pub mod vmprint;
pub mod walk;

pub use addr::{PhysAddr, VirtAddr};
pub use pte::{Pte, PteFlags, PteKind, PteProblem};
pub use satp::{Satp, SatpMode};
pub use walk::{
    translate, walk, Finding, Leaf, PhysRead, Ram, ReadError, Step, StepOutcome, Translation, Walk,
    WalkEntry, WalkLimits,
};

/// Bytes in a base page (and in a page-table page).
pub const PAGE_SIZE: u64 = 4096;

/// Entries in one page-table page.
pub const ENTRIES: usize = 512;

/// Page-table levels in Sv39: level 2 is the root, level 0 maps 4 KiB pages.
pub const LEVELS: usize = 3;

/// Bits of virtual address Sv39 translates (bits 63..39 must copy bit 38).
pub const VA_BITS: u32 = 39;

/// The bytes one PTE at `level` maps: 4 KiB at level 0, 2 MiB at level 1,
/// 1 GiB at level 2.
pub const fn page_size(level: usize) -> u64 {
    PAGE_SIZE << (9 * level)
}

/// A page size in words: `4 KiB`, `2 MiB` (megapage), `1 GiB` (gigapage).
pub fn page_size_name(size: u64) -> String {
    match size {
        0x1000 => "4 KiB".into(),
        0x20_0000 => "2 MiB".into(),
        0x4000_0000 => "1 GiB".into(),
        n => format!("{n:#x}-byte"),
    }
}
