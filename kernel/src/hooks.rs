//! Where processes meet the file system: the first process's `fsinit` and
//! current directory, and open files across fork and exit. Until the file
//! system modules are in, processes hold no files and these do nothing.

use crate::proc::Proc;

/// Initialise the file system (called once, by the first process).
pub fn fsinit() {}

/// Give the first process its current directory, "/".
pub fn proc_init_cwd(_p: *mut Proc) {}

/// Share the parent's open files and current directory with a fork child.
pub fn fork_files(_parent: *mut Proc, _child: *mut Proc) {}

/// Close an exiting process's files and drop its current directory.
pub fn exit_files(_p: *mut Proc) {}
