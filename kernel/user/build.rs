//! Link the user programs at virtual address 0 with `user.ld` (like
//! xv6-riscv's `user/user.ld`), but only when building for the kernel's
//! riscv64 target: a host build (clippy, rust-analyzer) links normally.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rerun-if-changed=user.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if target.starts_with("riscv64") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/user.ld");
        // Global symbols stay (for kinspect and objdump); DWARF and local
        // symbols would make the programs too big for xv6's 268 KiB files
        // and 2000-block disk.
        println!("cargo:rustc-link-arg-bins=--strip-debug");
        println!("cargo:rustc-link-arg-bins=--discard-all");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
