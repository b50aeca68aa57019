//! `struct stat` (xv6's `kernel/stat.h`): what `fstat` copies out to user
//! memory, 24 bytes, the layout xv6-riscv's user programs compile in. The
//! T_* inode types are also the `typ` of an on-disk inode.

/// Directory.
pub const T_DIR: i16 = 1;
/// File.
pub const T_FILE: i16 = 2;
/// Device.
pub const T_DEVICE: i16 = 3;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// File system's disk device.
    pub dev: i32,
    /// Inode number.
    pub ino: u32,
    /// Type of file: T_DIR, T_FILE or T_DEVICE.
    pub typ: i16,
    /// Number of links to file.
    pub nlink: i16,
    /// Size of file in bytes.
    pub size: u64,
}

const _: () = assert!(core::mem::size_of::<Stat>() == 24);

impl Stat {
    /// The bytes copyout writes to user memory.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), 24 bytes, no padding (4+4+2+2+8).
        unsafe { core::slice::from_raw_parts(self as *const Stat as *const u8, 24) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_is_xv6s_24_bytes() {
        assert_eq!(core::mem::size_of::<super::Stat>(), 24);
        assert_eq!(core::mem::offset_of!(super::Stat, size), 16);
    }
}
