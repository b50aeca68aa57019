//! A fake C xv6 machine for the kernel-model tests: the fixture ELFs in
//! tests/fixtures (gcc -g builds of xv6_c.c) give the addresses (ELF
//! symbol table) and the layout (gcc's own `offsetof`, exported in the
//! fixture's `layout[]`), so the machine is built independently of the
//! DWARF the model reads. Page tables, processes, cpus and the free list
//! are written into a `MemoryTarget` as a C xv6 kernel would leave them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use kinspect::cli::run_args_on;
use kinspect::target::memory::{HartState, MemoryTarget};
use kinspect::target::Csr;
use kinspect_symbols::Symbols;

pub const V: u64 = 1;
pub const R: u64 = 2;
pub const W: u64 = 4;
pub const X: u64 = 8;
pub const U: u64 = 16;
pub const A: u64 = 64;
pub const D: u64 = 128;
pub const PG: u64 = 4096;
pub const TRAMPOLINE: u64 = (1 << 38) - PG;
pub const TRAPFRAME: u64 = TRAMPOLINE - PG;

pub fn kstack_va(slot: u64) -> u64 {
    TRAMPOLINE - (slot + 1) * 2 * PG
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << 10) | flags
}

/// gcc's layout of the fixture, from its `layout[]` array.
#[derive(Clone, Debug)]
pub struct Layout {
    pub proc_size: u64,
    pub nproc: u64,
    pub state: u64,
    pub chan: u64,
    pub killed: u64,
    pub xstate: u64,
    pub pid: u64,
    pub parent: u64,
    pub kstack: u64,
    pub sz: u64,
    pub pagetable: u64,
    /// 0 when the fixture has no per-process kernel page table.
    pub kpt: u64,
    pub trapframe: u64,
    pub context_ra: u64,
    pub context_sp: u64,
    pub name: u64,
    pub cpu_size: u64,
    pub cpu_proc: u64,
    pub kmem_freelist: u64,
    pub run_next: u64,
}

/// ELF symbol addresses (from the symbol table, not the DWARF).
pub fn sym(syms: &Symbols, name: &str) -> u64 {
    syms.elf_symbol(name)
        .unwrap_or_else(|| panic!("fixture has no ELF symbol {name}"))
        .addr
}

pub fn layout(syms: &Symbols) -> Layout {
    let mut mem = syms.file_memory();
    let base = sym(syms, "layout");
    let v: Vec<u64> = (0..20)
        .map(|i| syms.read_uint(&mut mem, base + 8 * i, 8).unwrap())
        .collect();
    Layout {
        proc_size: v[0],
        nproc: v[1],
        state: v[2],
        chan: v[3],
        killed: v[4],
        xstate: v[5],
        pid: v[6],
        parent: v[7],
        kstack: v[8],
        sz: v[9],
        pagetable: v[10],
        kpt: v[11],
        trapframe: v[12],
        context_ra: v[13],
        context_sp: v[14],
        name: v[15],
        cpu_size: v[16],
        cpu_proc: v[17],
        kmem_freelist: v[18],
        run_next: v[19],
    }
}

/// A process to put in the table.
#[derive(Clone, Debug)]
pub struct P {
    pub slot: u64,
    pub pid: i32,
    /// enum procstate value: 1 USED, 2 SLEEPING, 3 RUNNABLE, 4 RUNNING, 5 ZOMBIE.
    pub state: u32,
    pub name: &'static str,
    pub parent_slot: Option<u64>,
    pub chan: u64,
    pub hart: Option<u64>,
}

/// What the builder made, for the tests to compare against.
#[derive(Clone, Debug, Default)]
pub struct Made {
    pub kernel_pagetable: u64,
    /// slot -> kernel stack PA
    pub kstack_pa: BTreeMap<u64, u64>,
    /// slot -> (user root, kpt root or 0, trapframe PA, first user page PA)
    pub user: BTreeMap<u64, (u64, u64, u64, u64)>,
    /// slot -> (L0 table of the top of its kpt)
    pub kpt_top_l0: BTreeMap<u64, u64>,
    pub free: Vec<u64>,
    /// L0 table holding the kernel stacks of slots 0..255 in kernel_pagetable
    pub kernel_top_l0: Vec<u64>,
}

pub struct Builder {
    pub t: MemoryTarget,
    pub syms: Symbols,
    pub l: Layout,
    next_page: u64,
    pub made: Made,
}

impl Builder {
    pub fn new(elf: &str) -> Builder {
        let syms = Symbols::open(fixture(elf)).unwrap();
        let l = layout(&syms);
        let mut t = MemoryTarget {
            name: format!("fake C xv6 ({elf})"),
            ..MemoryTarget::default()
        };
        // The image as the loader places it (code and data; .bss zero),
        // zeroes elsewhere up to `end`.
        let end = (sym(&syms, "end") + PG - 1) & !(PG - 1);
        let mut image = syms.file_memory();
        let mut a = 0x8000_0000;
        while a < end {
            let mut page = [0u8; PG as usize];
            for (i, chunk) in page.chunks_mut(8).enumerate() {
                let _ = kinspect_symbols::Memory::read(&mut image, a + 8 * i as u64, chunk);
            }
            t.mem.write(a, &page);
            a += PG;
        }
        Builder {
            t,
            syms,
            l,
            next_page: 0x8700_0000,
            made: Made::default(),
        }
    }

    pub fn alloc(&mut self) -> u64 {
        let p = self.next_page;
        self.next_page += PG;
        self.t.mem.write(p, &[0u8; PG as usize]);
        p
    }

    pub fn r64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.t.mem.read(pa, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    pub fn w64(&mut self, pa: u64, v: u64) {
        self.t.mem.write_u64(pa, v);
    }

    /// The table one level down from `table[index]`, made if missing.
    fn next_table(&mut self, table: u64, index: u64) -> u64 {
        let e = self.r64(table + 8 * index);
        if e & V != 0 {
            return (e >> 10) << 12;
        }
        let t = self.alloc();
        self.w64(table + 8 * index, pte(t, V));
        t
    }

    /// Map one page (level 0) or megapage (level 1).
    pub fn map(&mut self, root: u64, va: u64, pa: u64, flags: u64, level: u64) -> u64 {
        let vpn = |l: u64| (va >> (12 + 9 * l)) & 511;
        let mut table = root;
        for l in (level + 1..=2).rev() {
            table = self.next_table(table, vpn(l));
        }
        self.w64(table + 8 * vpn(level), pte(pa, flags | V));
        table
    }

    /// The PTE address mapping `va` at level 0 (must exist).
    pub fn pte_addr(&self, root: u64, va: u64) -> u64 {
        let vpn = |l: u64| (va >> (12 + 9 * l)) & 511;
        let mut table = root;
        for l in [2, 1] {
            let e = self.r64(table + 8 * vpn(l));
            table = (e >> 10) << 12;
        }
        table + 8 * vpn(0)
    }

    /// kernel_pagetable as C xv6's kvmmake makes it (RAM above 2 MiB in
    /// megapages), with every slot's kernel stack.
    pub fn kernel(&mut self) -> u64 {
        let root = self.alloc();
        let etext = (sym(&self.syms, "etext") + PG - 1) & !(PG - 1);
        self.map(root, 0x1000_0000, 0x1000_0000, R | W, 0); // UART0
        let mut a = 0x8000_0000;
        while a < 0x8020_0000 {
            let f = if a < etext { R | X } else { R | W };
            self.map(root, a, a, f, 0);
            a += PG;
        }
        while a < 0x8800_0000 {
            self.map(root, a, a, R | W, 1);
            a += 0x20_0000;
        }
        let tramp = sym(&self.syms, "trampoline");
        self.map(root, TRAMPOLINE, tramp, R | X, 0);
        for slot in 0..self.l.nproc {
            let pa = self.alloc();
            let l0 = self.map(root, kstack_va(slot), pa, R | W, 0);
            self.made.kstack_pa.insert(slot, pa);
            if !self.made.kernel_top_l0.contains(&l0) {
                self.made.kernel_top_l0.push(l0);
            }
            let p = sym(&self.syms, "proc") + slot * self.l.proc_size;
            self.w64(p + self.l.kstack, kstack_va(slot));
        }
        let kpt = sym(&self.syms, "kernel_pagetable");
        self.w64(kpt, root);
        self.made.kernel_pagetable = root;
        root
    }

    /// A process with a small user address space, as exec leaves it.
    pub fn process(&mut self, p: &P) {
        let l = self.l.clone();
        let base = sym(&self.syms, "proc") + p.slot * l.proc_size;
        let m = &mut self.t.mem;
        m.write(base + l.state, &p.state.to_le_bytes());
        m.write(base + l.pid, &p.pid.to_le_bytes());
        let mut name = [0u8; 16];
        name[..p.name.len()].copy_from_slice(p.name.as_bytes());
        m.write(base + l.name, &name);
        m.write_u64(base + l.chan, p.chan);
        if let Some(ps) = p.parent_slot {
            m.write_u64(base + l.parent, sym(&self.syms, "proc") + ps * l.proc_size);
        }
        m.write_u64(base + l.context_ra, sym(&self.syms, "sched") + 0x10);
        m.write_u64(base + l.context_sp, kstack_va(p.slot) + 0xf00);
        let root = self.alloc();
        let text = self.alloc();
        let data = self.alloc();
        let guard = self.alloc();
        let stack = self.alloc();
        let tf = self.alloc();
        self.map(root, 0, text, R | X | U, 0);
        self.map(root, PG, data, R | W | U, 0);
        self.map(root, 2 * PG, guard, R | W, 0);
        self.map(root, 3 * PG, stack, R | W | U, 0);
        self.map(root, TRAPFRAME, tf, R | W, 0);
        let tramp = sym(&self.syms, "trampoline");
        self.map(root, TRAMPOLINE, tramp, R | X, 0);
        self.w64(base + l.pagetable, root);
        self.w64(base + l.trapframe, tf);
        self.w64(base + l.sz, 4 * PG);
        let mut kpt = 0;
        if l.kpt != 0 {
            // Like this repository's kernel: the kernel's root entries
            // 0..254 shared, a private top with TRAMPOLINE and its own stack.
            kpt = self.alloc();
            let kroot = self.made.kernel_pagetable;
            for i in 0..255 {
                let e = self.r64(kroot + 8 * i);
                self.w64(kpt + 8 * i, e);
            }
            let ks = self.made.kstack_pa[&p.slot];
            let l0 = self.map(kpt, kstack_va(p.slot), ks, R | W, 0);
            self.map(kpt, TRAMPOLINE, tramp, R | X, 0);
            self.w64(base + l.kpt, kpt);
            self.made.kpt_top_l0.insert(p.slot, l0);
        }
        if let Some(h) = p.hart {
            let c = sym(&self.syms, "cpus") + h * l.cpu_size + l.cpu_proc;
            self.w64(c, base);
        }
        self.made.user.insert(p.slot, (root, kpt, tf, text));
    }

    /// Put `n` fresh pages on kmem.freelist (descending, as kinit leaves it).
    pub fn free_pages(&mut self, n: usize) {
        let pages: Vec<u64> = (0..n).map(|_| self.alloc()).collect();
        self.set_free_list(&pages);
    }

    /// Make kmem.freelist exactly `pages` in this order.
    pub fn set_free_list(&mut self, pages: &[u64]) {
        let head = sym(&self.syms, "kmem") + self.l.kmem_freelist;
        let mut prev = head;
        for &p in pages {
            self.w64(prev, p);
            prev = p + self.l.run_next;
        }
        self.w64(prev, 0);
        self.made.free = pages.to_vec();
    }

    /// Three harts on kernel_pagetable.
    pub fn harts(&mut self) {
        let satp = (8u64 << 60) | (self.made.kernel_pagetable >> 12);
        for h in 0..3 {
            let mut hs = HartState::default();
            hs.regs.pc = 0x8000_0000 + h;
            hs.csrs.insert(Csr::Satp, satp);
            self.t.harts.push(hs);
        }
    }

    pub fn proc_addr(&self, slot: u64) -> u64 {
        sym(&self.syms, "proc") + slot * self.l.proc_size
    }
}

/// The standard scene: init (pid 1, sleeping in wait on its own slot),
/// sh (pid 2, sleeping on `ticks`), cat (pid 3, running on hart 1),
/// a zombie (pid 4), and 8 free pages.
pub fn scene(elf: &str) -> Builder {
    let mut b = Builder::new(elf);
    b.kernel();
    let ticks = sym(&b.syms, "ticks");
    let init = b.proc_addr(0);
    for p in [
        P {
            slot: 0,
            pid: 1,
            state: 2,
            name: "init",
            parent_slot: None,
            chan: init,
            hart: None,
        },
        P {
            slot: 1,
            pid: 2,
            state: 2,
            name: "sh",
            parent_slot: Some(0),
            chan: ticks,
            hart: None,
        },
        P {
            slot: 2,
            pid: 3,
            state: 4,
            name: "cat",
            parent_slot: Some(1),
            chan: 0,
            hart: Some(1),
        },
        P {
            slot: 5,
            pid: 4,
            state: 5,
            name: "zombie",
            parent_slot: Some(1),
            chan: 0,
            hart: None,
        },
    ] {
        b.process(&p);
    }
    b.free_pages(8);
    b.harts();
    b
}

pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// `kinspect --elf FIXTURE ARGS...` on the builder's machine.
pub fn run(b: &mut Builder, elf: &str, args: &[&str]) -> Run {
    let path = fixture(elf);
    let mut full = vec!["kinspect", "--elf", path.to_str().unwrap()];
    full.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_args_on(&full, &mut b.t, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

/// Save the builder's machine as a snapshot file (only the pages it wrote),
/// for tests that read it through `--snapshot` or `kinspect serve`.
pub fn save_snapshot(b: &mut Builder, elf: &str, file: &std::path::Path) {
    use kinspect::snapshot::{capture, format, identity};
    let pages: std::collections::BTreeSet<u64> = b.t.mem.pages().map(|(pa, _)| pa).collect();
    let opts = capture::Options {
        ram: kinspect_sv39::Ram::default(),
        kernel: Some(identity::of_elf_file(&fixture(elf)).expect("fixture identity")),
        pages: Some(pages),
        pmemsave: false,
    };
    let (snap, _) = capture::capture(&mut b.t, &opts).expect("capturing the fake machine");
    format::write(&snap, file, 1).expect("writing the snapshot");
}
