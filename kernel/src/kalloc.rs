//! Physical memory allocator for user processes, kernel stacks, page-table
//! pages and pipe buffers (xv6's kalloc.c). Allocates whole 4096-byte pages.
//!
//! The free pages between the end of the kernel image (`end`) and
//! [`PHYSTOP`] form a singly linked list threaded through their first word
//! (`struct run`). `kmem` is xv6's unmangled allocator state, so kinspect
//! can walk the free list by its field names `lock` and `freelist`.
//!
//! Unlike xv6, the allocator also keeps a bitmap of which pages are free, so
//! a double free, or a free of a page outside its range or not page-aligned,
//! stops the kernel with a named panic instead of corrupting the list.

use crate::riscv::{pg_round_up, PhysAddr, PGSIZE};
use crate::spinlock::{Held, Spinlock};

/// A free page's first word: the next free page.
#[repr(C)]
pub struct Run {
    pub next: *mut Run,
}

/// Pages the bitmap can describe: 128 MiB of RAM.
const MAX_PAGES: usize = (128 * 1024 * 1024) / PGSIZE as usize;

/// The allocator's state (xv6's anonymous `struct kmem`).
///
/// Locking rule: `lock` must be held to read or write every other field.
/// (The lock cannot own them: kinspect reads `kmem.lock` and
/// `kmem.freelist` by xv6's field names.) The code reaches them only
/// through `Kmem::lock`'s guard, which holds the lock and hands out each
/// field on its own.
#[repr(C)]
pub struct Kmem {
    pub lock: Spinlock,
    /// Head of the free list (null when memory is exhausted).
    pub freelist: *mut Run,
    /// First page this allocator manages (page-aligned).
    pub base: u64,
    /// One past the last byte it manages (xv6: PHYSTOP).
    pub top: u64,
    /// Number of pages on the free list.
    pub nfree: u64,
    /// Bit i set: page `base + i*PGSIZE` is on the free list.
    pub free_map: [u64; MAX_PAGES / 64],
}

impl Kmem {
    pub const fn new() -> Kmem {
        Kmem {
            lock: Spinlock::new("kmem"),
            freelist: core::ptr::null_mut(),
            base: 0,
            top: 0,
            nfree: 0,
            free_map: [0; MAX_PAGES / 64],
        }
    }
}

/// The kernel's allocator (C xv6: `kmem`).
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut kmem: Kmem = Kmem::new();

/// Hand the pages of [start, top) to allocator `k` (xv6's kinit/freerange).
///
/// # Safety
/// `k` is valid and not in use; the range is RAM the caller owns, unused by
/// anything else, and at most 128 MiB.
pub unsafe fn init_range(k: *mut Kmem, start: u64, top: u64) {
    let base = pg_round_up(start);
    // SAFETY: k is valid and not yet shared (caller's contract).
    unsafe {
        (*k).base = base;
        (*k).top = top;
        (*k).freelist = core::ptr::null_mut();
        (*k).nfree = 0;
        (*k).free_map = [0; MAX_PAGES / 64];
    }
    assert!(
        (top - base) / PGSIZE <= MAX_PAGES as u64,
        "kinit: too much memory"
    );
    let mut p = base;
    while p + PGSIZE <= top {
        // SAFETY: p is a page of the range the caller gave us.
        unsafe { kfree_in(k, PhysAddr(p)) };
        p += PGSIZE;
    }
}

/// The bitmap word and bit of page `pa`, for an allocator starting at `base`.
fn map_bit(base: u64, pa: u64) -> (usize, u64) {
    let i = ((pa - base) / PGSIZE) as usize;
    (i / 64, 1u64 << (i % 64))
}

/// An allocator whose lock this hart holds: the fields `lock` guards,
/// each reached through its own place (`&mut (*k).freelist`), never
/// through a `&mut Kmem` over the whole struct, which would alias the lock
/// other harts are spinning on. Dropping it releases the lock.
struct Locked<'a> {
    k: *mut Kmem,
    _held: Held<'a>,
}

impl Kmem {
    /// Acquire `k.lock` and return the fields it guards.
    ///
    /// # Safety
    /// `k` points at a `Kmem` that outlives `'a`.
    unsafe fn lock<'a>(k: *mut Kmem) -> Locked<'a> {
        // SAFETY: a shared reference to the lock field alone (atomics),
        // which every hart may hold at once; k outlives 'a.
        let held = unsafe { &(*k).lock }.lock();
        Locked { k, _held: held }
    }
}

impl Locked<'_> {
    fn freelist(&mut self) -> &mut *mut Run {
        // SAFETY: we hold the lock, so this hart alone uses the field.
        unsafe { &mut (*self.k).freelist }
    }
    fn nfree(&mut self) -> &mut u64 {
        // SAFETY: as in freelist.
        unsafe { &mut (*self.k).nfree }
    }
    fn free_map(&mut self) -> &mut [u64; MAX_PAGES / 64] {
        // SAFETY: as in freelist.
        unsafe { &mut (*self.k).free_map }
    }
    /// `[base, top)`: fixed since init_range.
    fn range(&self) -> (u64, u64) {
        // SAFETY: as in freelist; plain reads.
        unsafe { ((*self.k).base, (*self.k).top) }
    }
}

/// Free the page of physical memory pointed at by `pa`, which normally
/// should have been returned by a call to kalloc(). Panics `kfree:
/// misaligned`, `kfree: out of range` or `kfree: double free`.
///
/// # Safety
/// `k` is a valid allocator; nobody uses the page after this call.
pub unsafe fn kfree_in(k: *mut Kmem, pa: PhysAddr) {
    // SAFETY: k is valid; base/top are fixed after init_range.
    let (base, top) = unsafe { ((*k).base, (*k).top) };
    if !pa.is_page_aligned() {
        panic!("kfree: misaligned {:#x}", pa.0);
    }
    if pa.0 < base || pa.0 >= top {
        panic!("kfree: out of range {:#x}", pa.0);
    }
    // SAFETY: k is valid (caller's contract) for this call.
    let mut km = unsafe { Kmem::lock(k) };
    let (w, bit) = map_bit(base, pa.0);
    if km.free_map()[w] & bit != 0 {
        drop(km);
        panic!("kfree: double free {:#x}", pa.0);
    }
    // Fill with junk to catch dangling refs.
    // SAFETY: the page is in our range and no longer used (caller's
    // contract, and the bitmap says it was allocated).
    unsafe { core::ptr::write_bytes(pa.as_mut_ptr::<u8>(), 1, PGSIZE as usize) };
    let r = pa.as_mut_ptr::<Run>();
    // SAFETY: r is the page just filled, ours to write.
    unsafe { (*r).next = *km.freelist() };
    *km.freelist() = r;
    km.free_map()[w] |= bit;
    *km.nfree() += 1;
}

/// Allocate one 4096-byte page of physical memory, filled with junk (5s).
/// Returns None if the memory cannot be allocated.
///
/// # Safety
/// `k` is a valid, initialised allocator.
pub unsafe fn kalloc_in(k: *mut Kmem) -> Option<PhysAddr> {
    // SAFETY: k is valid (caller's contract) for this call.
    let mut km = unsafe { Kmem::lock(k) };
    let r = *km.freelist();
    if r.is_null() {
        return None;
    }
    let pa = PhysAddr::from_ptr(r);
    let (base, top) = km.range();
    let listed = pa.0 >= base && pa.0 < top && pa.is_page_aligned() && {
        let (w, bit) = map_bit(base, pa.0);
        km.free_map()[w] & bit != 0
    };
    if !listed {
        drop(km);
        panic!("kalloc: corrupt freelist {:#x}", pa.0);
    }
    let (w, bit) = map_bit(base, pa.0);
    // SAFETY: r is a free page of ours (in range, marked free).
    *km.freelist() = unsafe { (*r).next };
    km.free_map()[w] &= !bit;
    *km.nfree() -= 1;
    drop(km);
    // SAFETY: the page is now ours alone.
    unsafe { core::ptr::write_bytes(pa.as_mut_ptr::<u8>(), 5, PGSIZE as usize) };
    Some(pa)
}

/// Number of free pages (for tests and `kinspect`-style checks).
///
/// # Safety
/// `k` is a valid allocator.
pub unsafe fn nfree_in(k: *mut Kmem) -> u64 {
    // SAFETY: k is valid (caller's contract) for this call.
    let mut km = unsafe { Kmem::lock(k) };
    *km.nfree()
}

/// The allocator `kalloc`/`kfree` use: the global `kmem` in the kernel, a
/// per-test allocator over fake RAM in host unit tests.
#[cfg(not(test))]
fn the_kmem() -> *mut Kmem {
    &raw mut kmem
}

/// On the host: this test thread's fake-RAM allocator.
#[cfg(test)]
fn the_kmem() -> *mut Kmem {
    testing::current()
}

/// Give the allocator the RAM from the end of the kernel to PHYSTOP.
#[cfg(not(test))]
#[cfg_attr(not(test), no_mangle)]
pub fn kinit() {
    extern "C" {
        /// First address after the kernel image (kernel.ld).
        static end: u8;
    }
    // Only `end`'s address is used: it is the linker's symbol.
    let start = &raw const end as u64;
    // SAFETY: boot, hart 0 alone: nothing else uses kmem or that RAM yet.
    unsafe { init_range(&raw mut kmem, start, crate::memlayout::PHYSTOP) };
}

/// Free a page that kalloc() returned.
#[cfg_attr(not(test), no_mangle)]
pub fn kfree(pa: PhysAddr) {
    // SAFETY: the_kmem() is initialised (kinit runs first on hart 0).
    unsafe { kfree_in(the_kmem(), pa) }
}

/// Allocate a page, filled with junk; None when memory is exhausted.
#[cfg_attr(not(test), no_mangle)]
pub fn kalloc() -> Option<PhysAddr> {
    // SAFETY: as in kfree.
    unsafe { kalloc_in(the_kmem()) }
}

/// Allocate a page and zero it.
pub fn kzalloc() -> Option<PhysAddr> {
    let pa = kalloc()?;
    // SAFETY: the page is freshly allocated and ours.
    unsafe { core::ptr::write_bytes(pa.as_mut_ptr::<u8>(), 0, PGSIZE as usize) };
    Some(pa)
}

/// Pages currently free.
pub fn nfree() -> u64 {
    // SAFETY: as in kfree.
    unsafe { nfree_in(the_kmem()) }
}

/// Fake RAM for host unit tests: page-aligned host memory handed to a
/// per-thread `Kmem`, so `kalloc`, `walk` and `mappages` run unchanged.
#[cfg(test)]
pub mod testing {
    extern crate std;
    use super::{init_range, Kmem, PGSIZE};
    use std::boxed::Box;
    use std::cell::Cell;
    use std::vec::Vec;

    #[repr(C, align(4096))]
    #[derive(Clone)]
    pub struct Page(pub [u8; 4096]);

    std::thread_local! {
        static CURRENT: Cell<*mut Kmem> = const { Cell::new(core::ptr::null_mut()) };
    }

    pub fn current() -> *mut Kmem {
        let k = CURRENT.with(|c| c.get());
        assert!(!k.is_null(), "test: no FakeRam on this thread");
        k
    }

    /// `npages` pages of host memory managed by a fresh allocator, which
    /// this thread's `kalloc`/`kfree` use until the value is dropped.
    pub struct FakeRam {
        pub pages: Vec<Page>,
        pub kmem: Box<Kmem>,
    }

    impl FakeRam {
        pub fn new(npages: usize) -> FakeRam {
            let pages = std::vec![Page([0; 4096]); npages];
            let mut k = Box::new(Kmem::new());
            let start = pages.as_ptr() as u64;
            let top = start + (npages as u64) * PGSIZE;
            // SAFETY: the pages are ours and unused.
            unsafe { init_range(&mut *k, start, top) };
            let mut ram = FakeRam { pages, kmem: k };
            CURRENT.with(|c| c.set(&mut *ram.kmem));
            ram
        }
        pub fn base(&self) -> u64 {
            self.pages.as_ptr() as u64
        }
    }

    impl Drop for FakeRam {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(core::ptr::null_mut()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeRam;
    use super::*;

    #[test]
    fn allocates_every_page_once_then_runs_out() {
        let ram = FakeRam::new(8);
        assert_eq!(nfree(), 8);
        let mut got = std::vec::Vec::new();
        while let Some(pa) = kalloc() {
            assert!(pa.is_page_aligned());
            assert!(pa.0 >= ram.base() && pa.0 < ram.base() + 8 * PGSIZE);
            assert!(!got.contains(&pa), "page handed out twice");
            got.push(pa);
        }
        assert_eq!(got.len(), 8);
        assert_eq!(nfree(), 0);
        for pa in got {
            kfree(pa);
        }
        assert_eq!(nfree(), 8);
    }

    #[test]
    fn junk_fills_on_free_and_alloc() {
        let _ram = FakeRam::new(2);
        let pa = kalloc().unwrap();
        // SAFETY: test page, ours.
        let page = unsafe { core::slice::from_raw_parts(pa.as_mut_ptr::<u8>(), 4096) };
        assert!(page.iter().all(|&b| b == 5));
        kfree(pa);
        // The first word is now the list link; the rest is 1s.
        assert!(page[8..].iter().all(|&b| b == 1));
        let z = kzalloc().unwrap();
        // SAFETY: test page, ours.
        let page = unsafe { core::slice::from_raw_parts(z.as_mut_ptr::<u8>(), 4096) };
        assert!(page.iter().all(|&b| b == 0));
    }

    #[test]
    fn freed_page_comes_back_first() {
        let _ram = FakeRam::new(4);
        let a = kalloc().unwrap();
        let _b = kalloc().unwrap();
        kfree(a);
        assert_eq!(kalloc(), Some(a));
    }

    #[test]
    #[should_panic(expected = "kfree: double free")]
    fn double_free_panics() {
        let _ram = FakeRam::new(4);
        let a = kalloc().unwrap();
        kfree(a);
        kfree(a);
    }

    #[test]
    #[should_panic(expected = "kfree: double free")]
    fn freeing_a_never_allocated_page_panics() {
        let ram = FakeRam::new(4);
        kfree(PhysAddr(ram.base()));
    }

    #[test]
    #[should_panic(expected = "kfree: out of range")]
    fn free_beyond_top_panics() {
        let ram = FakeRam::new(4);
        kfree(PhysAddr(ram.base() + 4 * PGSIZE));
    }

    #[test]
    #[should_panic(expected = "kfree: out of range")]
    fn free_below_base_panics() {
        let ram = FakeRam::new(4);
        kfree(PhysAddr(ram.base() - PGSIZE));
    }

    #[test]
    #[should_panic(expected = "kfree: misaligned")]
    fn misaligned_free_panics() {
        let ram = FakeRam::new(4);
        let a = kalloc().unwrap();
        kfree(PhysAddr(a.0 + 8));
        drop(ram);
    }

    #[test]
    #[should_panic(expected = "kalloc: corrupt freelist")]
    fn corrupt_freelist_is_caught() {
        let mut ram = FakeRam::new(4);
        // Scribble over the head page's link, as a use-after-free would.
        let head = ram.kmem.freelist;
        // SAFETY: test memory, ours.
        unsafe { (*head).next = 0x1234 as *mut Run };
        let _ = kalloc();
        let _ = kalloc();
        ram.kmem.freelist = core::ptr::null_mut();
    }
}
