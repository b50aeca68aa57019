//! A fake QEMU for end-to-end tests of the client: a `gdbstub` target
//! serving a crafted RAM image, three harts with registers and CSRs, a
//! QEMU-shaped target description (`target.xml` including `riscv-csr.xml`
//! with `regnum`s), a monitor command, software breakpoints, single step
//! and continue/interrupt, over a real TCP socket on 127.0.0.1.
//!
//! The protocol is gdbstub's, not ours: the only code here is the target
//! state and a [`Connection`] wrapper that records what the client sent
//! and can cut the connection after N bytes to play a dying QEMU, or
//! freeze (neither read nor answer, as a QEMU stopped by SIGSTOP) until
//! thawed.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::outputln;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{GdbStubBuilder, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::single_register_access::{
    SingleRegisterAccess, SingleRegisterAccessOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::riscv::reg::id::RiscvRegId;
use gdbstub_arch::riscv::reg::RiscvCoreRegs;
use gdbstub_arch::riscv::Riscv64;

/// Where the fake RAM starts (QEMU virt's KERNBASE).
pub const RAM_BASE: u64 = 0x8000_0000;
/// The register numbers the fake's description gives (QEMU 7.2's).
pub const SATP: usize = 450;
pub const SSTATUS: usize = 322;
pub const PRIV: usize = 65;

/// The crafted RAM image: byte i is a function of i, with a zero run in
/// the middle so gdbstub's run-length encoding shows up on the wire.
pub fn ram_image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if (0x300..0x700).contains(&i) {
                0
            } else {
                (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2]
            }
        })
        .collect()
}

/// The value the fake gives hart `h`'s register `regnum`.
pub fn csr_value(h: usize, regnum: usize) -> u64 {
    match regnum {
        SATP => (8 << 60) | (0x87f00 + h as u64),
        PRIV => 1,
        _ => 0x1000 * regnum as u64 + h as u64,
    }
}

/// The fake's general registers for hart `h`: x_i = h << 32 | i.
pub fn core_value(h: usize, i: usize) -> u64 {
    ((h as u64) << 32) | i as u64
}

pub struct FakeMachine {
    pub ram: Vec<u8>,
    pub harts: usize,
    pub breakpoints: BTreeSet<u64>,
    pub stepped: Vec<usize>,
    pub monitor_lines: usize,
    /// Whether a step asked for the other harts to stay stopped.
    pub scheduler_locked: bool,
    running: bool,
    step_tid: Option<Tid>,
}

fn tid(h: usize) -> Tid {
    NonZeroUsize::new(h + 1).expect("hart + 1 is non-zero")
}

fn hart(t: Tid) -> usize {
    t.get() - 1
}

fn raw_regnum(id: RiscvRegId<u64>) -> Option<usize> {
    Some(match id {
        RiscvRegId::Gpr(i) => usize::from(i),
        RiscvRegId::Pc => 32,
        RiscvRegId::Fpr(i) => 33 + usize::from(i),
        RiscvRegId::Csr(n) => 65 + usize::from(n),
        RiscvRegId::Priv => 4161,
        _ => return None,
    })
}

impl Target for FakeMachine {
    type Arch = Riscv64;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for FakeMachine {
    fn read_registers(&mut self, regs: &mut RiscvCoreRegs<u64>, t: Tid) -> TargetResult<(), Self> {
        let h = hart(t);
        for (i, x) in regs.x.iter_mut().enumerate() {
            *x = core_value(h, i);
        }
        regs.pc = RAM_BASE
            + 0x1000 * h as u64
            + 4 * self.stepped.iter().filter(|&&s| s == h).count() as u64;
        Ok(())
    }

    fn write_registers(&mut self, _: &RiscvCoreRegs<u64>, _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    fn support_single_register_access(&mut self) -> Option<SingleRegisterAccessOps<'_, Tid, Self>> {
        Some(self)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _: Tid) -> TargetResult<usize, Self> {
        let off = start.checked_sub(RAM_BASE).ok_or(TargetError::NonFatal)? as usize;
        let src = self
            .ram
            .get(off..off.checked_add(data.len()).ok_or(TargetError::NonFatal)?)
            .ok_or(TargetError::NonFatal)?;
        data.copy_from_slice(src);
        Ok(data.len())
    }

    fn write_addrs(&mut self, _: u64, _: &[u8], _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    fn list_active_threads(&mut self, f: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        (0..self.harts).for_each(|h| f(tid(h)));
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleRegisterAccess<Tid> for FakeMachine {
    fn read_register(
        &mut self,
        t: Tid,
        id: RiscvRegId<u64>,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let n = raw_regnum(id).ok_or(TargetError::NonFatal)?;
        let v = match n {
            0..=32 => core_value(hart(t), n),
            PRIV | SSTATUS | SATP => csr_value(hart(t), n),
            _ => return Err(TargetError::NonFatal),
        };
        let b = v.to_le_bytes();
        let len = buf.len().min(8);
        buf[..len].copy_from_slice(&b[..len]);
        Ok(len)
    }

    fn write_register(&mut self, _: Tid, _: RiscvRegId<u64>, _: &[u8]) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }
}

impl MultiThreadResume for FakeMachine {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.running = true;
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step_tid = None;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _: Tid, _: Option<Signal>) -> Result<(), Self::Error> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    /// `vCont;s:p1.2` with no default action: the other harts stay stopped.
    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for FakeMachine {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.scheduler_locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for FakeMachine {
    fn set_resume_action_step(&mut self, t: Tid, _: Option<Signal>) -> Result<(), Self::Error> {
        self.step_tid = Some(t);
        Ok(())
    }
}

impl Breakpoints for FakeMachine {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for FakeMachine {
    fn add_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.insert(addr))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.remove(&addr))
    }
}

impl MonitorCmd for FakeMachine {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        match cmd {
            b"info mem" => {
                outputln!(
                    out,
                    "vaddr            paddr            size             attr"
                );
                outputln!(
                    out,
                    "---------------- ---------------- ---------------- -------"
                );
                for i in 0..self.monitor_lines {
                    outputln!(
                        out,
                        "{:016x} {:016x} 0000000000001000 rw--ad-",
                        0x1000 * i,
                        RAM_BASE + 0x1000 * i as u64
                    );
                }
            }
            other => outputln!(out, "unknown command: '{}'", String::from_utf8_lossy(other)),
        }
        Ok(())
    }
}

/// QEMU 7.2's description, shape for shape: the core and FPU files as
/// in gdb, `priv` without a regnum, CSRs with explicit ones.
fn description(annex: &[u8]) -> Option<String> {
    Some(match annex {
        b"target.xml" => r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target><architecture>riscv:rv64</architecture><xi:include href="riscv-64bit-cpu.xml"/><xi:include href="riscv-64bit-fpu.xml"/><xi:include href="riscv-64bit-virtual.xml"/><xi:include href="riscv-csr.xml"/></target>"#.into(),
        b"riscv-64bit-cpu.xml" => {
            let mut s = String::from("<?xml version=\"1.0\"?>\n<feature name=\"org.gnu.gdb.riscv.cpu\">\n");
            for i in 0..32 {
                s += &format!("  <reg name=\"x{i}\" bitsize=\"64\" type=\"int\"/>\n");
            }
            s + "  <reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\"/>\n</feature>\n"
        }
        b"riscv-64bit-fpu.xml" => {
            let mut s = String::from("<feature name=\"org.gnu.gdb.riscv.fpu\">\n");
            for i in 0..32 {
                s += &format!("  <reg name=\"f{i}\" bitsize=\"64\" type=\"ieee_double\"/>\n");
            }
            s + "</feature>\n"
        }
        b"riscv-64bit-virtual.xml" => "<feature name=\"org.gnu.gdb.riscv.virtual\">\n  <reg name=\"priv\" bitsize=\"64\"/>\n</feature>\n".into(),
        b"riscv-csr.xml" => format!(
            r#"<feature name="org.gnu.gdb.riscv.csr"><reg name="sstatus" bitsize="64" regnum="{SSTATUS}"/><reg name="satp" bitsize="64" regnum="{SATP}"/></feature>"#
        ),
        _ => return None,
    })
}

impl TargetDescriptionXmlOverride for FakeMachine {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let doc = description(annex).ok_or(TargetError::NonFatal)?;
        let bytes = doc.as_bytes();
        let start = (offset as usize).min(bytes.len());
        let n = length.min(buf.len()).min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }
}

/// The socket as gdbstub's connection, recording what the client sent
/// and, when asked, dying after writing `die_after` bytes.
pub struct Wire {
    stream: TcpStream,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub sent: Arc<Mutex<Vec<u8>>>,
    written: usize,
    die_after: Option<usize>,
    /// Flip the first hex digit written after this many bytes (once).
    corrupt_after: Option<usize>,
    /// While set, the fake neither acts on what it read nor writes.
    frozen: Arc<AtomicBool>,
}

impl Wire {
    fn wait_while_frozen(&self) {
        while self.frozen.load(Ordering::SeqCst) {
            thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

impl Connection for Wire {
    type Error = std::io::Error;

    fn write(&mut self, mut byte: u8) -> Result<(), Self::Error> {
        self.wait_while_frozen();
        self.written += 1;
        if self.corrupt_after.is_some_and(|n| self.written > n) && byte.is_ascii_hexdigit() {
            byte = if byte == b'0' { b'1' } else { b'0' };
            self.corrupt_after = None;
        }
        if self.die_after.is_some_and(|n| self.written > n) {
            let _ = Write::flush(&mut self.stream);
            let _ = self.stream.shutdown(Shutdown::Both);
            return Err(std::io::Error::other("fake QEMU died"));
        }
        if let Ok(mut s) = self.sent.lock() {
            s.push(byte);
        }
        Write::write_all(&mut self.stream, &[byte])
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Write::flush(&mut self.stream)
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for Wire {
    fn read(&mut self) -> Result<u8, Self::Error> {
        let mut b = [0u8];
        self.stream.read_exact(&mut b)?;
        self.wait_while_frozen();
        if let Ok(mut r) = self.received.lock() {
            r.push(b[0]);
        }
        Ok(b[0])
    }

    fn peek(&mut self) -> Result<Option<u8>, Self::Error> {
        self.stream.set_nonblocking(true)?;
        let mut b = [0u8];
        let r = match self.stream.peek(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        };
        self.stream.set_nonblocking(false)?;
        r
    }
}

struct Loop;

impl BlockingEventLoop for Loop {
    type Target = FakeMachine;
    type Connection = Wire;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut FakeMachine,
        conn: &mut Wire,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<String, std::io::Error>> {
        if let Some(t) = target.step_tid.take() {
            target.stepped.push(hart(t));
            target.running = false;
            return Ok(Event::TargetStopped(MultiThreadStopReason::DoneStep));
        }
        // Running: nothing happens until the client sends something.
        let b = conn.read().map_err(WaitForStopReasonError::Connection)?;
        Ok(Event::IncomingData(b))
    }

    fn on_interrupt(target: &mut FakeMachine) -> Result<Option<Self::StopReason>, String> {
        target.running = false;
        Ok(Some(MultiThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// How to build a fake.
pub struct Options {
    pub ram_len: usize,
    pub harts: usize,
    /// gdbstub's packet buffer, which it advertises as `PacketSize`.
    pub packet_size: usize,
    pub monitor_lines: usize,
    pub die_after: Option<usize>,
    pub corrupt_after: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ram_len: 64 * 1024,
            harts: 3,
            packet_size: 4096,
            monitor_lines: 3,
            die_after: None,
            corrupt_after: None,
        }
    }
}

/// A fake listening on 127.0.0.1; serves one client, then its thread ends.
pub struct Fake {
    pub addr: String,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub sent: Arc<Mutex<Vec<u8>>>,
    pub handle: JoinHandle<Option<FakeMachine>>,
    frozen: Arc<AtomicBool>,
}

impl Fake {
    pub fn start(opts: Options) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&received);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let snt = Arc::clone(&sent);
        let frozen = Arc::new(AtomicBool::new(false));
        let frz = Arc::clone(&frozen);
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().ok()?;
            let wire = Wire {
                stream,
                received: rec,
                sent: snt,
                written: 0,
                die_after: opts.die_after,
                corrupt_after: opts.corrupt_after,
                frozen: frz,
            };
            let mut m = FakeMachine {
                ram: ram_image(opts.ram_len),
                harts: opts.harts,
                breakpoints: BTreeSet::new(),
                stepped: Vec::new(),
                monitor_lines: opts.monitor_lines,
                scheduler_locked: false,
                running: false,
                step_tid: None,
            };
            let stub = GdbStubBuilder::new(wire)
                .packet_buffer_size(opts.packet_size)
                .build()
                .ok()?;
            if let Err(e) = stub.run_blocking::<Loop>(&mut m) {
                eprintln!("fake gdbstub stopped: {e}");
            }
            Some(m)
        });
        Fake {
            addr,
            received,
            sent,
            handle,
            frozen,
        }
    }

    /// Stop answering (and acting on) anything, as QEMU under SIGSTOP;
    /// what the client sends meanwhile waits in the socket.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Go on where it stopped, as QEMU after SIGCONT.
    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    /// Everything the client sent, as text.
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("wire log")).into_owned()
    }

    /// Everything the fake sent, as text.
    pub fn sent(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().expect("wire log")).into_owned()
    }

    /// The `m` requests the client made, as (address, length).
    pub fn memory_reads(&self) -> Vec<(u64, usize)> {
        let text = self.received();
        text.split('$')
            .filter_map(|p| p.strip_prefix('m'))
            .filter_map(|p| p.split('#').next())
            .filter_map(|p| {
                let (a, l) = p.split_once(',')?;
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(l, 16).ok()?,
                ))
            })
            .collect()
    }
}
