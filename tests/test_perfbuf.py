"""labkit.events.buffers on the real kernel: a program's own perf buffer
(BPF_PERF_OUTPUT, one buffer per CPU, losses reported by the kernel) and ring
buffer (BPF_RINGBUF_OUTPUT, one ring in reservation order), read side by side
while two children pinned to two CPUs call getppid(); re-open replaces, close
gives the buffers back."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kstate import bpf_fds
from labkit.exercises.lessons.lesson06 import burst

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

TP = "syscalls:sys_exit_getppid"


def late(seq) -> int:
    s = np.asarray(seq)
    return int((s < np.maximum.accumulate(s)).sum()) if len(s) else 0


def test_both_buffers_deliver_every_record_and_differ_in_order(lab):
    me = os.getpid()
    att = lab.attach_tracepoint(lab.load("maps_perf_vs_ring", defines={"LK_PARENT_PID": me, "LK_RING_PAGES": 512}), TP)
    perf = lab.open_perf_buffer(att.program, "perf_events", pages=256)
    ring = lab.open_ring_buffer(att.program, "ring")
    assert perf.memory_bytes == 257 * 4096 * len(perf.cpus) and ring.memory_bytes == 512 * 4096
    made = burst(5000)
    p, r = perf.read(), ring.read()
    assert len(p) == len(r) == made and perf.lost == 0 and att.program["ring_lost"][0].value == 0
    assert sorted(p.seq) == sorted(r.seq) == list(range(made))
    assert list(p.columns) == ["seq", "ts", "cpu", "pid"]
    assert late(r.seq) <= made // 100          # reservation order (a number is taken just after reserving)
    if len(set(p.cpu)) > 1:
        assert set(p.cpu) == set(r.cpu)       # the perf reader's cpu: the buffer it came from = where it ran


def test_a_full_buffer_loses_and_says_how_many(lab):
    me = os.getpid()
    att = lab.attach_tracepoint(lab.load("maps_perf_vs_ring", defines={"LK_PARENT_PID": me, "LK_RING_PAGES": 1}), TP)
    perf = lab.open_perf_buffer(att.program, "perf_events", pages=1)
    ring = lab.open_ring_buffer(att.program, "ring")
    made = burst(3000)
    got_p, got_r = len(perf.read()), len(ring.read())
    ring_lost = att.program["ring_lost"][0].value
    assert got_r + ring_lost == made and ring_lost > 0
    assert got_p < made
    burst(1)                                   # the kernel reports a loss with the next record that finds room
    perf.read()
    assert got_p + perf.lost == made


def test_reopen_replaces_and_close_gives_back(lab):
    before = bpf_fds()["perf_event"]
    prog = lab.load("maps_perf_vs_ring")
    first = lab.open_perf_buffer(prog, "perf_events", pages=1)
    second = lab.open_perf_buffer(prog, "perf_events", pages=2)
    assert first.closed and not second.closed
    ring1 = lab.open_ring_buffer(prog, "ring")
    ring2 = lab.open_ring_buffer(prog, "ring")
    assert ring1.closed and not ring2.closed and ring1.read().empty
    second.close()
    second.close()
    assert set(bpf_fds()["perf_event"]) == set(before)
    third = lab.open_perf_buffer(prog, "perf_events")
    lab.close()
    assert third.closed and ring2.closed and third.read().empty
    assert set(bpf_fds()["perf_event"]) == set(before)


def test_closing_the_program_first_leaves_nothing(lab):
    before = bpf_fds()["perf_event"]
    prog = lab.load("maps_perf_vs_ring")
    perf = lab.open_perf_buffer(prog, "perf_events")
    ring = lab.open_ring_buffer(prog, "ring")
    prog.close()
    assert perf.read().empty and ring.read().empty
    assert ring.closed, "a ring whose program was freed gives its mapping back at the next read"
    perf.close()
    assert set(bpf_fds()["perf_event"]) == set(before)
