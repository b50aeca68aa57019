//! The guest's serial console, for `kinspect launch`.
//!
//! [`Qemu`] starts QEMU with xv6-riscv's command line
//! (`kinspect_qemu::VirtMachine`) on a free gdb port with its stdio piped:
//! a thread reads QEMU's stdout into a channel, and keys typed in the
//! console pane are written to its stdin. [`ConsoleBuf`] turns the byte
//! stream into lines the console pane shows (the kernel echoes what is
//! typed, as a terminal would).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use kinspect_qemu::{free_tcp_port, VirtMachine};

/// The most lines the console keeps.
pub const MAX_LINES: usize = 5000;

/// Console output as lines.
#[derive(Clone, Debug, Default)]
pub struct ConsoleBuf {
    pub lines: Vec<String>,
    /// The line being written (no newline yet).
    pub current: String,
    /// Bytes received in all.
    pub total: usize,
    /// The start of a UTF-8 sequence cut by the end of the last chunk.
    partial: Vec<u8>,
}

impl ConsoleBuf {
    /// Add bytes from the guest, decoded as UTF-8 (a malformed sequence
    /// becomes U+FFFD; one cut between two chunks is completed by the
    /// next): `\n` ends a line, `\r` is dropped (the UART sends `\r\n`),
    /// backspace and DEL erase, a tab becomes spaces. No other control
    /// character reaches the terminal: C0 shows as `^X` and C1 as `M-^X`
    /// (as `cat -v` shows them), so guest output can never move the
    /// cursor, change colours or clear the screen under the TUI.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(bytes);
        let mut rest = buf.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.push_str(s);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid UTF-8: `valid_up_to` says so.
                    self.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            self.push_char(char::REPLACEMENT_CHARACTER);
                            rest = &bad[n..];
                        }
                        None => {
                            // Cut at the end: wait for the rest of it.
                            self.partial = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
    }

    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            self.push_char(c);
        }
    }

    fn push_char(&mut self, c: char) {
        match c {
            '\n' => {
                let line = std::mem::take(&mut self.current);
                self.lines.push(line);
                if self.lines.len() > MAX_LINES {
                    let extra = self.lines.len() - MAX_LINES;
                    self.lines.drain(..extra);
                }
            }
            '\r' => {}
            '\u{8}' | '\u{7f}' => {
                self.current.pop();
            }
            '\t' => self.current.push_str("    "),
            '\u{0}'..='\u{1f}' => {
                self.current.push('^');
                self.current.push(char::from(c as u8 + b'@'));
            }
            '\u{80}'..='\u{9f}' => {
                self.current.push_str("M-^");
                self.current.push(char::from(c as u32 as u8 - 0x80 + b'@'));
            }
            _ => self.current.push(c),
        }
    }

    /// The last `n` lines, the unfinished one included.
    pub fn tail(&self, n: usize, scroll: usize) -> Vec<&str> {
        let mut all: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        all.push(&self.current);
        let end = all.len().saturating_sub(scroll);
        let start = end.saturating_sub(n);
        all[start..end].to_vec()
    }
}

/// A QEMU that `kinspect launch` started and owns.
pub struct Qemu {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pub gdb_port: u16,
    pub output: Receiver<Vec<u8>>,
    pub command_line: String,
}

impl Qemu {
    /// Start QEMU for `kernel` and `fs_img` with a gdb stub on a free port,
    /// and wait until the stub accepts connections.
    pub fn start(kernel: &Path, fs_img: &Path, smp: u32) -> Result<Qemu, String> {
        for p in [kernel, fs_img] {
            if !p.exists() {
                return Err(format!(
                    "{} is missing: run `cargo xtask build` first (or give --elf / --fs-img)",
                    p.display()
                ));
            }
        }
        let mut last = String::new();
        // The free port can be taken between our probe and QEMU's bind.
        for _ in 0..3 {
            match Qemu::try_start(kernel, fs_img, smp) {
                Ok(q) => return Ok(q),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(kernel: &Path, fs_img: &Path, smp: u32) -> Result<Qemu, String> {
        let port = free_tcp_port().map_err(|e| format!("no free TCP port: {e}"))?;
        let mut vm = VirtMachine::new(kernel, fs_img);
        vm.smp = smp;
        vm.gdb_port = Some(port);
        let command_line = vm.display();
        let mut cmd = vm.command();
        // Its own process group: closing the terminal (or tmux killing the
        // pane) must not take down a QEMU the user chose to leave running.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kinspect_qemu::QEMU))?;
        let (tx, rx) = channel();
        if let Some(mut out) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match out.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tx.send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        // Give QEMU a moment to fail on a bad argument or a taken port;
        // the caller then connects to the stub with retries. (No probe
        // connection: QEMU pauses the guest whenever a gdb client connects.)
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("QEMU exited at start ({status}): {}", err.trim()));
        }
        let stdin = child.stdin.take();
        if let Some(mut e) = child.stderr.take() {
            // Drain stderr so QEMU never blocks on it.
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = e.read_to_end(&mut sink);
            });
        }
        Ok(Qemu {
            child: Some(child),
            stdin,
            gdb_port: port,
            output: rx,
            command_line,
        })
    }

    /// Type bytes into the guest's console.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| "QEMU's console is closed".to_string())?;
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to QEMU's console: {e}"))
    }

    /// Whether QEMU has exited (and how).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(s))) => Some(s.to_string()),
            _ => None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kill QEMU (by its PID, through the child handle) and reap it.
    pub fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Leave QEMU running on its own: close our end of its console and
    /// forget the child (its gdb stub stays open for another attach).
    pub fn release(mut self) -> u32 {
        self.stdin = None;
        let pid = self.pid();
        self.child = None;
        pid
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Dropped without release(): nobody wants it any more.
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_the_uart() {
        let mut c = ConsoleBuf::default();
        c.push(b"xv6 kernel is booting\r\n\r\n$ ls\x08 \x08s\r\n");
        assert_eq!(c.lines, ["xv6 kernel is booting", "", "$ ls"]);
        assert_eq!(c.current, "");
        c.push(b"\x10tab\there");
        assert_eq!(c.current, "^Ptab    here");
        assert_eq!(c.tail(2, 0), ["$ ls", "^Ptab    here"]);
        assert_eq!(c.tail(2, 1), ["", "$ ls"]);
        assert_eq!(c.tail(10, 100), Vec::<&str>::new());
    }

    #[test]
    fn utf8_is_decoded_and_control_characters_never_reach_the_terminal() {
        let mut c = ConsoleBuf::default();
        // UTF-8 (é, ✓), an ANSI colour (ESC), CSI as a C1 character
        // (U+009B, the bytes c2 9b), a bare C1 byte, a malformed byte.
        c.push("h\u{e9}llo \u{2713} \x1b[31mred\x1b[0m \u{9b}2J".as_bytes());
        c.push(b" \x9b \xff.\n");
        assert_eq!(
            c.lines,
            ["h\u{e9}llo \u{2713} ^[[31mred^[[0m M-^[2J \u{fffd} \u{fffd}."]
        );
        // A character cut between two reads is put back together.
        let e_acute = "\u{e9}".as_bytes();
        c.push(&e_acute[..1]);
        assert_eq!(c.current, "");
        c.push(&e_acute[1..]);
        assert_eq!(c.current, "\u{e9}");
        for l in c.lines.iter().chain([&c.current]) {
            assert!(
                !l.chars().any(char::is_control),
                "a control character in {l:?}"
            );
        }
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mut c = ConsoleBuf::default();
        for i in 0..(MAX_LINES + 10) {
            c.push(format!("{i}\n").as_bytes());
        }
        assert_eq!(c.lines.len(), MAX_LINES);
        assert_eq!(c.lines[0], "10");
    }
}
