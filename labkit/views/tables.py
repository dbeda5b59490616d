"""Static tables of what the kernel holds: a BPF map, the trace_pipe.

    labkit.map_dataframe(program, "counts")     # a BPF map, one row per entry
    labkit.read_trace_pipe(contains="lk-")      # bpf_trace_printk lines, parsed
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import time
from typing import Any

import pandas as pd

from labkit._errors import ArgumentError, ClosedError
from labkit.programs.compile import Program
from labkit.programs.hooks import require_tracefs

__all__ = ["map_dataframe", "parse_trace_pipe", "read_trace_pipe"]


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
                    max_lines: int = 1_000_000) -> pd.DataFrame:
    """Read (and so consume) what ``bpf_trace_printk`` wrote to the kernel's
    shared trace_pipe: until it stays empty for ``idle`` seconds, at most
    ``timeout`` seconds. Columns: task, pid, cpu, ts, event, message.

    The pipe is one text stream for the whole machine: every program's
    trace_printk lands in it and every reader takes lines away from the
    others. ``contains`` keeps only lines with that text.
    """
    for what, value in (("timeout", timeout), ("idle", idle)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ArgumentError(f"read_trace_pipe's {what} must be a positive number of seconds, got {value!r}")
    if contains is not None and not isinstance(contains, str):
        raise ArgumentError(f"read_trace_pipe's contains must be text (like 'lk-') or None, got {contains!r}")
    if not (isinstance(max_lines, int) and not isinstance(max_lines, bool) and max_lines >= 1):
        raise ArgumentError(f"read_trace_pipe's max_lines must be a positive whole number, got {max_lines!r}")
    path = require_tracefs() / "trace_pipe"
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
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
