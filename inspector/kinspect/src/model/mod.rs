//! The kernel-objects model: process slots, harts, kernel stacks, page-table
//! roots, the free list and "who owns this physical page", read from a
//! live or saved machine and found by DWARF name and field only.
//!
//! It sits between the [`Target`](crate::target::Target) (physical memory,
//! halted) plus the symbol layer (`kinspect-symbols`: the ELF's DWARF) and
//! the views (`procs`, `check`, `translate --pid`, the TUI, post-mortems):
//!
//! ```text
//!  kernel.elf ─► kinspect_symbols::Symbols ─┐
//!                         Profile (names) ──┼─► Kernel::new ─► Kernel
//!  Target ─► PhysCache (pages, read once) ──┘         │
//!                                                     ├─ read_state ─► KernelState { procs, cpus, kernel_pagetable }
//!                                                     ├─ kstack      ─► Kstack { pa, flags, guard_mapped }
//!                                                     ├─ select      ─► Table (root + what it is) for --pid/--kernel-pt/--kernel
//!                                                     ├─ free_list   ─► FreeList { pages, problem }
//!                                                     └─ PhysMap::build ─► owners(pa): kernel text/data, kstack,
//!                                                          trapframe, page-table page, user page, free
//! ```
//!
//! Using it (the TUI and post-mortem views do exactly this):
//!
//! ```no_run
//! # use kinspect::model::{Kernel, PhysCache, PhysMap, Profile};
//! # fn f(syms: &kinspect_symbols::Symbols, target: &mut dyn kinspect::target::Target)
//! #   -> Result<(), kinspect::model::ModelError> {
//! let kernel = Kernel::new(syms, Profile::default())?;
//! let mut phys = PhysCache::new(target);                 // halted: one consistent picture
//! let ram = kinspect_sv39::Ram::default();
//! let state = kernel.read_state(&mut phys, ram)?;        // one bulk read of proc[] and cpus[]
//! for p in state.live() {
//!     let ks = kernel.kstack(&mut phys, &state, p, ram)?; // kstack PA, guard page
//!     println!("{} {} {} {:?} {:?}", p.pid, p.state.name(), p.name, ks.pa, state.hart_of(p.slot));
//! }
//! let map = PhysMap::build(&kernel, &mut phys, &state, ram)?;
//! for owner in map.owners(kinspect_sv39::PhysAddr(0x87f6_a000)) { println!("{owner}"); }
//! # Ok(()) }
//! ```
//!
//! Rules: no offsets or sizes are hard-coded (the two memlayout constants
//! TRAMPOLINE and TRAPFRAME come from the [`Profile`]); every loop over
//! target data is bounded; nothing here panics on what it reads; the
//! transport failing is an error ([`ModelError::Target`]), a strange
//! kernel is a finding.

pub mod check;
pub mod kalloc;
pub mod kpt;
pub mod mem;
pub mod owner;
pub mod profile;
pub mod state;

use kinspect_sv39::{translate, PhysAddr, Pte, Ram, StepOutcome, VirtAddr, WalkLimits};
use kinspect_symbols::{SymbolError, Symbols, TypeId, TypeKind, Value};
use serde::Serialize;

use crate::target::TargetError;

pub use kalloc::{FreeList, FreeListProblem};
pub use kpt::{KptDetection, KptHow};
pub use mem::{lost, split_lost, KernelMemory, PhysCache, VaError};
pub use owner::{Owner, PhysMap, TableOf};
pub use profile::{KptChoice, Profile};
pub use state::{Cpu, KernelState, Proc, ProcState};

/// Why the model could not be built or read. The first group are the
/// ELF's fault (it lacks what the model needs: the CLI's "bad input"),
/// [`ModelError::Target`] is the transport's, the rest the kernel memory's.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ELF has no DWARF at all.
    #[error("{file} has no DWARF debug info, which the kernel model needs: build the kernel with gcc -g / debug = 2")]
    NoDebugInfo { file: String },
    /// A global, member or type the model needs is missing or unreadable
    /// in the DWARF (`what` names what was looked for).
    #[error("{what}: {source}")]
    Symbol {
        what: String,
        #[source]
        source: SymbolError,
    },
    /// A global the model needs has no DWARF type; `file` is named where
    /// the model found the global by name.
    #[error("`{name}` has no DWARF type{}", in_file(.file))]
    Untyped { name: String, file: Option<String> },
    /// A global that must be an array (`proc`, `cpus`) is not one.
    #[error("`{name}` is a `{ty}`, not an array")]
    NotArray { name: String, ty: String },
    /// An array global without a length.
    #[error("`{name}` has no length")]
    NoLength { name: String },
    /// The free list's type is not xv6's (`struct run *` with `next`);
    /// `why` says what is wrong.
    #[error("{0}")]
    FreeListType(String),
    /// The machine runs another kernel than the ELF (see [`verify_image`]).
    #[error("the running kernel is not {file}: the code of `{function}` at {addr:#x} differs (rebuilt since QEMU started?); give --elf the running kernel's ELF")]
    ImageMismatch {
        file: String,
        function: &'static str,
        addr: u64,
    },
    /// The target failed (connection lost, ...).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Kernel memory could not be read or decoded as its DWARF type.
    #[error(transparent)]
    Load(SymbolError),
    /// A loaded value is not what the model expects (`what`: the object,
    /// `proc[3].kstack`).
    #[error("{what}: {source}")]
    Value {
        what: String,
        #[source]
        source: SymbolError,
    },
    /// `--pid N` names no live process.
    #[error("no process with pid {pid} (live pids: {})", pid_list(.live))]
    NoSuchPid { pid: i64, live: Vec<i64> },
    /// `--pid N`: the process has no user page table.
    #[error("{who} has no user page table (pagetable is 0)")]
    NoUserTable { who: String },
    /// `--pid N --kernel-pt`: the process's kernel page table is not set yet.
    #[error("{who} has no kernel page table yet ({field} is 0)")]
    NoKernelTable { who: String, field: String },
}

impl ModelError {
    /// Is this about what the user or the ELF gave (as opposed to the
    /// machine or its memory)?
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ModelError::NoDebugInfo { .. }
                | ModelError::Symbol { .. }
                | ModelError::Untyped { .. }
                | ModelError::NotArray { .. }
                | ModelError::NoLength { .. }
                | ModelError::FreeListType(_)
                | ModelError::ImageMismatch { .. }
        )
    }

    /// Does it name a table `--pid`/`--kernel` cannot select?
    pub fn is_selection(&self) -> bool {
        matches!(
            self,
            ModelError::NoSuchPid { .. }
                | ModelError::NoUserTable { .. }
                | ModelError::NoKernelTable { .. }
        )
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// ` in FILE (build ... with debug info)`, or nothing.
fn in_file(file: &Option<String>) -> String {
    file.as_ref()
        .map(|f| format!(" in {f} (build the kernel with debug info: gcc -g / debug = 2)"))
        .unwrap_or_default()
}

/// `1 2 3`, or `none`.
fn pid_list(live: &[i64]) -> String {
    if live.is_empty() {
        return "none".into();
    }
    let pids: Vec<String> = live.iter().map(|p| p.to_string()).collect();
    pids.join(" ")
}

fn sym_err(what: &str, e: SymbolError) -> ModelError {
    ModelError::Symbol {
        what: what.to_string(),
        source: e,
    }
}

/// A loaded value that is not what the model expects.
fn value_err(what: String, e: SymbolError) -> ModelError {
    ModelError::Value { what, source: e }
}

/// Functions whose code depends on `struct proc`'s layout, compared with
/// the ELF to make sure the running kernel is the one described.
const IDENTITY_FUNCTIONS: [&str; 5] = ["procdump", "allocproc", "freeproc", "scheduler", "sleep"];

/// At most this many processes' values confirm a page-table candidate.
const MAX_CONFIRM: usize = 8;

/// An array global's element type and length.
struct ArrayInfo {
    addr: u64,
    ty: TypeId,
    element: TypeId,
    len: u64,
    element_size: u64,
}

fn array_global(syms: &Symbols, name: &str) -> Result<ArrayInfo> {
    if !syms.has_debug_info() {
        return Err(ModelError::NoDebugInfo {
            file: syms.file_name().to_string(),
        });
    }
    let g = syms
        .global(name)
        .map_err(|e| sym_err(&format!("the kernel's `{name}`"), e))?;
    let ty = g.ty.ok_or_else(|| ModelError::Untyped {
        name: name.to_string(),
        file: Some(syms.file_name().to_string()),
    })?;
    let t = syms.resolve(ty).map_err(|e| sym_err(name, e))?;
    let TypeKind::Array { element, len } = t.kind else {
        return Err(ModelError::NotArray {
            name: name.to_string(),
            ty: syms.type_name(ty),
        });
    };
    let len = len.ok_or_else(|| ModelError::NoLength {
        name: name.to_string(),
    })?;
    let element_size = syms.size_of(element).map_err(|e| sym_err(name, e))?;
    Ok(ArrayInfo {
        addr: g.addr,
        ty,
        element,
        len,
        element_size,
    })
}

/// The kernel's objects as one kernel's DWARF describes them. Cheap to
/// build: it resolves names and types, it reads no memory.
pub struct Kernel<'s> {
    pub syms: &'s Symbols,
    pub profile: Profile,
    proc: ArrayInfo,
    cpus: Option<ArrayInfo>,
    kernel_pagetable: (u64, TypeId),
    /// Members of `struct proc` that could be the per-process kernel
    /// page table, by type ([`kpt::candidates`]); memory decides.
    kpt_candidates: Vec<String>,
}

impl<'s> Kernel<'s> {
    /// Find `proc`, `cpus`, `kernel_pagetable` and the candidates for the
    /// per-process kernel page-table field (by type; [`Kernel::read_state`]
    /// confirms one from memory). `proc` and `kernel_pagetable` are required.
    pub fn new(syms: &'s Symbols, profile: Profile) -> Result<Kernel<'s>> {
        let proc = array_global(syms, &profile.proc)?;
        for field in ["state", "pid", "kstack", "pagetable", "name"] {
            syms.member(proc.element, field)
                .map_err(|e| sym_err(&format!("`{}[]`", profile.proc), e))?;
        }
        let cpus = array_global(syms, &profile.cpus).ok();
        let kpt = syms
            .global(&profile.kernel_pagetable)
            .map_err(|e| sym_err("the kernel's root page table", e))?;
        let kpt_ty = kpt.ty.ok_or_else(|| ModelError::Untyped {
            name: profile.kernel_pagetable.clone(),
            file: None,
        })?;
        let kpt_candidates = match &profile.kpt {
            KptChoice::Detect => kpt::candidates(syms, proc.element, &profile.kpagetable_fields),
            KptChoice::Named(f) => {
                // Named explicitly (--kpt-field) but not there: say so.
                syms.member(proc.element, f)
                    .map_err(|e| sym_err("--kpt-field", e))?;
                vec![f.clone()]
            }
            KptChoice::NoField => Vec::new(),
        };
        Ok(Kernel {
            syms,
            profile,
            proc,
            cpus,
            kernel_pagetable: (kpt.addr, kpt_ty),
            kpt_candidates,
        })
    }

    /// NPROC, from the array's DWARF length.
    pub fn nproc(&self) -> u64 {
        self.proc.len
    }

    /// The members of `struct proc` that could be the per-process kernel
    /// page table (by type, or the one `--kpt-field` names).
    pub fn kpt_candidates(&self) -> &[String] {
        &self.kpt_candidates
    }

    /// Which candidate is the per-process kernel page table, from the
    /// loaded `proc[]` elements.
    fn detect_kpt(
        &self,
        phys: &mut PhysCache<'_>,
        ram: Ram,
        kernel_pagetable: PhysAddr,
        items: &[Value],
    ) -> KptDetection {
        match &self.profile.kpt {
            KptChoice::Named(f) => KptDetection {
                field: Some(f.clone()),
                how: Some(KptHow::Named),
                candidates: vec![f.clone()],
                rejected: Vec::new(),
            },
            KptChoice::NoField => KptDetection {
                how: Some(KptHow::Named),
                ..KptDetection::default()
            },
            KptChoice::Detect => kpt::confirm(
                phys,
                ram,
                kernel_pagetable,
                items,
                self.kpt_candidates.clone(),
            ),
        }
    }

    fn mem<'c, 't>(&self, phys: &'c mut PhysCache<'t>, ram: Ram) -> KernelMemory<'c, 't> {
        KernelMemory {
            phys,
            ram,
            root: None,
        }
    }

    fn load(&self, phys: &mut PhysCache<'_>, ram: Ram, addr: u64, ty: TypeId) -> Result<Value> {
        let mut mem = self.mem(phys, ram);
        // `addr` is a DWARF address: a kernel virtual address.
        let r = self.syms.load(&mut mem, addr, ty);
        mem::split_lost(r)?.map_err(ModelError::Load)
    }

    /// Check that the machine runs the kernel this ELF describes: see
    /// [`verify_image`].
    pub fn verify_image(&self, phys: &mut PhysCache<'_>) -> Result<()> {
        verify_image(self.syms, phys)
    }

    /// Read `kernel_pagetable`, all of `proc[]` (one read) and `cpus[]`,
    /// after [`Kernel::verify_image`].
    pub fn read_state(&self, phys: &mut PhysCache<'_>, ram: Ram) -> Result<KernelState> {
        self.verify_image(phys)?;
        let (kaddr, kty) = self.kernel_pagetable;
        let kernel_pagetable = self
            .load(phys, ram, kaddr, kty)?
            .as_u64()
            .map(PhysAddr)
            .map_err(|e| value_err("`kernel_pagetable`".into(), e))?;
        let table = self.load(phys, ram, self.proc.addr, self.proc.ty)?;
        let kpt = self.detect_kpt(phys, ram, kernel_pagetable, table.items());
        let mut procs = Vec::with_capacity(table.items().len());
        for (slot, v) in table.items().iter().enumerate() {
            procs.push(self.decode_proc(slot, v, kpt.field.as_deref())?);
        }
        let mut cpus = Vec::new();
        if let Some(c) = &self.cpus {
            let arr = self.load(phys, ram, c.addr, c.ty)?;
            for (hart, v) in arr.items().iter().enumerate() {
                let proc = state::opt_u64(v, "proc").unwrap_or(0);
                cpus.push(Cpu {
                    hart,
                    proc,
                    slot: state::slot_of(self.proc.addr, self.proc.element_size, procs.len(), proc),
                    noff: state::opt_i64(v, "noff"),
                    intena: state::opt_i64(v, "intena"),
                });
            }
        }
        Ok(KernelState {
            procs,
            cpus,
            kernel_pagetable,
            kpagetable_field: kpt.field.clone(),
            kpt,
            proc_base: self.proc.addr,
            proc_size: self.proc.element_size,
        })
    }

    fn decode_proc(&self, slot: usize, v: &Value, kpt_field: Option<&str>) -> Result<Proc> {
        let need = |f: &str| -> Result<&Value> {
            v.field(f)
                .map_err(|e| value_err(format!("proc[{slot}]"), e))
        };
        let num = |f: &str| -> Result<u64> {
            need(f)?
                .as_u64()
                .map_err(|e| value_err(format!("proc[{slot}].{f}"), e))
        };
        let parent = state::opt_u64(v, "parent").unwrap_or(0);
        let context = v.field("context").ok();
        Ok(Proc {
            slot,
            addr: self.proc.addr + slot as u64 * self.proc.element_size,
            state: ProcState::from_value(need("state")?),
            pid: need("pid")?.as_i64().unwrap_or(-1),
            name: need("name")?.as_cstr().unwrap_or_default(),
            parent,
            parent_slot: state::slot_of(
                self.proc.addr,
                self.proc.element_size,
                self.proc.len as usize,
                parent,
            ),
            kstack: VirtAddr(num("kstack")?),
            sz: state::opt_u64(v, "sz"),
            pagetable: PhysAddr(num("pagetable")?),
            kpagetable: kpt_field.and_then(|f| state::opt_u64(v, f)).map(PhysAddr),
            trapframe: state::opt_u64(v, "trapframe").map(PhysAddr),
            context_ra: context.and_then(|c| state::opt_u64(c, "ra")),
            context_sp: context.and_then(|c| state::opt_u64(c, "sp")),
            chan: state::opt_u64(v, "chan"),
            killed: v.field("killed").ok().and_then(|k| k.as_bool().ok()),
            xstate: state::opt_i64(v, "xstate"),
        })
    }

    /// Where a process's kernel stack is: translated through the table
    /// the process runs on in the kernel, and whether the guard page
    /// below it is mapped.
    pub fn kstack(
        &self,
        phys: &mut PhysCache<'_>,
        state: &KernelState,
        p: &Proc,
        ram: Ram,
    ) -> Result<Kstack> {
        let table = state.kernel_table_of(p);
        let stack = va_in(phys, table, p.kstack, ram)?;
        let guard_va = VirtAddr(p.kstack.0.wrapping_sub(4096));
        let guard = va_in(phys, table, guard_va, ram)?;
        Ok(Kstack {
            va: p.kstack,
            table,
            pa: stack.map(|(pa, _)| pa),
            pte: stack.map(|(_, pte)| pte),
            guard_va,
            guard_mapped: guard.is_some(),
        })
    }

    /// The page table `--pid N [--kernel-pt]` or `--kernel` names.
    pub fn select(&self, state: &KernelState, sel: TableSel) -> Result<Table> {
        match sel {
            TableSel::Kernel => Ok(Table {
                root: state.kernel_pagetable,
                of: TableOf::Kernel,
                describe: format!("kernel_pagetable {:#x}", state.kernel_pagetable),
            }),
            TableSel::User { pid } | TableSel::ProcKernel { pid } => {
                let p = state.by_pid(pid).ok_or_else(|| ModelError::NoSuchPid {
                    pid,
                    live: state.live().map(|p| p.pid).collect(),
                })?;
                let who = format!("pid {} ({}, slot {})", p.pid, p.name, p.slot);
                if matches!(sel, TableSel::User { .. }) {
                    if p.pagetable.0 == 0 {
                        return Err(ModelError::NoUserTable { who });
                    }
                    return Ok(Table {
                        root: p.pagetable,
                        of: TableOf::User { slot: p.slot, pid },
                        describe: format!("{who} user page table {:#x}", p.pagetable),
                    });
                }
                match (state.kpagetable_field.as_deref(), p.kpagetable) {
                    (Some(f), Some(k)) if k.0 != 0 => Ok(Table {
                        root: k,
                        of: TableOf::ProcKernel { slot: p.slot, pid },
                        describe: format!("{who} kernel page table ({f}) {k:#x}"),
                    }),
                    (Some(f), _) => Err(ModelError::NoKernelTable {
                        who,
                        field: f.to_string(),
                    }),
                    (None, _) => Ok(Table {
                        root: state.kernel_pagetable,
                        of: TableOf::Kernel,
                        describe: format!(
                            "kernel_pagetable {:#x} (this kernel has no per-process kernel page table; {who} runs on it)",
                            state.kernel_pagetable
                        ),
                    }),
                }
            }
        }
    }

    /// Walk limits for this RAM.
    pub fn limits(ram: Ram) -> WalkLimits {
        WalkLimits {
            ram,
            ..WalkLimits::default()
        }
    }
}

/// Check that the machine runs the kernel this ELF describes, before
/// trusting its symbols or layouts: the code of a few functions that touch
/// the process table (procdump, allocproc, scheduler, ... whichever the
/// ELF has, up to 4 KiB each) must be byte for byte what the ELF says. A
/// kernel rebuilt since QEMU started fails here instead of printing
/// garbage. Unreadable memory is not a mismatch (nothing to compare).
pub fn verify_image(syms: &Symbols, phys: &mut PhysCache<'_>) -> Result<()> {
    let mut image = syms.file_memory();
    for name in IDENTITY_FUNCTIONS {
        let Some(sym) = syms.elf_symbol(name) else {
            continue;
        };
        let len = sym.size.clamp(1, 4096) as usize;
        let mut want = vec![0u8; len];
        if kinspect_symbols::Memory::read(&mut image, sym.addr, &mut want).is_err() {
            continue;
        }
        let mut have = vec![0u8; len];
        // The kernel's text is linked at its physical address (the direct map).
        match phys.read(PhysAddr(sym.addr), &mut have) {
            Ok(()) => {}
            Err(None) => continue,
            Err(Some(e)) => return Err(ModelError::Target(e)),
        }
        if have != want {
            return Err(ModelError::ImageMismatch {
                file: syms.file_name().to_string(),
                function: name,
                addr: sym.addr,
            });
        }
    }
    Ok(())
}

/// Which kernel page table a selector names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSel {
    /// `--kernel`: `kernel_pagetable`.
    Kernel,
    /// `--pid N`: that process's user page table.
    User { pid: i64 },
    /// `--pid N --kernel-pt`: its kernel page table.
    ProcKernel { pid: i64 },
}

/// A page table the model resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Table {
    pub root: PhysAddr,
    pub of: TableOf,
    /// One line: `pid 3 (sh, slot 2) user page table 0x87f4e000`.
    pub describe: String,
}

/// A kernel stack, as its process's kernel page table maps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Kstack {
    pub va: VirtAddr,
    /// The table it was translated through.
    pub table: PhysAddr,
    /// Physical address; `None` when not mapped.
    pub pa: Option<PhysAddr>,
    /// The leaf PTE.
    pub pte: Option<Pte>,
    pub guard_va: VirtAddr,
    pub guard_mapped: bool,
}

/// Translate `va` through `root`: `Some((pa, leaf pte))` or `None` when
/// the hart would fault. Only a transport failure is an error.
pub fn va_in(
    phys: &mut PhysCache<'_>,
    root: PhysAddr,
    va: VirtAddr,
    ram: Ram,
) -> Result<Option<(PhysAddr, Pte)>> {
    match translate(phys, root, va, ram) {
        Ok(t) => Ok(match t.outcome {
            StepOutcome::Mapped { pa, pte, .. } => Some((pa, pte)),
            StepOutcome::Fault { .. } => None,
        }),
        Err(e) => Err(ModelError::Target(e)),
    }
}
