//! The kernel's objects as plain host data: process slots, harts, and the
//! page-table roots, decoded from the symbol layer's lenient `Value`s.

use kinspect_sv39::{PhysAddr, Satp, SatpMode, VirtAddr};
use kinspect_symbols::Value;
use serde::Serialize;

/// A process slot's state. The names are xv6's; C spells them `RUNNING`,
/// the Rust kernel `Running`; both decode to the same variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcState {
    Unused,
    Used,
    Sleeping,
    Runnable,
    Running,
    Zombie,
    /// A value no enumerator names (a newer kernel, or corrupt memory):
    /// the number as stored.
    Unknown(i64),
}

impl ProcState {
    /// From a loaded enum value: by enumerator name, case-insensitively.
    pub fn from_value(v: &Value) -> ProcState {
        let name = v.variant().map(|s| s.to_ascii_lowercase());
        match name.as_deref() {
            Some("unused") => ProcState::Unused,
            Some("used") | Some("embryo") => ProcState::Used,
            Some("sleeping") => ProcState::Sleeping,
            Some("runnable") => ProcState::Runnable,
            Some("running") => ProcState::Running,
            Some("zombie") => ProcState::Zombie,
            _ => ProcState::Unknown(v.as_i64().unwrap_or(-1)),
        }
    }

    /// xv6's upper-case name (`SLEEPING`), or `?N`.
    pub fn name(&self) -> String {
        match self {
            ProcState::Unused => "UNUSED".into(),
            ProcState::Used => "USED".into(),
            ProcState::Sleeping => "SLEEPING".into(),
            ProcState::Runnable => "RUNNABLE".into(),
            ProcState::Running => "RUNNING".into(),
            ProcState::Zombie => "ZOMBIE".into(),
            ProcState::Unknown(n) => format!("?{n}"),
        }
    }

    /// The padded word xv6's procdump (Ctrl-P) prints, trimmed.
    pub fn procdump_name(&self) -> &'static str {
        match self {
            ProcState::Unused => "unused",
            ProcState::Used => "used",
            ProcState::Sleeping => "sleep",
            ProcState::Runnable => "runble",
            ProcState::Running => "run",
            ProcState::Zombie => "zombie",
            ProcState::Unknown(_) => "???",
        }
    }
}

/// One slot of the process table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Proc {
    /// Index in `proc[]`.
    pub slot: usize,
    /// Kernel address of `proc[slot]`.
    pub addr: u64,
    pub state: ProcState,
    pub pid: i64,
    pub name: String,
    /// `parent` as stored (a kernel address; 0 for none).
    pub parent: u64,
    /// The slot `parent` points at, when it points at one.
    pub parent_slot: Option<usize>,
    /// Kernel virtual address of the kernel stack (`KSTACK(slot)`).
    pub kstack: VirtAddr,
    pub sz: Option<u64>,
    /// User page-table root (physical), 0 when none.
    pub pagetable: PhysAddr,
    /// The per-process kernel page-table root, when the kernel has one.
    pub kpagetable: Option<PhysAddr>,
    /// Physical address of the trapframe page, 0 when none (a `kalloc`ed
    /// page: the kernel's pointer to it is its physical address).
    pub trapframe: Option<PhysAddr>,
    /// Saved `context.ra` / `context.sp` (where `swtch` resumes it).
    pub context_ra: Option<u64>,
    pub context_sp: Option<u64>,
    /// Sleep channel, 0 when not sleeping.
    pub chan: Option<u64>,
    pub killed: Option<bool>,
    pub xstate: Option<i64>,
}

impl Proc {
    pub fn is_live(&self) -> bool {
        self.state != ProcState::Unused
    }
}

/// One hart's `struct cpu`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub hart: usize,
    /// `cpus[hart].proc` as stored (0: idle, in the scheduler).
    pub proc: u64,
    /// The slot it points at.
    pub slot: Option<usize>,
    pub noff: Option<i64>,
    pub intena: Option<i64>,
}

/// Everything [`crate::model::Kernel::read_state`] reads in one go.
#[derive(Clone, Debug, Serialize)]
pub struct KernelState {
    /// Every slot of `proc[]` (UNUSED ones too), in slot order.
    pub procs: Vec<Proc>,
    /// Every element of `cpus[]`.
    pub cpus: Vec<Cpu>,
    /// `kernel_pagetable`'s value: the kernel's root page table.
    pub kernel_pagetable: PhysAddr,
    /// The name of the per-process kernel page-table field in use.
    pub kpagetable_field: Option<String>,
    /// How that field was found, and the other candidates.
    pub kpt: super::KptDetection,
    /// Address and element size of `proc[]`.
    pub proc_base: u64,
    pub proc_size: u64,
}

impl KernelState {
    /// Slots that are not UNUSED.
    pub fn live(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.is_live())
    }

    /// The live process with this pid.
    pub fn by_pid(&self, pid: i64) -> Option<&Proc> {
        self.live().find(|p| p.pid == pid)
    }

    /// The hart running this slot, from `cpus[h].proc`.
    pub fn hart_of(&self, slot: usize) -> Option<usize> {
        self.cpus
            .iter()
            .find(|c| c.slot == Some(slot))
            .map(|c| c.hart)
    }

    /// The pid of a process's parent.
    pub fn parent_pid(&self, p: &Proc) -> Option<i64> {
        p.parent_slot.and_then(|s| self.procs.get(s)).map(|q| q.pid)
    }

    /// The slot a kernel address of a `struct proc` names.
    pub fn slot_of_addr(&self, addr: u64) -> Option<usize> {
        slot_of(self.proc_base, self.proc_size, self.procs.len(), addr)
    }

    /// The harts (of `satps`: hart, satp value) whose Sv39 root is no table
    /// the model knows: not `kernel_pagetable`, not a process's user table,
    /// not a per-process kernel table. On a lab kernel whose per-process
    /// field was not recognised, running harts land here.
    pub fn unexplained_roots(&self, satps: &[(usize, Satp)]) -> Vec<(usize, PhysAddr)> {
        satps
            .iter()
            .filter(|(_, satp)| satp.mode() == SatpMode::Sv39)
            .map(|(h, satp)| (*h, satp.root()))
            .filter(|(_, root)| {
                *root != self.kernel_pagetable
                    && !self
                        .live()
                        .any(|p| p.pagetable == *root || p.kpagetable == Some(*root))
            })
            .collect()
    }

    /// The kernel page table a process runs on in the kernel: its own
    /// when the kernel has per-process tables, else `kernel_pagetable`.
    pub fn kernel_table_of(&self, p: &Proc) -> PhysAddr {
        match p.kpagetable {
            Some(k) if k.0 != 0 => k,
            _ => self.kernel_pagetable,
        }
    }
}

/// `(addr - base) / size` when `addr` is exactly the start of an element.
pub fn slot_of(base: u64, size: u64, count: usize, addr: u64) -> Option<usize> {
    let off = addr.checked_sub(base)?;
    if size == 0 || off % size != 0 {
        return None;
    }
    let i = usize::try_from(off / size).ok()?;
    (i < count).then_some(i)
}

/// A field as u64 if the struct has it and it is a number or pointer.
pub fn opt_u64(v: &Value, field: &str) -> Option<u64> {
    v.field(field).ok().and_then(|f| f.as_u64().ok())
}

/// A field as i64 if present.
pub fn opt_i64(v: &Value, field: &str) -> Option<i64> {
    v.field(field).ok().and_then(|f| f.as_i64().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinspect_symbols::EnumValue;

    fn e(name: Option<&str>, d: i128) -> Value {
        Value::Enum(EnumValue {
            type_name: "enum procstate".into(),
            variant: name.map(String::from),
            discriminant: d,
            payload: None,
        })
    }

    #[test]
    fn states_from_c_and_rust_names() {
        assert_eq!(
            ProcState::from_value(&e(Some("RUNNING"), 4)),
            ProcState::Running
        );
        assert_eq!(
            ProcState::from_value(&e(Some("Sleeping"), 2)),
            ProcState::Sleeping
        );
        assert_eq!(ProcState::from_value(&e(None, 9)), ProcState::Unknown(9));
        assert_eq!(ProcState::Unknown(9).name(), "?9");
    }

    #[test]
    fn unexplained_roots_are_the_tables_no_one_owns() {
        let proc = |slot: usize, state: ProcState, pagetable: u64, kpt: Option<u64>| Proc {
            slot,
            addr: 0,
            state,
            pid: slot as i64 + 1,
            name: String::new(),
            parent: 0,
            parent_slot: None,
            kstack: VirtAddr(0),
            sz: None,
            pagetable: PhysAddr(pagetable),
            kpagetable: kpt.map(PhysAddr),
            trapframe: None,
            context_ra: None,
            context_sp: None,
            chan: None,
            killed: None,
            xstate: None,
        };
        let s = KernelState {
            procs: vec![
                proc(0, ProcState::Running, 0x87f00000, Some(0x87f10000)),
                proc(1, ProcState::Unused, 0x87e00000, None),
            ],
            cpus: Vec::new(),
            kernel_pagetable: PhysAddr(0x87fff000),
            kpagetable_field: None,
            kpt: super::super::KptDetection::default(),
            proc_base: 0,
            proc_size: 0,
        };
        let sv39 = |root: u64| Satp::sv39(PhysAddr(root));
        let harts = [
            (0, sv39(0x87fff000)), // the kernel's
            (1, sv39(0x87f00000)), // a live process's user table
            (2, sv39(0x87f10000)), // its kernel table
            (3, sv39(0x87e00000)), // an UNUSED slot's: nobody's
            (4, Satp(0)),          // Bare: no table at all
        ];
        assert_eq!(s.unexplained_roots(&harts), [(3, PhysAddr(0x87e00000))]);
    }

    #[test]
    fn slot_of_needs_an_element_start() {
        assert_eq!(slot_of(0x1000, 0x100, 4, 0x1200), Some(2));
        assert_eq!(slot_of(0x1000, 0x100, 4, 0x1201), None);
        assert_eq!(slot_of(0x1000, 0x100, 4, 0x1400), None);
        assert_eq!(slot_of(0x1000, 0x100, 4, 0x0f00), None);
        assert_eq!(slot_of(0x1000, 0, 4, 0x1000), None);
    }
}
