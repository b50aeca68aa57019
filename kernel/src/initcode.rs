//! The first user program (xv6's user/initcode.S): `exec("/init", argv)`,
//! and `exit` forever if that fails. userinit() copies these bytes to
//! address 0 of the first process. Position-independent: `la` is
//! pc-relative, so the copy at 0 works.

#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".section .rodata.initcode, \"a\"",
    ".option push",
    ".option norelax",
    ".globl initcode_start",
    ".globl initcode_end",
    ".p2align 3",
    "initcode_start:",
    // exec(init, argv)
    "        la a0, 3f",
    "        la a1, 4f",
    "        li a7, {sys_exec}",
    "        ecall",
    // for(;;) exit();
    "1:",
    "        li a7, {sys_exit}",
    "        ecall",
    "        j 1b",
    // char init[] = "/init\\0";
    "3:",
    "        .string \"/init\"",
    // char *argv[] = { init, 0 };
    "        .p2align 3",
    "4:",
    "        .dword 3b - initcode_start",
    "        .dword 0",
    "initcode_end:",
    ".option pop",
    sys_exec = const crate::syscall::SYS_EXEC,
    sys_exit = const crate::syscall::SYS_EXIT,
);

/// The initcode bytes.
#[cfg(target_arch = "riscv64")]
pub fn initcode() -> &'static [u8] {
    extern "C" {
        static initcode_start: u8;
        static initcode_end: u8;
    }
    let start = &raw const initcode_start;
    let end = &raw const initcode_end;
    // SAFETY: the two labels bracket the bytes above, in .rodata.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

/// Host builds have no initcode.
#[cfg(not(target_arch = "riscv64"))]
pub fn initcode() -> &'static [u8] {
    &[]
}
