"""Sv39 page tables over physical memory: satp and PTE decoding, bounded
walks, and the views kinspect prints.

`read_phys(pa, length) -> bytes` is the only way in; it raises
`kinspectlib.Unreadable` for memory it cannot read. Every loop over
target data is bounded: a table is 3 levels of 512 entries, a table page
reached twice is reported and not followed, and a pointer outside RAM is
reported and not followed. These are the RISC-V privileged spec's
numbers, not the kernel's: nothing here is read from the target.
"""

from . import Unreadable

PGSIZE = 4096
ENTRIES = 512
LEVELS = 3
VA_BITS = 39

PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
# Bits 54..60: reserved for future standard use, must be zero.
PTE_RESERVED = 0x7F << 54
PPN_BITS = 44

SATP_MODES = {0: "Bare", 8: "Sv39", 9: "Sv48", 10: "Sv57"}
PAGE_NAMES = {0: "4 KiB", 1: "2 MiB", 2: "1 GiB"}
MASK64 = (1 << 64) - 1


class Ram:
    """Physical RAM: [base, base + size). Page-table pointers outside it are
    reported, never followed."""

    def __init__(self, base, size):
        self.base = base
        self.size = size

    @property
    def end(self):
        return self.base + self.size

    def contains_page(self, pa):
        """Whether the whole page at `pa` lies inside RAM."""
        return self.base <= pa and pa + PGSIZE <= self.end

    def __eq__(self, other):
        return isinstance(other, Ram) and (self.base, self.size) == (other.base, other.size)

    def __repr__(self):
        return "Ram(%#x, %d MiB)" % (self.base, self.size >> 20)


# ---------------------------------------------------------------------------
# Decoding


def decode_satp(satp):
    """satp's fields: mode name, ASID, root PPN and the root's physical address."""
    mode = satp >> 60
    ppn = satp & ((1 << PPN_BITS) - 1)
    return {
        "mode": SATP_MODES.get(mode, "reserved(%d)" % mode),
        "asid": (satp >> 44) & 0xFFFF,
        "ppn": ppn,
        "root": ppn << 12,
    }


def pte_pa(pte):
    """The physical address a PTE names (next table, or page base)."""
    return ((pte >> 10) & ((1 << PPN_BITS) - 1)) << 12


def pte_kind(pte):
    """'invalid' (V=0), 'pointer' (V=1, R=W=X=0) or 'leaf'."""
    if not pte & PTE_V:
        return "invalid"
    if not pte & (PTE_R | PTE_W | PTE_X):
        return "pointer"
    return "leaf"


def pte_problems(pte, level):
    """The encodings the privileged spec reserves (or that fault) in `pte`
    found at `level` (2 = root), as kinspect's `Pte::problems` names them.
    Invalid entries have none: the hardware ignores them."""
    kind = pte_kind(pte)
    problems = []
    if kind == "invalid":
        return problems
    pbmt = (pte >> 61) & 3
    napot = pte >> 63
    if kind == "pointer":
        if pte & (PTE_U | PTE_A | PTE_D):
            problems.append("pointer with U, A or D set (reserved)")
        if pbmt or napot:
            problems.append("pointer with PBMT or N set (reserved)")
        if level == 0:
            problems.append("pointer at level 0 (no level below)")
    else:
        if pte & PTE_W and not pte & PTE_R:
            problems.append("W without R (reserved encoding)")
        ppn = (pte >> 10) & ((1 << PPN_BITS) - 1)
        if level > 0 and ppn & ((1 << (9 * level)) - 1):
            problems.append("misaligned superpage (level %d leaf, PPN not aligned)" % level)
    if pte & PTE_RESERVED:
        problems.append("reserved bits 54..60 set (%#x)" % ((pte & PTE_RESERVED) >> 54))
    if pbmt == 3:
        problems.append("PBMT=3 (reserved)")
    return problems


def canonical(va):
    """`va` with bits 63..39 copied from bit 38, as QEMU prints addresses."""
    if va & (1 << (VA_BITS - 1)):
        va |= -(1 << VA_BITS) & MASK64
    return va


def is_canonical(va):
    return canonical(va & ((1 << VA_BITS) - 1)) == va


def vpn(va, level):
    """The index into the level-`level` table for `va`."""
    return (va >> (12 + 9 * level)) & (ENTRIES - 1)


def flags_str(pte):
    """`rwxugad` letters, `-` for a clear bit: QEMU's `info mem` attr column."""
    bits = (PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D)
    return "".join(c if pte & bit else "-" for c, bit in zip("rwxugad", bits))


def read_table(read_phys, pa):
    """The 512 entries of the table page at `pa`."""
    raw = read_phys(pa, PGSIZE)
    if len(raw) != PGSIZE:
        raise Unreadable("short read of the page table at %#x (%d bytes)" % (pa, len(raw)))
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, PGSIZE, 8)]


def read_u64(read_phys, pa):
    raw = read_phys(pa, 8)
    if len(raw) != 8:
        raise Unreadable("short read at %#x" % pa)
    return int.from_bytes(raw, "little")


# ---------------------------------------------------------------------------
# Walking


class Walk:
    """One bounded depth-first walk of an Sv39 tree, recording its problems."""

    def __init__(self, read_phys, root, ram):
        self.read_phys = read_phys
        self.root = root
        self.ram = ram
        self.problems = []
        self.seen = set()
        self.tables = {}

    def table(self, pa):
        if pa not in self.tables:
            self.tables[pa] = read_table(self.read_phys, pa)
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
            elif not self.ram.contains_page(pa):
                self.problems.append("PTE at va %#x points to %#x, outside RAM; not followed" % (entry_va, pa))
                yield here, entry_va, level, pte, "bad"
            else:
                yield here, entry_va, level, pte, "table"
                for e in self.entries(pa, level - 1, entry_va, here):
                    yield e


def info_mem_lines(read_phys, root, ram):
    """Merged ranges printed as QEMU's `info mem` prints them, merging rules
    included: a range also ends where a new page-table page begins.
    Returns (lines, problems)."""
    walk = Walk(read_phys, root, ram)
    lines = [
        "vaddr            paddr            size             attr",
        "---------------- ---------------- ---------------- -------",
    ]
    cur = None  # [vbase, pbase, size, attr]
    last_parent = None
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
            and last_parent == parent
        )
        if contiguous:
            cur[2] += size
        else:
            if cur is not None:
                lines.append("%016x %016x %016x %s" % (canonical(cur[0]), cur[1], cur[2], flags_str(cur[3])))
            cur = [va, pa, size, attr]
        last_parent = parent
    if cur is not None:
        lines.append("%016x %016x %016x %s" % (canonical(cur[0]), cur[1], cur[2], flags_str(cur[3])))
    return lines, walk.problems


def vmprint_lines(read_phys, root, ram, by_va=False):
    """The pgtbl lab's vmprint: one line per valid PTE, depth as ` ..`.
    Returns (lines, problems)."""
    walk = Walk(read_phys, root, ram)
    lines = ["page table 0x%016x" % root]
    for path, va, level, pte, kind in walk.entries():
        label = ("0x%016x" % canonical(va)) if by_va else str(path[-1])
        lines.append("%s%s: pte 0x%016x pa 0x%016x" % (" .." * len(path), label, pte, pte_pa(pte)))
    return lines, walk.problems


def translate_lines(read_phys, root, va, ram):
    """`va` walked level by level from `root`, one line per level, the way
    kvmpa walks it. Returns (lines, pa or None)."""
    lines = ["va 0x%016x  root 0x%016x" % (va, root)]
    table = root
    for level in range(LEVELS - 1, -1, -1):
        idx = vpn(va, level)
        pte_addr = table + idx * 8
        pte = read_u64(read_phys, pte_addr)
        desc = "L%d[%3d] at 0x%016x: pte 0x%016x %s" % (level, idx, pte_addr, pte, flags_str(pte))
        if not pte & PTE_V:
            lines.append(desc + "  invalid: not mapped")
            return lines, None
        if pte & (PTE_R | PTE_W | PTE_X):
            page = 1 << (12 + 9 * level)
            pa = pte_pa(pte) + (va & (page - 1))
            lines.append(desc + "  leaf (%s page)" % PAGE_NAMES[level])
            lines.append("pa 0x%016x" % pa)
            return lines, pa
        table = pte_pa(pte)
        if not ram.contains_page(table):
            lines.append(desc + "  points outside RAM")
            return lines, None
        lines.append(desc + "  -> table 0x%016x" % table)
    lines.append("a pointer PTE at the last level: broken table")
    return lines, None


def page_through(read_phys, root, va, ram):
    """The physical page `va` leads to through the table at `root`, the way
    a hart translates it, or None when it faults (not canonical, a table
    outside RAM or unreadable, a reserved encoding, V=0). kinspect's
    `sv39::translate`, reduced to its answer."""
    if not is_canonical(va):
        return None
    table = root
    for level in range(LEVELS - 1, -1, -1):
        if not ram.contains_page(table):
            return None
        try:
            pte = read_table(read_phys, table)[vpn(va, level)]
        except Unreadable:
            return None
        if pte_problems(pte, level):
            return None
        kind = pte_kind(pte)
        if kind == "invalid":
            return None
        if kind == "leaf":
            size = 1 << (12 + 9 * level)
            return (pte_pa(pte) + (va & (size - 1))) & ~(PGSIZE - 1)
        table = pte_pa(pte)
    return None
