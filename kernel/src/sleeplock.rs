//! Long-term locks for processes (xv6's sleeplock.c): a process waiting
//! for one sleeps instead of spinning, so it may be held across disk I/O.
//! Buffers (bio.rs) and inodes (fs.rs) are guarded by these.

use crate::proc::{myproc, wakeup};
use crate::spinlock::SpinLock;

/// Who holds a [`Sleeplock`] (C: its `locked` and `pid` fields, which
/// `lk` guards).
struct Holder {
    /// Is the lock held?
    locked: bool,
    /// Process holding lock.
    pid: i32,
}

/// A lock held by a process for a long time (xv6's `struct sleeplock`).
pub struct Sleeplock {
    /// Spinlock protecting this sleep lock, owning its state.
    lk: SpinLock<Holder>,
    /// Name of lock, for debugging.
    pub name: &'static str,
}

impl Sleeplock {
    pub const fn new(name: &'static str) -> Sleeplock {
        Sleeplock {
            lk: SpinLock::new(
                Holder {
                    locked: false,
                    pid: 0,
                },
                "sleep lock",
            ),
            name,
        }
    }

    fn chan(&self) -> usize {
        self as *const Sleeplock as usize
    }

    /// Acquire, sleeping while another process holds it.
    pub fn acquire(&self) {
        let mut h = self.lk.lock();
        while h.locked {
            h = h.sleep(self.chan());
        }
        h.locked = true;
        let p = myproc();
        // SAFETY: p is the current process (or null at boot); its pid is
        // fixed while it runs.
        h.pid = if p.is_null() { 0 } else { unsafe { (*p).pid } };
    }

    pub fn release(&self) {
        let mut h = self.lk.lock();
        h.locked = false;
        h.pid = 0;
        wakeup(self.chan());
    }

    /// Does the current process hold this lock?
    pub fn holding(&self) -> bool {
        let h = self.lk.lock();
        let p = myproc();
        // SAFETY: as in acquire.
        h.locked && !p.is_null() && h.pid == unsafe { (*p).pid }
    }
}
