//! Pipelined reads against the real QEMU 7.2: several `m` packets in
//! flight (with `PhyMemMode` set and put back in the same pipeline) give
//! the bytes QEMU's own `pmemsave` writes, a read that fails half-way
//! leaves the session in step, and `PhyMemMode` is 0 afterwards.

use std::time::Duration;

use kinspect_rsp::{ConnectOptions, Error, Session, READ_DEPTH};
use kinspect_testkit::Machine;

const RAM: u64 = 0x8000_0000;

#[test]
fn pipelined_physical_reads_match_pmemsave_and_leave_the_mode_as_found() {
    let m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(120));
    let mut s = Session::connect(&m.gdb_addr(), &ConnectOptions::default()).unwrap();

    // The oracle: QEMU writes the same 1 MiB to a file itself (the guest
    // is halted while we are attached, so nothing changes in between).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ram.bin");
    let len = 1usize << 20;
    let out = s
        .monitor(&format!(
            "pmemsave {RAM:#x} {len:#x} \"{}\"",
            file.display()
        ))
        .unwrap();
    assert!(out.trim().is_empty(), "pmemsave said {out:?}");
    let want = std::fs::read(&file).unwrap();
    assert_eq!(want.len(), len);

    // One call: 512 `m` packets, READ_DEPTH at a time.
    let mut whole = vec![0u8; len];
    s.read_physical(RAM, &mut whole).unwrap();
    assert!(
        whole == want,
        "a 1 MiB pipelined read differs from pmemsave"
    );
    assert_eq!(
        s.most_in_flight(),
        READ_DEPTH,
        "the reads were not pipelined"
    );
    assert!(!s.phys_mem_mode().unwrap(), "PhyMemMode left at 1");

    // A page per call, as kinspect reads, odd sizes and offsets included.
    let mut paged = vec![0u8; len];
    let mut off = 0;
    let mut size = 1;
    while off < len {
        let n = size.min(len - off);
        s.read_physical(RAM + off as u64, &mut paged[off..off + n])
            .unwrap();
        off += n;
        size = if size >= 4096 { 7 } else { size * 3 + 1 };
    }
    assert!(
        paged == want,
        "page-sized pipelined reads differ from pmemsave"
    );
    assert!(!s.phys_mem_mode().unwrap(), "PhyMemMode left at 1");
    s.finish().unwrap();
}

#[test]
fn a_read_that_fails_half_way_leaves_the_session_in_step() {
    let m = Machine::start();
    m.wait_for("$ ", Duration::from_secs(120));
    let mut s = Session::connect(&m.gdb_addr(), &ConnectOptions::default()).unwrap();
    // Virtual addresses, through the selected hart's satp: a read that
    // runs from mapped memory into a hole QEMU's `info mem` shows.
    let info = s.monitor("info mem").unwrap();
    let (end_of_first, next_start) = first_hole(&info).expect("a hole in `info mem`");
    // 16 KiB before the hole's start, 16 KiB into it: the first packets
    // succeed, one fails, the ones behind it are drained.
    let start = end_of_first - 16 * 1024;
    assert!(next_start >= end_of_first + 16 * 1024, "{info}");
    let mut buf = vec![0u8; 32 * 1024];
    let e = s.read_memory(start, &mut buf).unwrap_err();
    match e {
        Error::Memory { addr, .. } => assert_eq!(addr, end_of_first, "{e}"),
        other => panic!("expected a memory error, got {other}"),
    }
    // The next requests get their own replies.
    let mut ok = vec![0u8; 8192];
    s.read_memory(start, &mut ok).unwrap();
    assert_eq!(ok[..], buf[..8192], "the mapped part reads the same twice");
    let mut phys = vec![0u8; 4096];
    s.read_physical(RAM, &mut phys).unwrap();
    assert!(!s.phys_mem_mode().unwrap(), "PhyMemMode left at 1");
    s.finish().unwrap();
}

/// The end of the first mapped range of `info mem` and the start of the
/// next, where they do not touch. Lines: `vaddr paddr size attr`.
fn first_hole(info: &str) -> Option<(u64, u64)> {
    let ranges: Vec<(u64, u64)> = info
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let va = u64::from_str_radix(w.next()?, 16).ok()?;
            let _pa = w.next()?;
            let size = u64::from_str_radix(w.next()?, 16).ok()?;
            Some((va, va + size))
        })
        .collect();
    ranges
        .windows(2)
        .find(|w| w[1].0 >= w[0].1 + 32 * 1024 && w[0].1 - w[0].0 >= 16 * 1024)
        .map(|w| (w[0].1, w[1].0))
}
