//! Sv39 virtual addresses: the three 9-bit VPN indices and the page offset,
//! and the canonical form (bits 63..39 copy bit 38).
//!
//! ```text
//!  63        39 38      30 29      21 20      12 11          0
//! ┌────────────┬──────────┬──────────┬──────────┬─────────────┐
//! │ = bit 38   │  VPN[2]  │  VPN[1]  │  VPN[0]  │   offset    │
//! └────────────┴──────────┴──────────┴──────────┴─────────────┘
//! ```

use crate::{VirtAddr, VA_BITS};

impl VirtAddr {
    /// The 9-bit index into the table at `level` (2 = root).
    pub const fn vpn(self, level: usize) -> usize {
        ((self.0 >> (12 + 9 * level)) & 0x1ff) as usize
    }

    /// Sign-extend bit 38 into bits 63..39, as QEMU prints addresses of the
    /// upper half (`0000003fffffe000` becomes `ffffffffffffe000`).
    pub const fn canonical(self) -> VirtAddr {
        let low = self.0 & ((1 << VA_BITS) - 1);
        if low & (1 << (VA_BITS - 1)) != 0 {
            VirtAddr(low | !((1 << VA_BITS) - 1))
        } else {
            VirtAddr(low)
        }
    }

    /// Whether the hardware accepts the address at all: bits 63..39 equal bit 38.
    pub const fn is_canonical(self) -> bool {
        self.canonical().0 == self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_indices() {
        let va = VirtAddr((5u64 << 30) | (7 << 21) | (9 << 12) | 0x123);
        assert_eq!(va.vpn(2), 5);
        assert_eq!(va.vpn(1), 7);
        assert_eq!(va.vpn(0), 9);
    }

    #[test]
    fn trampoline_is_canonical_upper_half() {
        let trampoline = VirtAddr((1u64 << 38) - 4096);
        assert_eq!(trampoline.canonical(), trampoline);
        assert!(trampoline.is_canonical());
        assert_eq!(
            VirtAddr(0x3f_ffff_f000 | (1 << 38)).canonical(),
            VirtAddr(0xffff_ffff_ffff_f000)
        );
        assert_eq!(
            VirtAddr(0x40_0000_0000).canonical(),
            VirtAddr(0xffff_ffc0_0000_0000)
        );
        assert!(!VirtAddr(0x40_0000_0000).is_canonical());
        assert!(VirtAddr(0xffff_ffc0_0000_0000).is_canonical());
        assert_eq!(VirtAddr(0xffff_ffc0_0000_0000).vpn(2), 256);
    }
}
