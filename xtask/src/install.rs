//! `cargo xtask install`: put `kinspect` on PATH.
//!
//! `cargo install --locked --path inspector/kinspect` into cargo's bin
//! directory (`~/.cargo/bin`, or `$CARGO_HOME/bin`), which rustup's
//! installer puts on PATH. The workspace's target directory is reused, so
//! after `cargo xtask run` or `test` nothing is compiled again. Then say
//! where it went, whether that directory is on PATH, and how to get shell
//! completions.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{cargo, run_checked};
use crate::{paths, Result};

/// The `cargo install` that installs kinspect (into `root`/bin when given).
pub fn install_command(root: Option<&Path>) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(paths::root())
        .args(["install", "--locked", "--path"])
        .arg(paths::root().join("inspector").join("kinspect"))
        .arg("--target-dir")
        .arg(paths::target_dir());
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    cmd
}

/// Where `cargo install` puts binaries: `root`/bin, `$CARGO_HOME/bin`, or
/// `~/.cargo/bin`.
pub fn bin_dir(root: Option<&Path>, cargo_home: Option<&OsStr>, home: Option<&OsStr>) -> PathBuf {
    match (root, cargo_home, home) {
        (Some(r), _, _) => r.join("bin"),
        (None, Some(c), _) => Path::new(c).join("bin"),
        (None, None, Some(h)) => Path::new(h).join(".cargo").join("bin"),
        (None, None, None) => PathBuf::from("~/.cargo/bin"),
    }
}

/// Whether `dir` is one of the directories of a `PATH` value.
pub fn on_path(dir: &Path, path: Option<&OsStr>) -> bool {
    path.is_some_and(|p| std::env::split_paths(p).any(|d| d == dir))
}

pub fn install(root: Option<PathBuf>) -> Result<()> {
    run_checked(&mut install_command(root.as_deref()), "installing kinspect")?;
    let bin = bin_dir(
        root.as_deref(),
        std::env::var_os("CARGO_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    );
    println!(
        "kinspect is installed as {}",
        bin.join("kinspect").display()
    );
    if on_path(&bin, std::env::var_os("PATH").as_deref()) {
        println!(
            "{} is on your PATH: `kinspect --help` works in any terminal",
            bin.display()
        );
    } else {
        if root.is_none() {
            println!(
                "{} is not on this shell's PATH yet: rustup's installer puts it there for \
                 new shells, and `. \"$HOME/.cargo/env\"` does it in this one. Otherwise add",
                bin.display()
            );
        } else {
            println!("{} is not on your PATH; add", bin.display());
        }
        println!(
            "  export PATH=\"{}:$PATH\"\nto your shell's startup file",
            bin.display()
        );
    }
    println!(
        "shell completions: `source <(kinspect completions bash)` (zsh, fish: see `kinspect completions --help`)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_kinspect_from_the_workspace_reusing_its_target_dir() {
        let cmd = install_command(Some(Path::new("/tmp/x")));
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..3], ["install", "--locked", "--path"]);
        assert!(args[3].ends_with("inspector/kinspect"), "{args:?}");
        assert_eq!(args[4], "--target-dir");
        assert_eq!(&args[6..], ["--root", "/tmp/x"]);
        assert_eq!(install_command(None).get_args().count(), 6);
    }

    #[test]
    fn the_bin_dir_is_cargos_and_is_found_on_path() {
        let home = OsStr::new("/home/ada");
        assert_eq!(
            bin_dir(None, None, Some(home)),
            Path::new("/home/ada/.cargo/bin")
        );
        assert_eq!(
            bin_dir(None, Some(OsStr::new("/opt/cargo")), Some(home)),
            Path::new("/opt/cargo/bin")
        );
        assert_eq!(
            bin_dir(Some(Path::new("/tmp/x")), None, Some(home)),
            Path::new("/tmp/x/bin")
        );
        let path = OsStr::new("/usr/bin:/home/ada/.cargo/bin:/bin");
        assert!(on_path(Path::new("/home/ada/.cargo/bin"), Some(path)));
        assert!(!on_path(Path::new("/home/ada/bin"), Some(path)));
        assert!(!on_path(Path::new("/bin"), None));
    }
}
