//! Long-term locks for processes (xv6's sleeplock.c): a process waiting
//! for one sleeps instead of spinning, so it may be held across disk I/O.
//! Buffers (bio.rs) and inodes (fs.rs) are guarded by these.

use core::cell::UnsafeCell;

use crate::proc::{myproc, sleep, wakeup};
use crate::spinlock::Spinlock;

/// A lock held by a process for a long time (xv6's `struct sleeplock`).
#[repr(C)]
pub struct Sleeplock {
    /// Is the lock held? (`lk` guards this and `pid`.)
    pub locked: UnsafeCell<u32>,
    /// Spinlock protecting this sleep lock.
    pub lk: Spinlock,
    /// Name of lock, for debugging.
    pub name: &'static str,
    /// Process holding lock.
    pub pid: UnsafeCell<i32>,
}

// SAFETY: `locked` and `pid` are only touched with `lk` held.
unsafe impl Sync for Sleeplock {}

impl Sleeplock {
    pub const fn new(name: &'static str) -> Sleeplock {
        Sleeplock {
            locked: UnsafeCell::new(0),
            lk: Spinlock::new("sleep lock"),
            name,
            pid: UnsafeCell::new(0),
        }
    }

    fn chan(&self) -> usize {
        self as *const Sleeplock as usize
    }

    /// Acquire, sleeping while another process holds it.
    pub fn acquire(&self) {
        self.lk.acquire();
        // SAFETY: lk is held.
        unsafe {
            while *self.locked.get() != 0 {
                sleep(self.chan(), &self.lk);
            }
            *self.locked.get() = 1;
            let p = myproc();
            *self.pid.get() = if p.is_null() { 0 } else { (*p).pid };
        }
        self.lk.release();
    }

    pub fn release(&self) {
        self.lk.acquire();
        // SAFETY: lk is held.
        unsafe {
            *self.locked.get() = 0;
            *self.pid.get() = 0;
        }
        wakeup(self.chan());
        self.lk.release();
    }

    /// Does the current process hold this lock?
    pub fn holding(&self) -> bool {
        self.lk.acquire();
        let p = myproc();
        // SAFETY: lk is held.
        let r = unsafe { *self.locked.get() != 0 && !p.is_null() && *self.pid.get() == (*p).pid };
        self.lk.release();
        r
    }
}
