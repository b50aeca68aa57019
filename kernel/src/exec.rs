//! exec: replace a process's memory with a program from the file system.
//! Until the file system modules are in, there is no program to load and
//! exec fails.

/// exec(path, argv): -1 (no file system yet).
pub fn sys_exec() -> u64 {
    u64::MAX
}
