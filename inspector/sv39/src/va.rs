//! Sv39 virtual addresses: the three 9-bit VPN indices and the page offset,
//! and the canonical form (bits 63..39 copy bit 38).
//!
//! ```text
//!  63        39 38      30 29      21 20      12 11          0
//! ┌────────────┬──────────┬──────────┬──────────┬─────────────┐
//! │ = bit 38   │  VPN[2]  │  VPN[1]  │  VPN[0]  │   offset    │
//! └────────────┴──────────┴──────────┴──────────┴─────────────┘
//! ```

use crate::VA_BITS;

/// The 9-bit index into the table at `level` (2 = root).
pub fn vpn(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Sign-extend bit 38 into bits 63..39, as QEMU prints addresses of the
/// upper half (`0000003fffffe000` becomes `ffffffffffffe000`).
pub fn canonical(va: u64) -> u64 {
    let low = va & ((1 << VA_BITS) - 1);
    if low & (1 << (VA_BITS - 1)) != 0 {
        low | !((1 << VA_BITS) - 1)
    } else {
        low
    }
}

/// Whether the hardware accepts `va` at all: bits 63..39 equal bit 38.
pub fn is_canonical(va: u64) -> bool {
    canonical(va) == va
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_indices() {
        let va = (5u64 << 30) | (7 << 21) | (9 << 12) | 0x123;
        assert_eq!(vpn(va, 2), 5);
        assert_eq!(vpn(va, 1), 7);
        assert_eq!(vpn(va, 0), 9);
    }

    #[test]
    fn trampoline_is_canonical_upper_half() {
        let trampoline = (1u64 << 38) - 4096;
        assert_eq!(canonical(trampoline), trampoline);
        assert!(is_canonical(trampoline));
        assert_eq!(canonical(0x3f_ffff_f000 | (1 << 38)), 0xffff_ffff_ffff_f000);
        assert_eq!(canonical(0x40_0000_0000), 0xffff_ffc0_0000_0000);
        assert!(!is_canonical(0x40_0000_0000));
        assert!(is_canonical(0xffff_ffc0_0000_0000));
        assert_eq!(vpn(0xffff_ffc0_0000_0000, 2), 256);
    }
}
