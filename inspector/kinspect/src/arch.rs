//! RISC-V registers in words: ABI register names, privilege levels, and
//! the supervisor CSRs decoded (scause, sstatus, sie/sip bits).
//!
//! Pure functions from values to text, used by every view that shows
//! registers: `regs`, the TUI, the post-mortem report.

/// ABI names of x0..x31.
pub const ABI: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

/// A privilege level by its encoding (QEMU's `priv` register).
pub fn priv_name(p: u64) -> &'static str {
    match p {
        0 => "U",
        1 => "S",
        3 => "M",
        _ => "?",
    }
}

/// scause as the privileged spec names it.
pub fn scause_name(scause: u64) -> String {
    let interrupt = scause >> 63 != 0;
    let code = scause & !(1 << 63);
    let name = if interrupt {
        match code {
            1 => "supervisor software interrupt",
            5 => "supervisor timer interrupt",
            9 => "supervisor external interrupt",
            13 => "counter-overflow interrupt",
            _ => "",
        }
    } else {
        match code {
            0 => "instruction address misaligned",
            1 => "instruction access fault",
            2 => "illegal instruction",
            3 => "breakpoint",
            4 => "load address misaligned",
            5 => "load access fault",
            6 => "store/AMO address misaligned",
            7 => "store/AMO access fault",
            8 => "environment call from U-mode",
            9 => "environment call from S-mode",
            12 => "instruction page fault",
            13 => "load page fault",
            15 => "store/AMO page fault",
            18 => "software check",
            19 => "hardware error",
            _ => "",
        }
    };
    if name.is_empty() {
        format!(
            "reserved {} {code}",
            if interrupt { "interrupt" } else { "exception" }
        )
    } else {
        name.to_string()
    }
}

/// sstatus with each set field named: `SIE SPIE SPP=S SUM FS=dirty`.
pub fn sstatus_names(v: u64) -> String {
    let ext = |bits: u64| ["off", "initial", "clean", "dirty"][(bits & 3) as usize];
    let mut n = Vec::new();
    let flag = |n: &mut Vec<String>, bit: u32, name: &str| {
        if v >> bit & 1 != 0 {
            n.push(name.to_string());
        }
    };
    flag(&mut n, 1, "SIE");
    flag(&mut n, 5, "SPIE");
    flag(&mut n, 6, "UBE");
    n.push(format!("SPP={}", if v >> 8 & 1 != 0 { "S" } else { "U" }));
    if v >> 9 & 3 != 0 {
        n.push(format!("VS={}", ext(v >> 9)));
    }
    if v >> 13 & 3 != 0 {
        n.push(format!("FS={}", ext(v >> 13)));
    }
    if v >> 15 & 3 != 0 {
        n.push(format!("XS={}", ext(v >> 15)));
    }
    flag(&mut n, 18, "SUM");
    flag(&mut n, 19, "MXR");
    match v >> 32 & 3 {
        1 => n.push("UXL=32".into()),
        2 => n.push("UXL=64".into()),
        3 => n.push("UXL=128".into()),
        _ => {}
    }
    flag(&mut n, 63, "SD");
    n.join(" ")
}

/// sie/sip: SSIE/SSIP, STIE/STIP, SEIE/SEIP, LCOFIE/LCOFIP.
pub fn interrupt_bits(v: u64, suffix: &str) -> String {
    let mut n = Vec::new();
    for (bit, name) in [(1, "SS"), (5, "ST"), (9, "SE"), (13, "LCOF")] {
        if v >> bit & 1 != 0 {
            n.push(format!("{name}{suffix}"));
        }
    }
    if n.is_empty() {
        "-".into()
    } else {
        n.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_scause() {
        assert_eq!(scause_name(13), "load page fault");
        assert_eq!(scause_name(15), "store/AMO page fault");
        assert_eq!(scause_name(8), "environment call from U-mode");
        assert_eq!(scause_name((1 << 63) | 5), "supervisor timer interrupt");
        assert_eq!(scause_name((1 << 63) | 9), "supervisor external interrupt");
        assert_eq!(scause_name(10), "reserved exception 10");
        assert_eq!(scause_name((1 << 63) | 3), "reserved interrupt 3");
    }

    #[test]
    fn names_sstatus_bits() {
        assert_eq!(sstatus_names(0), "SPP=U");
        assert_eq!(
            sstatus_names((1 << 1) | (1 << 5) | (1 << 8) | (1 << 18) | (1 << 19)),
            "SIE SPIE SPP=S SUM MXR"
        );
        assert_eq!(
            sstatus_names((3 << 13) | (2 << 32) | (1 << 63)),
            "SPP=U FS=dirty UXL=64 SD"
        );
    }

    #[test]
    fn names_privilege_and_interrupt_bits() {
        assert_eq!(priv_name(0), "U");
        assert_eq!(priv_name(1), "S");
        assert_eq!(priv_name(3), "M");
        assert_eq!(interrupt_bits(0x222, "IE"), "SSIE STIE SEIE");
        assert_eq!(interrupt_bits(0, "IP"), "-");
    }
}
