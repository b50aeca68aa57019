//! Walks, `info mem` ranges, `vmprint` and translations over crafted
//! physical-memory images: superpages, cycles, shared tables, pointers
//! outside RAM, reserved encodings, unreadable pages.
//!
//! The `qemu_7_2_*` golden below is what `qemu-system-riscv64` 7.2.22
//! printed for `monitor info mem` after the same table was written into a
//! halted machine through its gdb stub and satp pointed at it.

use std::collections::HashMap;

use kinspect_sv39::info_mem;
use kinspect_sv39::vmprint::{self, Label};
use kinspect_sv39::{
    translate, walk, Finding, PhysAddr, PhysRead, Pte, PteFlags, PteProblem, Ram, ReadError,
    StepOutcome, VirtAddr, WalkLimits,
};

const V: PteFlags = PteFlags::V;
const R: PteFlags = PteFlags::R;
const W: PteFlags = PteFlags::W;
const X: PteFlags = PteFlags::X;
const G: PteFlags = PteFlags::G;
const A: PteFlags = PteFlags::A;
const D: PteFlags = PteFlags::D;

/// Sparse physical memory; every page-table page read is counted.
#[derive(Default)]
struct Image {
    words: HashMap<PhysAddr, u64>,
    readable_pages: Vec<PhysAddr>,
    reads: Vec<(PhysAddr, usize)>,
    fail_fatally: bool,
}

impl Image {
    fn set(&mut self, pa: PhysAddr, v: u64) {
        self.words.insert(pa, v);
        let page = pa.page_down();
        if !self.readable_pages.contains(&page) {
            self.readable_pages.push(page);
        }
    }
    fn page(&mut self, pa: PhysAddr) {
        if !self.readable_pages.contains(&pa) {
            self.readable_pages.push(pa);
        }
    }
}

/// The transport failure of the crafted image.
#[derive(Debug, PartialEq, Eq)]
struct Lost;

impl PhysRead for Image {
    type Error = Lost;
    fn read(&mut self, pa: PhysAddr, buf: &mut [u8]) -> Result<(), ReadError<Lost>> {
        self.reads.push((pa, buf.len()));
        if self.fail_fatally {
            return Err(ReadError::Fatal(Lost));
        }
        if !self.readable_pages.contains(&pa.page_down()) {
            return Err(ReadError::Unreadable(format!("nothing at {pa:#x}")));
        }
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let v = self.words.get(&(pa + 8 * i as u64)).copied().unwrap_or(0);
            chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

fn pte(pa: PhysAddr, flags: PteFlags) -> u64 {
    Pte::new(pa, flags).0
}

const ROOT: PhysAddr = PhysAddr(0x8000_1000);
const L1: PhysAddr = PhysAddr(0x8000_2000);
const TA: PhysAddr = PhysAddr(0x8000_3000);
const TB: PhysAddr = PhysAddr(0x8000_4000);
const TC: PhysAddr = PhysAddr(0x8000_5000);

/// The table written into QEMU for the golden below.
fn qemu_experiment() -> Image {
    let mut m = Image::default();
    let f = V | R | W | A | D;
    m.set(ROOT, pte(L1, V));
    m.set(L1, pte(TA, V));
    m.set(L1 + 8, pte(TB, V));
    // a VA hole over contiguous PAs
    m.set(TA, pte(PhysAddr(0x8010_0000), f));
    m.set(TA + 2 * 8, pte(PhysAddr(0x8010_1000), f));
    // contiguous across two level-0 tables
    m.set(TA + 511 * 8, pte(PhysAddr(0x8020_0000), f));
    m.set(TB, pte(PhysAddr(0x8020_1000), f));
    // 4 KiB page then a contiguous megapage, then two more megapages
    m.set(TB + 511 * 8, pte(PhysAddr(0x803f_f000), f));
    m.set(L1 + 2 * 8, pte(PhysAddr(0x8040_0000), f));
    m.set(L1 + 3 * 8, pte(PhysAddr(0x8060_0000), f));
    // megapage, then a pointer whose first leaf continues it
    m.set(L1 + 4 * 8, pte(PhysAddr(0x8080_0000), f));
    m.set(L1 + 5 * 8, pte(TC, V));
    m.set(TC, pte(PhysAddr(0x80a0_0000), f));
    // attribute changes: D, then G
    m.set(TC + 8, pte(PhysAddr(0x80a0_1000), V | R | W | A));
    m.set(TC + 2 * 8, pte(PhysAddr(0x80a0_2000), V | R | W | A | G));
    // W without R; RSW bits (ignored by the merge)
    m.set(TC + 3 * 8, pte(PhysAddr(0x80a0_3000), V | W | A));
    m.set(TC + 4 * 8, pte(PhysAddr(0x80a0_4000), V | R | A) | (3 << 8));
    m.set(TC + 5 * 8, pte(PhysAddr(0x80a0_5000), V | R | A));
    // PBMT, a reserved bit, the N bit
    m.set(
        TC + 7 * 8,
        pte(PhysAddr(0x80a0_7000), V | R | A) | (1 << 61),
    );
    m.set(
        TC + 9 * 8,
        pte(PhysAddr(0x80a0_9000), V | R | A) | (1 << 54),
    );
    m.set(
        TC + 11 * 8,
        pte(PhysAddr(0x80a0_b000), V | R | A) | (1 << 63),
    );
    // gigapages: aligned, misaligned, and two in the upper half
    m.set(ROOT + 8, pte(PhysAddr(0x4000_0000), V | R | X | A));
    m.set(ROOT + 3 * 8, pte(PhysAddr(0x8020_0000), V | R | X | A));
    m.set(
        ROOT + 256 * 8,
        pte(PhysAddr(0x8000_0000), V | R | W | X | A | D),
    );
    m.set(
        ROOT + 511 * 8,
        pte(PhysAddr(0x8000_0000), V | R | W | X | A | D),
    );
    m
}

const QEMU_7_2_INFO_MEM: &str = "\
vaddr            paddr            size             attr
---------------- ---------------- ---------------- -------
0000000000000000 0000000080100000 0000000000001000 rw---ad
0000000000002000 0000000080101000 0000000000001000 rw---ad
00000000001ff000 0000000080200000 0000000000001000 rw---ad
0000000000200000 0000000080201000 0000000000001000 rw---ad
00000000003ff000 00000000803ff000 0000000000001000 rw---ad
0000000000400000 0000000080400000 0000000000600000 rw---ad
0000000000a00000 0000000080a00000 0000000000001000 rw---ad
0000000000a01000 0000000080a01000 0000000000001000 rw---a-
0000000000a02000 0000000080a02000 0000000000001000 rw--ga-
0000000000a03000 0000000080a03000 0000000000001000 -w---a-
0000000000a04000 0000000080a04000 0000000000002000 r----a-
0000000000a07000 8000000080a07000 0000000000001000 r----a-
0000000000a09000 0100000080a09000 0000000000001000 r----a-
0000000000a0b000 0000000080a0b000 0000000000001000 r----a-
0000000040000000 0000000040000000 0000000040000000 r-x--a-
00000000c0000000 0000000080200000 0000000040000000 r-x--a-
ffffffc000000000 0000000080000000 0000000040000000 rwx--ad
ffffffffc0000000 0000000080000000 0000000040000000 rwx--ad
";

#[test]
fn info_mem_matches_qemu_7_2_byte_for_byte() {
    let mut m = qemu_experiment();
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    assert_eq!(info_mem::render(&info_mem::ranges(&w)), QEMU_7_2_INFO_MEM);
}

#[test]
fn each_table_page_is_read_once_and_whole() {
    let mut m = qemu_experiment();
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    assert_eq!(w.tables, vec![ROOT, L1, TA, TB, TC]);
    assert_eq!(m.reads, [ROOT, L1, TA, TB, TC].map(|p| (p, 4096)).to_vec());
}

#[test]
fn crafted_reserved_encodings_become_findings() {
    let mut m = qemu_experiment();
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    let problems: Vec<(VirtAddr, PteProblem)> = w
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Reserved { va, problem, .. } => Some((*va, *problem)),
            _ => None,
        })
        .collect();
    assert_eq!(
        problems,
        vec![
            (VirtAddr(0xa03000), PteProblem::WriteWithoutRead),
            (
                VirtAddr(0xa09000),
                PteProblem::ReservedBits { bits: 1 << 54 }
            ),
            (
                VirtAddr(0xc000_0000),
                PteProblem::MisalignedSuperpage { level: 2 }
            ),
        ]
    );
}

#[test]
fn vmprint_prints_xv6s_format_with_indices_or_vas() {
    let mut m = Image::default();
    let root = PhysAddr(0x87f6_e000);
    m.set(root, 0x0000000021fda801);
    m.set(PhysAddr(0x87f6a000), 0x0000000021fda401);
    m.set(PhysAddr(0x87f69000), 0x0000000021fdac1f);
    m.set(PhysAddr(0x87f69000) + 8, 0x0000000021fda00f);
    m.set(root + 255 * 8, 0x0000000021fdb401);
    m.page(PhysAddr(0x87f6d000));
    let w = walk(&mut m, root, WalkLimits::default()).unwrap();
    // The pgtbl lab's own example.
    assert_eq!(
        vmprint::lines(&w, Label::Index).join("\n"),
        "page table 0x0000000087f6e000
 ..0: pte 0x0000000021fda801 pa 0x0000000087f6a000
 .. ..0: pte 0x0000000021fda401 pa 0x0000000087f69000
 .. .. ..0: pte 0x0000000021fdac1f pa 0x0000000087f6b000
 .. .. ..1: pte 0x0000000021fda00f pa 0x0000000087f68000
 ..255: pte 0x0000000021fdb401 pa 0x0000000087f6d000"
    );
    let va = vmprint::lines(&w, Label::Va);
    assert_eq!(
        va[4],
        " .. .. ..0x0000000000001000: pte 0x0000000021fda00f pa 0x0000000087f68000"
    );
    assert_eq!(
        va[5],
        " ..0x0000003fc0000000: pte 0x0000000021fdb401 pa 0x0000000087f6d000"
    );
}

#[test]
fn upper_half_vas_are_sign_extended() {
    let mut m = Image::default();
    m.set(ROOT + 256 * 8, pte(L1, V));
    m.set(L1 + 511 * 8, pte(TA, V));
    m.set(TA + 511 * 8, pte(PhysAddr(0x8000_7000), V | R | X | A));
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    assert_eq!(
        w.leaves().next().unwrap().va,
        VirtAddr(0xffff_ffc0_3fff_f000)
    );
    assert_eq!(
        vmprint::lines(&w, Label::Va)[1],
        " ..0xffffffc000000000: pte 0x0000000020000801 pa 0x0000000080002000"
    );
}

#[test]
fn a_cycle_is_reported_and_bounded() {
    let mut m = Image::default();
    // root[0] points at the root itself; at level 1 that reads root[0]
    // again, now a pointer to a level-0 table (the root once more).
    m.set(ROOT, pte(ROOT, V));
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    assert!(w.findings.iter().any(|f| matches!(
        f,
        Finding::TableSeenAgain {
            table: ROOT,
            cycle: true,
            ..
        }
    )));
    // Three levels at most, one read of the page.
    assert_eq!(w.entries.len(), 3);
    assert_eq!(m.reads.len(), 1);
    assert!(w.findings.iter().any(|f| matches!(
        f,
        Finding::Reserved {
            problem: PteProblem::PointerAtLevel0,
            ..
        }
    )));
    assert!(info_mem::ranges(&w).is_empty());
}

#[test]
fn a_table_shared_twice_is_reported_and_walked_from_the_copy() {
    let mut m = Image::default();
    m.set(ROOT, pte(L1, V));
    m.set(ROOT + 8, pte(L1, V));
    m.set(L1, pte(PhysAddr(0x8010_0000), V | R | W | A | D));
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    let shared: Vec<_> = w
        .findings
        .iter()
        .filter(|f| {
            matches!(
                f,
                Finding::TableSeenAgain {
                    table: L1,
                    cycle: false,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(shared.len(), 1, "{:?}", w.findings);
    assert_eq!(m.reads.len(), 2);
    let vas: Vec<u64> = w.leaves().map(|l| l.va.0).collect();
    assert_eq!(vas, vec![0, 0x4000_0000]);
    // Like QEMU: one range per table visit, even with the same PA.
    assert_eq!(info_mem::ranges(&w).len(), 2);
}

#[test]
fn a_worst_case_tree_stops_at_the_entry_limit() {
    let mut m = Image::default();
    // Every root entry -> the same L1, every L1 entry -> the same L0 full of leaves.
    for i in 0..512 {
        m.set(ROOT + 8 * i, pte(L1, V));
        m.set(L1 + 8 * i, pte(TA, V));
        m.set(TA + 8 * i, pte(PhysAddr(0x8010_0000), V | R | A));
    }
    let limits = WalkLimits {
        max_entries: 10_000,
        ..WalkLimits::default()
    };
    let w = walk(&mut m, ROOT, limits).unwrap();
    assert_eq!(w.entries.len(), 10_000);
    assert!(w.findings.contains(&Finding::Truncated { entries: 10_000 }));
    assert_eq!(m.reads.len(), 3);
}

#[test]
fn pointers_outside_ram_are_not_followed() {
    let mut m = Image::default();
    m.set(ROOT, pte(PhysAddr(0x1000_0000), V));
    m.set(ROOT + 8, pte(PhysAddr(0x8800_0000), V));
    // The last page of RAM is fine.
    m.set(ROOT + 16, pte(PhysAddr(0x87ff_f000), V));
    m.page(PhysAddr(0x87ff_f000));
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    let outside: Vec<u64> = w
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::TableOutsideRam { table, .. } => Some(table.0),
            _ => None,
        })
        .collect();
    assert_eq!(outside, vec![0x1000_0000, 0x8800_0000]);
    assert_eq!(m.reads.len(), 2);
    // A bigger RAM parameter makes the second pointer legal.
    let ram = Ram {
        base: PhysAddr(0x8000_0000),
        size: 256 << 20,
    };
    m.page(PhysAddr(0x8800_0000));
    let w = walk(
        &mut m,
        ROOT,
        WalkLimits {
            ram,
            ..WalkLimits::default()
        },
    )
    .unwrap();
    assert_eq!(
        w.findings
            .iter()
            .filter(|f| matches!(f, Finding::TableOutsideRam { .. }))
            .count(),
        1
    );
}

#[test]
fn unreadable_tables_and_roots_are_findings_and_fatal_errors_are_errors() {
    let mut m = Image::default();
    m.set(ROOT, pte(PhysAddr(0x8050_0000), V)); // inside RAM, but never written
    let w = walk(&mut m, ROOT, WalkLimits::default()).unwrap();
    assert!(matches!(
        w.findings[..],
        [Finding::Unreadable {
            table: PhysAddr(0x8050_0000),
            level: 1,
            ..
        }]
    ));
    let w = walk(&mut m, PhysAddr(0x1000), WalkLimits::default()).unwrap();
    assert!(matches!(
        w.findings[..],
        [Finding::TableOutsideRam { pte_addr: None, .. }]
    ));
    m.fail_fatally = true;
    assert!(matches!(
        walk(&mut m, ROOT, WalkLimits::default()),
        Err(Lost)
    ));
}

#[test]
fn translate_explains_each_level() {
    let mut m = qemu_experiment();
    let t = translate(&mut m, ROOT, VirtAddr(0x2123), Ram::default()).unwrap();
    assert_eq!(t.pa(), Some(PhysAddr(0x8010_1123)));
    assert_eq!(t.steps.len(), 3);
    assert_eq!(
        t.steps
            .iter()
            .map(|s| (s.level, s.table, s.index))
            .collect::<Vec<_>>(),
        vec![(2, ROOT, 0), (1, L1, 0), (0, TA, 2)]
    );
    // Through a megapage.
    let t = translate(&mut m, ROOT, VirtAddr(0x45_6789), Ram::default()).unwrap();
    assert_eq!(t.pa(), Some(PhysAddr(0x8045_6789)));
    assert!(matches!(
        t.outcome,
        StepOutcome::Mapped {
            level: 1,
            page_size: 0x20_0000,
            ..
        }
    ));
    // Through a gigapage in the upper half.
    let t = translate(
        &mut m,
        ROOT,
        VirtAddr(0xffff_ffff_c000_1234),
        Ram::default(),
    )
    .unwrap();
    assert_eq!(t.pa(), Some(PhysAddr(0x8000_1234)));
}

#[test]
fn translate_reports_where_and_why_it_stopped() {
    let mut m = qemu_experiment();
    let fault = |m: &mut Image, va: u64| match translate(m, ROOT, VirtAddr(va), Ram::default())
        .unwrap()
        .outcome
    {
        StepOutcome::Fault { level, reason } => (level, reason),
        o => panic!("{va:#x} translated: {o:?}"),
    };
    let (level, why) = fault(&mut m, 0x1000);
    assert_eq!(level, 0);
    assert!(why.contains("not valid"), "{why}");
    let (level, why) = fault(&mut m, 0xa0_3000);
    assert_eq!(level, 0);
    assert!(why.contains("W without R"), "{why}");
    let (level, why) = fault(&mut m, 0xc000_0000);
    assert_eq!(level, 2);
    assert!(why.contains("misaligned"), "{why}");
    let (_, why) = fault(&mut m, 0x40_0000_0000);
    assert!(why.contains("not canonical"), "{why}");
    let (level, why) = fault(&mut m, 2 << 30);
    assert_eq!(level, 2);
    assert!(why.contains("not valid"), "{why}");
}
