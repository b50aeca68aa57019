"""The per-process kernel page-table detection, case by case as kinspect's
model/kpt.rs decides them."""

import unittest

from kinspectlib import KinspectError, kpt, sv39

from .fakemem import RAM, FakeMemory, kernel_table, user_table

U64 = kpt.Pointee(True, "long unsigned int", 8, "long unsigned int")
U32 = kpt.Pointee(True, "unsigned int", 4, "unsigned int")
PROC = kpt.Pointee(False, "proc", 400, "struct proc")
PAGETABLE = kpt.Pointee(False, "kernel::riscv::PageTable", 4096, "PageTable")


def c_proc(*extra):
    """struct proc's members as C xv6 declares them, plus `extra`."""
    members = [
        ("lock", None),
        ("state", None),
        ("chan", kpt.Pointee(False, None, 1, "void")),
        ("parent", PROC),
        ("kstack", None),
        ("sz", None),
        ("pagetable", U64),
        ("trapframe", kpt.Pointee(False, "trapframe", 288, "struct trapframe")),
    ]
    return members + list(extra) + [("name", None)]


class ByType(unittest.TestCase):
    def test_stock_xv6_has_no_candidate(self):
        self.assertEqual(kpt.candidates(c_proc()), [])

    def test_any_name_of_the_pagetable_type_is_a_candidate(self):
        self.assertEqual(kpt.candidates(c_proc(("my_kernel_root", U64))), ["my_kernel_root"])

    def test_uint64_pointer_and_pagetable_t_are_the_same_pointer(self):
        # `uint64 *kpt` beside `pagetable_t pagetable`: other idents, both 8-byte base types.
        other = kpt.Pointee(True, "uint64", 8, "uint64-as-seen-elsewhere")
        self.assertEqual(kpt.candidates(c_proc(("kpt", other))), ["kpt"])

    def test_other_pointers_are_not_candidates(self):
        self.assertEqual(kpt.candidates(c_proc(("counter", U32), ("next", PROC), ("cookie", None))), [])

    def test_known_names_first_then_declaration_order(self):
        members = c_proc(("zzz", U64), ("kernel_pt", U64), ("aaa", U64), ("kpagetable", U64))
        self.assertEqual(kpt.candidates(members), ["kpagetable", "kernel_pt", "zzz", "aaa"])

    def test_rust_pointers_to_the_same_struct(self):
        members = [("pagetable", PAGETABLE), ("kpagetable", PAGETABLE), ("trapframe", PROC)]
        self.assertEqual(kpt.candidates(members), ["kpagetable"])

    def test_no_pagetable_member_no_candidates(self):
        self.assertEqual(kpt.candidates([("kpt", U64)]), [])


class ByMemory(unittest.TestCase):
    def setUp(self):
        self.mem = FakeMemory()
        self.kernel = kernel_table(self.mem)

    def confirm(self, procs, candidates):
        return kpt.confirm(self.mem.read_phys, RAM, self.kernel, procs, candidates)

    def test_a_copy_of_the_kernel_table_is_confirmed(self):
        own = [kernel_table(self.mem, [(0x3FFFFFD000, self.mem.page())]) for _ in range(2)]
        procs = [("SLEEPING", {"kpt": own[0]}), ("RUNNING", {"kpt": own[1]}), ("UNUSED", {})]
        d = self.confirm(procs, ["kpt"])
        self.assertEqual((d.field, d.how), ("kpt", "memory"))
        self.assertEqual(d.describe(), "kpt (found by type; its root maps the kernel like kernel_pagetable)")

    def test_a_second_user_table_is_ruled_out(self):
        users = [user_table(self.mem) for _ in range(2)]
        own = kernel_table(self.mem)
        procs = [("SLEEPING", {"shadow": users[0], "kpt": own}), ("SLEEPING", {"shadow": users[1], "kpt": own})]
        d = self.confirm(procs, ["shadow", "kpt"])
        self.assertEqual(d.field, "kpt")
        self.assertEqual(
            d.rejected,
            [("shadow", "the table at %#x does not map the kernel text (KERNBASE 0x80000000)" % users[0])],
        )

    def test_half_of_the_roots_is_enough_but_less_is_not(self):
        good, bad = kernel_table(self.mem), user_table(self.mem)
        half = [("SLEEPING", {"k": good}), ("SLEEPING", {"k": bad})]
        self.assertEqual(self.confirm(half, ["k"]).field, "k")
        third = [("SLEEPING", {"k": good}), ("SLEEPING", {"k": bad}), ("ZOMBIE", {"k": bad})]
        d = self.confirm(third, ["k"])
        self.assertIsNone(d.field)
        self.assertEqual(d.rejected[0][0], "k")

    def test_unused_slots_and_zero_values_do_not_count(self):
        procs = [("UNUSED", {"k": user_table(self.mem)}), ("USED", {"k": 0}), ("SLEEPING", {"k": self.kernel})]
        self.assertEqual(self.confirm(procs, ["k"]).how, "memory")

    def test_a_table_mapping_kernbase_elsewhere_is_ruled_out(self):
        other = self.mem.table()
        self.mem.map(other, 0x80000000, 0x80100000, sv39.PTE_R | sv39.PTE_X)
        d = self.confirm([("SLEEPING", {"k": other})], ["k"])
        self.assertEqual(
            d.rejected,
            [("k", "the table at %#x maps KERNBASE to 0x80100000, kernel_pagetable to 0x80000000" % other)],
        )

    def test_unaligned_and_outside_ram_values_are_ruled_out(self):
        d = self.confirm([("SLEEPING", {"a": self.kernel + 8, "b": 0x1000})], ["a", "b"])
        self.assertEqual(d.rejected, [("a", "%#x is not page-aligned" % (self.kernel + 8)), ("b", "0x1000 is outside RAM")])
        self.assertIn("none recognised (candidates by type: a, b;", d.describe())

    def test_at_most_eight_roots_are_read(self):
        procs = [("SLEEPING", {"k": self.kernel})] * 8 + [("SLEEPING", {"k": user_table(self.mem)})] * 12
        self.assertEqual(self.confirm(procs, ["k"]).how, "memory")

    def test_a_lone_unset_candidate_is_taken_by_type(self):
        d = self.confirm([("USED", {"k": 0}), ("UNUSED", {})], ["k"])
        self.assertEqual((d.field, d.how), ("k", "type"))
        self.assertIn("no live process has one yet", d.describe())

    def test_not_by_type_when_two_are_unset_or_memory_ruled_one_out(self):
        self.assertIsNone(self.confirm([("USED", {"a": 0, "b": 0})], ["a", "b"]).field)
        d = self.confirm([("USED", {"a": user_table(self.mem), "b": 0})], ["a", "b"])
        self.assertIsNone(d.field)
        self.assertEqual([r[0] for r in d.rejected], ["a"])

    def test_no_candidates_says_so(self):
        self.assertEqual(self.confirm([], []).describe(), "none (struct proc has no second page-table field)")


class Setting(unittest.TestCase):
    def setUp(self):
        self.mem = FakeMemory()
        self.kernel = kernel_table(self.mem)
        self.members = c_proc(("kernelpgtbl", U64))
        self.procs = [("SLEEPING", {"kernelpgtbl": kernel_table(self.mem)})]

    def choose(self, setting):
        return kpt.choose(setting, self.mem.read_phys, RAM, self.kernel, self.procs, self.members)

    def test_auto_detects(self):
        for s in ("", "auto", None):
            self.assertEqual(self.choose(s).how, "memory")

    def test_none_says_there_is_none_because_the_user_said_so(self):
        d = self.choose("none")
        self.assertIsNone(d.field)
        self.assertEqual(d.as_dict(), {"field": None, "how": "named", "candidates": [], "rejected": []})
        self.assertEqual(d.describe(), "none (set kinspect kpt-field none)")

    def test_a_name_overrides(self):
        d = self.choose("sz")
        self.assertEqual((d.field, d.how), ("sz", "named"))
        self.assertEqual(d.describe(), "sz (named with set kinspect kpt-field)")

    def test_a_missing_name_is_an_error_naming_the_fields(self):
        with self.assertRaises(KinspectError) as e:
            self.choose("kpt")
        self.assertIn("no field `kpt` in struct proc (fields: lock, state,", str(e.exception))

    def test_as_dict_is_kinspects_json_shape(self):
        d = self.choose("auto").as_dict()
        self.assertEqual(d, {"field": "kernelpgtbl", "how": "memory", "candidates": ["kernelpgtbl"], "rejected": []})


if __name__ == "__main__":
    unittest.main()


class HartsOnUnknownTables(unittest.TestCase):
    KPT = 0x87FFF000

    def test_harts_on_known_tables_are_explained(self):
        satps = [(0, 8 << 60 | self.KPT >> 12), (1, 8 << 60 | 0x87F64), (2, 0)]
        self.assertEqual(kpt.unexplained_roots(satps, self.KPT, [0x87F64000]), [])

    def test_a_hart_on_an_unknown_table_is_named(self):
        satps = [(0, 8 << 60 | 0x87F68), (1, 8 << 60 | self.KPT >> 12)]
        un = kpt.unexplained_roots(satps, self.KPT, [0x87F64000])
        self.assertEqual(un, [(0, 0x87F68000)])
        d = kpt.Detection(candidates=["kp"], rejected=[("kp", "0x1000 is outside RAM")])
        self.assertEqual(
            kpt.unrecognised_note(d, un),
            "hart 0 on 0x87f68000 a page table that is neither kernel_pagetable nor a process's user table: "
            "a per-process kernel page table kinspect did not recognise? candidates by type: kp "
            "(ruled out: kp: 0x1000 is outside RAM); name the field with set kinspect kpt-field NAME",
        )

    def test_no_note_once_a_field_is_known_or_all_is_explained(self):
        self.assertIsNone(kpt.unrecognised_note(kpt.Detection(field="k", how="memory"), [(0, 1)]))
        self.assertIsNone(kpt.unrecognised_note(kpt.Detection(), []))
        self.assertIn("no member of struct proc has the page-table type", kpt.unrecognised_note(kpt.Detection(), [(0, 0x87F68000)]))
