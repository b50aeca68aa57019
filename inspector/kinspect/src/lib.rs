//! kinspect: a kernel inspector for xv6-style kernels on QEMU's riscv64 `virt`.
//!
//! Data flows from a [`target::Target`] (live QEMU gdb stub, snapshot file)
//! through the Sv39 and kernel models to views (text, `--json`, TUI).

pub mod arch;
pub mod cli;
pub mod commands;
pub mod diff;
pub mod error;
pub mod live;
pub mod model;
pub mod parse;
pub mod postmortem;
pub mod proxy;
pub mod serve;
pub mod session;
pub mod snapshot;
pub mod symbolize;
pub mod target;
pub mod trace;
pub mod tui;
pub mod views;
pub mod words;
