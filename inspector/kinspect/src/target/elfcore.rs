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
