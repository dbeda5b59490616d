"""labkit.owners: is a recorded owner (pid + start time) still running?"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from labkit import owners


def test_parse_stat_splits_after_the_last_parenthesis() -> None:
    fields = " ".join(str(n) for n in range(4, 23))  # fields 4..22: field 22 is "22"
    assert owners.parse_stat(f"4242 (python3) S {fields} 23 24") == ("S", 22)
    assert owners.parse_stat(f"4242 (a (b) c) Z {fields}") == ("Z", 22)  # comm with ") "


def test_start_time_identifies_this_process() -> None:
    me = owners.start_time(os.getpid())
    assert isinstance(me, int) and me > 0
    assert owners.alive(os.getpid(), me) and owners.alive(os.getpid())
    assert not owners.alive(os.getpid(), me + 1)  # a reused pid
    assert not owners.alive(None, None) and not owners.alive(0) and not owners.alive(-1)


def test_a_zombie_and_a_reaped_child_are_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while owners.start_time(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # exited but not reaped yet: a zombie
    assert os.path.exists(f"/proc/{child.pid}"), "still a zombie, not reaped"
    assert not owners.alive(child.pid)
    child.wait()
    assert owners.start_time(child.pid) is None and not owners.alive(child.pid)


def test_wait_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        assert owners.alive(child.pid)
        assert not owners.wait_gone(child.pid, 0.0), "it still runs"
        assert owners.wait_gone(child.pid, 10.0)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("who", ["this process", "init"])   # stable ids: pytest-xdist workers compare them
def test_running_processes_are_not_gone(who: str) -> None:
    pid = os.getpid() if who == "this process" else 1
    start = time.monotonic()
    assert not owners.wait_gone(pid, 0.2)
    assert time.monotonic() - start >= 0.2
