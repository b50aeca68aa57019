//! Where things are: the repository root and the build outputs.

use std::path::{Path, PathBuf};

/// The repository root (the host workspace's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// The shared cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// `target/kernel/`: kernel.elf and fs.img, the build's contract.
pub fn kernel_out() -> PathBuf {
    root().join("target").join("kernel")
}
