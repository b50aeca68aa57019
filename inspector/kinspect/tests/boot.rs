//! The kernel boots under the real QEMU with xv6-riscv's command line and
//! every hart reports in.

use std::time::Duration;

use kinspect_testkit::{Boot, Machine};

const BOOT: Duration = Duration::from_secs(60);

#[test]
fn every_hart_starts() {
    let m = Machine::start();
    m.wait_for("xv6 kernel is booting", BOOT);
    for hart in 0..3 {
        m.wait_for(&format!("hart {hart} starting"), BOOT);
    }
    let console = m.console();
    assert!(
        !console.contains("panic:"),
        "the kernel panicked while booting:\n{console}"
    );
}

#[test]
fn a_single_hart_machine_boots_too() {
    let m = Machine::boot(Boot {
        smp: 1,
        ..Boot::default()
    });
    m.wait_for("hart 0 starting", BOOT);
    let console = m.console();
    assert!(
        !console.contains("hart 1 starting"),
        "a hart that does not exist reported in:\n{console}"
    );
}
