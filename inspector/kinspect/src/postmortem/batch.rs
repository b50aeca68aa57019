//! `kinspect report --batch DIR|FILE...`: many crashes at once.
//!
//! A teacher gets a lab section's snapshots, an autograder a pile of QEMU
//! cores. Each file is opened and reported exactly as `kinspect --snapshot
//! FILE report` would (same identity check, same diagnosis), on all cores
//! at once, and the results are grouped by the diagnosis's class (a kernel
//! stack mapped twice, kvmpa on the wrong table, ...). A damaged file gets
//! its one-line reason and the rest go on.
//!
//! Each file needs the kernel it was taken of. Students' kernels differ, so
//! the ELF is looked up per file, the first whose identity matches:
//! `--elf` when given, `FILE` with the extension `.elf`, then `kernel`,
//! `kernel.elf` or `kernel/kernel` (where xv6's Makefile leaves it) in the
//! file's directory, then the path the snapshot recorded, then
//! `target/kernel/kernel.elf`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::diagnose::class_words;
use super::report::build;
use crate::error::{Error, Result};
use crate::session::{Session, DEFAULT_ELF};
use crate::snapshot::{format, identity, KernelId};
use crate::target::elfcore;

/// Directories are searched this deep, and at most this many files are read.
const MAX_DEPTH: usize = 8;
const MAX_FILES: usize = 100_000;

/// What one file came to.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub file: String,
    /// The kernel ELF used for it.
    pub elf: Option<String>,
    /// `diagnosed`, `undiagnosed` (a panic no classic cause explains),
    /// `no-panic` (the kernel had not panicked) or `error`.
    pub outcome: &'static str,
    pub message: Option<String>,
    pub kind: Option<String>,
    pub class: Option<&'static str>,
    pub cause: Option<String>,
    #[serde(serialize_with = "kinspect_sv39::json::hex_opt")]
    pub va: Option<u64>,
    pub panicking_hart: Option<usize>,
    pub pid: Option<i64>,
    pub process: Option<String>,
    /// Why the file could not be reported, and the exit code
    /// `kinspect --snapshot FILE report` would give.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
}

impl Entry {
    fn new(file: &Path) -> Entry {
        Entry {
            file: file.display().to_string(),
            elf: None,
            outcome: "error",
            message: None,
            kind: None,
            class: None,
            cause: None,
            va: None,
            panicking_hart: None,
            pid: None,
            process: None,
            error: None,
            exit_code: None,
        }
    }

    /// The group this entry counts in.
    fn group(&self) -> &str {
        match (self.outcome, self.class) {
            (_, Some(c)) => c,
            ("undiagnosed", _) => "undiagnosed",
            ("no-panic", _) => "no-panic",
            _ => "unreadable",
        }
    }
}

/// Files that share a diagnosis class.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub class: String,
    pub words: String,
    pub count: usize,
    pub files: Vec<String>,
}

/// Everything `report --batch` says.
#[derive(Clone, Debug, Serialize)]
pub struct Batch {
    pub files: Vec<Entry>,
    /// Largest group first.
    pub groups: Vec<Group>,
    pub seconds: f64,
    pub jobs: usize,
}

/// How to read the files.
pub struct Options {
    /// The invocation's settings (profile, RAM); its ELF is used for
    /// every file only when it was named with `--elf`.
    pub session: Session,
    /// Worker threads.
    pub jobs: usize,
}

impl Options {
    /// `--elf`, when given.
    fn elf(&self) -> Option<&Path> {
        self.session
            .elf
            .as_deref()
            .filter(|_| self.session.elf_given)
    }
}

/// The files named on the command line: files as given, directories
/// searched (bounded) for snapshots and ELF cores, sorted by path.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let md =
            std::fs::metadata(p).map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?;
        if md.is_dir() {
            let mut found = Vec::new();
            walk(p, 0, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
        if out.len() > MAX_FILES {
            return Err(Error::BadInput(format!(
                "more than {MAX_FILES} files: give fewer at a time"
            )));
        }
    }
    if out.is_empty() {
        return Err(Error::BadInput(
            "no snapshot or QEMU core found in what --batch names".into(),
        ));
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH || out.len() > MAX_FILES {
        return Ok(());
    }
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::BadInput(format!("{}: {e}", dir.display())))?;
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, depth + 1, out)?;
        } else if looks_like_crash(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// A snapshot (by its magic or its `.kisnap` name, so that a damaged one
/// is still reported), or an ELF core (not the kernels lying beside them).
fn looks_like_crash(p: &Path) -> bool {
    if p.extension().is_some_and(|e| e == "kisnap") {
        return true;
    }
    let mut head = [0u8; 20];
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    // ELF e_type at offset 16: 4 = ET_CORE.
    format::is_snapshot(head) || (elfcore::is_elf(head) && n >= 18 && head[16] == 4)
}

/// Where to look for `file`'s kernel, in order.
fn elf_candidates(file: &Path, explicit: Option<&Path>, recorded: Option<&str>) -> Vec<PathBuf> {
    if let Some(e) = explicit {
        return vec![e.to_path_buf()];
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut c = vec![
        file.with_extension("elf"),
        dir.join("kernel"),
        dir.join("kernel.elf"),
        dir.join("kernel").join("kernel"),
    ];
    if let Some(r) = recorded {
        c.push(PathBuf::from(r));
    }
    c.push(PathBuf::from(DEFAULT_ELF));
    c.retain(|p| p.is_file());
    c.dedup();
    c
}

/// A parsed kernel, shared by the files of one worker that use it.
struct Kernel {
    id: KernelId,
    /// `None`: an ELF without the debug info a report needs.
    symbols: Option<Arc<kinspect_symbols::Symbols>>,
}

/// One worker's kernels, by path.
#[derive(Default)]
struct Kernels(HashMap<PathBuf, Option<Arc<Kernel>>>);

impl Kernels {
    fn get(&mut self, p: &Path) -> Option<Arc<Kernel>> {
        self.0
            .entry(p.to_path_buf())
            .or_insert_with(|| {
                let bytes = std::fs::read(p).ok()?;
                let id = identity::of_elf(&bytes, Some(&p.display().to_string())).ok()?;
                let symbols = kinspect_symbols::Symbols::open(p).ok().map(Arc::new);
                Some(Arc::new(Kernel { id, symbols }))
            })
            .clone()
    }
}

/// The session for one file: the invocation's settings with this kernel.
fn session_for(opts: &Options, file: &Path, elf: Option<(&Path, &Kernel)>) -> Session {
    let mut session = opts.session.clone();
    session.snapshot = Some(file.to_path_buf());
    session.with_symbols(
        elf.map(|(p, _)| p.to_path_buf()),
        elf.and_then(|(_, k)| k.symbols.clone()),
    )
}

/// The identity a snapshot records, read from its header only when it
/// opens; `None` for QEMU cores (they carry none) and damaged files.
fn recorded_identity(file: &Path) -> Option<KernelId> {
    let t = crate::target::snapshot::SnapshotTarget::open(file).ok()?;
    t.meta().kernel.clone()
}

fn report_one(file: &Path, opts: &Options, kernels: &mut Kernels) -> Entry {
    let mut e = Entry::new(file);
    let recorded = recorded_identity(file);
    let cands = elf_candidates(
        file,
        opts.elf(),
        recorded.as_ref().and_then(|k| k.elf.as_deref()),
    );
    // The first candidate of the same build; for a core (no identity
    // recorded) the first that exists.
    let chosen = cands.iter().find_map(|c| {
        let k = kernels.get(c)?;
        match &recorded {
            Some(r) if r.load_hash != k.id.load_hash => None,
            _ => Some((c.clone(), k)),
        }
    });
    let mut quiet = std::io::sink();
    let (elf_path, kernel) = match chosen {
        Some(x) => x,
        None if opts.elf().is_some() || cands.is_empty() => {
            // Let the open give the usual reason (another build, damage),
            // else say that no ELF was found.
            let k = opts
                .elf()
                .and_then(|p| kernels.get(p).map(|k| (p.to_path_buf(), k)));
            let session = session_for(opts, file, k.as_ref().map(|(p, k)| (p.as_path(), &**k)));
            if let Err(err) = crate::snapshot::open::open(&session, file, &mut quiet) {
                return failed(e, err);
            }
            return failed(
                e,
                Error::BadInput(format!(
                    "{}: no kernel ELF found for it (--elf, {}.elf, or kernel beside it)",
                    file.display(),
                    file.with_extension("").display()
                )),
            );
        }
        None => {
            let want = recorded.map(|r| r.load_hash).unwrap_or_default();
            return failed(
                e,
                Error::Snapshot(format!(
                    "{}: none of {} is the kernel it was taken of (load hash {want})",
                    file.display(),
                    cands
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    };
    e.elf = Some(elf_path.display().to_string());
    let Some(syms) = kernel.symbols.clone() else {
        return failed(
            e,
            Error::BadInput(format!(
                "{}: no debug info (build the kernel with -g)",
                elf_path.display()
            )),
        );
    };
    let session = session_for(opts, file, Some((&elf_path, &kernel)));
    let mut t = match crate::snapshot::open::open(&session, file, &mut quiet) {
        Ok(t) => t,
        Err(err) => return failed(e, err),
    };
    let r = match build(&mut t, &syms, session.profile.clone(), session.ram) {
        Ok(r) => r,
        Err(err) => return failed(e, Error::from(err)),
    };
    e.message = r.message.clone();
    e.panicking_hart = r.panicking_hart;
    if let Some(h) = r
        .panicking_hart
        .and_then(|ph| r.harts.iter().find(|h| h.hart == ph))
    {
        e.pid = h.pid;
        e.process = h.process.clone();
    }
    match (&r.diagnosis, r.panicked, r.panicking_hart) {
        (Some(d), _, _) => {
            e.outcome = "diagnosed";
            e.kind = Some(d.kind.clone());
            e.class = Some(d.class);
            e.cause = Some(d.cause.clone());
            e.va = d.va;
        }
        (None, Some(0), None) => e.outcome = "no-panic",
        _ => e.outcome = "undiagnosed",
    }
    e
}

fn failed(mut e: Entry, err: Error) -> Entry {
    e.outcome = "error";
    e.exit_code = Some(err.exit_code());
    e.error = Some(err.to_string());
    e
}

/// Report every file, `opts.jobs` at a time, and group the results.
pub fn run(files: &[PathBuf], opts: &Options) -> Batch {
    let start = Instant::now();
    let jobs = opts.jobs.clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Entry>>> = Mutex::new(vec![None; files.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                let mut kernels = Kernels::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    // A panic inside one report must not lose the others.
                    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        report_one(f, opts, &mut kernels)
                    }))
                    .unwrap_or_else(|_| {
                        failed(
                            Entry::new(f),
                            Error::Failed(format!(
                                "{}: kinspect failed on this file (a bug: please report it)",
                                f.display()
                            )),
                        )
                    });
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(e);
                    }
                }
            });
        }
    });
    let files: Vec<Entry> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .zip(files)
        .map(|(e, f)| {
            e.unwrap_or_else(|| failed(Entry::new(f), Error::Failed("not reported".into())))
        })
        .collect();
    let mut groups: Vec<Group> = Vec::new();
    for e in &files {
        let g = e.group().to_string();
        match groups.iter_mut().find(|x| x.class == g) {
            Some(x) => {
                x.count += 1;
                x.files.push(e.file.clone());
            }
            None => groups.push(Group {
                words: group_words(&g).to_string(),
                class: g,
                count: 1,
                files: vec![e.file.clone()],
            }),
        }
    }
    // Largest first; ties in the order of CLASSES, then by name.
    let rank = |c: &str| {
        super::diagnose::CLASSES
            .iter()
            .position(|(k, _)| *k == c)
            .unwrap_or(usize::MAX)
    };
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(rank(&a.class).cmp(&rank(&b.class)))
            .then(a.class.cmp(&b.class))
    });
    Batch {
        files,
        groups,
        seconds: start.elapsed().as_secs_f64(),
        jobs,
    }
}

fn group_words(class: &str) -> &str {
    match class {
        "undiagnosed" => "a panic that none of the classic causes explains",
        "no-panic" => "the kernel had not panicked",
        "unreadable" => "could not be reported (damaged, another kernel, no ELF)",
        c => class_words(c),
    }
}

impl Batch {
    /// Files that could not be reported.
    pub fn errors(&self) -> usize {
        self.files.iter().filter(|e| e.outcome == "error").count()
    }

    /// One line per file, then the groups.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let width = self
            .files
            .iter()
            .map(|e| e.file.chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        for e in &self.files {
            let what = match e.outcome {
                "error" => format!("error: {}", e.error.as_deref().unwrap_or("?")),
                "no-panic" => "no panic".to_string(),
                _ => {
                    let msg = e
                        .message
                        .as_deref()
                        .map(|m| format!("panic: {m}"))
                        .unwrap_or_else(|| "panic (message unknown)".into());
                    let who = match (e.panicking_hart, &e.process) {
                        (Some(h), Some(p)) => format!(" (hart {h}, {p})"),
                        (Some(h), None) => format!(" (hart {h})"),
                        _ => String::new(),
                    };
                    format!("{:<30} {msg}{who}", e.class.unwrap_or("undiagnosed"))
                }
            };
            let _ = writeln!(s, "{:<width$}  {what}", e.file);
        }
        let n = self.files.len();
        let rate = if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "\n{} in {:.2} s ({rate:.0} per second, {}):",
            crate::words::count(n, "file", "files"),
            self.seconds,
            crate::words::count(self.jobs, "thread", "threads")
        );
        for g in &self.groups {
            let _ = writeln!(s, "{:>6}  {:<32} {}", g.count, g.class, g.words);
        }
        s
    }
}

/// `kinspect report --batch`: print the batch, text or JSON; exit 6 when
/// a file could not be reported (after reporting all the others).
pub fn main(paths: &[PathBuf], opts: &Options, json: bool, out: &mut dyn Write) -> Result<()> {
    let files = collect(paths)?;
    let b = run(&files, opts);
    if json {
        let s = serde_json::to_string_pretty(&b)
            .map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
        writeln!(out, "{s}")?;
    } else {
        write!(out, "{}", b.text())?;
    }
    match b.errors() {
        0 => Ok(()),
        n => Err(Error::Snapshot(format!(
            "{n} of {} could not be reported",
            crate::words::count(files.len(), "file", "files"),
        ))),
    }
}
