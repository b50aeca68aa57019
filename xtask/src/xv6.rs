//! `cargo xtask xv6`: build the C xv6 kernels the suite boots.
//!
//! Each variant of `inspector/kinspect/tests/xv6/variants.toml` is a tree
//! of `../shared/xv6/` (stock xv6-riscv, the 2020 pgtbl lab handout) with
//! this project's patches applied: lab solutions the way students write
//! them, and each classic bug. A variant is copied to `target/xv6/NAME/`,
//! patched with `patch -p1`, and built with xv6's own Makefile (`make
//! kernel/kernel` and its `UPROGS`, Debian's `riscv64-linux-gnu-` gcc).
//! The trees come without xv6's `mkfs/`, so `fs.img` is made by this
//! project's `mkfs`, which takes xv6's arguments and writes its format
//! (the kernel reads the sizes from the superblock). A stamp of the tree
//! and the patches' bytes skips variants already built.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kinspect_testkit::xv6::{self, Variant};

use crate::{deps, paths, Result};

/// Build the variants named (all when `names` is empty).
pub fn build(names: &[String]) -> Result<()> {
    deps::ensure(&[deps::RISCV_GCC, deps::MAKE, deps::PATCH])?;
    let all = xv6::variants()?;
    for n in names {
        if !all.iter().any(|v| &v.name == n) {
            let known: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
            return Err(format!(
                "no xv6 variant {n:?} (there are: {})",
                known.join(" ")
            ));
        }
    }
    let chosen: Vec<&Variant> = all
        .iter()
        .filter(|v| names.is_empty() || names.contains(&v.name))
        .collect();
    let src = xv6::sources_dir();
    if !src.is_dir() {
        return Err(format!(
            "{} is missing: the C xv6 trees are expected beside the repository (set KINSPECT_XV6_SRC to their folder)",
            src.display()
        ));
    }
    let mkfs = build_mkfs()?;
    for v in chosen {
        build_one(v, &mkfs)?;
    }
    Ok(())
}

/// This project's mkfs, built once: target/release/mkfs.
fn build_mkfs() -> Result<PathBuf> {
    crate::build::run_checked(
        crate::build::cargo().current_dir(paths::root()).args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "mkfs",
        ]),
        "building mkfs",
    )?;
    Ok(paths::target_dir().join("release/mkfs"))
}

fn build_one(v: &Variant, mkfs: &Path) -> Result<()> {
    let dir = v.dir();
    let stamp = xv6::stamp(v)?;
    let stamp_path = xv6::stamp_path(&dir);
    let built = dir.join("kernel/kernel").exists() && dir.join("fs.img").exists();
    if built && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    eprintln!(
        "xtask: building xv6 variant {} ({} + {:?})",
        v.name, v.tree, v.patches
    );
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    let parent = dir.parent().ok_or("target/xv6 has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    // The shared trees may be read-only: copy, then make the copy writable.
    run(
        Command::new("cp").arg("-r").arg(v.source()).arg(&dir),
        &format!("copying {}", v.source().display()),
    )?;
    run(
        Command::new("chmod").args(["-R", "u+w"]).arg(&dir),
        "making the copy writable",
    )?;
    for p in v.patch_paths() {
        run(
            Command::new("patch")
                .args(["-p1", "--batch", "--forward", "--quiet", "-i"])
                .arg(&p)
                .current_dir(&dir),
            &format!("applying {} to {}", p.display(), v.name),
        )?;
    }
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // The Makefile's user programs, as it would put them in fs.img.
    let uprogs = output(
        Command::new("make")
            .args(["-s", "--no-print-directory", "--eval"])
            .arg("kinspect-uprogs: ; @echo $(UPROGS) $(UEXTRA)")
            .arg("kinspect-uprogs")
            .current_dir(&dir),
        "listing the Makefile's UPROGS",
    )?;
    let uprogs: Vec<&str> = uprogs.split_whitespace().collect();
    run(
        Command::new("make")
            .arg(format!("-j{jobs}"))
            .arg("kernel/kernel")
            .args(&uprogs)
            .current_dir(&dir),
        &format!("building xv6 variant {}", v.name),
    )?;
    run(
        Command::new(mkfs)
            .arg("fs.img")
            .arg("README")
            .args(&uprogs)
            .current_dir(&dir),
        &format!("making {}'s fs.img", v.name),
    )?;
    fs::write(&stamp_path, stamp).map_err(|e| format!("{}: {e}", stamp_path.display()))
}

/// Run quietly; on failure, the command's output is the error.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    output(cmd, what).map(drop)
}

/// Run quietly and return standard output; on failure, the command's
/// output is the error.
fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    Err(format!(
        "{what} failed ({}):\n{}\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    ))
}
