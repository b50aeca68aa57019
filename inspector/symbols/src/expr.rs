//! Symbol expressions: what kinspect accepts wherever it wants an address.
//!
//! ```text
//! expr    := unary (('+' | '-') unary)*
//! unary   := '&' unary | '*' unary | '-' unary | postfix
//! postfix := primary ( '[' expr ']' | '.' name | '->' name )*
//! primary := number | name ('::' name)* | '(' expr ')'
//! number  := 0x1f | 0b101 | 0o17 | 42        (`_` allowed between digits)
//! ```
//!
//! Names are globals (DWARF variables, then ELF symbols: `proc`, `etext`,
//! `trampoline`). Evaluation ([`eval`]) gives an [`Evaluated`]: a place in
//! memory (address and type) or a number. Where an address is wanted
//! ([`crate::Symbols::eval_address`]) a place of scalar type gives its
//! value (`proc[3].kstack` is the kstack address; `kernel_pagetable` the
//! root table's address), any other place its address (`proc[3]`, `etext`),
//! as C decays arrays and functions. `+` and `-` work on byte addresses:
//! there is no pointer scaling. Every error names the part that failed.

use std::fmt;

use crate::error::{Result, SymbolError};
use crate::reflect::Memory;
use crate::types::{low_mask, Encoding, TypeId, TypeKind};
use crate::Symbols;

/// Longest expression accepted, in bytes.
const MAX_LEN: usize = 1024;
/// Deepest nesting of sub-expressions.
const MAX_NESTING: usize = 64;

/// A parsed expression. Its `Display` prints it back in canonical form,
/// which is how errors name the part that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A literal, with its text as written.
    Number(u64, String),
    /// A global: `proc`, `kernel::proc::PROCS`, `etext`.
    Name(String),
    /// `base.field`
    Field(Box<Expr>, String),
    /// `base->field`
    Arrow(Box<Expr>, String),
    /// `base[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `&place`
    AddrOf(Box<Expr>),
    /// `*pointer`
    Deref(Box<Expr>),
    /// `-x`
    Neg(Box<Expr>),
    /// `a + b`
    Add(Box<Expr>, Box<Expr>),
    /// `a - b`
    Sub(Box<Expr>, Box<Expr>),
    /// `(x)`
    Paren(Box<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(_, text) => f.write_str(text),
            Expr::Name(n) => f.write_str(n),
            // Rust tuple fields are DWARF members `__0`, written `.0`.
            Expr::Field(b, n) => match n.strip_prefix("__") {
                Some(i) if !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()) => {
                    write!(f, "{b}.{i}")
                }
                _ => write!(f, "{b}.{n}"),
            },
            Expr::Arrow(b, n) => write!(f, "{b}->{n}"),
            Expr::Index(b, i) => write!(f, "{b}[{i}]"),
            Expr::AddrOf(x) => write!(f, "&{x}"),
            Expr::Deref(x) => write!(f, "*{x}"),
            Expr::Neg(x) => write!(f, "-{x}"),
            Expr::Add(a, b) => write!(f, "{a}+{b}"),
            Expr::Sub(a, b) => write!(f, "{a}-{b}"),
            Expr::Paren(x) => write!(f, "({x})"),
        }
    }
}

/// The result of evaluating an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evaluated {
    /// An object in memory: its address and type (`None` for an ELF
    /// symbol the DWARF does not describe, such as `etext`).
    Place { addr: u64, ty: Option<TypeId> },
    /// A number: a literal, an address taken with `&`, arithmetic, or a
    /// scalar read from memory. `ty` is its type when known; `pointee` the
    /// type it points to when it is an address of a known type.
    Value {
        value: u64,
        ty: Option<TypeId>,
        pointee: Option<TypeId>,
    },
}

impl Evaluated {
    /// The address of a place, or the number itself.
    pub fn raw(&self) -> u64 {
        match *self {
            Evaluated::Place { addr, .. } => addr,
            Evaluated::Value { value, .. } => value,
        }
    }
}

// ---------------------------------------------------------------- lexing

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Num(u64, String),
    Ident(String),
    Punct(&'static str),
}

fn parse_err(text: &str, column: usize, why: impl Into<String>) -> SymbolError {
    SymbolError::Parse {
        expr: text.to_string(),
        column,
        why: why.into(),
    }
}

/// Split an expression into tokens, each with its 1-based column.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>> {
    let mut toks = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let col = i + 1;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            let n =
                number(word).ok_or_else(|| parse_err(text, col, format!("bad number `{word}`")))?;
            toks.push((Tok::Num(n, word.to_string()), col));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            loop {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                // Rust paths: `kernel::proc::PROCS`.
                if text[i..].starts_with("::")
                    && b.get(i + 2)
                        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                {
                    i += 2;
                    continue;
                }
                break;
            }
            toks.push((Tok::Ident(text[start..i].to_string()), col));
        } else {
            let p = ["->", "[", "]", ".", "&", "*", "+", "-", "(", ")"]
                .into_iter()
                .find(|p| text[i..].starts_with(p))
                .ok_or_else(|| {
                    let ch = text[i..].chars().next().unwrap_or('?');
                    parse_err(text, col, format!("unexpected `{ch}`"))
                })?;
            toks.push((Tok::Punct(p), col));
            i += p.len();
        }
    }
    Ok(toks)
}

/// `0x80001000`, `0b101`, `0o17`, `42`, with `_` separators.
fn number(word: &str) -> Option<u64> {
    let w: String = word.chars().filter(|&c| c != '_').collect();
    let (digits, radix) = match w.get(..2) {
        Some("0x") | Some("0X") => (&w[2..], 16),
        Some("0b") | Some("0B") => (&w[2..], 2),
        Some("0o") | Some("0O") => (&w[2..], 8),
        _ => (&w[..], 10),
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

// ---------------------------------------------------------------- parsing

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    nesting: usize,
}

impl Expr {
    /// Parse an expression.
    pub fn parse(text: &str) -> Result<Expr> {
        if text.len() > MAX_LEN {
            return Err(parse_err(
                text,
                MAX_LEN,
                format!("longer than {MAX_LEN} bytes"),
            ));
        }
        let toks = lex(text)?;
        let mut p = Parser {
            text,
            toks,
            pos: 0,
            nesting: 0,
        };
        if p.toks.is_empty() {
            return Err(parse_err(text, 1, "empty expression"));
        }
        let e = p.expr()?;
        if let Some((t, col)) = p.toks.get(p.pos) {
            return Err(parse_err(text, *col, format!("unexpected {}", describe(t))));
        }
        Ok(e)
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(_, s) => format!("number `{s}`"),
        Tok::Ident(s) => format!("name `{s}`"),
        Tok::Punct(p) => format!("`{p}`"),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(_, c)| *c)
            .unwrap_or(self.text.len() + 1)
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn fail<T>(&self, why: impl Into<String>) -> Result<T> {
        Err(parse_err(self.text, self.column(), why))
    }

    fn deeper(&mut self) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.fail(format!("nested deeper than {MAX_NESTING}"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr> {
        self.deeper()?;
        let mut e = self.unary()?;
        loop {
            if self.eat("+") {
                e = Expr::Add(Box::new(e), Box::new(self.unary()?));
            } else if self.eat("-") {
                e = Expr::Sub(Box::new(e), Box::new(self.unary()?));
            } else {
                break;
            }
        }
        self.nesting -= 1;
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr> {
        self.deeper()?;
        let e = if self.eat("&") {
            Expr::AddrOf(Box::new(self.unary()?))
        } else if self.eat("*") {
            Expr::Deref(Box::new(self.unary()?))
        } else if self.eat("-") {
            Expr::Neg(Box::new(self.unary()?))
        } else {
            self.postfix()?
        };
        self.nesting -= 1;
        Ok(e)
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat("[") {
                let i = self.expr()?;
                if !self.eat("]") {
                    return self.fail("expected `]`");
                }
                e = Expr::Index(Box::new(e), Box::new(i));
            } else if self.eat(".") {
                e = Expr::Field(Box::new(e), self.field_name(".")?);
            } else if self.eat("->") {
                e = Expr::Arrow(Box::new(e), self.field_name("->")?);
            } else {
                return Ok(e);
            }
        }
    }

    fn field_name(&mut self, after: &str) -> Result<String> {
        match self.peek() {
            Some(Tok::Ident(n)) => {
                let n = n.clone();
                self.pos += 1;
                Ok(n)
            }
            // Rust tuple fields: `x.0` is DWARF member `__0`.
            Some(Tok::Num(_, s)) if s.bytes().all(|c| c.is_ascii_digit()) => {
                let n = format!("__{s}");
                self.pos += 1;
                Ok(n)
            }
            _ => self.fail(format!("expected a field name after `{after}`")),
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        match self.peek().cloned() {
            Some(Tok::Num(n, s)) => {
                self.pos += 1;
                Ok(Expr::Number(n, s))
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                Ok(Expr::Name(name))
            }
            Some(Tok::Punct("(")) => {
                self.pos += 1;
                let e = self.expr()?;
                if !self.eat(")") {
                    return self.fail("expected `)`");
                }
                Ok(Expr::Paren(Box::new(e)))
            }
            Some(t) => self.fail(format!(
                "expected a name or a number, found {}",
                describe(&t)
            )),
            None => self.fail("expected a name or a number at the end"),
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// Evaluate a parsed expression.
pub fn eval(syms: &Symbols, e: &Expr, mem: &mut dyn Memory) -> Result<Evaluated> {
    Ok(match e {
        Expr::Number(n, _) => Evaluated::Value {
            value: *n,
            ty: None,
            pointee: None,
        },
        Expr::Name(name) => {
            let g = syms.global(name)?;
            Evaluated::Place {
                addr: g.addr,
                ty: g.ty,
            }
        }
        Expr::Paren(x) => eval(syms, x, mem)?,
        Expr::AddrOf(x) => match eval(syms, x, mem)? {
            Evaluated::Place { addr, ty } => Evaluated::Value {
                value: addr,
                ty: None,
                pointee: ty,
            },
            Evaluated::Value { .. } => {
                return Err(SymbolError::Type(format!(
                    "cannot take the address of `{x}`: it is a value, not an object in memory"
                )))
            }
        },
        Expr::Deref(x) => {
            let v = eval(syms, x, mem)?;
            let (ptr, pointee) = pointer(syms, x, v, mem)?;
            if ptr == 0 {
                return Err(SymbolError::Null(x.to_string()));
            }
            Evaluated::Place {
                addr: ptr,
                ty: pointee,
            }
        }
        Expr::Neg(x) => Evaluated::Value {
            value: as_address(syms, x, eval(syms, x, mem)?, mem)?.wrapping_neg(),
            ty: None,
            pointee: None,
        },
        Expr::Add(a, b) | Expr::Sub(a, b) => {
            let x = as_address(syms, a, eval(syms, a, mem)?, mem)?;
            let y = as_address(syms, b, eval(syms, b, mem)?, mem)?;
            let value = if matches!(e, Expr::Add(..)) {
                x.wrapping_add(y)
            } else {
                x.wrapping_sub(y)
            };
            Evaluated::Value {
                value,
                ty: None,
                pointee: None,
            }
        }
        Expr::Index(base, index) => {
            let i = as_address(syms, index, eval(syms, index, mem)?, mem)? as i64;
            let b = eval(syms, base, mem)?;
            index_of(syms, base, b, i, mem)?
        }
        Expr::Field(base, name) => {
            let b = eval(syms, base, mem)?;
            let Evaluated::Place { addr, ty } = b else {
                return Err(SymbolError::Type(format!(
                    "`{base}` is a number, not a struct: no field `{name}`"
                )));
            };
            let ty = ty.ok_or_else(|| syms.untyped(&base.to_string()))?;
            let t = syms.resolve(ty)?;
            if let TypeKind::Pointer { .. } = t.kind {
                return Err(SymbolError::Type(format!(
                    "`{base}` is a pointer (`{}`); use `{base}->{name}`",
                    syms.type_name(ty)
                )));
            }
            if let TypeKind::Struct(s) = &t.kind {
                check_variant(syms, base, addr, ty, s, name, mem)?;
            }
            field_place(syms, base, addr, ty, name)?
        }
        Expr::Arrow(base, name) => {
            let b = eval(syms, base, mem)?;
            let (ptr, pointee) = pointer(syms, base, b, mem)?;
            if ptr == 0 {
                return Err(SymbolError::Null(base.to_string()));
            }
            let ty = pointee.ok_or_else(|| {
                SymbolError::Type(format!("`{base}` points to void: no field `{name}`"))
            })?;
            field_place(syms, base, ptr, ty, name)?
        }
    })
}

/// For a Rust enum, `base.Variant` is valid only while that variant is
/// the live one: read the discriminant and say which one is.
fn check_variant(
    syms: &Symbols,
    base: &Expr,
    addr: u64,
    ty: TypeId,
    s: &crate::types::StructType,
    name: &str,
    mem: &mut dyn Memory,
) -> Result<()> {
    let Some(vp) = &s.variant_part else {
        return Ok(());
    };
    if !vp
        .variants
        .iter()
        .any(|v| v.member.name.as_deref() == Some(name))
    {
        return Ok(());
    }
    let live = syms.load(mem, addr, ty).map_err(|err| match err {
        SymbolError::Memory(source) => SymbolError::Read {
            what: base.to_string(),
            source,
        },
        other => other,
    })?;
    match live.variant() {
        Some(v) if v == name => Ok(()),
        Some(v) => Err(SymbolError::Type(format!(
            "`{base}` is `{v}`, not `{name}`"
        ))),
        None => Err(SymbolError::Type(format!(
            "`{base}` holds no known variant, so not `{name}`"
        ))),
    }
}

fn field_place(
    syms: &Symbols,
    base: &Expr,
    addr: u64,
    ty: TypeId,
    name: &str,
) -> Result<Evaluated> {
    let m = syms.member(ty, name)?;
    if m.bits.is_some() {
        return Err(SymbolError::Type(format!(
            "`{base}.{name}` is a bit-field: it has no address of its own"
        )));
    }
    Ok(Evaluated::Place {
        addr: addr.wrapping_add(m.offset),
        ty: Some(m.ty),
    })
}

fn index_of(
    syms: &Symbols,
    base: &Expr,
    b: Evaluated,
    i: i64,
    mem: &mut dyn Memory,
) -> Result<Evaluated> {
    if let Evaluated::Place { addr, ty: Some(ty) } = b {
        let t = syms.resolve(ty)?;
        if let TypeKind::Array { element, len } = t.kind {
            if let Some(len) = len {
                if i < 0 || i as u64 >= len {
                    return Err(SymbolError::OutOfRange {
                        index: i,
                        what: base.to_string(),
                        len,
                    });
                }
            }
            let esize = syms.size_of(element)?;
            return Ok(Evaluated::Place {
                addr: addr.wrapping_add((i as u64).wrapping_mul(esize)),
                ty: Some(element),
            });
        }
    }
    let (ptr, pointee) = pointer(syms, base, b, mem)?;
    if ptr == 0 {
        return Err(SymbolError::Null(base.to_string()));
    }
    let elem = pointee.ok_or_else(|| {
        SymbolError::Type(format!("`{base}` points to void: it cannot be indexed"))
    })?;
    let esize = syms.size_of(elem)?;
    Ok(Evaluated::Place {
        addr: ptr.wrapping_add((i as u64).wrapping_mul(esize)),
        ty: Some(elem),
    })
}

/// The address a pointer-valued evaluation holds and what it points to.
fn pointer(
    syms: &Symbols,
    e: &Expr,
    v: Evaluated,
    mem: &mut dyn Memory,
) -> Result<(u64, Option<TypeId>)> {
    match v {
        Evaluated::Value { value, ty, pointee } => {
            let from_ty = match ty {
                Some(t) => match syms.resolve(t)?.kind {
                    TypeKind::Pointer { pointee } => pointee,
                    _ => None,
                },
                None => None,
            };
            Ok((value, pointee.or(from_ty)))
        }
        Evaluated::Place { ty: None, .. } => Err(syms.untyped(&e.to_string())),
        Evaluated::Place { addr, ty: Some(ty) } => {
            let t = syms.resolve(ty)?;
            match t.kind {
                TypeKind::Pointer { pointee } => {
                    let size = t.size.unwrap_or(8);
                    let ptr = read(syms, e, mem, addr, size)?;
                    Ok((ptr, pointee))
                }
                // An array used as a pointer decays to its first element.
                TypeKind::Array { element, .. } => Ok((addr, Some(element))),
                _ => Err(SymbolError::Type(format!(
                    "`{e}` is not a pointer (it is `{}`)",
                    syms.type_name(ty)
                ))),
            }
        }
    }
}

fn read(syms: &Symbols, e: &Expr, mem: &mut dyn Memory, addr: u64, size: u64) -> Result<u64> {
    syms.read_uint(mem, addr, size).map_err(|err| match err {
        SymbolError::Memory(source) => SymbolError::Read {
            what: e.to_string(),
            source,
        },
        other => other,
    })
}

/// The number an evaluation stands for where an address is wanted: the
/// value of a scalar place, the address of any other place.
pub fn as_address(syms: &Symbols, e: &Expr, v: Evaluated, mem: &mut dyn Memory) -> Result<u64> {
    let (addr, ty) = match v {
        Evaluated::Value { value, .. } => return Ok(value),
        Evaluated::Place { addr, ty: None } => return Ok(addr),
        Evaluated::Place { addr, ty: Some(ty) } => (addr, ty),
    };
    let t = syms.resolve(ty)?;
    match &t.kind {
        TypeKind::Pointer { .. } | TypeKind::Enum(_) | TypeKind::Base(_) => {
            let size = syms.size_of(ty)?;
            if size > 8 {
                return Err(SymbolError::Type(format!(
                    "`{e}` is {size} bytes wide: too wide for an address"
                )));
            }
            if size == 0 {
                return Ok(addr);
            }
            let raw = read(syms, e, mem, addr, size)?;
            // Sign-extend signed integers, so `-1` stays `-1`.
            Ok(match t.kind {
                TypeKind::Base(Encoding::Signed) if size < 8 => {
                    let shift = 64 - size * 8;
                    (((raw & low_mask(size)) << shift) as i64 >> shift) as u64
                }
                _ => raw,
            })
        }
        _ => Ok(addr),
    }
}

/// The offset of a member path inside a type, without memory: `x.a.b[3]`
/// where `x` stands for an object of type `ty` at offset 0.
pub fn static_offset(syms: &Symbols, ty: TypeId, e: &Expr) -> Result<(u64, TypeId)> {
    match e {
        Expr::Name(_) => Ok((0, ty)),
        Expr::Field(base, name) => {
            let (off, t) = static_offset(syms, ty, base)?;
            let m = syms.member(t, name)?;
            Ok((off.wrapping_add(m.offset), m.ty))
        }
        Expr::Index(base, index) => {
            let (off, t) = static_offset(syms, ty, base)?;
            let Expr::Number(i, _) = **index else {
                return Err(SymbolError::Type(format!(
                    "`{index}` is not a constant index"
                )));
            };
            let TypeKind::Array { element, len } = syms.resolve(t)?.kind else {
                return Err(SymbolError::Type(format!("`{base}` is not an array")));
            };
            if len.is_some_and(|l| i >= l) {
                return Err(SymbolError::OutOfRange {
                    index: i as i64,
                    what: base.to_string(),
                    len: len.unwrap_or(0),
                });
            }
            let esize = syms.size_of(element)?;
            Ok((off.wrapping_add(i.wrapping_mul(esize)), element))
        }
        other => Err(SymbolError::Type(format!("`{other}` is not a member path"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Expr::parse(s)
            .map(|e| e.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn parses_the_forms_kinspect_documents() {
        assert_eq!(p("kernel_pagetable"), "kernel_pagetable");
        assert_eq!(p("trampoline + 0x40"), "trampoline+0x40");
        assert_eq!(p("0x8000_1000"), "0x8000_1000");
        assert_eq!(p("proc[3].kstack"), "proc[3].kstack");
        assert_eq!(p("&proc[2]"), "&proc[2]");
        assert_eq!(p("cpus[1].proc->pid"), "cpus[1].proc->pid");
        assert_eq!(p("*(cpus[0].proc)"), "*(cpus[0].proc)");
        assert_eq!(p("kernel::proc::PROCS[1].0"), "kernel::proc::PROCS[1].0");
        assert_eq!(p("a - 1 - 2"), "a-1-2");
    }

    #[test]
    fn precedence_and_associativity() {
        // `&` binds looser than postfix: &(proc[2].lock), not (&proc)[2].
        let e = Expr::parse("&proc[2].lock").unwrap();
        assert!(matches!(e, Expr::AddrOf(ref x) if matches!(**x, Expr::Field(..))));
        // Left-associative subtraction.
        let e = Expr::parse("10 - 3 - 2").unwrap();
        let Expr::Sub(a, _) = e else {
            panic!("not a subtraction")
        };
        assert!(matches!(*a, Expr::Sub(..)));
    }

    #[test]
    fn numbers() {
        assert_eq!(number("0x80001000"), Some(0x8000_1000));
        assert_eq!(number("0b101"), Some(5));
        assert_eq!(number("0o17"), Some(15));
        assert_eq!(number("1_000"), Some(1000));
        assert_eq!(number("0x"), None);
        assert_eq!(number("12ab"), None);
        assert_eq!(number("0x1_0000_0000_0000_0000"), None);
    }

    #[test]
    fn parse_errors_say_where() {
        assert_eq!(
            p("proc[3"),
            "cannot parse `proc[3`: expected `]` at column 7"
        );
        assert_eq!(
            p("proc."),
            "cannot parse `proc.`: expected a field name after `.` at column 6"
        );
        assert_eq!(
            p("proc @ 3"),
            "cannot parse `proc @ 3`: unexpected `@` at column 6"
        );
        assert_eq!(p(""), "cannot parse ``: empty expression at column 1");
        assert_eq!(
            p("proc proc"),
            "cannot parse `proc proc`: unexpected name `proc` at column 6"
        );
        assert_eq!(
            p("0xZZ"),
            "cannot parse `0xZZ`: bad number `0xZZ` at column 1"
        );
        assert_eq!(
            p("1 +"),
            "cannot parse `1 +`: expected a name or a number at the end at column 4"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "(".repeat(200), ")".repeat(200));
        assert!(p(&deep).contains("nested deeper than 64"));
        let long = "x+".repeat(600) + "x";
        assert!(p(&long).contains("longer than 1024 bytes"));
        let many_amps = "&".repeat(100) + "x";
        assert!(p(&many_amps).contains("nested deeper"));
    }
}
