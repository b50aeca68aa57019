//! sh: xv6's shell. Reads a line at a time after a `$ ` prompt (on fd 2),
//! parses it into a command tree and runs it in a child.
//!
//! Grammar (xv6's):
//! ```text
//! line  = pipe { '&' } [ ';' line ]
//! pipe  = exec [ '|' pipe ]
//! exec  = ( '(' line ')' | word { word } ) with redirections '<' '>' '>>' anywhere
//! ```
//! `cd DIR` is built in (a child's chdir would not affect the shell).

#![no_std]
#![no_main]

use user::alloc::boxed::Box;
use user::alloc::string::String;
use user::alloc::vec::Vec;
use user::*;

entry!(main);

const MAXARGS: usize = 10;

enum Cmd {
    Exec(Vec<String>),
    Redir {
        cmd: Box<Cmd>,
        file: String,
        mode: i32,
        fd: i32,
    },
    Pipe(Box<Cmd>, Box<Cmd>),
    List(Box<Cmd>, Box<Cmd>),
    Back(Box<Cmd>),
}

fn fork1() -> i32 {
    let pid = fork();
    if pid == -1 {
        panic_sh("fork");
    }
    pid
}

fn panic_sh(s: &str) -> ! {
    eprintln!("{}", s);
    exit(1)
}

/// Run `cmd`; never returns (it runs in a child of the shell).
fn runcmd(cmd: &Cmd) -> ! {
    match cmd {
        Cmd::Exec(argv) => {
            if argv.is_empty() {
                exit(1);
            }
            let args: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
            exec(&argv[0], &args);
            eprintln!("exec {} failed", argv[0]);
        }
        Cmd::Redir {
            cmd,
            file,
            mode,
            fd,
        } => {
            close(*fd);
            if open(file, *mode) < 0 {
                eprintln!("open {} failed", file);
                exit(1);
            }
            runcmd(cmd);
        }
        Cmd::List(left, right) => {
            if fork1() == 0 {
                runcmd(left);
            }
            wait(None);
            runcmd(right);
        }
        Cmd::Pipe(left, right) => {
            let mut p = [0i32; 2];
            if pipe(&mut p) < 0 {
                panic_sh("pipe");
            }
            if fork1() == 0 {
                close(1);
                dup(p[1]);
                close(p[0]);
                close(p[1]);
                runcmd(left);
            }
            if fork1() == 0 {
                close(0);
                dup(p[0]);
                close(p[0]);
                close(p[1]);
                runcmd(right);
            }
            close(p[0]);
            close(p[1]);
            wait(None);
            wait(None);
        }
        Cmd::Back(cmd) => {
            if fork1() == 0 {
                runcmd(cmd);
            }
        }
    }
    exit(0)
}

/// Print the prompt and read a line; `None` at end of input.
fn getcmd(buf: &mut Vec<u8>) -> Option<()> {
    eprint!("$ ");
    buf.clear();
    let mut c = [0u8; 1];
    loop {
        if read(0, &mut c) < 1 {
            break;
        }
        buf.push(c[0]);
        if c[0] == b'\n' || c[0] == b'\r' {
            break;
        }
    }
    if buf.is_empty() {
        None
    } else {
        Some(())
    }
}

fn main(_args: Args) -> i32 {
    // Make sure fds 0, 1 and 2 are open.
    loop {
        let fd = open("console", O_RDWR);
        if fd < 0 {
            break;
        }
        if fd >= 3 {
            close(fd);
            break;
        }
    }
    let mut buf = Vec::new();
    while getcmd(&mut buf).is_some() {
        let line = String::from_utf8_lossy(&buf);
        if let Some(dir) = line.strip_prefix("cd ") {
            let dir = dir.trim_end_matches(['\n', '\r']);
            if chdir(dir) < 0 {
                eprintln!("cannot cd {}", dir);
            }
            continue;
        }
        // Parse before forking so a syntax error costs no process.
        match parse(&line) {
            Ok(cmd) => {
                if fork1() == 0 {
                    runcmd(&cmd);
                }
                wait(None);
            }
            Err(e) => eprintln!("{}", e),
        }
    }
    0
}

// Parsing.

const WHITESPACE: &[u8] = b" \t\r\n\x0b";
const SYMBOLS: &[u8] = b"<|>&;()";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    Sym(u8),
    /// `>>`
    Append,
    Word,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && WHITESPACE.contains(&self.s[self.pos]) {
            self.pos += 1;
        }
    }

    /// Is the next token one of `toks`?
    fn peek(&mut self, toks: &[u8]) -> bool {
        self.skip_ws();
        self.pos < self.s.len() && toks.contains(&self.s[self.pos])
    }

    /// The next token, and its text when it is a word.
    fn gettoken(&mut self) -> (Tok, &'a str) {
        self.skip_ws();
        let start = self.pos;
        let tok = match self.s.get(self.pos) {
            None => Tok::End,
            Some(b'>') if self.s.get(self.pos + 1) == Some(&b'>') => {
                self.pos += 2;
                Tok::Append
            }
            Some(&c) if SYMBOLS.contains(&c) => {
                self.pos += 1;
                Tok::Sym(c)
            }
            Some(_) => {
                while self.pos < self.s.len()
                    && !WHITESPACE.contains(&self.s[self.pos])
                    && !SYMBOLS.contains(&self.s[self.pos])
                {
                    self.pos += 1;
                }
                Tok::Word
            }
        };
        let text = core::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        (tok, text)
    }

    fn line(&mut self) -> Result<Cmd, &'static str> {
        let mut cmd = self.pipe()?;
        while self.peek(b"&") {
            self.gettoken();
            cmd = Cmd::Back(Box::new(cmd));
        }
        if self.peek(b";") {
            self.gettoken();
            cmd = Cmd::List(Box::new(cmd), Box::new(self.line()?));
        }
        Ok(cmd)
    }

    fn pipe(&mut self) -> Result<Cmd, &'static str> {
        let cmd = self.exec()?;
        if self.peek(b"|") {
            self.gettoken();
            return Ok(Cmd::Pipe(Box::new(cmd), Box::new(self.pipe()?)));
        }
        Ok(cmd)
    }

    /// One redirection (`<`, `>` or `>>`, then a file name), after
    /// `peek(b"<>")` said one is next: (file, open mode, fd it replaces).
    fn redir(&mut self) -> Result<(String, i32, i32), &'static str> {
        let (tok, _) = self.gettoken();
        let (t, file) = self.gettoken();
        if t != Tok::Word {
            return Err("missing file for redirection");
        }
        let (mode, fd) = match tok {
            Tok::Sym(b'<') => (O_RDONLY, 0),
            Tok::Sym(b'>') => (O_WRONLY | O_CREATE | O_TRUNC, 1),
            _ => (O_WRONLY | O_CREATE, 1), // >>
        };
        Ok((String::from(file), mode, fd))
    }

    /// Wrap `cmd` in the redirections that follow it.
    fn redirs(&mut self, mut cmd: Cmd) -> Result<Cmd, &'static str> {
        while self.peek(b"<>") {
            let (file, mode, fd) = self.redir()?;
            cmd = Cmd::Redir {
                cmd: Box::new(cmd),
                file,
                mode,
                fd,
            };
        }
        Ok(cmd)
    }

    fn block(&mut self) -> Result<Cmd, &'static str> {
        self.gettoken(); // '('
        let cmd = self.line()?;
        if !self.peek(b")") {
            return Err("syntax - missing )");
        }
        self.gettoken();
        self.redirs(cmd)
    }

    fn exec(&mut self) -> Result<Cmd, &'static str> {
        if self.peek(b"(") {
            return self.block();
        }
        // As in xv6, each redirection wraps what came before it, so the
        // last one is outermost and runs first.
        let mut argv = Vec::new();
        let mut redirs: Vec<(String, i32, i32)> = Vec::new();
        loop {
            if self.peek(b"|)&;") {
                break;
            }
            if self.peek(b"<>") {
                redirs.push(self.redir()?);
                continue;
            }
            let (tok, word) = self.gettoken();
            match tok {
                Tok::End => break,
                Tok::Word => {
                    argv.push(String::from(word));
                    if argv.len() >= MAXARGS {
                        return Err("too many args");
                    }
                }
                _ => return Err("syntax"),
            }
        }
        let mut cmd = Cmd::Exec(argv);
        for (file, mode, fd) in redirs {
            cmd = Cmd::Redir {
                cmd: Box::new(cmd),
                file,
                mode,
                fd,
            };
        }
        Ok(cmd)
    }
}

fn parse(line: &str) -> Result<Cmd, &'static str> {
    let mut p = Parser {
        s: line.as_bytes(),
        pos: 0,
    };
    let cmd = p.line()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err("syntax - leftovers");
    }
    Ok(cmd)
}
