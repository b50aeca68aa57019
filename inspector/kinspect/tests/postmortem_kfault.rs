//! `kfault` provokes each classic panic through the real kernel under the
//! real QEMU, and only after `kfault enable`.

use std::time::Duration;

use kinspect_testkit::Machine;

const WAIT: Duration = Duration::from_secs(60);

/// Boot, wait for the shell, run `kfault enable` then `kfault KIND`, and
/// return the console from `kfault KIND` on.
fn crash(kind: &str, expect: &str, file: &str) -> String {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    let mark = m.console_len();
    m.send(b"kfault enable\n");
    m.wait_for_after(mark, "kdebug: fault injection enabled by pid", WAIT);
    let mark = m.console_len();
    m.send(format!("kfault {kind}\n").as_bytes());
    m.wait_for_after(mark, &format!("panic: {expect}"), WAIT);
    // The location line follows the message.
    let con = m.wait_for_after(mark, &format!("    at src/{file}:"), WAIT);
    con[mark..].to_string()
}

#[test]
fn kdebug_is_off_until_enabled() {
    let mut m = Machine::start();
    m.wait_for("$ ", WAIT);
    let mark = m.console_len();
    m.send(b"kfault status\n");
    m.wait_for_after(mark, "kdebug disabled", WAIT);
    let mark = m.console_len();
    m.send(b"kfault remap\n");
    let con = m.wait_for_after(mark, "kdebug returned -1", WAIT);
    assert!(!con[mark..].contains("panic"), "{con}");
    // The machine still works.
    let mark = m.console_len();
    m.send(b"echo alive\n");
    m.wait_for_after(mark, "alive", WAIT);
}

#[test]
fn remap_through_uvmalloc() {
    crash("remap", "remap", "vm.rs");
}

#[test]
fn remap_of_the_kernel_stack() {
    crash("remap-kstack", "remap", "vm.rs");
}

#[test]
fn kvmpa_of_the_guard_page() {
    crash("kvmpa", "kvmpa: 0x3fffff", "sysdebug.rs");
}

#[test]
fn uvmunmap_not_mapped() {
    crash("uvmunmap", "uvmunmap: not mapped", "vm.rs");
}

#[test]
fn freewalk_leaf() {
    crash("freewalk", "freewalk: leaf", "vm.rs");
}

#[test]
fn kernel_page_fault() {
    let con = crash("pagefault", "kerneltrap", "trap.rs");
    assert!(con.contains("scause=0xd"), "{con}");
    assert!(con.contains("stval=0x3fffff"), "{con}");
}
