"""A fake physical memory with Sv39 tables built in it, for the unit tests."""

from kinspectlib import Unreadable, sv39

RAM = sv39.Ram(0x80000000, 128 << 20)


class FakeMemory:
    """Pages of physical memory, zero unless written; `read_phys` is the
    callable kinspectlib takes. Reads outside RAM are Unreadable, like a
    stub refusing them. `reads` counts page-table page reads."""

    def __init__(self, ram=RAM):
        self.ram = ram
        self.words = {}
        self.next_page = ram.base + ram.size - sv39.PGSIZE
        self.reads = 0

    def read_phys(self, pa, length):
        if pa < self.ram.base or pa + length > self.ram.end:
            raise Unreadable("cannot read %d bytes at %#x" % (length, pa))
        self.reads += 1
        out = bytearray()
        for a in range(pa, pa + length, 8):
            out += self.words.get(a, 0).to_bytes(8, "little")
        return bytes(out[:length])

    def write(self, pa, value):
        self.words[pa] = value

    def page(self):
        """A fresh zeroed page, from the top of RAM down (as kalloc hands them out)."""
        pa = self.next_page
        self.next_page -= sv39.PGSIZE
        return pa

    def table(self):
        return self.page()

    def map(self, root, va, pa, flags, level=0):
        """Map `va` to `pa` in the tree at `root` with a leaf at `level`,
        creating tables as xv6's walk(alloc=1) does."""
        table = root
        for lvl in range(sv39.LEVELS - 1, level, -1):
            slot = table + 8 * sv39.vpn(va, lvl)
            pte = self.words.get(slot, 0)
            if not pte & sv39.PTE_V:
                new = self.table()
                pte = pte_for(new, sv39.PTE_V)
                self.write(slot, pte)
            table = sv39.pte_pa(pte)
        self.write(table + 8 * sv39.vpn(va, level), pte_for(pa, flags | sv39.PTE_V))


def pte_for(pa, flags):
    return ((pa >> 12) << 10) | flags


RWX_KERNEL = sv39.PTE_R | sv39.PTE_W | sv39.PTE_X | sv39.PTE_A | sv39.PTE_D


def kernel_table(mem, kstacks=()):
    """A table like xv6's kvmmake: UART, KERNBASE text and data, the
    trampoline, plus the given kernel stacks (va, pa)."""
    root = mem.table()
    mem.map(root, 0x10000000, 0x10000000, sv39.PTE_R | sv39.PTE_W)
    for off in range(0, 0x10000, sv39.PGSIZE):
        mem.map(root, 0x80000000 + off, 0x80000000 + off, sv39.PTE_R | sv39.PTE_X)
    mem.map(root, 0x3FFFFFF000, 0x80007000, sv39.PTE_R | sv39.PTE_X)
    for va, pa in kstacks:
        mem.map(root, va, pa, sv39.PTE_R | sv39.PTE_W)
    return root


def user_table(mem):
    """A small user table: text at 0, a stack page, trampoline and trapframe."""
    root = mem.table()
    mem.map(root, 0x0, mem.page(), sv39.PTE_R | sv39.PTE_X | sv39.PTE_U)
    mem.map(root, 0x1000, mem.page(), sv39.PTE_R | sv39.PTE_W | sv39.PTE_U)
    mem.map(root, 0x3FFFFFE000, mem.page(), sv39.PTE_R | sv39.PTE_W)
    mem.map(root, 0x3FFFFFF000, 0x80007000, sv39.PTE_R | sv39.PTE_X)
    return root
