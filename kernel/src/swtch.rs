//! Context switch (xv6's swtch.S).
//!
//! `swtch(old, new)` saves the current registers in `old`, loads them from
//! `new` and returns on `new`'s stack, to `new`'s `ra`. Only callee-saved
//! registers (and ra, sp) are saved: the caller of `swtch` has saved the
//! rest, per the calling convention.

use crate::proc::Context;

#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".section .text",
    ".globl swtch",
    ".align 2",
    "swtch:",
    "        sd ra, 0(a0)",
    "        sd sp, 8(a0)",
    "        sd s0, 16(a0)",
    "        sd s1, 24(a0)",
    "        sd s2, 32(a0)",
    "        sd s3, 40(a0)",
    "        sd s4, 48(a0)",
    "        sd s5, 56(a0)",
    "        sd s6, 64(a0)",
    "        sd s7, 72(a0)",
    "        sd s8, 80(a0)",
    "        sd s9, 88(a0)",
    "        sd s10, 96(a0)",
    "        sd s11, 104(a0)",
    "        ld ra, 0(a1)",
    "        ld sp, 8(a1)",
    "        ld s0, 16(a1)",
    "        ld s1, 24(a1)",
    "        ld s2, 32(a1)",
    "        ld s3, 40(a1)",
    "        ld s4, 48(a1)",
    "        ld s5, 56(a1)",
    "        ld s6, 64(a1)",
    "        ld s7, 72(a1)",
    "        ld s8, 80(a1)",
    "        ld s9, 88(a1)",
    "        ld s10, 96(a1)",
    "        ld s11, 104(a1)",
    "        ret",
);

#[cfg(target_arch = "riscv64")]
extern "C" {
    /// Save the current registers in `old`, load `new`'s (swtch.rs).
    pub fn swtch(old: *mut Context, new: *const Context);
}

/// Host builds (unit tests) never switch contexts.
///
/// # Safety
/// Never safe to call: it does not exist on the host.
#[cfg(not(target_arch = "riscv64"))]
pub unsafe fn swtch(_old: *mut Context, _new: *const Context) {
    unreachable!("swtch on the host");
}

#[cfg(test)]
mod tests {
    use crate::proc::Context;
    use core::mem::offset_of;

    #[test]
    fn context_offsets_match_the_assembly() {
        assert_eq!(offset_of!(Context, ra), 0);
        assert_eq!(offset_of!(Context, sp), 8);
        assert_eq!(offset_of!(Context, s0), 16);
        assert_eq!(offset_of!(Context, s11), 104);
    }
}
