//! The QEMU `virt` machine the kernel runs on, described once.
//!
//! `cargo xtask qemu`, `kinspect launch` and the integration tests all start
//! QEMU through [`VirtMachine::command`], so the command line is exactly
//! xv6-riscv's everywhere:
//!
//! ```text
//! qemu-system-riscv64 -machine virt -bios none -kernel KERNEL -m 128M -smp 3 -nographic \
//!   -global virtio-mmio.force-legacy=false \
//!   -drive file=FS_IMG,if=none,format=raw,id=x0 -device virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0
//! ```
//!
//! plus `-gdb tcp::PORT` (and `-S` to wait for the debugger) when asked.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Command;

/// The emulator binary, looked up on `PATH`.
pub const QEMU: &str = "qemu-system-riscv64";

/// Debian's package that provides [`QEMU`].
pub const QEMU_PACKAGE: &str = "qemu-system-misc";

/// One boot of the kernel under QEMU's `virt` machine.
#[derive(Clone, Debug)]
pub struct VirtMachine {
    /// The kernel ELF given to `-kernel`.
    pub kernel: PathBuf,
    /// The file-system image attached as the virtio disk.
    pub fs_img: PathBuf,
    /// Number of harts (`-smp`); xv6 uses 3.
    pub smp: u32,
    /// RAM in MiB (`-m`); xv6 uses 128 (PHYSTOP = KERNBASE + 128 MiB).
    pub memory_mib: u32,
    /// Open the gdb stub on this TCP port (`-gdb tcp::PORT`).
    pub gdb_port: Option<u16>,
    /// Freeze the harts at reset until a debugger continues them (`-S`).
    pub wait_for_debugger: bool,
    /// Modern virtio-mmio (`-global virtio-mmio.force-legacy=false`), as
    /// xv6-riscv since 2022 and our kernel need; the 2020 lab trees drive
    /// the legacy interface and boot without the flag.
    pub modern_virtio: bool,
    /// Arguments appended after xv6's (tests add a monitor socket, say).
    pub extra_args: Vec<String>,
    /// Put guest RAM in this file, shared (`-object memory-backend-file,
    /// ...,share=on -machine memory-backend=...`), so kinspect can map it
    /// and read RAM without the gdb stub. See [`VirtMachine::share_ram`].
    pub ram_file: Option<PathBuf>,
}

impl VirtMachine {
    /// xv6-riscv's machine: 3 harts, 128 MiB, no gdb stub.
    pub fn new(kernel: impl Into<PathBuf>, fs_img: impl Into<PathBuf>) -> Self {
        VirtMachine {
            kernel: kernel.into(),
            fs_img: fs_img.into(),
            smp: 3,
            memory_mib: 128,
            gdb_port: None,
            wait_for_debugger: false,
            modern_virtio: true,
            extra_args: Vec::new(),
            ram_file: None,
        }
    }

    /// Back guest RAM by `path` (best on a tmpfs such as /dev/shm), created
    /// here readable by this user only (guest RAM holds the guest's
    /// secrets); QEMU opens it and maps it shared. The caller removes the
    /// file when QEMU has exited.
    pub fn share_ram(&mut self, path: impl Into<PathBuf>) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.into();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.set_len(u64::from(self.memory_mib) << 20)?;
        self.ram_file = Some(path);
        Ok(())
    }

    /// A RAM file name in /dev/shm (or the temporary directory when there
    /// is no /dev/shm) unique to this process and `tag`.
    pub fn ram_file_path(tag: &str) -> PathBuf {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("kinspect-ram-{}-{tag}", std::process::id()))
    }

    /// The arguments after the program name, in xv6's order.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-machine".into(),
            "virt".into(),
            "-bios".into(),
            "none".into(),
            "-kernel".into(),
            self.kernel.display().to_string(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-smp".into(),
            self.smp.to_string(),
            "-nographic".into(),
        ];
        if self.modern_virtio {
            args.push("-global".into());
            args.push("virtio-mmio.force-legacy=false".into());
        }
        args.extend([
            "-drive".into(),
            format!("file={},if=none,format=raw,id=x0", self.fs_img.display()),
            "-device".into(),
            "virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0".into(),
        ]);
        if let Some(path) = &self.ram_file {
            // The region takes the backend's id: ending it in `.ram` keeps
            // it `*.ram` in `info mtree`, as tools that look for the main
            // RAM by that name (the gdb scripts) expect.
            args.push("-object".into());
            args.push(format!(
                "memory-backend-file,id=kinspect.ram,size={}M,mem-path={},share=on",
                self.memory_mib,
                path.display()
            ));
            args.push("-machine".into());
            args.push("memory-backend=kinspect.ram".into());
        }
        if self.wait_for_debugger {
            args.push("-S".into());
        }
        if let Some(port) = self.gdb_port {
            args.push("-gdb".into());
            args.push(format!("tcp::{port}"));
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// A `Command` ready to spawn; stdio is left to the caller.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(self.args());
        cmd
    }

    /// The command line as a person would type it, for messages and docs.
    pub fn display(&self) -> String {
        let mut s = String::from(QEMU);
        for a in self.args() {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }
}

/// A TCP port on the loopback interface that was free a moment ago.
///
/// QEMU's `-gdb tcp::PORT` needs an explicit port, so tests that run QEMUs
/// side by side ask the kernel for an ephemeral one. There is a small window
/// in which another process could take it; callers that spawn QEMU should
/// retry on "Address already in use".
pub fn free_tcp_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether `qemu-system-riscv64` can be run at all.
pub fn qemu_available() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_xv6s() {
        let m = VirtMachine::new("kernel.elf", "fs.img");
        assert_eq!(
            m.display(),
            "qemu-system-riscv64 -machine virt -bios none -kernel kernel.elf -m 128M -smp 3 \
             -nographic -global virtio-mmio.force-legacy=false \
             -drive file=fs.img,if=none,format=raw,id=x0 \
             -device virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0"
        );
    }

    #[test]
    fn the_2020_lab_trees_boot_without_force_legacy() {
        let mut m = VirtMachine::new("kernel", "fs.img");
        m.modern_virtio = false;
        assert_eq!(
            m.display(),
            "qemu-system-riscv64 -machine virt -bios none -kernel kernel -m 128M -smp 3 \
             -nographic -drive file=fs.img,if=none,format=raw,id=x0 \
             -device virtio-blk-device,drive=x0,bus=virtio-mmio-bus.0"
        );
    }

    #[test]
    fn gdb_and_wait_come_after_xv6s_arguments() {
        let mut m = VirtMachine::new("k", "f");
        m.gdb_port = Some(26000);
        m.wait_for_debugger = true;
        m.smp = 1;
        let args = m.args();
        assert_eq!(&args[args.len() - 3..], ["-S", "-gdb", "tcp::26000"]);
        assert!(args.windows(2).any(|w| w == ["-smp", "1"]));
    }

    #[test]
    fn shared_ram_is_a_file_backend_of_the_same_size() {
        let mut m = VirtMachine::new("k", "f");
        m.ram_file = Some("/dev/shm/r".into());
        let args = m.args().join(" ");
        assert!(args.contains(
            "-object memory-backend-file,id=kinspect.ram,size=128M,mem-path=/dev/shm/r,share=on \
             -machine memory-backend=kinspect.ram"
        ));
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_tcp_port().expect("ephemeral port");
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port still free");
    }
}
