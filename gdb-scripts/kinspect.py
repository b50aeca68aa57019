# kinspect views inside gdb-multiarch: ksatp, kvmprint, kmaps, kprocs, ktranslate.
#
#   (gdb) source gdb-scripts/kinspect.py
#   (gdb) target remote localhost:1234
#   (gdb) kprocs
#
# This file is the gdb glue only: it reads the kernel's objects through
# gdb's own symbol and type information (no hard-coded offsets) and hands
# plain integers and a physical-memory reader to `kinspectlib/` beside it,
# which holds the Sv39 walks, the per-process kernel page-table detection
# and the argument parsing, and is unit-tested without gdb
# (`python3 -m unittest discover -s gdb-scripts/tests`).
#
# Page tables are walked over *physical* memory, as kinspect does: QEMU's
# `Qqemu.PhyMemMode:1` is set for the command and always restored to its
# previous value (against `kinspect serve`, its `monitor phys on` does the
# same). Kernel globals live in xv6's identity-mapped region, so their
# addresses are physical addresses too.
#
# Settings:
#   set kinspect kpt-field NAME|none|auto   the per-process kernel page table
#   set kinspect ram-mib N                  RAM size (0: ask QEMU's memory tree)

import importlib
import json
import os
import re
import sys

import gdb

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import kinspectlib  # noqa: E402
from kinspectlib import args as kargs  # noqa: E402
from kinspectlib import kpt, ram as kram, sv39  # noqa: E402

# `source` again after editing kinspectlib picks up the edits.
for _m in (kinspectlib, sv39, kpt, kram, kargs):
    importlib.reload(_m)

STATE_NAMES = ("UNUSED", "USED", "SLEEPING", "RUNNABLE", "RUNNING", "ZOMBIE")
BASE_CODES = (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_BOOL, gdb.TYPE_CODE_FLT)
# At most this many proc slots are read, whatever the DWARF says.
MAX_SLOTS = 4096


class KinspectError(gdb.GdbError):
    pass


# ---------------------------------------------------------------------------
# Settings: `set kinspect ...` / `show kinspect ...`


class _Prefix(gdb.Command):
    def __init__(self, name):
        super().__init__(name, gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


_Prefix("set kinspect")
_Prefix("show kinspect")


class KptFieldParameter(gdb.Parameter):
    """The struct proc field that holds a process's kernel page table (the
    pgtbl lab's "a kernel page table per process"): `auto` (the default)
    finds it by type and confirms it from memory, `none` says the kernel has
    none, any other word names the field."""

    set_doc = "Set the per-process kernel page-table field (NAME, none or auto)."
    show_doc = "Show the per-process kernel page-table field."

    def __init__(self):
        super().__init__("kinspect kpt-field", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = "auto"

    def get_set_string(self):
        if not self.value:
            self.value = "auto"
        return ""

    def get_show_string(self, svalue):
        return "The per-process kernel page-table field is %s." % (svalue or "auto")


class RamMibParameter(gdb.Parameter):
    """RAM size in MiB from 0x80000000 (QEMU's -m): page-table pointers
    outside RAM are reported, never followed. 0 (the default) asks QEMU's
    memory tree (`monitor info mtree`), else assumes 128."""

    set_doc = "Set the RAM size in MiB (0: from QEMU's memory tree)."
    show_doc = "Show the RAM size setting in MiB."

    def __init__(self):
        super().__init__("kinspect ram-mib", gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.value = 0

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        ram, source = current_ram_and_source()
        return "The RAM size is %s MiB at %#x (%s)." % (ram.size >> 20, ram.base, source)


KPT_FIELD = KptFieldParameter()
RAM_MIB = RamMibParameter()


# ---------------------------------------------------------------------------
# Physical memory through QEMU's stub


def _packet(text):
    out = gdb.execute("maintenance packet " + text, to_string=True)
    m = re.search(r'received: "(.*)"', out)
    return m.group(1) if m else ""


class PhysicalMode:
    """`with PhysicalMode():` reads physical memory; the previous mode is restored.

    QEMU's stub has `Qqemu.PhyMemMode`. `kinspect serve` (a snapshot served
    to gdb) has `monitor phys on|off` instead, and says which mode it is in
    under `monitor help`."""

    def __enter__(self):
        self.kind = None
        reply = _packet("qqemu.PhyMemMode")
        if reply in ("0", "1"):
            self.kind = "qemu"
            self.previous = reply
            if _packet("Qqemu.PhyMemMode:1") != "OK":
                raise KinspectError("QEMU refused Qqemu.PhyMemMode:1")
            return self
        try:
            about = gdb.execute("monitor help", to_string=True)
        except gdb.error:
            about = ""
        if "kinspect serving" in about:
            self.kind = "kinspect"
            self.previous = "on" if "(now physical)" in about else "off"
            gdb.execute("monitor phys on", to_string=True)
            return self
        raise KinspectError("this gdb stub has no physical-memory mode (neither QEMU's Qqemu.PhyMemMode nor kinspect serve's monitor phys)")

    def __exit__(self, *exc):
        if self.kind == "qemu":
            _packet("Qqemu.PhyMemMode:" + self.previous)
        elif self.kind == "kinspect":
            gdb.execute("monitor phys " + self.previous, to_string=True)
        return False


class PatientStub:
    """`with PatientStub():` gives the stub at least MIN_REMOTE_TIMEOUT
    seconds per reply for one command, then restores `remotetimeout`.

    gdb's default (2 s) is shorter than a busy machine may leave QEMU
    unscheduled. A reply that comes late is then taken as the reply to the
    next packet: reads return other packets' data and a command prints a
    wrong table instead of failing. A halted stub always answers, so
    waiting longer only costs time when the machine is slow."""

    MIN_REMOTE_TIMEOUT = 30

    def __enter__(self):
        self.previous = gdb.parameter("remotetimeout")
        if self.previous is not None and self.previous < self.MIN_REMOTE_TIMEOUT:
            gdb.execute("set remotetimeout %d" % self.MIN_REMOTE_TIMEOUT, to_string=True)
        return self

    def __exit__(self, *exc):
        if self.previous is not None and self.previous < self.MIN_REMOTE_TIMEOUT:
            gdb.execute("set remotetimeout %d" % self.previous, to_string=True)
        return False


def read_phys(pa, length):
    """Physical memory, while a PhysicalMode is active."""
    try:
        return bytes(gdb.selected_inferior().read_memory(pa, length))
    except gdb.MemoryError:
        raise kinspectlib.Unreadable("cannot read %d bytes of physical memory at %#x" % (length, pa))


_ram_cache = {}


def current_ram_and_source():
    """RAM as `set kinspect ram-mib` says, else as QEMU's memory tree says
    (asked once per connection), else 128 MiB; and which of these it is."""
    if RAM_MIB.value:
        return kram.choose(RAM_MIB.value)
    key = getattr(gdb.selected_inferior(), "connection_num", None)
    if key is not None and key in _ram_cache:
        return _ram_cache[key]
    try:
        tree = gdb.execute("monitor info mtree -f", to_string=True)
    except gdb.error:
        tree = ""
    found = kram.choose(0, tree)
    if key is not None:
        _ram_cache[key] = found
    return found


def current_ram():
    return current_ram_and_source()[0]


# ---------------------------------------------------------------------------
# Kernel objects, through gdb's symbols and types


def global_value(name):
    return global_symbol(name).value()


def global_symbol(name):
    """A kernel global by its unmangled name, in C or Rust DWARF.

    C globals are found by name. Rust statics live in a namespace
    (`kernel::proc::proc`): `info variables` names the source file that
    declares one, and that file's global block holds the qualified symbol."""
    for lookup in (gdb.lookup_global_symbol, gdb.lookup_static_symbol):
        try:
            sym = lookup(name)
        except gdb.error:
            sym = None
        if sym is not None and sym.is_variable:
            return sym
    listing = gdb.execute("info variables %s$" % re.escape(name), to_string=True)
    for source in re.findall(r"^File (.*):$", listing, re.M):
        try:
            sals = gdb.decode_line("%s:1" % source)[1] or ()
        except gdb.error:
            continue
        for sal in sals:
            if sal.symtab is None:
                continue
            for block in (sal.symtab.global_block(), sal.symtab.static_block()):
                for sym in block:
                    if sym.is_variable and (sym.name == name or sym.name.endswith("::" + name)):
                        return sym
    raise KinspectError("no kernel global `%s` with debug info in the symbols gdb loaded (file kernel.elf?)" % name)


KERNEL_GLOBALS = ("proc", "cpus", "kernel_pagetable", "kmem", "panicked", "panicmsg")


def kernel_expression(text):
    """A gdb expression in xv6's words (`proc[3].kstack`, `cpus[1].proc->pid`)
    made evaluable in the current language: on a Rust kernel the globals get
    their qualified names and `->` becomes a field access."""
    if _is_c():
        return text

    def qualify(m):
        try:
            return global_symbol(m.group(2)).name
        except KinspectError:
            return m.group(2)

    text = re.sub(r"(^|[^\w:.>])(%s)\b" % "|".join(KERNEL_GLOBALS), lambda m: m.group(1) + qualify(m), text)
    return text.replace("->", ".")


def parse_and_eval(expr):
    """gdb.parse_and_eval in the kernel's language, whatever frame the
    harts stopped in."""
    want = "c" if _is_c() else "rust"
    if gdb.current_language() == want:
        return gdb.parse_and_eval(expr)
    previous = gdb.parameter("language")
    gdb.execute("set language %s" % want, to_string=True)
    try:
        return gdb.parse_and_eval(expr)
    finally:
        gdb.execute("set language %s" % previous, to_string=True)


def evaluate(text):
    try:
        return parse_and_eval(kernel_expression(text))
    except gdb.error as e:
        raise KinspectError("cannot evaluate `%s`: %s" % (text, e))


_IDENT = re.compile(r"^[A-Za-z_$][\w$.]*$")


def _linker_symbol_address(name):
    """The address of a symbol gdb knows only from the ELF's symbol table
    (an assembler label, a linker-script symbol: `trampoline`, `etext` in
    the Rust kernel), through C's `&`: Rust expressions do not see them."""
    previous = gdb.parameter("language")
    try:
        gdb.execute("set language c", to_string=True)
        return int(gdb.parse_and_eval("(unsigned long)&%s" % name)) & sv39.MASK64
    except gdb.error:
        return None
    finally:
        gdb.execute("set language %s" % previous, to_string=True)


def address(text):
    """The address an expression names, as C would take it: a pointer or a
    number is its value; an array (`etext`, `trampoline`) or a function
    (`main`) is where it is; a label with no debug info is where it is."""
    try:
        v = parse_and_eval(kernel_expression(text))
    except gdb.error as e:
        if _IDENT.match(text):
            a = _linker_symbol_address(text)
            if a is not None:
                return a
        raise KinspectError("cannot evaluate `%s`: %s" % (text, e))
    t = v.type.strip_typedefs()
    if t.code in (gdb.TYPE_CODE_ARRAY, gdb.TYPE_CODE_FUNC):
        if v.address is None:
            raise KinspectError("`%s` is a %s that is not in memory" % (text, t))
        return int(v.address) & sv39.MASK64
    try:
        return as_int(v)
    except (gdb.error, KinspectError) as e:
        raise KinspectError("cannot use `%s` (a `%s`) as an address: %s" % (text, v.type, e))


def field(value, name):
    try:
        return value[name]
    except gdb.error:
        raise KinspectError("`%s` has no field `%s`" % (value.type, name))


def as_int(value):
    t = value.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        return int(value.cast(gdb.lookup_type("unsigned long") if _is_c() else t)) & sv39.MASK64
    if t.code == gdb.TYPE_CODE_STRUCT:
        # Rust newtypes (PhysAddr(u64), a PageTable pointer wrapper, AtomicBool...): the first field.
        fields = t.fields()
        if fields:
            return as_int(value[fields[0]])
        raise KinspectError("cannot read `%s` as a number" % t)
    return int(value) & sv39.MASK64


_KERNEL_IS_RUST = {}


def _is_c():
    """Whether the kernel is C (its globals are plain C symbols) rather than
    Rust (statics in a namespace: `kernel::proc::proc`). A property of the
    kernel ELF, not of the frame the harts stopped in: gdb's current
    language follows that frame (asm in the trampoline or in `timervec`),
    and taking it for the kernel's made `proc` a symbol without a type."""
    key = gdb.current_progspace().filename
    if key not in _KERNEL_IS_RUST:
        try:
            _KERNEL_IS_RUST[key] = "::" in global_symbol("proc").name
        except KinspectError:
            _KERNEL_IS_RUST[key] = gdb.current_language() == "rust"
    return not _KERNEL_IS_RUST[key]


def state_name(value):
    text = str(value)
    text = text.split("::")[-1].strip()
    if text.isdigit() and int(text) < len(STATE_NAMES):
        return STATE_NAMES[int(text)]
    return text.upper()


def cstring(value):
    t = value.type.strip_typedefs()
    n = t.range()[1] + 1 if t.code == gdb.TYPE_CODE_ARRAY else 16
    out = bytearray()
    for i in range(n):
        b = int(value[i]) & 0xFF
        if b == 0:
            break
        out.append(b)
    return out.decode("ascii", "replace")


def array_len(value):
    t = value.type.strip_typedefs()
    if t.code != gdb.TYPE_CODE_ARRAY:
        raise KinspectError("`%s` is not an array" % t)
    lo, hi = t.range()
    return hi - lo + 1


def pointee(t):
    """A member type as kinspectlib.kpt compares them: what it points to,
    through typedefs and qualifiers, or None when it is no pointer."""
    t = t.strip_typedefs()
    if t.code != gdb.TYPE_CODE_PTR:
        return None
    p = t.target().strip_typedefs().unqualified()
    return kpt.Pointee(p.code in BASE_CODES, p.name or p.tag, p.sizeof, p)


class Kernel:
    """One command's reading of the kernel: `proc[]`, `kernel_pagetable`,
    RAM, and the per-process kernel page table, detected once (the setting,
    or `override` for this command)."""

    def __init__(self, override=None):
        self.ram = current_ram()
        self.setting = override if override is not None else (KPT_FIELD.value or "auto")
        self.procs = global_value("proc")
        self.nslots = min(array_len(self.procs), MAX_SLOTS)
        try:
            self.procs.fetch_lazy()  # one read of the whole table
        except gdb.error:
            pass
        element = self.procs.type.strip_typedefs().target()
        self.members = [(f.name, pointee(f.type)) for f in element.strip_typedefs().fields()]
        self.kernel_pagetable = as_int(global_value("kernel_pagetable"))
        self._detection = None

    def slot(self, i):
        return self.procs[i]

    def detection(self):
        if self._detection is None:
            names = kpt.candidates(self.members) if self.setting in ("", "auto") else []
            slots = []
            for i in range(self.nslots):
                p = self.slot(i)
                state = state_name(field(p, "state"))
                values = {} if state == "UNUSED" else {c: as_int(field(p, c)) for c in names}
                slots.append((state, values))
            self._detection = kpt.choose(
                self.setting, read_phys, self.ram, self.kernel_pagetable, slots, self.members, self.ram.base
            )
        return self._detection

    def rows(self, all_slots=False):
        d = self.detection()
        rows = []
        for i in range(self.nslots):
            p = self.slot(i)
            state = state_name(field(p, "state"))
            if state == "UNUSED" and not all_slots:
                continue
            rows.append(
                {
                    "slot": i,
                    "pid": int(field(p, "pid")),
                    "state": state,
                    "name": cstring(field(p, "name")),
                    "kstack": as_int(field(p, "kstack")),
                    "pagetable": as_int(field(p, "pagetable")),
                    "kpagetable": as_int(field(p, d.field)) if d.field else None,
                    "sz": as_int(field(p, "sz")),
                }
            )
        return rows

    def warning(self, rows):
        """kinspect procs' warning: harts running on a table that is neither
        kernel_pagetable nor a live process's, while no per-process field
        was recognised; None when there is nothing to say."""
        d = self.detection()
        if d.field is not None:
            return None
        tables = [r["pagetable"] for r in rows if r["state"] != "UNUSED"]
        return kpt.unrecognised_note(d, kpt.unexplained_roots(hart_satps(), self.kernel_pagetable, tables))

    def header(self):
        return "kernel_pagetable %#x; per-process kernel page table: %s" % (
            self.kernel_pagetable,
            self.detection().describe(),
        )

    def root(self, sel):
        """The root the selector names and a description of it."""
        if sel.kind == "kernel":
            return self.kernel_pagetable, "kernel_pagetable"
        for row in self.rows():
            if row["pid"] != sel.pid:
                continue
            if sel.kind == "user":
                return row["pagetable"], "user page table of pid %d" % sel.pid
            d = self.detection()
            if d.field is None:
                return self.kernel_pagetable, "kernel_pagetable (no per-process kernel page table)"
            if not row["kpagetable"]:
                raise KinspectError("pid %d has no kernel page table yet (its %s is 0)" % (sel.pid, d.field))
            return row["kpagetable"], "kernel page table of pid %d (%s)" % (sel.pid, d.field)
        raise KinspectError("no process with pid %d" % sel.pid)


def current_satp():
    return int(gdb.parse_and_eval("$satp")) & sv39.MASK64


def hart_satps():
    """(hart, satp) for every hart gdb knows (QEMU's thread N is hart N-1);
    the selected thread is selected again afterwards."""
    selected = gdb.selected_thread()
    out = []
    try:
        for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
            try:
                t.switch()
                out.append((t.ptid[1] - 1 if t.ptid[1] else t.num - 1, current_satp()))
            except gdb.error:
                continue
    finally:
        if selected is not None and selected.is_valid():
            selected.switch()
    return out


def resolve(sel, override=None):
    """(root, description, Kernel or None) for a selector: the current
    hart's satp needs no kernel objects; the others read them."""
    if sel.kind == "satp":
        satp = current_satp()
        d = sv39.decode_satp(satp)
        if d["mode"] != "Sv39":
            raise KinspectError("satp = %#x: mode %s, no Sv39 page table to walk" % (satp, d["mode"]))
        return d["root"], "satp of the current hart", None
    k = Kernel(override)
    root, what = k.root(sel)
    return root, what, k


def _print(lines, problems=()):
    for line in lines:
        gdb.write(line + "\n")
    for p in problems:
        gdb.write("warning: " + p + "\n")


class KCommand(gdb.Command):
    def __init__(self, name):
        super().__init__(name, gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        try:
            ns = self.parse(arg)
            with PatientStub(), PhysicalMode():
                self.run(ns)
        except KinspectError:
            raise
        except kinspectlib.KinspectError as e:
            raise KinspectError(str(e))
        except gdb.error as e:
            raise KinspectError(str(e))


class KSatp(KCommand):
    """Decode satp: the current hart's, or a VALUE given.
Usage: ksatp [VALUE]"""

    def __init__(self):
        super().__init__("ksatp")

    parse = staticmethod(kargs.parse_ksatp)

    def run(self, ns):
        satp = as_int(evaluate(ns.value)) if ns.value else current_satp()
        d = sv39.decode_satp(satp & sv39.MASK64)
        gdb.write("satp 0x%016x: mode %s asid %d ppn 0x%x root 0x%016x\n" % (satp, d["mode"], d["asid"], d["ppn"], d["root"]))


class KVmprint(KCommand):
    """Print a page table the way the xv6 pgtbl lab's vmprint does.
Usage: kvmprint [PID [kernel] | kernel] [--va] [--kpt-field NAME]
  no argument: the current hart's satp; PID: that process's user page table;
  PID kernel: its kernel page table; kernel: kernel_pagetable.
  --va prints virtual addresses instead of indices."""

    def __init__(self):
        super().__init__("kvmprint")

    parse = staticmethod(kargs.parse_kvmprint)

    def run(self, ns):
        root, _, _ = resolve(ns.selector, ns.kpt_field)
        _print(*sv39.vmprint_lines(read_phys, root, current_ram(), ns.va))


class KMaps(KCommand):
    """Merged mapped ranges, printed like QEMU's `info mem`.
Usage: kmaps [PID [kernel] | kernel] [--kpt-field NAME]"""

    def __init__(self):
        super().__init__("kmaps")

    parse = staticmethod(kargs.parse_kmaps)

    def run(self, ns):
        root, _, _ = resolve(ns.selector, ns.kpt_field)
        _print(*sv39.info_mem_lines(read_phys, root, current_ram()))


class KProcs(KCommand):
    """The process table: slot, pid, state, name, kernel stack, page tables.
Usage: kprocs [all] [--kpt-field NAME] [--json]
  The first line says which struct proc field holds the per-process kernel
  page table and how it was found (set kinspect kpt-field overrides).
  all: UNUSED slots too. --json: the same as JSON, with kinspect procs'
  field names (kernel_pagetable, kpagetable_field, kpt, procs)."""

    def __init__(self):
        super().__init__("kprocs")

    parse = staticmethod(kargs.parse_kprocs)

    def run(self, ns):
        k = Kernel(ns.kpt_field)
        rows = k.rows(all_slots=ns.all)
        warning = k.warning(rows if not ns.all else [r for r in rows if r["state"] != "UNUSED"])
        if ns.json:
            hexed = ("kstack", "pagetable", "kpagetable", "sz")
            doc = {
                "kernel_pagetable": "%#x" % k.kernel_pagetable,
                "kpagetable_field": k.detection().field,
                "kpt": k.detection().as_dict(),
                "kpt_warning": warning,
                "procs": [{key: ("%#x" % v if key in hexed and v is not None else v) for key, v in r.items()} for r in rows],
            }
            gdb.write(json.dumps(doc) + "\n")
            return
        gdb.write(k.header() + "\n")
        gdb.write("%-4s %-5s %-9s %-16s %-18s %-18s %s\n" % ("slot", "pid", "state", "name", "kstack", "pagetable", "kpagetable"))
        for r in rows:
            kp = "0x%016x" % r["kpagetable"] if r["kpagetable"] is not None else "-"
            gdb.write(
                "%-4d %-5d %-9s %-16s 0x%016x 0x%016x %s\n"
                % (r["slot"], r["pid"], r["state"], r["name"], r["kstack"], r["pagetable"], kp)
            )
        if warning:
            gdb.write("warning: %s\n" % warning)


class KTranslate(KCommand):
    """Translate a virtual address level by level (kvmpa-style).
Usage: ktranslate EXPR [PID [kernel] | kernel] [--kpt-field NAME]
  EXPR is any gdb expression (proc[3].kstack, &proc[2], 0x3fffffe000) or
  symbol (etext, main, trampoline: arrays, functions and labels give
  their address). Quote an EXPR with spaces."""

    def __init__(self):
        super().__init__("ktranslate")

    parse = staticmethod(kargs.parse_ktranslate)

    def run(self, ns):
        va = address(ns.expr)
        root, what, k = resolve(ns.selector, ns.kpt_field)
        lines, pa = sv39.translate_lines(read_phys, root, va, current_ram())
        gdb.write("in %s\n" % what)
        _print(lines)
        if pa is None and ns.selector.kind == "kernel" and k.detection().field:
            gdb.write(
                "note: this kernel has per-process kernel page tables (struct proc's %s): "
                "`ktranslate %s PID kernel` walks one\n" % (k.detection().field, ns.expr)
            )


for _cmd in (KSatp, KVmprint, KMaps, KProcs, KTranslate):
    _cmd()
