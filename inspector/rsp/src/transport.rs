//! The TCP connection to QEMU's gdb stub: connect with a time-out,
//! `TCP_NODELAY`, reads with a deadline, and errors that name the address.
//!
//! Without `TCP_NODELAY` every request/reply round trip waits ~40 ms for
//! Nagle and delayed ACKs; with it a 2 KiB read takes a fraction of a
//! millisecond. This is the only module that touches the socket.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A parsed `HOST:PORT` or `:PORT` (host defaults to `localhost`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubAddr {
    pub host: String,
    pub port: u16,
}

impl StubAddr {
    /// Parse `HOST:PORT`, `[V6]:PORT` or `:PORT` (localhost). The error
    /// says which part is wrong.
    pub fn parse(s: &str) -> Result<StubAddr> {
        let bad = |why: String| Error::Address {
            addr: s.to_string(),
            why,
        };
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| bad("expected [HOST]:PORT, e.g. localhost:1234 or :1234".into()))?;
        if port.is_empty() {
            return Err(bad("no port after `:` (QEMU's -gdb tcp::PORT)".into()));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(bad(format!(
                    "port `{port}` is not a number from 1 to 65535"
                )))
            }
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(StubAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for StubAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An open connection.
#[derive(Debug)]
pub struct Transport {
    stream: TcpStream,
    addr: String,
}

/// A read that returned nothing in time (not an error by itself: the
/// caller knows what it was waiting for).
pub struct TimedOut;

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no answer (timed out)".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

impl Transport {
    /// Connect to the stub, trying each address the host resolves to.
    pub fn connect(addr: &StubAddr, timeout: Duration) -> Result<Transport> {
        let name = addr.to_string();
        let unreachable = |why: String| Error::Unreachable {
            addr: name.clone(),
            port: addr.port,
            why,
        };
        let candidates: Vec<SocketAddr> = (addr.host.as_str(), addr.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve {}: {e}", addr.host)))?
            .collect();
        let mut last = unreachable(format!("{} resolves to no address", addr.host));
        for sa in candidates {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    let io_err = |e: io::Error| Error::Io {
                        addr: name.clone(),
                        why: e.to_string(),
                    };
                    stream.set_nodelay(true).map_err(io_err)?;
                    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
                    return Ok(Transport { stream, addr: name });
                }
                Err(e) => last = unreachable(reason(&e)),
            }
        }
        Err(last)
    }

    /// The address as given, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send bytes.
    pub fn write_all(&mut self, bytes: &[u8], during: &str) -> Result<()> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Disconnected {
                    addr: self.addr.clone(),
                    during: during.to_string(),
                },
                _ => Error::Io {
                    addr: self.addr.clone(),
                    why: reason(&e),
                },
            })
    }

    /// Read what is there, waiting until `deadline` at most.
    /// `Ok(Err(TimedOut))` when nothing came; an error when the peer closed.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        during: &str,
    ) -> Result<std::result::Result<usize, TimedOut>> {
        loop {
            // At least one attempt, even past the deadline (a poll); a zero
            // duration would mean "block forever".
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| Error::Io {
                    addr: self.addr.clone(),
                    why: e.to_string(),
                })?;
            match self.stream.read(buf) {
                Ok(0) => {
                    return Err(Error::Disconnected {
                        addr: self.addr.clone(),
                        during: during.to_string(),
                    })
                }
                Ok(n) => return Ok(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(Err(TimedOut));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(Error::Disconnected {
                        addr: self.addr.clone(),
                        during: during.to_string(),
                    })
                }
                Err(e) => {
                    return Err(Error::Io {
                        addr: self.addr.clone(),
                        why: reason(&e),
                    })
                }
            }
        }
    }

    /// Our end and the stub's end of the connection (`None` if the socket
    /// is already gone): the fast path looks the stub's owner up by them.
    pub fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        Some((
            self.stream.local_addr().ok()?,
            self.stream.peer_addr().ok()?,
        ))
    }

    /// The socket's file descriptor.
    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream)
    }

    /// End our direction only: the stub reads what we sent, then end of file.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Close both directions now (the stub sees the client leave).
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = StubAddr::parse("localhost:1234").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("localhost", 1234));
        assert_eq!(StubAddr::parse(":1234").unwrap().host, "localhost");
        let v6 = StubAddr::parse("[::1]:26000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 26000));
        assert_eq!(v6.to_string(), "[::1]:26000");
        assert!(StubAddr::parse("localhost").is_err());
        assert!(StubAddr::parse("host:port").is_err());
        assert!(StubAddr::parse("host:70000").is_err());
        assert!(StubAddr::parse("host:0").is_err());
        let e = StubAddr::parse("localhost:99999").unwrap_err().to_string();
        assert_eq!(
            e,
            "bad gdb stub address \"localhost:99999\": port `99999` is not a number from 1 to 65535"
        );
        let e = StubAddr::parse("foo").unwrap_err().to_string();
        assert!(
            e.ends_with("expected [HOST]:PORT, e.g. localhost:1234 or :1234"),
            "{e}"
        );
    }

    #[test]
    fn refused_connection_is_one_clear_line() {
        // Bind then drop a listener: the port is free and nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = StubAddr::parse(&format!("127.0.0.1:{port}")).unwrap();
        let e = Transport::connect(&addr, Duration::from_secs(2)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot reach QEMU's gdb stub at 127.0.0.1:{port}: connection refused — is QEMU running with -gdb tcp::{port}?")
        );
    }
}
