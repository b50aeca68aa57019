//! [`KernelCell`]: a kernel global shared between harts whose locking rule
//! is written on the static rather than carried in its type: the entries
//! of the buffer cache, inode table and file table (`BUF`, `INODE`,
//! `FILE`), used under their own sleep-locks or by their references'
//! holders long after the table's `SpinLock` is released; and `sb` and
//! `devsw`, written once at boot.
//!
//! New data should prefer [`crate::spinlock::SpinLock<T>`], which owns what
//! it guards. `KernelCell` is `UnsafeCell` made `Sync`, and nothing more: it
//! hands out a raw pointer, and every dereference is an `unsafe` block that
//! names the lock (or the boot-time rule) that makes it exclusive.

use core::cell::UnsafeCell;

/// A kernel global reached through a raw pointer ([`KernelCell::get`]).
///
/// Invariant (what makes `Sync` sound): every access through `get` follows
/// the locking rule documented on the static, so no two harts touch the
/// same bytes at once unless both only read. Data written by one hart and
/// later used by another moves between harts, hence `T: Send`.
#[repr(transparent)]
pub struct KernelCell<T>(UnsafeCell<T>);

// SAFETY: sharing a KernelCell<T> lets any hart reach the T; the invariant
// above serialises those accesses, and T: Send makes handing the T from one
// hart to the next sound.
unsafe impl<T: Send> Sync for KernelCell<T> {}

impl<T> KernelCell<T> {
    pub const fn new(v: T) -> KernelCell<T> {
        KernelCell(UnsafeCell::new(v))
    }

    /// The data. Dereferencing it is the caller's `unsafe`, under the
    /// static's locking rule.
    pub fn get(&self) -> *mut T {
        self.0.get()
    }
}
