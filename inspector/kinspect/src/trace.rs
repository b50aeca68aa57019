//! A recording of page-table changes, as `kinspect trace` makes it and
//! `kinspect blame` and `report --trace` read it.
//!
//! Each [`Event`] is one call of the kernel's `mappages` (a mapping made)
//! or `uvmunmap` (mappings removed), with the arguments it was called
//! with, when (the kernel's `ticks`), where (hart, process) and from
//! where (a short call chain). [`Trace::blame`] answers "who mapped this
//! VA in this table": the last event in the trace that covers it.
//!
//! The file is JSON ([`Trace`]): addresses as `"0x…"` strings, as
//! everywhere in kinspect's JSON (docs/json.md).

use std::path::Path;

use kinspect_sv39::json::{hex, hex_opt};
use kinspect_sv39::{PhysAddr, VirtAddr};
use serde::{Deserialize, Deserializer, Serialize};

/// The file format's version; a reader refuses others.
pub const VERSION: u32 = 1;

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `mappages(table, va, size, pa, perm)`.
    Map,
    /// `uvmunmap(table, va, npages, do_free)`.
    Unmap,
}

/// One call of `mappages` or `uvmunmap`, as seen at its first instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the recording, from 0.
    pub seq: u64,
    pub kind: Kind,
    /// The kernel's `ticks` then (`None`: the kernel has no such counter).
    pub ticks: Option<u64>,
    pub hart: usize,
    /// The process running on that hart (`None`: the scheduler or boot).
    pub pid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The page table changed: the address of its root page.
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub table: u64,
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub va: u64,
    /// Bytes covered (`size`, or `npages` × 4096).
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub size: u64,
    /// Map: the first physical page.
    #[serde(
        serialize_with = "hex_opt",
        deserialize_with = "de_hex_opt",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub pa: Option<u64>,
    /// Map: the permission bits asked for, as letters (`rwxu`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub perm: Option<String>,
    /// Unmap: whether the pages were freed too (`do_free`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub free: Option<bool>,
    /// The functions that made the call, innermost (`mappages`) first.
    pub chain: Vec<String>,
}

impl Event {
    /// Whether `va` is in the range the event covers.
    pub fn covers(&self, va: u64) -> bool {
        va >= self.va && va - self.va < self.size
    }

    /// Who, for a sentence: `pid 3 (sh)`, or `the kernel at boot`.
    pub fn who(&self) -> String {
        match (self.pid, &self.name) {
            (Some(p), Some(n)) => format!("pid {p} ({n})"),
            (Some(p), None) => format!("pid {p}"),
            (None, _) => "no process (boot or the scheduler)".into(),
        }
    }

    /// When, for a sentence: `at tick 312 on hart 1`.
    pub fn when(&self) -> String {
        match self.ticks {
            Some(t) => format!("at tick {t} on hart {}", self.hart),
            None => format!("on hart {} (event {})", self.hart, self.seq),
        }
    }

    /// The call chain without the recorded function itself, outermost
    /// last: `uvmalloc <- exec <- sys_exec`.
    pub fn callers(&self) -> String {
        let rest: Vec<&str> = self.chain.iter().skip(1).map(String::as_str).collect();
        if rest.is_empty() {
            "(no callers recovered)".into()
        } else {
            rest.join(" <- ")
        }
    }

    /// The function that asked for the change: the first caller that is
    /// not a mapping helper (`kvmmap`, `uvmalloc`, ... are how, not who).
    pub fn made_by(&self) -> &str {
        const HELPERS: [&str; 8] = [
            "mappages",
            "kvmmap",
            "uvmalloc",
            "uvmunmap",
            "uvmdealloc",
            "uvmfirst",
            "uvminit",
            "uvmcopy",
        ];
        self.chain
            .iter()
            .map(String::as_str)
            .find(|f| !HELPERS.contains(f))
            .or(self.chain.last().map(String::as_str))
            .unwrap_or("??")
    }

    /// One line: `tick 312 hart 1 pid 3 sh  map 0x0-0x1000 -> 0x87f3a000 rx-u  table 0x87f41000  uvmalloc <- exec`.
    pub fn line(&self) -> String {
        let tick = self.ticks.map(|t| format!("tick {t} ")).unwrap_or_default();
        let who = match (self.pid, &self.name) {
            (Some(p), Some(n)) => format!("pid {p} {n}"),
            (Some(p), None) => format!("pid {p}"),
            (None, _) => "-".into(),
        };
        let what = match self.kind {
            Kind::Map => format!(
                "map   {:#x}-{:#x} -> {:#x} {}",
                self.va,
                self.va.wrapping_add(self.size),
                self.pa.unwrap_or(0),
                self.perm.as_deref().unwrap_or("?")
            ),
            Kind::Unmap => format!(
                "unmap {:#x}-{:#x}{}",
                self.va,
                self.va.wrapping_add(self.size),
                if self.free == Some(true) {
                    " (freed)"
                } else {
                    ""
                }
            ),
        };
        format!(
            "{tick}hart {} {who}  {what}  table {:#x}  {}",
            self.hart,
            self.table,
            self.callers()
        )
    }
}

/// A recording: what `kinspect trace -o FILE` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trace {
    pub version: u32,
    /// The kernel ELF it was recorded with (its file name).
    pub elf: String,
    /// Whether recording began before the kernel ran (QEMU started with
    /// `-S`): then every mapping is in it.
    pub from_reset: bool,
    /// Why the recording ended.
    pub ended: String,
    pub events: Vec<Event>,
}

/// What [`Trace::blame`] found for one VA in one table.
#[derive(Clone, Debug, Serialize)]
pub struct Blame<'t> {
    /// The last event that mapped the VA.
    pub mapped: Option<&'t Event>,
    /// An event after that one that unmapped it again.
    pub unmapped: Option<&'t Event>,
}

impl Trace {
    /// Read a trace file, or say in one line why not.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read trace {}: {e}", path.display()))?;
        let t: Trace = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a kinspect trace (kinspect trace -o FILE writes one): {e}",
                path.display()
            )
        })?;
        if t.version != VERSION {
            return Err(format!(
                "{}: trace format version {} (this kinspect reads {VERSION})",
                path.display(),
                t.version
            ));
        }
        Ok(t)
    }

    /// The events touching `va` in the table rooted at `table`: the last
    /// mapping, and an unmapping after it if there was one. Only events
    /// before `before` (a `seq`) count.
    ///
    /// `slot_of(table)` is where the table's leaf entry for `va` is now
    /// (None: not mapped). Tables can share lower-level tables (a kernel
    /// page table copied by its top-level entries), so an event in
    /// another table that reaches the same entry wrote this one too.
    pub fn blame(
        &self,
        table: u64,
        va: u64,
        before: Option<u64>,
        slot_of: &mut dyn FnMut(u64) -> Option<u64>,
    ) -> Blame<'_> {
        let page = va & !0xfff;
        let mut slots: std::collections::HashMap<u64, Option<u64>> = Default::default();
        let mut slot = |t: u64| *slots.entry(t).or_insert_with(|| slot_of(t));
        let mine = slot(table);
        let mut mapped = None;
        let mut unmapped = None;
        for e in self
            .events
            .iter()
            .take_while(|e| before.is_none_or(|b| e.seq < b))
            .filter(|e| e.covers(page))
        {
            let same = e.table == table || (mine.is_some() && slot(e.table) == mine);
            if !same {
                continue;
            }
            match e.kind {
                Kind::Map => {
                    mapped = Some(e);
                    unmapped = None;
                }
                Kind::Unmap => unmapped = Some(e),
            }
        }
        Blame { mapped, unmapped }
    }

    /// The last mapping (before `before`) in any table of `va` to the
    /// physical page `pa`: where an entry written without `mappages` (a
    /// table copied entry by entry) got its page from.
    pub fn same_page(&self, va: u64, pa: u64, before: Option<u64>) -> Option<&Event> {
        let page = va & !0xfff;
        self.events
            .iter()
            .take_while(|e| before.is_none_or(|b| e.seq < b))
            .filter(|e| e.kind == Kind::Map && e.covers(page))
            .filter(|e| e.pa.map(|p| p + (page - e.va)) == Some(pa & !0xfff))
            .last()
    }

    /// Whether the recording ended with the kernel's panic; then the
    /// panicking hart's last event is the call that was in progress.
    pub fn in_progress(&self, hart: usize) -> Option<&Event> {
        if self.ended != ENDED_PANIC {
            return None;
        }
        self.events.iter().rev().find(|e| e.hart == hart)
    }
}

/// Where the table rooted at `table` keeps its leaf entry for `va` now
/// (`None`: not mapped, or the table cannot be read).
pub fn leaf_slot(
    phys: &mut crate::model::PhysCache<'_>,
    table: PhysAddr,
    va: VirtAddr,
    ram: kinspect_sv39::Ram,
) -> Option<PhysAddr> {
    leaf(phys, table, va, ram).map(|(slot, _)| slot)
}

/// The leaf entry's address and the physical address `va` maps to in the
/// table rooted at `table`, when it is mapped.
pub fn leaf(
    phys: &mut crate::model::PhysCache<'_>,
    table: PhysAddr,
    va: VirtAddr,
    ram: kinspect_sv39::Ram,
) -> Option<(PhysAddr, PhysAddr)> {
    let t = kinspect_sv39::translate(phys, table, va, ram).ok()?;
    let pa = t.pa()?;
    t.steps.last().map(|s| (s.pte_addr, pa))
}

/// Add to a `remap` report who made the mapping the panicking call ran
/// into: the last call in the recording that wrote the same page-table
/// entry, before the call in progress on the panicking hart.
pub fn explain_remap(
    r: &mut crate::postmortem::report::PanicReport,
    trace: &Trace,
    file: &str,
    target: &mut dyn crate::target::Target,
    ram: kinspect_sv39::Ram,
) {
    let hart = r.panicking_hart;
    let Some(d) = r.diagnosis.as_mut() else {
        return;
    };
    if d.kind != "remap" {
        return;
    }
    let (Some(va), Some((table, _))) = (d.va, d.table.clone()) else {
        d.facts.push(format!(
            "the trace {file} cannot say who made the existing mapping: the VA or the table is unknown"
        ));
        return;
    };
    let current = hart.and_then(|h| trace.in_progress(h));
    let before = current.map(|e| e.seq);
    let mut phys = crate::model::PhysCache::new(target);
    // The recording and the diagnosis hold raw numbers; the walk is typed.
    let b = trace.blame(table, va, before, &mut |t| {
        leaf_slot(&mut phys, PhysAddr(t), VirtAddr(va), ram).map(|s| s.0)
    });
    match b.mapped {
        Some(e) => d.facts.push(format!(
            "the existing mapping of {va:#x} was made by {} {}, {}: {} (it mapped {:#x}-{:#x} to {:#x} {}; trace event {} of {file})",
            e.made_by(),
            e.when(),
            e.who(),
            e.chain.join(" <- "),
            e.va,
            e.va.wrapping_add(e.size),
            e.pa.unwrap_or(0),
            e.perm.as_deref().unwrap_or("?"),
            e.seq
        )),
        None => {
            let pa_now = leaf(&mut phys, PhysAddr(table), VirtAddr(va), ram).map(|(_, pa)| pa.0);
            match pa_now.and_then(|pa| trace.same_page(va, pa, before)) {
                Some(e) => d.facts.push(format!(
                    "no call in the trace {file} mapped {va:#x} in this table: its entry was written some other way (a table copied entry by entry?) and holds the page that {} mapped in the table at {:#x} {}, {}: {} (trace event {})",
                    e.made_by(),
                    e.table,
                    e.when(),
                    e.who(),
                    e.chain.join(" <- "),
                    e.seq
                )),
                None => d.facts.push(format!(
                    "no call in the trace {file} mapped {va:#x} in this table{}",
                    if trace.from_reset {
                        " (recorded from reset: the entry was written some other way, e.g. a copied table)"
                    } else {
                        " (the recording began after boot: trace from reset to see every mapping)"
                    }
                )),
            }
        }
    }
    if let Some(c) = current {
        d.facts.push(format!(
            "the colliding call: {} {}, {} (trace event {})",
            c.chain.join(" <- "),
            c.when(),
            c.who(),
            c.seq
        ));
    }
}

/// [`Trace::ended`] when the kernel panicked.
pub const ENDED_PANIC: &str = "the kernel panicked";

fn de_hex<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_hex(&s).map_err(serde::de::Error::custom)
}

fn de_hex_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_hex(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{s}` is not a 0x… address"))?;
    u64::from_str_radix(digits, 16).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: Kind, table: u64, va: u64, size: u64, chain: &[&str]) -> Event {
        Event {
            seq,
            kind,
            ticks: Some(seq * 10),
            hart: 0,
            pid: Some(3),
            name: Some("sh".into()),
            table,
            va,
            size,
            pa: (kind == Kind::Map).then_some(0x8700_0000 + va),
            perm: (kind == Kind::Map).then(|| "rw-u".to_string()),
            free: (kind == Kind::Unmap).then_some(true),
            chain: chain.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn trace(events: Vec<Event>) -> Trace {
        Trace {
            version: VERSION,
            elf: "kernel".into(),
            from_reset: true,
            ended: "interrupted".into(),
            events,
        }
    }

    #[test]
    fn blame_takes_the_last_mapping_of_that_page_in_that_table() {
        let t = trace(vec![
            ev(
                0,
                Kind::Map,
                0x1000,
                0x0,
                0x3000,
                &["mappages", "uvmalloc", "exec"],
            ),
            ev(
                1,
                Kind::Map,
                0x2000,
                0x4000,
                0x1000,
                &["mappages", "uvmalloc", "growproc"],
            ),
            ev(
                2,
                Kind::Unmap,
                0x1000,
                0x0,
                0x3000,
                &["uvmunmap", "proc_freepagetable"],
            ),
            ev(
                3,
                Kind::Map,
                0x1000,
                0x2000,
                0x2000,
                &["mappages", "uvmalloc", "growproc"],
            ),
        ]);
        let mut none = |_: u64| None;
        let b = t.blame(0x1000, 0x2abc, None, &mut none);
        assert_eq!(b.mapped.map(|e| e.seq), Some(3));
        assert!(b.unmapped.is_none());
        let b = t.blame(0x1000, 0x0, None, &mut none);
        assert_eq!(b.mapped.map(|e| e.seq), Some(0));
        assert_eq!(b.unmapped.map(|e| e.seq), Some(2));
        // Another table's mapping of the same VA is not this one's.
        assert!(t.blame(0x2000, 0x0, None, &mut none).mapped.is_none());
        assert_eq!(
            t.blame(0x2000, 0x4fff, None, &mut none)
                .mapped
                .map(|e| e.seq),
            Some(1)
        );
        assert!(t.blame(0x2000, 0x5000, None, &mut none).mapped.is_none());
        // Only what came before.
        let b = t.blame(0x1000, 0x2abc, Some(3), &mut none);
        assert_eq!(b.mapped.map(|e| e.seq), Some(0));
        assert_eq!(b.unmapped.map(|e| e.seq), Some(2));
    }

    #[test]
    fn a_table_sharing_the_entry_shares_the_blame() {
        // 0x9000 copied 0x8000's top-level entries: both reach one leaf.
        let t = trace(vec![
            ev(
                0,
                Kind::Map,
                0x8000,
                0x3f_ffff_f000,
                0x1000,
                &["mappages", "kvmmap", "kvmmake"],
            ),
            ev(
                1,
                Kind::Map,
                0x7000,
                0x3f_ffff_f000,
                0x1000,
                &["mappages", "proc_pagetable"],
            ),
        ]);
        let mut slot = |table: u64| match table {
            0x8000 | 0x9000 => Some(0x5ff8),
            0x7000 => Some(0x6ff8),
            _ => None,
        };
        let b = t.blame(0x9000, 0x3f_ffff_f000, None, &mut slot);
        assert_eq!(b.mapped.map(|e| e.made_by()), Some("kvmmake"));
    }

    #[test]
    fn made_by_skips_the_mapping_helpers() {
        let e = ev(
            0,
            Kind::Map,
            0,
            0,
            0x1000,
            &["mappages", "uvmalloc", "growproc", "sys_sbrk"],
        );
        assert_eq!(e.made_by(), "growproc");
        assert_eq!(e.callers(), "uvmalloc <- growproc <- sys_sbrk");
        let e = ev(
            0,
            Kind::Map,
            0,
            0,
            0x1000,
            &["mappages", "kvmmap", "kvmmake"],
        );
        assert_eq!(e.made_by(), "kvmmake");
        let e = ev(0, Kind::Map, 0, 0, 0x1000, &["mappages"]);
        assert_eq!(e.made_by(), "mappages");
    }

    #[test]
    fn a_trace_round_trips_through_json_with_hex_strings() {
        let t = trace(vec![ev(
            0,
            Kind::Map,
            0x87f4_1000,
            0x0,
            0x1000,
            &["mappages"],
        )]);
        let s = serde_json::to_string(&t).unwrap();
        assert!(s.contains("\"table\":\"0x87f41000\""), "{s}");
        let back: Trace = serde_json::from_str(&s).unwrap();
        assert_eq!(back.events, t.events);
    }

    #[test]
    fn a_damaged_file_is_one_line_naming_it() {
        let dir = std::env::temp_dir().join(format!("kinspect-trace-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.json");
        std::fs::write(&p, "{\"version\": 1, \"events\": [").unwrap();
        let e = Trace::load(&p).unwrap_err();
        assert!(e.contains("is not a kinspect trace"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        std::fs::write(
            &p,
            "{\"version\":9,\"elf\":\"k\",\"from_reset\":false,\"ended\":\"x\",\"events\":[]}",
        )
        .unwrap();
        let e = Trace::load(&p).unwrap_err();
        assert!(e.contains("version 9"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
