//! The `.kisnap` file format, version 1 (docs/snapshots.md describes it
//! for people who write their own readers).
//!
//! ```text
//! header   magic "KISNAP\r\n" | version u32 | sections u32 | crc32 of the 16 bytes before | 0 u32
//! section  tag [4] | flags u32 (bit 0: deflate) | length u64 | crc32 of the stored bytes u32 | 0 u32
//!          then `length` stored bytes
//! ```
//!
//! All integers little-endian. Sections, in order: `META` (JSON), `HART`
//! (JSON array), one `RAM ` per memory region (deflated), `END ` (empty:
//! proves the file is whole). A `RAM ` payload, once inflated:
//! `base u64 | pages u64 | kinds [pages] u8 | page data`, where kind 0 is
//! absent (no data), 1 zeros (no data), 2 fill (8 head bytes, 1 fill
//! byte), 3 raw (4096 bytes).

use std::io::{Read, Write};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

use super::{HartRecord, Meta, Region, Snapshot, SnapshotError, PAGE};

/// The first 8 bytes of every snapshot (`\r\n` catches text-mode mangling).
pub const MAGIC: &[u8; 8] = b"KISNAP\r\n";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

const HEADER_LEN: usize = 24;
const SECTION_HEADER_LEN: usize = 24;
const FLAG_DEFLATE: u32 = 1;
/// At most this many sections (bounded parsing of damaged files).
const MAX_SECTIONS: u32 = 64;
/// At most this much memory in one region (4 GiB).
const MAX_REGION_PAGES: u64 = 1 << 20;
/// At most this many bytes inflated from one section (a region of
/// MAX_REGION_PAGES raw pages and its header): a deflate bomb stops here.
const MAX_INFLATED: u64 = 16 + MAX_REGION_PAGES * (1 + PAGE);

/// Page kinds in a `RAM ` section.
pub mod kind {
    pub const ABSENT: u8 = 0;
    pub const ZERO: u8 = 1;
    pub const FILL: u8 = 2;
    pub const RAW: u8 = 3;
}

/// How a page is stored: `(kind, bytes to store)`.
fn classify(page: &[u8]) -> (u8, Vec<u8>) {
    if page.iter().all(|b| *b == 0) {
        return (kind::ZERO, Vec::new());
    }
    let fill = page[8];
    if page[8..].iter().all(|b| *b == fill) {
        let mut v = page[..8].to_vec();
        v.push(fill);
        return (kind::FILL, v);
    }
    (kind::RAW, page.to_vec())
}

fn section(out: &mut Vec<u8>, tag: &[u8; 4], flags: u32, payload: &[u8]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The `RAM ` payload of one region, deflated.
fn region_payload(r: &Region, level: u32) -> std::io::Result<Vec<u8>> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::new(level));
    enc.write_all(&r.base.to_le_bytes())?;
    enc.write_all(&(r.pages() as u64).to_le_bytes())?;
    let mut kinds = Vec::with_capacity(r.pages());
    let mut data = Vec::new();
    for i in 0..r.pages() {
        if !r.present[i] {
            kinds.push(kind::ABSENT);
            continue;
        }
        let (k, bytes) = classify(&r.page(i));
        kinds.push(k);
        data.push(bytes);
    }
    enc.write_all(&kinds)?;
    for d in data {
        enc.write_all(&d)?;
    }
    enc.finish()
}

/// Encode a snapshot into bytes (deflate `level` 0..9; 1 is fast).
pub fn encode(s: &Snapshot, level: u32) -> std::io::Result<Vec<u8>> {
    let meta = serde_json::to_vec_pretty(&s.meta)?;
    let harts = serde_json::to_vec_pretty(&s.harts)?;
    let sections = 3 + s.regions.len() as u32;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&sections.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    section(&mut out, b"META", 0, &meta);
    section(&mut out, b"HART", 0, &harts);
    for r in &s.regions {
        let p = region_payload(r, level)?;
        section(&mut out, b"RAM ", FLAG_DEFLATE, &p);
    }
    section(&mut out, b"END ", 0, &[]);
    Ok(out)
}

/// Write a snapshot to `path`; returns the file's size in bytes.
pub fn write(s: &Snapshot, path: &std::path::Path, level: u32) -> std::io::Result<u64> {
    let bytes = encode(s, level)?;
    // Write next to it and rename, so a crash never leaves half a file
    // under the real name.
    let tmp = path.with_extension("kisnap-partial");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(bytes.len() as u64)
}

/// Does `bytes` start like a snapshot?
pub fn is_snapshot(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn tag_name(tag: &[u8]) -> String {
    String::from_utf8_lossy(tag).trim_end().to_string()
}

/// Decode a snapshot; `path` only names the file in errors.
pub fn decode(bytes: &[u8], path: &str) -> Result<Snapshot, SnapshotError> {
    let p = || path.to_string();
    let truncated = |what: &str| SnapshotError::Truncated {
        path: p(),
        what: what.to_string(),
    };
    let corrupt = |what: String| SnapshotError::Corrupt { path: p(), what };
    if bytes.len() < MAGIC.len() || !is_snapshot(bytes) {
        return Err(SnapshotError::BadMagic { path: p() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(truncated("the header is incomplete"));
    }
    if crc32fast::hash(&bytes[..16]) != u32_at(bytes, 16) {
        return Err(SnapshotError::Checksum {
            path: p(),
            section: "header".into(),
        });
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(SnapshotError::Version { path: p(), version });
    }
    let count = u32_at(bytes, 12);
    if count > MAX_SECTIONS {
        return Err(corrupt(format!(
            "{count} sections (at most {MAX_SECTIONS})"
        )));
    }
    let mut at = HEADER_LEN;
    let mut snap = Snapshot::default();
    let (mut saw_meta, mut saw_harts, mut saw_end) = (false, false, false);
    for n in 0..count {
        if bytes.len() - at < SECTION_HEADER_LEN {
            return Err(truncated(&format!(
                "section {} of {count} is missing",
                n + 1
            )));
        }
        let tag = &bytes[at..at + 4];
        let name = tag_name(tag);
        let flags = u32_at(bytes, at + 4);
        let len = u64_at(bytes, at + 8);
        let crc = u32_at(bytes, at + 16);
        at += SECTION_HEADER_LEN;
        if len > (bytes.len() - at) as u64 {
            return Err(truncated(&format!(
                "the {name} section should have {len} bytes, the file has {} left",
                bytes.len() - at
            )));
        }
        let stored = &bytes[at..at + len as usize];
        at += len as usize;
        if crc32fast::hash(stored) != crc {
            return Err(SnapshotError::Checksum {
                path: p(),
                section: name,
            });
        }
        let payload = if flags & FLAG_DEFLATE != 0 {
            let mut v = Vec::new();
            DeflateDecoder::new(stored)
                .take(MAX_INFLATED)
                .read_to_end(&mut v)
                .map_err(|e| corrupt(format!("the {name} section does not inflate: {e}")))?;
            v
        } else {
            stored.to_vec()
        };
        match tag {
            b"META" => {
                snap.meta = serde_json::from_slice::<Meta>(&payload)
                    .map_err(|e| corrupt(format!("META is not valid: {e}")))?;
                saw_meta = true;
            }
            b"HART" => {
                snap.harts = serde_json::from_slice::<Vec<HartRecord>>(&payload)
                    .map_err(|e| corrupt(format!("HART is not valid: {e}")))?;
                if snap.harts.iter().any(|h| h.x.len() != 32) {
                    return Err(corrupt("a hart does not have 32 registers".into()));
                }
                saw_harts = true;
            }
            b"RAM " => snap.regions.push(decode_region(&payload).map_err(corrupt)?),
            b"END " => {
                saw_end = true;
                break;
            }
            // Unknown sections are skipped: a newer writer may add some.
            _ => {}
        }
    }
    if !saw_end {
        return Err(truncated("the END section is missing"));
    }
    if !saw_meta || !saw_harts {
        return Err(corrupt("the META or HART section is missing".into()));
    }
    Ok(snap)
}

fn decode_region(b: &[u8]) -> Result<Region, String> {
    if b.len() < 16 {
        return Err("a RAM section is shorter than its header".into());
    }
    let base = u64_at(b, 0);
    let pages = u64_at(b, 8);
    if base % PAGE != 0 || pages > MAX_REGION_PAGES || base.checked_add(pages * PAGE).is_none() {
        return Err(format!(
            "a RAM section has base {base:#x} and {pages} pages"
        ));
    }
    let pages = pages as usize;
    let kinds = b
        .get(16..16 + pages)
        .ok_or("a RAM section's page kinds are cut short")?;
    let mut r = Region::new(base, pages);
    let mut at = 16 + pages;
    for (i, k) in kinds.iter().enumerate() {
        match *k {
            kind::ABSENT => {}
            kind::ZERO => r.present[i] = true,
            kind::FILL => {
                let d = b
                    .get(at..at + 9)
                    .ok_or("a RAM section's data is cut short")?;
                let mut head = [0u8; 8];
                head.copy_from_slice(&d[..8]);
                r.set_fill(i, head, d[8]);
                at += 9;
            }
            kind::RAW => {
                let d = b
                    .get(at..at + PAGE as usize)
                    .ok_or("a RAM section's data is cut short")?;
                r.set_page(i, d);
                at += PAGE as usize;
            }
            k => return Err(format!("page {i} of a RAM section has kind {k}")),
        }
    }
    if at != b.len() {
        return Err("a RAM section has bytes after its last page".into());
    }
    Ok(r)
}

/// Read and decode the snapshot at `path`.
pub fn read(path: &std::path::Path) -> Result<Snapshot, SnapshotError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SnapshotError::Io {
        path: name.clone(),
        why: e.to_string(),
    })?;
    decode(&bytes, &name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{KernelId, PAGE};

    fn sample() -> Snapshot {
        let mut r = Region::new(0x8000_0000, 5);
        let mut raw = vec![0u8; PAGE as usize];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        r.set_page(0, &raw);
        r.set_page(1, &[0; PAGE as usize]);
        let mut junk = vec![1u8; PAGE as usize];
        junk[..8].copy_from_slice(&0x8765_4000u64.to_le_bytes());
        r.set_page(2, &junk);
        // page 3 absent, page 4 raw again
        r.set_page(4, &raw);
        let mut h = HartRecord {
            x: (0..32).collect(),
            pc: 0x8000_1234,
            ..HartRecord::default()
        };
        h.csrs.insert("satp".into(), 0x8000_0000_0008_7fff);
        Snapshot {
            meta: Meta {
                format: "kinspect snapshot".into(),
                kernel: Some(KernelId {
                    load_hash: "0123456789abcdef".into(),
                    ..KernelId::default()
                }),
                ..Meta::default()
            },
            harts: vec![h],
            regions: vec![r],
        }
    }

    #[test]
    fn round_trip_keeps_pages_kinds_and_absence() {
        let s = sample();
        let bytes = encode(&s, 6).unwrap();
        let t = decode(&bytes, "x").unwrap();
        assert_eq!(t.harts, s.harts);
        assert_eq!(t.meta.kernel, s.meta.kernel);
        let (a, b) = (&s.regions[0], &t.regions[0]);
        assert_eq!(a.present, b.present);
        for i in 0..a.pages() {
            assert_eq!(a.page(i), b.page(i), "page {i}");
        }
        // The junk-filled page is kept as a fill, and reads back whole,
        // alone and within a read across its neighbours.
        assert_eq!(b.fills.len(), 1, "{:?}", b.fills);
        let mut whole = vec![0u8; 2 * PAGE as usize];
        assert!(b.read(0x8000_1000, &mut whole).is_some());
        assert_eq!(&whole[..PAGE as usize], &*a.page(1));
        assert_eq!(&whole[PAGE as usize..], &*a.page(2));
        let mut edge = [9u8; 12];
        assert!(b.read(0x8000_1ffc, &mut edge).is_some());
        assert_eq!(&edge[..4], &[0; 4]);
        assert_eq!(&edge[4..], &a.page(2)[..8]);
        let mut buf = [0u8; 16];
        assert!(b.read(0x8000_3ff8, &mut buf).is_none(), "page 3 is absent");
        assert!(b.read(0x8000_2000, &mut buf).is_some());
        assert_eq!(&buf[..8], &0x8765_4000u64.to_le_bytes());
        assert_eq!(buf[8], 1);
    }

    #[test]
    fn damage_is_named() {
        let bytes = encode(&sample(), 1).unwrap();
        let e = decode(&bytes[..bytes.len() - 30], "f").unwrap_err();
        assert!(matches!(e, SnapshotError::Truncated { .. }), "{e}");
        let e = decode(&bytes[..10], "f").unwrap_err();
        assert!(matches!(e, SnapshotError::Truncated { .. }), "{e}");
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            decode(&bad, "f").unwrap_err(),
            SnapshotError::BadMagic { .. }
        ));
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n / 2] ^= 0x40;
        let e = decode(&bad, "f").unwrap_err();
        assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
        let mut bad = bytes.clone();
        bad[8] = 9;
        let e = decode(&bad, "f").unwrap_err();
        assert!(matches!(e, SnapshotError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("header"));
        // Every prefix fails cleanly, none panics.
        for n in 0..bytes.len().min(400) {
            assert!(decode(&bytes[..n], "f").is_err());
        }
    }
}
