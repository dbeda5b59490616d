"""Who owns kernel state: in this process, the one registry of its holders;
across processes, an owner's pid and start time, alive or gone.

**The registry.** Everything labkit hands out that holds kernel or display
state — a program on a hook, a live panel, a CO-RE object, a reader of a
program's perf or ring buffer — is claimed here under a key, with the verb
that gives it back (``claim(att, att.detach)``, ``claim(panel, panel.close)``).
Claiming a key that is already held gives the old holder back first, ending
in "replaced", so re-running a notebook cell never leaves two copies, whichever
Lab or view made the first. A holder that is given back forgets its key. At
interpreter exit everything still held is given back, newest first (a panel
before the stream it shows), ending in "closed".

**Owners of records.** labkit records the process that made a sandbox or a
netlink XDP attach, so that ``labkit cleanup`` and ``labkit report`` can tell a
leftover (its owner is gone) from something a running process still uses. A
process is identified by its pid and, where recorded, its start time: field 22
of ``/proc/<pid>/stat`` (clock ticks after boot), which tells a reused pid from
the original owner. A zombie counts as gone: it runs no code and holds nothing
any more.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

__all__ = ["alive", "claim", "forget", "held", "holders", "parse_stat", "read_records", "start_time", "wait_gone",
           "write_record"]


# ------------------------------------------------------------ the registry
class Holder(Protocol):
    key: tuple


_lock = threading.RLock()
#: key -> (holder, the verb that gives it back, called with the state it ends in)
_held: dict[tuple, tuple[Any, Callable[[str], object]]] = {}


def claim(holder: Holder, give_back: Callable[[str], object]) -> None:
    """Register ``holder`` under ``holder.key``; ``give_back(state)`` is its own
    verb (``att.detach``, ``panel.close``). Whatever held the key before is given
    back first, ending in "replaced"."""
    with _lock:
        old = _held.get(holder.key)
        _held[holder.key] = (holder, give_back)
    if old is not None and old[0] is not holder:
        old[1]("replaced")
        with _lock:  # the old holder forgetting its key must not take it back
            _held[holder.key] = (holder, give_back)


def forget(holder: Holder) -> None:
    """Drop ``holder`` from the registry if it still holds its key (a holder
    that was given back calls this; it gives nothing back itself)."""
    with _lock:
        if holder.key in _held and _held[holder.key][0] is holder:
            del _held[holder.key]


def holders(kind: type | None = None) -> list[Any]:
    """Everything registered in this process (of one type, if given), oldest first."""
    with _lock:
        found = [h for h, _ in _held.values()]
    return [h for h in found if kind is None or isinstance(h, kind)]


def held(key: tuple) -> Any | None:
    """What holds ``key`` now (None: nothing)."""
    with _lock:
        entry = _held.get(key)
    return entry[0] if entry is not None else None


@atexit.register
def _give_back_all_at_exit() -> None:
    with _lock:
        entries = list(_held.values())
    for _, give_back in reversed(entries):
        try:
            give_back("closed")
        except Exception:
            pass


# ------------------------------------------------------------ owners of records

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



def write_record(state_dir: Path, uid: str, path: Path) -> Path:
    """Write, before the thing is made, the record of something this process makes at ``path`` (a cgroup, a
    pin directory): ``<state_dir>/<uid>.json`` with this process as its owner (pid + start time). Returns the
    record's file, which the maker unlinks when it gives the thing back."""
    state_dir.mkdir(parents=True, exist_ok=True)
    me = os.getpid()
    rec = {"version": 1, "id": uid, "path": str(path), "pid": me, "start_time": start_time(me),
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    out = state_dir / f"{uid}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.replace(out)
    return out


def read_records(state_dir: Path, what: str) -> list[dict]:
    """The records :func:`write_record` wrote in ``state_dir``, each with the recorded path as ``what`` and its
    own file as ``path`` (labkit.net.leftovers forgets a record by unlinking ``path``); unreadable ones skipped."""
    try:
        files = sorted(state_dir.glob("*.json"))
    except OSError:
        return []
    out = []
    for f in files:
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("path"):
            out.append({**rec, what: str(rec["path"]), "path": str(f)})
    return out
