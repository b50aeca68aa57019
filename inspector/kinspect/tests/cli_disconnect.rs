//! A target that goes away mid-command (QEMU killed, socket closed): every
//! command ends with one line and exit code 3, never a hang or a panic,
//! and never a partial page-table view passed off as complete.

mod cli_common;
use cli_common::*;

use kinspect::target::memory::MemoryTarget;
use kinspect::target::{Csr, GeneralRegs, Hart, Result, RunState, Target, TargetError};

/// The crafted machine, which dies after `reads_left` physical reads.
struct Dying {
    inner: MemoryTarget,
    reads_left: usize,
}

impl Target for Dying {
    fn describe(&self) -> String {
        "a dying machine".into()
    }
    fn harts(&mut self) -> Result<Vec<Hart>> {
        self.inner.harts()
    }
    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        if self.reads_left == 0 {
            return Err(TargetError::Disconnected(
                "QEMU closed the connection".into(),
            ));
        }
        self.reads_left -= 1;
        self.inner.read_phys(pa, buf)
    }
    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs> {
        self.inner.regs(hart)
    }
    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64> {
        self.inner.csr(hart, csr)
    }
    fn run_state(&mut self) -> Result<RunState> {
        Ok(RunState::Halted)
    }
}

#[test]
fn losing_the_target_mid_walk_is_exit_3_with_one_line() {
    for cmd in [
        &["maps"][..],
        &["vmprint"],
        &["translate", "0x3ffffff000"],
        &["--json", "maps"],
    ] {
        for reads in 0..3 {
            let mut t = Dying {
                inner: machine(),
                reads_left: reads,
            };
            let r = run_dyn(&mut t, cmd);
            assert_eq!(r.code, 3, "{cmd:?} after {reads} reads: {}", r.err);
            if cmd[0] == "--json" {
                // One error object on stdout, no partial document.
                assert_eq!(r.err, "", "{cmd:?}");
                assert_eq!(
                    r.out,
                    "{\"error\":\"connection lost: QEMU closed the connection\",\"exit_code\":3}\n",
                    "{cmd:?}"
                );
                continue;
            }
            assert_eq!(
                r.err, "kinspect: connection lost: QEMU closed the connection\n",
                "{cmd:?}"
            );
            assert_eq!(r.out, "", "{cmd:?}: printed a partial view");
        }
    }
}

#[test]
fn enough_reads_and_the_same_commands_succeed() {
    let mut t = Dying {
        inner: machine(),
        reads_left: 7,
    };
    let r = run_dyn(&mut t, &["maps"]);
    assert_eq!(r.code, 0, "{}", r.err);
}
