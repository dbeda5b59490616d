"""Static tables of what the kernel holds: a BPF map, the trace_pipe.

    labkit.map_dataframe(program, "counts")     # a BPF map, one row per entry
    labkit.read_trace_pipe(contains="lk-")      # bpf_trace_printk lines, parsed
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import time
from typing import Any

import pandas as pd

from labkit._errors import ArgumentError, BusyError, ClosedError
from labkit.programs.compile import Program
from labkit.programs.hooks import require_tracefs

__all__ = ["map_dataframe", "parse_trace_pipe", "read_trace_pipe", "trace_pipe_readers"]


# --------------------------------------------------------------- BPF maps
def _ctype_value(v) -> Any:
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, bytes):
        return v.split(b"\0", 1)[0].decode("utf-8", "replace")
    if hasattr(v, "value"):
        val = v.value
        return val.decode("utf-8", "replace") if isinstance(val, bytes) else val
    if isinstance(v, ctypes.Array):
        if v._type_ is ctypes.c_char:
            return bytes(v).split(b"\0", 1)[0].decode("utf-8", "replace")
        return [_ctype_value(x) for x in v]
    return v


def _flatten(obj, prefix: str) -> dict[str, Any]:
    fields = getattr(obj, "_fields_", None)
    if not fields:
        return {prefix: _ctype_value(obj)}
    out: dict[str, Any] = {}
    for f in fields:
        fname = f[0]
        val = getattr(obj, fname)
        out.update(_flatten(val, fname) if getattr(val, "_fields_", None) else {fname: _ctype_value(val)})
    return out


def map_dataframe(program, name: str, *, key: str = "key", value: str = "value") -> pd.DataFrame:
    """A BPF map as a DataFrame: one row per entry, struct keys and values
    split into columns (char arrays become text), per-CPU values summed.

        counts = labkit.map_dataframe(prog, "counts")    # e.g. columns uid, comm, value
    """
    if not isinstance(program, Program):
        raise ArgumentError(f"map_dataframe needs a Program (prog = lab.load(...), or an attachment's .program), "
                            f"got {type(program).__name__} {program!r}")
    if program.closed:
        raise ClosedError(f"program {program.name} is closed (its attachment was detached or its Lab closed), "
                            "and its maps with it; load it again with lab.load()")
    if not isinstance(name, str) or not program.has_table(name):
        raise ArgumentError(f"{program.name} has no map named {name!r}; its maps are the names declared with "
                            "BPF_HASH(name, ...), BPF_ARRAY(name, ...), ... in its C")
    table = program[name]
    rows = []
    percpu = hasattr(table, "sum") and "PerCpu" in type(table).__name__
    for k, v in table.items():
        row = _flatten(k, key)
        if percpu:
            vals = table.getvalue(k)
            if getattr(vals[0], "_fields_", None):
                agg: dict[str, Any] = {}
                for one in vals:
                    for f, x in _flatten(one, value).items():
                        agg[f] = agg.get(f, 0) + x
                row.update(agg)
            else:
                row[value] = sum(int(x) for x in vals)
        else:
            row.update(_flatten(v, value))
        rows.append(row)
    return pd.DataFrame(rows)


# -------------------------------------------------------------- trace_pipe
_TRACE_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?"
    r"(?P<ts>\d+\.\d+):\s+(?P<event>[^:]+):\s?(?P<message>.*)$")


def read_trace_pipe(timeout: float = 2.0, *, idle: float = 0.2, contains: str | None = None,
                    max_lines: int = 1_000_000, wait: float = 30.0) -> pd.DataFrame:
    """Read (and so consume) what ``bpf_trace_printk`` wrote to the kernel's
    shared trace_pipe: until it stays empty for ``idle`` seconds, at most
    ``timeout`` seconds. Columns: task, pid, cpu, ts, event, message.

    The pipe is one text stream for the whole machine: every program's
    trace_printk lands in it, and what one reader takes the others never see.
    Newer kernels, and Debian's 5.10 and 6.1 through their stable updates,
    let one process at a time open it: while another holds it (a ``cat``,
    BCC's ``trace_print()``, bpftrace), this waits up to ``wait`` seconds for
    it, then raises :class:`BusyError` naming that process. ``contains``
    keeps only lines with that text.
    """
    for what, value in (("timeout", timeout), ("idle", idle), ("wait", wait)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ArgumentError(f"read_trace_pipe's {what} must be a positive number of seconds, got {value!r}")
    if contains is not None and not isinstance(contains, str):
        raise ArgumentError(f"read_trace_pipe's contains must be text (like 'lk-') or None, got {contains!r}")
    if not (isinstance(max_lines, int) and not isinstance(max_lines, bool) and max_lines >= 1):
        raise ArgumentError(f"read_trace_pipe's max_lines must be a positive whole number, got {max_lines!r}")
    fd = open_trace_pipe(wait)
    chunks: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        size = 0
        while True:
            now = time.monotonic()
            if now >= deadline or now - quiet_since >= idle or size > max_lines * 200:
                break
            r, _, _ = select.select([fd], [], [], min(0.05, deadline - now, idle))
            if not r:
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                quiet_since = time.monotonic()
    finally:
        os.close(fd)
    return parse_trace_pipe(b"".join(chunks).decode("utf-8", "replace"), contains=contains, max_lines=max_lines)


def trace_pipe_readers(exclude: int | None = None) -> list[int]:
    """Pids of processes (other than ``exclude``) that hold trace_pipe open."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == exclude:
            continue
        try:
            fds = os.listdir(f"/proc/{d}/fd")
        except OSError:          # gone, or not ours to look at
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{d}/fd/{fd}").endswith("/trace_pipe"):
                    out.append(int(d))
                    break
            except OSError:
                pass
    return sorted(out)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "(gone)"
    line = " ".join(w.decode("utf-8", "replace") for w in words if w)
    return line if len(line) <= 80 else line[:77] + "..."


def open_trace_pipe(wait: float = 30.0) -> int:
    """A non-blocking descriptor of the kernel's trace_pipe. Where the kernel
    lets one reader at a time hold it (newer kernels, Debian's 5.10 and 6.1)
    and another process holds it, this retries for up to ``wait`` seconds,
    then raises :class:`BusyError` with the holders' pids and command lines."""
    path = require_tracefs() / "trace_pipe"
    deadline = time.monotonic() + wait
    while True:
        try:
            return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    holders = tuple((pid, "this process" if pid == os.getpid() else _command_line(pid))
                    for pid in trace_pipe_readers())
    who = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in holders) or "a process that has let go since"
    if any(pid == os.getpid() for pid, _ in holders):
        what = ("this process holds it itself, most likely through a BCC BPF object's trace_print() or "
                "trace_fields(): call that object's cleanup(), or read its lines with it")
    else:
        what = ("stop that reader (a `cat` of trace_pipe, BCC's trace_print() in another notebook, bpftrace) "
                "or let it finish, then run this again")
    raise BusyError(f"{path} is held by {who}, and this kernel lets one process at a time read it; "
                    f"waited {wait:g} s for it to be let go. {what[0].upper()}{what[1:]}.", holders=holders)


def parse_trace_pipe(text: str, *, contains: str | None = None, max_lines: int = 1_000_000) -> pd.DataFrame:
    """trace_pipe text as a DataFrame (columns: task, pid, cpu, ts, event,
    message); a line that does not parse is kept whole as its ``message``.
    ``contains`` keeps only lines with that text."""
    rows = []
    for line in text.splitlines():
        if contains is not None and contains not in line:
            continue
        m = _TRACE_LINE.match(line)
        if m:
            rows.append({"task": m["task"].strip(), "pid": int(m["pid"]), "cpu": int(m["cpu"]),
                         "ts": float(m["ts"]), "event": m["event"].strip(), "message": m["message"]})
        elif line.strip():
            rows.append({"task": "", "pid": 0, "cpu": -1, "ts": float("nan"), "event": "", "message": line})
        if len(rows) >= max_lines:
            break
    return pd.DataFrame(rows, columns=["task", "pid", "cpu", "ts", "event", "message"])
