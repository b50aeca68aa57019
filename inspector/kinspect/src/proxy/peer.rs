//! One client of the proxy on the wire: a thread that reads its socket,
//! acknowledges its packets (until it negotiates no-ack mode) and hands
//! them to the proxy as [`Event`]s; and [`Writer`], through which the
//! proxy sends it packets. Framing is kinspect-rsp's codec
//! ([`kinspect_rsp::frame`]), the same one the client side uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use kinspect_rsp::frame::{self, Decoder, Event as Frame};

/// A client, numbered from 1 in the order they connect.
pub type Id = u64;

/// The largest packet a client may send (gdb's `X`/`M` writes stay far below).
const MAX_PACKET: usize = 1 << 20;
/// Stray bytes (outside packets) before a client is dropped as not
/// speaking the protocol.
const MAX_GARBAGE: usize = 4096;

/// What a client did.
#[derive(Debug)]
pub enum Event {
    /// A new client; the proxy keeps its [`Writer`], says what QEMU says
    /// on attach (a stop reply if the machine ran), then lets its reader
    /// start (`go`), so that comes before the first `+`.
    Connected {
        id: Id,
        writer: Writer,
        name: String,
        go: Sender<()>,
    },
    /// A packet, checksum good, escapes and runs decoded.
    Packet(Id, Vec<u8>),
    /// The interrupt byte 0x03, outside any packet.
    Interrupt(Id),
    /// The client closed the connection (or broke the protocol).
    Gone(Id),
}

/// The sending half of a client connection, shared with its reader thread
/// (which sends `+`, `-` and resends).
#[derive(Clone, Debug)]
pub struct Writer {
    inner: Arc<Mutex<WriterInner>>,
    no_ack: Arc<AtomicBool>,
}

#[derive(Debug)]
struct WriterInner {
    stream: TcpStream,
    /// The last packet sent, for a `-`.
    last: Vec<u8>,
}

impl Writer {
    /// Send one packet. A client that is gone is noticed by its reader.
    pub fn send(&self, payload: &[u8]) {
        let wire = frame::encode(payload);
        if let Ok(mut w) = self.inner.lock() {
            let _ = w.stream.write_all(&wire);
            w.last = wire;
        }
    }

    fn raw(&self, bytes: &[u8]) {
        if let Ok(mut w) = self.inner.lock() {
            let _ = w.stream.write_all(bytes);
        }
    }

    fn resend(&self) {
        if let Ok(mut w) = self.inner.lock() {
            let last = w.last.clone();
            let _ = w.stream.write_all(&last);
        }
    }

    /// Close the connection (its reader then reports [`Event::Gone`]).
    pub fn close(&self) {
        if let Ok(w) = self.inner.lock() {
            let _ = w.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Start serving `stream` as client `id`: its events go to `events`.
pub fn spawn(id: Id, stream: TcpStream, events: Sender<Event>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let name = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let writer = Writer {
        inner: Arc::new(Mutex::new(WriterInner {
            stream: stream.try_clone()?,
            last: Vec::new(),
        })),
        no_ack: Arc::new(AtomicBool::new(false)),
    };
    let (go, started) = std::sync::mpsc::channel();
    let _ = events.send(Event::Connected {
        id,
        writer: writer.clone(),
        name,
        go,
    });
    std::thread::Builder::new()
        .name(format!("proxy client {id}"))
        .spawn(move || {
            if started.recv().is_ok() {
                read_loop(id, stream, writer, events)
            }
        })?;
    Ok(())
}

/// Read until the client leaves. Each read is at most one buffer; the
/// loop ends when the socket does.
fn read_loop(id: Id, mut stream: TcpStream, writer: Writer, events: Sender<Event>) {
    let mut decoder = Decoder::new(MAX_PACKET);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == 0x03 && !decoder.in_packet() {
                if events.send(Event::Interrupt(id)).is_err() {
                    break 'read;
                }
                continue;
            }
            let Some(ev) = decoder.push(b) else { continue };
            let no_ack = writer.no_ack.load(Ordering::Relaxed);
            match ev {
                Frame::Ack => {}
                Frame::Nack => {
                    if !no_ack {
                        writer.resend();
                    }
                }
                Frame::Packet(p) => {
                    decoder.clear_garbage();
                    if !no_ack {
                        writer.raw(b"+");
                    }
                    if p == b"QStartNoAckMode" {
                        writer.no_ack.store(true, Ordering::Relaxed);
                    }
                    if events.send(Event::Packet(id, p)).is_err() {
                        break 'read;
                    }
                }
                Frame::Bad(_) => {
                    if !no_ack {
                        writer.raw(b"-");
                    }
                }
            }
        }
        if decoder.garbage_count() > MAX_GARBAGE {
            break;
        }
    }
    let _ = events.send(Event::Gone(id));
}
