# kinspect views inside gdb-multiarch: ksatp, kvmprint, kmaps, kprocs, ktranslate.
#
#   (gdb) source gdb-scripts/kinspect.py
#   (gdb) target remote localhost:1234
#   (gdb) kprocs
#
# The commands read the kernel's structures through gdb's own symbol and
# type information (no hard-coded offsets) and walk Sv39 page tables over
# *physical* memory, as kinspect does: QEMU's `Qqemu.PhyMemMode:1` is set
# for the walk and always restored to its previous value (against
# `kinspect serve`, its `monitor phys on` does the same). Kernel globals
# live in xv6's identity-mapped region (KERNBASE..PHYSTOP), so their
# addresses are physical addresses too.
#
# They work on this project's Rust kernel and on a C xv6-riscv kernel built
# with -g: the objects are found by xv6's names (proc, cpus,
# kernel_pagetable, kmem) and the per-process kernel page table by the
# first of KPT_FIELDS that `struct proc` has.
#
# Every loop over target data is bounded: a page table is at most 3 levels
# of 512 entries, a table page seen twice is reported and not followed, and
# a PTE pointing outside RAM is reported and not followed.

import re

import gdb

PGSIZE = 4096
PTES_PER_TABLE = 512
LEVELS = 3
KERNBASE = 0x80000000
PHYSTOP = KERNBASE + 128 * 1024 * 1024
VA_BITS = 39

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
PTE_RESERVED = 0x7F << 54

SATP_MODES = {0: "Bare", 8: "Sv39", 9: "Sv48", 10: "Sv57"}

# Names a per-process kernel page table goes by in struct proc: ours first,
# then those seen in pgtbl-lab solutions.
KPT_FIELDS = ("kpagetable", "kernel_pagetable", "kernelpt", "kpgtbl", "k_pagetable")

STATE_NAMES = ("UNUSED", "USED", "SLEEPING", "RUNNABLE", "RUNNING", "ZOMBIE")


class KinspectError(gdb.GdbError):
    pass


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


def read_phys(pa, length):
    try:
        return bytes(gdb.selected_inferior().read_memory(pa, length))
    except gdb.MemoryError:
        raise KinspectError("cannot read %d bytes of physical memory at %#x" % (length, pa))


def in_ram(pa):
    return KERNBASE <= pa < PHYSTOP


# ---------------------------------------------------------------------------
# Sv39


def decode_satp(satp):
    mode = satp >> 60
    return {
        "mode": SATP_MODES.get(mode, "reserved(%d)" % mode),
        "asid": (satp >> 44) & 0xFFFF,
        "ppn": satp & ((1 << 44) - 1),
        "root": (satp & ((1 << 44) - 1)) << 12,
    }


def pte_pa(pte):
    return ((pte >> 10) & ((1 << 44) - 1)) << 12


def canonical(va):
    if va & (1 << (VA_BITS - 1)):
        va |= -(1 << VA_BITS) & 0xFFFFFFFFFFFFFFFF
    return va


def flags_str(pte):
    return "".join(c if pte & bit else "-" for c, bit in zip("rwxugad", (PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D)))


class Walk:
    """One bounded walk of an Sv39 tree, recording everything it sees."""

    def __init__(self, root):
        self.root = root
        self.problems = []
        self.seen = set()
        self.tables = {}

    def table(self, pa):
        if pa not in self.tables:
            raw = read_phys(pa, PGSIZE)
            self.tables[pa] = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, PGSIZE, 8)]
        return self.tables[pa]

    def entries(self, table_pa=None, level=LEVELS - 1, va=0, path=()):
        """Yield (path, va, level, pte, kind) for each valid PTE, depth first.
        kind is 'leaf', 'table', or 'bad' (not followed)."""
        if table_pa is None:
            table_pa = self.root
        if table_pa in self.seen:
            self.problems.append("page-table page %#x reached twice (cycle or shared table); not followed again" % table_pa)
            return
        self.seen.add(table_pa)
        for idx, pte in enumerate(self.table(table_pa)):
            if not pte & PTE_V:
                continue
            entry_va = va | (idx << (12 + 9 * level))
            here = path + (idx,)
            pa = pte_pa(pte)
            if pte & (PTE_R | PTE_W | PTE_X):
                yield here, entry_va, level, pte, "leaf"
            elif level == 0:
                self.problems.append("PTE at va %#x is a pointer at the last level" % entry_va)
                yield here, entry_va, level, pte, "bad"
            elif not in_ram(pa):
                self.problems.append("PTE at va %#x points to %#x, outside RAM; not followed" % (entry_va, pa))
                yield here, entry_va, level, pte, "bad"
            else:
                yield here, entry_va, level, pte, "table"
                for e in self.entries(pa, level - 1, entry_va, here):
                    yield e


def info_mem_lines(root):
    """Merged ranges printed as QEMU's `info mem` prints them, merging rules
    included: a range also ends where a new page-table page begins."""
    walk = Walk(root)
    lines = [
        "vaddr            paddr            size             attr",
        "---------------- ---------------- ---------------- -------",
    ]
    cur = None  # [vbase, pbase, size, attr, table_pa_of_last]
    last_table = {}
    for path, va, level, pte, kind in walk.entries():
        if kind != "leaf":
            continue
        attr = pte & 0xFF
        size = 1 << (12 + 9 * level)
        pa = pte_pa(pte)
        parent = path[:-1]
        contiguous = (
            cur is not None
            and cur[3] == attr
            and cur[1] + cur[2] == pa
            and cur[0] + cur[2] == va
            and last_table.get("parent") == parent
        )
        if contiguous:
            cur[2] += size
        else:
            if cur is not None:
                lines.append("%016x %016x %016x %s" % (canonical(cur[0]), cur[1], cur[2], flags_str(cur[3])))
            cur = [va, pa, size, attr]
        last_table["parent"] = parent
    if cur is not None:
        lines.append("%016x %016x %016x %s" % (canonical(cur[0]), cur[1], cur[2], flags_str(cur[3])))
    return lines, walk.problems


def vmprint_lines(root, by_va=False):
    walk = Walk(root)
    lines = ["page table 0x%016x" % root]
    for path, va, level, pte, kind in walk.entries():
        depth = len(path)
        label = ("0x%016x" % canonical(va)) if by_va else str(path[-1])
        lines.append("%s%s: pte 0x%016x pa 0x%016x" % (" .." * depth, label, pte, pte_pa(pte)))
    return lines, walk.problems


def translate_lines(root, va):
    lines = ["va 0x%016x  root 0x%016x" % (va, root)]
    table = root
    for level in range(LEVELS - 1, -1, -1):
        idx = (va >> (12 + 9 * level)) & 0x1FF
        pte_addr = table + idx * 8
        pte = int.from_bytes(read_phys(pte_addr, 8), "little")
        desc = "L%d[%3d] at 0x%016x: pte 0x%016x %s" % (level, idx, pte_addr, pte, flags_str(pte))
        if not pte & PTE_V:
            lines.append(desc + "  invalid: not mapped")
            return lines, None
        if pte & (PTE_R | PTE_W | PTE_X):
            page = 1 << (12 + 9 * level)
            pa = pte_pa(pte) + (va & (page - 1))
            lines.append(desc + "  leaf (%s page)" % {0: "4 KiB", 1: "2 MiB", 2: "1 GiB"}[level])
            lines.append("pa 0x%016x" % pa)
            return lines, pa
        table = pte_pa(pte)
        if not in_ram(table):
            lines.append(desc + "  points outside RAM")
            return lines, None
        lines.append(desc + "  -> table 0x%016x" % table)
    lines.append("a pointer PTE at the last level: broken table")
    return lines, None


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


def evaluate(text):
    try:
        return gdb.parse_and_eval(kernel_expression(text))
    except gdb.error as e:
        raise KinspectError("cannot evaluate `%s`: %s" % (text, e))


def field(value, name):
    try:
        return value[name]
    except gdb.error:
        raise KinspectError("`%s` has no field `%s`" % (value.type, name))


def has_field(value, name):
    return any(f.name == name for f in value.type.strip_typedefs().fields())


def as_int(value):
    t = value.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        return int(value.cast(gdb.lookup_type("unsigned long") if _is_c() else t)) & 0xFFFFFFFFFFFFFFFF
    if t.code == gdb.TYPE_CODE_STRUCT:
        # Rust newtypes (PhysAddr(u64), a PageTable pointer wrapper, AtomicBool...): the first field.
        fields = t.fields()
        if fields:
            return as_int(value[fields[0]])
        raise KinspectError("cannot read `%s` as a number" % t)
    return int(value) & 0xFFFFFFFFFFFFFFFF


def _is_c():
    return gdb.current_language() != "rust"


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


def kpt_field(p):
    for name in KPT_FIELDS:
        if has_field(p, name):
            return name
    return None


def read_procs(all_slots=False):
    procs = global_value("proc")
    rows = []
    n = array_len(procs)
    for i in range(min(n, 4096)):
        p = procs[i]
        state = state_name(field(p, "state"))
        if state == "UNUSED" and not all_slots:
            continue
        kpt = kpt_field(p)
        rows.append(
            {
                "slot": i,
                "pid": int(field(p, "pid")),
                "state": state,
                "name": cstring(field(p, "name")),
                "kstack": as_int(field(p, "kstack")),
                "pagetable": as_int(field(p, "pagetable")),
                "kpagetable": as_int(field(p, kpt)) if kpt else None,
                "sz": as_int(field(p, "sz")),
            }
        )
    return rows


def current_satp():
    return int(gdb.parse_and_eval("$satp")) & 0xFFFFFFFFFFFFFFFF


def root_for(arg):
    """The page-table root a command's argument names: nothing = the current
    hart's satp; `kernel` = kernel_pagetable; a pid = that process's user
    table; `PID kernel` = its kernel page table."""
    words = arg.split()
    if not words:
        satp = current_satp()
        d = decode_satp(satp)
        if d["mode"] != "Sv39":
            raise KinspectError("satp = %#x: mode %s, no Sv39 page table to walk" % (satp, d["mode"]))
        return d["root"], "satp of the current hart"
    if words[0] == "kernel":
        return as_int(global_value("kernel_pagetable")), "kernel_pagetable"
    try:
        pid = int(words[0], 0)
    except ValueError:
        raise KinspectError("expected a pid, `kernel`, or nothing; got `%s`" % words[0])
    want_kernel = len(words) > 1 and words[1] in ("kernel", "--kernel-pt", "k")
    for row in read_procs():
        if row["pid"] == pid:
            if want_kernel:
                if row["kpagetable"] is None:
                    return as_int(global_value("kernel_pagetable")), "kernel_pagetable (no per-process kernel page table)"
                return row["kpagetable"], "kernel page table of pid %d" % pid
            return row["pagetable"], "user page table of pid %d" % pid
    raise KinspectError("no process with pid %d" % pid)


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
            with PhysicalMode():
                self.run(arg.strip())
        except KinspectError:
            raise
        except gdb.error as e:
            raise KinspectError(str(e))


class KSatp(KCommand):
    """Decode satp: the current hart's, or a VALUE given.
Usage: ksatp [VALUE]"""

    def __init__(self):
        super().__init__("ksatp")

    def run(self, arg):
        satp = as_int(evaluate(arg)) if arg else current_satp()
        d = decode_satp(satp & 0xFFFFFFFFFFFFFFFF)
        gdb.write("satp 0x%016x: mode %s asid %d ppn 0x%x root 0x%016x\n" % (satp, d["mode"], d["asid"], d["ppn"], d["root"]))


class KVmprint(KCommand):
    """Print a page table the way the xv6 pgtbl lab's vmprint does.
Usage: kvmprint [PID [kernel] | kernel] [--va]
  no argument: the current hart's satp; PID: that process's user page table;
  PID kernel: its kernel page table; kernel: kernel_pagetable."""

    def __init__(self):
        super().__init__("kvmprint")

    def run(self, arg):
        by_va = "--va" in arg.split()
        root, _ = root_for(" ".join(w for w in arg.split() if w != "--va"))
        _print(*vmprint_lines(root, by_va))


class KMaps(KCommand):
    """Merged mapped ranges, printed like QEMU's `info mem`.
Usage: kmaps [PID [kernel] | kernel]"""

    def __init__(self):
        super().__init__("kmaps")

    def run(self, arg):
        root, _ = root_for(arg)
        _print(*info_mem_lines(root))


class KProcs(KCommand):
    """The process table: slot, pid, state, name, kernel stack, page tables.
Usage: kprocs [all]"""

    def __init__(self):
        super().__init__("kprocs")

    def run(self, arg):
        rows = read_procs(all_slots=(arg == "all"))
        gdb.write("%-4s %-5s %-9s %-16s %-18s %-18s %s\n" % ("slot", "pid", "state", "name", "kstack", "pagetable", "kpagetable"))
        for r in rows:
            kpt = "0x%016x" % r["kpagetable"] if r["kpagetable"] is not None else "-"
            gdb.write(
                "%-4d %-5d %-9s %-16s 0x%016x 0x%016x %s\n"
                % (r["slot"], r["pid"], r["state"], r["name"], r["kstack"], r["pagetable"], kpt)
            )


class KTranslate(KCommand):
    """Translate a virtual address level by level (kvmpa-style).
Usage: ktranslate EXPR [PID [kernel] | kernel]
  EXPR is any gdb expression (proc[3].kstack, &proc[2], 0x3fffffe000)."""

    def __init__(self):
        super().__init__("ktranslate")

    def run(self, arg):
        words = arg.split()
        if not words:
            raise KinspectError("usage: ktranslate EXPR [PID [kernel] | kernel]")
        va = as_int(evaluate(words[0]))
        root, what = root_for(" ".join(words[1:]))
        lines, pa = translate_lines(root, va)
        gdb.write("in %s\n" % what)
        _print(lines)


for _cmd in (KSatp, KVmprint, KMaps, KProcs, KTranslate):
    _cmd()
