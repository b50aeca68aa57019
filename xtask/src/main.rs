//! `cargo xtask`: the project's build, run and test orchestration.
//!
//! ```text
//! cargo xtask build              kernel -> target/kernel/kernel.elf, fs.img
//! cargo xtask qemu [--gdb PORT]  boot it with xv6-riscv's QEMU command line
//! cargo xtask run                the main job: build, boot, inspect
//! cargo xtask xv6                the C xv6 kernels the tests boot -> target/xv6/
//! cargo xtask test               every test: host units, then QEMU integration
//! cargo xtask install            kinspect into ~/.cargo/bin (on PATH)
//! ```
//!
//! System packages the tools need (QEMU above all) are installed here when
//! we run as root or with passwordless sudo; otherwise the exact `apt-get`
//! command is printed and we stop.

mod build;
mod deps;
mod install;
mod paths;
mod test;
mod xv6;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run and test the kernel and kinspect"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel (release, full DWARF, frame pointers) into
    /// target/kernel/kernel.elf and its disk image into target/kernel/fs.img.
    Build,
    /// Build, then boot the kernel under QEMU with xv6-riscv's command line;
    /// the console is this terminal (Ctrl-A x quits QEMU).
    Qemu {
        /// Open QEMU's gdb stub on this TCP port and wait for a debugger (-S).
        #[arg(long, value_name = "PORT")]
        gdb: Option<u16>,
        /// Number of harts.
        #[arg(long, default_value_t = 3)]
        smp: u32,
    },
    /// Start gdb-multiarch with gdb-scripts/kinspect.py loaded, connected to
    /// a kernel booted by `cargo xtask qemu --gdb PORT`.
    Gdb {
        /// The gdb stub's TCP port.
        #[arg(long, default_value_t = 1234)]
        port: u16,
        /// Go through `kinspect proxy` listening on this port, so that
        /// `kinspect --gdb :PROXY attach` (and any kinspect command) shares
        /// the machine with this gdb. The proxy ends with gdb.
        #[arg(long, value_name = "PROXY")]
        proxy: Option<u16>,
    },
    /// The main job: build the kernel and kinspect, boot the kernel under
    /// QEMU and open kinspect on it.
    Run,
    /// Run every benchmark against the real kernel under QEMU: boot and
    /// usertests time, bytes per second through the gdb stub, page-table
    /// walks, kinspect's whole-process times. Numbers are printed; docs/
    /// keeps the latest ones.
    Bench {
        /// Extra arguments for `cargo bench` (a bench name, say).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
    /// Build the C xv6 kernels the tests boot (stock xv6-riscv, the 2020
    /// pgtbl lab, lab solutions and classic bugs) into target/xv6/NAME/.
    Xv6 {
        /// Variants to build (default: every one in
        /// inspector/kinspect/tests/xv6/variants.toml).
        names: Vec<String>,
    },
    /// Install kinspect into cargo's bin directory (~/.cargo/bin, which
    /// rustup puts on PATH), so `kinspect` works in any terminal.
    Install {
        /// Install into ROOT/bin instead (cargo install's --root).
        #[arg(long, value_name = "ROOT")]
        root: Option<std::path::PathBuf>,
    },
    /// Run every test: the kernel's and kinspect's host unit tests, then the
    /// integration tests that boot the real kernel under the real QEMU.
    Test {
        /// Extra arguments passed to `cargo test` for the host workspace
        /// (for example a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Build => build::build_all().map(|_| ()),
        Cmd::Qemu { gdb, smp } => build::build_all().and_then(|out| build::qemu(&out, gdb, smp)),
        Cmd::Gdb { port, proxy } => build::gdb(port, proxy),
        Cmd::Run => build::run(),
        Cmd::Xv6 { names } => xv6::build(&names),
        Cmd::Install { root } => install::install(root),
        Cmd::Test { cargo_args } => test::run(&cargo_args),
        Cmd::Bench { cargo_args } => test::bench(&cargo_args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error for the person at the terminal: one line, no backtrace.
pub type Result<T> = std::result::Result<T, String>;
