//! Register numbers by name, from the stub's target description.
//!
//! QEMU describes its registers in `target.xml`, which `xi:include`s one
//! file per feature (`riscv-64bit-cpu.xml`, `riscv-64bit-fpu.xml`,
//! `riscv-64bit-virtual.xml`, `riscv-csr.xml`). A register's number is its
//! `regnum` attribute when it has one, otherwise one more than the register
//! before it, counting from 0 in document order with includes expanded in
//! place: the rule gdb follows. On QEMU 7.2 rv64gc that puts `priv` at 65
//! (after 33 core and 32 FP registers) and `satp` at 450 (`regnum`
//! attribute, 66 + 0x180). The numbers move with the CPU model, so they are
//! always read, never assumed.
//!
//! [`RegisterMap::load`] does no I/O itself: the caller hands it a function
//! that fetches one annex (the client's `qXfer:features:read`), so the
//! parsing is tested on strings.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// At most this many documents are fetched (includes of includes, cycles).
const MAX_DOCUMENTS: usize = 32;
/// At most this many registers are taken (QEMU 7.2 rv64gc has about 260).
const MAX_REGISTERS: usize = 8192;

/// Why a target description could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("target description {annex}: {why}")]
    Parse { annex: String, why: String },
    #[error("target description includes more than {MAX_DOCUMENTS} documents")]
    TooManyDocuments,
    #[error("target description has more than {MAX_REGISTERS} registers")]
    TooManyRegisters,
}

/// One register of the description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    pub name: String,
    /// The number `p`/`P` packets use.
    pub regnum: usize,
    pub bitsize: u32,
    /// The `<feature name=...>` it belongs to (`org.gnu.gdb.riscv.csr`).
    pub feature: String,
}

/// Every register the stub described, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterMap {
    /// `<architecture>` (`riscv:rv64`), when given.
    pub architecture: Option<String>,
    by_name: BTreeMap<String, Register>,
}

/// One thing a document says, in order.
enum Item {
    Include(String),
    Feature(String),
    Architecture(String),
    Reg {
        name: String,
        regnum: Option<usize>,
        bitsize: u32,
    },
}

fn attr(e: &BytesStart<'_>, key: &[u8], annex: &str) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(|err| parse_err(annex, err))?;
        if a.key.as_ref() == key {
            let v = a.unescape_value().map_err(|err| parse_err(annex, err))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn parse_err(annex: &str, why: impl std::fmt::Display) -> XmlError {
    XmlError::Parse {
        annex: annex.to_string(),
        why: why.to_string(),
    }
}

/// The items of one document, in document order.
fn parse_document(annex: &str, xml: &[u8]) -> Result<Vec<Item>, XmlError> {
    let text = std::str::from_utf8(xml).map_err(|e| parse_err(annex, e))?;
    let mut reader = Reader::from_str(text);
    let mut items = Vec::new();
    let mut in_architecture = false;
    loop {
        let event = reader.read_event().map_err(|e| parse_err(annex, e))?;
        match &event {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"xi:include" | b"include" => {
                    let href = attr(e, b"href", annex)?
                        .ok_or_else(|| parse_err(annex, "xi:include without href"))?;
                    items.push(Item::Include(href));
                }
                b"feature" => {
                    let name = attr(e, b"name", annex)?.unwrap_or_default();
                    items.push(Item::Feature(name));
                }
                b"architecture" => in_architecture = matches!(event, Event::Start(_)),
                b"reg" => {
                    let name = attr(e, b"name", annex)?
                        .ok_or_else(|| parse_err(annex, "<reg> without a name"))?;
                    let regnum = match attr(e, b"regnum", annex)? {
                        Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                            parse_err(annex, format!("register {name}: bad regnum {n:?}"))
                        })?),
                        None => None,
                    };
                    let bitsize = match attr(e, b"bitsize", annex)? {
                        Some(n) => n.trim().parse::<u32>().map_err(|_| {
                            parse_err(annex, format!("register {name}: bad bitsize {n:?}"))
                        })?,
                        None => {
                            return Err(parse_err(annex, format!("register {name}: no bitsize")))
                        }
                    };
                    items.push(Item::Reg {
                        name,
                        regnum,
                        bitsize,
                    });
                }
                _ => {}
            },
            Event::Text(t) if in_architecture => {
                let arch = t.unescape().map_err(|e| parse_err(annex, e))?;
                items.push(Item::Architecture(arch.trim().to_string()));
            }
            Event::End(e) if e.name().as_ref() == b"architecture" => in_architecture = false,
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(items)
}

impl RegisterMap {
    /// Read the description rooted at `root` (`target.xml`), fetching each
    /// document with `fetch`, and number the registers as gdb does.
    pub fn load<E: From<XmlError>>(
        root: &str,
        mut fetch: impl FnMut(&str) -> Result<Vec<u8>, E>,
    ) -> Result<RegisterMap, E> {
        let mut map = RegisterMap::default();
        let mut next = 0usize;
        let mut fetched = 0usize;
        // Depth-first, includes expanded in place: a stack of documents
        // still being read, each with its items left.
        let mut stack: Vec<(std::vec::IntoIter<Item>, String)> = Vec::new();
        let root_items = parse_document(root, &fetch(root)?)?;
        fetched += 1;
        stack.push((root_items.into_iter(), String::new()));
        while let Some((items, feature)) = stack.last_mut() {
            let Some(item) = items.next() else {
                stack.pop();
                continue;
            };
            match item {
                Item::Include(href) => {
                    fetched += 1;
                    if fetched > MAX_DOCUMENTS {
                        return Err(XmlError::TooManyDocuments.into());
                    }
                    let doc = parse_document(&href, &fetch(&href)?)?;
                    stack.push((doc.into_iter(), String::new()));
                }
                Item::Feature(name) => *feature = name,
                Item::Architecture(a) => map.architecture = Some(a),
                Item::Reg {
                    name,
                    regnum,
                    bitsize,
                } => {
                    let regnum = regnum.unwrap_or(next);
                    next = regnum + 1;
                    if map.by_name.len() >= MAX_REGISTERS {
                        return Err(XmlError::TooManyRegisters.into());
                    }
                    let feature = feature.clone();
                    map.by_name.entry(name.clone()).or_insert(Register {
                        name,
                        regnum,
                        bitsize,
                        feature,
                    });
                }
            }
        }
        Ok(map)
    }

    /// The register called `name` (`satp`, `priv`, `pc`).
    pub fn get(&self, name: &str) -> Option<&Register> {
        self.by_name.get(name)
    }

    /// All registers, by name.
    pub fn registers(&self) -> impl Iterator<Item = &Register> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from what QEMU 7.2 serves for `-machine virt` rv64gc (the
    /// full trace is in docs/protocol.md).
    fn qemu_docs(name: &str) -> Result<Vec<u8>, XmlError> {
        let doc = match name {
            "target.xml" => r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target><architecture>riscv:rv64</architecture><xi:include href="riscv-64bit-cpu.xml"/><xi:include href="riscv-64bit-fpu.xml"/><xi:include href="riscv-64bit-virtual.xml"/><xi:include href="riscv-csr.xml"/></target>"#.to_string(),
            "riscv-64bit-cpu.xml" => {
                let mut s = String::from("<?xml version=\"1.0\"?>\n<!-- Copyright -->\n<!DOCTYPE feature SYSTEM \"gdb-target.dtd\">\n<feature name=\"org.gnu.gdb.riscv.cpu\">\n");
                for r in ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6", "pc"] {
                    s += &format!("  <reg name=\"{r}\" bitsize=\"64\" type=\"int\"/>\n");
                }
                s + "</feature>\n"
            }
            "riscv-64bit-fpu.xml" => {
                let mut s = String::from("<feature name=\"org.gnu.gdb.riscv.fpu\">\n  <union id=\"riscv_double\">\n    <field name=\"float\" type=\"ieee_single\"/>\n  </union>\n");
                for i in 0..32 {
                    s += &format!("  <reg name=\"f{i}\" bitsize=\"64\" type=\"riscv_double\"/>\n");
                }
                s + "</feature>"
            }
            "riscv-64bit-virtual.xml" => "<feature name=\"org.gnu.gdb.riscv.virtual\">\n  <reg name=\"priv\" bitsize=\"64\"/>\n</feature>".to_string(),
            "riscv-csr.xml" => r#"<?xml version="1.0"?><!DOCTYPE feature SYSTEM "gdb-target.dtd"><feature name="org.gnu.gdb.riscv.csr"><reg name="sstatus" bitsize="64" regnum="322"/><reg name="sie" bitsize="64" regnum="326"/><reg name="stvec" bitsize="64" regnum="327"/><reg name="sscratch" bitsize="64" regnum="386"/><reg name="sepc" bitsize="64" regnum="387"/><reg name="scause" bitsize="64" regnum="388"/><reg name="stval" bitsize="64" regnum="389"/><reg name="sip" bitsize="64" regnum="390"/><reg name="satp" bitsize="64" regnum="450"/></feature>"#.to_string(),
            other => return Err(XmlError::Parse { annex: other.into(), why: "E00".into() }),
        };
        Ok(doc.into_bytes())
    }

    #[test]
    fn numbers_qemu_registers_like_gdb() {
        let m = RegisterMap::load("target.xml", qemu_docs).unwrap();
        assert_eq!(m.architecture.as_deref(), Some("riscv:rv64"));
        assert_eq!(m.get("zero").unwrap().regnum, 0);
        assert_eq!(m.get("pc").unwrap().regnum, 32);
        assert_eq!(m.get("f0").unwrap().regnum, 33);
        assert_eq!(m.get("priv").unwrap().regnum, 65);
        let satp = m.get("satp").unwrap();
        assert_eq!((satp.regnum, satp.bitsize), (450, 64));
        assert_eq!(satp.feature, "org.gnu.gdb.riscv.csr");
        assert_eq!(m.get("sstatus").unwrap().regnum, 322);
        assert_eq!(m.get("sip").unwrap().regnum, 390);
        assert!(m.get("mstatus").is_none());
    }

    #[test]
    fn regnum_resets_the_count() {
        let docs = |n: &str| -> Result<Vec<u8>, XmlError> {
            Ok(match n {
                "t" => br#"<target><feature name="a"><reg name="x" bitsize="32"/><reg name="y" bitsize="32" regnum="10"/><reg name="z" bitsize="32"/></feature></target>"#.to_vec(),
                _ => unreachable!(),
            })
        };
        let m = RegisterMap::load("t", docs).unwrap();
        assert_eq!(m.get("x").unwrap().regnum, 0);
        assert_eq!(m.get("y").unwrap().regnum, 10);
        assert_eq!(m.get("z").unwrap().regnum, 11);
    }

    #[test]
    fn bad_descriptions_are_errors() {
        let one = |body: &'static str| {
            move |_: &str| -> Result<Vec<u8>, XmlError> { Ok(body.as_bytes().to_vec()) }
        };
        assert!(RegisterMap::load("t", one("<target><reg name=\"a\"/></target>")).is_err());
        assert!(RegisterMap::load(
            "t",
            one("<target><reg name=\"a\" bitsize=\"64\" regnum=\"x\"/></target>")
        )
        .is_err());
        assert!(RegisterMap::load("t", one("<target><reg bitsize=\"64\"/></target>")).is_err());
        assert!(RegisterMap::load("t", one("<target><a></b></target>")).is_err());
        // An include of itself is bounded, not an endless loop.
        let e =
            RegisterMap::load("t", one("<target><xi:include href=\"t\"/></target>")).unwrap_err();
        assert_eq!(e, XmlError::TooManyDocuments);
        // A missing include is the fetcher's error.
        assert!(
            RegisterMap::load("target.xml", |n: &str| if n == "target.xml" {
                Ok(b"<target><xi:include href=\"nope.xml\"/></target>".to_vec())
            } else {
                qemu_docs(n)
            })
            .is_err()
        );
        let bin: &[u8] = b"\xff\xfe";
        assert!(RegisterMap::load("t", |_: &str| Ok::<_, XmlError>(bin.to_vec())).is_err());
    }
}
