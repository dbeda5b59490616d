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


# ------------------------------------------------------------ the registry (pure: holders are plain objects)
class _Holder:
    """A holder that records how it was given back (the registry calls its verb with a state)."""

    def __init__(self, key: tuple):
        self.key = key
        self.ended: list[str] = []

    def close(self, state: str = "closed") -> None:
        self.ended.append(state)
        owners.forget(self)


def test_claiming_a_held_key_gives_the_old_holder_back_as_replaced() -> None:
    key = ("test holder", os.getpid(), "replaced")
    first, second = _Holder(key), _Holder(key)
    owners.claim(first, first.close)
    assert owners.held(key) is first and first in owners.holders(_Holder)
    owners.claim(second, second.close)
    try:
        assert first.ended == ["replaced"] and second.ended == []
        assert owners.held(key) is second     # the old holder forgetting its key did not take it back
        assert first not in owners.holders(_Holder) and second in owners.holders(_Holder)
    finally:
        second.close()
    assert owners.held(key) is None and second.ended == ["closed"]


def test_forget_drops_only_the_holder_that_holds_the_key() -> None:
    key = ("test holder", os.getpid(), "forget")
    held_now, stranger = _Holder(key), _Holder(key)
    owners.claim(held_now, held_now.close)
    try:
        owners.forget(stranger)               # same key, another holder: nothing changes
        assert owners.held(key) is held_now
        owners.forget(held_now)
        assert owners.held(key) is None and held_now.ended == []    # forgetting gives nothing back
        owners.forget(held_now)               # twice: nothing to do
    finally:
        owners.forget(held_now)


def test_interpreter_exit_gives_everything_back_newest_first() -> None:
    code = ("from labkit import owners\n"
            "class H:\n"
            "    def __init__(self, key): self.key = key\n"
            "    def close(self, state): print(self.key[0], state, flush=True)\n"
            "for name in ('stream', 'panel'):\n"
            "    h = H((name,)); owners.claim(h, h.close)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["panel closed", "stream closed"]
