//! A crafted xv6-like machine for the CLI tests: three harts, a kernel
//! page table with a device page, kernel text and data, a megapage, a
//! kernel stack and the trampoline, all in a `MemoryTarget`.

#![allow(dead_code)]

use kinspect::cli::run_args_on;
use kinspect::target::memory::{HartState, MemoryTarget};
use kinspect::target::{Csr, Target};

pub const V: u64 = 1;
pub const R: u64 = 2;
pub const W: u64 = 4;
pub const X: u64 = 8;
pub const U: u64 = 16;
pub const A: u64 = 64;
pub const D: u64 = 128;

pub const ROOT: u64 = 0x87ff_f000;
pub const SATP: u64 = (8 << 60) | (ROOT >> 12);
pub const TRAMPOLINE: u64 = 0x3f_ffff_f000;
pub const KSTACK0: u64 = TRAMPOLINE - 2 * 4096;

pub fn pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << 10) | flags
}

/// Blank table pages must exist to be readable.
fn table(t: &mut MemoryTarget, pa: u64) {
    t.mem.write(pa, &[0u8; 4096]);
}

pub fn machine() -> MemoryTarget {
    let mut t = MemoryTarget {
        name: "crafted xv6 machine".into(),
        ..MemoryTarget::default()
    };
    let (l1_low, l0_uart, l1_kern, l0_kern, l1_top, l0_top) = (
        0x87ff_e000,
        0x87ff_d000,
        0x87ff_c000,
        0x87ff_b000,
        0x87ff_a000,
        0x87ff_9000,
    );
    for p in [ROOT, l1_low, l0_uart, l1_kern, l0_kern, l1_top, l0_top] {
        table(&mut t, p);
    }
    let m = &mut t.mem;
    // UART0 at 0x10000000
    m.write_u64(ROOT, pte(l1_low, V));
    m.write_u64(l1_low + 128 * 8, pte(l0_uart, V));
    m.write_u64(l0_uart, pte(0x1000_0000, V | R | W));
    // kernel text (8 pages) and data (2 pages) from 0x80000000
    m.write_u64(ROOT + 2 * 8, pte(l1_kern, V));
    m.write_u64(l1_kern, pte(l0_kern, V));
    for i in 0..8 {
        m.write_u64(l0_kern + i * 8, pte(0x8000_0000 + i * 4096, V | R | X | A));
    }
    for i in 8..10 {
        m.write_u64(
            l0_kern + i * 8,
            pte(0x8000_0000 + i * 4096, V | R | W | A | D),
        );
    }
    // one 2 MiB megapage at 0x80200000
    m.write_u64(l1_kern + 8, pte(0x8020_0000, V | R | W | A | D));
    // the top: KSTACK(0) and TRAMPOLINE
    m.write_u64(ROOT + 255 * 8, pte(l1_top, V));
    m.write_u64(l1_top + 511 * 8, pte(l0_top, V));
    m.write_u64(l0_top + 509 * 8, pte(0x87ff_8000, V | R | W | A | D));
    m.write_u64(l0_top + 511 * 8, pte(0x8000_7000, V | R | X | A));
    for h in 0..3u64 {
        let mut hs = HartState::default();
        for i in 0..32 {
            hs.regs.x[i] = 0x1000 * h + i as u64;
        }
        hs.regs.pc = 0x8000_1000 + h;
        hs.csrs.insert(Csr::Satp, SATP);
        hs.csrs
            .insert(Csr::Sstatus, (1 << 1) | (1 << 8) | (1 << 18));
        hs.csrs.insert(Csr::Scause, 13);
        hs.csrs.insert(Csr::Sepc, 0x8000_2000);
        hs.csrs.insert(Csr::Stval, 0xdead);
        hs.csrs.insert(Csr::Stvec, 0x8000_3000);
        hs.csrs.insert(Csr::Sscratch, 0);
        hs.csrs.insert(Csr::Sie, 0x222);
        hs.csrs.insert(Csr::Sip, 0x20);
        hs.csrs.insert(Csr::Priv, 1);
        t.harts.push(hs);
    }
    t
}

pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Run `kinspect ARGS...` on `target` through the real argument parser.
pub fn run(target: &mut MemoryTarget, args: &[&str]) -> Run {
    run_dyn(target, args)
}

/// [`run`] on any target.
pub fn run_dyn(target: &mut dyn Target, args: &[&str]) -> Run {
    // The default ELF path is relative to the working directory, which
    // for tests is inspector/kinspect: no ELF unless a test passes --elf.
    let mut full = vec!["kinspect"];
    full.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_args_on(&full, target, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}
