"""A program's own event buffers, read the same way: perf buffer and ring buffer.

labkit's streams (``Lab.trace_*``) own their ring buffer. A program written in
a lesson may declare its own buffers, and lesson 06 compares the two kinds:

* ``BPF_PERF_OUTPUT(name)``: one perf buffer *per CPU* (``pages`` data pages
  plus a header page each), read through BCC's perf reader. A record that finds
  its CPU's buffer full is dropped, and the kernel tells the reader how many
  with a PERF_RECORD_LOST record: :attr:`PerfBufferReader.lost`.
* ``BPF_RINGBUF_OUTPUT(name, pages)``: one ring shared by all CPUs, records in
  the order they were reserved, read through its own mmap
  (:class:`labkit.events.ringbuf.RingBufferReader`). A full ring refuses the
  reservation in the program, which must count it itself.

Both readers return a DataFrame of the records in the order they arrived
(``cpu``: the CPU whose buffer delivered it, perf buffer only), and are given
back by ``close()`` (``Lab.close()`` closes those a Lab opened). Each is
claimed in labkit's one registry (labkit.owners) under ("event buffer",
program, map): opening a reader on a map that already has one (a re-run cell)
closes the old one first, and interpreter exit closes what is left.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pandas as pd

from labkit._errors import ArgumentError, ClosedError
from labkit.events.ringbuf import RingBufferReader
from labkit.owners import claim, forget
from labkit.programs.compile import Program

__all__ = ["PerfBufferReader", "RingMapReader", "event_dtype"]

def _table(program, map_name: str, kind: str, declared: str):
    if not isinstance(program, Program):
        raise ArgumentError(f"a {kind} reader needs a Program (prog = lab.load(...), or an attachment's .program), "
                            f"got {type(program).__name__} {program!r}")
    if program.closed:
        raise ClosedError(f"program {program.name} is closed (its attachment was detached or its Lab closed); "
                            "load it again with lab.load()")
    if not isinstance(map_name, str) or not program.has_table(map_name):
        raise ArgumentError(f"{program.name} has no map named {map_name!r}; declare it with {declared} in its C")
    table = program[map_name]
    want = "PerfEventArray" if kind == "perf buffer" else "RingBuf"
    if type(table).__name__ != want:
        raise ArgumentError(f"{program.name}'s map {map_name!r} is a {type(table).__name__}, not a {kind}: "
                            f"declare it with {declared}")
    return table


def event_dtype(table, payload=None) -> np.dtype:
    """The numpy dtype of one record: ``payload`` if given, else the C struct the
    program submits to ``table`` (BCC records its type at compile time)."""
    if payload is not None:
        return np.dtype(payload)
    from bcc.table import _get_event_class  # type: ignore  # lazy: bcc is heavy and optional at import

    try:
        return np.dtype(_get_event_class(table))
    except Exception as e:  # noqa: BLE001  BCC raises bare exceptions here
        raise ArgumentError(f"cannot tell the record layout of map {table.name!r} ({e}): pass payload= (a numpy "
                            "dtype like the C struct)") from None


def _key(program: Program, map_name: str) -> tuple:
    """The registry key of a reader: one reader per map of a loaded module."""
    return ("event buffer", id(program.bpf), map_name)


def _frame(records: np.ndarray, cpus: np.ndarray | None = None) -> pd.DataFrame:
    df = pd.DataFrame({name: records[name] for name in records.dtype.names or ()})
    if cpus is not None:
        df["cpu"] = cpus
    return df


class PerfBufferReader:
    """Reads a ``BPF_PERF_OUTPUT`` map: one buffer per online CPU, ``pages``
    data pages each (a power of two), plus one header page each.

    ``read()`` polls every CPU's buffer and returns what arrived, CPU by CPU as
    the reader drains them; ``lost`` counts the records the kernel dropped
    because a CPU's buffer was full; ``received`` the records delivered."""

    def __init__(self, program: Program, map_name: str = "events", *, pages: int = 8, payload=None):
        if not (isinstance(pages, int) and not isinstance(pages, bool) and pages >= 1 and pages & (pages - 1) == 0):
            raise ArgumentError(f"pages must be a power of two (1, 2, 4, ... pages of 4 KiB per CPU), got {pages!r}")
        table = _table(program, map_name, "perf buffer", f"BPF_PERF_OUTPUT({map_name})")
        self.program, self.map_name, self.pages = program, map_name, pages
        self.payload = event_dtype(table, payload)
        self.received = 0
        self.lost = 0
        self._chunks: list[bytes] = []
        self._cpus: list[int] = []
        self.key = _key(program, map_name)
        self._closed = False
        claim(self, lambda state: self.close())     # a reader has no state to end in: closed is closed
        from bcc import lib  # type: ignore  # lazy: bcc is heavy and optional at import

        self._lib = lib
        try:
            table.open_perf_buffer(self._on_event, page_cnt=pages, lost_cb=self._on_lost)
        except Exception as e:  # noqa: BLE001  BCC raises a bare Exception
            self.close()
            raise ArgumentError(f"could not open the perf buffer {map_name!r} of {program.name} with {pages} pages "
                                f"per CPU ({e}); try fewer pages") from None
        self.cpus = sorted(table._open_key_fds)
        readers = [program.bpf.perf_buffers[(id(table), cpu)] for cpu in self.cpus]
        self._readers = (ctypes.c_void_p * len(readers))(*readers)

    @property
    def memory_bytes(self) -> int:
        """What the buffers map: (pages + 1 header page) x 4 KiB on each CPU."""
        return (self.pages + 1) * mmap.PAGESIZE * len(self.cpus)

    def _on_event(self, cpu: int, data, size: int) -> None:
        self._chunks.append(ctypes.string_at(data, min(size, self.payload.itemsize)))
        self._cpus.append(cpu)

    def _on_lost(self, lost: int) -> None:
        self.lost += int(lost)

    def poll(self, timeout_ms: int = 0) -> int:
        """Deliver what the buffers hold (waiting up to ``timeout_ms`` for the
        first record); returns how many records arrived so far and are unread."""
        if not self._closed and not self.program.closed:
            self._lib.perf_reader_poll(len(self._readers), self._readers, int(timeout_ms))
        return len(self._chunks)

    def read(self) -> pd.DataFrame:
        """The records delivered since the last read, in arrival order, with ``cpu``."""
        self.poll(0)
        chunks, cpus = self._chunks, self._cpus
        self._chunks, self._cpus = [], []
        good = [i for i, c in enumerate(chunks) if len(c) == self.payload.itemsize]
        records = np.frombuffer(b"".join(chunks[i] for i in good), dtype=self.payload).copy() if good \
            else np.empty(0, dtype=self.payload)
        self.received += len(records)
        return _frame(records, np.array([cpus[i] for i in good], dtype=np.int32))

    def close(self) -> None:
        """Free the per-CPU buffers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        forget(self)
        self._readers = (ctypes.c_void_p * 0)()
        if self.program.closed:
            return  # BCC's cleanup freed the buffers with the map (this reader holds no reference to it)
        bpf = self.program.bpf
        table = bpf.tables.get(self.map_name.encode())
        for cpu in list(getattr(table, "_open_key_fds", {})):
            try:
                del table[cpu]        # BCC's way: the map entry, then the reader
            except Exception:  # noqa: BLE001  BCC raises KeyError when the entry is gone already
                reader = bpf.perf_buffers.pop((id(table), cpu), None)
                if reader:
                    self._lib.perf_reader_free(reader)
                table._open_key_fds.pop(cpu, None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.cpus)} CPUs x {self.pages} pages"
        return f"<labkit PerfBufferReader {self.program.name}:{self.map_name} ({state}) " \
               f"received={self.received} lost={self.lost}>"


class RingMapReader:
    """Reads a ``BPF_RINGBUF_OUTPUT`` map: one ring for all CPUs, records in
    the order they were reserved. A full ring refuses reservations in the
    program, which counts them itself (the kernel tells the reader nothing)."""

    def __init__(self, program: Program, map_name: str = "ring", *, payload=None):
        table = _table(program, map_name, "ring buffer", f"BPF_RINGBUF_OUTPUT({map_name}, pages)")
        self.program, self.map_name = program, map_name
        self.payload = event_dtype(table, payload)
        self.received = 0
        self.size = int(table.max_entries)
        self.key = _key(program, map_name)
        self._closed = False
        claim(self, lambda state: self.close())     # a reader has no state to end in: closed is closed
        self._reader = RingBufferReader(table.map_fd, self.size, self.payload)

    @property
    def memory_bytes(self) -> int:
        """The ring's data area (shared by every CPU)."""
        return self.size

    def read(self) -> pd.DataFrame:
        """Every committed record since the last read, in reservation order."""
        if not self._closed and self.program.closed:
            self.close()              # the program was freed: give the ring's mapping back too
        if self._closed:
            return _frame(np.empty(0, dtype=self.payload))
        parts = []
        while len(batch := self._reader.read()):
            parts.append(batch)
        records = np.concatenate(parts) if parts else np.empty(0, dtype=self.payload)
        self.received += len(records)
        return _frame(records)

    def close(self) -> None:
        """Unmap the ring (idempotent)."""
        if self._closed:
            return
        self._closed = True
        forget(self)
        self._reader.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.size // 1024} KiB"
        return f"<labkit RingMapReader {self.program.name}:{self.map_name} ({state}) received={self.received}>"
