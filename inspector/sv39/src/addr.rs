//! Typed addresses: [`PhysAddr`] (where a byte sits in RAM or a device)
//! and [`VirtAddr`] (what a hart asks for before translation).
//!
//! Mixing the two up is the very bug kinspect exists to catch, so the
//! model and the views carry them as distinct types: a physical address
//! cannot be passed where a virtual one is expected. Raw `u64`s remain at
//! the edges (numbers typed by the user, the gdb protocol, DWARF values)
//! and become typed there with an explicit `PhysAddr(..)`/`VirtAddr(..)`.
//!
//! Both print as `0x…` (`Display`, `{:#x}`; `{:016x}` zero-pads as for a
//! `u64`) and serialize as `"0x…"` strings, like every address in
//! kinspect's `--json` (see [`crate::json`]). Sv39's own arithmetic on
//! virtual addresses (VPN indices, the canonical form) is in [`crate::va`].

use std::fmt;
use std::ops::Add;

use serde::{Serialize, Serializer};

use crate::PAGE_SIZE;

macro_rules! address {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The byte offset inside its 4 KiB page.
            pub const fn page_offset(self) -> u64 {
                self.0 & (PAGE_SIZE - 1)
            }

            /// The start of its 4 KiB page.
            pub const fn page_down(self) -> $name {
                $name(self.0 & !(PAGE_SIZE - 1))
            }

            /// The start of its `size`-byte block (`size` a power of two:
            /// a page, megapage or gigapage).
            pub const fn align_down(self, size: u64) -> $name {
                $name(self.0 & !(size - 1))
            }

            /// The byte offset inside its `size`-byte block (`size` a power of two).
            pub const fn offset_in(self, size: u64) -> u64 {
                self.0 & (size - 1)
            }

            /// `self + n`, or `None` past the top of the 64-bit space.
            pub const fn checked_add(self, n: u64) -> Option<$name> {
                match self.0.checked_add(n) {
                    Some(a) => Some($name(a)),
                    None => None,
                }
            }

            /// `self + n`, wrapping at the top of the 64-bit space.
            pub const fn wrapping_add(self, n: u64) -> $name {
                $name(self.0.wrapping_add(n))
            }

            /// How far `self` lies above `base`, or `None` below it.
            pub const fn offset_from(self, base: $name) -> Option<u64> {
                self.0.checked_sub(base.0)
            }
        }

        /// `addr + bytes`; overflow is a bug (it panics in debug builds).
        impl Add<u64> for $name {
            type Output = $name;
            fn add(self, n: u64) -> $name {
                $name(self.0 + n)
            }
        }

        impl From<$name> for u64 {
            fn from(a: $name) -> u64 {
                a.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        /// `"0x…"`, as [`crate::json::hex`] writes a `u64`.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                crate::json::Hex(self.0).serialize(s)
            }
        }
    };
}

address! {
    /// A physical address: RAM (page tables, frames) or a device register.
    PhysAddr
}

address! {
    /// A virtual address, as a hart sees it before translation. Addresses of
    /// the upper half are kept canonical (sign-extended) where a walk makes
    /// them; see [`VirtAddr::canonical`].
    VirtAddr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_serializes_as_hex() {
        let pa = PhysAddr(0x87f6_a000);
        assert_eq!(pa.to_string(), "0x87f6a000");
        assert_eq!(format!("{pa:#x} {pa:016x}"), "0x87f6a000 0000000087f6a000");
        assert_eq!(format!("{pa:?}"), "PhysAddr(0x87f6a000)");
        let va = VirtAddr(0xffff_ffff_ffff_f000);
        assert_eq!(
            serde_json::to_string(&(va, Some(pa), None::<PhysAddr>)).unwrap(),
            r#"["0xfffffffffffff000","0x87f6a000",null]"#
        );
    }

    #[test]
    fn page_arithmetic() {
        let va = VirtAddr(0x8000_1234);
        assert_eq!(va.page_offset(), 0x234);
        assert_eq!(va.page_down(), VirtAddr(0x8000_1000));
        assert_eq!(va.align_down(0x20_0000), VirtAddr(0x8000_0000));
        assert_eq!(va.offset_in(0x20_0000), 0x1234);
        assert_eq!(va + 0x10, VirtAddr(0x8000_1244));
        assert_eq!(VirtAddr(u64::MAX).checked_add(1), None);
        assert_eq!(VirtAddr(u64::MAX).wrapping_add(1), VirtAddr(0));
        assert_eq!(
            PhysAddr(0x8000_1000).offset_from(PhysAddr(0x8000_0000)),
            Some(0x1000)
        );
        assert_eq!(PhysAddr(0x1000).offset_from(PhysAddr(0x8000_0000)), None);
    }
}
