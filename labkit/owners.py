"""Who owns a piece of kernel state, and whether that owner still runs.

labkit records the process that made a sandbox or a netlink XDP attach, so that
``labkit cleanup`` and ``labkit report`` can tell a leftover (its owner is gone)
from something a running process still uses. A process is identified by its pid
and, where recorded, its start time: field 22 of ``/proc/<pid>/stat`` (clock
ticks after boot), which tells a reused pid from the original owner. A zombie
counts as gone: it runs no code and holds nothing any more.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["alive", "parse_stat", "start_time", "wait_gone"]

_GONE_STATES = ("Z", "X", "x")  # zombie, dead


def parse_stat(text: str) -> tuple[str, int]:
    """(state, start time) from the text of ``/proc/<pid>/stat`` (fields 3 and 22)."""
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = text[text.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks after boot), or None when
    it does not exist or is a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    state, started = parse_stat(text)
    return None if state in _GONE_STATES else started


def alive(pid: int | None, started: int | None = None) -> bool:
    """Whether process ``pid`` runs (and, when ``started`` is given, is the one
    that started at that time rather than a later process with the same pid)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = start_time(pid)
    if now is None:
        return False
    return started is None or now == started


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for process ``pid`` to end; whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
