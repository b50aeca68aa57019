import unittest

from kinspectlib import args
from kinspectlib.args import Selector, UsageError


class Selectors(unittest.TestCase):
    def test_the_four_forms(self):
        self.assertEqual(args.selector([], "x"), Selector("satp"))
        self.assertEqual(args.selector(["kernel"], "x"), Selector("kernel"))
        self.assertEqual(args.selector(["2"], "x"), Selector("user", 2))
        self.assertEqual(args.selector(["0x2"], "x"), Selector("user", 2))
        for word in ("kernel", "k", "--kernel-pt"):
            self.assertEqual(args.selector(["2", word], "x"), Selector("proc-kernel", 2))

    def test_bad_words_are_one_line_errors(self):
        with self.assertRaisesRegex(UsageError, r"^kmaps: expected a pid, `kernel`, or nothing; got `sh`$"):
            args.selector(["sh"], "kmaps")
        with self.assertRaisesRegex(UsageError, r"after pid 2 expected `kernel`"):
            args.selector(["2", "user"], "kmaps")


class Commands(unittest.TestCase):
    def test_kvmprint(self):
        ns = args.parse_kvmprint("1 kernel --va")
        self.assertEqual((ns.selector, ns.va, ns.kpt_field), (Selector("proc-kernel", 1), True, None))
        ns = args.parse_kvmprint("--va 3 --kernel-pt --kpt-field kernelpgtbl")
        self.assertEqual((ns.selector, ns.va, ns.kpt_field), (Selector("proc-kernel", 3), True, "kernelpgtbl"))
        self.assertEqual(args.parse_kvmprint("").selector, Selector("satp"))

    def test_kmaps(self):
        self.assertEqual(args.parse_kmaps("2").selector, Selector("user", 2))
        self.assertEqual(args.parse_kmaps("kernel").selector, Selector("kernel"))

    def test_kprocs(self):
        self.assertFalse(args.parse_kprocs("").all)
        ns = args.parse_kprocs("all --kpt-field none --json")
        self.assertEqual((ns.all, ns.kpt_field, ns.json), (True, "none", True))
        with self.assertRaisesRegex(UsageError, r"^kprocs: .*usage: kprocs"):
            args.parse_kprocs("some")

    def test_ktranslate(self):
        ns = args.parse_ktranslate("proc[1].kstack-4096 2 kernel")
        self.assertEqual((ns.expr, ns.selector), ("proc[1].kstack-4096", Selector("proc-kernel", 2)))
        ns = args.parse_ktranslate('"proc[1].kstack - 4096" kernel')
        self.assertEqual((ns.expr, ns.selector), ("proc[1].kstack - 4096", Selector("kernel")))
        self.assertEqual(args.parse_ktranslate("etext").selector, Selector("satp"))
        with self.assertRaisesRegex(UsageError, r"^ktranslate: an address expression is required"):
            args.parse_ktranslate("  ")

    def test_ksatp_takes_an_expression(self):
        self.assertIsNone(args.parse_ksatp("").value)
        self.assertEqual(args.parse_ksatp("0x8000000000087f6b").value, "0x8000000000087f6b")
        self.assertEqual(args.parse_ksatp("cpus[0].proc->pid + 1").value, "cpus[0].proc->pid + 1")

    def test_unknown_options_do_not_exit(self):
        with self.assertRaises(UsageError):
            args.parse_kmaps("--verbose")
        with self.assertRaises(UsageError):
            args.parse_kmaps("--help")


if __name__ == "__main__":
    unittest.main()
