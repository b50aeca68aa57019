//! Kernel profiles: the names (never offsets) the model looks for.
//!
//! Every xv6-riscv descendant keeps `proc`, `cpus`, `kernel_pagetable` and
//! `kmem.freelist`, and `struct proc`'s field names. What differs between
//! kernels is the per-process kernel page-table field that the pgtbl lab
//! of some years adds to `struct proc` (our kernel calls it `kpagetable`;
//! C xv6 has none; students call it anything). The model finds that one
//! by type and memory ([`super::kpt`]); the names here only order the
//! candidates, and the CLI's `--kpt-field` overrides the search. Nothing
//! here says where a field is or how big it is: the DWARF says that.

use serde::Serialize;

/// The names of the kernel objects and fields the model reads, plus the
/// two xv6 memory-layout constants that are macros in C (so absent from
/// the DWARF) and the same in every xv6-riscv kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Which profile this is ("xv6-riscv", "kinspect-kernel", "custom").
    pub name: String,
    /// The process table: an array of structs.
    pub proc: String,
    /// Per-hart state: an array of structs, index = hart id.
    pub cpus: String,
    /// The kernel's page-table root (a pointer).
    pub kernel_pagetable: String,
    /// The page allocator: a struct with a free-list head.
    pub kmem: String,
    /// The free-list head inside `kmem`.
    pub freelist: String,
    /// The link inside a free page (`struct run`'s `next`).
    pub run_next: String,
    /// How to find the per-process kernel page-table field.
    pub kpt: KptChoice,
    /// Names tried first among the candidates the type search finds.
    pub kpagetable_fields: Vec<String>,
    /// TRAMPOLINE = MAXVA - PGSIZE (memlayout.h).
    pub trampoline: u64,
    /// TRAPFRAME = TRAMPOLINE - PGSIZE (memlayout.h).
    pub trapframe: u64,
    /// Per-process kernel page tables may mirror user memory below this
    /// address (some pgtbl-lab solutions do, below PLIC); 0: no mirror.
    pub user_mirror_below: u64,
}

/// How the model finds the per-process kernel page-table field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KptChoice {
    /// By type, confirmed from memory ([`super::kpt`]).
    Detect,
    /// This field (`--kpt-field NAME`).
    Named(String),
    /// The kernel has none (`--kpt-field none`, stock xv6).
    NoField,
}

/// The names per-process kernel page-table fields go by in pgtbl-lab
/// kernels of various years, tried when no name is given.
pub const KPAGETABLE_NAMES: [&str; 8] = [
    "kpagetable",
    "kernelpgtbl",
    "prockpt",
    "kernel_pagetable",
    "k_pagetable",
    "kernelpt",
    "kernel_pt",
    "kpt",
];

impl Default for Profile {
    fn default() -> Self {
        Profile::builtin("auto").unwrap_or_else(Profile::xv6_riscv)
    }
}

impl Profile {
    /// Below this VA a per-process kernel page table may mirror user
    /// memory: the profile's `user_mirror_below`, else PLIC (the 2020
    /// lab's limit), which bounds where user memory can reach anyway.
    pub fn user_mirror_limit(&self) -> u64 {
        if self.user_mirror_below != 0 {
            self.user_mirror_below
        } else {
            0x0c00_0000
        }
    }

    /// Stock C xv6-riscv: no per-process kernel page table.
    pub fn xv6_riscv() -> Profile {
        let maxva = 1u64 << 38;
        Profile {
            name: "xv6-riscv".into(),
            proc: "proc".into(),
            cpus: "cpus".into(),
            kernel_pagetable: "kernel_pagetable".into(),
            kmem: "kmem".into(),
            freelist: "freelist".into(),
            run_next: "next".into(),
            kpt: KptChoice::NoField,
            kpagetable_fields: Vec::new(),
            trampoline: maxva - 4096,
            trapframe: maxva - 2 * 4096,
            user_mirror_below: 0,
        }
    }

    /// The built-in profiles: `xv6-riscv` (C, none), `kinspect-kernel`
    /// (this repository's kernel, `kpagetable`), `pgtbl-lab` (C with a
    /// per-process kernel table mirroring user memory below PLIC), and
    /// `auto` (try every known field name).
    pub fn builtin(name: &str) -> Option<Profile> {
        let base = Profile::xv6_riscv();
        match name {
            "xv6-riscv" => Some(base),
            "kinspect-kernel" => Some(Profile {
                name: name.into(),
                kpt: KptChoice::Named("kpagetable".into()),
                kpagetable_fields: vec!["kpagetable".into()],
                ..base
            }),
            "pgtbl-lab" => Some(Profile {
                name: name.into(),
                kpt: KptChoice::Detect,
                kpagetable_fields: KPAGETABLE_NAMES.iter().map(|s| s.to_string()).collect(),
                user_mirror_below: 0x0c00_0000,
                ..base
            }),
            "auto" => Some(Profile {
                name: name.into(),
                kpt: KptChoice::Detect,
                kpagetable_fields: KPAGETABLE_NAMES.iter().map(|s| s.to_string()).collect(),
                ..base
            }),
            _ => None,
        }
    }

    /// The names of the built-in profiles, for messages.
    pub const BUILTIN: [&'static str; 4] = ["auto", "xv6-riscv", "kinspect-kernel", "pgtbl-lab"];

    /// This profile with the per-process kernel page-table field named
    /// explicitly (`--kpt-field`); `none` means the kernel has none.
    pub fn with_kpt_field(mut self, field: &str) -> Profile {
        self.kpt = if field == "none" {
            KptChoice::NoField
        } else {
            KptChoice::Named(field.to_string())
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_differ_only_in_the_per_process_table() {
        let c = Profile::builtin("xv6-riscv").unwrap();
        let ours = Profile::builtin("kinspect-kernel").unwrap();
        assert_eq!(c.kpt, KptChoice::NoField);
        assert_eq!(ours.kpt, KptChoice::Named("kpagetable".into()));
        assert_eq!(c.proc, ours.proc);
        assert_eq!(c.trampoline, 0x3f_ffff_f000);
        assert_eq!(c.trapframe, 0x3f_ffff_e000);
        for n in Profile::BUILTIN {
            assert!(Profile::builtin(n).is_some(), "{n}");
        }
        assert!(Profile::builtin("nope").is_none());
        assert_eq!(Profile::default().kpt, KptChoice::Detect);
        assert_eq!(
            Profile::default().with_kpt_field("none").kpt,
            KptChoice::NoField
        );
    }
}
