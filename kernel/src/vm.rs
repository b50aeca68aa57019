//! Sv39 virtual memory (xv6's vm.c): the kernel page table, user address
//! spaces, and copying between user and kernel memory.
//!
//! A page table travels as a [`Pagetable`] handle (xv6's `pagetable_t`): its
//! root, a physical page of 512 [`Pte`]s, also a valid kernel pointer because
//! the kernel maps RAM at its physical address. Only [`uvmcreate`], `kvmmake`
//! and [`kvmcreate`] make handles from fresh [`kalloc`] pages, so the safe
//! functions here can trust the table they are given; freeing one takes the
//! handle by value. The unmangled static `kernel_pagetable` holds the root of
//! the kernel's own table as a plain pointer (the C layout kinspect reads);
//! each process also has `proc[i].pagetable` (user) and `proc[i].kpagetable`
//! (its private view of the kernel, see [`kvmcreate`]).

use core::fmt::{self, Write};

use crate::kalloc::{kalloc, kfree, kzalloc};
use crate::memlayout::*;
#[cfg(not(test))]
use crate::param::NPROC;
use crate::riscv::*;

/// Why a virtual-memory operation failed (xv6 returns -1 for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmError {
    /// kalloc() ran out of pages.
    NoMem,
    /// A user address was unmapped, not user-accessible, or out of range.
    BadAddr,
}

/// The kernel's page table (C xv6: `pagetable_t kernel_pagetable`): the
/// root's physical address (= kernel pointer). Written once by `kvminit` on
/// hart 0 before the other harts start, then only read.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut kernel_pagetable: *mut PageTable = core::ptr::null_mut();

/// The kernel's page table. Panics `kernel_pagetable: not made` before
/// `kvminit`.
pub fn kernel_pagetable_root() -> PagetableRef<'static> {
    // SAFETY: kvminit writes the static once on hart 0 before any other
    // hart starts, from kvmmake's handle, and nothing frees or rewrites it.
    unsafe { PagetableRef::from_field(&raw const kernel_pagetable) }
        .expect("kernel_pagetable: not made")
}

#[cfg(not(test))]
extern "C" {
    /// End of kernel text (kernel.ld).
    static etext: u8;
    /// The trampoline page (trampoline.rs), inside the text.
    static trampoline: u8;
}

/// Make a direct-map page table for the kernel: devices, kernel text and
/// data, free RAM, the trampoline, and every process slot's kernel stack.
#[cfg(not(test))]
fn kvmmake() -> Pagetable {
    let page = kzalloc().expect("kvmmake: out of memory");
    // SAFETY: a fresh zeroed page from kzalloc, handed over.
    let kpgtbl = unsafe { Pagetable::from_zeroed_page(page) };
    // Only the addresses of the linker's symbols are taken.
    let (etext_a, tramp_a) = (&raw const etext as u64, &raw const trampoline as u64);
    let rw = PteFlags::R | PteFlags::W;
    // QEMU's test finisher, so the kernel can end a run with a status.
    kvmmap(
        kpgtbl.view(),
        VirtAddr(VIRT_TEST),
        PhysAddr(VIRT_TEST),
        PGSIZE,
        rw,
    );
    // uart registers
    kvmmap(kpgtbl.view(), VirtAddr(UART0), PhysAddr(UART0), PGSIZE, rw);
    // virtio mmio disk interface
    kvmmap(kpgtbl.view(), VirtAddr(VIRTIO0), PhysAddr(VIRTIO0), PGSIZE, rw);
    // PLIC
    kvmmap(kpgtbl.view(), VirtAddr(PLIC), PhysAddr(PLIC), PLIC_SIZE, rw);
    // map kernel text executable and read-only.
    kvmmap(
        kpgtbl.view(),
        VirtAddr(KERNBASE),
        PhysAddr(KERNBASE),
        etext_a - KERNBASE,
        PteFlags::R | PteFlags::X,
    );
    // map kernel data and the physical RAM we'll make use of.
    kvmmap(
        kpgtbl.view(),
        VirtAddr(etext_a),
        PhysAddr(etext_a),
        PHYSTOP - etext_a,
        rw,
    );
    // map the trampoline for trap entry/exit to the highest virtual address
    // in the kernel.
    kvmmap(
        kpgtbl.view(),
        VirtAddr(TRAMPOLINE),
        PhysAddr(tramp_a),
        PGSIZE,
        PteFlags::R | PteFlags::X,
    );
    // allocate and map a kernel stack for each process.
    proc_mapstacks(kpgtbl.view());
    kpgtbl
}

/// Allocate a page for each process slot's kernel stack and map it at
/// KSTACK(i), high in memory, followed by an invalid guard page.
#[cfg(not(test))]
fn proc_mapstacks(kpgtbl: PagetableRef<'_>) {
    for i in 0..NPROC {
        let pa = kalloc().expect("kalloc: proc_mapstacks");
        kvmmap(
            kpgtbl,
            VirtAddr(kstack(i)),
            pa,
            PGSIZE,
            PteFlags::R | PteFlags::W,
        );
    }
}

/// Initialize the one kernel_pagetable (hart 0, at boot).
#[cfg(not(test))]
#[cfg_attr(not(test), no_mangle)]
pub fn kvminit() {
    let pt = kvmmake().into_raw();
    // SAFETY: hart 0 at boot; the other harts wait on `STARTED`. The
    // static keeps the table for the kernel's life (never freed).
    unsafe { core::ptr::write_volatile(&raw mut kernel_pagetable, pt) };
}

/// Switch this hart's page table register to `pt` and enable paging.
///
/// # Safety
/// `pt` maps the kernel as `kvmmake` does (text, data, RAM, devices, the
/// trampoline) and the stack this hart runs on: `kernel_pagetable`, or a
/// process's `kpagetable` while on that process's kernel stack or a boot
/// stack. And `pt` stays alive until satp holds another table.
pub unsafe fn kvmswitch(pt: PagetableRef<'_>) {
    // wait for any previous writes to the page table memory to finish.
    sfence_vma();
    // SAFETY: the caller's contract: the code and stack keep their mapping.
    unsafe { w_satp(pt.satp()) };
    // flush stale entries from the TLB.
    sfence_vma();
}

/// Switch this hart to the kernel page table (every hart, at boot).
#[cfg_attr(not(test), no_mangle)]
pub fn kvminithart() {
    // SAFETY: kernel_pagetable maps all of RAM (so the boot stack) and the
    // kernel, and is never freed.
    unsafe { kvmswitch(kernel_pagetable_root()) };
}

/// Return the address of the PTE in page table `pagetable` that corresponds
/// to virtual address `va`. If `alloc`, create any required page-table
/// pages; returns None if a page-table page is missing and `alloc` is false,
/// or kalloc fails. Panics `walk` if va >= MAXVA.
///
/// The risc-v Sv39 scheme has three levels of page-table pages. A page-table
/// page contains 512 64-bit PTEs. A 64-bit virtual address is split into
/// five fields:
///   39..63 -- must be zero.
///   30..38 -- 9 bits of level-2 index.
///   21..29 -- 9 bits of level-1 index.
///   12..20 -- 9 bits of level-0 index.
///    0..11 -- 12 bits of byte offset within the page.
#[cfg_attr(not(test), no_mangle)]
pub fn walk(pagetable: PagetableRef<'_>, va: VirtAddr, alloc: bool) -> Option<*mut Pte> {
    if va.0 >= MAXVA {
        panic!("walk");
    }
    let mut pt = pagetable.as_ptr();
    for level in [2, 1] {
        // SAFETY: pt is a page-table page (the root, or from a valid
        // non-leaf PTE: the Pagetable invariant), in RAM the kernel maps;
        // the index is < 512; no other reference to this entry is live.
        let pte = unsafe { &mut (*pt).entries[va.px(level)] };
        if pte.is_valid() {
            if !pte.is_table() {
                // A superpage: this kernel never makes them.
                panic!("walk: leaf at level {}", level);
            }
            pt = pte.pa().as_mut_ptr::<PageTable>();
        } else {
            if !alloc {
                return None;
            }
            let page = kzalloc()?;
            *pte = Pte::new(page, PteFlags::V);
            pt = page.as_mut_ptr::<PageTable>();
        }
    }
    // SAFETY: pt is a level-0 page-table page; the index is < 512.
    Some(unsafe { &raw mut (*pt).entries[va.px(0)] })
}

/// Look up a virtual address, return the physical address, or None if not
/// mapped. Can only be used to look up user pages.
pub fn walkaddr(pagetable: PagetableRef<'_>, va: VirtAddr) -> Option<PhysAddr> {
    if va.0 >= MAXVA {
        return None;
    }
    let pte = walk(pagetable, va, false)?;
    // SAFETY: walk returned a pointer into a page-table page.
    let pte = unsafe { *pte };
    if !pte.is_valid() || !pte.flags().contains(PteFlags::U) {
        return None;
    }
    Some(pte.pa())
}

/// Translate any mapped virtual address (kernel or user) in `pagetable`
/// to its physical address, offset included (xv6's kvmpa).
pub fn kvmpa(pagetable: PagetableRef<'_>, va: VirtAddr) -> Option<PhysAddr> {
    if va.0 >= MAXVA {
        return None;
    }
    let pte = walk(pagetable, va, false)?;
    // SAFETY: walk returned a pointer into a page-table page.
    let pte = unsafe { *pte };
    if !pte.is_valid() {
        return None;
    }
    Some(PhysAddr(pte.pa().0 + va.0 % PGSIZE))
}

/// Add a mapping to the kernel page table. Only used when booting. Does not
/// flush TLB or enable paging. Panics `kvmmap` if out of memory.
pub fn kvmmap(kpgtbl: PagetableRef<'_>, va: VirtAddr, pa: PhysAddr, sz: u64, perm: PteFlags) {
    if mappages(kpgtbl, va, sz, pa, perm).is_err() {
        panic!("kvmmap");
    }
}

/// Create PTEs for virtual addresses starting at `va` that refer to physical
/// addresses starting at `pa`. `va` and `size` must be page-aligned (panics
/// `mappages: va not aligned`, `mappages: size not aligned`, `mappages:
/// size`). Panics `remap` if a page is already mapped. Returns NoMem if
/// walk() couldn't allocate a needed page-table page.
// Never inlined: `kinspect trace` records every call with a breakpoint
// on this function (docs/kernel-contract.md).
#[inline(never)]
#[cfg_attr(not(test), no_mangle)]
pub fn mappages(
    pagetable: PagetableRef<'_>,
    va: VirtAddr,
    size: u64,
    pa: PhysAddr,
    perm: PteFlags,
) -> Result<(), VmError> {
    if !va.is_page_aligned() {
        panic!("mappages: va not aligned");
    }
    if !size.is_multiple_of(PGSIZE) {
        panic!("mappages: size not aligned");
    }
    if size == 0 {
        panic!("mappages: size");
    }
    let mut a = va.0;
    let last = va.0 + size - PGSIZE;
    let mut pa = pa.0;
    loop {
        let pte = walk(pagetable, VirtAddr(a), true).ok_or(VmError::NoMem)?;
        // SAFETY: walk returned a pointer to a PTE in a page-table page.
        let pte = unsafe { &mut *pte };
        if pte.is_valid() {
            panic!("remap");
        }
        *pte = Pte::new(PhysAddr(pa), perm | PteFlags::V);
        if a == last {
            break;
        }
        a += PGSIZE;
        pa += PGSIZE;
    }
    Ok(())
}

/// Remove `npages` of mappings starting from `va`. `va` must be
/// page-aligned. The mappings must exist. Optionally free the physical
/// memory.
// Never inlined: `kinspect trace` records every call with a breakpoint
// on this function (docs/kernel-contract.md).
#[inline(never)]
#[cfg_attr(not(test), no_mangle)]
pub fn uvmunmap(pagetable: PagetableRef<'_>, va: VirtAddr, npages: u64, do_free: bool) {
    if !va.is_page_aligned() {
        panic!("uvmunmap: not aligned");
    }
    let mut a = va.0;
    while a < va.0 + npages * PGSIZE {
        let pte = match walk(pagetable, VirtAddr(a), false) {
            Some(p) => p,
            None => panic!("uvmunmap: walk"),
        };
        // SAFETY: walk returned a pointer to a PTE in a page-table page.
        let pte = unsafe { &mut *pte };
        if !pte.is_valid() {
            panic!("uvmunmap: not mapped");
        }
        if pte.flags() == PteFlags::V {
            panic!("uvmunmap: not a leaf");
        }
        if do_free {
            kfree(pte.pa());
        }
        *pte = Pte(0);
        a += PGSIZE;
    }
}

/// Create an empty user page table. Returns None if out of memory.
pub fn uvmcreate() -> Option<Pagetable> {
    let page = kzalloc()?;
    // SAFETY: a fresh zeroed page from kzalloc, handed over.
    Some(unsafe { Pagetable::from_zeroed_page(page) })
}

/// Load the user initcode into address 0 of pagetable, for the very first
/// process. `src.len()` must be less than a page.
pub fn uvmfirst(pagetable: PagetableRef<'_>, src: &[u8]) {
    if src.len() as u64 >= PGSIZE {
        panic!("uvmfirst: more than a page");
    }
    let mem = kzalloc().expect("uvmfirst: out of memory");
    if mappages(
        pagetable,
        VirtAddr(0),
        PGSIZE,
        mem,
        PteFlags::W | PteFlags::R | PteFlags::X | PteFlags::U,
    )
    .is_err()
    {
        panic!("uvmfirst: mappages");
    }
    // SAFETY: mem is a fresh page, and src fits in it.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), mem.as_mut_ptr::<u8>(), src.len()) };
}

/// Allocate PTEs and physical memory to grow process from `oldsz` to
/// `newsz`, which need not be page aligned. Returns new size or NoMem
/// (having freed what it allocated).
#[cfg_attr(not(test), no_mangle)]
pub fn uvmalloc(
    pagetable: PagetableRef<'_>,
    oldsz: u64,
    newsz: u64,
    xperm: PteFlags,
) -> Result<u64, VmError> {
    if newsz < oldsz {
        return Ok(oldsz);
    }
    let oldsz = pg_round_up(oldsz);
    let mut a = oldsz;
    while a < newsz {
        let Some(mem) = kzalloc() else {
            uvmdealloc(pagetable, a, oldsz);
            return Err(VmError::NoMem);
        };
        if mappages(
            pagetable,
            VirtAddr(a),
            PGSIZE,
            mem,
            PteFlags::R | PteFlags::U | xperm,
        )
        .is_err()
        {
            kfree(mem);
            uvmdealloc(pagetable, a, oldsz);
            return Err(VmError::NoMem);
        }
        a += PGSIZE;
    }
    Ok(newsz)
}

/// Deallocate user pages to bring the process size from `oldsz` to `newsz`.
/// `oldsz` and `newsz` need not be page-aligned, nor does `newsz` need to be
/// less than `oldsz`. `oldsz` can be larger than the actual process size.
/// Returns the new process size.
#[cfg_attr(not(test), no_mangle)]
pub fn uvmdealloc(pagetable: PagetableRef<'_>, oldsz: u64, newsz: u64) -> u64 {
    if newsz >= oldsz {
        return oldsz;
    }
    if pg_round_up(newsz) < pg_round_up(oldsz) {
        let npages = (pg_round_up(oldsz) - pg_round_up(newsz)) / PGSIZE;
        uvmunmap(pagetable, VirtAddr(pg_round_up(newsz)), npages, true);
    }
    newsz
}

/// Recursively free page-table pages. All leaf mappings must already have
/// been removed (panics `freewalk: leaf`).
pub fn freewalk(pagetable: Pagetable) {
    let pt = pagetable.view().as_ptr();
    // there are 2^9 = 512 PTEs in a page table.
    for i in 0..512 {
        // SAFETY: pt is a page-table page of ours (we own the handle).
        let pte = unsafe { &mut (*pt).entries[i] };
        if pte.is_table() {
            // this PTE points to a lower-level page table.
            // SAFETY: a non-leaf entry of our table names a page-table page
            // of ours; clearing the entry below leaves this its one handle.
            if let Some(child) = unsafe { Pagetable::from_raw(pte.pa().as_mut_ptr()) } {
                freewalk(child);
            }
            *pte = Pte(0);
        } else if pte.is_valid() {
            panic!("freewalk: leaf");
        }
    }
    kfree(pagetable.pa());
}

/// Free user memory pages, then free page-table pages.
pub fn uvmfree(pagetable: Pagetable, sz: u64) {
    if sz > 0 {
        uvmunmap(pagetable.view(), VirtAddr(0), pg_round_up(sz) / PGSIZE, true);
    }
    freewalk(pagetable);
}

/// Given a parent process's page table, copy its memory into a child's page
/// table. Copies both the page table and the physical memory. Returns NoMem
/// on failure, having freed any allocated pages.
#[cfg_attr(not(test), no_mangle)]
pub fn uvmcopy(old: PagetableRef<'_>, new: PagetableRef<'_>, sz: u64) -> Result<(), VmError> {
    let mut i = 0;
    while i < sz {
        let pte = match walk(old, VirtAddr(i), false) {
            Some(p) => p,
            None => panic!("uvmcopy: pte should exist"),
        };
        // SAFETY: walk returned a pointer to a PTE in a page-table page.
        let pte = unsafe { *pte };
        if !pte.is_valid() {
            panic!("uvmcopy: page not present");
        }
        let Some(mem) = kalloc() else {
            uvmunmap(new, VirtAddr(0), i / PGSIZE, true);
            return Err(VmError::NoMem);
        };
        // SAFETY: both are whole pages: the parent's mapped page and ours.
        unsafe {
            core::ptr::copy_nonoverlapping(
                pte.pa().as_mut_ptr::<u8>(),
                mem.as_mut_ptr::<u8>(),
                PGSIZE as usize,
            )
        };
        if mappages(new, VirtAddr(i), PGSIZE, mem, pte.flags()).is_err() {
            kfree(mem);
            uvmunmap(new, VirtAddr(0), i / PGSIZE, true);
            return Err(VmError::NoMem);
        }
        i += PGSIZE;
    }
    Ok(())
}

/// Mark a PTE invalid for user access. Used by exec for the user stack
/// guard page.
pub fn uvmclear(pagetable: PagetableRef<'_>, va: VirtAddr) {
    let pte = match walk(pagetable, va, false) {
        Some(p) => p,
        None => panic!("uvmclear"),
    };
    // SAFETY: walk returned a pointer to a PTE in a page-table page.
    unsafe { (*pte).0 &= !PteFlags::U.bits() };
}

/// Copy from kernel to user. Copy `src` to virtual address `dstva` in a
/// given page table. Returns BadAddr if a destination page is not a
/// writable user page.
#[cfg_attr(not(test), no_mangle)]
pub fn copyout(pagetable: PagetableRef<'_>, dstva: u64, src: &[u8]) -> Result<(), VmError> {
    let mut dstva = dstva;
    let mut done = 0usize;
    while done < src.len() {
        let va0 = pg_round_down(dstva);
        if va0 >= MAXVA {
            return Err(VmError::BadAddr);
        }
        let pte = walk(pagetable, VirtAddr(va0), false).ok_or(VmError::BadAddr)?;
        // SAFETY: walk returned a pointer to a PTE in a page-table page.
        let pte = unsafe { *pte };
        let f = pte.flags();
        if !f.contains(PteFlags::V) || !f.contains(PteFlags::U) || !f.contains(PteFlags::W) {
            return Err(VmError::BadAddr);
        }
        let n = ((PGSIZE - (dstva - va0)) as usize).min(src.len() - done);
        // SAFETY: the destination lies inside one mapped user page.
        unsafe {
            core::ptr::copy_nonoverlapping(
                src[done..].as_ptr(),
                (pte.pa().0 + (dstva - va0)) as usize as *mut u8,
                n,
            )
        };
        done += n;
        dstva = va0 + PGSIZE;
    }
    Ok(())
}

/// Copy from user to kernel. Copy `dst.len()` bytes to `dst` from virtual
/// address `srcva` in a given page table.
#[cfg_attr(not(test), no_mangle)]
pub fn copyin(pagetable: PagetableRef<'_>, dst: &mut [u8], srcva: u64) -> Result<(), VmError> {
    let mut srcva = srcva;
    let mut done = 0usize;
    while done < dst.len() {
        let va0 = pg_round_down(srcva);
        let pa0 = walkaddr(pagetable, VirtAddr(va0)).ok_or(VmError::BadAddr)?;
        let n = ((PGSIZE - (srcva - va0)) as usize).min(dst.len() - done);
        // SAFETY: the source lies inside one mapped user page.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (pa0.0 + (srcva - va0)) as usize as *const u8,
                dst[done..].as_mut_ptr(),
                n,
            )
        };
        done += n;
        srcva = va0 + PGSIZE;
    }
    Ok(())
}

/// Copy a null-terminated string from user to kernel: bytes to `dst` from
/// virtual address `srcva` until a '\0' or `dst` is full. Returns the
/// string's length (without the NUL, which is stored), or BadAddr if it
/// does not fit or a page is unmapped.
#[cfg_attr(not(test), no_mangle)]
pub fn copyinstr(pagetable: PagetableRef<'_>, dst: &mut [u8], srcva: u64) -> Result<usize, VmError> {
    let mut srcva = srcva;
    let mut got = 0usize;
    while got < dst.len() {
        let va0 = pg_round_down(srcva);
        let pa0 = walkaddr(pagetable, VirtAddr(va0)).ok_or(VmError::BadAddr)?;
        let mut n = PGSIZE - (srcva - va0);
        let mut p = pa0.0 + (srcva - va0);
        while n > 0 && got < dst.len() {
            // SAFETY: p is inside one mapped user page.
            let c = unsafe { *(p as usize as *const u8) };
            dst[got] = c;
            if c == 0 {
                return Ok(got);
            }
            got += 1;
            n -= 1;
            p += 1;
        }
        srcva = va0 + PGSIZE;
    }
    Err(VmError::BadAddr)
}

/// Write the pgtbl lab's `vmprint` listing of `pagetable` to `w`: one line
/// per valid PTE, depth shown by repeated " ..", index in decimal.
pub fn vmprint_to(w: &mut dyn Write, pagetable: PagetableRef<'_>) -> fmt::Result {
    writeln!(w, "page table {:#018x}", pagetable.pa().0)?;
    // SAFETY: the root of a table (Pagetable invariant).
    unsafe { vmprint_level(w, pagetable.as_ptr(), 1) }
}

/// Print the valid entries of page-table page `pt` at `depth` (1 = root)
/// and recurse into lower levels.
///
/// # Safety
/// `pt` is a page-table page whose non-leaf entries point at such pages.
unsafe fn vmprint_level(w: &mut dyn Write, pt: *const PageTable, depth: usize) -> fmt::Result {
    for i in 0..512 {
        // SAFETY: pt is a page-table page (caller's contract).
        let pte = unsafe { (*pt).entries[i] };
        if !pte.is_valid() {
            continue;
        }
        for _ in 0..depth {
            w.write_str(" ..")?;
        }
        writeln!(w, "{}: pte {:#018x} pa {:#018x}", i, pte.0, pte.pa().0)?;
        if pte.is_table() && depth < 3 {
            // SAFETY: a non-leaf entry points at a page-table page.
            unsafe { vmprint_level(w, pte.pa().as_mut_ptr::<PageTable>(), depth + 1)? };
        }
    }
    Ok(())
}

/// Print `pagetable` to the console in the pgtbl lab's format.
#[cfg_attr(not(test), no_mangle)]
pub fn vmprint(pagetable: PagetableRef<'_>) {
    struct Out;
    impl Write for Out {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            crate::print!("{}", s);
            Ok(())
        }
    }
    let _ = vmprint_to(&mut Out, pagetable);
}

/// The root index holding TRAMPOLINE and every KSTACK (the top 1 GiB).
const TOP_INDEX: usize = (TRAMPOLINE >> 30) as usize & 0x1ff;

/// Make a process's kernel page table: the kernel's mappings, sharing the
/// kernel_pagetable's lower-level pages for everything but the top 1 GiB,
/// where it maps only the trampoline and this process's own kernel stack
/// (`kstack_va` -> `kstack_pa`). Returns None if out of memory. Free it with
/// [`kvmfree`], which never frees the shared pages.
pub fn kvmcreate(
    kernel: PagetableRef<'_>,
    kstack_va: VirtAddr,
    kstack_pa: PhysAddr,
) -> Option<Pagetable> {
    let pt = uvmcreate()?;
    for i in 0..512 {
        if i != TOP_INDEX {
            // SAFETY: pt's root is a fresh page of ours; the entry shares
            // the kernel's subtree, which outlives pt (never freed).
            unsafe { (*pt.view().as_ptr()).entries[i] = kernel.entry(i) };
        }
    }
    let tramp = kvmpa(kernel, VirtAddr(TRAMPOLINE));
    let ok = match tramp {
        Some(tpa) => {
            mappages(
                pt.view(),
                VirtAddr(TRAMPOLINE),
                PGSIZE,
                tpa,
                PteFlags::R | PteFlags::X,
            )
            .is_ok()
                && mappages(pt.view(), kstack_va, PGSIZE, kstack_pa, PteFlags::R | PteFlags::W).is_ok()
        }
        None => false,
    };
    if !ok {
        kvmfree(pt);
        return None;
    }
    Some(pt)
}

/// Free a page table made by [`kvmcreate`]: its root and its private
/// top-1-GiB subtree (not the trampoline or the kernel stack it maps, and
/// none of the subtrees shared with the kernel page table).
pub fn kvmfree(pt: Pagetable) {
    let pt = pt.into_raw();
    // SAFETY: pt is a root made by kvmcreate, ours (taken by value).
    let top = unsafe { &mut (*pt).entries[TOP_INDEX] };
    if top.is_table() {
        let l1 = top.pa().as_mut_ptr::<PageTable>();
        for i in 0..512 {
            // SAFETY: l1 is the private level-1 page of this table.
            let e = unsafe { &mut (*l1).entries[i] };
            if e.is_table() {
                // Level 0: leaves map the trampoline and the stack, which
                // are not ours to free.
                kfree(e.pa());
            }
            *e = Pte(0);
        }
        kfree(top.pa());
    }
    *top = Pte(0);
    kfree(PhysAddr::from_ptr(pt));
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kalloc::nfree;
    use crate::kalloc::testing::FakeRam;
    use std::string::String;

    fn rwu() -> PteFlags {
        PteFlags::R | PteFlags::W | PteFlags::U
    }

    #[test]
    fn a_table_goes_into_a_c_layout_field_and_comes_back() {
        let _ram = FakeRam::new(16);
        let start = nfree();
        let mut field: *mut PageTable = core::ptr::null_mut();
        // SAFETY: the field is a live local; null borrows as None.
        assert!(unsafe { PagetableRef::from_field(&raw const field) }.is_none());
        let pt = uvmcreate().unwrap();
        let root = pt.pa();
        field = pt.into_raw();
        // SAFETY: the field holds uvmcreate's table; nobody frees it or
        // writes the field while `borrowed` lives.
        let borrowed = unsafe { PagetableRef::from_field(&raw const field) }.unwrap();
        assert_eq!(borrowed.pa(), root);
        assert_eq!(borrowed.satp(), (8 << 60) | (root.0 >> 12));
        uvmalloc(borrowed, 0, PGSIZE, PteFlags::W).unwrap();
        let taken = core::mem::replace(&mut field, core::ptr::null_mut());
        // SAFETY: the field no longer names the table: this is its only handle.
        let back = unsafe { Pagetable::from_raw(taken) }.unwrap();
        assert!(walkaddr(back.view(), VirtAddr(0)).is_some());
        uvmfree(back, PGSIZE);
        assert_eq!(nfree(), start, "pages leaked");
    }

    #[test]
    fn walk_without_alloc_finds_nothing_in_an_empty_table() {
        let _ram = FakeRam::new(8);
        let pt = uvmcreate().unwrap();
        assert!(walk(pt.view(), VirtAddr(0x1000), false).is_none());
        assert_eq!(nfree(), 7, "walk(alloc=false) must not allocate");
    }

    #[test]
    fn mappages_builds_three_levels_and_walk_finds_it() {
        let _ram = FakeRam::new(16);
        let pt = uvmcreate().unwrap();
        let pa = kalloc().unwrap();
        let before = nfree();
        mappages(pt.view(), VirtAddr(0x4000_2000), PGSIZE, pa, rwu()).unwrap();
        assert_eq!(before - nfree(), 2, "one level-1 and one level-0 page");
        // SAFETY: walk returned a PTE inside a page-table page of fake RAM.
        let pte = unsafe { *walk(pt.view(), VirtAddr(0x4000_2abc), false).unwrap() };
        assert_eq!(pte.pa(), pa);
        assert_eq!(pte.flags(), rwu() | PteFlags::V);
        assert_eq!(walkaddr(pt.view(), VirtAddr(0x4000_2000)), Some(pa));
        assert_eq!(
            kvmpa(pt.view(), VirtAddr(0x4000_2abc)),
            Some(PhysAddr(pa.0 + 0xabc))
        );
        // The intermediate entries are pointers (V only).
        assert!(pt.view().entry(1).is_table());
        assert!(walkaddr(pt.view(), VirtAddr(0x4000_3000)).is_none());
    }

    #[test]
    fn walkaddr_refuses_kernel_only_pages() {
        let _ram = FakeRam::new(8);
        let pt = uvmcreate().unwrap();
        let pa = kalloc().unwrap();
        mappages(pt.view(), VirtAddr(0), PGSIZE, pa, PteFlags::R).unwrap();
        assert_eq!(walkaddr(pt.view(), VirtAddr(0)), None);
        assert_eq!(kvmpa(pt.view(), VirtAddr(0)), Some(pa));
        assert_eq!(walkaddr(pt.view(), VirtAddr(MAXVA)), None);
    }

    #[test]
    #[should_panic(expected = "remap")]
    fn mapping_twice_panics_remap() {
        let _ram = FakeRam::new(8);
        let pt = uvmcreate().unwrap();
        let pa = kalloc().unwrap();
        mappages(pt.view(), VirtAddr(0x1000), PGSIZE, pa, rwu()).unwrap();
        let _ = mappages(pt.view(), VirtAddr(0x1000), PGSIZE, pa, rwu());
    }

    #[test]
    #[should_panic(expected = "mappages: size")]
    fn mapping_nothing_panics() {
        let _ram = FakeRam::new(8);
        let pt = uvmcreate().unwrap();
        let _ = mappages(pt.view(), VirtAddr(0), 0, PhysAddr(0x8000_0000), rwu());
    }

    #[test]
    #[should_panic(expected = "walk")]
    fn walk_beyond_maxva_panics() {
        let _ram = FakeRam::new(8);
        let pt = uvmcreate().unwrap();
        let _ = walk(pt.view(), VirtAddr(MAXVA), true);
    }

    #[test]
    fn mappages_reports_out_of_memory() {
        let _ram = FakeRam::new(2);
        let pt = uvmcreate().unwrap();
        let _spare = kalloc().unwrap();
        assert_eq!(
            mappages(pt.view(), VirtAddr(0), PGSIZE, PhysAddr(0x8000_0000), rwu()),
            Err(VmError::NoMem)
        );
    }

    #[test]
    fn uvm_grow_copy_shrink_and_free_leak_nothing() {
        let _ram = FakeRam::new(64);
        let start = nfree();
        let a = uvmcreate().unwrap();
        assert_eq!(
            uvmalloc(a.view(), 0, 3 * PGSIZE + 10, PteFlags::W),
            Ok(3 * PGSIZE + 10)
        );
        copyout(a.view(), 0x1ff0, b"hello, world").unwrap();
        let b = uvmcreate().unwrap();
        uvmcopy(a.view(), b.view(), 4 * PGSIZE).unwrap();
        let mut buf = [0u8; 12];
        copyin(b.view(), &mut buf, 0x1ff0).unwrap();
        assert_eq!(&buf, b"hello, world");
        // Separate copies: writing the child leaves the parent alone.
        copyout(b.view(), 0x1ff0, b"HELLO").unwrap();
        copyin(a.view(), &mut buf, 0x1ff0).unwrap();
        assert_eq!(&buf, b"hello, world");
        assert_eq!(uvmdealloc(a.view(), 4 * PGSIZE, PGSIZE), PGSIZE);
        assert_eq!(copyin(a.view(), &mut buf, 0x1ff0), Err(VmError::BadAddr));
        uvmfree(a, PGSIZE);
        uvmfree(b, 4 * PGSIZE);
        assert_eq!(nfree(), start, "pages leaked");
    }

    #[test]
    fn copyinstr_stops_at_nul_and_rejects_overlong() {
        let _ram = FakeRam::new(16);
        let pt = uvmcreate().unwrap();
        uvmalloc(pt.view(), 0, 2 * PGSIZE, PteFlags::W).unwrap();
        // A string that crosses the page boundary.
        copyout(pt.view(), PGSIZE - 3, b"/init\0").unwrap();
        let mut dst = [0xffu8; 16];
        assert_eq!(copyinstr(pt.view(), &mut dst, PGSIZE - 3), Ok(5));
        assert_eq!(&dst[..6], b"/init\0");
        let mut small = [0u8; 4];
        assert_eq!(
            copyinstr(pt.view(), &mut small, PGSIZE - 3),
            Err(VmError::BadAddr)
        );
        assert_eq!(copyinstr(pt.view(), &mut dst, 5 * PGSIZE), Err(VmError::BadAddr));
    }

    #[test]
    fn copyout_refuses_read_only_pages() {
        let _ram = FakeRam::new(16);
        let pt = uvmcreate().unwrap();
        uvmalloc(pt.view(), 0, PGSIZE, PteFlags::NONE).unwrap();
        assert_eq!(copyout(pt.view(), 0, b"x"), Err(VmError::BadAddr));
        uvmclear(pt.view(), VirtAddr(0));
        let mut b = [0u8; 1];
        assert_eq!(copyin(pt.view(), &mut b, 0), Err(VmError::BadAddr));
    }

    #[test]
    fn vmprint_matches_the_lab_format() {
        let _ram = FakeRam::new(16);
        let pt = uvmcreate().unwrap();
        let pa = kalloc().unwrap();
        mappages(pt.view(), VirtAddr(0x1000), PGSIZE, pa, rwu() | PteFlags::X).unwrap();
        let mut s = String::new();
        vmprint_to(&mut s, pt.view()).unwrap();
        let lines: std::vec::Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], std::format!("page table {:#018x}", pt.pa().0));
        assert!(lines[1].starts_with(" ..0: pte 0x"), "{}", lines[1]);
        assert!(lines[2].starts_with(" .. ..0: pte 0x"), "{}", lines[2]);
        let leaf = Pte::new(pa, rwu() | PteFlags::X | PteFlags::V);
        assert_eq!(
            lines[3],
            std::format!(" .. .. ..1: pte {:#018x} pa {:#018x}", leaf.0, pa.0)
        );
    }

    #[test]
    fn per_process_kernel_table_out_of_memory_leaks_nothing() {
        let _ram = FakeRam::new(16);
        let kernel = uvmcreate().unwrap();
        let tramp = kalloc().unwrap();
        let stack = kalloc().unwrap();
        kvmmap(
            kernel.view(),
            VirtAddr(TRAMPOLINE),
            tramp,
            PGSIZE,
            PteFlags::R | PteFlags::X,
        );
        // Leave exactly 0, 1 and 2 free pages: kvmcreate needs 3.
        for spare in 0..3 {
            let mut hog = std::vec::Vec::new();
            while nfree() > spare {
                hog.push(kalloc().unwrap());
            }
            assert!(kvmcreate(kernel.view(), VirtAddr(kstack(0)), stack).is_none());
            assert_eq!(nfree(), spare, "kvmcreate leaked on failure");
            for pa in hog {
                kfree(pa);
            }
        }
        let p = kvmcreate(kernel.view(), VirtAddr(kstack(0)), stack).unwrap();
        kvmfree(p);
    }

    #[test]
    fn per_process_kernel_table_shares_all_but_the_top() {
        let _ram = FakeRam::new(64);
        let kernel = uvmcreate().unwrap();
        let low = kalloc().unwrap();
        let tramp = kalloc().unwrap();
        let stack0 = kalloc().unwrap();
        let stack1 = kalloc().unwrap();
        kvmmap(
            kernel.view(),
            VirtAddr(0x8000_0000),
            low,
            PGSIZE,
            PteFlags::R | PteFlags::X,
        );
        kvmmap(
            kernel.view(),
            VirtAddr(TRAMPOLINE),
            tramp,
            PGSIZE,
            PteFlags::R | PteFlags::X,
        );
        kvmmap(
            kernel.view(),
            VirtAddr(kstack(0)),
            stack0,
            PGSIZE,
            PteFlags::R | PteFlags::W,
        );
        kvmmap(
            kernel.view(),
            VirtAddr(kstack(1)),
            stack1,
            PGSIZE,
            PteFlags::R | PteFlags::W,
        );
        let before = nfree();
        let p = kvmcreate(kernel.view(), VirtAddr(kstack(1)), stack1).unwrap();
        assert_eq!(before - nfree(), 3, "root + private level 1 + level 0");
        assert_eq!(kvmpa(p.view(), VirtAddr(0x8000_0000)), Some(low));
        assert_eq!(p.view().entry(2), kernel.view().entry(2));
        assert_eq!(kvmpa(p.view(), VirtAddr(TRAMPOLINE)), Some(tramp));
        assert_eq!(kvmpa(p.view(), VirtAddr(kstack(1))), Some(stack1));
        assert_eq!(
            kvmpa(p.view(), VirtAddr(kstack(0))),
            None,
            "another process's stack"
        );
        kvmfree(p);
        assert_eq!(nfree(), before);
        // The kernel's own table is intact.
        assert_eq!(kvmpa(kernel.view(), VirtAddr(kstack(0))), Some(stack0));
        assert_eq!(kvmpa(kernel.view(), VirtAddr(0x8000_0000)), Some(low));
    }
}
