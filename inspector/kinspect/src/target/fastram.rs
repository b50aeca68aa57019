//! The RAM fast path: guest physical memory read straight from the QEMU
//! process on this host, registers and run control still on the gdb stub.
//!
//! Through the stub every 2 KiB of memory costs a packet round trip. But
//! guest RAM is ordinary memory of the QEMU process, so when QEMU runs on
//! this host [`FastQemu`] wraps a [`QemuTarget`] and serves `read_phys`
//! inside RAM from the host; everything else (registers, CSRs, halt and
//! resume, the monitor, ROM) still goes to the stub, so every command above
//! benefits unchanged. At connect it:
//!
//! 1. finds the process that owns the stub's end of our TCP connection
//!    (`/proc/net/tcp{,6}` gives the socket's inode, `/proc/*/fd` its owner),
//! 2. asks QEMU where RAM is: `info mtree -f` for the guest range,
//!    `gpa2hva` for its host address,
//! 3. finds that address in `/proc/PID/maps`: a file mapping (QEMU started
//!    with `-object memory-backend-file,...,share=on`, as `kinspect launch`,
//!    `cargo xtask qemu` and the tests do) is mapped here read-only
//!    ([`memmap2`]); anonymous RAM is read with positioned reads of
//!    `/proc/PID/mem` (which needs ptrace rights over QEMU),
//! 4. compares a few pages read both ways (the first page of RAM, the root
//!    page table of hart 0, the last page of RAM) byte for byte while the
//!    guest is halted.
//!
//! Any failure leaves the stub in charge, with the reason kept for one line
//! on stderr ([`FastQemu::fallback`]). Reads never leave the RAM range.
//! See docs/fast-path.md.

use std::fs::File;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use kinspect_rsp::desc_cache::DescCache;

use super::qemu::QemuTarget;

use super::{Control, Csr, GeneralRegs, Hart, Monitor, Result, RunState, Target, TargetError};

const PAGE: u64 = 4096;

/// Where the host bytes of guest RAM come from.
#[derive(Debug)]
enum Source {
    /// QEMU's RAM backend file, mapped read-only and shared.
    Mapped { map: memmap2::Mmap, path: PathBuf },
    /// `/proc/PID/mem`, read at `hva + offset`.
    ProcMem { file: File, hva: u64, pid: i32 },
}

/// Guest RAM as host memory: `range` of guest physical addresses.
#[derive(Debug)]
pub struct HostRam {
    range: Range<u64>,
    source: Source,
    pid: i32,
}

impl HostRam {
    /// The guest physical range it serves.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// The QEMU process it reads.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How RAM is read, for headers and `--verbose`:
    /// `mapped /dev/shm/kinspect-ram-123` or `/proc/123/mem`.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Mapped { path, .. } => format!("mapped {}", path.display()),
            Source::ProcMem { pid, .. } => format!("/proc/{pid}/mem"),
        }
    }

    /// Whether `pa..pa+len` lies wholly in RAM.
    pub fn covers(&self, pa: u64, len: usize) -> bool {
        pa.checked_add(len as u64)
            .is_some_and(|end| self.range.start <= pa && end <= self.range.end)
    }

    /// Fill `buf` from guest physical `pa`, which must lie in RAM.
    pub fn read(&self, pa: u64, buf: &mut [u8]) -> Result<()> {
        if !self.covers(pa, buf.len()) {
            return Err(TargetError::Memory {
                addr: pa,
                len: buf.len(),
            });
        }
        let off = pa - self.range.start;
        match &self.source {
            Source::Mapped { map, .. } => {
                let off = off as usize;
                buf.copy_from_slice(&map[off..off + buf.len()]);
                Ok(())
            }
            Source::ProcMem { file, hva, pid } => file.read_exact_at(buf, hva + off).map_err(|e| {
                TargetError::Disconnected(format!("reading guest RAM through /proc/{pid}/mem: {e}"))
            }),
        }
    }

    /// A view of all of RAM, when it is mapped (snapshots copy from it).
    pub fn as_slice(&self) -> Option<&[u8]> {
        match &self.source {
            Source::Mapped { map, .. } => Some(&map[..]),
            Source::ProcMem { .. } => None,
        }
    }
}

/// Whether to try the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPath {
    /// Use it when it can be set up and verified (the default).
    Auto,
    /// Never (`--no-fast-path`).
    Off,
}

/// A live QEMU whose RAM is read from the host when it can be.
#[derive(Debug)]
pub struct FastQemu {
    stub: QemuTarget,
    ram: Option<HostRam>,
    /// Why there is no fast path (`None` when there is one, or when it
    /// was not asked for).
    fallback: Option<String>,
    /// Read RAM without halting the guest first (live views).
    live: bool,
}

impl FastQemu {
    /// Wrap a connected stub, setting up the fast path if `mode` allows.
    /// Never fails: a fast path that cannot be had leaves the stub in charge
    /// and the reason in [`FastQemu::fallback`].
    pub fn new(mut stub: QemuTarget, mode: FastPath) -> FastQemu {
        let (ram, fallback) = match mode {
            FastPath::Off => (None, None),
            FastPath::Auto => match setup(&mut stub) {
                Ok(ram) => (Some(ram), None),
                Err(why) => (None, Some(why)),
            },
        };
        FastQemu {
            stub,
            ram,
            fallback,
            live: false,
        }
    }

    /// The host RAM in use, if any.
    pub fn fast(&self) -> Option<&HostRam> {
        self.ram.as_ref()
    }

    /// Why the fast path is not in use although it was asked for.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// One line saying which path reads memory, for `--verbose`.
    pub fn path_line(&self) -> String {
        match (&self.ram, &self.fallback) {
            (Some(r), _) => format!(
                "guest RAM {:#x}..{:#x} read directly ({}), verified against the stub",
                r.range.start,
                r.range.end,
                r.describe()
            ),
            (None, Some(why)) => format!("memory through the gdb stub: {why}"),
            (None, None) => "memory through the gdb stub (--no-fast-path)".into(),
        }
    }

    /// The stub, for what the Target trait does not cover.
    pub fn stub(&mut self) -> &mut QemuTarget {
        &mut self.stub
    }

    /// The stub, to ask it things that need no change.
    pub fn stub_ref(&self) -> &QemuTarget {
        &self.stub
    }

    /// Leave the machine as found and disconnect (see [`QemuTarget::finish`]).
    pub fn finish(self) -> Result<()> {
        self.stub.finish()
    }
}

impl Target for FastQemu {
    fn describe(&self) -> String {
        match &self.ram {
            Some(r) => format!(
                "{}, RAM read directly ({})",
                self.stub.describe(),
                r.describe()
            ),
            None => self.stub.describe(),
        }
    }

    fn harts(&mut self) -> Result<Vec<Hart>> {
        self.stub.harts()
    }

    fn read_phys(&mut self, pa: u64, buf: &mut [u8]) -> Result<()> {
        match &self.ram {
            Some(ram) if ram.covers(pa, buf.len()) => {
                if !self.live {
                    // A one-shot command sees one halted machine, as on the stub.
                    self.stub
                        .session()
                        .halt_for_reading()
                        .map_err(|e| TargetError::Disconnected(e.to_string()))?;
                }
                ram.read(pa, buf)
            }
            // Not RAM: only the stub can read it, which halts the guest.
            _ if self.live => Err(TargetError::Memory {
                addr: pa,
                len: buf.len(),
            }),
            _ => self.stub.read_phys(pa, buf),
        }
    }

    fn set_live(&mut self, on: bool) -> bool {
        self.live = on && self.ram.is_some();
        self.live
    }

    fn regs(&mut self, hart: Hart) -> Result<GeneralRegs> {
        self.stub.regs(hart)
    }

    fn csr(&mut self, hart: Hart, csr: Csr) -> Result<u64> {
        self.stub.csr(hart, csr)
    }

    fn run_state(&mut self) -> Result<RunState> {
        self.stub.run_state()
    }

    fn control(&mut self) -> Option<&mut dyn Control> {
        Some(&mut self.stub)
    }

    fn direct_ram(&self) -> bool {
        self.ram.is_some()
    }

    fn monitor(&mut self) -> Option<&mut dyn Monitor> {
        Some(&mut self.stub)
    }
}

/// Set the fast path up and verify it, or say in a few words why not.
fn setup(stub: &mut QemuTarget) -> std::result::Result<HostRam, String> {
    let (ours, theirs) = stub
        .session()
        .endpoints()
        .ok_or("the stub's socket has no addresses")?;
    let pid = stub_owner(ours, theirs)?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let comm = comm.trim();
    if !comm.starts_with("qemu") {
        return Err(format!(
            "the stub is served by pid {pid} (`{comm}`), not QEMU: a proxy or tunnel"
        ));
    }
    // This QEMU's target description, kept between runs.
    if let (Some(dir), Some(id)) = (DescCache::default_dir(), exe_identity(pid)) {
        stub.session().cache_target_description(dir, id);
    }
    // The memory map and where RAM sits in QEMU are fixed for the life of
    // a QEMU process: kept per process, they cost two monitor commands
    // (`info mtree -f` alone takes QEMU about 2 ms to print) once.
    let kept = ProcessCache::new(pid);
    match map_ram(stub, pid, kept.as_ref(), true) {
        // What was kept is checked like the rest; if it no longer holds,
        // ask QEMU again.
        Err(_) if kept.is_some() => map_ram(stub, pid, kept.as_ref(), false),
        r => r,
    }
}

/// Find QEMU's RAM (from `kept`, when `use_kept` and it has it, else from
/// the monitor and `/proc/PID/maps`), open it and compare it with the
/// stub; keep what was asked for the next run.
fn map_ram(
    stub: &mut QemuTarget,
    pid: i32,
    kept: Option<&ProcessCache>,
    use_kept: bool,
) -> std::result::Result<HostRam, String> {
    if let Some(k) = kept.filter(|_| use_kept).and_then(|k| k.load()) {
        if stub.use_memory_map(&k.mtree).is_ok() {
            if let Ok(Some(range)) = stub.ram_range() {
                let size = range.end - range.start;
                let ram = match &k.file {
                    Some(f) => f.open(size).map(|map| HostRam {
                        range: range.clone(),
                        source: Source::Mapped {
                            map,
                            path: f.path.clone(),
                        },
                        pid,
                    }),
                    None => None,
                };
                let ram = match ram {
                    Some(r) => r,
                    None => open_ram(pid, k.hva, range)?.0,
                };
                verify(stub, &ram).map_err(|e| format!("{e} (size {size:#x})"))?;
                return Ok(ram);
            }
        }
    }
    let mtree = stub
        .memory_map_text()
        .map_err(|e| format!("cannot read QEMU's memory map: {e}"))?;
    stub.use_memory_map(&mtree)
        .map_err(|e| format!("cannot read QEMU's memory map: {e}"))?;
    let range = match stub.ram_range() {
        Ok(Some(r)) => r,
        Ok(None) => return Err("QEMU's memory map (info mtree) shows no RAM at 0x80000000".into()),
        Err(e) => return Err(format!("cannot read QEMU's memory map: {e}")),
    };
    let hva = gpa2hva(stub, range.start)?;
    let size = range.end - range.start;
    let (ram, file) = open_ram(pid, hva, range)?;
    verify(stub, &ram).map_err(|e| format!("{e} (size {size:#x})"))?;
    if let Some(k) = kept {
        k.store(&Kept { mtree, hva, file });
    }
    Ok(ram)
}

/// What a [`ProcessCache`] keeps.
struct Kept {
    /// `info mtree -f`.
    mtree: String,
    /// `gpa2hva` of RAM's start.
    hva: u64,
    /// RAM's backing file, when it has one we could map.
    file: Option<RamFile>,
}

/// A RAM backend file as found through `/proc/PID/maps`.
#[derive(Clone, Debug)]
struct RamFile {
    path: PathBuf,
    inode: u64,
    /// Where RAM starts in the file.
    offset: u64,
}

impl RamFile {
    /// Map `size` bytes of it, if it is still the same file (inode) and
    /// long enough.
    fn open(&self, size: u64) -> Option<memmap2::Mmap> {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(&self.path).ok()?;
        let meta = file.metadata().ok()?;
        if meta.ino() != self.inode || self.offset.checked_add(size)? > meta.len() {
            return None;
        }
        // SAFETY: the mapping is read-only and shared with QEMU, which keeps
        // writing guest RAM through it: we copy bytes out and never hand out
        // references that assume they do not change. The file stays mapped
        // (and so alive) as long as the Mmap.
        unsafe {
            memmap2::MmapOptions::new()
                .offset(self.offset)
                .len(usize::try_from(size).ok()?)
                .map(&file)
                .ok()
        }
    }
}

/// What one QEMU process told us that holds for its whole life (its
/// memory map, where its RAM sits), kept in the cache directory as
/// `qemu-PID-START` (START: the process's start time, so a new process
/// with an old pid is another file). Files of processes gone are removed
/// when a new one is written.
struct ProcessCache {
    dir: PathBuf,
    name: String,
}

impl ProcessCache {
    fn new(pid: i32) -> Option<ProcessCache> {
        let start = procfs::process::Process::new(pid)
            .ok()?
            .stat()
            .ok()?
            .starttime;
        Some(ProcessCache {
            dir: DescCache::default_dir()?,
            name: format!("qemu-{pid}-{start}"),
        })
    }

    /// What was kept, if anything (a file that does not parse is nothing).
    /// The first line is `hva 0x...`, the second `file OFFSET INODE PATH`
    /// or `mem`, the rest `info mtree -f`.
    fn load(&self) -> Option<Kept> {
        let text = std::fs::read_to_string(self.dir.join(&self.name)).ok()?;
        let (first, rest) = text.split_once('\n')?;
        let (second, mtree) = rest.split_once('\n')?;
        let hva = u64::from_str_radix(first.strip_prefix("hva 0x")?, 16).ok()?;
        let file = match second {
            "mem" => None,
            f => {
                let mut w = f.strip_prefix("file ")?.splitn(3, ' ');
                let offset = w.next()?.parse().ok()?;
                let inode = w.next()?.parse().ok()?;
                let path = PathBuf::from(w.next()?);
                Some(RamFile {
                    path,
                    inode,
                    offset,
                })
            }
        };
        Some(Kept {
            mtree: mtree.to_string(),
            hva,
            file,
        })
    }

    fn store(&self, kept: &Kept) {
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // Forget processes that are gone (bounded: one directory listing).
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten().take(4096) {
                let name = e.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("qemu-")) else {
                    continue;
                };
                let alive = rest
                    .split_once('-')
                    .and_then(|(pid, start)| {
                        Some((pid.parse::<i32>().ok()?, start.parse::<u64>().ok()?))
                    })
                    .and_then(|(pid, start)| {
                        let st = procfs::process::Process::new(pid).ok()?.stat().ok()?;
                        Some(st.starttime == start)
                    })
                    .unwrap_or(false);
                if !alive {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let path = self.dir.join(&self.name);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let file = match &kept.file {
            Some(f) => format!("file {} {} {}", f.offset, f.inode, f.path.display()),
            None => "mem".into(),
        };
        let text = format!("hva {:#x}\n{file}\n{}", kept.hva, kept.mtree);
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// What names QEMU's binary: its path, size, inode and change time, read
/// through `/proc/PID/exe` (an upgrade in place changes them).
fn exe_identity(pid: i32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let exe = format!("/proc/{pid}/exe");
    let path = std::fs::read_link(&exe).ok()?;
    let m = std::fs::metadata(&exe).ok()?;
    Some(format!(
        "{} {} {} {}.{}",
        path.display(),
        m.len(),
        m.ino(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The pid of the process on this host that holds the stub's end of the
/// connection from `ours` to `theirs`.
fn stub_owner(ours: SocketAddr, theirs: SocketAddr) -> std::result::Result<i32, String> {
    // Asking the kernel for the one socket is fast; /proc/net/tcp walks
    // every hash bucket (milliseconds), so it is only the fallback.
    let inode = match sock_diag_inode(ours, theirs) {
        Some(i) => i,
        None => {
            let mut entries = procfs::net::tcp().unwrap_or_default();
            entries.extend(procfs::net::tcp6().unwrap_or_default());
            entries
                .iter()
                .find(|e| same(e.local_address, theirs) && same(e.remote_address, ours))
                .map(|e| e.inode)
                .filter(|i| *i != 0)
                .ok_or_else(|| {
                    format!(
                        "the stub at {theirs} is not served from this host \
                         (remote host, container or tunnel)"
                    )
                })?
        }
    };
    let want = format!("socket:[{inode}]");
    let holds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str())
            })
        })
    };
    // A QEMU that `cargo xtask qemu`, `launch` or the tests started has
    // its RAM in /dev/shm/kinspect-ram-PID-..., PID being the starter:
    // try the starters' children first (a few reads, not one per process).
    if let Ok(shm) = std::fs::read_dir("/dev/shm") {
        for e in shm.flatten().take(256) {
            let name = e.file_name();
            let Some(starter) = name
                .to_str()
                .and_then(|n| n.strip_prefix("kinspect-ram-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let children =
                std::fs::read_to_string(format!("/proc/{starter}/task/{starter}/children"))
                    .unwrap_or_default();
            let found = children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
                .chain([starter])
                .find(|&pid| holds(pid));
            if let Some(pid) = found {
                return Ok(pid);
            }
        }
    }
    // QEMUs first (one small read per process), then everything else.
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| format!("cannot list processes: {e}"))?
        .flatten()
        .filter_map(|d| d.file_name().to_str()?.parse().ok())
        .collect();
    let is_qemu = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("qemu"))
    };
    let (qemus, others): (Vec<i32>, Vec<i32>) = pids.into_iter().partition(is_qemu);
    if let Some(pid) = qemus.into_iter().chain(others).find(|&pid| holds(pid)) {
        return Ok(pid);
    }
    Err(format!(
        "no process of ours owns the stub's socket (inode {inode}): QEMU runs as another user"
    ))
}

/// The inode of the TCP socket on this host whose local end is `theirs`
/// and remote end `ours` (the stub's end of our connection), asked of the
/// kernel with one NETLINK_SOCK_DIAG exact lookup; `None` if the kernel
/// does not know it or will not say.
fn sock_diag_inode(ours: SocketAddr, theirs: SocketAddr) -> Option<u64> {
    let canon = |s: SocketAddr| match s {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => s,
        },
        v4 => v4,
    };
    let (src, dst) = (canon(theirs), canon(ours));
    let mut id = [0u8; 48];
    id[0..2].copy_from_slice(&src.port().to_be_bytes());
    id[2..4].copy_from_slice(&dst.port().to_be_bytes());
    let family = match (src, dst) {
        (SocketAddr::V4(a), SocketAddr::V4(b)) => {
            id[4..8].copy_from_slice(&a.ip().octets());
            id[20..24].copy_from_slice(&b.ip().octets());
            libc::AF_INET
        }
        (SocketAddr::V6(a), SocketAddr::V6(b)) => {
            id[4..20].copy_from_slice(&a.ip().octets());
            id[20..36].copy_from_slice(&b.ip().octets());
            libc::AF_INET6
        }
        _ => return None,
    };
    // idiag_if 0, idiag_cookie INET_DIAG_NOCOOKIE: an exact lookup.
    id[40..48].copy_from_slice(&[0xff; 8]);
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&id);
    // SAFETY: plain socket calls on a descriptor we own and close; every
    // buffer pointer comes with its true length.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut reply = [0u8; 1024];
        let sent = libc::send(fd, req.as_ptr().cast(), req.len(), 0);
        let got = if sent == req.len() as isize {
            libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0)
        } else {
            -1
        };
        libc::close(fd);
        let got = usize::try_from(got).ok()?;
        parse_sock_diag(&reply[..got])
    }
}

/// The inode in a SOCK_DIAG_BY_FAMILY reply (`nlmsghdr` + `inet_diag_msg`,
/// whose `idiag_inode` is its last field, at byte 68); `None` for an error
/// message or anything short.
fn parse_sock_diag(reply: &[u8]) -> Option<u64> {
    let ty = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if ty != 20 {
        return None;
    }
    let inode = u32::from_ne_bytes(reply.get(16 + 68..16 + 72)?.try_into().ok()?);
    (inode != 0).then_some(u64::from(inode))
}

/// Socket addresses equal, an IPv4-mapped IPv6 address equal to its IPv4.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |s: SocketAddr| match s {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => s,
        },
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// QEMU's host address of guest physical `gpa` (monitor `gpa2hva`).
fn gpa2hva(stub: &mut QemuTarget, gpa: u64) -> std::result::Result<u64, String> {
    let out = Monitor::monitor(stub, &format!("gpa2hva {gpa:#x}"))
        .map_err(|e| format!("QEMU's monitor did not answer gpa2hva: {e}"))?;
    parse_gpa2hva(&out).ok_or_else(|| format!("QEMU's gpa2hva answered `{}`", out.trim()))
}

/// `Host virtual address for 0x80000000 (riscv_virt_board.ram) is 0x7f...`.
pub fn parse_gpa2hva(out: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.contains("Host virtual address"))?;
    let last = line.split_whitespace().last()?;
    u64::from_str_radix(last.strip_prefix("0x")?, 16).ok()
}

/// Open RAM at host address `hva` of process `pid`: map its backend file
/// when there is one we can open, else `/proc/PID/mem`.
fn open_ram(
    pid: i32,
    hva: u64,
    range: Range<u64>,
) -> std::result::Result<(HostRam, Option<RamFile>), String> {
    let size = range.end - range.start;
    let proc =
        procfs::process::Process::new(pid).map_err(|e| format!("QEMU (pid {pid}) is gone: {e}"))?;
    let maps = proc
        .maps()
        .map_err(|e| format!("cannot read /proc/{pid}/maps: {e}"))?;
    let end = hva
        .checked_add(size)
        .ok_or("gpa2hva gave an address at the top of memory")?;
    let map = maps
        .iter()
        .find(|m| m.address.0 <= hva && end <= m.address.1)
        .ok_or_else(|| {
            format!("QEMU's RAM at {hva:#x} (+{size:#x}) is not one mapping in /proc/{pid}/maps")
        })?;
    if let procfs::process::MMapPath::Path(path) = &map.pathname {
        let file = map
            .offset
            .checked_add(hva - map.address.0)
            .map(|offset| RamFile {
                path: path.clone(),
                inode: map.inode,
                offset,
            });
        if let Some(ram) = file.as_ref().and_then(|f| f.open(size)) {
            return Ok((
                HostRam {
                    range,
                    source: Source::Mapped {
                        map: ram,
                        path: path.clone(),
                    },
                    pid,
                },
                file,
            ));
        }
    }
    let file = File::open(format!("/proc/{pid}/mem")).map_err(|e| {
        format!(
            "cannot open /proc/{pid}/mem ({e}): reading QEMU's memory needs ptrace rights \
             (same user, kernel.yama.ptrace_scope 0, or root)"
        )
    })?;
    Ok((
        HostRam {
            range,
            source: Source::ProcMem { file, hva, pid },
            pid,
        },
        None,
    ))
}

/// Compare a few stable pages read through the fast path and the stub.
fn verify(stub: &mut QemuTarget, ram: &HostRam) -> std::result::Result<(), String> {
    let mut pages = vec![ram.range.start, ram.range.end - PAGE];
    if let Ok(satp) = stub.csr(0, Csr::Satp) {
        let root = (satp & ((1u64 << 44) - 1)) << 12;
        if satp >> 60 != 0 && ram.covers(root, PAGE as usize) {
            pages.push(root);
        }
    }
    // All of them through the stub in one pipeline, then directly.
    let mut through_stub: Vec<Vec<u8>> = pages.iter().map(|_| vec![0u8; PAGE as usize]).collect();
    {
        let mut reads: Vec<(u64, &mut [u8])> = pages
            .iter()
            .zip(through_stub.iter_mut())
            .map(|(&pa, b)| (pa, b.as_mut_slice()))
            .collect();
        stub.session()
            .read_physical_many(&mut reads)
            .map_err(|e| format!("cannot read RAM through the stub to compare: {e}"))?;
    }
    let mut b = vec![0u8; PAGE as usize];
    for (pa, a) in pages.iter().zip(&through_stub) {
        ram.read(*pa, &mut b)
            .map_err(|e| format!("cannot read {pa:#x} directly: {e}"))?;
        if *a != b {
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
            return Err(format!(
                "{} differs from the stub at {:#x}",
                ram.describe(),
                pa + at as u64
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpa2hva_reply() {
        let out = "Host virtual address for 0x80000000 (riscv_virt_board.ram) is 0x7f5a1be00000\n";
        assert_eq!(parse_gpa2hva(out), Some(0x7f5a_1be0_0000));
        assert_eq!(
            parse_gpa2hva("Error: No memory is mapped at address 0x0\n"),
            None
        );
        assert_eq!(parse_gpa2hva("Host virtual address is nothing"), None);
        assert_eq!(parse_gpa2hva(""), None);
    }

    #[test]
    fn mapped_ipv4_equals_ipv4() {
        let v4: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        let v6: SocketAddr = "[::ffff:127.0.0.1]:1234".parse().unwrap();
        let lo6: SocketAddr = "[::1]:1234".parse().unwrap();
        assert!(same(v4, v6));
        assert!(same(v6, v4));
        assert!(!same(v4, lo6));
    }

    #[test]
    fn reads_never_leave_ram() {
        let file = tempfile_with(&[7u8; 8192]);
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let ram = HostRam {
            range: 0x8000_0000..0x8000_2000,
            source: Source::Mapped {
                map,
                path: "test".into(),
            },
            pid: 0,
        };
        let mut b = [0u8; 8];
        ram.read(0x8000_1ff8, &mut b).unwrap();
        assert_eq!(b, [7; 8]);
        assert!(ram.read(0x8000_1ff9, &mut b).is_err());
        assert!(ram.read(0x7fff_fff8, &mut b).is_err());
        assert!(ram.read(u64::MAX - 3, &mut b).is_err());
    }

    fn tempfile_with(bytes: &[u8]) -> File {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("kinspect-fastram-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        let f = File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}
