//! Post-mortems: `kinspect report` explains a panicked kernel, and
//! `kinspect watch` waits for the panic on a live machine and then does
//! the same.
//!
//! Where it sits: it reads a halted [`Target`] (live QEMU or a snapshot)
//! through the kernel model ([`crate::model`]: processes, harts, page
//! tables, page owners) and the symbol layer (lines, inlined frames), and
//! unwinds each hart with [`unwind`] (DWARF CFI, frame pointers). What it
//! prints comes from target memory: the message from `panicmsg`, the
//! process from `cpus[h].proc`, the frames from the stack; where it cannot
//! know something it says so instead of guessing.

pub mod batch;
pub mod diagnose;
pub mod locals;
pub mod report;
pub mod unwind;
pub mod watch;

pub use report::{build, PanicReport};
