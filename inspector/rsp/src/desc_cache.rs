//! The target description's documents kept between runs.
//!
//! QEMU 7.2 describes a RISC-V hart in `target.xml` and four included
//! documents; reading them takes nine `qXfer` round trips, about a third
//! of a one-shot command's packets. The included documents are fixed for
//! one QEMU binary, so they are kept in a file named by that binary's
//! identity (given by the caller, who found the QEMU process) and by the
//! text of `target.xml`, which is always read: QEMU answers `p` only after
//! `target.xml` was asked for, and it names the documents to include.
//!
//! The file is a plain list of documents: `NAME\nLENGTH\nBYTES` each. A
//! file that does not parse, or lacks a document, is ignored and written
//! again; writes go to a temporary file renamed into place, so runs at
//! the same time never see half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// At most this many documents and bytes are taken from a cache file.
const MAX_DOCUMENTS: usize = 64;
const MAX_BYTES: usize = 4 << 20;

/// Where one QEMU's description is kept.
#[derive(Clone, Debug)]
pub struct DescCache {
    path: PathBuf,
}

/// FNV-1a, 64 bits: a file name, not a defence.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl DescCache {
    /// The cache for the QEMU binary `identity` whose `target.xml` reads
    /// `root`, in `dir`.
    pub fn new(dir: &Path, identity: &str, root: &[u8]) -> DescCache {
        let key = fnv(&[identity.as_bytes(), root]);
        DescCache {
            path: dir.join(format!("target-description-{key:016x}")),
        }
    }

    /// The default directory: `$XDG_CACHE_HOME/kinspect`, else
    /// `$HOME/.cache/kinspect`; `None` without either.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("kinspect"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The documents kept, empty when there is no usable file.
    pub fn load(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| parse(&b))
            .unwrap_or_default()
    }

    /// Keep `docs`; failing to is not an error (the next run asks QEMU).
    pub fn store(&self, docs: &BTreeMap<String, Vec<u8>>) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let mut out = Vec::new();
        for (name, bytes) in docs {
            out.extend_from_slice(format!("{name}\n{}\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &out).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// `NAME\nLENGTH\nBYTES`..., or `None` if anything is off.
fn parse(mut b: &[u8]) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut docs = BTreeMap::new();
    let mut total = 0usize;
    while !b.is_empty() {
        if docs.len() >= MAX_DOCUMENTS {
            return None;
        }
        let nl = b.iter().position(|&c| c == b'\n')?;
        let name = std::str::from_utf8(&b[..nl]).ok()?.to_string();
        b = &b[nl + 1..];
        let nl = b.iter().position(|&c| c == b'\n')?;
        let len: usize = std::str::from_utf8(&b[..nl]).ok()?.parse().ok()?;
        b = &b[nl + 1..];
        total = total.checked_add(len)?;
        if len > b.len() || total > MAX_BYTES || name.is_empty() {
            return None;
        }
        docs.insert(name, b[..len].to_vec());
        b = &b[len..];
    }
    Some(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_damage_is_ignored() {
        let dir = std::env::temp_dir().join(format!("kinspect-desc-{}", std::process::id()));
        let c = DescCache::new(&dir, "qemu 1", b"<target/>");
        assert!(c.load().is_empty());
        let mut docs = BTreeMap::new();
        docs.insert("a.xml".to_string(), b"<feature>\n</feature>".to_vec());
        docs.insert("b.xml".to_string(), Vec::new());
        c.store(&docs);
        assert_eq!(c.load(), docs);
        // Another binary, or another target.xml: another file.
        assert!(DescCache::new(&dir, "qemu 2", b"<target/>")
            .load()
            .is_empty());
        assert!(DescCache::new(&dir, "qemu 1", b"<target> </target>")
            .load()
            .is_empty());
        // Cut short, or a length past the end: nothing.
        let whole = std::fs::read(c.path()).unwrap();
        std::fs::write(c.path(), &whole[..whole.len() - 3]).unwrap();
        assert!(c.load().is_empty());
        std::fs::write(c.path(), b"a.xml\n999999999999\nx").unwrap();
        assert!(c.load().is_empty());
        std::fs::write(c.path(), b"a.xml\nnot a number\n").unwrap();
        assert!(c.load().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
