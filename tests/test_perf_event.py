"""perf_event sampling on the real kernel (labkit.hooks.perf_event): the CPU
clock runs a program in whatever is on the CPU, ``frequency`` times a second;
detaching closes every perf event it opened. Only this test's own child is
counted (the program filters by its pid in the kernel)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import labkit
from kstate import bpf_fds
from labkit.hooks.perf_event import online_cpus

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

# waits for a line on stdin, spins for argv[1] seconds, prints the CPU time it spun
SPIN = """\
import sys, time
sys.stdin.readline()
start, end = time.process_time(), time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
print(time.process_time() - start, flush=True)
"""


def perf_fds() -> int:
    return len(bpf_fds()["perf_event"])


def samples(prog) -> dict[int, int]:
    """samples[pid], summed over the CPUs."""
    return {k.value: sum(v) for k, v in prog["samples"].items()}


def test_a_busy_process_is_sampled_at_the_clock_frequency(lab):
    child = subprocess.Popen([sys.executable, "-c", SPIN, "1.0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        prog = lab.load("perf_cpu_samples", defines={"LK_FILTER_PID": child.pid})
        att = lab.attach_perf_event(prog, frequency=199)
        assert att.attached and att.hook == "perf_event cpu-clock 199 Hz" and att.probes == [
            ("perf_event", "cpu-clock 199 Hz", "lk_sample")]
        child.stdin.write("go\n")
        child.stdin.flush()
        on_cpu = float(child.stdout.readline())    # what it spent on a CPU spinning; the clock samples only that
    finally:
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    got = samples(prog)
    att.detach()
    assert set(got) == {child.pid}, got               # filtered in the kernel: nobody else
    expected = 199 * on_cpu
    assert 0.5 * expected - 5 <= got[child.pid] <= 1.5 * expected + 5, (got, on_cpu)


def test_every_cpu_gets_a_clock_and_detach_closes_them(lab):
    before = perf_fds()
    att = lab.attach_perf_event("perf_cpu_samples")
    assert perf_fds() - before == len(online_cpus())   # one perf event per CPU, in BCC's hands
    assert att in lab.attachments and att.program.name == "perf_cpu_samples.c"
    att.detach()
    att.detach()                                         # twice is fine
    assert perf_fds() == before and att.state == "detached" and att.program.closed


def test_one_cpu_only(lab):
    before = perf_fds()
    att = lab.attach_perf_event("perf_cpu_samples", frequency=49, cpu=online_cpus()[-1])
    assert perf_fds() - before == 1
    assert att.hook == f"perf_event cpu-clock 49 Hz on CPU {online_cpus()[-1]}"


def test_a_rerun_replaces_and_a_closed_lab_gives_back(lab):
    before = perf_fds()
    first = lab.attach_perf_event("perf_cpu_samples", frequency=99)
    again = lab.attach_perf_event("perf_cpu_samples", frequency=49)   # the same cell, run again, changed
    assert first.state == "replaced" and again.attached
    assert perf_fds() - before == len(online_cpus())
    assert [a for a in labkit.live_attachments() if a.key[0] == "perf_event"] == [again]
    lab.close()
    assert perf_fds() == before and not again.attached


def test_the_same_program_cannot_sample_twice_at_once(lab):
    prog = lab.load("perf_cpu_samples")
    one = lab.attach_perf_event(prog, frequency=99, name="one")
    with pytest.raises(labkit.AttachError, match="already samples the CPU clock"):
        lab.attach_perf_event(prog, frequency=49, name="two")
    assert one.attached and not prog.closed                # the first one is untouched
