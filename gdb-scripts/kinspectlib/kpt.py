"""Finding a pgtbl-lab kernel's per-process kernel page table by what it
is, not by its name: the same rules as kinspect's `model/kpt.rs`.

1. By type (`candidates`): every member of `struct proc` whose type, seen
   through typedefs, is a pointer to the same type as `pagetable`'s
   (`pagetable_t`, `uint64 *`, `*mut PageTable`), other than `pagetable`
   itself. Known names come first (`KNOWN_NAMES`), then declaration order.
2. By memory (`confirm`): for the live (non-UNUSED) processes with a
   non-zero value, at least one and at least half of those roots must map
   KERNBASE to the same physical page as `kernel_pagetable` does. A user
   page table never maps KERNBASE, so a second user table or any other
   pointer is told apart. If nothing is confirmed, memory ruled nothing
   out and exactly one candidate is zero in every live process (a kernel
   still booting), that one is taken "by type".

A setting (`set kinspect kpt-field NAME`, or `none`) overrides both.
"""

from . import sv39

# KERNBASE: where every xv6-riscv kernel's text starts, identity-mapped in
# kernel_pagetable and in every per-process copy of it.
KERNBASE = 0x80000000

# The names per-process kernel page-table fields go by in pgtbl-lab
# kernels; they only order the candidates (kinspect's KPAGETABLE_NAMES).
KNOWN_NAMES = (
    "kpagetable",
    "kernelpgtbl",
    "prockpt",
    "kernel_pagetable",
    "k_pagetable",
    "kernelpt",
    "kernel_pt",
    "kpt",
)

# At most this many processes' values confirm a candidate (kinspect's MAX_CONFIRM).
MAX_CONFIRM = 8

NAMED, MEMORY, TYPE = "named", "memory", "type"

# How the user names the field by hand, for messages.
OVERRIDE_HINT = "set kinspect kpt-field NAME"


class Pointee:
    """What a member's pointer points to, seen through typedefs and
    qualifiers: `base` for a base type (integer, char, bool, float), its
    `name` (or tag), `size` in bytes, and `ident`, anything that compares
    equal exactly when two pointees are the same type (gdb.Type does)."""

    def __init__(self, base, name, size, ident):
        self.base = base
        self.name = name
        self.size = size
        self.ident = ident

    def __repr__(self):
        return "Pointee(%r, %r, %r)" % (self.base, self.name, self.size)


def same_pointer(a, b):
    """Whether two members are "the same page-table pointer": both pointers
    (a and b are their `Pointee`s; None when a member is no pointer) to the
    same type, or to base types of 8 bytes (`uint64 *` and `pagetable_t`)."""
    if a is None or b is None:
        return False
    if a.ident == b.ident:
        return True
    if a.base and b.base:
        return a.size == 8 and b.size == 8
    return a.name is not None and a.name == b.name


def candidates(members, hints=KNOWN_NAMES):
    """The members of `struct proc` of `pagetable`'s pointer type, other than
    `pagetable`: names in `hints` first, then declaration order.

    `members` is a list of (name, Pointee or None) in declaration order."""
    pointees = dict(members)
    if "pagetable" not in pointees:
        return []
    want = pointees["pagetable"]
    found = [n for n, p in members if n and n != "pagetable" and same_pointer(p, want)]
    order = {h: i for i, h in enumerate(hints)}
    return sorted(found, key=lambda n: order.get(n, len(order)))


class Detection:
    """What is known about the per-process kernel page table: the field in
    use (None: none), how it was found (`named`, `memory`, `type`), the
    candidates in the order tried, and the ones memory ruled out, with why."""

    def __init__(self, field=None, how=None, candidates=(), rejected=(), turned_off=False):
        self.field = field
        self.how = how
        self.candidates = list(candidates)
        self.rejected = list(rejected)
        # `kpt-field none`: there is none because the user said so.
        self.turned_off = turned_off

    def as_dict(self):
        """The shape of `kinspect --json procs`' `kpt`."""
        return {
            "field": self.field,
            "how": self.how,
            "candidates": list(self.candidates),
            "rejected": [list(r) for r in self.rejected],
        }

    def describe(self, override=OVERRIDE_HINT):
        """One line, as `kinspect procs` prints it after `per-process kernel
        page table: `; `override` is how to name the field by hand."""
        if self.field is not None and self.how == NAMED:
            return "%s (named with %s)" % (self.field, override.replace(" NAME", ""))
        if self.field is not None and self.how == MEMORY:
            return "%s (found by type; its root maps the kernel like kernel_pagetable)" % self.field
        if self.field is not None:
            return "%s (found by type; no live process has one yet, so memory did not confirm it)" % self.field
        if self.turned_off:
            return "none (%s)" % override.replace("NAME", "none")
        if not self.candidates:
            return "none (struct proc has no second page-table field)"
        return "none recognised (candidates by type: %s; name yours with %s)" % (", ".join(self.candidates), override)

    def __repr__(self):
        return "Detection(%r)" % self.as_dict()


def not_a_kernel_table(read_phys, root, kernel_pagetable, ram, kernbase=KERNBASE):
    """Why `root` is not a kernel page table like `kernel_pagetable`, or None
    when it is one (it maps KERNBASE to the same physical page)."""
    if root & (sv39.PGSIZE - 1):
        return "%#x is not page-aligned" % root
    if not ram.contains_page(root):
        return "%#x is outside RAM" % root
    want = sv39.page_through(read_phys, kernel_pagetable, kernbase, ram)
    have = sv39.page_through(read_phys, root, kernbase, ram)
    if have is None:
        return "the table at %#x does not map the kernel text (KERNBASE %#x)" % (root, kernbase)
    if want is not None and want != have:
        return "the table at %#x maps KERNBASE to %#x, kernel_pagetable to %#x" % (root, have, want)
    return None


def confirm(read_phys, ram, kernel_pagetable, procs, candidates, kernbase=KERNBASE):
    """Decide among `candidates` from memory.

    `procs` are the process slots as (state, values): state the upper-case
    name (`UNUSED`, `SLEEPING`, ...), values a dict from candidate name to
    its integer value in that slot."""
    d = Detection(candidates=candidates)
    live = [values for state, values in procs if state != "UNUSED"]
    unset = []
    for c in candidates:
        roots = [v[c] for v in live if v.get(c)][:MAX_CONFIRM]
        if not roots:
            unset.append(c)
            continue
        bad = None
        good = 0
        for r in roots:
            why = not_a_kernel_table(read_phys, r, kernel_pagetable, ram, kernbase)
            if why is None:
                good += 1
            elif bad is None:
                bad = why
        if good > 0 and good * 2 >= len(roots):
            d.field, d.how = c, MEMORY
            return d
        d.rejected.append((c, bad or "not a kernel table"))
    # Nothing confirmed: a lone candidate no process has set yet (a kernel
    # still booting) is taken on its type alone.
    if not d.rejected and len(unset) == 1:
        d.field, d.how = unset[0], TYPE
    return d


def choose(setting, read_phys, ram, kernel_pagetable, procs, members, kernbase=KERNBASE):
    """The detection for a `kpt-field` setting: empty (or `auto`) detects,
    `none` says there is none, anything else names the field, which
    `struct proc` must have (`members` as for `candidates`)."""
    setting = (setting or "").strip()
    if setting in ("", "auto"):
        return confirm(read_phys, ram, kernel_pagetable, procs, candidates(members), kernbase)
    if setting == "none":
        # kinspect's --kpt-field none: no field, `how` named (the user said so).
        return Detection(how=NAMED, turned_off=True)
    names = [n for n, _ in members]
    if setting not in names:
        raise_no_field(setting, names)
    return Detection(field=setting, how=NAMED, candidates=[setting])


def raise_no_field(name, names):
    from . import KinspectError

    raise KinspectError("kpt-field: no field `%s` in struct proc (fields: %s)" % (name, ", ".join(n for n in names if n)))


def unexplained_roots(satps, kernel_pagetable, live_tables):
    """The harts whose satp (Sv39) names a root that is neither
    kernel_pagetable nor any live process's table: [(hart, root)].
    `satps` are (hart, satp); `live_tables` the live processes' user (and
    per-process kernel) roots."""
    known = set(live_tables) | {kernel_pagetable}
    out = []
    for hart, satp in satps:
        if satp >> 60 != 8:
            continue
        root = (satp & ((1 << 44) - 1)) << 12
        if root not in known:
            out.append((hart, root))
    return out


def unrecognised_note(d, unexplained, override=OVERRIDE_HINT):
    """The warning for harts running on a table nobody owns while no
    per-process field was recognised (kinspect's `unrecognised_note`), or
    None."""
    if d.field is not None or not unexplained:
        return None
    harts = ", ".join("hart %d on %#x" % (h, r) for h, r in unexplained)
    if not d.candidates:
        fix = "no member of struct proc has the page-table type; name the field with %s" % override
    else:
        why = "; ".join("%s: %s" % (c, w) for c, w in d.rejected)
        fix = "candidates by type: %s%s; name the field with %s" % (
            ", ".join(d.candidates),
            " (ruled out: %s)" % why if why else "",
            override,
        )
    return (
        "%s a page table that is neither kernel_pagetable nor a process's user table: "
        "a per-process kernel page table kinspect did not recognise? %s" % (harts, fix)
    )
