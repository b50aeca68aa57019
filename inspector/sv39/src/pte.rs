//! One Sv39 page-table entry: its bits, what kind of entry it is, and
//! which encodings the privileged spec reserves.
//!
//! ```text
//!  63 62 61 60      54 53                         10 9  8 7 6 5 4 3 2 1 0
//! ┌──┬─────┬──────────┬─────────────────────────────┬────┬─┬─┬─┬─┬─┬─┬─┬─┐
//! │N │PBMT │ reserved │  PPN[2]  │  PPN[1] │ PPN[0]  │RSW │D│A│G│U│X│W│R│V│
//! └──┴─────┴──────────┴─────────────────────────────┴────┴─┴─┴─┴─┴─┴─┴─┴─┘
//! ```
//!
//! V=0: invalid. V=1 and R=W=X=0: a pointer to the next-level table.
//! V=1 with any of R, W, X: a leaf that maps a page (4 KiB at level 0,
//! a 2 MiB megapage at level 1, a 1 GiB gigapage at level 2).

use bitflags::bitflags;
use serde::Serialize;
use std::fmt;

use crate::PhysAddr;

bitflags! {
    /// The low 8 bits of a PTE: V R W X U G A D. QEMU's `info mem` calls
    /// them the attr byte and compares all eight.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct PteFlags: u64 {
        /// Valid.
        const V = 1 << 0;
        /// Readable.
        const R = 1 << 1;
        /// Writable.
        const W = 1 << 2;
        /// Executable.
        const X = 1 << 3;
        /// Accessible in user mode.
        const U = 1 << 4;
        /// Global (in every address space).
        const G = 1 << 5;
        /// Accessed.
        const A = 1 << 6;
        /// Dirty.
        const D = 1 << 7;
    }
}

impl PteFlags {
    /// The flags and their `info mem` letters, in `rwxugad` order (V has none).
    const LETTERS: [(PteFlags, char); 7] = [
        (PteFlags::R, 'r'),
        (PteFlags::W, 'w'),
        (PteFlags::X, 'x'),
        (PteFlags::U, 'u'),
        (PteFlags::G, 'g'),
        (PteFlags::A, 'a'),
        (PteFlags::D, 'd'),
    ];

    /// Letters `rwxugad`, `-` for a clear flag: QEMU's `info mem` attr column.
    pub fn letters(self) -> String {
        PteFlags::LETTERS
            .iter()
            .map(|&(f, c)| if self.contains(f) { c } else { '-' })
            .collect()
    }
}

/// Bits 54..60: reserved for future standard use, must be zero.
pub const RESERVED_MASK: u64 = 0x7f << 54;
/// Width of the PPN field (bits 53..10).
const PPN_BITS: u32 = 44;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PteKind {
    /// V=0: the hardware ignores every other bit.
    Invalid,
    /// V=1, R=W=X=0: points at the next level's table.
    Pointer,
    /// V=1 with R, W or X: maps a page.
    Leaf,
}

impl fmt::Display for PteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PteKind::Invalid => "invalid",
            PteKind::Pointer => "pointer",
            PteKind::Leaf => "leaf",
        })
    }
}

/// An encoding the privileged spec reserves, or that faults when used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PteProblem {
    /// W=1 with R=0: reserved; the hardware raises a page fault.
    WriteWithoutRead,
    /// A pointer with U, A or D set: reserved for future use.
    PointerWithUad,
    /// Bits 54..60 not zero.
    ReservedBits {
        #[serde(serialize_with = "crate::json::hex")]
        bits: u64,
    },
    /// PBMT=3 is reserved (Svpbmt).
    ReservedPbmt,
    /// A pointer with PBMT or N set: reserved for non-leaf entries.
    PointerWithPbmtOrN,
    /// A leaf above level 0 whose PPN is not aligned to its page size:
    /// the hardware raises a page fault.
    MisalignedSuperpage { level: usize },
    /// A pointer at level 0: there is no level below; a page fault.
    PointerAtLevel0,
}

impl fmt::Display for PteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PteProblem::WriteWithoutRead => f.write_str("W without R (reserved encoding)"),
            PteProblem::PointerWithUad => f.write_str("pointer with U, A or D set (reserved)"),
            PteProblem::ReservedBits { bits } => {
                write!(f, "reserved bits 54..60 set ({:#x})", bits >> 54)
            }
            PteProblem::ReservedPbmt => f.write_str("PBMT=3 (reserved)"),
            PteProblem::PointerWithPbmtOrN => f.write_str("pointer with PBMT or N set (reserved)"),
            PteProblem::MisalignedSuperpage { level } => {
                write!(
                    f,
                    "misaligned superpage (level {level} leaf, PPN not aligned)"
                )
            }
            PteProblem::PointerAtLevel0 => f.write_str("pointer at level 0 (no level below)"),
        }
    }
}

/// A raw page-table entry. In JSON: `"0x…"` (see [`crate::json`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte(pub u64);

impl Serialize for Pte {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::json::Hex(self.0).serialize(s)
    }
}

impl Pte {
    /// The entry mapping (or pointing at) `pa` with `flags`.
    pub const fn new(pa: PhysAddr, flags: PteFlags) -> Pte {
        Pte(((pa.0 >> 12) << 10) | flags.bits())
    }

    /// V, R, W, X, U, G, A and D.
    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_truncate(self.0)
    }

    pub fn valid(self) -> bool {
        self.has(PteFlags::V)
    }

    pub fn kind(self) -> PteKind {
        if !self.valid() {
            PteKind::Invalid
        } else if !self
            .flags()
            .intersects(PteFlags::R | PteFlags::W | PteFlags::X)
        {
            PteKind::Pointer
        } else {
            PteKind::Leaf
        }
    }

    /// Whether every flag in `flags` is set.
    pub fn has(self, flags: PteFlags) -> bool {
        self.flags().contains(flags)
    }

    /// The two software bits (8..9).
    pub fn rsw(self) -> u8 {
        ((self.0 >> 8) & 3) as u8
    }

    /// Svpbmt's page-based memory type, bits 61..62 (0 PMA, 1 NC, 2 IO, 3 reserved).
    pub fn pbmt(self) -> u8 {
        ((self.0 >> 61) & 3) as u8
    }

    /// Svnapot's N bit, bit 63.
    pub fn napot(self) -> bool {
        self.0 >> 63 != 0
    }

    /// Bits 54..60 (reserved), in place.
    pub fn reserved(self) -> u64 {
        self.0 & RESERVED_MASK
    }

    /// The 44-bit physical page number, bits 53..10.
    pub fn ppn(self) -> u64 {
        (self.0 >> 10) & ((1 << PPN_BITS) - 1)
    }

    /// The physical address the entry names (next table, or page base).
    pub fn pa(self) -> PhysAddr {
        PhysAddr(self.ppn() << 12)
    }

    /// xv6's `PTE2PA(pte)`, `((pte) >> 10) << 12`, which QEMU's `info mem`
    /// also uses: high bits (PBMT, reserved) leak into the address.
    pub fn raw_pa(self) -> PhysAddr {
        PhysAddr((self.0 >> 10) << 12)
    }

    /// Letters `rwxugad`, `-` for a clear bit: QEMU's `info mem` attr column.
    pub fn attr_letters(self) -> String {
        self.flags().letters()
    }

    /// Everything reserved or faulting about this entry when found at `level`
    /// (2 = root). Invalid entries have no problems: the hardware ignores them.
    pub fn problems(self, level: usize) -> Vec<PteProblem> {
        let mut p = Vec::new();
        match self.kind() {
            PteKind::Invalid => return p,
            PteKind::Pointer => {
                if self
                    .flags()
                    .intersects(PteFlags::U | PteFlags::A | PteFlags::D)
                {
                    p.push(PteProblem::PointerWithUad);
                }
                if self.pbmt() != 0 || self.napot() {
                    p.push(PteProblem::PointerWithPbmtOrN);
                }
                if level == 0 {
                    p.push(PteProblem::PointerAtLevel0);
                }
            }
            PteKind::Leaf => {
                if self.has(PteFlags::W) && !self.has(PteFlags::R) {
                    p.push(PteProblem::WriteWithoutRead);
                }
                if level > 0 && self.ppn() & ((1 << (9 * level)) - 1) != 0 {
                    p.push(PteProblem::MisalignedSuperpage { level });
                }
            }
        }
        if self.reserved() != 0 {
            p.push(PteProblem::ReservedBits {
                bits: self.reserved(),
            });
        }
        if self.pbmt() == 3 {
            p.push(PteProblem::ReservedPbmt);
        }
        p
    }
}

/// The flags of an entry as capital letters, `V R W X U G A D` order,
/// for explanations: `"V R W - - - A D"`.
pub fn flag_names(pte: Pte) -> String {
    PteFlags::all()
        .iter_names()
        .map(|(name, f)| if pte.has(f) { name } else { "-" })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: PteFlags = PteFlags::V;
    const R: PteFlags = PteFlags::R;
    const W: PteFlags = PteFlags::W;
    const X: PteFlags = PteFlags::X;
    const U: PteFlags = PteFlags::U;
    const G: PteFlags = PteFlags::G;
    const A: PteFlags = PteFlags::A;
    const D: PteFlags = PteFlags::D;

    fn pte(pa: u64, flags: PteFlags) -> Pte {
        Pte::new(PhysAddr(pa), flags)
    }

    #[test]
    fn classifies_kinds() {
        assert_eq!(Pte(0).kind(), PteKind::Invalid);
        assert_eq!(Pte((R | W).bits()).kind(), PteKind::Invalid);
        assert_eq!(pte(0x8000_1000, V).kind(), PteKind::Pointer);
        assert_eq!(pte(0x8000_1000, V | X).kind(), PteKind::Leaf);
        assert_eq!(pte(0x8000_1000, V | R).kind(), PteKind::Leaf);
    }

    #[test]
    fn decodes_the_xv6_example_entry() {
        // From the pgtbl lab's vmprint output.
        let p = Pte(0x0000000021fdac1f);
        assert_eq!(p.pa(), PhysAddr(0x0000000087f6b000));
        assert_eq!(p.kind(), PteKind::Leaf);
        assert!(p.has(V) && p.has(R) && p.has(W) && p.has(X) && p.has(U));
        assert!(!p.has(G) && !p.has(A) && !p.has(D));
        assert_eq!(p.attr_letters(), "rwxu---");
        assert_eq!(flag_names(p), "V R W X U - - -");
        assert!(p.problems(0).is_empty());
    }

    #[test]
    fn decodes_high_bits() {
        let p = Pte((1 << 63) | (2 << 61) | (1 << 54) | (3 << 8) | (V | R).bits());
        assert!(p.napot());
        assert_eq!(p.pbmt(), 2);
        assert_eq!(p.rsw(), 3);
        assert_eq!(p.reserved(), 1 << 54);
        assert_eq!(p.ppn(), 0);
        assert_eq!(p.raw_pa(), PhysAddr((p.0 >> 10) << 12));
        assert_ne!(p.raw_pa(), p.pa());
    }

    #[test]
    fn flags_write_without_read() {
        assert_eq!(
            pte(0x8000_0000, V | W).problems(0),
            vec![PteProblem::WriteWithoutRead]
        );
        assert_eq!(
            pte(0x8000_0000, V | W | X).problems(0),
            vec![PteProblem::WriteWithoutRead]
        );
    }

    #[test]
    fn flags_pointer_with_uad_and_at_level_0() {
        let p = pte(0x8000_0000, V | A);
        assert_eq!(p.problems(1), vec![PteProblem::PointerWithUad]);
        assert_eq!(
            pte(0x8000_0000, V).problems(0),
            vec![PteProblem::PointerAtLevel0]
        );
        assert!(pte(0x8000_0000, V).problems(2).is_empty());
    }

    #[test]
    fn flags_reserved_bits_and_pbmt() {
        let p = Pte(pte(0x8000_0000, V | R).0 | (1 << 60));
        assert_eq!(
            p.problems(0),
            vec![PteProblem::ReservedBits { bits: 1 << 60 }]
        );
        let p = Pte(pte(0x8000_0000, V | R).0 | (3 << 61));
        assert_eq!(p.problems(0), vec![PteProblem::ReservedPbmt]);
        let p = Pte(pte(0x8000_0000, V).0 | (1 << 63));
        assert_eq!(p.problems(2), vec![PteProblem::PointerWithPbmtOrN]);
    }

    #[test]
    fn flags_misaligned_superpages_only() {
        assert_eq!(
            pte(0x8000_1000, V | R).problems(1),
            vec![PteProblem::MisalignedSuperpage { level: 1 }]
        );
        assert!(pte(0x8020_0000, V | R).problems(1).is_empty());
        assert_eq!(
            pte(0x8020_0000, V | R).problems(2),
            vec![PteProblem::MisalignedSuperpage { level: 2 }]
        );
        assert!(pte(0x8000_0000, V | R).problems(2).is_empty());
        assert!(pte(0x8000_1000, V | R).problems(0).is_empty());
    }

    #[test]
    fn attr_letters_cover_every_bit() {
        assert_eq!(PteFlags::all().letters(), "rwxugad");
        assert_eq!(V.letters(), "-------");
        assert_eq!((V | R | X | A).letters(), "r-x--a-");
        assert_eq!(Pte(0xff).flags(), PteFlags::all());
        assert_eq!(Pte(!0).flags(), PteFlags::all());
    }
}
