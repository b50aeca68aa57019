//! A debugging session with QEMU's gdb stub: the operations kinspect needs
//! (harts, registers, CSRs by name, memory virtual and physical, monitor
//! commands, halt/resume/step, breakpoints) and the rule that a one-shot
//! command leaves the machine as it found it.
//!
//! # Attaching halts the guest
//!
//! QEMU 7.2 stops the VM the moment a gdb client connects, and if the VM
//! was running it says so at once with an unsolicited stop reply
//! (`T02thread:01;`) that reaches us before the reply to our first packet.
//! A VM that was already halted (`-S`, QMP `stop`, a previous client)
//! sends nothing. [`Session::connect`] records which it was
//! ([`Session::was_running`]). [`Session::finish`] (and `Drop`) then:
//!
//! - guest running before we came, and still halted: detach with `D;1`,
//!   which removes all breakpoints and resumes the VM;
//! - guest halted before we came: remove our breakpoints and close the
//!   socket *without* `D` (QEMU resumes the VM on `D`, not on close);
//! - guest running now (we resumed it): close; if we left breakpoints,
//!   interrupt and detach with `D;1` so nothing traps with no one attached.
//!
//! [`Session::halt`] and [`Session::step`] mean the user wants the machine
//! stopped: after them `finish` leaves it halted.
//!
//! # After a time-out
//!
//! A stub that stops answering (QEMU frozen by SIGSTOP, or a machine too
//! busy) costs one time-out, not one per request left: the client is then
//! out of step (a late reply would answer the wrong request), so every
//! further request fails at once, and `finish` sends blind, without
//! waiting, what leaves the machine as found: `Qqemu.PhyMemMode:0` if we
//! set it, then `D` (guest running when we came) or `z0` for each of our
//! breakpoints (halted). The stub acts on them whenever it reads again.
//!
//! # Packets never sent
//!
//! `k` and `vKill` terminate QEMU itself. `?` makes QEMU 7.2 remove the
//! breakpoints and watchpoints of the current hart (and only that one:
//! with `-smp 3` another hart still stops at a `Z0` breakpoint after `?`),
//! so it would silently break a `watch`. Neither is sent anywhere in this
//! crate; the attach state comes from the unsolicited stop reply instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gdbstub::arch::Registers;
use gdbstub_arch::riscv::reg::RiscvCoreRegs;

use crate::client::{show, Client, Piped};
use crate::desc_cache::DescCache;
use crate::error::{Error, Result};
use crate::hex;
use crate::reply::{self, StopReply};
use crate::target_xml::RegisterMap;
use crate::thread::ThreadId;
use crate::transport::{StubAddr, Transport};

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Bound on the TCP connect.
    pub connect_timeout: Duration,
    /// Bound on each wait for a reply.
    pub timeout: Duration,
    /// Print every packet to stderr; on by default when the environment
    /// variable `KINSPECT_RSP_TRACE` is set.
    pub trace: bool,
    /// When QEMU does not answer at all (busy with another client, or
    /// frozen), give the connection to a detached process that leaves the
    /// guest as found once QEMU takes it ([`crate::undertaker`]), instead
    /// of closing it (QEMU would still take it later and pause the guest).
    pub hand_over_unanswered: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            trace: std::env::var_os("KINSPECT_RSP_TRACE").is_some_and(|v| !v.is_empty()),
            hand_over_unanswered: true,
        }
    }
}

/// Whether the guest executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Halted,
}

/// What `qSupported` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `PacketSize`: the largest packet the stub takes or sends, in bytes.
    pub packet_size: usize,
    pub multiprocess: bool,
    pub xfer_features: bool,
    /// Everything, as sent.
    pub raw: String,
}

/// The packet size assumed when `qSupported` names none (gdb's minimum).
const DEFAULT_PACKET_SIZE: usize = 400;
/// Bound on `qsThreadInfo` rounds.
/// `m` packets sent before the first reply is read. QEMU answers them one
/// at a time from its main loop; keeping a few queued saves our half of
/// each round trip (measured in docs/protocol.md, "Pipelined reads").
pub const READ_DEPTH: usize = 4;
const MAX_THREAD_ROUNDS: usize = 4096;
/// Bound on one `qXfer` object.
const MAX_XFER: usize = 1 << 20;
/// Bound on one monitor command's output.
const MAX_MONITOR_OUTPUT: usize = 16 << 20;

impl Features {
    /// Parse a `qSupported` reply (`PacketSize=1000;qXfer:features:read+;...`).
    pub fn parse(reply: &[u8]) -> Result<Features> {
        let raw = String::from_utf8_lossy(reply).into_owned();
        let mut f = Features {
            packet_size: DEFAULT_PACKET_SIZE,
            raw: raw.clone(),
            ..Features::default()
        };
        for item in raw.split(';') {
            if let Some(v) = item.strip_prefix("PacketSize=") {
                let n = hex::decode_u64(v.as_bytes()).map_err(|e| Error::hex("qSupported", e))?;
                // A stub that cannot take "$m0,1#xx" is useless; cap absurd values.
                f.packet_size = usize::try_from(n).unwrap_or(usize::MAX).clamp(16, 1 << 20);
            } else if item == "multiprocess+" {
                f.multiprocess = true;
            } else if item == "qXfer:features:read+" {
                f.xfer_features = true;
            }
        }
        Ok(f)
    }
}

/// A live session. See the module docs for what `finish` does.
#[derive(Debug)]
pub struct Session {
    client: Client,
    features: Features,
    was_running: bool,
    state: RunState,
    resume_on_finish: bool,
    threads: Option<Vec<ThreadId>>,
    registers: Option<RegisterMap>,
    selected: Option<ThreadId>,
    breakpoints: BTreeSet<(u64, usize)>,
    exited: Option<String>,
    finished: bool,
    /// We may have set `PhyMemMode` to 1 and not yet back to 0.
    phys_set: bool,
    /// `PhyMemMode` as last asked or set: reads put it back as they found
    /// it, so it is asked once.
    phys_mode: Option<bool>,
    /// Where to keep the target description, and the QEMU it is for.
    desc_cache: Option<(PathBuf, String)>,
    /// The thread named by the last stop reply (or the proxy's last stop).
    last_stop_thread: Option<ThreadId>,
}

impl Session {
    /// Connect to the stub at `addr` (`HOST:PORT` or `:PORT`) and negotiate.
    /// The guest is halted when this returns (QEMU halts it on attach).
    pub fn connect(addr: &str, opts: &ConnectOptions) -> Result<Session> {
        let addr = StubAddr::parse(addr)?;
        let conn = Transport::connect(&addr, opts.connect_timeout)?;
        let mut client = Client::new(conn, opts.timeout);
        client.set_trace(opts.trace);
        let reply = match client.request(b"qSupported:multiprocess+;vContSupported+") {
            Ok(r) => r,
            // QEMU serves one client; a second connection is accepted by
            // the kernel's backlog and then never answered (a frozen QEMU
            // does the same). QEMU takes it later and halts the guest then.
            Err(Error::Timeout {
                addr,
                what,
                after,
                hint,
            }) if hint.is_empty() && !client.heard_anything() => {
                if opts.hand_over_unanswered {
                    crate::undertaker::hand_over(client, "D;1");
                }
                return Err(Error::Timeout {
                    addr,
                    what,
                    after,
                    hint: " (is another debugger attached? QEMU serves one at a time; \
                           the guest will be left as found when it answers)"
                        .into(),
                });
            }
            Err(e) => {
                // QEMU took us (it halted a running guest for us if a stop
                // reply came) and then failed us: leave as found anyway.
                if matches!(
                    e,
                    Error::Timeout { .. } | Error::Protocol { .. } | Error::Frame { .. }
                ) && client.take_stop().is_some()
                {
                    let _ = client.send_blind(b"D;1");
                    client.close_gently(Duration::from_millis(50));
                }
                return Err(e);
            }
        };
        // QEMU's stop reply for the attach, if it stopped a running guest,
        // precedes the `+` of our first packet.
        let mut was_running = false;
        let mut exited = None;
        while let Some(stop) = client.take_stop() {
            was_running = true;
            if matches!(stop, StopReply::Exited(_) | StopReply::Terminated(_)) {
                exited = Some(format!("{stop:?}"));
            }
        }
        // From here on the session exists, so a failure below still
        // resumes a guest that was running (Drop).
        let mut session = Session {
            client,
            features: Features {
                packet_size: DEFAULT_PACKET_SIZE,
                // We asked for it; QEMU keeps it on once any client did.
                multiprocess: true,
                ..Features::default()
            },
            was_running,
            state: RunState::Halted,
            resume_on_finish: was_running,
            threads: None,
            registers: None,
            selected: None,
            breakpoints: BTreeSet::new(),
            exited,
            finished: false,
            phys_set: false,
            phys_mode: None,
            desc_cache: None,
            last_stop_thread: None,
        };
        if let Some(why) = &session.exited {
            return Err(Error::Exited(why.clone()));
        }
        if reply.is_empty() {
            return Err(Error::Unsupported("qSupported".into()));
        }
        session.features = Features::parse(&reply)?;
        Ok(session)
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        self.client.addr()
    }

    /// Our end and the stub's end of the TCP connection, as the kernel
    /// sees them (`/proc/net/tcp`): who serves the stub is found by them.
    pub fn endpoints(&self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.client.endpoints()
    }

    /// Was the guest executing when we attached?
    pub fn was_running(&self) -> bool {
        self.was_running
    }

    /// Running or halted now.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// Why the machine is gone, once a `W`/`X` stop reply said so.
    pub fn exited(&self) -> Option<&str> {
        self.exited.as_deref()
    }

    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The most bytes one `m` reply can carry: each byte is two hex digits
    /// in a packet of at most `PacketSize` bytes (gdb's own rule; QEMU 7.2
    /// answers `E22` to `m` longer than 2048 bytes).
    pub fn max_read(&self) -> usize {
        (self.features.packet_size / 2).max(1)
    }

    fn pid(&self) -> u64 {
        self.threads
            .as_ref()
            .and_then(|t| t.first())
            .and_then(|t| t.pid)
            .unwrap_or(1)
    }

    fn check_halted(&self, what: &str) -> Result<()> {
        if let Some(why) = &self.exited {
            return Err(Error::Exited(why.clone()));
        }
        if self.state == RunState::Running {
            // Any byte sent while the guest runs stops it and is dropped.
            return Err(Error::State(format!(
                "cannot {what} while the machine runs: halt it first"
            )));
        }
        Ok(())
    }

    /// Send a command that must be answered `OK`.
    fn request_ok(&mut self, payload: &[u8]) -> Result<()> {
        let r = self.client.request(payload)?;
        expect_ok(payload, &r)
    }

    /// A data reply: not empty, not `E NN`.
    fn request_data(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        let r = self.client.request(payload)?;
        if r.is_empty() {
            return Err(Error::Unsupported(show(payload)));
        }
        if let Some(code) = reply::error_code(&r) {
            return Err(Error::Remote {
                packet: show(payload),
                code,
            });
        }
        Ok(r)
    }

    /// The threads (harts), in the stub's order: `p1.1`, `p1.2`, ...
    pub fn threads(&mut self) -> Result<Vec<ThreadId>> {
        if let Some(t) = &self.threads {
            return Ok(t.clone());
        }
        self.check_halted("list threads")?;
        // QEMU names one thread per reply: the first few rounds go in one
        // pipeline (a `qsThreadInfo` after the end is answered `l` again,
        // and ignored), the rest, on a machine with more harts, one by one.
        let mut out = Vec::new();
        let mut ended = false;
        let mut rounds: Vec<Vec<u8>> = vec![b"qfThreadInfo".to_vec()];
        rounds.extend((1..READ_DEPTH).map(|_| b"qsThreadInfo".to_vec()));
        let mut each = |i: usize, r: Vec<u8>| -> Result<()> {
            if ended {
                return Ok(());
            }
            thread_reply(&rounds[i], &r, &mut out, &mut ended)
        };
        let piped = self.client.pipeline(&rounds, None, READ_DEPTH, &mut each)?;
        if let Some(e) = piped.failed {
            return Err(e);
        }
        for _ in 0..MAX_THREAD_ROUNDS {
            if ended {
                self.threads = Some(out.clone());
                return Ok(out);
            }
            let r = self.request_data(b"qsThreadInfo")?;
            thread_reply(b"qsThreadInfo", &r, &mut out, &mut ended)?;
        }
        Err(Error::Protocol {
            packet: "qsThreadInfo".into(),
            why: format!("more than {MAX_THREAD_ROUNDS} rounds"),
        })
    }

    /// Make `tid` the thread for register and memory packets (`Hg`).
    pub fn select(&mut self, tid: ThreadId) -> Result<()> {
        if self.selected == Some(tid) {
            return Ok(());
        }
        self.check_halted("select a thread")?;
        if !self.threads()?.contains(&tid) {
            return Err(Error::NoThread(tid.to_string()));
        }
        match self.request_ok(format!("Hg{tid}").as_bytes()) {
            Ok(()) => {}
            Err(Error::Remote { .. }) => return Err(Error::NoThread(tid.to_string())),
            Err(e) => return Err(e),
        }
        self.selected = Some(tid);
        Ok(())
    }

    /// x0..x31 and pc of one thread (`Hg` + `g`).
    pub fn core_regs(&mut self, tid: ThreadId) -> Result<RiscvCoreRegs<u64>> {
        self.select(tid)?;
        let r = self.request_data(b"g")?;
        let bytes = hex::decode_bytes(&r).map_err(|e| Error::hex("g", e))?;
        let mut regs = RiscvCoreRegs::<u64>::default();
        regs.gdb_deserialize(&bytes).map_err(|()| Error::Protocol {
            packet: "g".into(),
            why: format!(
                "{} bytes of registers, expected 33 64-bit registers (x0..x31, pc)",
                bytes.len()
            ),
        })?;
        Ok(regs)
    }

    /// The register map from the target description (fetched once).
    pub fn register_map(&mut self) -> Result<&RegisterMap> {
        if self.registers.is_none() {
            self.check_halted("read the target description")?;
            let map = match self.desc_cache.take() {
                None => RegisterMap::load("target.xml", |annex| self.read_xfer("features", annex))?,
                Some((dir, identity)) => self.register_map_cached(&dir, &identity)?,
            };
            self.registers = Some(map);
        }
        self.registers
            .as_ref()
            .ok_or_else(|| Error::NoRegister("target description".into()))
    }

    /// Keep the target description's included documents in `dir`, for
    /// the QEMU binary `identity` (its path, size and change time): the
    /// next session with the same QEMU reads `target.xml` only
    /// ([`crate::desc_cache`]). Call before the first register read.
    pub fn cache_target_description(&mut self, dir: PathBuf, identity: String) {
        self.desc_cache = Some((dir, identity));
    }

    /// The description with its includes from the cache where it has
    /// them; what was missing is fetched and the cache written again.
    fn register_map_cached(&mut self, dir: &Path, identity: &str) -> Result<RegisterMap> {
        let root = self.read_xfer("features", "target.xml")?;
        let cache = DescCache::new(dir, identity, &root);
        let mut docs = cache.load();
        let mut missed = false;
        let map = RegisterMap::load("target.xml", |annex| {
            if annex == "target.xml" {
                return Ok(root.clone());
            }
            if let Some(d) = docs.get(annex) {
                return Ok(d.clone());
            }
            missed = true;
            let d = self.read_xfer("features", annex)?;
            docs.insert(annex.to_string(), d.clone());
            Ok::<_, Error>(d)
        })?;
        if missed {
            cache.store(&docs);
        }
        Ok(map)
    }

    /// Read one `qXfer:OBJECT:read:ANNEX` object whole.
    pub fn read_xfer(&mut self, object: &str, annex: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        // Leave room for the 'm'/'l' marker, framing and escapes.
        let chunk = (self.features.packet_size.saturating_sub(8) / 2).max(1);
        loop {
            let q = format!("qXfer:{object}:read:{annex}:{:x},{chunk:x}", out.len());
            let r = self.request_data(q.as_bytes())?;
            let (more, data) = match r.split_first() {
                Some((b'm', d)) => (true, d),
                Some((b'l', d)) => (false, d),
                _ => {
                    return Err(Error::Protocol {
                        packet: q,
                        why: format!("expected m... or l..., got {:?}", show(&r)),
                    })
                }
            };
            out.extend_from_slice(data);
            if !more {
                return Ok(out);
            }
            if data.is_empty() || out.len() > MAX_XFER {
                return Err(Error::Protocol {
                    packet: q,
                    why: "the object does not end".into(),
                });
            }
        }
    }

    /// The number of register `name` in the target description.
    pub fn regnum(&mut self, name: &str) -> Result<usize> {
        self.register_map()?
            .get(name)
            .map(|r| r.regnum)
            .ok_or_else(|| Error::NoRegister(name.to_string()))
    }

    /// One register by number (`Hg` + `p`), as little-endian bytes.
    pub fn read_register_bytes(&mut self, tid: ThreadId, regnum: usize) -> Result<Vec<u8>> {
        // QEMU answers `p` with the empty reply until target.xml was read.
        self.register_map()?;
        self.select(tid)?;
        let r = self.request_data(format!("p{regnum:x}").as_bytes())?;
        hex::decode_bytes(&r).map_err(|e| Error::hex("p", e))
    }

    /// One register by name (`satp`, `sstatus`, `priv`), up to 64 bits.
    pub fn read_register(&mut self, tid: ThreadId, name: &str) -> Result<u64> {
        let n = self.regnum(name)?;
        let b = self.read_register_bytes(tid, n)?;
        if b.is_empty() || b.len() > 8 {
            return Err(Error::Protocol {
                packet: format!("p{n:x}"),
                why: format!("{name} came as {} bytes", b.len()),
            });
        }
        let mut le = [0u8; 8];
        le[..b.len()].copy_from_slice(&b);
        Ok(u64::from_le_bytes(le))
    }

    /// Read memory at `addr` into `buf` with `m`, split to fit the packet
    /// size and pipelined ([`READ_DEPTH`] in flight). Addresses are virtual
    /// (through the selected hart's `satp`) unless inside
    /// [`Session::physical`].
    pub fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.check_halted("read memory")?;
        let piped = self.read_pipelined(None, None, &mut [(addr, buf)])?;
        piped.failed.map_or(Ok(()), Err)
    }

    /// `m` packets for each `(addr, buf)` of `reads`, after `prologue`
    /// (answered `OK`) and before `finally`, in one pipeline. A short
    /// reply (QEMU gives what it was asked for, but a stub may give less)
    /// is completed one packet at a time afterwards, when no `finally`
    /// has changed the mode back since (with one, it is an error).
    fn read_pipelined(
        &mut self,
        prologue: Option<&[u8]>,
        finally: Option<&[u8]>,
        reads: &mut [(u64, &mut [u8])],
    ) -> Result<Piped> {
        let max = self.max_read();
        let mut body: Vec<Vec<u8>> = prologue.iter().map(|p| p.to_vec()).collect();
        let first_read = body.len();
        // (which read, offset in it, length) of each `m` packet.
        let mut chunks = Vec::new();
        for (k, (addr, buf)) in reads.iter().enumerate() {
            let mut off = 0usize;
            while off < buf.len() {
                let len = (buf.len() - off).min(max);
                body.push(format!("m{:x},{len:x}", addr.wrapping_add(off as u64)).into_bytes());
                chunks.push((k, off, len));
                off += len;
            }
        }
        let mut got = vec![0usize; chunks.len()];
        let mut each = |i: usize, r: Vec<u8>| -> Result<()> {
            if i < first_read {
                return expect_ok(&body[i], &r);
            }
            let (k, off, len) = chunks[i - first_read];
            let (addr, buf) = &mut reads[k];
            let at = addr.wrapping_add(off as u64);
            got[i - first_read] = decode_read(&body[i], at, len, &r, &mut buf[off..off + len])?;
            Ok(())
        };
        let mut piped = self
            .client
            .pipeline(&body, finally, READ_DEPTH, &mut each)?;
        if piped.failed.is_none() {
            for (c, &(k, off, len)) in chunks.iter().enumerate() {
                if got[c] >= len {
                    continue;
                }
                let r = if finally.is_some() {
                    Err(Error::Protocol {
                        packet: show(&body[first_read + c]),
                        why: format!("{} bytes of {len}", got[c]),
                    })
                } else {
                    let (addr, buf) = &mut reads[k];
                    let at = addr.wrapping_add((off + got[c]) as u64);
                    self.read_serial(at, &mut buf[off + got[c]..off + len])
                };
                if let Err(e) = r {
                    piped.failed = Some(e);
                    break;
                }
            }
        }
        Ok(piped)
    }

    /// Read with one `m` packet at a time (what a short reply left).
    fn read_serial(&mut self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let max = self.max_read();
        let mut done = 0usize;
        // Each round reads at least one byte or fails: at most buf.len() rounds.
        while done < buf.len() {
            let a = addr.wrapping_add(done as u64);
            let len = (buf.len() - done).min(max);
            let q = format!("m{a:x},{len:x}");
            let r = self.client.request(q.as_bytes())?;
            done += decode_read(q.as_bytes(), a, len, &r, &mut buf[done..done + len])?;
        }
        Ok(())
    }

    /// The most packets this session has had in flight at once (reads are
    /// pipelined [`READ_DEPTH`] deep).
    pub fn most_in_flight(&self) -> usize {
        self.client.most_in_flight()
    }

    /// QEMU's `PhyMemMode`: whether `m` addresses are physical.
    pub fn phys_mem_mode(&mut self) -> Result<bool> {
        self.check_halted("query PhyMemMode")?;
        let r = self.client.request(b"qqemu.PhyMemMode")?;
        let mode = match r.as_slice() {
            b"1" => Ok(true),
            b"0" => Ok(false),
            b"" => Err(Error::Unsupported(
                "qqemu.PhyMemMode (physical memory access needs QEMU's gdb stub)".into(),
            )),
            _ => Err(Error::Protocol {
                packet: "qqemu.PhyMemMode".into(),
                why: format!("expected 0 or 1, got {:?}", show(&r)),
            }),
        };
        self.phys_mode = mode.as_ref().ok().copied();
        mode
    }

    /// Set QEMU's `PhyMemMode`.
    pub fn set_phys_mem_mode(&mut self, on: bool) -> Result<()> {
        self.check_halted("set PhyMemMode")?;
        if on {
            // Set before asking: a time-out leaves it unknown, so on.
            self.phys_set = true;
            self.phys_mode = None;
            self.request_ok(b"Qqemu.PhyMemMode:1")?;
            self.phys_mode = Some(true);
            Ok(())
        } else {
            self.phys_mode = None;
            self.request_ok(b"Qqemu.PhyMemMode:0")?;
            self.phys_set = false;
            self.phys_mode = Some(false);
            Ok(())
        }
    }

    /// Physical memory access: `PhyMemMode` is 1 while the guard lives and
    /// back to what it was when the guard is dropped or
    /// [`restore`](PhysicalMemory::restore)d, on error paths too.
    pub fn physical(&mut self) -> Result<PhysicalMemory<'_>> {
        let previous = self.phys_mem_mode()?;
        if !previous {
            self.set_phys_mem_mode(true)?;
        }
        Ok(PhysicalMemory {
            session: self,
            previous,
            restored: false,
        })
    }

    /// Read physical memory: `PhyMemMode` 1 around the reads and then put
    /// back, all in one pipeline (`Qqemu.PhyMemMode:1`, the `m` packets,
    /// `Qqemu.PhyMemMode:0`), so a page costs about one round trip, not
    /// five. The mode is asked once per session; it is put back even when
    /// a read fails.
    pub fn read_physical(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.read_physical_many(&mut [(pa, buf)])
    }

    /// Several physical reads in one pipeline (see
    /// [`Session::read_physical`]).
    pub fn read_physical_many(&mut self, reads: &mut [(u64, &mut [u8])]) -> Result<()> {
        self.check_halted("read memory")?;
        let found = match self.phys_mode {
            Some(m) => m,
            None => self.phys_mem_mode()?,
        };
        if found {
            let piped = self.read_pipelined(None, None, reads)?;
            return piped.failed.map_or(Ok(()), Err);
        }
        // Set before sending: a lost reply leaves the mode unknown, so on.
        self.phys_set = true;
        self.phys_mode = None;
        let piped = self.read_pipelined(
            Some(b"Qqemu.PhyMemMode:1"),
            Some(b"Qqemu.PhyMemMode:0"),
            reads,
        )?;
        let restored = match &piped.finally {
            Some(r) => expect_ok(b"Qqemu.PhyMemMode:0", r),
            None => Err(Error::Protocol {
                packet: "Qqemu.PhyMemMode:0".into(),
                why: "the stub rejected it".into(),
            }),
        };
        if restored.is_ok() {
            self.phys_set = false;
            self.phys_mode = Some(false);
        }
        piped.failed.map_or(Ok(()), Err).and(restored)
    }

    /// Run a QEMU monitor command (`qRcmd`) and return what it printed
    /// (QEMU sends it as `O` packets, then `OK`).
    pub fn monitor(&mut self, command: &str) -> Result<String> {
        self.check_halted("run a monitor command")?;
        let q = format!("qRcmd,{}", hex::encode_bytes(command.as_bytes()));
        let mut out = Vec::new();
        let mut r = self.client.request(q.as_bytes())?;
        loop {
            match reply::console_output(&r) {
                Some(text) => {
                    out.extend(text.map_err(|e| Error::hex("O packet", e))?);
                    if out.len() > MAX_MONITOR_OUTPUT {
                        return Err(Error::Protocol {
                            packet: format!("qRcmd,{command}"),
                            why: "more than 16 MiB of output".into(),
                        });
                    }
                }
                None if r == b"OK" => return Ok(String::from_utf8_lossy(&out).into_owned()),
                None if r.is_empty() => return Err(Error::Unsupported("qRcmd".into())),
                None => {
                    return Err(match reply::error_code(&r) {
                        Some(code) => Error::Remote {
                            packet: format!("qRcmd,{command}"),
                            code,
                        },
                        None => Error::Protocol {
                            packet: format!("qRcmd,{command}"),
                            why: format!("expected O... or OK, got {:?}", show(&r)),
                        },
                    })
                }
            }
            r = self.client.next_packet(q.as_bytes())?;
        }
    }

    fn note_stop(&mut self, stop: &StopReply) {
        self.selected = None;
        self.state = RunState::Halted;
        if let StopReply::Signal {
            thread: Some(t), ..
        } = stop
        {
            self.last_stop_thread = Some(*t);
        }
        if matches!(stop, StopReply::Exited(_) | StopReply::Terminated(_)) {
            self.exited = Some(format!("{stop:?}"));
        }
    }

    /// Stop every hart (0x03, then wait for the stop reply). A no-op when
    /// already halted. Afterwards `finish` leaves the machine halted.
    pub fn halt(&mut self) -> Result<()> {
        self.resume_on_finish = false;
        self.ensure_halted()
    }

    /// Halt a running machine so it can be read; `finish` then resumes it.
    /// A no-op when already halted.
    pub fn halt_for_reading(&mut self) -> Result<()> {
        if self.state == RunState::Running {
            self.ensure_halted()?;
            self.resume_on_finish = true;
        }
        Ok(())
    }

    /// Halt if running, without changing what `finish` will do.
    pub fn ensure_halted(&mut self) -> Result<()> {
        if self.state == RunState::Halted {
            return Ok(());
        }
        self.client.send_interrupt()?;
        let timeout = self.client.timeout();
        match self.client.wait_stop(timeout)? {
            Some(stop) => {
                self.note_stop(&stop);
                Ok(())
            }
            None => {
                // The stop reply may still come, answering nothing we ask.
                self.client.mark_out_of_step("the interrupt (0x03)");
                Err(Error::Timeout {
                    addr: self.addr().to_string(),
                    what: "the interrupt (0x03)".into(),
                    after: timeout,
                    hint: String::new(),
                })
            }
        }
    }

    /// Let every hart run (`vCont;c`).
    pub fn resume(&mut self) -> Result<()> {
        self.check_halted("resume")?;
        self.client.request_no_reply(b"vCont;c")?;
        self.selected = None;
        self.state = RunState::Running;
        // Something may already have stopped it (a breakpoint at pc).
        if let Some(stop) = self.client.take_stop() {
            self.note_stop(&stop);
        }
        Ok(())
    }

    /// Execute one instruction on `tid` with the other harts stopped
    /// (`vCont;s:TID`). Afterwards `finish` leaves the machine halted.
    pub fn step(&mut self, tid: ThreadId) -> Result<StopReply> {
        self.check_halted("step")?;
        self.resume_on_finish = false;
        let q = format!("vCont;s:{tid}");
        let r = self.client.request(q.as_bytes())?;
        if r.is_empty() {
            return Err(Error::Unsupported(q));
        }
        if let Some(code) = reply::error_code(&r) {
            return Err(Error::Remote { packet: q, code });
        }
        let stop = StopReply::parse(&r).map_err(|e| Error::Protocol {
            packet: q,
            why: e.to_string(),
        })?;
        self.note_stop(&stop);
        Ok(stop)
    }

    /// Wait up to `timeout` for a running machine to stop by itself (a
    /// breakpoint). `Ok(None)` if it is still running; a zero timeout polls.
    pub fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReply>> {
        if self.state == RunState::Halted {
            return Err(Error::State("the machine is not running".into()));
        }
        let stop = self.client.wait_stop(timeout)?;
        if let Some(s) = &stop {
            self.note_stop(s);
        }
        Ok(stop)
    }

    /// While we believe the guest halted: has something else let it run
    /// (QEMU's monitor `cont`, QMP)? QEMU sends no packet when the VM is
    /// resumed behind the debugger's back, so ask: send the interrupt
    /// byte, which a halted QEMU ignores (measured on 7.2) and a running
    /// one answers by stopping the VM with a stop reply. `Ok(true)`: it
    /// was running and is halted now (the caller decides whether to let
    /// it go on). A stop reply already queued counts the same. Waits up
    /// to `wait` when the guest is halted, as it usually is.
    pub fn probe_resumed(&mut self, wait: Duration) -> Result<bool> {
        if self.state == RunState::Running {
            return Err(Error::State("the machine is running, not halted".into()));
        }
        if let Some(why) = &self.exited {
            return Err(Error::Exited(why.clone()));
        }
        let stop = match self.client.take_stop() {
            Some(s) => Some(s),
            None => {
                self.client.send_interrupt()?;
                self.client.wait_stop(wait)?
            }
        };
        match stop {
            Some(s) => {
                self.note_stop(&s);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether the stub is a `kinspect proxy` (its `qSupported` reply
    /// says `qkinspect.Stops+`): other clients share the machine, and
    /// [`Session::proxy_stops`] and [`Session::join_run`] work.
    pub fn on_proxy(&self) -> bool {
        self.features
            .raw
            .split(';')
            .any(|f| f == "qkinspect.Stops+")
    }

    /// The thread the last stop reply named (for a proxy, the last stop
    /// any client caused, once [`Session::proxy_stops`] said so).
    pub fn last_stop_thread(&self) -> Option<ThreadId> {
        self.last_stop_thread
    }

    /// On a proxy: whether the machine runs (another client let it), and
    /// how many times it stopped without this connection being told (a
    /// stop reply) since it last asked (the reply is `R;N` or `H;N`, then
    /// `;THREAD` of the last stop when there was one). Answered by the
    /// proxy itself; the machine is not disturbed.
    pub fn proxy_stops(&mut self) -> Result<(RunState, u64)> {
        let r = self.request_data(b"qkinspect.Stops")?;
        let bad = || Error::Protocol {
            packet: "qkinspect.Stops".into(),
            why: format!("expected R;N or H;N, got {:?}", show(&r)),
        };
        let mut fields = r.split(|&b| b == b';');
        let state = match fields.next() {
            Some(b"R") => RunState::Running,
            Some(b"H") => RunState::Halted,
            _ => return Err(bad()),
        };
        let count = fields
            .next()
            .and_then(|c| hex::decode_u64(c).ok())
            .ok_or_else(bad)?;
        if let Some(t) = fields.next().and_then(|t| ThreadId::parse(t).ok()) {
            self.last_stop_thread = Some(t);
        }
        Ok((state, count))
    }

    /// On a proxy, while another client lets the machine run: wait for its
    /// next stop as if we had resumed it ([`Session::wait_for_stop`]),
    /// without sending anything to QEMU.
    pub fn join_run(&mut self) -> Result<()> {
        self.check_halted("wait for the machine")?;
        self.client.request_no_reply(b"qkinspect.Wait")?;
        self.selected = None;
        self.state = RunState::Running;
        if let Some(stop) = self.client.take_stop() {
            self.note_stop(&stop);
        }
        Ok(())
    }

    /// Insert a software breakpoint (`Z0,addr,kind`; kind 4 for a 32-bit
    /// instruction, 2 for a compressed one).
    pub fn insert_breakpoint(&mut self, addr: u64, kind: usize) -> Result<()> {
        self.check_halted("insert a breakpoint")?;
        self.request_ok(format!("Z0,{addr:x},{kind:x}").as_bytes())?;
        self.breakpoints.insert((addr, kind));
        Ok(())
    }

    /// Remove a software breakpoint (`z0,addr,kind`).
    pub fn remove_breakpoint(&mut self, addr: u64, kind: usize) -> Result<()> {
        self.check_halted("remove a breakpoint")?;
        self.request_ok(format!("z0,{addr:x},{kind:x}").as_bytes())?;
        self.breakpoints.remove(&(addr, kind));
        Ok(())
    }

    /// Leave: resume the guest if it was running when we came, remove our
    /// breakpoints, and close. See the module docs.
    pub fn finish(mut self) -> Result<()> {
        self.close()
    }

    fn detach_packet(&self) -> String {
        if self.features.multiprocess {
            format!("D;{:x}", self.pid())
        } else {
            "D".to_string()
        }
    }

    fn detach(&mut self) -> Result<()> {
        let q = self.detach_packet();
        self.request_ok(q.as_bytes())
    }

    /// Leave as found without waiting for any reply (the client is out of
    /// step): see the module docs, "After a time-out".
    fn close_blind(&mut self) {
        let mut packets = Vec::new();
        if self.exited.is_none() {
            if self.phys_set {
                packets.push("Qqemu.PhyMemMode:0".to_string());
            }
            if self.resume_on_finish || self.state == RunState::Running {
                // Running when we came, or interrupted by a 0x03 whose stop
                // never came: D removes our breakpoints and resumes.
                packets.push(self.detach_packet());
            } else {
                packets.extend(
                    self.breakpoints
                        .iter()
                        .map(|(a, k)| format!("z0,{a:x},{k:x}")),
                );
            }
        }
        for p in packets {
            if self.client.send_blind(p.as_bytes()).is_err() {
                break;
            }
        }
        self.client.close_gently(Duration::from_millis(50));
    }

    /// [`finish`](Self::finish) through a reference: leave as found and
    /// close. Later requests fail; a second call does nothing.
    pub fn close(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if self.client.out_of_step().is_some() {
            self.close_blind();
            return Ok(());
        }
        let r = if self.exited.is_some() {
            Ok(())
        } else if self.state == RunState::Running {
            if self.breakpoints.is_empty() {
                Ok(())
            } else {
                // D removes every breakpoint and resumes.
                self.ensure_halted().and_then(|()| self.detach())
            }
        } else if self.resume_on_finish {
            self.detach()
        } else {
            let bps: Vec<(u64, usize)> = self.breakpoints.iter().copied().collect();
            bps.into_iter()
                .try_for_each(|(a, k)| self.remove_breakpoint(a, k))
        };
        let _ = self.client.flush_acks();
        self.client.shutdown();
        r
    }
}

/// One reply to `qfThreadInfo`/`qsThreadInfo` (`query`): `m` and thread
/// ids, added to `out`, or `l` for the end.
fn thread_reply(query: &[u8], r: &[u8], out: &mut Vec<ThreadId>, ended: &mut bool) -> Result<()> {
    match r.split_first() {
        Some((b'l', _)) => {
            *ended = true;
            Ok(())
        }
        Some((b'm', list)) => {
            for id in list.split(|&b| b == b',') {
                out.push(ThreadId::parse(id).map_err(|e| Error::hex("qfThreadInfo", e))?);
            }
            Ok(())
        }
        _ if r.is_empty() => Err(Error::Unsupported(show(query))),
        _ => Err(match reply::error_code(r) {
            Some(code) => Error::Remote {
                packet: show(query),
                code,
            },
            None => Error::Protocol {
                packet: show(query),
                why: format!("expected m... or l, got {:?}", show(r)),
            },
        }),
    }
}

/// `r`, the reply to `payload`, must be `OK`.
fn expect_ok(payload: &[u8], r: &[u8]) -> Result<()> {
    match r {
        b"OK" => Ok(()),
        b"" => Err(Error::Unsupported(show(payload))),
        _ => Err(match reply::error_code(r) {
            Some(code) => Error::Remote {
                packet: show(payload),
                code,
            },
            None => Error::Protocol {
                packet: show(payload),
                why: format!("expected OK, got {:?}", show(r)),
            },
        }),
    }
}

/// Decode `r`, the reply to `q` (`m` of `len` bytes at `addr`), into the
/// front of `out`; how many bytes it gave (at least one).
fn decode_read(q: &[u8], addr: u64, len: usize, r: &[u8], out: &mut [u8]) -> Result<usize> {
    if let Some(code) = reply::error_code(r) {
        return Err(Error::Memory { addr, len, code });
    }
    if r.is_empty() || r.len() % 2 != 0 || r.len() / 2 > len {
        return Err(Error::Protocol {
            packet: show(q),
            why: format!("{} hex digits for {len} bytes", r.len()),
        });
    }
    let n = r.len() / 2;
    hex::decode_into(r, &mut out[..n]).map_err(|e| Error::hex(&show(q), e))?;
    Ok(n)
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// `PhyMemMode` set to 1 for as long as this lives; see [`Session::physical`].
#[derive(Debug)]
pub struct PhysicalMemory<'s> {
    session: &'s mut Session,
    previous: bool,
    restored: bool,
}

impl PhysicalMemory<'_> {
    /// Read physical memory.
    pub fn read(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        self.session.read_memory(pa, buf)
    }

    /// The session, for other requests while physical mode is on.
    pub fn session(&mut self) -> &mut Session {
        self.session
    }

    /// Put `PhyMemMode` back, reporting failure.
    pub fn restore(mut self) -> Result<()> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Result<()> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        if self.previous {
            return Ok(());
        }
        self.session.set_phys_mem_mode(false)
    }
}

impl Drop for PhysicalMemory<'_> {
    fn drop(&mut self) {
        let _ = self.restore_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_7_2_features() {
        let f =
            Features::parse(b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+")
                .unwrap();
        assert_eq!(f.packet_size, 4096);
        assert!(f.multiprocess && f.xfer_features);
        assert_eq!(
            Features::parse(b"qXfer:features:read+")
                .unwrap()
                .packet_size,
            400
        );
        assert!(Features::parse(b"PacketSize=zz").is_err());
        assert_eq!(Features::parse(b"PacketSize=1").unwrap().packet_size, 16);
    }
}
