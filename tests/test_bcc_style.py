"""Programs written the way BCC's reference guide writes them load through
``lab.load`` and count once: BCC's auto-attached functions (``TRACEPOINT_PROBE``,
``kprobe__*``, ...) are labkit attachments, never attached a second time,
replaced on re-run and given back on close."""

from __future__ import annotations

import os

import pytest

import labkit
from kstate import bpf_fds, perf_attachments

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

ME = os.getpid()
COUNT_GETPPID = r"""
BPF_ARRAY(calls, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if ((bpf_get_current_pid_tgid() >> 32) != %d)
        return 0;
    int k = 0;
    u64 *v = calls.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
""" % ME


def calls(prog) -> int:
    return int(prog["calls"][0].value)


def getppid_times(n: int) -> None:
    for _ in range(n):
        os.getppid()


def test_tracepoint_probe_is_attached_once_by_load(lab):
    prog = lab.load(COUNT_GETPPID)
    assert [a.probes for a in prog.auto_attachments] == \
        [[("tracepoint", "syscalls:sys_enter_getppid", "tracepoint__syscalls__sys_enter_getppid")]]
    assert prog.auto_attachments[0] in labkit.live_attachments()
    assert len(perf_attachments(ME)) == 1
    getppid_times(250)
    assert calls(prog) == 250


def test_attaching_it_again_is_the_same_attachment_and_counts_once(lab):
    prog = lab.load(COUNT_GETPPID)
    again = lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid")
    assert again is prog.auto_attachments[0]
    assert len(perf_attachments(ME)) == 1
    getppid_times(100)
    assert calls(prog) == 100


def test_rerun_replaces_the_old_one(lab):
    old = lab.load(COUNT_GETPPID)
    new = lab.load(COUNT_GETPPID)
    assert old.auto_attachments[0].state == "replaced"
    assert len(perf_attachments(ME)) == 1
    getppid_times(40)
    assert (calls(old), calls(new)) == (0, 40)


def test_close_gives_every_auto_attachment_back():
    before = bpf_fds()
    with labkit.Lab() as lab:
        prog = lab.load(COUNT_GETPPID)
        assert perf_attachments(ME)
    assert prog.closed and prog.auto_attachments[0].state == "detached"
    assert perf_attachments(ME) == [] and labkit.live_attachments() == []
    assert bpf_fds() == before


def test_detaching_the_auto_attachment_stops_counting(lab):
    prog = lab.load(COUNT_GETPPID)
    getppid_times(5)
    prog.auto_attachments[0].detach()
    getppid_times(5)
    assert calls(prog) == 5 and perf_attachments(ME) == []


def test_a_kprobe_named_function_without_kprobes_is_a_clear_error(lab):
    ok, _ = labkit.programs.hooks.kprobes_available()
    if ok:
        pytest.skip("this kernel has kprobes (see the stock-kernel run)")
    before = bpf_fds()
    with pytest.raises(labkit.NotSupportedError, match="kprobe__.*tracepoint"):
        lab.load("int kprobe__kernel_clone(struct pt_regs *ctx) { return 0; }")
    assert bpf_fds()["perf_event"] == before["perf_event"] and lab.attachments == []


@pytest.mark.requires("kprobes")
def test_a_kprobe_named_function_is_attached_where_kprobes_exist(lab):
    prog = lab.load(r"""
BPF_ARRAY(calls, u64, 1);
int kprobe__sys_getppid(struct pt_regs *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != %d)
        return 0;
    int k = 0;
    u64 *v = calls.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
""" % ME)
    (kind, target, fn), = prog.auto_attachments[0].probes
    assert kind == "kprobe" and target.endswith("sys_getppid") and fn == "kprobe__sys_getppid"
    getppid_times(30)
    assert calls(prog) == 30
