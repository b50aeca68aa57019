"""The gdb-free half of gdb-scripts/kinspect.py.

Everything here works on plain integers and a `read_phys(pa, length) ->
bytes` callable, so it runs (and is unit-tested) without gdb:

- `sv39`: satp and PTE decoding, bounded Sv39 walks over physical memory,
  and the three renderings kinspect prints (QEMU's `info mem`, the pgtbl
  lab's `vmprint`, a level-by-level translation);
- `kpt`: finding a pgtbl-lab kernel's per-process kernel page table by
  type and confirming it from memory, the way kinspect's
  `model/kpt.rs` does;
- `args`: the commands' arguments (argparse) and their page-table
  selectors;
- `ram`: where RAM is, from QEMU's memory tree or a setting.

`kinspect.py` is the thin glue: it reads the kernel's objects through
gdb's symbols and types and hands them to these modules.
"""


class KinspectError(Exception):
    """A one-line error for the user (the gdb glue turns it into gdb.GdbError)."""


class Unreadable(KinspectError):
    """Physical memory that cannot be read (outside RAM, or refused by the stub)."""
