//! A client for the GDB remote serial protocol, written for QEMU's gdb stub
//! (`-gdb tcp::PORT`) as kinspect's live backend uses it.
//!
//! The layers, bottom up, each its own module:
//!
//! - [`hex`]: hex numbers and byte strings, typed [`hex::DecodeHexError`];
//! - [`escape`]: `}` escapes and `*` run-length decoding inside a payload;
//! - [`frame`]: `$...#cs` framing, checksums, `+`/`-`, a streaming decoder;
//! - [`reply`], [`thread`]: `OK`/`E NN`/empty/`O` replies, stop replies,
//!   thread ids `p1.2`;
//! - [`target_xml`]: register numbers by name from `target.xml` and its includes;
//! - [`transport`]: the TCP socket (`TCP_NODELAY`, time-outs, one-line errors);
//! - [`client`]: send a packet, collect `+` and the reply, keep unasked stop replies;
//! - [`session`]: the operations (threads, `g`, `p`, `m`, `PhyMemMode`,
//!   `qRcmd`, halt/resume/step, `Z0`) and the attach/detach discipline;
//! - [`undertaker`]: a connection QEMU has not answered yet (busy with
//!   another client, or frozen) is kept by a detached process until QEMU
//!   takes it, and the guest is left as found then.
//!
//! Everything below [`transport`] is pure and tested byte by byte; the
//! session is tested end to end against a `gdbstub`-based fake target and
//! against the real QEMU (in kinspect's tests). `docs/protocol.md` has the
//! packet traces behind the choices made here.
//!
//! ```no_run
//! use kinspect_rsp::{ConnectOptions, Session, ThreadId};
//! let mut s = Session::connect("localhost:1234", &ConnectOptions::default())?;
//! let satp = s.read_register(ThreadId::for_hart(0), "satp")?;
//! let mut page = [0u8; 4096];
//! s.read_physical((satp & ((1 << 44) - 1)) << 12, &mut page)?; // the root page table
//! s.finish()?; // resumes the guest if it was running before we attached
//! # Ok::<(), kinspect_rsp::Error>(())
//! ```

pub mod client;
pub mod desc_cache;
pub mod error;
pub mod escape;
pub mod frame;
pub mod hex;
pub mod reply;
pub mod session;
pub mod target_xml;
pub mod thread;
pub mod transport;
pub mod undertaker;

pub use error::{Error, Result};
pub use gdbstub_arch::riscv::reg::RiscvCoreRegs;
pub use reply::StopReply;
pub use session::{ConnectOptions, Features, PhysicalMemory, RunState, Session, READ_DEPTH};
pub use target_xml::{Register, RegisterMap};
pub use thread::ThreadId;
