//! The state of each pane and tab: the process table, the page-table,
//! backtrace, memory and console tabs, and the cursor and filter every
//! list has ([`List`]). Plain data; [`App`](super::app::App) holds one of
//! each.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use kinspect_sv39::{PhysAddr, VirtAddr, Walk};

use super::console::ConsoleBuf;
use super::snapshot::Backtrace;

/// A list's cursor and filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List {
    pub cursor: usize,
    /// Empty: everything shows.
    pub filter: String,
}

/// The process table.
#[derive(Clone, Debug, Default)]
pub struct ProcsPane {
    pub list: List,
    /// `a`: every slot of `proc[]`, not only used ones.
    pub show_all: bool,
}

/// The page-table tab (the maps tab shows the same table's ranges).
#[derive(Clone, Debug, Default)]
pub struct PageTableTab {
    pub list: List,
    /// `u`: the kernel page table instead of the user one.
    pub kernel: bool,
    /// Expanded entries: (root, level, va).
    pub expanded: HashSet<(PhysAddr, usize, VirtAddr)>,
    /// `e` was pressed while the walk was still on its way.
    pub expand_all_pending: bool,
}

/// The backtrace tab.
#[derive(Clone, Debug, Default)]
pub struct BacktraceTab {
    pub list: List,
    /// Chains of processes not on a hart, from their saved context, by
    /// slot; `None` while asked for.
    pub saved: HashMap<usize, Option<Result<Backtrace, String>>>,
}

/// The memory tab.
#[derive(Clone, Debug, Default)]
pub struct MemView {
    pub addr: VirtAddr,
    pub label: String,
    pub bytes: Vec<Option<u8>>,
    pub note: Option<String>,
    pub pending: bool,
    /// Read at least once for this snapshot.
    pub loaded: bool,
}

/// The console tab (launch): the guest's output and the scroll-back.
#[derive(Clone, Debug, Default)]
pub struct ConsoleTab {
    pub buf: ConsoleBuf,
    /// Lines scrolled back from the end.
    pub scroll: usize,
    /// When the guest last wrote (follow mode waits for quiet).
    pub last_output: Option<Instant>,
}

/// A walk the UI asked for.
#[derive(Clone, Debug)]
pub enum WalkState {
    Pending,
    Done(Arc<Walk>),
    Failed(String),
}
