//! The C xv6 kernels of the suite: stock xv6-riscv, the 2020 pgtbl lab
//! handout, and this project's lab solutions and classic-bug patches over
//! them, as `inspector/kinspect/tests/xv6/variants.toml` lists them.
//!
//! `cargo xtask xv6` (run by `cargo xtask test`) builds each variant once
//! into `target/xv6/NAME/` with xv6's own Makefile; tests then boot one
//! with [`Variant::boot`], on xv6's QEMU command line for its tree.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{root, Boot, Machine};

/// One C kernel of the suite: a tree plus patches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    /// `xv6-riscv` or `xv6-labs-2020-pgtbl`, a folder of `../shared/xv6/`.
    pub tree: String,
    /// Patch files of `tests/xv6/`, applied in order with `patch -p1`.
    #[serde(default)]
    pub patches: Vec<String>,
    /// A lab solution's per-process kernel page-table field (what kinspect
    /// must find by itself); `None`: the kernel has none.
    pub kpt_field: Option<String>,
    /// The solution mirrors user memory into that table.
    #[serde(default)]
    pub mirror: bool,
    /// A buggy variant: what to type at the shell to hit the bug (`None`:
    /// it panics while booting).
    pub run: Option<String>,
    /// A buggy variant: the message after `panic: `.
    pub panic: Option<String>,
    /// A buggy variant: the diagnosis kind `kinspect report` must give.
    pub diagnosis: Option<String>,
}

#[derive(Deserialize)]
struct Manifest {
    variant: Vec<Variant>,
}

/// `inspector/kinspect/tests/xv6/`: the manifest and the patches.
pub fn patches_dir() -> PathBuf {
    root().join("inspector/kinspect/tests/xv6")
}

/// Where the xv6 source trees are: `$KINSPECT_XV6_SRC`, else `../shared/xv6`
/// beside the repository.
pub fn sources_dir() -> PathBuf {
    std::env::var_os("KINSPECT_XV6_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/xv6"))
}

/// `target/xv6/`: one built tree per variant.
pub fn builds_dir() -> PathBuf {
    root().join("target/xv6")
}

/// Every variant of the manifest, in its order.
pub fn variants() -> Result<Vec<Variant>, String> {
    let path = patches_dir().join("variants.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let m: Manifest = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(m.variant)
}

/// The variant called `name`; panics (failing the test) when there is none.
pub fn variant(name: &str) -> Variant {
    let all = variants().unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = all.iter().map(|v| v.name.clone()).collect();
    all.into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no xv6 variant {name:?} (there are: {})", names.join(" ")))
}

impl Variant {
    /// `target/xv6/NAME/`: the patched, built tree.
    pub fn dir(&self) -> PathBuf {
        builds_dir().join(&self.name)
    }

    /// The kernel ELF (`kernel/kernel`, built with `-ggdb`), or a panic
    /// telling the reader how to build it.
    pub fn elf(&self) -> PathBuf {
        self.built("kernel/kernel")
    }

    /// The file-system image xv6's mkfs made.
    pub fn fs_img(&self) -> PathBuf {
        self.built("fs.img")
    }

    fn built(&self, rel: &str) -> PathBuf {
        let p = self.dir().join(rel);
        assert!(
            p.exists(),
            "{} is missing: run `cargo xtask xv6` (or `cargo xtask test`, which builds the C kernels)",
            p.display()
        );
        p
    }

    /// The 2020 lab trees drive virtio's legacy interface; later trees the
    /// modern one (`-global virtio-mmio.force-legacy=false`).
    pub fn modern_virtio(&self) -> bool {
        self.tree != "xv6-labs-2020-pgtbl"
    }

    /// The source tree this variant starts from.
    pub fn source(&self) -> PathBuf {
        sources_dir().join(&self.tree)
    }

    /// The patch files, as paths.
    pub fn patch_paths(&self) -> Vec<PathBuf> {
        self.patches.iter().map(|p| patches_dir().join(p)).collect()
    }

    /// Boot this kernel on xv6's command line for its tree (3 harts).
    pub fn boot(&self) -> Machine {
        self.boot_with(Boot::default())
    }

    /// Boot with other options (`-S`, harts); kernel, disk and virtio mode
    /// are this variant's.
    pub fn boot_with(&self, opts: Boot) -> Machine {
        Machine::boot(Boot {
            kernel: Some(self.elf()),
            fs_img: Some(self.fs_img()),
            modern_virtio: self.modern_virtio(),
            ..opts
        })
    }

    /// A correct kernel (no `panic` expected).
    pub fn is_correct(&self) -> bool {
        self.panic.is_none()
    }
}

/// The stamp written after a successful build: the tree and every patch's
/// bytes, so a changed patch rebuilds.
pub fn stamp(v: &Variant) -> Result<String, String> {
    let mut s = format!("tree {}\n", v.tree);
    for p in v.patch_paths() {
        let bytes = std::fs::read(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
        s.push_str(&format!("{} {}\n", p.display(), fnv1a(&bytes)));
    }
    Ok(s)
}

fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The stamp file of a built variant.
pub fn stamp_path(dir: &Path) -> PathBuf {
    dir.join(".kinspect-build")
}
