"""Where physical RAM is, so that walks never follow a pointer out of it.

xv6's PHYSTOP is a C macro (absent from the DWARF) that must equal QEMU's
`-m`; the truth is the machine's. In order:

1. the setting `kinspect ram-mib` when it is not 0;
2. QEMU's own memory tree (`monitor info mtree`), its `...ram` region at
   the lowest address;
3. QEMU virt's default for xv6: 128 MiB at 0x80000000.
"""

import re

from .sv39 import Ram

DEFAULT_BASE = 0x80000000
DEFAULT_MIB = 128

_REGION = re.compile(r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) \(prio [-\d]+, ram\): (\S+)", re.M)


def from_mtree(text):
    """The main RAM region of QEMU's `info mtree` text, or None. QEMU virt
    calls it `riscv_virt_board.ram`; any `ram` region named `*.ram` at the
    lowest address is taken, so other boards work too."""
    best = None
    for m in _REGION.finditer(text or ""):
        start, last, name = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if not name.endswith(".ram") or last < start:
            continue
        if best is None or start < best.base:
            best = Ram(start, last - start + 1)
    return best


def choose(setting_mib, mtree_text=None):
    """RAM from the setting (MiB; 0 = find out), else the memory tree, else
    the default. Returns (Ram, where it came from)."""
    if setting_mib:
        return Ram(DEFAULT_BASE, setting_mib << 20), "set kinspect ram-mib %d" % setting_mib
    found = from_mtree(mtree_text)
    if found is not None:
        return found, "QEMU's memory tree"
    return Ram(DEFAULT_BASE, DEFAULT_MIB << 20), "the default, QEMU virt -m 128M"
