//! Opening a snapshot for the invocation's kernel ELF: the global
//! `--snapshot FILE` (any read-only command, the TUI) and `serve FILE`.
//!
//! [`open`] reads the file as a [`SnapshotTarget`], refuses one from
//! another kernel build than the session's ELF, and recovers satp for a
//! QEMU ELF core (which has no CSRs) from the kernel's page-table roots.
//! Every snapshot problem is one line and exit code
//! [`crate::error::exit::BAD_SNAPSHOT`].

use std::io::Write;
use std::path::Path;

use super::{identity, KernelId};
use crate::error::{Error, Result};
use crate::model::{Kernel, PhysCache, Profile};
use crate::session::Session;
use crate::target::elfcore;
use crate::target::snapshot::SnapshotTarget;
use crate::target::Target;
use kinspect_sv39::{Ram, Satp};

/// The identity of the session's ELF (`None` without one).
pub fn kernel_id(session: &Session) -> Result<Option<KernelId>> {
    let Some(elf) = &session.elf else {
        return Ok(None);
    };
    let id = match session.symbols() {
        Some(syms) => identity::of_elf(syms.data(), Some(&elf.display().to_string()))
            .map_err(|e| format!("{}: {e}", elf.display())),
        None => identity::of_elf_file(elf),
    };
    id.map(Some).map_err(Error::BadInput)
}

/// Open `path` for the session's ELF: check the kernel identity, recover
/// satp for QEMU cores. Notes for the user are written to `warn`.
pub fn open(session: &Session, path: &Path, warn: &mut dyn Write) -> Result<SnapshotTarget> {
    let mut t = SnapshotTarget::open(path)?;
    let id = kernel_id(session)?;
    if let (Some(elf), Some(id)) = (&session.elf, &id) {
        t.snapshot()
            .check_kernel(&path.display().to_string(), &elf.display().to_string(), id)?;
    }
    if t.meta().format == elfcore::FORMAT {
        if let (Some(elf), Some(id)) = (&session.elf, &id) {
            check_core_build_id(&mut t, session, path, elf, id)?;
        }
        let syms = session.symbols();
        let va = syms
            .and_then(|s| s.elf_symbol("kernel_pagetable"))
            .map(|s| s.addr);
        match (va, syms) {
            (Some(va), Some(syms)) => {
                let mut note = recover_satp(&mut t, va)
                    .map_err(|e| Error::Snapshot(format!("{}: {e}", path.display())))?;
                let refined = refine_satp(&mut t, syms, session.profile.clone(), session.ram);
                if !refined.is_empty() {
                    note.push_str("; except ");
                    note.push_str(&refined.join(", "));
                }
                t.snapshot_mut().meta.notes = vec![note.clone()];
                writeln!(warn, "kinspect: note: {note}")?;
            }
            _ => writeln!(
                warn,
                "kinspect: note: a QEMU ELF core has no CSRs, and without the kernel ELF (--elf) satp cannot be recovered"
            )?,
        }
    } else {
        for n in &t.meta().notes {
            writeln!(warn, "kinspect: note: {n}")?;
        }
    }
    Ok(t)
}

/// A QEMU core carries no identity of its own, but a kernel that loads its
/// GNU build-id note into RAM (symbol `build_id`: namesz, descsz, type,
/// "GNU\0", then the id at `build_id + 16`; docs/kernel-contract.md)
/// carries it in the core's memory: compare that with the ELF's note.
fn check_core_build_id(
    t: &mut SnapshotTarget,
    session: &Session,
    path: &Path,
    elf: &Path,
    id: &KernelId,
) -> Result<()> {
    let Some(want) = &id.build_id else {
        return Ok(());
    };
    let Some(addr) = session
        .symbols()
        .and_then(|s| s.elf_symbol("build_id"))
        .map(|s| s.addr)
    else {
        return Ok(());
    };
    let mut got = vec![0u8; want.len() / 2];
    if t.read_phys(addr.wrapping_add(16), &mut got).is_err() {
        return Ok(());
    }
    let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
    if &got != want {
        return Err(Error::Snapshot(format!(
            "{} holds a kernel with build id {got}, but {} has build id {want}: pass the kernel it was taken of with --elf",
            path.display(),
            elf.display()
        )));
    }
    Ok(())
}

/// Fill in every hart's satp from the kernel's `kernel_pagetable` (found at
/// `kernel_pagetable_va`, identity-mapped like all of xv6's kernel data),
/// as Sv39 with ASID 0: what `kvminithart` writes. Returns the one-line
/// note to show the user, or why it could not be done.
pub fn recover_satp(
    target: &mut SnapshotTarget,
    kernel_pagetable_va: u64,
) -> std::result::Result<String, String> {
    let root = target
        .read_phys_u64(kernel_pagetable_va)
        .map_err(|e| format!("reading kernel_pagetable: {e}"))?;
    if root == 0 || root % super::PAGE != 0 {
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
    target: &mut SnapshotTarget,
    syms: &kinspect_symbols::Symbols,
    profile: Profile,
    ram: Ram,
) -> Vec<String> {
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
        // A pc in RAM runs kernel code (the direct map), else user code.
        let (root, what) = if h.pc >= ram.base.0 {
            match p.kpagetable {
                Some(k) if k.0 != 0 => (k, "kernel page table"),
                _ => continue,
            }
        } else {
            (p.pagetable, "user page table")
        };
        if root.0 == 0 || root.0 % super::PAGE != 0 {
            continue;
        }
        h.csrs.insert("satp".into(), Satp::sv39(root).0);
        notes.push(format!(
            "hart {} from pid {} ({})'s {what} {root:#x} (cpus[{}].proc, pc {:#x})",
            h.hart, p.pid, p.name, h.hart, h.pc
        ));
    }
    notes
}
