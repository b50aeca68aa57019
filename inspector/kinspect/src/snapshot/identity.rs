//! Which kernel build a snapshot belongs to.
//!
//! A snapshot's memory only makes sense with the ELF it was taken of
//! (symbols, DWARF layouts). The identity is an FNV-1a 64 hash of the
//! ELF's loadable segments (physical address, sizes and file bytes): what
//! QEMU loaded into RAM. Debug info, the symbol table and the file's path
//! do not enter it, so `strip` or a copy keeps the identity; a rebuild that
//! changes a single instruction does not. The GNU build-id is recorded too
//! when the linker wrote one.

use object::{Object, ObjectSegment};

use super::KernelId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The identity of the ELF in `bytes`; a one-line reason if it is not one.
pub fn of_elf(bytes: &[u8], path: Option<&str>) -> Result<KernelId, String> {
    let file = object::File::parse(bytes).map_err(|e| format!("not an ELF file: {e}"))?;
    let mut h = FNV_OFFSET;
    let mut any = false;
    for seg in file.segments() {
        let data = seg
            .data()
            .map_err(|e| format!("a segment is unreadable: {e}"))?;
        let (_, filesz) = seg.file_range();
        h = fnv(h, &seg.address().to_le_bytes());
        h = fnv(h, &seg.size().to_le_bytes());
        h = fnv(h, &filesz.to_le_bytes());
        h = fnv(h, data);
        any = true;
    }
    if !any {
        return Err("the ELF has no loadable segments".into());
    }
    let build_id = file
        .build_id()
        .ok()
        .flatten()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
    Ok(KernelId {
        elf: path.map(str::to_string),
        build_id,
        load_hash: format!("{h:016x}"),
    })
}

/// The identity of the ELF file at `path`.
pub fn of_elf_file(path: &std::path::Path) -> Result<KernelId, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read ELF {}: {e}", path.display()))?;
    of_elf(&bytes, Some(&path.display().to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // FNV-1a 64 reference values.
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(of_elf(b"hello", None).is_err());
    }
}
