import unittest

from kinspectlib import ram
from kinspectlib.sv39 import Ram

# From `monitor info mtree -f` on QEMU 7.2, `-machine virt -m 256M`, trimmed.
MTREE = """FlatView #0
 AS "memory", root: system
 AS "cpu-memory-0", root: system
 Root memory region: system
  0000000000001000-000000000000ffff (prio 0, rom): riscv_virt_board.mrom
  0000000000100000-0000000000100fff (prio 0, i/o): riscv.sifive.test
  0000000010000000-0000000010000007 (prio 0, i/o): serial
  0000000080000000-000000008fffffff (prio 0, ram): riscv_virt_board.ram
"""


class FromTheMachine(unittest.TestCase):
    def test_qemus_memory_tree(self):
        self.assertEqual(ram.from_mtree(MTREE), Ram(0x80000000, 256 << 20))
        self.assertEqual(ram.choose(0, MTREE), (Ram(0x80000000, 256 << 20), "QEMU's memory tree"))

    def test_the_setting_wins(self):
        self.assertEqual(ram.choose(64, MTREE)[0], Ram(0x80000000, 64 << 20))

    def test_without_a_tree_the_default(self):
        for text in (None, "", "unknown command: 'info mtree'"):
            self.assertEqual(ram.choose(0, text)[0], Ram(0x80000000, 128 << 20))

    def test_roms_and_devices_are_not_ram(self):
        self.assertIsNone(ram.from_mtree(MTREE.replace("(prio 0, ram)", "(prio 0, i/o)")))


if __name__ == "__main__":
    unittest.main()
