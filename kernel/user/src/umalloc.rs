//! The heap: K&R's free-list `malloc` (as in xv6's `user/umalloc.c`) on
//! top of `sbrk`, as this program's `#[global_allocator]`, so `alloc`'s
//! `Vec`, `String` and `Box` work.
//!
//! Blocks are multiples of a 16-byte header unit; a free list sorted by
//! address coalesces neighbours on free. Alignments above 16 over-allocate
//! and keep the real block's address just below the aligned pointer.
//! Programs are single-threaded (fork copies the heap), so no lock.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};

use crate::syscall::sbrk;

#[repr(C, align(16))]
struct Header {
    next: *mut Header,
    /// Size of this block in units, header included.
    units: usize,
}

const UNIT: usize = core::mem::size_of::<Header>();
/// Grow the heap by at least this many units at a time (64 KiB).
const MIN_GROW: usize = 4096;

struct State {
    base: Header,
    freep: *mut Header,
}

/// The allocator; see the module docs.
pub struct Umalloc {
    state: UnsafeCell<State>,
}

// SAFETY: a user program has one thread.
unsafe impl Sync for Umalloc {}

impl Umalloc {
    pub const fn new() -> Umalloc {
        Umalloc {
            state: UnsafeCell::new(State {
                base: Header {
                    next: null_mut(),
                    units: 0,
                },
                freep: null_mut(),
            }),
        }
    }

    /// Allocate `nbytes` aligned to 16, or null.
    ///
    /// # Safety
    /// Single-threaded use only.
    pub unsafe fn malloc(&self, nbytes: usize) -> *mut u8 {
        // SAFETY: one thread; the list holds only blocks we made.
        unsafe {
            let st = &mut *self.state.get();
            let nunits = match nbytes.checked_add(UNIT - 1) {
                Some(n) => n / UNIT + 1,
                None => return null_mut(),
            };
            if st.freep.is_null() {
                let base = &mut st.base as *mut Header;
                st.base.next = base;
                st.base.units = 0;
                st.freep = base;
            }
            let mut prevp = st.freep;
            let mut p = (*prevp).next;
            loop {
                if (*p).units >= nunits {
                    if (*p).units == nunits {
                        (*prevp).next = (*p).next;
                    } else {
                        (*p).units -= nunits;
                        p = p.add((*p).units);
                        (*p).units = nunits;
                    }
                    st.freep = prevp;
                    return p.add(1) as *mut u8;
                }
                if p == st.freep {
                    match self.morecore(st, nunits) {
                        Some(np) => p = np,
                        None => return null_mut(),
                    }
                }
                prevp = p;
                p = (*p).next;
            }
        }
    }

    /// Ask the kernel for at least `nunits` more units and free them into
    /// the list; returns the list pointer to continue the search from.
    unsafe fn morecore(&self, st: &mut State, nunits: usize) -> Option<*mut Header> {
        let nu = nunits.max(MIN_GROW);
        let bytes = nu.checked_mul(UNIT)?;
        if bytes > isize::MAX as usize / 2 {
            return None;
        }
        // The break may not be 16-aligned if someone else called sbrk.
        let cur = sbrk(0);
        if cur == usize::MAX {
            return None;
        }
        let pad = cur.wrapping_neg() % UNIT;
        let p = sbrk((bytes + pad) as isize);
        if p == usize::MAX {
            return None;
        }
        let hp = (p + pad) as *mut Header;
        // SAFETY: [hp, hp + nu) is fresh memory the kernel just gave us.
        unsafe {
            (*hp).units = nu;
            self.free_block(st, hp.add(1) as *mut u8);
        }
        Some(st.freep)
    }

    /// Return a block from [`malloc`](Self::malloc).
    ///
    /// # Safety
    /// `ap` came from this allocator's `malloc` and is not used again.
    pub unsafe fn free(&self, ap: *mut u8) {
        // SAFETY: the caller's; one thread.
        unsafe { self.free_block(&mut *self.state.get(), ap) }
    }

    unsafe fn free_block(&self, st: &mut State, ap: *mut u8) {
        // SAFETY: ap is a block from malloc or morecore; the list is sorted
        // by address and circular through `base`.
        unsafe {
            let bp = (ap as *mut Header).sub(1);
            let mut p = st.freep;
            while !(bp > p && bp < (*p).next) {
                if p >= (*p).next && (bp > p || bp < (*p).next) {
                    break; // freed block at start or end of arena
                }
                p = (*p).next;
            }
            if bp.add((*bp).units) == (*p).next {
                (*bp).units += (*(*p).next).units;
                (*bp).next = (*(*p).next).next;
            } else {
                (*bp).next = (*p).next;
            }
            if p.add((*p).units) == bp {
                (*p).units += (*bp).units;
                (*p).next = (*bp).next;
            } else {
                (*p).next = bp;
            }
            st.freep = p;
        }
    }
}

impl Default for Umalloc {
    fn default() -> Self {
        Umalloc::new()
    }
}

unsafe impl GlobalAlloc for Umalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; blocks are ours.
        unsafe {
            if layout.align() <= UNIT {
                return self.malloc(layout.size());
            }
            let Some(total) = layout.size().checked_add(layout.align()) else {
                return null_mut();
            };
            let raw = self.malloc(total);
            if raw.is_null() {
                return raw;
            }
            // raw is 16-aligned, so the aligned pointer is at least 16 past it.
            let addr = (raw as usize + layout.align()) & !(layout.align() - 1);
            let p = addr as *mut u8;
            (p as *mut *mut u8).sub(1).write(raw);
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from alloc with this layout.
        unsafe {
            if layout.align() <= UNIT {
                self.free(ptr);
            } else {
                self.free((ptr as *mut *mut u8).sub(1).read());
            }
        }
    }
}

/// Allocate `n` bytes (uninitialised) for C-style code; `None` when the
/// kernel refuses to grow the heap.
pub fn malloc(n: usize) -> Option<NonNull<u8>> {
    // SAFETY: single-threaded program.
    NonNull::new(unsafe { crate::ALLOCATOR.malloc(n) })
}

/// Free a block from [`malloc`].
///
/// # Safety
/// `p` came from [`malloc`] and is not used again.
pub unsafe fn free(p: NonNull<u8>) {
    // SAFETY: the caller's.
    unsafe { crate::ALLOCATOR.free(p.as_ptr()) }
}
