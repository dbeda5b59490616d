"""One word per act, on the real kernel: each old name of a kernel-side object
still works for one release, warns (DeprecationWarning naming the new name) and
does the new name's act; the registry that now holds buffer readers replaces
and closes them. The pure half is tests/unit/test_renamed.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

import labkit
from kstate import perf_attachments

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

ME = os.getpid()
N = np.dtype([("n", "<u8")])     # what the buffers below carry
XDP_PASS = """
int lk_pass(struct xdp_md *ctx) { return XDP_PASS; }
"""
PERF = """
BPF_PERF_OUTPUT(events);
BPF_RINGBUF_OUTPUT(ring, 8);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != LK_PID) return 0;
    u64 n = 1;
    events.perf_submit(args, &n, sizeof(n));
    ring.ringbuf_output(&n, sizeof(n), 0);
    return 0;
}
"""


def test_program_load_is_load_function(lab):
    import bcc  # lazy, as in labkit: BCC comes from the distro

    prog = lab.load(XDP_PASS, need="xdp", name="renamed_load")
    with pytest.warns(DeprecationWarning, match=r"Program\.load\(\) is renamed load_function\(\)"):
        fn = prog.load("lk_pass", bcc.BPF.XDP)
    assert fn.fd > 0 and fn.name == b"lk_pass"
    assert prog.load_function("lk_pass", bcc.BPF.XDP).fd == fn.fd     # BCC loads a function once


def test_stream_halt_stops_polling_and_leaves_the_program_attached(lab):
    s = lab.trace_syscall("getppid", pid=ME, name="renamed_halt")
    (att,) = [a for a in lab.attachments if a.stream is s]
    with pytest.warns(DeprecationWarning, match=r"EventStream\.halt\(\) is renamed stop\(\)"):
        s.halt("stopped")
    assert s.state == "stopped" and not s.running and att.attached     # what halt did before
    assert perf_attachments(ME) != []
    s.stop()                                                            # stop still detaches what feeds it
    assert not att.attached and att.state == "detached" and perf_attachments(ME) == []


def test_stream_stop_and_attachment_detach_are_one_act(lab):
    s = lab.trace_syscall("getppid", pid=ME, name="renamed_stop")
    (att,) = [a for a in lab.attachments if a.stream is s]
    att.detach()                                  # the attachment stops its stream first, once
    assert s.state == "stopped" and att.state == "detached" and perf_attachments(ME) == []
    s2 = lab.trace_syscall("getppid", pid=ME, name="renamed_stop")
    (att2,) = [a for a in lab.attachments if a.stream is s2]
    lab.trace_syscall("getppid", pid=ME, name="renamed_stop")     # a re-run cell
    assert s2.state == "replaced" and att2.state == "replaced"


def test_attachment_give_back_is_detach(lab):
    s = lab.trace_syscall("getppid", pid=ME, name="renamed_give_back")
    (att,) = [a for a in lab.attachments if a.stream is s]
    with pytest.warns(DeprecationWarning, match=r"give_back\(\) is renamed detach\(\)"):
        att.give_back("closed")
    assert att.state == "closed" and s.state == "closed" and perf_attachments(ME) == []
    assert att not in labkit.live_attachments() and att not in lab.attachments


def test_core_object_give_back_is_close_and_core_program_close_is_detach(lab):
    obj = lab.load_object("core_exec_parents", name="renamed_core")
    prog = obj.programs["lk_exec_parent"]
    with pytest.warns(DeprecationWarning, match=r"CoreProgram\.close\(\) is renamed detach\(\)"):
        prog.close()
    assert not prog.attached and prog.link_id == 0 and not obj.closed
    with pytest.warns(DeprecationWarning, match=r"CoreObject\.give_back\(\) is renamed close\(\)"):
        obj.give_back("replaced")
    assert obj.closed and obj.state == "replaced" and lab.attachments == []


def test_live_panel_give_back_is_close(lab):
    s = lab.trace_syscall("getppid", pid=ME, name="renamed_panel")
    p = labkit.live(s, interval=0.05, name="renamed_panel")
    with pytest.warns(DeprecationWarning, match=r"LivePanel\.give_back\(\) is renamed close\(\)"):
        p.give_back("closed")
    assert p.state == "closed" and p not in labkit.live_panels() and not s.running


def test_buffer_readers_are_held_in_the_one_registry(lab):
    from labkit import owners

    prog = lab.load(PERF, defines={"LK_PID": ME}, name="renamed_buffers")
    perf = lab.open_perf_buffer(prog, "events", pages=1, payload=N)
    assert owners.held(perf.key) is perf and perf in owners.holders(type(perf))
    again = lab.open_perf_buffer(prog, "events", pages=1, payload=N)      # a re-run cell replaces the reader
    assert perf.closed and not again.closed and owners.held(again.key) is again
    ring = lab.open_ring_buffer(prog, "ring", payload=N)
    assert owners.held(ring.key) is ring and owners.held(again.key) is again     # two maps, two keys
    os.getppid()
    assert len(again.read()) == 1 and len(ring.read()) == 1                       # the new readers read
    again.close()
    assert owners.held(again.key) is None                    # a closed reader forgets its key
    lab.close()
    assert ring.closed and owners.held(ring.key) is None
