//! Views: pure functions from model data to what a person or a program
//! reads, shared by the command line, the TUI and `serve` (whose gdb
//! `monitor` runs the command line's commands).
//!
//! ```text
//!  Target ─► Sv39 / kernel model / symbols ─► data (Translation, GeneralRegs + CSRs, KernelState)
//!                                                 │
//!                          views::{translate, regs, procs}: data in, a struct out
//!                                                 │
//!                 ┌───────────────────────────────┼──────────────────────────┐
//!            --json (serde)               text lines (CLI)           the TUI's lines
//! ```
//!
//! Nothing here reads a target or prints: a command gathers the data,
//! builds the view's struct, then writes its JSON or its lines. The structs
//! are the `--json` schema, so a field added here is a field added there.

pub mod procs;
pub mod regs;
pub mod translate;

use kinspect_sv39::{PhysAddr, SatpMode};
use serde::Serialize;

use crate::target::Hart;

/// The page table a command walks, and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct Root {
    /// The hart whose satp named it, if any.
    pub hart: Option<Hart>,
    /// The satp value, if the table was named by one.
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub satp: Option<u64>,
    pub mode: SatpMode,
    /// The root page table's physical address.
    pub root: PhysAddr,
    /// What the kernel says this table is (`--pid`, `--kernel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl Root {
    /// One line for headers: `hart 0 satp 0x8000000000087fff (Sv39, root 0x87fff000)`.
    pub fn describe(&self) -> String {
        if let Some(t) = &self.table {
            return t.clone();
        }
        let mut s = String::new();
        if let Some(h) = self.hart {
            s.push_str(&format!("hart {h} "));
        }
        match self.satp {
            Some(v) => s.push_str(&format!(
                "satp {v:#018x} ({}, root {:#x})",
                self.mode, self.root
            )),
            None => s.push_str(&format!("root {:#x}", self.root)),
        }
        s
    }
}
