//! The satp CSR: which page table a hart translates through.
//!
//! ```text
//!  63    60 59            44 43                                  0
//! ┌────────┬────────────────┬─────────────────────────────────────┐
//! │  MODE  │      ASID      │     PPN of the root page table      │
//! └────────┴────────────────┴─────────────────────────────────────┘
//! ```
//!
//! The root table's physical address is `PPN << 12`.

use serde::Serialize;
use std::fmt;

use crate::PhysAddr;

/// satp.MODE: the translation scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SatpMode {
    /// 0: no translation, virtual = physical.
    Bare,
    /// 8: three levels, 39-bit virtual addresses.
    Sv39,
    /// 9: four levels, 48-bit virtual addresses.
    Sv48,
    /// 10: five levels, 57-bit virtual addresses.
    Sv57,
    /// Any other value: reserved or custom, not a mode a hart accepts.
    Reserved(u8),
}

impl SatpMode {
    pub fn from_bits(mode: u8) -> SatpMode {
        match mode {
            0 => SatpMode::Bare,
            8 => SatpMode::Sv39,
            9 => SatpMode::Sv48,
            10 => SatpMode::Sv57,
            n => SatpMode::Reserved(n),
        }
    }

    /// The 4-bit field value.
    pub fn bits(self) -> u8 {
        match self {
            SatpMode::Bare => 0,
            SatpMode::Sv39 => 8,
            SatpMode::Sv48 => 9,
            SatpMode::Sv57 => 10,
            SatpMode::Reserved(n) => n,
        }
    }
}

impl fmt::Display for SatpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SatpMode::Bare => f.write_str("Bare"),
            SatpMode::Sv39 => f.write_str("Sv39"),
            SatpMode::Sv48 => f.write_str("Sv48"),
            SatpMode::Sv57 => f.write_str("Sv57"),
            SatpMode::Reserved(n) => write!(f, "reserved mode {n}"),
        }
    }
}

/// A decoded satp value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Satp(pub u64);

impl Satp {
    pub fn mode(self) -> SatpMode {
        SatpMode::from_bits((self.0 >> 60) as u8)
    }

    /// The address-space identifier, bits 59..44.
    pub fn asid(self) -> u16 {
        ((self.0 >> 44) & 0xffff) as u16
    }

    /// The root page table's physical page number, bits 43..0.
    pub fn ppn(self) -> u64 {
        self.0 & ((1 << 44) - 1)
    }

    /// The root page table's physical address.
    pub fn root(self) -> PhysAddr {
        PhysAddr(self.ppn() << 12)
    }

    /// The satp value that selects Sv39 with this root table and ASID 0.
    pub fn sv39(root: PhysAddr) -> Satp {
        Satp((8 << 60) | (root.0 >> 12))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_xv6_kernel_satp() {
        let s = Satp(0x8000_0000_0008_7fff);
        assert_eq!(s.mode(), SatpMode::Sv39);
        assert_eq!(s.asid(), 0);
        assert_eq!(s.ppn(), 0x87fff);
        assert_eq!(s.root(), PhysAddr(0x87ff_f000));
    }

    #[test]
    fn decodes_every_field() {
        let s = Satp((9 << 60) | (0xbeef << 44) | 0x1234);
        assert_eq!(s.mode(), SatpMode::Sv48);
        assert_eq!(s.asid(), 0xbeef);
        assert_eq!(s.root(), PhysAddr(0x123_4000));
        assert_eq!(Satp(0).mode(), SatpMode::Bare);
        assert_eq!(Satp(10 << 60).mode(), SatpMode::Sv57);
    }

    #[test]
    fn unnamed_modes_are_flagged_reserved() {
        for m in [1u8, 7, 11, 15] {
            let mode = Satp((m as u64) << 60).mode();
            assert_eq!(mode, SatpMode::Reserved(m));
            assert_eq!(mode.bits(), m);
            assert!(mode.to_string().contains("reserved"));
        }
    }

    #[test]
    fn sv39_constructor_round_trips() {
        let s = Satp::sv39(PhysAddr(0x8765_4000));
        assert_eq!(s.mode(), SatpMode::Sv39);
        assert_eq!(s.root(), PhysAddr(0x8765_4000));
    }
}
