//! System packages and Rust targets the tools need, installed on demand.
//!
//! Nothing but rustup is assumed. When a Debian package is missing and we
//! are root (or have passwordless sudo) we install it with
//! `apt-get install --no-install-recommends`; otherwise we print the exact
//! command and fail.

use std::process::{Command, Stdio};

use crate::Result;

/// A command-line tool and the Debian package that provides it.
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    pub why: &'static str,
}

pub const QEMU: Tool = Tool {
    program: kinspect_qemu::QEMU,
    package: kinspect_qemu::QEMU_PACKAGE,
    why: "to boot the kernel",
};

pub const GDB: Tool = Tool {
    program: "gdb-multiarch",
    package: "gdb-multiarch",
    why: "for gdb-scripts/ and their tests",
};

pub const PYTHON3: Tool = Tool {
    program: "python3",
    package: "python3",
    why: "for the gdb scripts' unit tests (python3 -m unittest)",
};

pub const JQ: Tool = Tool {
    program: "jq",
    package: "jq",
    why: "for the --json round-trip test (Debian's jq 1.6 reads every number as a double)",
};

pub const TMUX: Tool = Tool {
    program: "tmux",
    package: "tmux",
    why: "for the TUI's end-to-end test",
};

pub const RISCV_GCC: Tool = Tool {
    program: "riscv64-linux-gnu-gcc",
    package: "gcc-riscv64-linux-gnu",
    why: "to build the C xv6 kernels the tests boot",
};

pub const MAKE: Tool = Tool {
    program: "make",
    package: "make",
    why: "to build the C xv6 kernels with their own Makefile",
};

pub const PATCH: Tool = Tool {
    program: "patch",
    package: "patch",
    why: "to apply the lab-solution patches to the C xv6 trees",
};

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Make sure every tool is on `PATH`, installing the missing packages.
pub fn ensure(tools: &[Tool]) -> Result<()> {
    let missing: Vec<&Tool> = tools.iter().filter(|t| !on_path(t.program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    for t in &missing {
        eprintln!(
            "xtask: {} not found (needed {}); package {}",
            t.program, t.why, t.package
        );
    }
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let sudo = if is_root() {
        ""
    } else if passwordless_sudo() {
        "sudo "
    } else {
        return Err(format!(
            "missing system packages; install them with:\n  sudo sh -c '{install}'"
        ));
    };
    let script = format!(
        "{sudo}apt-get update -qq && {sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {}",
        packages.join(" ")
    );
    eprintln!("xtask: installing {}", packages.join(" "));
    // Two checkouts testing at once on a fresh machine both get here; apt
    // refuses the second ("Could not get lock"). flock (util-linux, in every
    // Debian) makes the second wait for the first, then find little to do.
    let ok = Command::new("flock")
        .args(["-w", "900", "/tmp/kinspect-xtask-apt.lock", "sh", "-c"])
        .arg(&script)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err(format!(
            "installing packages failed; try by hand:\n  sudo sh -c '{install}'"
        ));
    }
    match missing.iter().find(|t| !on_path(t.program)) {
        Some(t) => Err(format!(
            "{} still not found after installing {}",
            t.program, t.package
        )),
        None => Ok(()),
    }
}

/// Make sure rustup has the kernel's target (rust-toolchain.toml names it;
/// older rustups do not add missing targets by themselves).
pub fn ensure_rust_target(target: &str) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(crate::paths::root())
        .output();
    let Ok(out) = installed else {
        // No rustup: trust that the toolchain has the target, cargo will say if not.
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        return Ok(());
    }
    eprintln!("xtask: adding Rust target {target}");
    let ok = Command::new("rustup")
        .args(["target", "add", target])
        .current_dir(crate::paths::root())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "could not add the Rust target; run: rustup target add {target}"
        ))
    }
}
