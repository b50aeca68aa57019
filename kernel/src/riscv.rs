//! The RISC-V machine as the kernel sees it (xv6's riscv.h): control and
//! status registers, and the Sv39 types every other module builds on:
//! [`PhysAddr`], [`VirtAddr`], [`Pte`], [`PteFlags`], [`PageTable`], and a
//! whole table as the owned [`Pagetable`] handle or its borrow [`PagetableRef`].
//!
//! CSR accessors are real instructions on riscv64. On the host (unit tests)
//! they read as 0 and writes are dropped, so code that only toggles
//! interrupts (spinlocks) still runs there; nothing else calls them on the
//! host.

#![allow(dead_code)]

use core::ops::{BitAnd, BitOr, BitOrAssign};
use core::marker::PhantomData;
use core::ptr::NonNull;

/// Define a reader `$r()` and a writer `$w(x)` for a CSR.
macro_rules! csr {
    ($r:ident, $w:ident, $name:literal) => {
        #[inline(always)]
        pub fn $r() -> u64 {
            #[cfg(target_arch = "riscv64")]
            {
                let x: u64;
                // SAFETY: reading a CSR has no side effect on memory; the
                // kernel only names CSRs that exist on QEMU's rv64 harts.
                unsafe { core::arch::asm!(concat!("csrr {}, ", $name), out(reg) x) };
                x
            }
            #[cfg(not(target_arch = "riscv64"))]
            {
                0
            }
        }
        /// Write the CSR.
        ///
        /// # Safety
        /// A CSR write changes how this hart translates addresses, takes
        /// traps or returns from them: the value must keep the running
        /// code and its stack mapped, and the trap state consistent with
        /// the kernel's (the caller says why in its `SAFETY:` comment).
        #[inline(always)]
        #[allow(unused_variables)]
        pub unsafe fn $w(x: u64) {
            #[cfg(target_arch = "riscv64")]
            // SAFETY: the caller's contract above.
            unsafe {
                core::arch::asm!(concat!("csrw ", $name, ", {}"), in(reg) x)
            };
        }
    };
    ($r:ident, $name:literal) => {
        #[inline(always)]
        pub fn $r() -> u64 {
            #[cfg(target_arch = "riscv64")]
            {
                let x: u64;
                // SAFETY: reading a CSR has no side effect on memory.
                unsafe { core::arch::asm!(concat!("csrr {}, ", $name), out(reg) x) };
                x
            }
            #[cfg(not(target_arch = "riscv64"))]
            {
                0
            }
        }
    };
}

csr!(r_mhartid, "mhartid");
csr!(r_mstatus, w_mstatus, "mstatus");
csr!(r_mepc, w_mepc, "mepc");
csr!(r_sstatus, w_sstatus, "sstatus");
csr!(r_sip, w_sip, "sip");
csr!(r_sie, w_sie, "sie");
csr!(r_mie, w_mie, "mie");
csr!(r_sepc, w_sepc, "sepc");
csr!(r_medeleg, w_medeleg, "medeleg");
csr!(r_mideleg, w_mideleg, "mideleg");
csr!(r_stvec, w_stvec, "stvec");
csr!(r_mtvec, w_mtvec, "mtvec");
csr!(r_pmpcfg0, w_pmpcfg0, "pmpcfg0");
csr!(r_pmpaddr0, w_pmpaddr0, "pmpaddr0");
csr!(r_satp, w_satp, "satp");
csr!(r_mscratch, w_mscratch, "mscratch");
csr!(r_scause, "scause");
csr!(r_stval, "stval");
csr!(r_mcounteren, w_mcounteren, "mcounteren");
csr!(r_time, "time");
// Sstc: the supervisor timer compare register and its enable in menvcfg.
csr!(r_stimecmp, w_stimecmp, "0x14d");
csr!(r_menvcfg, w_menvcfg, "0x30a");

/// Previous mode field of mstatus.
pub const MSTATUS_MPP_MASK: u64 = 3 << 11;
pub const MSTATUS_MPP_S: u64 = 1 << 11;
pub const MSTATUS_MIE: u64 = 1 << 3;

/// Previous mode, 1=Supervisor, 0=User.
pub const SSTATUS_SPP: u64 = 1 << 8;
/// Supervisor previous interrupt enable.
pub const SSTATUS_SPIE: u64 = 1 << 5;
/// Supervisor interrupt enable.
pub const SSTATUS_SIE: u64 = 1 << 1;

/// Supervisor external, timer and software interrupt enables.
pub const SIE_SEIE: u64 = 1 << 9;
pub const SIE_STIE: u64 = 1 << 5;
pub const SIE_SSIE: u64 = 1 << 1;
/// Machine-mode supervisor-timer interrupt enable.
pub const MIE_STIE: u64 = 1 << 5;

/// The hart id, kept in `tp` since `start` (harts run S mode, where mhartid
/// is not readable).
#[inline(always)]
pub fn r_tp() -> u64 {
    #[cfg(target_arch = "riscv64")]
    {
        let x: u64;
        // SAFETY: reads a register.
        unsafe { core::arch::asm!("mv {}, tp", out(reg) x) };
        x
    }
    #[cfg(not(target_arch = "riscv64"))]
    {
        0
    }
}

/// Set `tp` (only `start` does, to the hart id).
///
/// # Safety
/// `x` is this hart's id: `cpuid()` and every per-hart structure trust it.
#[inline(always)]
#[allow(unused_variables)]
pub unsafe fn w_tp(x: u64) {
    #[cfg(target_arch = "riscv64")]
    // SAFETY: tp is reserved for the hart id in the kernel; no Rust code
    // uses it otherwise (no TLS on this target); the caller passes the id.
    unsafe {
        core::arch::asm!("mv tp, {}", in(reg) x)
    };
}

/// Enable device interrupts.
#[inline(always)]
pub fn intr_on() {
    // SAFETY: only the SIE bit changes; the trap vector is installed
    // before any hart turns interrupts on (trapinithart, then scheduler).
    unsafe { w_sstatus(r_sstatus() | SSTATUS_SIE) };
}

/// Disable device interrupts.
#[inline(always)]
pub fn intr_off() {
    // SAFETY: only clears the SIE bit: fewer traps, never a bad one.
    unsafe { w_sstatus(r_sstatus() & !SSTATUS_SIE) };
}

/// Are device interrupts enabled?
#[inline(always)]
pub fn intr_get() -> bool {
    r_sstatus() & SSTATUS_SIE != 0
}

/// Flush the whole TLB of this hart.
#[inline(always)]
pub fn sfence_vma() {
    #[cfg(target_arch = "riscv64")]
    // SAFETY: only orders page-table writes before later translations.
    unsafe {
        core::arch::asm!("sfence.vma zero, zero")
    };
}

/// Wait for an interrupt (idle loops).
#[inline(always)]
pub fn wfi() {
    #[cfg(target_arch = "riscv64")]
    // SAFETY: stalls the hart until an interrupt is pending; no memory effect.
    unsafe {
        core::arch::asm!("wfi")
    };
}

/// Bytes per page.
pub const PGSIZE: u64 = 4096;
/// Bits of offset within a page.
pub const PGSHIFT: u64 = 12;

/// Round `a` up to a page boundary.
pub const fn pg_round_up(a: u64) -> u64 {
    (a + PGSIZE - 1) & !(PGSIZE - 1)
}
/// Round `a` down to a page boundary.
pub const fn pg_round_down(a: u64) -> u64 {
    a & !(PGSIZE - 1)
}

/// `satp` mode field for Sv39.
pub const SATP_SV39: u64 = 8 << 60;

/// One beyond the highest possible virtual address. MAXVA is actually one
/// bit less than the max allowed by Sv39, to avoid having to sign-extend
/// virtual addresses that have the high bit set.
pub const MAXVA: u64 = 1 << (9 + 9 + 9 + 12 - 1);

/// A physical address. The kernel maps RAM at its physical address, so a
/// `PhysAddr` of RAM is also a valid kernel pointer ([`PhysAddr::as_mut_ptr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

impl PhysAddr {
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PGSIZE)
    }
    /// The direct-mapped kernel pointer to this physical address.
    pub fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as usize as *mut T
    }
    pub fn from_ptr<T>(p: *const T) -> PhysAddr {
        PhysAddr(p as usize as u64)
    }
}

/// A virtual address (Sv39: meaningful below [`MAXVA`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(transparent)]
pub struct VirtAddr(pub u64);

impl VirtAddr {
    /// The 9-bit page-table index of this address at `level` (2 = root).
    pub const fn px(self, level: usize) -> usize {
        ((self.0 >> (PGSHIFT + 9 * level as u64)) & 0x1ff) as usize
    }
    pub const fn round_down(self) -> VirtAddr {
        VirtAddr(pg_round_down(self.0))
    }
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PGSIZE)
    }
}

/// The permission and status bits of a page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct PteFlags(pub u64);

impl PteFlags {
    pub const NONE: PteFlags = PteFlags(0);
    /// Valid.
    pub const V: PteFlags = PteFlags(1 << 0);
    pub const R: PteFlags = PteFlags(1 << 1);
    pub const W: PteFlags = PteFlags(1 << 2);
    pub const X: PteFlags = PteFlags(1 << 3);
    /// User can access.
    pub const U: PteFlags = PteFlags(1 << 4);
    /// Global.
    pub const G: PteFlags = PteFlags(1 << 5);
    /// Accessed.
    pub const A: PteFlags = PteFlags(1 << 6);
    /// Dirty.
    pub const D: PteFlags = PteFlags(1 << 7);

    pub const fn bits(self) -> u64 {
        self.0
    }
    pub const fn contains(self, other: PteFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: PteFlags) -> bool {
        self.0 & other.0 != 0
    }
}

impl BitOr for PteFlags {
    type Output = PteFlags;
    fn bitor(self, rhs: PteFlags) -> PteFlags {
        PteFlags(self.0 | rhs.0)
    }
}
impl BitOrAssign for PteFlags {
    fn bitor_assign(&mut self, rhs: PteFlags) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for PteFlags {
    type Output = PteFlags;
    fn bitand(self, rhs: PteFlags) -> PteFlags {
        PteFlags(self.0 & rhs.0)
    }
}

/// A Sv39 page-table entry: PPN in bits 53..10, flags in bits 9..0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct Pte(pub u64);

impl Pte {
    /// An entry pointing at `pa` with `flags` (xv6's `PA2PTE(pa) | flags`).
    pub const fn new(pa: PhysAddr, flags: PteFlags) -> Pte {
        Pte(((pa.0 >> 12) << 10) | flags.0)
    }
    /// The physical address this entry points at (`PTE2PA`).
    pub const fn pa(self) -> PhysAddr {
        PhysAddr((self.0 >> 10) << 12)
    }
    /// The low ten bits (`PTE_FLAGS`).
    pub const fn flags(self) -> PteFlags {
        PteFlags(self.0 & 0x3ff)
    }
    pub const fn is_valid(self) -> bool {
        self.0 & PteFlags::V.0 != 0
    }
    /// A valid entry with none of R, W, X points at the next level.
    pub const fn is_table(self) -> bool {
        self.is_valid() && self.0 & (PteFlags::R.0 | PteFlags::W.0 | PteFlags::X.0) == 0
    }
}

/// One page-table page: 512 PTEs. A whole table travels as a [`Pagetable`]
/// handle to its root page; `proc[i].pagetable` and `kernel_pagetable` keep
/// the root as a plain `*mut PageTable`, the C layout kinspect reads.
#[repr(C, align(4096))]
pub struct PageTable {
    pub entries: [Pte; 512],
}

/// A whole Sv39 page table, by its root page (C xv6: `pagetable_t`), owned.
///
/// Invariant: the root is a 4096-byte page-table page in RAM the kernel
/// maps at its physical address, every valid non-leaf entry below it points
/// at another such page, and those pages stay allocated while the handle
/// lives. Only [`crate::vm::uvmcreate`], `kvmmake` and
/// [`crate::vm::kvmcreate`] make one from fresh pages; anything else
/// goes through the `unsafe` [`Pagetable::from_raw`] and states why the
/// invariant holds. The handle is neither `Copy` nor `Clone`: the functions
/// that free a table (`uvmfree`, `freewalk`, `kvmfree`, `proc_freepagetable`)
/// take it by value, so safe code cannot use a freed table.
///
/// The other functions take a [`PagetableRef`], a `Copy` borrow of one
/// pointer (as std's `BorrowedFd` is to `OwnedFd`): passed by value, so in
/// a backtrace the argument `pagetable` is the root itself, as in C.
///
/// The table's pages are shared with the hardware walker and written
/// through raw pointers (never through a Rust reference to a whole page),
/// by the one owner of the table: the process for its user table, hart 0
/// at boot for the kernel's.
#[derive(Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Pagetable(NonNull<PageTable>);

/// A borrowed [`Pagetable`]: the root, valid for `'a`. Made by
/// [`Pagetable::view`], or from a C-layout field by the `unsafe`
/// [`PagetableRef::from_field`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct PagetableRef<'a> {
    root: NonNull<PageTable>,
    _table: PhantomData<&'a Pagetable>,
}

// SAFETY: the handle is a physical address; the pages it names are written
// only by the table's owner (see the invariant), so it may move between
// harts (a process migrates).
unsafe impl Send for Pagetable {}
// SAFETY: as above; a shared handle only reads through `entry`, and
// writers are the owner.
unsafe impl Sync for Pagetable {}
// SAFETY: as for Pagetable.
unsafe impl Send for PagetableRef<'_> {}
// SAFETY: as for Pagetable.
unsafe impl Sync for PagetableRef<'_> {}

impl Pagetable {
    /// Take over the table whose root is `root`; None if `root` is null.
    ///
    /// # Safety
    /// `root` satisfies the [`Pagetable`] invariant for as long as the
    /// handle lives, and the table is freed at most once over all the
    /// handles made from it.
    pub unsafe fn from_raw(root: *mut PageTable) -> Option<Pagetable> {
        NonNull::new(root).map(Pagetable)
    }

    /// A fresh zeroed page as an empty table.
    ///
    /// # Safety
    /// `page` is a page-aligned, zero-filled page of kernel-mapped RAM that
    /// the caller hands over (it came from `kzalloc`).
    pub(crate) unsafe fn from_zeroed_page(page: PhysAddr) -> Pagetable {
        // SAFETY: a kzalloc'd page is not at address 0; all-zero PTEs are a
        // valid empty table.
        Pagetable(unsafe { NonNull::new_unchecked(page.as_mut_ptr::<PageTable>()) })
    }

    /// Give the root back as the raw pointer the C-layout fields store.
    /// The caller becomes responsible for freeing it (through `from_raw`).
    pub fn into_raw(self) -> *mut PageTable {
        self.0.as_ptr()
    }

    /// Borrow the table for the functions that walk or change it.
    pub fn view(&self) -> PagetableRef<'_> {
        PagetableRef {
            root: self.0,
            _table: PhantomData,
        }
    }

    /// The root's physical address.
    pub fn pa(&self) -> PhysAddr {
        self.view().pa()
    }
}

impl<'a> PagetableRef<'a> {
    /// Borrow the table whose root a `*mut PageTable` field holds
    /// (`proc[i].pagetable`, `kernel_pagetable`), without taking it over;
    /// None if the field is null.
    ///
    /// # Safety
    /// `field` is readable now, and for `'a` nobody frees the table it
    /// names, which satisfies the [`Pagetable`] invariant.
    pub unsafe fn from_field(field: *const *mut PageTable) -> Option<PagetableRef<'a>> {
        // SAFETY: the caller's contract: the field is readable.
        let root = unsafe { field.read() };
        NonNull::new(root).map(|root| PagetableRef {
            root,
            _table: PhantomData,
        })
    }

    /// The root page (for walking below it; writes go through raw pointers).
    pub fn as_ptr(self) -> *mut PageTable {
        self.root.as_ptr()
    }

    /// The root's physical address.
    pub fn pa(self) -> PhysAddr {
        PhysAddr::from_ptr(self.root.as_ptr())
    }

    /// Root entry `i` (< 512).
    pub fn entry(self, i: usize) -> Pte {
        // SAFETY: the root is a page-table page (invariant); i < 512 is
        // checked by the array index; a Pte is plain data.
        unsafe { (*self.root.as_ptr()).entries[i] }
    }

    /// `satp` value selecting Sv39 with this table (`MAKE_SATP`).
    pub fn satp(self) -> u64 {
        make_satp(self.pa())
    }
}

/// `satp` value selecting Sv39 with the root page table at `root`
/// (`MAKE_SATP`).
pub const fn make_satp(root: PhysAddr) -> u64 {
    SATP_SV39 | (root.0 >> 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_roundtrips_address_and_flags() {
        let pa = PhysAddr(0x8765_4000);
        let f = PteFlags::V | PteFlags::R | PteFlags::W;
        let pte = Pte::new(pa, f);
        assert_eq!(pte.pa(), pa);
        assert_eq!(pte.flags(), f);
        assert!(pte.is_valid());
        assert!(!pte.is_table());
        // The pgtbl lab's example: pte 0x21fda801 points at 0x87f6a000.
        assert_eq!(Pte(0x21fd_a801).pa(), PhysAddr(0x87f6_a000));
        assert!(Pte(0x21fd_a801).is_table());
        assert_eq!(Pte(0x21fd_ac1f).flags().bits(), 0x1f);
    }

    #[test]
    fn page_table_index_per_level() {
        let va = VirtAddr(0x3f_ffff_f000); // TRAMPOLINE
        assert_eq!(va.px(2), 255);
        assert_eq!(va.px(1), 511);
        assert_eq!(va.px(0), 511);
        let va = VirtAddr(0x8000_1234);
        assert_eq!((va.px(2), va.px(1), va.px(0)), (2, 0, 1));
    }

    #[test]
    fn rounding() {
        assert_eq!(pg_round_up(0), 0);
        assert_eq!(pg_round_up(1), 4096);
        assert_eq!(pg_round_up(4096), 4096);
        assert_eq!(pg_round_down(8191), 4096);
    }

    #[test]
    fn satp_encodes_sv39_and_ppn() {
        assert_eq!(make_satp(PhysAddr(0x87ff_f000)), (8 << 60) | 0x87fff);
    }
}
