//! Packet exchange over a [`Transport`]: send a command, collect the
//! stub's `+` and its reply, acknowledge, and keep stop replies that
//! arrive unasked.
//!
//! QEMU 7.2 acknowledges each of our packets with `+` but does not wait for
//! our acknowledgements (it has no `QStartNoAckMode`; the request gets the
//! empty reply). We still acknowledge its packets, as gdb does, and answer
//! a damaged one with `-`, which makes QEMU send it again. Every wait has a
//! deadline, every retry loop a count.
//!
//! A request has one deadline for its `+` and its reply together, so a
//! time-out means what it says. After a time-out the reply may still come
//! (a stub frozen by SIGSTOP answers when it is continued) and would be
//! read as the reply to the next request: the client is then *out of
//! step*, refuses further requests at once ([`Error::OutOfStep`]) and only
//! sends blind ([`Client::send_blind`]) what leaves the machine as found,
//! before [`Client::close_gently`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, Event};
use crate::reply::{self, StopReply};
use crate::transport::Transport;

/// Retransmissions before a damaged exchange is an error.
const MAX_RETRIES: usize = 3;
/// Stray bytes tolerated while waiting for a reply before concluding the
/// peer does not speak the protocol.
const MAX_GARBAGE: usize = 4096;
/// The largest packet accepted (QEMU 7.2 sends at most 4 KiB; newer QEMU
/// advertises more).
const MAX_PACKET: usize = 1 << 20;

/// What a [`Client::pipeline`] came to.
#[derive(Debug)]
pub struct Piped {
    /// The first reply `each` refused, or the first packet the stub
    /// rejected; nothing of `body` was sent after it.
    pub failed: Option<Error>,
    /// The reply to `finally`, if it was sent and answered.
    pub finally: Option<Vec<u8>>,
}

/// The exchange layer. `Session` builds on it; use that.
#[derive(Debug)]
pub struct Client {
    conn: Transport,
    decoder: Decoder,
    timeout: Duration,
    /// Stop replies that arrived while we waited for something else, and
    /// their payloads as sent.
    stops: VecDeque<(StopReply, Vec<u8>)>,
    last_sent: Vec<u8>,
    buf: Vec<u8>,
    /// Print every packet to stderr (`KINSPECT_RSP_TRACE=1`).
    trace: bool,
    /// What timed out, once something did: the connection is out of step.
    out_of_step: Option<String>,
    /// Whether the stub has sent a single byte yet.
    heard: bool,
    /// The most packets a pipeline has had unanswered at once.
    most_in_flight: usize,
    /// `+`s owed for packets received, sent with the next write or before
    /// the next wait for input (never later): one write instead of one per
    /// packet.
    acks_owed: usize,
}

/// The printable start of a payload, for errors.
pub fn show(payload: &[u8]) -> String {
    let s = String::from_utf8_lossy(&payload[..payload.len().min(48)]).into_owned();
    if payload.len() > 48 {
        s + "..."
    } else {
        s
    }
}

impl Client {
    /// Wrap a connection; `timeout` bounds each wait for a reply.
    pub fn new(conn: Transport, timeout: Duration) -> Client {
        Client {
            conn,
            decoder: Decoder::new(MAX_PACKET),
            timeout,
            stops: VecDeque::new(),
            last_sent: Vec::new(),
            buf: vec![0; 16 * 1024],
            trace: false,
            out_of_step: None,
            heard: false,
            most_in_flight: 0,
            acks_owed: 0,
        }
    }

    /// Print every packet sent and received to stderr.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    fn log(&self, dir: &str, bytes: &[u8]) {
        if self.trace {
            let s = String::from_utf8_lossy(&bytes[..bytes.len().min(160)]);
            let more = if bytes.len() > 160 {
                format!("... ({} bytes)", bytes.len())
            } else {
                String::new()
            };
            eprintln!("{dir} {}{more}", s.escape_debug());
        }
    }

    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What timed out, if anything did: then no reply can be trusted to
    /// answer the next request.
    pub fn out_of_step(&self) -> Option<&str> {
        self.out_of_step.as_deref()
    }

    /// The most packets [`Client::pipeline`] has had unanswered at once on
    /// this connection (1 when nothing was ever pipelined).
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.max(1)
    }

    /// Whether the stub has sent anything at all on this connection (a
    /// QEMU busy with another client, or frozen, has not even acked).
    pub fn heard_anything(&self) -> bool {
        self.heard
    }

    /// The next event (ack, packet) before `deadline`, out of step or not;
    /// `None` on time-out. Packets are not acknowledged ([`Client::send_ack`]).
    pub fn next_event_before(&mut self, deadline: Instant) -> Result<Option<Event>> {
        self.next_event_until(b"(a late answer)", deadline)
    }

    /// Acknowledge a packet received through [`Client::next_event_before`].
    pub fn send_ack(&mut self) -> Result<()> {
        self.ack()?;
        self.flush_acks()
    }

    /// Our end and the stub's end of the connection.
    pub fn endpoints(&self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.conn.endpoints()
    }

    /// The socket's file descriptor (to keep it across a fork).
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.conn.raw_fd()
    }

    /// Note that `what` was not answered in time (its reply may come late).
    pub fn mark_out_of_step(&mut self, what: &str) {
        if self.out_of_step.is_none() {
            self.out_of_step = Some(what.to_string());
        }
    }

    fn check_in_step(&self) -> Result<()> {
        match &self.out_of_step {
            None => Ok(()),
            Some(what) => Err(Error::OutOfStep {
                addr: self.conn.addr().to_string(),
                what: what.clone(),
            }),
        }
    }

    /// Send one packet and do not wait.
    pub fn send(&mut self, payload: &[u8]) -> Result<()> {
        self.check_in_step()?;
        self.send_blind(payload)
    }

    /// Write `bytes` after the `+`s owed, in one write.
    fn write_after_acks(&mut self, bytes: &[u8], during: &str) -> Result<()> {
        if self.acks_owed == 0 {
            return self.conn.write_all(bytes, during);
        }
        let mut wire = vec![b'+'; self.acks_owed];
        self.acks_owed = 0;
        wire.extend_from_slice(bytes);
        self.conn.write_all(&wire, during)
    }

    /// Send the `+`s owed now (before waiting for input, and on leaving).
    pub fn flush_acks(&mut self) -> Result<()> {
        self.write_after_acks(b"", "while acknowledging")
    }

    /// Send one packet without waiting for anything, even out of step:
    /// for what must reach the stub whenever it reads again (restoring
    /// `PhyMemMode`, detaching). Its `+` and reply are never read.
    pub fn send_blind(&mut self, payload: &[u8]) -> Result<()> {
        self.last_sent = frame::encode(payload);
        let during = format!("while sending {}", show(payload));
        let wire = std::mem::take(&mut self.last_sent);
        self.log("->", &wire);
        let r = self.write_after_acks(&wire, &during);
        self.last_sent = wire;
        r
    }

    /// Send the interrupt byte (0x03), outside any packet.
    pub fn send_interrupt(&mut self) -> Result<()> {
        self.check_in_step()?;
        self.log("->", b"\x03");
        self.write_after_acks(&[0x03], "while interrupting")
    }

    /// Send a command and return its reply payload: `+` and reply within
    /// one time-out.
    pub fn request(&mut self, payload: &[u8]) -> Result<Vec<u8>> {
        self.send(payload)?;
        let deadline = Instant::now() + self.timeout;
        match self.wait_ack(payload, deadline)? {
            Some(reply) => Ok(reply),
            None => match self.next_packet_until(payload, deadline)? {
                Some(p) => Ok(p),
                None => Err(self.timeout_error(payload)),
            },
        }
    }

    /// Send `body` in order with at most `depth` packets unanswered at a
    /// time, and hand each reply to `each` with its index, in order. Then
    /// send `finally`, whatever happened before it. The connection's own
    /// failures (time-out, lost connection) are the `Err`; the rest is in
    /// [`Piped`].
    ///
    /// QEMU's stub reads its input one packet at a time and answers each in
    /// turn (`+`, then the reply), so what arrives is matched to what was
    /// sent by order. Once `each` fails no more of `body` is sent, the
    /// replies already on their way are read and dropped (so the next
    /// request is answered by its own reply), `finally` still goes out
    /// (putting `PhyMemMode` back must not depend on a read succeeding),
    /// and the first failure is kept. A `-` for one of these packets is
    /// a protocol error: resending it would put it after the packets sent
    /// behind it. Each reply has the client's time-out, from the one before.
    pub fn pipeline(
        &mut self,
        body: &[Vec<u8>],
        finally: Option<&[u8]>,
        depth: usize,
        each: &mut dyn FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<Piped> {
        self.check_in_step()?;
        // What is in flight, oldest first: the body index (None for
        // `finally`) and whether its `+` has come.
        let mut inflight: VecDeque<(Option<usize>, bool)> = VecDeque::new();
        let mut next = 0;
        let mut failed: Option<Error> = None;
        let mut finally_sent = finally.is_none();
        let mut finally_reply = None;
        let mut retries = 0;
        let mut deadline = Instant::now() + self.timeout;
        loop {
            while inflight.len() < depth.max(1) {
                if failed.is_none() && next < body.len() {
                    self.send(&body[next])?;
                    inflight.push_back((Some(next), false));
                    next += 1;
                } else if let (false, Some(f)) = (finally_sent, finally) {
                    self.send(f)?;
                    inflight.push_back((None, false));
                    finally_sent = true;
                } else {
                    break;
                }
            }
            self.most_in_flight = self.most_in_flight.max(inflight.len());
            let Some(&(oldest, _)) = inflight.front() else {
                break;
            };
            let sent: &[u8] = match oldest {
                Some(i) => &body[i],
                None => finally.unwrap_or_default(),
            };
            let event = match self.next_event_until(sent, deadline)? {
                Some(e) => e,
                None => return Err(self.timeout_error(sent)),
            };
            match event {
                Event::Ack => {
                    if let Some(slot) = inflight.iter_mut().find(|(_, acked)| !acked) {
                        slot.1 = true;
                    }
                }
                Event::Nack => {
                    if self.decoder.garbage_count() > 0 {
                        return Err(self.not_a_stub());
                    }
                    // The rejected packet gets no reply: forget it.
                    if let Some(pos) = inflight.iter().position(|(_, acked)| !acked) {
                        let (what, _) = inflight.remove(pos).unwrap_or((None, false));
                        let packet = what.map_or(finally.unwrap_or_default(), |i| &body[i]);
                        failed.get_or_insert(Error::Protocol {
                            packet: show(packet),
                            why: "the stub rejected it among pipelined packets".into(),
                        });
                    }
                }
                Event::Packet(p) if reply::is_stop_reply(&p) => {
                    self.ack()?;
                    self.queue_stop(&p, sent)?;
                }
                Event::Packet(p) => {
                    self.ack()?;
                    deadline = Instant::now() + self.timeout;
                    // A stub that does not ack answers the oldest anyway.
                    match inflight.pop_front().and_then(|(what, _)| what) {
                        Some(i) => {
                            if failed.is_none() {
                                if let Err(e) = each(i, p) {
                                    failed = Some(e);
                                }
                            }
                        }
                        None => finally_reply = Some(p),
                    }
                }
                Event::Bad(e) => self.nack_or_fail(e, &mut retries)?,
            }
        }
        Ok(Piped {
            failed,
            finally: finally_reply,
        })
    }

    /// Send a command whose only answer is `+` (`vCont;c`): nothing else
    /// comes until the machine stops.
    pub fn request_no_reply(&mut self, payload: &[u8]) -> Result<()> {
        self.send(payload)?;
        let deadline = Instant::now() + self.timeout;
        match self.wait_ack(payload, deadline)? {
            None => Ok(()),
            Some(p) if reply::is_stop_reply(&p) => {
                self.queue_stop(&p, payload)?;
                Ok(())
            }
            Some(p) => Err(Error::Protocol {
                packet: show(payload),
                why: format!("expected no reply, got {:?}", show(&p)),
            }),
        }
    }

    /// A stop reply that arrived unasked, if any.
    pub fn take_stop(&mut self) -> Option<StopReply> {
        self.stops.pop_front().map(|(s, _)| s)
    }

    /// A stop reply that arrived unasked, as the stub sent it (a proxy
    /// passes it on unchanged).
    pub fn take_stop_raw(&mut self) -> Option<Vec<u8>> {
        self.stops.pop_front().map(|(_, raw)| raw)
    }

    /// Ask for a damaged packet again (`-`), after [`Client::next_event_before`]
    /// gave a bad one.
    pub fn send_nack(&mut self) -> Result<()> {
        self.log("->", b"-");
        self.write_after_acks(b"-", "while asking for a resend")
    }

    /// Wait up to `timeout` for a stop reply (after a continue or an
    /// interrupt). `Ok(None)` when none came in time.
    pub fn wait_stop(&mut self, timeout: Duration) -> Result<Option<StopReply>> {
        if let Some((s, _)) = self.stops.pop_front() {
            return Ok(Some(s));
        }
        self.check_in_step()?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_packet_until(b"(waiting for the machine to stop)", deadline)? {
                None => return Ok(None),
                Some(p) if reply::is_stop_reply(&p) => {
                    return StopReply::parse(&p).map(Some).map_err(|e| Error::Protocol {
                        packet: "stop reply".into(),
                        why: e.to_string(),
                    })
                }
                // Console output while running (`O` packets) is not ours to show.
                Some(p) if reply::console_output(&p).is_some() => continue,
                Some(p) => {
                    return Err(Error::Protocol {
                        packet: "stop reply".into(),
                        why: format!("expected a stop reply, got {:?}", show(&p)),
                    })
                }
            }
        }
    }

    fn queue_stop(&mut self, p: &[u8], sent: &[u8]) -> Result<()> {
        let stop = StopReply::parse(p).map_err(|e| Error::Protocol {
            packet: show(sent),
            why: e.to_string(),
        })?;
        self.stops.push_back((stop, p.to_vec()));
        Ok(())
    }

    /// Wait for the `+` of what we just sent. Stop replies before it are
    /// queued (QEMU sends one on attach when it stopped a running guest);
    /// any other packet is taken as the reply of a stub that does not ack.
    fn wait_ack(&mut self, sent: &[u8], deadline: Instant) -> Result<Option<Vec<u8>>> {
        let mut retries = 0;
        loop {
            match self.next_event(sent, deadline)? {
                Event::Ack => return Ok(None),
                Event::Nack => {
                    // A '-' amid stray bytes is more garbage, not a request.
                    if self.decoder.garbage_count() > 0 {
                        return Err(self.not_a_stub());
                    }
                    retries += 1;
                    if retries > MAX_RETRIES {
                        return Err(Error::Protocol {
                            packet: show(sent),
                            why: format!("the stub rejected it {retries} times"),
                        });
                    }
                    let wire = self.last_sent.clone();
                    self.write_after_acks(&wire, "while resending")?;
                }
                Event::Packet(p) if reply::is_stop_reply(&p) => {
                    self.ack()?;
                    self.queue_stop(&p, sent)?;
                }
                Event::Packet(p) => {
                    self.ack()?;
                    return Ok(Some(p));
                }
                Event::Bad(e) => self.nack_or_fail(e, &mut retries)?,
            }
        }
    }

    /// Acknowledge a packet: owed, and sent with the next write or before
    /// the next wait for input (QEMU does not wait for it).
    fn ack(&mut self) -> Result<()> {
        self.log("->", b"+");
        self.acks_owed += 1;
        Ok(())
    }

    fn nack_or_fail(&mut self, e: frame::FrameError, retries: &mut usize) -> Result<()> {
        *retries += 1;
        if *retries > MAX_RETRIES {
            return Err(Error::Frame {
                addr: self.conn.addr().to_string(),
                why: e,
            });
        }
        self.log("->", b"-");
        self.write_after_acks(b"-", "while asking for a resend")
    }

    /// The next packet, acknowledged; an error on time-out. `sent` names
    /// what it answers, for errors.
    pub fn next_packet(&mut self, sent: &[u8]) -> Result<Vec<u8>> {
        self.check_in_step()?;
        let deadline = Instant::now() + self.timeout;
        match self.next_packet_until(sent, deadline)? {
            Some(p) => Ok(p),
            None => Err(self.timeout_error(sent)),
        }
    }

    /// The next packet before `deadline`, acknowledged; `None` on time-out.
    fn next_packet_until(&mut self, sent: &[u8], deadline: Instant) -> Result<Option<Vec<u8>>> {
        let mut retries = 0;
        loop {
            let event = match self.next_event_until(sent, deadline)? {
                Some(e) => e,
                None => return Ok(None),
            };
            match event {
                Event::Ack | Event::Nack => continue,
                Event::Packet(p) => {
                    self.ack()?;
                    return Ok(Some(p));
                }
                Event::Bad(e) => self.nack_or_fail(e, &mut retries)?,
            }
        }
    }

    fn next_event(&mut self, sent: &[u8], deadline: Instant) -> Result<Event> {
        match self.next_event_until(sent, deadline)? {
            Some(e) => Ok(e),
            None => Err(self.timeout_error(sent)),
        }
    }

    fn next_event_until(&mut self, sent: &[u8], deadline: Instant) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.decoder.next_event() {
                if matches!(e, Event::Packet(_)) {
                    self.decoder.clear_garbage();
                }
                if self.trace {
                    match &e {
                        Event::Ack => self.log("<-", b"+"),
                        Event::Nack => self.log("<-", b"-"),
                        Event::Packet(p) => self.log("<-", &[b"$", p.as_slice()].concat()),
                        Event::Bad(why) => self.log("<- bad packet:", why.to_string().as_bytes()),
                    }
                }
                return Ok(Some(e));
            }
            if self.decoder.garbage_count() > MAX_GARBAGE {
                return Err(self.not_a_stub());
            }
            let during = if self.decoder.in_packet() {
                format!("in the middle of the reply to {}", show(sent))
            } else {
                format!("while waiting for the reply to {}", show(sent))
            };
            // About to wait: whoever waits for our `+` gets it first.
            self.flush_acks()?;
            let mut buf = std::mem::take(&mut self.buf);
            let r = self.conn.read(&mut buf, deadline, &during);
            match r {
                Ok(Ok(n)) => {
                    self.heard |= n > 0;
                    self.decoder.feed(&buf[..n])
                }
                Ok(Err(_timed_out)) => {
                    self.buf = buf;
                    return Ok(None);
                }
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
            }
            self.buf = buf;
        }
    }

    fn not_a_stub(&self) -> Error {
        Error::NotAStub {
            addr: self.conn.addr().to_string(),
            preview: String::from_utf8_lossy(self.decoder.garbage()).into_owned(),
        }
    }

    /// The error for `sent` not answered in time; the client is out of
    /// step from now on.
    fn timeout_error(&mut self, sent: &[u8]) -> Error {
        if self.decoder.garbage_count() > 0 {
            return self.not_a_stub();
        }
        self.mark_out_of_step(&show(sent));
        Error::Timeout {
            addr: self.conn.addr().to_string(),
            what: show(sent),
            after: self.timeout,
            hint: if self.decoder.in_packet() {
                " (its reply stopped half-way)".into()
            } else {
                String::new()
            },
        }
    }

    /// Close the connection.
    pub fn shutdown(&self) {
        self.conn.shutdown();
    }

    /// Close after blind sends: end our direction (the stub reads what we
    /// sent, then end of file), read and drop what is already there for up
    /// to `grace` (closing over unread input would reset the connection
    /// and could lose what we sent), then close.
    pub fn close_gently(&mut self, grace: Duration) {
        let _ = self.flush_acks();
        self.conn.shutdown_write();
        let deadline = Instant::now() + grace;
        let mut buf = std::mem::take(&mut self.buf);
        while let Ok(Ok(_)) = self.conn.read(&mut buf, deadline, "while closing") {}
        self.buf = buf;
        self.conn.shutdown();
    }
}
