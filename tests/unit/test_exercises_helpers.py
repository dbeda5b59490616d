"""The checkers' helper processes (labkit.exercises.helpers.Helper): every way a
helper can fail — saying something else while it waits on its stdin, saying
nothing, dying, ending early, never ending, leaving a child behind — returns
promptly with a message that names the helper and what it did, and leaves no
process behind; so do lesson 01's other process and lesson 06's forked
children on their failing paths. Plain Python children, no kernel."""

from __future__ import annotations

import errno
import os
import re
import threading
import time

import pytest

from labkit.exercises.framework import run_python
from labkit.exercises.helpers import Helper, HelperFailed
from labkit.exercises.lessons import lesson01, lesson06


def _gone(pid: int) -> bool:
    """Whether the process ``pid`` is gone (reaped), or at most a zombie that is not ours to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _fails(make, within: float) -> str:
    t0 = time.monotonic()
    with pytest.raises(HelperFailed) as e:
        make()
    took = time.monotonic() - t0
    assert took < within, f"took {took:.1f} s"
    msg = str(e.value)
    pid = int(re.search(r"helper process (\d+)", msg).group(1))
    assert _gone(pid), f"helper {pid} is still there"
    assert "run the check again" in msg and "show this message to your instructor" in msg
    return msg


def test_a_helper_that_says_something_else_while_it_waits_on_stdin_is_stopped_at_once():
    # the old checkers read its stderr to the end here, while it waited for a stdin that never closed: a hang
    code = ("import sys; sys.stderr.write('libc.so.6: cannot open\\n'); sys.stderr.flush(); "
            "print('oops', flush=True); sys.stdin.read()")
    msg = _fails(lambda: Helper(code, "the process that calls usleep()"), within=5)
    assert re.search(r"helper process \d+ \(the process that calls usleep\(\)\) printed 'oops' where the checker "
                     r"waited for 'ready'", msg), msg
    assert msg.endswith("Its last words on stderr:\nlibc.so.6: cannot open"), msg


def test_a_helper_that_says_nothing_is_killed_after_its_timeout():
    msg = _fails(lambda: Helper("import time; time.sleep(600)", "a silent helper", timeout=1), within=6)
    assert "printed no line for 1 s, and the checker killed it" in msg and "wrote nothing on stderr" in msg


def test_a_helper_that_dies_before_it_is_ready_says_how_and_why():
    msg = _fails(lambda: Helper("raise SystemExit('no python3.11 here')", "a dying helper"), within=5)
    assert "ended its output without a word, and it exited with status 1" in msg and "no python3.11 here" in msg


def test_a_helper_told_to_start_after_it_ended_fails_and_one_that_never_ends_is_killed():
    h = Helper("print('ready', flush=True)", "a short helper")
    assert h.wait(10) == 0
    msg = _fails(h.go, within=5)
    assert "had ended before the checker told it to start, and it exited with status 0" in msg
    h = Helper("import time; print('ready', flush=True); time.sleep(600)", "a long helper")
    msg = _fails(lambda: h.wait(0.5), within=5)
    assert "did not end within 0.5 s, and the checker killed it" in msg


def test_a_helper_that_ends_its_output_early_is_named_with_what_it_said():
    h = Helper("print('ready', flush=True); print('half a line', end='', flush=True)", "a helper")
    msg = _fails(lambda: h.expect("done"), within=5)
    assert "ended its output after 'half a line'" in msg


def test_closing_kills_a_helper_that_ignores_its_stdin_and_what_it_left_behind():
    code = ("import subprocess, time; p = subprocess.Popen(['sleep', '600']); print(p.pid, flush=True); "
            "print('ready', flush=True); time.sleep(600)")
    h = Helper(code, "a stubborn helper", ready=False)
    child = int(h.readline(10))
    h.expect("ready", 10)
    t0 = time.monotonic()
    h.close(grace=0.5)
    assert time.monotonic() - t0 < 5
    assert h.p.returncode == -9 and _gone(h.pid)
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the helper's own child was left running"
    h.close()                                   # idempotent


def test_a_helper_that_does_its_part_says_its_lines_and_ends_when_its_stdin_closes():
    code = ("import sys; print('ready', flush=True); sys.stdin.readline(); print('{\"kids\": [1]}'); "
            "print('done', flush=True); sys.stdin.read(); print('bye')")
    with Helper(code, "a good helper") as h:
        h.go()
        assert h.readline() == '{"kids": [1]}'
        h.expect("done")
    assert h.p.returncode == 0 and _gone(h.pid)


def test_run_python_names_a_child_that_did_not_end_and_kills_it():
    t0 = time.monotonic()
    with pytest.raises(HelperFailed, match=r"helper process \(another process\) did not end within 1 s, and the "
                                           r"checker killed it.*Its last words on stderr:\nstarted"):
        run_python("import sys, time; sys.stderr.write('started\\n'); sys.stderr.flush(); time.sleep(600)",
                   timeout=1, what="another process")
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------ the other lessons' children, on their failing paths
def _within(seconds: float, fn):
    """What ``fn()`` raised or returned, failing (instead of hanging) if it runs past ``seconds``."""
    out: list = []

    def run():
        try:
            out.append(("returned", fn()))
        except BaseException as e:      # handed to the test
            out.append(("raised", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: a hang"
    return out[0]


def test_01s_other_process_that_never_ends_is_killed_and_named(monkeypatch):
    monkeypatch.setattr(lesson01, "_OTHER", "import time; time.sleep(600)")
    monkeypatch.setattr(lesson01, "OTHER_TIMEOUT_S", 1.0)
    how, e = _within(30, lambda: lesson01._make_creations(os.getpid()))
    assert how == "raised" and isinstance(e, HelperFailed), e
    pid = int(re.search(r"helper process (\d+)", str(e)).group(1))
    assert "did not end within 1 s, and the checker killed it" in str(e) and _gone(pid)


def test_06s_burst_gives_its_children_back_when_a_fork_fails(monkeypatch):
    real_fork, forked = os.fork, []

    def fork():
        if forked:
            raise BlockingIOError(errno.EAGAIN, "fork refused (the test's)")
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(lesson06.os, "fork", fork)
    cpu = sorted(os.sched_getaffinity(0))[0]
    how, e = _within(30, lambda: lesson06.burst(1000, [cpu, cpu]))   # the first child waits for "go"
    assert how == "raised" and isinstance(e, BlockingIOError), e
    assert len(forked) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)   # reaped: killed, not left waiting for a "go" that never comes
