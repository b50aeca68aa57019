//! `cargo xtask test`: the whole suite, in the order failures are cheapest.

use std::process::Command;

use crate::build::{self, cargo, run_checked};
use crate::{deps, paths, Result};

/// The host triple, for the kernel's pure-logic unit tests.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("running rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV printed no host triple".to_string())
}

pub fn run(cargo_args: &[String]) -> Result<()> {
    deps::ensure(&[
        deps::QEMU,
        deps::GDB,
        deps::PYTHON3,
        deps::JQ,
        deps::TMUX,
        deps::RISCV_GCC,
        deps::MAKE,
        deps::PATCH,
    ])?;
    let root = paths::root();

    // 1. The kernel's pure logic (PTEs, walks over fake RAM, the allocator's
    //    free list) on the host.
    let host = host_triple()?;
    run_checked(
        cargo()
            .current_dir(root.join("kernel"))
            .env_remove("RUSTFLAGS")
            .args(["test", "-p", "kernel", "--target", &host])
            .arg("--target-dir")
            .arg(paths::target_dir()),
        "kernel unit tests",
    )?;

    deps::ensure_rust_target(build::KERNEL_TARGET)?;
    //    Clippy on the kernel target, warnings denied: among them
    //    `not_unsafe_ptr_arg_deref`, so no safe `pub fn` dereferences a raw
    //    pointer it was given (docs/kernel.md, "Handles and locks").
    run_checked(
        cargo()
            .current_dir(root.join("kernel"))
            .env_remove("RUSTFLAGS")
            .args([
                "clippy",
                "--release",
                "--workspace",
                "--target",
                build::KERNEL_TARGET,
            ])
            .arg("--target-dir")
            .arg(paths::target_dir())
            .args(["--", "-D", "warnings"]),
        "kernel clippy",
    )?;

    // 2. The kernel and its disk image, and the C xv6 kernels (stock, lab
    //    solutions, classic bugs), which the integration tests boot.
    build::build_all()?;
    crate::xv6::build(&[])?;

    // 3. The host workspace: kinspect's unit tests, then the integration
    //    tests that boot the real kernel under the real QEMU.
    run_checked(
        cargo()
            .current_dir(&root)
            .args(["test", "--workspace", "--release"])
            .args(cargo_args),
        "workspace tests",
    )
}

/// `cargo xtask bench`: build the kernel and the C xv6 kernels, then every
/// benchmark of the host workspace (they boot them under QEMU themselves).
pub fn bench(cargo_args: &[String]) -> Result<()> {
    deps::ensure(&[
        deps::QEMU,
        deps::GDB,
        deps::RISCV_GCC,
        deps::MAKE,
        deps::PATCH,
    ])?;
    build::build_all()?;
    crate::xv6::build(&[])?;
    run_checked(
        cargo()
            .current_dir(paths::root())
            .args(["bench", "--workspace"])
            .args(cargo_args),
        "benchmarks",
    )
}
