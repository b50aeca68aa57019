"""The gdb commands' arguments, parsed with argparse (no gdb needed).

Every command that walks a table takes a selector, SEL:

    (nothing)     the selected hart's satp
    kernel        kernel_pagetable
    PID           that process's user page table
    PID kernel    its kernel page table (`k` and `--kernel-pt` also work)

and `--kpt-field NAME|none|auto` overrides `set kinspect kpt-field` for
one command.
"""

import argparse
import shlex

from . import KinspectError


class UsageError(KinspectError):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of exiting gdb."""

    def __init__(self, prog, **kw):
        super().__init__(prog=prog, add_help=False, allow_abbrev=False, **kw)

    def error(self, message):
        raise UsageError("%s: %s (usage: %s)" % (self.prog, message, self.format_usage().strip()[len("usage: ") :]))

    def exit(self, status=0, message=None):
        raise UsageError((message or "").strip() or "%s: bad arguments" % self.prog)


class Selector:
    """Which page table a command walks: kind is `satp`, `kernel`, `user` or
    `proc-kernel` (the last two with a pid)."""

    def __init__(self, kind, pid=None):
        self.kind = kind
        self.pid = pid

    def __eq__(self, other):
        return isinstance(other, Selector) and (self.kind, self.pid) == (other.kind, other.pid)

    def __repr__(self):
        return "Selector(%r, %r)" % (self.kind, self.pid)


KERNEL_WORDS = ("kernel", "k", "--kernel-pt")


def selector(words, prog):
    """The Selector that the words after a command's own arguments name."""
    if not words:
        return Selector("satp")
    if words[0] == "kernel" and len(words) == 1:
        return Selector("kernel")
    try:
        pid = int(words[0], 0)
    except ValueError:
        raise UsageError("%s: expected a pid, `kernel`, or nothing; got `%s`" % (prog, words[0]))
    if len(words) == 1:
        return Selector("user", pid)
    if len(words) == 2 and words[1] in KERNEL_WORDS:
        return Selector("proc-kernel", pid)
    raise UsageError("%s: after pid %d expected `kernel` or nothing; got `%s`" % (prog, pid, " ".join(words[1:])))


def split(arg):
    """A command's argument string as words, quotes honoured (like gdb's
    string_to_argv)."""
    try:
        return shlex.split(arg)
    except ValueError as e:
        raise UsageError("cannot split the arguments `%s`: %s" % (arg, e))


def _kpt_option(p):
    p.add_argument(
        "--kpt-field",
        metavar="NAME",
        default=None,
        help="the per-process kernel page-table field of struct proc, `none` or `auto` (default: the setting `kinspect kpt-field`)",
    )


def _sel_words(p):
    p.add_argument("--kernel-pt", action="store_true", help="with PID: its kernel page table")
    p.add_argument("sel", nargs="*", metavar="SEL", help="nothing, kernel, PID or PID kernel")


def _finish_sel(ns, prog):
    words = list(ns.sel)
    if ns.kernel_pt:
        words.append("kernel")
    ns.selector = selector(words, prog)
    return ns


def parse_ksatp(arg):
    """`ksatp [VALUE]`: VALUE is any gdb expression (spaces allowed)."""
    p = Parser("ksatp")
    p.add_argument("value", nargs="*", metavar="VALUE")
    ns = p.parse_intermixed_args(split(arg))
    ns.value = " ".join(ns.value) or None
    return ns


def parse_kvmprint(arg):
    """`kvmprint [SEL] [--va] [--kpt-field NAME]`"""
    p = Parser("kvmprint")
    p.add_argument("--va", action="store_true", help="virtual addresses instead of indices")
    _kpt_option(p)
    _sel_words(p)
    return _finish_sel(p.parse_intermixed_args(split(arg)), "kvmprint")


def parse_kmaps(arg):
    """`kmaps [SEL] [--kpt-field NAME]`"""
    p = Parser("kmaps")
    _kpt_option(p)
    _sel_words(p)
    return _finish_sel(p.parse_intermixed_args(split(arg)), "kmaps")


def parse_kprocs(arg):
    """`kprocs [all] [--kpt-field NAME] [--json]`"""
    p = Parser("kprocs")
    _kpt_option(p)
    p.add_argument("--json", action="store_true", help="JSON with kinspect procs' field names")
    p.add_argument("which", nargs="?", choices=["all"], metavar="all", help="UNUSED slots too")
    ns = p.parse_intermixed_args(split(arg))
    ns.all = ns.which == "all"
    return ns


def parse_ktranslate(arg):
    """`ktranslate EXPR [SEL] [--kpt-field NAME]`: EXPR is one word (quote it
    to use spaces: `ktranslate "proc[1].kstack - 4096" 2 kernel`)."""
    p = Parser("ktranslate")
    _kpt_option(p)
    p.add_argument("--kernel-pt", action="store_true", help="with PID: its kernel page table")
    p.add_argument("expr", metavar="EXPR")
    p.add_argument("sel", nargs="*", metavar="SEL")
    if not split(arg):
        p.error("an address expression is required")
    return _finish_sel(p.parse_intermixed_args(split(arg)), "ktranslate")
