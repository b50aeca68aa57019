import unittest

from kinspectlib import Unreadable, sv39

from .fakemem import RAM, FakeMemory, kernel_table, pte_for, user_table


class Decoding(unittest.TestCase):
    def test_satp(self):
        d = sv39.decode_satp(0x8000000000087FFF)
        self.assertEqual(d, {"mode": "Sv39", "asid": 0, "ppn": 0x87FFF, "root": 0x87FFF000})
        self.assertEqual(sv39.decode_satp(0)["mode"], "Bare")
        self.assertEqual(sv39.decode_satp(0x9 << 60 | 5 << 44)["asid"], 5)
        self.assertEqual(sv39.decode_satp(3 << 60)["mode"], "reserved(3)")

    def test_the_pgtbl_labs_example_entry(self):
        # From the lab's vmprint output: `.. .. ..0: pte 0x0000000021fdac1f pa 0x0000000087f6b000`.
        pte = 0x0000000021FDAC1F
        self.assertEqual(sv39.pte_pa(pte), 0x87F6B000)
        self.assertEqual(sv39.pte_kind(pte), "leaf")
        self.assertEqual(sv39.flags_str(pte), "rwxu---")
        self.assertEqual(sv39.pte_problems(pte, 0), [])

    def test_kinds(self):
        self.assertEqual(sv39.pte_kind(0), "invalid")
        self.assertEqual(sv39.pte_kind(sv39.PTE_R | sv39.PTE_W), "invalid")
        self.assertEqual(sv39.pte_kind(pte_for(0x80001000, sv39.PTE_V)), "pointer")
        self.assertEqual(sv39.pte_kind(pte_for(0x80001000, sv39.PTE_V | sv39.PTE_X)), "leaf")

    def test_reserved_encodings(self):
        V, R, W, U = sv39.PTE_V, sv39.PTE_R, sv39.PTE_W, sv39.PTE_U
        self.assertEqual(sv39.pte_problems(pte_for(0x80001000, V | W), 0), ["W without R (reserved encoding)"])
        self.assertEqual(sv39.pte_problems(pte_for(0x80001000, V | U), 1), ["pointer with U, A or D set (reserved)"])
        self.assertEqual(sv39.pte_problems(pte_for(0x80001000, V), 0), ["pointer at level 0 (no level below)"])
        self.assertEqual(
            sv39.pte_problems(pte_for(0x80001000, V | R), 1),
            ["misaligned superpage (level 1 leaf, PPN not aligned)"],
        )
        self.assertEqual(sv39.pte_problems(pte_for(0x80200000, V | R), 1), [])
        self.assertEqual(sv39.pte_problems((1 << 54) | pte_for(0x80001000, V | R), 0), ["reserved bits 54..60 set (0x1)"])
        self.assertEqual(sv39.pte_problems((3 << 61) | pte_for(0x80001000, V | R), 0), ["PBMT=3 (reserved)"])
        # Invalid entries have no problems: the hardware ignores their bits.
        self.assertEqual(sv39.pte_problems(sv39.PTE_W, 0), [])

    def test_canonical(self):
        self.assertEqual(sv39.canonical(0x3FFFFFF000), 0x3FFFFFF000)
        self.assertEqual(sv39.canonical(0x4000000000), 0xFFFFFFC000000000)
        self.assertTrue(sv39.is_canonical(0xFFFFFFC000000000))
        self.assertFalse(sv39.is_canonical(0x4000000000))

    def test_ram(self):
        self.assertTrue(RAM.contains_page(0x80000000))
        self.assertTrue(RAM.contains_page(0x87FFF000))
        self.assertFalse(RAM.contains_page(0x88000000))
        self.assertFalse(RAM.contains_page(0x7FFFF000))
        self.assertFalse(RAM.contains_page(0x87FFF800))


class Views(unittest.TestCase):
    def setUp(self):
        self.mem = FakeMemory()
        self.root = user_table(self.mem)

    def test_vmprint_is_the_labs_format(self):
        lines, problems = sv39.vmprint_lines(self.mem.read_phys, self.root, RAM)
        self.assertEqual(problems, [])
        self.assertEqual(lines[0], "page table 0x%016x" % self.root)
        self.assertRegex(lines[1], r"^ \.\.0: pte 0x[0-9a-f]{16} pa 0x[0-9a-f]{16}$")
        self.assertRegex(lines[3], r"^ \.\. \.\. \.\.0: pte ")
        self.assertTrue(lines[-1].startswith(" .. .. ..511: pte "))
        self.assertTrue(lines[-1].endswith("pa 0x0000000080007000"))
        by_va = sv39.vmprint_lines(self.mem.read_phys, self.root, RAM, by_va=True)[0]
        self.assertTrue(by_va[-1].startswith(" .. .. ..0x0000003ffffff000: pte "))

    def test_info_mem_merges_like_qemu(self):
        mem = FakeMemory()
        root = mem.table()
        for i in range(4):  # contiguous, same attributes: one range
            mem.map(root, 0x1000 * i, 0x80100000 + 0x1000 * i, sv39.PTE_R | sv39.PTE_W)
        mem.map(root, 0x4000, 0x80104000, sv39.PTE_R)  # other attributes: a new range
        lines, problems = sv39.info_mem_lines(mem.read_phys, root, RAM)
        self.assertEqual(problems, [])
        self.assertEqual(
            lines[2:],
            [
                "0000000000000000 0000000080100000 0000000000004000 rw-----",
                "0000000000004000 0000000080104000 0000000000001000 r------",
            ],
        )

    def test_info_mem_ends_a_range_at_a_new_table_page(self):
        mem = FakeMemory()
        root = mem.table()
        # The last page of one level-0 table and the first of the next.
        mem.map(root, 0x1FF000, 0x80100000, sv39.PTE_R)
        mem.map(root, 0x200000, 0x80101000, sv39.PTE_R)
        lines, _ = sv39.info_mem_lines(mem.read_phys, root, RAM)
        self.assertEqual(len(lines), 4)

    def test_translate_walks_each_level(self):
        lines, pa = sv39.translate_lines(self.mem.read_phys, self.root, 0x3FFFFFF040, RAM)
        self.assertEqual(pa, 0x80007040)
        self.assertEqual(lines[0], "va 0x0000003ffffff040  root 0x%016x" % self.root)
        self.assertTrue(lines[1].startswith("L2[255] at "))
        self.assertTrue(lines[3].endswith("r-x----  leaf (4 KiB page)"))
        self.assertEqual(lines[4], "pa 0x0000000080007040")

    def test_translate_stops_at_an_invalid_entry(self):
        lines, pa = sv39.translate_lines(self.mem.read_phys, self.root, 0x3FFFFFD000, RAM)
        self.assertIsNone(pa)
        self.assertTrue(lines[-1].endswith("invalid: not mapped"))

    def test_page_through(self):
        read = self.mem.read_phys
        self.assertEqual(sv39.page_through(read, self.root, 0x3FFFFFF123, RAM), 0x80007000)
        self.assertIsNone(sv39.page_through(read, self.root, 0x80000000, RAM))
        self.assertIsNone(sv39.page_through(read, self.root, 0x4000000000, RAM))  # not canonical
        self.assertIsNone(sv39.page_through(read, 0x1000, 0x0, RAM))  # root outside RAM


class Bounds(unittest.TestCase):
    def test_a_cycle_is_reported_and_not_followed(self):
        mem = FakeMemory()
        root = mem.table()
        mem.write(root, pte_for(root, sv39.PTE_V))  # entry 0 points back at the root
        lines, problems = sv39.vmprint_lines(mem.read_phys, root, RAM)
        self.assertEqual(lines[1:], [" ..0: pte 0x%016x pa 0x%016x" % (pte_for(root, sv39.PTE_V), root)])
        self.assertIn("reached twice", problems[0])

    def test_a_pointer_outside_ram_is_not_followed(self):
        mem = FakeMemory()
        root = mem.table()
        mem.write(root + 8, pte_for(0x10000000, sv39.PTE_V))
        lines, problems = sv39.info_mem_lines(mem.read_phys, root, RAM)
        self.assertEqual(lines[2:], [])
        self.assertEqual(problems, ["PTE at va 0x40000000 points to 0x10000000, outside RAM; not followed"])
        tl, pa = sv39.translate_lines(mem.read_phys, root, 0x40000000, RAM)
        self.assertIsNone(pa)
        self.assertTrue(tl[-1].endswith("points outside RAM"))

    def test_a_pointer_at_the_last_level_is_reported(self):
        mem = FakeMemory()
        root = mem.table()
        mem.map(root, 0x5000, 0x80100000, 0)  # V only at level 0: a pointer
        _, problems = sv39.vmprint_lines(mem.read_phys, root, RAM)
        self.assertEqual(problems, ["PTE at va 0x5000 is a pointer at the last level"])

    def test_a_smaller_ram_stops_walks_at_its_end(self):
        mem = FakeMemory()
        root = kernel_table(mem)
        small = sv39.Ram(0x80000000, 64 << 20)
        lines, problems = sv39.info_mem_lines(mem.read_phys, root, small)
        self.assertEqual(lines[2:], [])
        self.assertTrue(all("outside RAM" in p for p in problems))

    def test_unreadable_memory_raises(self):
        mem = FakeMemory()
        with self.assertRaises(Unreadable):
            sv39.vmprint_lines(mem.read_phys, 0x1000, RAM)


if __name__ == "__main__":
    unittest.main()
