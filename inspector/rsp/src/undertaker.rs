//! A connection QEMU has not answered is not simply closed.
//!
//! QEMU's stub serves one client at a time. A second connection waits in
//! the kernel's listen backlog (the TCP handshake is done, nothing is
//! answered) and QEMU takes it when it is free again; a QEMU frozen by
//! SIGSTOP takes it when it is continued. Taking it halts the guest: QEMU
//! 7.2 stops the VM for every new gdb client and does not resume it when
//! the client goes. Closing our end does not prevent that (measured: with
//! FIN or RST alike, QEMU still accepts the connection later, reads end of
//! file, and the guest stays paused with no debugger attached).
//!
//! So [`hand_over`] gives such a connection to a detached process (two
//! forks, a new session so the terminal's Ctrl-C does not reach it) that
//! waits for QEMU to answer, at most [`KEEP_FOR`], and then leaves the
//! guest as found ([`settle`]): if QEMU's first words were the stop reply
//! it sends when it halts a running guest for a new client, it detaches
//! with `D`, which resumes it; otherwise the guest was halted already and
//! it just closes. If QEMU goes away first, it ends.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::Result;
use crate::frame::Event;
use crate::reply;

/// How long the detached process waits for QEMU to take the connection.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`settle`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// QEMU halted a running guest for us: detached with this packet.
    Resumed(String),
    /// The guest was already halted when QEMU took us: closed.
    LeftHalted,
    /// Nothing came before the deadline.
    NoAnswer,
}

/// Wait until `deadline` for the reply to the first request (sent already,
/// unanswered so far), then leave the guest as found: `detach` (`D;1`)
/// when a stop reply came before the reply, else nothing; then close.
pub fn settle(client: &mut Client, detach: &str, deadline: Instant) -> Result<Settled> {
    let mut halted_for_us = false;
    loop {
        match client.next_event_before(deadline)? {
            None => {
                client.close_gently(Duration::from_millis(50));
                return Ok(Settled::NoAnswer);
            }
            Some(Event::Ack | Event::Nack | Event::Bad(_)) => continue,
            Some(Event::Packet(p)) => {
                client.send_ack()?;
                if reply::is_stop_reply(&p) {
                    halted_for_us = true;
                    continue;
                }
                // The reply to our first request: QEMU is ours now.
                if !halted_for_us {
                    client.close_gently(Duration::from_millis(50));
                    return Ok(Settled::LeftHalted);
                }
                client.send_blind(detach.as_bytes())?;
                // Its OK (or an end of file) before closing, briefly.
                let _ = client.next_event_before(Instant::now() + Duration::from_secs(2));
                client.close_gently(Duration::from_millis(200));
                return Ok(Settled::Resumed(detach.to_string()));
            }
        }
    }
}

/// Give `client` (whose first request QEMU has not answered) to a detached
/// process that [`settle`]s it; this process just drops its copy.
#[cfg(unix)]
pub fn hand_over(client: Client, detach: &str) {
    // SAFETY: fork has no preconditions. The children only do socket I/O,
    // allocate (glibc's malloc is reset for the child at fork) and _exit;
    // they never return into the caller's code or unwind.
    let first = unsafe { libc::fork() };
    match first {
        -1 => drop(client),
        0 => {
            // SAFETY: as above; setsid and fork in a process we own.
            unsafe {
                libc::setsid();
                if libc::fork() != 0 {
                    libc::_exit(0);
                }
            }
            // Keep only the socket: a copy of the caller's stdout (a pipe
            // to `head`, say) must not stay open for a day.
            close_all_but(client.raw_fd());
            let mut client = client;
            // Never unwind back into the caller's code in this process.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                settle(&mut client, detach, Instant::now() + KEEP_FOR)
            }));
            // SAFETY: end the process here, without running the parent's
            // destructors or atexit handlers a second time.
            unsafe { libc::_exit(0) }
        }
        pid => {
            // Reap the first child (it exits at once); the grandchild is
            // init's. Dropping closes only our copy of the socket.
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            drop(client);
        }
    }
}

/// Close every file descriptor but `keep`.
#[cfg(unix)]
fn close_all_but(keep: std::os::fd::RawFd) {
    // SAFETY: closing descriptors this process owns; none is used again
    // but `keep`.
    unsafe {
        let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n.min(1 << 16) as i32,
            _ => 1024,
        };
        for fd in 0..max {
            if fd != keep {
                libc::close(fd);
            }
        }
    }
}

#[cfg(not(unix))]
pub fn hand_over(client: Client, _detach: &str) {
    drop(client);
}
