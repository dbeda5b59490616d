"""A program is attached only where its kind fits; a mismatch names both and
leaves nothing behind (real kernel, inside the test's own sandbox)."""

from __future__ import annotations

import os

import pytest

import labkit
from kstate import bpf_fds, perf_attachments
from labkit.net import xdp as _xdp
from labkit.programs.hooks import kprobes_available

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

TRACEPOINT_MACRO = """\
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    return 0;
}
"""


@pytest.fixture
def sb():
    with labkit.Sandbox() as sb:
        yield sb


def slots(sb) -> tuple[int, int]:
    link = _xdp.interface(sb.target_iface, sb.target_ns)
    return link["native"], link["generic"]


def test_a_tracepoint_program_is_not_attached_as_xdp(lab, sb):
    before = bpf_fds()
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_xdp("count_getppid", iface=sb.target_iface, netns=sb.target_ns)
    e = ei.value
    assert type(e).__name__ == "ProgramKindError" and (e.kind, e.call) == ("tracepoint", "attach_xdp")
    assert str(e).startswith(
        "count_getppid.c is a tracepoint program (its header says: hook: tracepoint syscalls:sys_enter_getppid); "
        "attach_xdp needs an XDP program (a function taking struct xdp_md *)")
    assert slots(sb) == (0, 0)
    assert not lab.attachments
    assert bpf_fds() == before                         # nothing was even compiled


def test_a_refused_program_leaves_the_xdp_already_there_in_place(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    before = slots(sb)
    with pytest.raises(labkit.AttachError, match="tracepoint program"):
        lab.attach_xdp(TRACEPOINT_MACRO, iface=sb.target_iface, netns=sb.target_ns)
    assert x.attached and slots(sb) == before          # checked before the slot was cleared
    assert not perf_attachments(os.getpid())           # and the TRACEPOINT_PROBE was never attached
    assert sb.ping(count=2, interval=0.1, timeout=0.5).received == 0   # the drop program still works


def test_an_xdp_program_is_not_attached_as_a_tracepoint(lab):
    with pytest.raises(labkit.AttachError, match=r"xdp_icmp_drop\.c is an XDP program .*attach_tracepoint needs"):
        lab.attach_tracepoint("xdp_icmp_drop", "syscalls:sys_enter_getppid")
    prog = lab.load("xdp_icmp_drop", need="xdp")
    with pytest.raises(labkit.AttachError, match="attach_tracepoint needs a tracepoint program"):
        lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid")
    assert not prog.closed                             # the caller's program stays the caller's
    assert not lab.attachments and not perf_attachments(os.getpid())


def test_a_tracepoint_program_is_not_attached_as_a_kprobe(lab):
    """Refused for its kind before kprobes are even looked for (this kernel may have none)."""
    with pytest.raises(labkit.AttachError, match=r"trace_clone\.c is a tracepoint program .*attach_kprobe needs"):
        lab.attach_kprobe("trace_clone", event="kernel_clone")
    assert not lab.attachments


def test_programs_of_the_right_kind_still_attach(lab, sb):
    t = lab.attach_tracepoint("count_getppid", "syscalls:sys_enter_getppid")
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    assert t.attached and x.attached
    ok, _why = kprobes_available()
    if not ok:  # the kind fits: the kernel's lack of kprobes is what is said
        with pytest.raises(labkit.NotSupportedError, match="kprobes are not available"):
            lab.attach_kprobe("hello_clone_classic", syscall="clone")


def test_c_text_that_says_nothing_attaches_anywhere(lab):
    text = '#include "labkit.h"\nint lk_any(void *ctx) { return 0; }\n'
    t = lab.attach_tracepoint(text, "syscalls:sys_enter_getppid")
    assert t.attached
