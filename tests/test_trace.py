"""Real-kernel tests of clone and syscall tracing (as root; filtered by pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import labkit
from kstate import bpf_fds, perf_attachments

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

EXPECT_HOOK = os.environ.get("LABKIT_EXPECT_HOOK")  # "kprobe" on the stock-kernel run


def make_children() -> dict[str, int]:
    """One child by each route: os.fork (clone), subprocess (vfork), a thread (clone3)."""
    kids: dict[str, int] = {}
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    kids["fork"] = pid
    p = subprocess.Popen(["true"])
    p.wait()
    kids["subprocess"] = p.pid
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    kids["thread"] = t.native_id
    return kids


def test_trace_clone_sees_fork_subprocess_and_thread(lab):
    s = lab.trace_clone(pid=os.getpid())
    if EXPECT_HOOK:
        assert s.source.startswith(EXPECT_HOOK + ":"), s.source
    print(f"trace_clone hook: {s.source} ({s.hook_note})")
    kids = make_children()
    assert s.wait(lambda df: set(kids.values()) <= set(df.child_pid), timeout=5.0), s.to_dataframe()
    df = s.to_dataframe().set_index("child_pid")
    me = os.getpid()
    for how, child in kids.items():
        row = df.loc[child]
        assert row.pid == me, (how, row)
        assert row.uid == os.getuid()
        assert row.source == s.source
    assert df.loc[kids["thread"]].kind == "thread"
    assert df.loc[kids["fork"]].kind == "fork"
    assert df.loc[kids["subprocess"]].kind in ("vfork", "fork")
    assert df.loc[kids["fork"]].tid == threading.get_native_id()
    # the time column is wall-clock time, not boot time
    age = (time.time() - df["time"].max().timestamp())
    assert -1 < age < 5
    assert list(s.to_dataframe().columns)[:7] == ["time", "pid", "tid", "child_pid", "uid", "comm", "kind"]
    assert s.lost == 0


def test_trace_clone_tracepoint_hook_is_said(lab):
    s = lab.trace_clone(pid=os.getpid(), hook="tracepoint")
    assert s.source == "tracepoint:task:task_newtask"
    assert s.hook_note


@pytest.mark.requires("kprobes")
def test_trace_clone_kprobe_hook(lab):
    s = lab.trace_clone(pid=os.getpid(), hook="kprobe")
    assert s.source.startswith("kprobe:")
    kids = make_children()
    assert s.wait(lambda df: set(kids.values()) <= set(df.child_pid), timeout=1.0), s.to_dataframe()


def test_kprobe_request_without_kprobes_says_so(lab):
    from labkit.programs import hooks as _hooks

    if _hooks.kprobes_available()[0]:
        pytest.skip("this kernel has kprobes")
    with pytest.raises(labkit.NotSupportedError, match="kprobe") as ei:
        lab.trace_clone(hook="kprobe")
    assert ei.value.feature == "kprobe"
    assert not lab.attachments


def perf_events(*streams) -> int:
    """perf events a set of streams should hold: a kprobe trace is a kprobe + a kretprobe."""
    return sum(2 if s.source.startswith("kprobe:") else 1 for s in streams)


def count_events(streams, kids) -> list[int]:
    return [int(s.to_dataframe().child_pid.isin(list(kids.values())).sum()) for s in streams]


def test_same_trace_twice_in_one_lab_fires_once(lab):
    first = lab.trace_clone(pid=os.getpid())
    second = lab.trace_clone(pid=os.getpid())  # a re-run cell
    assert first.state == "replaced" and second.running
    assert len(lab.attachments) == 1
    kids = make_children()
    assert second.wait(lambda df: set(kids.values()) <= set(df.child_pid), timeout=1.0)
    time.sleep(0.05)
    second.poll()
    assert count_events([first, second], kids) == [0, 3]
    assert len(perf_attachments(os.getpid())) == perf_events(second)


def test_same_trace_in_two_labs_fires_once():
    with labkit.Lab() as lab1, labkit.Lab() as lab2:
        first = lab1.trace_clone(pid=os.getpid())
        second = lab2.trace_clone(pid=os.getpid())  # a re-run cell that built a new Lab
        assert not first.running
        kids = make_children()
        assert second.wait(lambda df: set(kids.values()) <= set(df.child_pid), timeout=1.0)
        assert count_events([first, second], kids) == [0, 3]
        # a different name is a different trace: both run
        third = lab1.trace_clone(pid=os.getpid(), name="other")
        assert second.running and third.running
        assert len(perf_attachments(os.getpid())) == perf_events(second, third)
    assert not labkit.live_attachments()


def test_close_leaves_nothing_attached():
    before = bpf_fds()
    lab = labkit.Lab()
    try:
        s = lab.trace_clone(pid=os.getpid())
        s2 = lab.trace_syscall("getppid", pid=os.getpid())
        assert len(perf_attachments(os.getpid())) == perf_events(s, s2)
    finally:
        lab.close()
    assert not s.running and not s2.running
    assert perf_attachments(os.getpid()) == []
    after = bpf_fds()
    for kind in ("prog", "perf_event", "map"):
        assert set(after[kind]) <= set(before[kind]), kind
    lab.close()  # twice is fine
    with pytest.raises(labkit.LabkitError, match="closed"):
        lab.trace_clone()


def test_stream_stop_detaches_and_keeps_events(lab):
    s = lab.trace_syscall("getppid", pid=os.getpid())
    for _ in range(5):
        os.getppid()
    assert s.wait(min_events=5, timeout=1)
    s.stop()
    s.stop()
    assert perf_attachments(os.getpid()) == []
    assert len(s.to_dataframe()) == 5  # still readable


def test_sigkill_leaves_nothing_attached(tmp_path):
    code = textwrap.dedent("""
        import os, sys, labkit
        lab = labkit.Lab()
        s = lab.trace_clone(pid=os.getpid())
        s2 = lab.trace_syscall("getppid", pid=os.getpid())
        print("ready", 2 if s.source.startswith("kprobe:") else 1, flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        word, n_clone = p.stdout.readline().split()
        assert word == "ready"
        assert len(perf_attachments(p.pid)) == int(n_clone) + 1
        progs_before = {e["prog_id"] for e in perf_attachments(p.pid)}
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
        assert perf_attachments(p.pid) == []
        deadline = time.monotonic() + 2
        import json
        while True:
            live = json.loads(subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                                             text=True).stdout)
            remaining = progs_before & {x["id"] for x in live}
            if not remaining or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not remaining, f"programs still loaded after SIGKILL: {remaining}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_trace_syscall_sees_our_calls_only(lab):
    s = lab.trace_syscall("openat", pid=os.getpid())
    assert s.source == "tracepoint:syscalls:sys_enter_openat"
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    assert s.wait(lambda df: (df.arg2 & os.O_CLOEXEC != 0).any(), timeout=1.0)
    df = s.to_dataframe()
    assert set(df.pid) == {os.getpid()}
    assert set(df.syscall) == {"openat"}


def test_trace_syscall_window_is_bounded_and_counts_all(lab):
    s = lab.trace_syscall("getppid", pid=os.getpid(), window=7)
    for _ in range(50):
        os.getppid()
    assert s.wait(lambda df: s.received >= 50, timeout=1.0)
    assert len(s.to_dataframe()) == 7
    assert s.received == 50 and s.lost == 0


def test_lost_events_are_counted_not_silent(lab):
    # a one-page ring buffer that is read only once a second overflows at once
    s = lab.trace_syscall("getppid", pid=os.getpid(), ring_pages=1, poll_interval=2.0)
    n = 2000
    for _ in range(n):
        os.getppid()
    s.poll()
    assert s.lost > 0
    assert s.received + s.lost == n
    assert s.received < 100


def test_unknown_syscall_names_close_matches(lab):
    with pytest.raises(labkit.NotSupportedError) as ei:
        lab.trace_syscall("opneat")
    msg = str(ei.value)
    assert "'opneat'" in msg and "openat" in msg
    assert not lab.attachments


def test_bad_arguments_are_refused_before_the_kernel(lab):
    with pytest.raises(labkit.LabkitError, match="pid"):
        lab.trace_clone(pid=-3)
    with pytest.raises(labkit.LabkitError, match="window"):
        lab.trace_clone(window=0)
    with pytest.raises(labkit.LabkitError, match="ring_pages"):
        lab.trace_syscall("getppid", ring_pages=3)
    with pytest.raises(ValueError, match="hook"):
        lab.trace_clone(hook="fentry")
    assert not lab.attachments


@pytest.mark.requires("kprobes")
def test_a_missed_kretprobe_is_counted_as_lost(lab):
    """On the kprobe path an event is sent by the return probe. If a return was
    missed, the thread's entry is still in `inflight` when it creates again:
    that creation's predecessor is counted in `lost`, never silent."""
    s = lab.trace_clone(pid=os.getpid(), hook="kprobe", name="missed return")
    inflight = s.program["inflight"]
    me = threading.get_native_id()
    inflight[inflight.Key(me)] = inflight.Leaf(0)    # as if our last clone's return had been missed
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert s.wait(lambda df: (df.child_pid == pid).any(), timeout=3)
    assert s.lost == 1 and s.received >= 1
