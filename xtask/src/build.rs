//! Building the kernel and its disk image, and booting them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kinspect_qemu::VirtMachine;

use crate::{deps, paths, Result};

/// The kernel's target triple (rust-toolchain.toml lists it).
pub const KERNEL_TARGET: &str = "riscv64gc-unknown-none-elf";

/// The two files `cargo xtask build` promises.
pub struct Outputs {
    pub kernel_elf: PathBuf,
    pub fs_img: PathBuf,
}

/// `cargo`, the one that is running us when there is one.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Build the kernel workspace (kernel and user programs) for riscv64, then
/// copy the kernel to target/kernel/kernel.elf and make target/kernel/fs.img.
pub fn build_all() -> Result<Outputs> {
    deps::ensure_rust_target(KERNEL_TARGET)?;
    let root = paths::root();
    let kernel_dir = root.join("kernel");
    let target_dir = paths::target_dir();
    // The kernel workspace's own .cargo/config.toml (linker script, frame
    // pointers) applies because cargo runs inside kernel/.
    run_checked(
        cargo()
            .current_dir(&kernel_dir)
            .env_remove("RUSTFLAGS")
            .args([
                "build",
                "--release",
                "--workspace",
                "--target",
                KERNEL_TARGET,
            ])
            .arg("--target-dir")
            .arg(&target_dir),
        "building the kernel",
    )?;
    let built = target_dir.join(KERNEL_TARGET).join("release");
    let out = paths::kernel_out();
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let kernel_elf = out.join("kernel.elf");
    copy(&built.join("kernel"), &kernel_elf)?;
    let fs_img = out.join("fs.img");
    make_fs_img(&root, &built, &fs_img)?;
    Ok(Outputs { kernel_elf, fs_img })
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

/// The user programs: one per `kernel/user/src/bin/*.rs`, built above.
fn user_programs(root: &Path, built: &Path) -> Vec<PathBuf> {
    let mut progs: Vec<PathBuf> = fs::read_dir(root.join("kernel/user/src/bin"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_string_lossy()
                .strip_suffix(".rs")?
                .to_string();
            Some(built.join(name))
        })
        .collect();
    progs.sort();
    progs
}

/// target/kernel/fs.img: the README and the user programs, written by
/// `mkfs` in xv6's format. The README is on the disk twice: as README.md
/// and, last (so the programs keep their inode numbers), as `README`, the
/// name xv6's disk gives it and xv6 users type (`cat README`). Before the
/// file system exists (no kernel/mkfs), an empty 2000-block image keeps
/// QEMU's command line xv6's.
fn make_fs_img(root: &Path, built: &Path, fs_img: &Path) -> Result<()> {
    if !root.join("kernel/mkfs/Cargo.toml").exists() {
        let blank = vec![0u8; 2000 * 1024];
        return fs::write(fs_img, blank).map_err(|e| format!("writing {}: {e}", fs_img.display()));
    }
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "mkfs", "--"])
        .arg(fs_img)
        .arg(root.join("README.md"));
    cmd.args(user_programs(root, built));
    let readme = fs_img.with_file_name("README");
    fs::copy(root.join("README.md"), &readme)
        .map_err(|e| format!("copying README.md to {}: {e}", readme.display()))?;
    cmd.arg(&readme);
    run_checked(&mut cmd, "making fs.img")
}

/// Boot the built kernel with the console on this terminal.
pub fn qemu(out: &Outputs, gdb: Option<u16>, smp: u32) -> Result<()> {
    deps::ensure(&[deps::QEMU])?;
    let mut m = VirtMachine::new(&out.kernel_elf, &out.fs_img);
    m.smp = smp;
    if let Some(port) = gdb {
        m.gdb_port = Some(port);
        m.wait_for_debugger = true;
        eprintln!("xtask: QEMU waits for a debugger on localhost:{port}");
        eprintln!("       kinspect --gdb localhost:{port} attach   (or: cargo xtask gdb)");
    }
    // Guest RAM in a shared file, so kinspect reads it without the stub
    // (docs/fast-path.md); QEMU works as before if it cannot be made.
    let ram = VirtMachine::ram_file_path("qemu");
    if let Err(e) = m.share_ram(&ram) {
        eprintln!("xtask: RAM stays private to QEMU ({}: {e})", ram.display());
    }
    eprintln!("xtask: {}", m.display());
    eprintln!("xtask: Ctrl-A x quits QEMU");
    let r = run_checked(&mut m.command(), "QEMU");
    if let Some(p) = &m.ram_file {
        let _ = fs::remove_file(p);
    }
    r
}

/// The main job: build the kernel and kinspect, boot the kernel under QEMU
/// with xv6's command line, and put the user inside kinspect's TUI looking
/// at it (`kinspect launch`: the console is its Console tab).
pub fn run() -> Result<()> {
    let out = build_all()?;
    deps::ensure(&[deps::QEMU])?;
    let mut cmd = cargo();
    cmd.current_dir(paths::root())
        .args(["run", "--quiet", "--release", "-p", "kinspect", "--"])
        .arg("--elf")
        .arg(&out.kernel_elf)
        .arg("launch")
        .arg("--fs-img")
        .arg(&out.fs_img);
    eprintln!("xtask: building kinspect, then: kinspect launch (? in it lists every key)");
    run_checked(&mut cmd, "kinspect launch")
}

/// gdb-multiarch with the kinspect views, attached to a QEMU gdb stub,
/// directly or (`proxy`) through `kinspect proxy --listen :PROXY`, which
/// then also serves the TUI and kinspect commands on the same machine.
pub fn gdb(port: u16, proxy: Option<u16>) -> Result<()> {
    deps::ensure(&[deps::GDB])?;
    let root = paths::root();
    let elf = paths::kernel_out().join("kernel.elf");
    if !elf.exists() {
        return Err(format!(
            "{} is missing: run cargo xtask build",
            elf.display()
        ));
    }
    let mut server = None;
    let target = match proxy {
        None => format!("localhost:{port}"),
        Some(p) => {
            let mut build = cargo();
            build.args(["build", "--quiet", "--release", "-p", "kinspect"]);
            run_checked(&mut build, "cargo build -p kinspect")?;
            let bin = paths::target_dir().join("release/kinspect");
            // Its own process group: gdb's Ctrl-C in this terminal is
            // for the guest, not for the proxy.
            let child = std::os::unix::process::CommandExt::process_group(
                Command::new(&bin).args(["--gdb", &format!("localhost:{port}")]),
                0,
            )
            .args(["proxy", "--listen", &format!("127.0.0.1:{p}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            server = Some(child);
            eprintln!("xtask: kinspect proxy on :{p}; in another terminal:");
            eprintln!("       kinspect --gdb :{p} attach");
            format!("localhost:{p}")
        }
    };
    let mut cmd = Command::new("gdb-multiarch");
    cmd.arg("-q")
        .args(["-ex", "set architecture riscv:rv64"])
        .arg("-ex")
        .arg(format!("file {}", elf.display()))
        .arg("-ex")
        .arg(format!(
            "source {}",
            root.join("gdb-scripts/kinspect.py").display()
        ))
        .arg("-ex")
        // The proxy may take a moment to listen.
        .arg("set tcp connect-timeout 10")
        .arg("-ex")
        .arg(format!("target remote {target}"));
    let r = run_checked(&mut cmd, "gdb-multiarch");
    if let Some(mut child) = server {
        // SIGTERM: the proxy removes what its clients left and lets go.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    r
}
