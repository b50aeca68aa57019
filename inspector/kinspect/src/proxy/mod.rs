//! `kinspect proxy`: one connection to QEMU's gdb stub, shared by any
//! number of clients (gdb-multiarch, one-shot kinspect commands, the TUI).
//!
//! QEMU's stub serves one client at a time. The proxy holds that one
//! connection ("upstream") and listens for clients; it forwards each
//! client's packets to QEMU one at a time, and keeps every client's view
//! of the machine what it would be if that client were alone with QEMU,
//! as far as one machine allows.
//!
//! # Why not gdbstub
//!
//! `kinspect serve` is built on the `gdbstub` crate, whose model is a
//! *target*: it parses every packet into a call (`read_addrs`,
//! `resume`) and writes the reply itself. A proxy must pass packets on
//! as they are: `qRcmd` output, `qXfer` annexes, QEMU's own `qqemu.*`
//! packets, `vCont` actions and the exact stop replies, including the
//! ones gdbstub does not model. So the proxy works at the packet level
//! with kinspect-rsp's codec: [`kinspect_rsp::frame`] frames both sides,
//! and [`kinspect_rsp::client::Client`] is the upstream connection.
//!
//! # What each client sees
//!
//! - **One packet at a time.** Clients' packets are served in arrival
//!   order; the reply (all of it: `qRcmd`'s `O` packets and its end) goes
//!   back before the next packet is forwarded.
//! - **Its own `PhyMemMode` and threads.** The proxy remembers each
//!   client's `Qqemu.PhyMemMode`, `Hg` and `Hc`, and QEMU's current ones,
//!   and puts the client's back before forwarding its packet. A stop sets
//!   QEMU's `g` and `c` thread to the hart that stopped, and a client that
//!   receives that stop reply believes the same (gdb does), so it counts
//!   as the client's choice too.
//! - **Its own ack mode.** `QStartNoAckMode` is answered by the proxy for
//!   that client (and offered in `qSupported`); QEMU is always spoken to
//!   with acks.
//! - **Its own breakpoints.** `Z`/`z` are forwarded (QEMU counts
//!   duplicates), and the proxy removes a client's breakpoints when it
//!   leaves.
//! - **Stops.** The client that resumed the machine (`c`, `s`, `vCont`)
//!   gets the stop reply, and so does every client that joined the run.
//!   Clients that did not resume are not sent stop replies they did not
//!   ask for; instead `qkinspect.Stops` (answered by the proxy, `R;N` or
//!   `H;N`: running or halted, and N stops the client was not told of
//!   since it last asked, then `;THREAD` of the last stop) tells a client what
//!   happened meanwhile, and `qkinspect.Wait` joins a run another client
//!   started. The TUI uses both, so it shows every stop gdb causes.
//!
//! # While one client lets the machine run
//!
//! A packet from a client that is not waiting for the run to end needs a
//! halted machine. The proxy *pauses* the run: it sends QEMU the interrupt
//! byte, serves the packet on the halted machine, and resumes the run with
//! the packet that started it (after [`PAUSE_IDLE`] without requests, or
//! at once when the client resumes or leaves). The clients waiting for
//! the run never see the pause: no stop reply reaches them unless the
//! machine really stops (a breakpoint hit during the pause is a real stop
//! and reaches them). A client that connects while the machine runs gets
//! QEMU's attach stop reply (`T02`) and holds the pause until it resumes
//! or leaves: a one-shot kinspect command reads a halted machine and its
//! `D` lets the run go on. A `c`/`s`/`vCont` from a client while another
//! client's run is in progress joins that run (a step becomes "until the
//! run stops"): the machine has one run at a time. An interrupt (0x03)
//! from the client that started the run stops the machine for everyone
//! (gdb's Ctrl-C); from a client that only joined it, it takes that
//! client out of the run and pauses the machine for it alone.
//!
//! # Leaving
//!
//! `D` is never forwarded (QEMU 7.2 would remove every client's
//! breakpoints and detach its one process, after which an interrupt stops
//! the machine without a stop reply). The proxy removes that client's
//! breakpoints; from the last client it also lets the machine run, as QEMU
//! would; with other clients present it leaves the machine running or
//! halted for them. `k` and `vKill` are never sent to QEMU (QEMU
//! would exit under the other clients): the client leaves as after `D`
//! without resuming, and gdb thinks its program killed. `?` is answered by
//! the proxy (QEMU 7.2 removes the current hart's breakpoints on `?`,
//! which would take another client's). A closed connection is a `k`.
//!
//! Every loop over network data is bounded (packet sizes, `qRcmd` output,
//! stray bytes); a QEMU that closes the connection or stops answering
//! ends the proxy with one line and a nonzero exit. docs/proxy.md has a
//! session.

mod packet;
mod peer;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kinspect_rsp::client::Client;
use kinspect_rsp::frame::Event as Frame;
use kinspect_rsp::reply::{console_output, is_stop_reply};
use kinspect_rsp::transport::{StubAddr, Transport};
use kinspect_rsp::ConnectOptions;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, Result};
use packet::Kind;
use peer::{Event, Id, Writer};

/// How long a paused run waits for more requests before it goes on.
pub const PAUSE_IDLE: Duration = Duration::from_millis(50);
/// How often a running machine is looked at for a stop.
const RUN_POLL: Duration = Duration::from_millis(5);
/// How often a halted machine's connection is checked for life.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// Bound on the `O` packets of one `qRcmd`.
const MAX_MONITOR_PACKETS: usize = 1 << 16;
/// Bound on upstream events read in one look.
const MAX_EVENTS: usize = 256;

/// One client, as the proxy keeps it.
#[derive(Debug)]
struct Peer {
    writer: Writer,
    name: String,
    /// It resumed (or joined) the run and waits for its stop reply.
    waiting: bool,
    /// It was given a stop reply for a pause (it attached while the
    /// machine ran): the run waits until it resumes or leaves.
    holds: bool,
    /// Its `Hg` and `Hc` threads, as it last set or was told them.
    g: Option<String>,
    c: Option<String>,
    /// Its `Qqemu.PhyMemMode`.
    phys: bool,
    /// The machine's stop count when this client last heard of a stop
    /// (was told one, or asked `qkinspect.Stops`).
    seen: u64,
    /// Its breakpoints: the text after `Z`.
    breakpoints: Vec<String>,
}

/// A run some client started.
#[derive(Debug)]
struct Run {
    /// The packet that started it, sent again after a pause.
    resume: Vec<u8>,
    /// The client that started it (`None`: it left, or the machine ran
    /// before the proxy came).
    owner: Option<Id>,
    /// Paused by the proxy: the interrupt's stop reply and when the last
    /// request was served.
    paused: Option<(Vec<u8>, Instant)>,
}

#[derive(Debug)]
enum Machine {
    Halted,
    Running(Run),
}

/// The proxy's state: the upstream connection, the clients, the machine.
pub struct Proxy {
    up: Client,
    addr: String,
    /// QEMU's `Hg`, `Hc` and `PhyMemMode`, when known.
    up_g: Option<String>,
    up_c: Option<String>,
    up_phys: Option<bool>,
    peers: BTreeMap<Id, Peer>,
    machine: Machine,
    stops: u64,
    last_stop: Option<Vec<u8>>,
}

fn lost(e: kinspect_rsp::Error) -> Error {
    Error::Unreachable(e.to_string())
}

/// Bind `listen` (`HOST:PORT` or `:PORT`, port 0 for any free one).
pub fn bind(listen: &str) -> Result<TcpListener> {
    let bad = |why: &str| Error::BadInput(format!("--listen {listen:?}: {why}"));
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| bad("expected [HOST]:PORT, e.g. :1240 or 127.0.0.1:1240"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = bad(&format!("{host} resolves to no address"));
    for a in addrs {
        match TcpListener::bind(a) {
            Ok(l) => return Ok(l),
            Err(e) => last = Error::Unreachable(format!("cannot listen on {a}: {e}")),
        }
    }
    Err(last)
}

impl Proxy {
    /// Connect to QEMU's gdb stub at `gdb`. A machine that was running is
    /// left running.
    pub fn connect(gdb: &str, opts: &ConnectOptions) -> Result<Proxy> {
        let addr = StubAddr::parse(gdb).map_err(|e| Error::BadInput(e.to_string()))?;
        let conn = Transport::connect(&addr, opts.connect_timeout).map_err(lost)?;
        let mut up = Client::new(conn, opts.timeout);
        up.set_trace(opts.trace);
        up.request(b"qSupported:multiprocess+;vContSupported+")
            .map_err(|e| match e {
                kinspect_rsp::Error::Timeout { .. } if !up.heard_anything() => Error::Unreachable(
                    format!("{e} (is another debugger attached? QEMU serves one at a time)"),
                ),
                e => lost(e),
            })?;
        // QEMU halts a running machine when a client attaches and says so
        // before its first reply.
        let machine = match up.take_stop_raw() {
            Some(stop) => Machine::Running(Run {
                resume: b"vCont;c".to_vec(),
                owner: None,
                paused: Some((stop, Instant::now())),
            }),
            None => Machine::Halted,
        };
        let mut p = Proxy {
            up,
            addr: addr.to_string(),
            up_g: None,
            up_c: None,
            up_phys: None,
            peers: BTreeMap::new(),
            machine,
            stops: 0,
            last_stop: None,
        };
        p.maybe_resume(true)?;
        Ok(p)
    }

    /// Serve clients from `listener` until QEMU goes away (an error) or
    /// SIGINT/SIGTERM/SIGHUP (then every client's breakpoints are removed
    /// and a paused run goes on). One line per client event on `log`.
    pub fn serve(mut self, listener: TcpListener, log: &mut dyn Write) -> Result<()> {
        let quit = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&quit));
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("proxy accept".into())
            .spawn(move || {
                let mut next: Id = 1;
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    if peer::spawn(next, stream, tx.clone()).is_ok() {
                        next += 1;
                    }
                }
            })
            .map_err(|e| Error::Failed(format!("cannot start the accept thread: {e}")))?;
        loop {
            if quit.load(Ordering::Relaxed) {
                return self.quit(log);
            }
            let wait = match &self.machine {
                Machine::Running(Run { paused: None, .. }) => RUN_POLL,
                Machine::Running(_) => PAUSE_IDLE / 5,
                Machine::Halted => IDLE_CHECK,
            };
            let timed_out = match rx.recv_timeout(wait) {
                Ok(ev) => {
                    self.on_event(ev, log)?;
                    false
                }
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Failed("the proxy stopped accepting clients".into()))
                }
            };
            if self.running_now() || timed_out {
                // A stop while running; while halted, whether QEMU is alive.
                if let Some(p) = self.poll_upstream(Instant::now())? {
                    self.on_upstream(p, log)?;
                }
            }
            self.maybe_resume(false)?;
        }
    }

    /// Leave the machine as the clients would: their breakpoints removed,
    /// a paused run going on.
    fn quit(&mut self, log: &mut dyn Write) -> Result<()> {
        let ids: Vec<Id> = self.peers.keys().copied().collect();
        for id in ids {
            if let Some(p) = self.peers.get(&id) {
                p.writer.close();
            }
            self.leave(id)?;
        }
        self.maybe_resume(true)?;
        self.say(log, "stopped; QEMU's gdb stub is free again");
        Ok(())
    }

    /// Whether the machine executes now (a run that is not paused).
    fn running_now(&self) -> bool {
        matches!(self.machine, Machine::Running(Run { paused: None, .. }))
    }

    fn say(&self, log: &mut dyn Write, line: &str) {
        let _ = writeln!(log, "kinspect: proxy: {line}");
    }

    fn send(&self, id: Id, payload: &[u8]) {
        if let Some(p) = self.peers.get(&id) {
            p.writer.send(payload);
        }
    }

    fn on_event(&mut self, ev: Event, log: &mut dyn Write) -> Result<()> {
        match ev {
            Event::Connected {
                id,
                writer,
                name,
                go,
            } => {
                self.say(log, &format!("client {id} ({name}) connected"));
                self.peers.insert(
                    id,
                    Peer {
                        writer,
                        name,
                        waiting: false,
                        holds: false,
                        g: None,
                        c: None,
                        phys: false,
                        seen: self.stops,
                        breakpoints: Vec::new(),
                    },
                );
                // QEMU halts a running machine for a new client and says
                // so; the proxy pauses the run for it.
                if matches!(self.machine, Machine::Running(_)) {
                    self.pause(log)?;
                    if let Machine::Running(Run {
                        paused: Some((stop, _)),
                        ..
                    }) = &self.machine
                    {
                        let stop = stop.clone();
                        self.give_stop(id, &stop, true);
                    }
                }
                let _ = go.send(());
                Ok(())
            }
            Event::Packet(id, p) if self.peers.contains_key(&id) => self.on_packet(id, p, log),
            Event::Packet(..) => Ok(()),
            Event::Interrupt(id) => self.on_interrupt(id, log),
            Event::Gone(id) => {
                if self.peers.contains_key(&id) {
                    self.leave(id)?;
                    self.say(log, &format!("client {id} left"));
                }
                Ok(())
            }
        }
    }

    /// Send client `id` a stop reply; it is halted with the stopped hart
    /// selected from now on. `holds`: the stop is a pause for it alone.
    fn give_stop(&mut self, id: Id, stop: &[u8], holds: bool) {
        let thread = packet::stop_thread(stop);
        let stops = self.stops;
        if let Some(p) = self.peers.get_mut(&id) {
            p.writer.send(stop);
            p.seen = stops;
            p.waiting = false;
            p.holds = holds;
            if thread.is_some() {
                p.g.clone_from(&thread);
                p.c.clone_from(&thread);
            }
        }
    }

    fn on_packet(&mut self, id: Id, p: Vec<u8>, log: &mut dyn Write) -> Result<()> {
        match packet::classify(&p) {
            Kind::NoAck => self.send(id, b"OK"),
            Kind::Stops => {
                let state = if matches!(self.machine, Machine::Running(_)) {
                    'R'
                } else {
                    'H'
                };
                let missed = self.peers.get(&id).map_or(0, |p| self.stops - p.seen);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.seen = self.stops;
                }
                let mut r = format!("{state};{missed:x}");
                if let Some(t) = self.last_stop.as_deref().and_then(packet::stop_thread) {
                    r = format!("{r};{t}");
                }
                self.send(id, r.as_bytes());
            }
            Kind::Wait => match &self.machine {
                Machine::Running(_) => {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.waiting = true;
                        peer.holds = false;
                    }
                }
                Machine::Halted => {
                    let stop = self.halted_stop()?;
                    self.give_stop(id, &stop, false);
                }
            },
            Kind::Why => {
                if matches!(self.machine, Machine::Running(_)) {
                    self.pause(log)?;
                }
                let stop = match &self.machine {
                    Machine::Running(Run {
                        paused: Some((stop, _)),
                        ..
                    }) => Some(stop.clone()),
                    _ => None,
                };
                match stop {
                    Some(stop) => self.give_stop(id, &stop, true),
                    None => {
                        let stop = self.halted_stop()?;
                        self.give_stop(id, &stop, false);
                    }
                }
            }
            Kind::Detach => self.detach(id, log)?,
            Kind::Kill => {
                self.say(
                    log,
                    &format!("client {id} sent kill: it leaves, QEMU stays"),
                );
                if let Some(peer) = self.peers.get(&id) {
                    peer.writer.close();
                }
                self.leave(id)?;
            }
            Kind::Resume => self.on_resume(id, p, log)?,
            Kind::Insert(bp) => {
                let r = self.forward(id, &p, log)?;
                if r == b"OK" {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.breakpoints.push(bp);
                    }
                }
                self.send(id, &r);
            }
            Kind::Remove(bp) => {
                let r = self.forward(id, &p, log)?;
                if r == b"OK" {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        if let Some(i) = peer.breakpoints.iter().position(|b| *b == bp) {
                            peer.breakpoints.remove(i);
                        }
                    }
                }
                self.send(id, &r);
            }
            Kind::SelectThread(which, thread) => {
                let r = self.forward(id, &p, log)?;
                if r == b"OK" {
                    let (up, mine) = match which {
                        b'g' => (&mut self.up_g, self.peers.get_mut(&id).map(|p| &mut p.g)),
                        _ => (&mut self.up_c, self.peers.get_mut(&id).map(|p| &mut p.c)),
                    };
                    *up = Some(thread.clone());
                    if let Some(mine) = mine {
                        *mine = Some(thread);
                    }
                }
                self.send(id, &r);
            }
            Kind::PhysMode(on) => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    // Set before asking, as QEMU may set it and fail to answer.
                    peer.phys = on;
                }
                let r = self.forward(id, &p, log)?;
                self.up_phys = Some(on);
                self.send(id, &r);
            }
            Kind::Supported => {
                let r = self.forward(id, &p, log)?;
                self.send(id, &packet::supported_reply(&r));
            }
            Kind::Monitor => {
                let mut r = self.forward(id, &p, log)?;
                let mut n = 0;
                while console_output(&r).is_some() && n < MAX_MONITOR_PACKETS {
                    self.send(id, &r);
                    r = self.up.next_packet(&p).map_err(lost)?;
                    n += 1;
                }
                self.send(id, &r);
            }
            Kind::Plain => {
                let r = self.forward(id, &p, log)?;
                self.send(id, &r);
            }
        }
        Ok(())
    }

    /// The stop reply for a halted machine: QEMU's answer to `?`, with
    /// the hart of the last stop, or QEMU's current one (`qC`).
    fn halted_stop(&mut self) -> Result<Vec<u8>> {
        let mut thread = self
            .last_stop
            .as_deref()
            .and_then(packet::stop_thread)
            .or_else(|| self.up_c.clone());
        if thread.is_none() {
            let r = self.up.request(b"qC").map_err(lost)?;
            thread = r
                .strip_prefix(b"QC")
                .map(|t| String::from_utf8_lossy(t).into_owned());
        }
        Ok(packet::why_reply(thread.as_deref()))
    }

    /// Forward client `id`'s packet on a halted machine with its state
    /// put back; the reply.
    fn forward(&mut self, id: Id, p: &[u8], log: &mut dyn Write) -> Result<Vec<u8>> {
        self.halt_for_request(log)?;
        self.restore(id)?;
        let r = self.up.request(p).map_err(lost)?;
        while let Some(stop) = self.up.take_stop_raw() {
            self.stopped(stop, log)?;
        }
        Ok(r)
    }

    /// Put client `id`'s `PhyMemMode`, `Hg` and `Hc` back on QEMU where
    /// another client changed them.
    fn restore(&mut self, id: Id) -> Result<()> {
        let Some(peer) = self.peers.get(&id) else {
            return Ok(());
        };
        let (phys, g, c) = (peer.phys, peer.g.clone(), peer.c.clone());
        if self.up_phys != Some(phys) {
            let q = format!("Qqemu.PhyMemMode:{}", u8::from(phys));
            self.up.request(q.as_bytes()).map_err(lost)?;
            self.up_phys = Some(phys);
        }
        for (which, want) in [(b'g', g), (b'c', c)] {
            let Some(want) = want else { continue };
            let current = if which == b'g' {
                &self.up_g
            } else {
                &self.up_c
            };
            if current.as_ref() == Some(&want) {
                continue;
            }
            let q = format!("H{}{want}", which as char);
            if self.up.request(q.as_bytes()).map_err(lost)? == b"OK" {
                if which == b'g' {
                    self.up_g = Some(want);
                } else {
                    self.up_c = Some(want);
                }
            }
        }
        Ok(())
    }

    /// Make the machine halted for a request: pause a run, or keep a
    /// paused one paused a while longer.
    fn halt_for_request(&mut self, log: &mut dyn Write) -> Result<()> {
        if self.running_now() {
            self.pause(log)?;
        }
        if let Machine::Running(Run {
            paused: Some((_, since)),
            ..
        }) = &mut self.machine
        {
            *since = Instant::now();
        }
        Ok(())
    }

    /// Interrupt a run for the proxy's own purposes. If the machine
    /// stopped by itself meanwhile (a breakpoint), that is a real stop.
    fn pause(&mut self, log: &mut dyn Write) -> Result<()> {
        if !self.running_now() {
            return Ok(());
        }
        self.up.send_interrupt().map_err(lost)?;
        let deadline = Instant::now() + self.up.timeout();
        loop {
            let Some(p) = self.poll_upstream(deadline)? else {
                return Err(Error::Unreachable(format!(
                    "QEMU's gdb stub at {} did not stop for the interrupt within {:?}",
                    self.addr,
                    self.up.timeout()
                )));
            };
            if is_stop_reply(&p) && packet::is_interrupt_stop(&p) {
                let thread = packet::stop_thread(&p);
                self.up_g.clone_from(&thread);
                self.up_c = thread;
                if let Machine::Running(run) = &mut self.machine {
                    run.paused = Some((p, Instant::now()));
                }
                return Ok(());
            }
            self.on_upstream(p, log)?;
            if !self.running_now() {
                return Ok(());
            }
        }
    }

    /// Let a paused run go on when no client holds it and no request came
    /// for [`PAUSE_IDLE`] (at once with `now`).
    fn maybe_resume(&mut self, now: bool) -> Result<()> {
        let Machine::Running(run) = &self.machine else {
            return Ok(());
        };
        let Some((_, since)) = &run.paused else {
            return Ok(());
        };
        if self.peers.values().any(|p| p.holds) || (!now && since.elapsed() < PAUSE_IDLE) {
            return Ok(());
        }
        let resume = run.resume.clone();
        if let Some(owner) = run.owner {
            self.restore(owner)?;
        }
        self.up.request_no_reply(&resume).map_err(lost)?;
        if let Machine::Running(run) = &mut self.machine {
            run.paused = None;
        }
        Ok(())
    }

    /// The next packet from QEMU before `deadline`, acknowledged (stop
    /// replies queued by the client first; console output skipped).
    fn poll_upstream(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        if let Some(stop) = self.up.take_stop_raw() {
            return Ok(Some(stop));
        }
        for _ in 0..MAX_EVENTS {
            match self.up.next_event_before(deadline).map_err(lost)? {
                None => return Ok(None),
                Some(Frame::Ack | Frame::Nack) => {}
                Some(Frame::Packet(p)) => {
                    self.up.send_ack().map_err(lost)?;
                    if console_output(&p).is_none() {
                        return Ok(Some(p));
                    }
                }
                Some(Frame::Bad(_)) => self.up.send_nack().map_err(lost)?,
            }
        }
        Ok(None)
    }

    /// A packet QEMU sent by itself: a stop, or the late answer to a
    /// resume packet it refused (`E22`).
    fn on_upstream(&mut self, p: Vec<u8>, log: &mut dyn Write) -> Result<()> {
        if is_stop_reply(&p) {
            return self.stopped(p, log);
        }
        if let Machine::Running(run) = &self.machine {
            if let Some(owner) = run.owner {
                self.send(owner, &p);
                if let Some(peer) = self.peers.get_mut(&owner) {
                    peer.waiting = false;
                }
            }
            self.say(log, &format!("QEMU refused the run: {}", show(&p)));
            self.machine = Machine::Halted;
        }
        Ok(())
    }

    /// The machine stopped for real: every client waiting for it hears.
    fn stopped(&mut self, stop: Vec<u8>, log: &mut dyn Write) -> Result<()> {
        let thread = packet::stop_thread(&stop);
        self.up_g.clone_from(&thread);
        self.up_c.clone_from(&thread);
        self.stops += 1;
        self.machine = Machine::Halted;
        let waiting: Vec<Id> = self
            .peers
            .iter()
            .filter(|(_, p)| p.waiting)
            .map(|(id, _)| *id)
            .collect();
        for p in self.peers.values_mut() {
            p.holds = false;
        }
        for id in &waiting {
            self.give_stop(*id, &stop, false);
        }
        self.say(
            log,
            &format!(
                "the machine stopped ({}), told {}",
                show(&stop),
                match waiting.len() {
                    0 => "no client".to_string(),
                    _ => format!(
                        "client {}",
                        waiting
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            ),
        );
        let exit = packet::is_exit(&stop);
        self.last_stop = Some(stop);
        if exit {
            return Err(Error::Unreachable(format!(
                "the machine behind QEMU's gdb stub at {} has exited",
                self.addr
            )));
        }
        Ok(())
    }

    fn on_resume(&mut self, id: Id, p: Vec<u8>, log: &mut dyn Write) -> Result<()> {
        match &self.machine {
            Machine::Halted => {
                self.restore(id)?;
                self.up.request_no_reply(&p).map_err(lost)?;
                self.machine = Machine::Running(Run {
                    resume: p.clone(),
                    owner: Some(id),
                    paused: None,
                });
                self.say(
                    log,
                    &format!("client {id} let the machine run ({})", show(&p)),
                );
            }
            Machine::Running(_) => {
                self.say(log, &format!("client {id} joined the run ({})", show(&p)));
            }
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.waiting = true;
            peer.holds = false;
        }
        self.maybe_resume(true)
    }

    fn on_interrupt(&mut self, id: Id, log: &mut dyn Write) -> Result<()> {
        let Some(peer) = self.peers.get(&id) else {
            return Ok(());
        };
        // QEMU ignores the interrupt byte while the machine is halted.
        let Machine::Running(run) = &self.machine else {
            return Ok(());
        };
        if !peer.waiting {
            return Ok(());
        }
        let starter = run
            .owner
            .is_none_or(|o| o == id || !self.peers.contains_key(&o));
        self.pause(log)?;
        let paused = match &self.machine {
            Machine::Running(Run {
                paused: Some((stop, _)),
                ..
            }) => stop.clone(),
            // It stopped by itself meanwhile, and everyone waiting heard.
            _ => return Ok(()),
        };
        if starter {
            self.say(log, &format!("client {id} interrupted the machine"));
            self.stopped(paused, log)
        } else {
            self.say(log, &format!("client {id} left the run (paused for it)"));
            self.give_stop(id, &paused, true);
            Ok(())
        }
    }

    /// `D` from client `id`. Never forwarded: QEMU 7.2 would remove every
    /// client's breakpoints and mark its process detached, after which an
    /// interrupt stops the machine without a stop reply.
    fn detach(&mut self, id: Id, log: &mut dyn Write) -> Result<()> {
        self.send(id, b"OK");
        self.leave(id)?;
        if !self.peers.is_empty() {
            self.say(
                log,
                &format!("client {id} detached; the others keep the machine"),
            );
            return Ok(());
        }
        // The last client: as without the proxy, the machine runs on.
        if let Machine::Halted = self.machine {
            self.up.request_no_reply(b"vCont;c").map_err(lost)?;
            self.machine = Machine::Running(Run {
                resume: b"vCont;c".to_vec(),
                owner: None,
                paused: None,
            });
        }
        self.maybe_resume(true)?;
        self.say(log, &format!("client {id} detached; the machine runs"));
        Ok(())
    }

    /// Client `id` is gone: remove its breakpoints; a run it started goes
    /// on without an owner, a pause it held ends.
    fn leave(&mut self, id: Id) -> Result<()> {
        let Some(peer) = self.peers.remove(&id) else {
            return Ok(());
        };
        if !peer.breakpoints.is_empty() {
            let mut sink = std::io::sink();
            self.halt_for_request(&mut sink)?;
            for bp in &peer.breakpoints {
                self.up.request(format!("z{bp}").as_bytes()).map_err(lost)?;
            }
        }
        if let Machine::Running(run) = &mut self.machine {
            if run.owner == Some(id) {
                run.owner = None;
            }
        }
        let _ = peer.name;
        Ok(())
    }
}

fn show(p: &[u8]) -> String {
    kinspect_rsp::client::show(p)
}
