//! Attach to a gdb stub, print what a session learns, and leave the
//! machine as it was. With `KINSPECT_RSP_TRACE=1` every packet is shown:
//! the traces in docs/protocol.md come from this program.
//!
//! ```text
//! cargo run -p kinspect-rsp --example rsp-probe -- localhost:1234
//! ```

use kinspect_rsp::{ConnectOptions, Session};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost:1234".into());
    if let Err(e) = probe(&addr) {
        eprintln!("rsp-probe: {e}");
        std::process::exit(1);
    }
}

fn probe(addr: &str) -> kinspect_rsp::Result<()> {
    let mut s = Session::connect(addr, &ConnectOptions::default())?;
    println!(
        "attached to {addr}: guest was {}",
        if s.was_running() {
            "running (halted for us)"
        } else {
            "halted"
        }
    );
    println!("qSupported: {}", s.features().raw);
    println!("one m packet carries at most {} bytes", s.max_read());
    let threads = s.threads()?;
    for t in &threads {
        let pc = s.core_regs(*t)?.pc;
        let satp = s.read_register(*t, "satp")?;
        let mode = s.read_register(*t, "priv")?;
        println!("{t}: pc {pc:#018x} satp {satp:#018x} priv {mode}");
    }
    println!("satp is register {}", s.regnum("satp")?);
    let mut word = [0u8; 8];
    s.read_physical(0x8000_0000, &mut word)?;
    println!("physical 0x80000000: {:#018x}", u64::from_le_bytes(word));
    print!("{}", s.monitor("info status")?.replace("\r\n", "\n"));
    s.finish()
}
