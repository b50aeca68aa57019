//! Reflection against the live kernel under QEMU: the process table read
//! through the kernel's DWARF must say what the kernel itself prints for
//! Ctrl-P.
//!
//! Memory is read with QEMU's own monitor (`xp`, physical addresses,
//! through the testkit's QMP connection), not with kinspect's gdb client,
//! so this checks the symbol layer alone. xv6's kernel data is
//! identity-mapped, so a global's link address is its physical address.

use kinspect_symbols::{Memory, MemoryError, Symbols};
use kinspect_testkit::{root, Machine};

/// Physical memory through QEMU's `xp` monitor command.
struct MonitorMemory<'a>(&'a mut Machine);

impl Memory for MonitorMemory<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let fail = |why: String| MemoryError::new(addr, buf.len(), why);
        let start = addr & !7;
        let end = (addr + buf.len() as u64 + 7) & !7;
        let mut words: Vec<u8> = Vec::with_capacity((end - start) as usize);
        let mut at = start;
        while at < end {
            let n = ((end - at) / 8).min(256);
            let out = self.0.hmp(0, &format!("xp /{n}gx {at:#x}"));
            let mut got = 0;
            for line in out.lines() {
                let Some((_, values)) = line.split_once(':') else {
                    continue;
                };
                for v in values.split_whitespace() {
                    let v = u64::from_str_radix(v.trim_start_matches("0x"), 16)
                        .map_err(|e| fail(format!("bad xp output `{line}`: {e}")))?;
                    words.extend_from_slice(&v.to_le_bytes());
                    got += 1;
                }
            }
            if got != n {
                return Err(fail(format!("xp gave {got} of {n} words: {out}")));
            }
            at += n * 8;
        }
        let off = (addr - start) as usize;
        buf.copy_from_slice(&words[off..off + buf.len()]);
        Ok(())
    }
}

/// What the kernel's procdump prints for a state.
fn procdump_word(variant: &str) -> &'static str {
    match variant {
        "Used" | "USED" => "used",
        "Sleeping" | "SLEEPING" => "sleep",
        "Runnable" | "RUNNABLE" => "runble",
        "Running" | "RUNNING" => "run",
        "Zombie" | "ZOMBIE" => "zombie",
        _ => "???",
    }
}

#[test]
fn process_table_read_through_dwarf_matches_ctrl_p() {
    let elf = root().join("target/kernel/kernel.elf");
    if !elf.exists() {
        println!(
            "note: {} not built (cargo xtask build); skipping",
            elf.display()
        );
        return;
    }
    let syms = Symbols::open(&elf).unwrap();
    let mut m = Machine::shell_with_background_cats(1);
    let listed = m.procdump();
    assert!(
        listed.len() >= 3,
        "Ctrl-P listed too few processes: {listed:?}"
    );
    m.pause();

    let mut mem = MonitorMemory(&mut m);
    let procs = syms.load_global(&mut mem, "proc").unwrap();
    assert_eq!(procs.items().len(), 64);
    let mut ours = Vec::new();
    for p in procs.items() {
        let state = p
            .field("state")
            .unwrap()
            .variant()
            .unwrap_or("?")
            .to_string();
        if state == "Unused" {
            continue;
        }
        ours.push((
            p.field("pid").unwrap().as_i64().unwrap(),
            procdump_word(&state).to_string(),
            p.field("name").unwrap().as_cstr().unwrap(),
        ));
    }
    assert_eq!(ours, listed, "proc[] via DWARF vs Ctrl-P");

    // Expressions over live memory: the first process's name and parent.
    let init = syms.eval_address("&proc[0]", &mut mem).unwrap();
    let mut name = [0u8; 16];
    let name_at = syms.eval_address("proc[0].name", &mut mem).unwrap();
    mem.read(name_at, &mut name).unwrap();
    assert!(name.starts_with(b"init\0"), "{name:?}");
    let sh = procs
        .items()
        .iter()
        .position(|p| p.field("name").unwrap().as_cstr().unwrap() == "sh")
        .expect("a slot running sh");
    let parent = syms
        .eval_address(&format!("proc[{sh}].parent"), &mut mem)
        .unwrap();
    assert_eq!(parent, init, "sh's parent is init");
    assert_eq!(
        syms.eval_address(&format!("proc[{sh}].parent->pid"), &mut mem)
            .unwrap(),
        1
    );
}
