//! QEMU's own crash dumps: the ELF core `dump-guest-memory FILE` writes,
//! read into a [`Snapshot`] so [`super::snapshot::SnapshotTarget`] serves
//! it like a `.kisnap`.
//!
//! What QEMU 7.2 puts in it for riscv64: one `NT_PRSTATUS` note per hart
//! (`pid` = hart + 1, then `pc, x1..x31` at offset 112 of the 376-byte
//! descriptor) and one `PT_LOAD` per RAM block at its *physical* address
//! (`p_paddr`). There are no CSRs: [`recover_satp`] fills in every hart's
//! satp from the kernel's `kernel_pagetable` and says so in a note, and
//! nothing else is made up (no priv, no sstatus, no scause).

use object::elf::{FileHeader64, ET_CORE, NT_PRSTATUS, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use super::Target;
use crate::snapshot::{HartRecord, Meta, Region, Snapshot, SnapshotError, PAGE};

/// `Meta::format` of a snapshot read from an ELF core.
pub const FORMAT: &str = "QEMU dump-guest-memory ELF core";

/// Where the registers start in riscv64's `elf_prstatus` as QEMU writes it
/// (target/riscv/arch_dump.c: 32 bytes, pid u32, 76 bytes, then pc, x1..x31).
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;
const PRSTATUS_LEN: usize = PRSTATUS_REGS + 32 * 8;
/// At most this much RAM in one PT_LOAD (bounded allocation for damaged files).
const MAX_LOAD: u64 = 4 << 30;

/// Does `bytes` start like an ELF file?
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Read an ELF core; `path` names the file in errors.
pub fn decode(bytes: &[u8], path: &str) -> Result<Snapshot, SnapshotError> {
    let corrupt = |what: String| SnapshotError::Corrupt {
        path: path.to_string(),
        what,
    };
    let header = FileHeader64::<Endianness>::parse(bytes)
        .map_err(|e| corrupt(format!("not a 64-bit ELF core: {e}")))?;
    let endian = header
        .endian()
        .map_err(|e| corrupt(format!("ELF header: {e}")))?;
    if header.e_type(endian) != ET_CORE {
        return Err(corrupt(
            "an ELF file but not a core dump (a kernel ELF given as the snapshot?)".into(),
        ));
    }
    let phdrs = header
        .program_headers(endian, bytes)
        .map_err(|e| corrupt(format!("program headers: {e}")))?;
    let mut harts = Vec::new();
    let mut regions = Vec::new();
    for ph in phdrs {
        if let Some(mut notes) = ph
            .notes(endian, bytes)
            .map_err(|e| corrupt(format!("notes: {e}")))?
        {
            while let Some(note) = notes.next().map_err(|e| corrupt(format!("a note: {e}")))? {
                if note.name() != b"CORE" || note.n_type(endian) != NT_PRSTATUS {
                    continue;
                }
                let d = note.desc();
                if d.len() < PRSTATUS_LEN {
                    return Err(corrupt(format!(
                        "an NT_PRSTATUS note has {} bytes, riscv64's has {PRSTATUS_LEN}",
                        d.len()
                    )));
                }
                let word = |i: usize| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&d[PRSTATUS_REGS + 8 * i..PRSTATUS_REGS + 8 * i + 8]);
                    u64::from_le_bytes(a)
                };
                let mut pid = [0u8; 4];
                pid.copy_from_slice(&d[PRSTATUS_PID..PRSTATUS_PID + 4]);
                let pid = u32::from_le_bytes(pid) as usize;
                let mut x = vec![0u64; 32];
                for (i, r) in x.iter_mut().enumerate().skip(1) {
                    *r = word(i);
                }
                harts.push(HartRecord {
                    // QEMU numbers them cpu_index + 1.
                    hart: pid.saturating_sub(1),
                    x,
                    pc: word(0),
                    csrs: Default::default(),
                });
            }
            continue;
        }
        if ph.p_type(endian) != PT_LOAD {
            continue;
        }
        let pa = ph.p_paddr(endian);
        let memsz = ph.p_memsz(endian);
        let data = ph
            .data(endian, bytes)
            .map_err(|_| SnapshotError::Truncated {
                path: path.to_string(),
                what: format!("the PT_LOAD at physical {pa:#x} runs past the end of the file"),
            })?;
        if pa % PAGE != 0 || memsz > MAX_LOAD {
            return Err(corrupt(format!(
                "a PT_LOAD at physical {pa:#x} of {memsz:#x} bytes"
            )));
        }
        let pages = memsz.div_ceil(PAGE) as usize;
        let mut r = Region::new(pa, pages);
        // Pages wholly in the file are present; the rest were not dumped.
        let whole = data.len() / PAGE as usize;
        r.data[..whole * PAGE as usize].copy_from_slice(&data[..whole * PAGE as usize]);
        for p in r.present.iter_mut().take(whole) {
            *p = true;
        }
        regions.push(r);
    }
    if harts.is_empty() {
        return Err(corrupt(
            "the core has no NT_PRSTATUS note (no registers)".into(),
        ));
    }
    harts.sort_by_key(|h| h.hart);
    regions.sort_by_key(|r| r.base);
    Ok(Snapshot {
        meta: Meta {
            format: FORMAT.into(),
            source: path.to_string(),
            notes: vec![
                "a QEMU ELF core has no CSRs: satp is recovered from the kernel, priv, sstatus and scause are unknown".into(),
            ],
            ..Meta::default()
        },
        harts,
        regions,
    })
}

/// Fill in every hart's satp from the kernel's `kernel_pagetable` (found at
/// `kernel_pagetable_va`, identity-mapped like all of xv6's kernel data),
/// as Sv39 with ASID 0: what `kvminithart` writes. Returns the one-line
/// note to show the user, or why it could not be done.
pub fn recover_satp(
    target: &mut super::snapshot::SnapshotTarget,
    kernel_pagetable_va: u64,
) -> Result<String, String> {
    let root = target
        .read_phys_u64(kernel_pagetable_va)
        .map_err(|e| format!("reading kernel_pagetable: {e}"))?;
    if root == 0 || root % PAGE != 0 {
        return Err(format!(
            "kernel_pagetable is {root:#x}: the kernel had not made its page table yet"
        ));
    }
    let satp = (8u64 << 60) | (root >> 12);
    for h in &mut target.snapshot_mut().harts {
        h.csrs.insert("satp".into(), satp);
    }
    Ok(format!(
        "QEMU ELF core: no CSRs saved (priv/sstatus/scause are unknown); every hart's satp is taken from kernel_pagetable ({root:#x})"
    ))
}

/// Refine [`recover_satp`] from the process table: a hart whose
/// `cpus[h].proc` is set and whose pc is in the kernel (at or above
/// `kernbase`) was translating through that process's kernel page table
/// (`kpagetable`, when the kernel has one); one whose pc is below it, in
/// user mode, through the process's user table. Returns one note per hart
/// changed, saying where its satp came from.
pub fn refine_satp(
    target: &mut super::snapshot::SnapshotTarget,
    syms: &kinspect_symbols::Symbols,
    profile: crate::model::Profile,
    ram: kinspect_sv39::Ram,
) -> Vec<String> {
    use crate::model::{Kernel, PhysCache};
    let Ok(kernel) = Kernel::new(syms, profile) else {
        return Vec::new();
    };
    let state = {
        let mut phys = PhysCache::new(&mut *target);
        match kernel.read_state(&mut phys, ram) {
            Ok(s) => s,
            Err(_) => return Vec::new(),
        }
    };
    let mut notes = Vec::new();
    for h in &mut target.snapshot_mut().harts {
        let Some(slot) = state
            .cpus
            .iter()
            .find(|c| c.hart == h.hart)
            .and_then(|c| c.slot)
        else {
            continue;
        };
        let Some(p) = state.procs.iter().find(|p| p.slot == slot) else {
            continue;
        };
        let (root, what) = if h.pc >= ram.base {
            match p.kpagetable {
                Some(k) if k != 0 => (k, "kernel page table"),
                _ => continue,
            }
        } else {
            (p.pagetable, "user page table")
        };
        if root == 0 || root % PAGE != 0 {
            continue;
        }
        h.csrs.insert("satp".into(), (8u64 << 60) | (root >> 12));
        notes.push(format!(
            "hart {} from pid {} ({})'s {what} {root:#x} (cpus[{}].proc, pc {:#x})",
            h.hart, p.pid, p.name, h.hart, h.pc
        ));
    }
    notes
}
