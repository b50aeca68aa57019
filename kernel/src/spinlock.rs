//! Mutual exclusion between harts (xv6's spinlock.c).
//!
//! [`Spinlock`] is xv6's `struct spinlock` (`locked`, `name`, `cpu`), used
//! where kinspect reads a lock by its xv6 field names (`proc[i].lock`,
//! `kmem.lock`) and the data it guards are sibling fields, as in C.
//! [`Spinlock::lock`] returns a [`Held`] guard that releases it on drop, so
//! no path forgets a `release`. Everywhere else ([`SpinLock<T>`]: `log`,
//! `bcache`, `itable`, `ftable`, the virtio disk, pipes, sleep-locks,
//! ticks, the console, pid allocation) the lock owns the data it protects
//! so the locking rule is in the type: the data is reachable only through
//! the guard.
//!
//! Holding a spinlock disables interrupts on this hart ([`push_off`]), so an
//! interrupt handler never spins on a lock its own hart holds.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::proc::{mycpu, Cpu};
use crate::riscv::{intr_get, intr_off, intr_on};

/// A mutual exclusion lock (xv6's `struct spinlock`).
#[repr(C)]
pub struct Spinlock {
    /// Is the lock held? (1 = held)
    pub locked: AtomicU32,
    /// Name of lock, for debugging.
    pub name: &'static str,
    /// The cpu holding the lock (null when free).
    pub cpu: AtomicPtr<Cpu>,
}

// SAFETY: every field is atomic or immutable.
unsafe impl Sync for Spinlock {}

impl Spinlock {
    /// A free lock called `name`.
    pub const fn new(name: &'static str) -> Spinlock {
        Spinlock {
            locked: AtomicU32::new(0),
            name,
            cpu: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Acquire the lock; loops (spins) until it is. Panics `acquire` if this
    /// hart already holds it.
    pub fn acquire(&self) {
        push_off(); // disable interrupts to avoid deadlock.
        if self.holding() {
            panic!("acquire {}", self.name);
        }
        while self
            .locked
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        self.cpu.store(mycpu(), Ordering::Relaxed);
    }

    /// Release the lock. Panics `release` if this hart does not hold it.
    pub fn release(&self) {
        if !self.holding() {
            panic!("release {}", self.name);
        }
        self.cpu.store(core::ptr::null_mut(), Ordering::Relaxed);
        self.locked.store(0, Ordering::Release);
        pop_off();
    }

    /// Is this hart holding the lock? Interrupts must be off.
    pub fn holding(&self) -> bool {
        self.locked.load(Ordering::Relaxed) != 0 && self.cpu.load(Ordering::Relaxed) == mycpu()
    }

    /// Acquire the lock and return a guard that releases it when dropped,
    /// on every path out of the caller. For the C-layout locks whose data
    /// are sibling fields (`proc[i].lock`, `kmem.lock`, `wait_lock`).
    pub fn lock(&self) -> Held<'_> {
        self.acquire();
        Held { lock: self }
    }
}

/// Proof that this hart holds a [`Spinlock`]; releases it when dropped
/// (the guard of a lock that does not own its data: the data's rule is
/// written on the struct, as in xv6).
#[must_use = "dropping the guard releases the lock at once"]
pub struct Held<'a> {
    lock: &'a Spinlock,
}

impl<'a> Held<'a> {
    /// The lock this guard holds.
    pub fn spinlock(&self) -> &'a Spinlock {
        self.lock
    }

    /// Atomically release the lock and sleep on `chan`; holds the lock
    /// again when it returns (xv6's `sleep(chan, lk)`).
    pub fn sleep(self, chan: usize) -> Held<'a> {
        let lock = self.lock;
        core::mem::forget(self);
        crate::proc::sleep(chan, lock);
        Held { lock }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// `push_off`/`pop_off` are like `intr_off()`/`intr_on()` except that they
/// are matched: it takes two `pop_off()`s to undo two `push_off()`s. Also, if
/// interrupts are initially off, then push_off, pop_off leaves them off.
pub fn push_off() {
    let old = intr_get();
    intr_off();
    let c = mycpu();
    // SAFETY: interrupts are off, so only this hart touches its own Cpu.
    unsafe {
        if (*c).noff == 0 {
            (*c).intena = old as i32;
        }
        (*c).noff += 1;
    }
}

/// Undo one [`push_off`]; panics `pop_off - interruptible` if interrupts are
/// on, `pop_off` if unmatched.
pub fn pop_off() {
    let c = mycpu();
    if intr_get() {
        panic!("pop_off - interruptible");
    }
    // SAFETY: interrupts are off, so only this hart touches its own Cpu.
    unsafe {
        if (*c).noff < 1 {
            panic!("pop_off");
        }
        (*c).noff -= 1;
        if (*c).noff == 0 && (*c).intena != 0 {
            intr_on();
        }
    }
}

/// A spinlock that owns the data it protects.
#[repr(C)]
pub struct SpinLock<T> {
    lock: Spinlock,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reachable through a guard, and only one guard
// exists at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the data; T: Send allows that.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(data: T, name: &'static str) -> SpinLock<T> {
        SpinLock {
            lock: Spinlock::new(name),
            data: UnsafeCell::new(data),
        }
    }

    /// Acquire the lock; the guard releases it when dropped.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        self.lock.acquire();
        SpinLockGuard { lock: self }
    }

    /// The underlying xv6-style lock (for `sleep`, and `holding` checks).
    pub fn raw(&self) -> &Spinlock {
        &self.lock
    }

    /// The data, without locking: for post-mortem printing (`procdump`
    /// style), or when the caller holds the lock via `raw()`.
    ///
    /// # Safety
    /// The caller holds the lock, or accepts racy reads.
    pub unsafe fn get_unchecked(&self) -> *mut T {
        self.data.get()
    }
}

/// Proof that a [`SpinLock`] is held; gives access to its data.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<'a, T> SpinLockGuard<'a, T> {
    /// The lock this guard holds.
    pub fn spinlock(&self) -> &'a SpinLock<T> {
        self.lock
    }

    /// Atomically release the lock and sleep on `chan`; holds the lock
    /// again when it returns (xv6's `sleep(chan, lk)` for owned locks).
    pub fn sleep(self, chan: usize) -> SpinLockGuard<'a, T> {
        let lock = self.lock;
        core::mem::forget(self);
        crate::proc::sleep(chan, &lock.lock);
        SpinLockGuard { lock }
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this hart holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this hart holds the lock, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.lock.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_release() {
        let l = SpinLock::new(5u32, "t");
        {
            let mut g = l.lock();
            assert!(l.raw().holding());
            *g += 1;
        }
        assert!(!l.raw().holding());
        assert_eq!(*l.lock(), 6);
    }

    #[test]
    fn held_releases_on_drop() {
        let l = Spinlock::new("held");
        {
            let g = l.lock();
            assert!(g.spinlock().holding());
        }
        assert!(!l.holding());
        l.acquire();
        l.release();
    }

    #[test]
    #[should_panic(expected = "acquire")]
    fn acquiring_twice_panics() {
        let l = Spinlock::new("twice");
        l.acquire();
        l.acquire();
    }

    #[test]
    #[should_panic(expected = "release")]
    fn releasing_a_free_lock_panics() {
        Spinlock::new("free").release();
    }
}
