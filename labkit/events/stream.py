"""EventStream: ring buffer records, decoded in batches, in a bounded window.

A background thread drains the ring buffer every ``poll_interval`` seconds
(records are submitted without wakeups), appends the batch to a fixed-size
numpy window, and hands it to any listeners (live views). ``to_dataframe()``
turns the window into a pandas DataFrame with named, typed columns.
Events the kernel had no room for are counted in the program's per-CPU ``lost``
map and reported as :attr:`EventStream.lost`, never silently dropped.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Callable

import numpy as np
import pandas as pd

from labkit._errors import ArgumentError
from labkit._renamed import warn_renamed
from labkit.events.schemas import Frame
from labkit.events.ringbuf import RingBufferReader, record_dtype
from labkit.events.window import Window

__all__ = ["DEFAULT_POLL_INTERVAL", "DEFAULT_WINDOW", "EventStream", "check_window"]

DEFAULT_WINDOW = 10_000
DEFAULT_POLL_INTERVAL = 0.01

def check_window(window, poll_interval) -> None:
    """Refuse a bad window size or poll interval before anything is loaded."""
    if not (isinstance(window, int) and not isinstance(window, bool) and window >= 1):
        raise ArgumentError(f"window must be a positive number of events, got {window!r}")
    if not (_is_number(poll_interval) and poll_interval > 0):
        raise ArgumentError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_last(last) -> None:
    if last is not None and not (isinstance(last, int) and not isinstance(last, bool) and last >= 0):
        raise ArgumentError(f"last must be a number of events (0 or more) or None for the whole window, got {last!r}")


class EventStream:
    """Live events from one BPF program's ring buffer.

    Attributes: ``name``, ``source`` (the hook in use, e.g. ``tracepoint
    task:task_newtask``), ``hook_note`` (why that hook), ``received`` (events
    decoded so far), ``lost`` (events the kernel could not store), ``window``
    (how many of the newest events are kept).
    """

    def __init__(self, *, name: str, program, payload: np.dtype, frame: Frame, source: str,
                 hook_note: str = "", window: int = DEFAULT_WINDOW,
                 poll_interval: float = DEFAULT_POLL_INTERVAL, table: str = "events",
                 lost_table: str | None = "lost", owner=None):
        check_window(window, poll_interval)
        self.name = name
        self.program = program
        self.source = source
        self.hook_note = hook_note
        self.poll_interval = float(poll_interval)
        self._payload = np.dtype(payload)
        self._frame = frame
        self._lost_table = lost_table
        self._owner = owner
        self._win = Window(self._payload, window)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[np.ndarray], None]] = []
        self._lost_final: int | None = None
        self._state = "running"
        t = program[table]
        self._reader = RingBufferReader(t.map_fd, int(t.max_entries), self._payload)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"labkit-{name}", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- polling
    def _run(self) -> None:
        # Sleep at most poll_interval, and less when events come fast: long enough
        # for the ring buffer to fill to about 1/8 at the rate just seen. At
        # millions of events a second a fixed 10 ms sleep leaves the ring nearly
        # full, and any delay in getting a CPU back overflows it (`labkit bench`).
        eighth = max(1, self._reader.data_size // 8 // record_dtype(self._payload).itemsize)
        last = time.monotonic()
        wait = self.poll_interval
        while not self._stop.wait(wait):
            n = self._drain()
            now = time.monotonic()
            elapsed, last = now - last, now
            wait = self.poll_interval
            if n and elapsed > 0:
                wait = min(wait, eighth * elapsed / n)
        self._drain()

    def _drain(self) -> int:
        with self._lock:
            batch = self._reader.read()
            if len(batch):
                self._win.append(batch)
        if len(batch):
            for fn in list(self._listeners):
                try:
                    fn(batch)
                except Exception:  # a broken view must not kill the stream
                    pass
        return len(batch)

    def poll(self) -> int:
        """Drain the ring buffer now; returns how many events arrived."""
        if self._state != "running":
            return 0
        return self._drain()

    @property
    def thread_id(self) -> int | None:
        """The native id of the thread that drains the ring buffer (None once stopped)."""
        t = self._thread
        return t.native_id if t is not None and t.is_alive() else None

    @property
    def payload(self) -> np.dtype:
        """The record layout (a dtype from :mod:`labkit.events.schemas`)."""
        return self._payload

    def add_listener(self, fn: Callable[[np.ndarray], None]) -> None:
        """Call ``fn(records)`` with every new batch (raw numpy records)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[np.ndarray], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    # ---------------------------------------------------------------- reading
    @property
    def window(self) -> int:
        return self._win.capacity

    @property
    def received(self) -> int:
        """Events decoded since the stream started (including those the window let go)."""
        return self._win.total

    @property
    def lost(self) -> int:
        """Events the kernel could not put in the ring buffer (it was full)."""
        if self._lost_final is not None:
            return self._lost_final
        if self._lost_table is None or self.program.closed:
            return 0
        try:
            table = self.program[self._lost_table]
        except KeyError:
            return 0
        vals = table[0]
        try:
            return int(sum(list(vals)))      # per-CPU array: one counter per CPU
        except TypeError:
            return int(vals.value)

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def state(self) -> str:
        return self._state

    def records(self, last: int | None = None) -> np.ndarray:
        """The window's raw records (numpy structured array), oldest first."""
        _check_last(last)
        with self._lock:
            return self._win.ordered(last)

    def to_dataframe(self, last: int | None = None) -> pd.DataFrame:
        """The newest events (at most ``window``, or ``last``) as a DataFrame."""
        return self._frame(self.records(last))

    def __len__(self) -> int:
        return len(self._win)

    def clear(self) -> None:
        """Forget the events held so far (counters keep counting)."""
        with self._lock:
            self._win.clear()

    def wait(self, predicate: Callable[[pd.DataFrame], bool] | None = None, timeout: float = 2.0,
             min_events: int = 1) -> bool:
        """Wait until ``predicate(to_dataframe())`` holds (or ``min_events``
        arrived); returns whether it did within ``timeout`` seconds."""
        if predicate is not None and not callable(predicate):
            raise ArgumentError(f"wait's predicate must be a function of the DataFrame (like "
                                f"lambda df: len(df) >= 3) or None, got {predicate!r}")
        if not (_is_number(timeout) and timeout >= 0):
            raise ArgumentError(f"timeout must be a number of seconds (0 or more), got {timeout!r}")
        if not (isinstance(min_events, int) and not isinstance(min_events, bool) and min_events >= 0):
            raise ArgumentError(f"min_events must be a number of events (0 or more), got {min_events!r}")
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if predicate is None:
                if len(self) >= min_events:
                    return True
            elif predicate(self.to_dataframe()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.01, self.poll_interval))

    # ---------------------------------------------------------------- stopping
    def stop(self, state: str = "stopped") -> None:
        """Stop the stream and detach the program that feeds it (idempotent):
        polling ends, the ring buffer is unmapped, and the events already
        received stay readable. ``state``: what it is afterwards ("stopped";
        "replaced" or "closed" when its attachment was given back)."""
        if self._state == "running":
            self._stop_polling(state)
        owner = self._owner
        if owner is not None and owner.stream is self:
            owner.detach()          # one detached, or detaching (it stops its stream first), returns at once

    def _stop_polling(self, state: str) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._lost_final = self.lost
        with self._lock:
            self._reader.close()
        self._state = state

    def halt(self, state: str) -> None:
        """Deprecated (one release): stop polling only, leaving the program
        attached; use :meth:`stop`."""
        warn_renamed("EventStream.halt()", "stop()")
        if self._state == "running":
            self._stop_polling(state)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<labkit.EventStream {self.name} via {self.source}: {self._state}, received={self.received}, "
                f"lost={self.lost}, window={len(self)}/{self.window}>")

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        df = self.to_dataframe(last=10)
        return f"<div><code>{head}</code>{df.to_html(max_rows=10)}</div>"
