"""labkit.programs.kinds: a program's kind from its names, header and context type (no kernel)."""

from __future__ import annotations

import pytest

import labkit
from labkit.hooks import check_fits, fits, hooks
from labkit.hooks import mismatch as mismatch_message
from labkit.programs.compile import SNIPPET_DIR
from labkit.programs.kinds import (
    Kind,
    context_kind,
    defined_functions,
    header_hook,
    header_kind,
    kind_of,
    name_kind,
)

NO_HEADER_VOID = """\
#include "labkit.h"
int lk_anything(void *ctx) { return 0; }
"""

XDP_TEXT = """\
#include <uapi/linux/bpf.h>
int lk_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}
"""

KPROBE_TEXT = """\
#include <uapi/linux/ptrace.h>
int lk_entry(struct pt_regs *ctx) { return 0; }
"""

TRACEPOINT_MACRO = """\
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    return 0;
}
"""

HEADER_BEATS_CONTEXT = """\
// hook: tracepoint syscalls:sys_enter_getppid
int lk_odd(struct xdp_md *ctx) { return 0; }
"""


@pytest.mark.parametrize("fn,kind", [
    ("tracepoint__sched__sched_process_exec", "tracepoint"),
    ("kprobe__kernel_clone", "kprobe"),
    ("kretprobe__kernel_clone", "kretprobe"),
    ("raw_tracepoint__sched_switch", "raw_tracepoint"),
    ("kfunc__vmlinux__do_sys_open", "kfunc"),
    ("lsm__bpf", "lsm"),
])
def test_bcc_names_say_the_kind(fn, kind):
    k = name_kind(fn)
    assert k is not None and k.kind == kind and fn in k.because


def test_a_plain_name_says_nothing():
    assert name_kind("lk_count_getppid") is None


def test_header_hook_is_the_first_clause_of_the_header_line():
    assert header_hook((SNIPPET_DIR / "count_getppid.c").read_text()) == "tracepoint syscalls:sys_enter_getppid"
    # the header goes on in the next line: the open parenthesis is left out
    assert header_hook((SNIPPET_DIR / "trace_clone.c").read_text()) == "tracepoint task:task_newtask"
    assert header_hook((SNIPPET_DIR / "trace_syscall.c").read_text()) == \
        "tracepoint syscalls:sys_enter_<name> (CONFIG_FTRACE_SYSCALLS)"


def test_only_the_opening_comments_are_the_header():
    assert header_hook(NO_HEADER_VOID + "// hook: XDP\n") is None
    assert header_hook("/* a block comment */\n// hook: XDP on one interface\nint f(void *c) { return 0; }") == \
        "XDP on one interface"


@pytest.mark.parametrize("hook,kind", [
    ("tracepoint task:task_newtask", "tracepoint"),
    ("raw tracepoint sched_switch", "raw_tracepoint"),
    ("kprobe + kretprobe on kernel_clone", "kprobe"),
    ("kretprobe on kernel_clone", "kretprobe"),
    ("XDP on one interface", "xdp"),
    ("TC ingress on one interface", "skb"),
    ("socket filter", "skb"),
])
def test_header_kinds(hook, kind):
    assert header_kind(f"// hook: {hook}\n").kind == kind


def test_an_unknown_header_hook_says_nothing():
    assert header_kind("// hook: something new\n") is None


@pytest.mark.parametrize("param,kind", [
    ("struct xdp_md *ctx", "xdp"),
    ("struct pt_regs *ctx", "kprobe"),
    ("struct __sk_buff *skb", "skb"),
    ("struct bpf_raw_tracepoint_args *ctx", "raw_tracepoint"),
    ("struct sys_enter_args *args", "tracepoint"),
    ("struct trace_event_raw_sys_enter *ctx", "tracepoint"),
    ("const struct pt_regs *ctx", "kprobe"),
])
def test_context_types(param, kind):
    k = context_kind(f"int lk_f({param}) {{ return 0; }}", "lk_f")
    assert k.kind == kind
    assert "lk_f takes struct" in k.because


def test_void_context_says_nothing():
    assert context_kind(NO_HEADER_VOID, "lk_anything") is None


def test_defined_functions_are_bccs_programs():
    text = """\
// int lk_commented(struct xdp_md *ctx) {
static __always_inline int helper(u32 x) { return x; }
TRACEPOINT_PROBE(sched, sched_process_exec) { return 0; }
RAW_TRACEPOINT_PROBE(sched_switch) { return 0; }
int lk_main(struct xdp_md *ctx)
{
    if (ctx) { return 1; }
    return helper(2);
}
"""
    assert defined_functions(text) == ["tracepoint__sched__sched_process_exec", "raw_tracepoint__sched_switch",
                                       "lk_main"]


def test_order_name_then_header_then_context():
    # the name wins over the header
    assert kind_of("// hook: XDP\n", "tracepoint__a__b").kind == "tracepoint"
    # the header wins over the context type
    assert kind_of(HEADER_BEATS_CONTEXT, "lk_odd").kind == "tracepoint"
    # the context type when nothing else says
    assert kind_of(XDP_TEXT, None, ["lk_pass"]).kind == "xdp"
    assert kind_of(KPROBE_TEXT, "lk_entry").kind == "kprobe"
    # nothing says
    assert kind_of(NO_HEADER_VOID, None, ["lk_anything"]) is None
    # several functions and none chosen: only the header can say
    assert kind_of(XDP_TEXT, None, ["a", "b"]) is None


def test_fits():
    assert fits(None, "attach_xdp")
    assert fits(Kind("kretprobe", ""), "attach_kprobe")
    assert not fits(Kind("tracepoint", ""), "attach_xdp")
    assert not fits(Kind("xdp", ""), "attach_tracepoint")


def test_the_mismatch_names_both():
    msg = mismatch_message("count_getppid.c", header_kind("// hook: tracepoint syscalls:sys_enter_getppid\n"),
                           "attach_xdp")
    assert msg.startswith(
        "count_getppid.c is a tracepoint program (its header says: hook: tracepoint syscalls:sys_enter_getppid); "
        "attach_xdp needs an XDP program (a function taking struct xdp_md *)")
    assert "lab.attach_tracepoint" in msg  # and what to do


def test_check_fits_refuses_a_snippet_of_another_kind():
    with pytest.raises(labkit.AttachError) as ei:
        check_fits("attach_xdp", "count_getppid")
    e = ei.value
    assert type(e).__name__ == "ProgramKindError"
    assert (e.kind, e.call, e.target) == ("tracepoint", "attach_xdp", "count_getppid.c")
    with pytest.raises(labkit.AttachError, match=r"xdp_icmp_drop\.c is an XDP program .*attach_tracepoint needs"):
        check_fits("attach_tracepoint", "xdp_icmp_drop")
    with pytest.raises(labkit.AttachError, match=r"its function lk_entry takes struct pt_regs \*"):
        check_fits("attach_tracepoint", KPROBE_TEXT)
    with pytest.raises(labkit.AttachError, match=r"its function's name says so: tracepoint__sched__sched_process_exec"):
        check_fits("attach_kprobe", TRACEPOINT_MACRO)


def test_check_fits_allows_what_nothing_contradicts():
    for call in ("attach_xdp", "attach_tracepoint", "attach_kprobe"):
        check_fits(call, NO_HEADER_VOID)
    check_fits("attach_tracepoint", TRACEPOINT_MACRO)
    check_fits("attach_kprobe", KPROBE_TEXT)


@pytest.mark.parametrize("path", sorted(SNIPPET_DIR.glob("*.c")), ids=lambda p: p.stem)
def test_every_snippet_has_a_kind_that_fits_one_call(path):
    """Each snippet's header names a kind labkit knows, and exactly one attach call takes it."""
    text = path.read_text()
    kind = kind_of(text, None, defined_functions(text))
    assert kind is not None, path.name
    calls = [h.call for h in hooks() if h.call and fits(kind, h.call)]
    # a kprobe-type program also fits the user-space calls (uprobes are kprobe-type), a struct __sk_buff *
    # function without a header fits TC and cgroup_skb alike; an LSM_PROBE function no call (Lab.load attaches
    # it); others fit exactly one
    expected = {"kprobe": 3, "kretprobe": 1, "uprobe": 2, "skb": 2, "lsm": 0}.get(kind.kind, 1)
    assert len(calls) == expected, (path.name, kind, calls)


def test_bad_fn_is_an_argument_error():
    with pytest.raises(labkit.LabkitError, match="fn="):
        check_fits("attach_xdp", "xdp_icmp_drop", fn=3)
