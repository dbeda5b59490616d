"""What a live panel shows: a feed turns a source into table rows, a status
line and counts in time bins.

    StreamFeed   an EventStream: the newest events; every event counted (a
                 listener) by a label (clone kind, comm, XDP action and protocol,
                 any field)
    XdpFeed      an XdpAttachment: its exact counters, read every refresh;
                 packets per second from their differences
    feed_for     the feed for a source (None for None)

A feed has ``name``, ``source``, ``ylabel``, ``running``, ``bind(bins)``,
``unbind()``, ``tick(now_bin)``, ``table(rows)``, ``status()`` and ``close()``.
"""

from __future__ import annotations

import html
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from labkit._errors import ArgumentError, LabkitError
from labkit.events.schemas import N_PROTO, PROTOCOLS, XDP_ACTIONS, clone_kind
from labkit.events.stream import EventStream
from labkit.hooks.xdp import XdpAttachment
from labkit.views.bins import Bins

__all__ = ["StreamFeed", "XdpFeed", "feed_for"]


# ----------------------------------------------------------------- labelers
def _clone_kinds(rec: np.ndarray) -> np.ndarray:
    return clone_kind(rec["flags"])


def _comms(rec: np.ndarray) -> np.ndarray:
    raw = rec["comm"]
    uniq, inv = np.unique(raw, return_inverse=True)
    names = np.array([u.split(b"\0", 1)[0].decode("utf-8", "replace") for u in uniq.tolist()], dtype=object)
    return names[inv.reshape(-1)]


def _xdp_labels(rec: np.ndarray) -> np.ndarray:
    acts = rec["action"].astype(np.int64)
    protos = rec["proto"].astype(np.int64)
    names = {(a, p): f"{XDP_ACTIONS.get(a, str(a))} {PROTOCOLS[p] if p < N_PROTO else p}"
             for a, p in set(zip(acts.tolist(), protos.tolist()))}
    return np.array([names[(a, p)] for a, p in zip(acts.tolist(), protos.tolist())], dtype=object)


def _resolve_by(by, dtype: np.dtype) -> Callable[[np.ndarray], Any] | None:
    names = dtype.names or ()
    if by is False or by == "":
        return None
    if callable(by):
        return by
    if by is None:  # pick what says most about this kind of event
        if "child_pid" in names and "flags" in names:
            return _clone_kinds
        if "action" in names and "proto" in names:
            return _xdp_labels
        if "comm" in names:
            return _comms
        return None
    if by == "kind" and "flags" in names:
        return _clone_kinds
    if by in ("protocol", "action") and "proto" in names:
        return _xdp_labels
    if by == "comm" and "comm" in names:
        return _comms
    if by in names:
        return lambda rec: rec[by]
    raise ArgumentError(f"by={by!r}: the events have no such field (fields: {', '.join(names)}, or 'kind')")


# -------------------------------------------------------------------- feeds
_DEFAULT_COLUMNS = {
    "clone": ["time", "pid", "child_pid", "uid", "comm", "kind"],
    "syscall": ["time", "pid", "tid", "uid", "comm", "syscall", "arg0", "arg1", "arg2"],
    "xdp": ["time", "src", "dst", "protocol", "action", "length"],
}


def _short_time(col: pd.Series) -> pd.Series:
    try:
        return col.dt.tz_convert(None).dt.strftime("%H:%M:%S.%f").str[:-3] if col.dt.tz is not None \
            else col.dt.strftime("%H:%M:%S.%f").str[:-3]
    except (AttributeError, TypeError):
        return col


class StreamFeed:
    """Events from an EventStream: the table is its newest events; the plot
    counts every event (through a listener) into time bins."""

    ylabel = "events / s"

    def __init__(self, stream, *, columns=None, by=None):
        self.stream = stream
        names = stream.payload.names or ()
        self._by = _resolve_by(by, stream.payload)
        if columns is None:
            key = "clone" if "child_pid" in names else "syscall" if "nr" in names else \
                "xdp" if "proto" in names else None
            columns = _DEFAULT_COLUMNS.get(key)
        self.columns = list(columns) if columns is not None else None
        self._bins: Bins | None = None

    @property
    def name(self) -> str:
        return self.stream.name

    @property
    def source(self):
        return self.stream

    def bind(self, bins: Bins) -> None:
        self._bins = bins
        self.stream.add_listener(self._on_batch)

    def unbind(self) -> None:
        self.stream.remove_listener(self._on_batch)
        self._bins = None

    def _on_batch(self, rec: np.ndarray) -> None:
        bins = self._bins
        if bins is None or len(rec) == 0:
            return
        ids = rec["ts"].astype(np.int64) // bins.bin_ns
        bins.add(ids, None if self._by is None else self._by(rec))

    def tick(self, now_bin: int) -> None:
        pass

    @property
    def running(self) -> bool:
        return self.stream.running

    def table(self, rows: int) -> pd.DataFrame:
        df = self.stream.to_dataframe(last=rows)
        if self.columns is not None:
            df = df[[c for c in self.columns if c in df.columns]]
        df = df.iloc[::-1].reset_index(drop=True)      # newest first
        if "time" in df.columns:
            df["time"] = _short_time(df["time"])
        return df

    def status(self) -> str:
        s = self.stream
        return (f"<b>{html.escape(s.name)}</b> via {html.escape(s.source)} &middot; {s.state} &middot; "
                f"received {s.received:,} &middot; lost {s.lost:,} &middot; showing the newest of "
                f"{len(s):,} kept (window {s.window:,})")

    def close(self) -> None:
        self.stream.stop()


class XdpFeed:
    """Exact counters of an XDP attachment, read every refresh; the plot shows
    packets per second by action and protocol (the counters' differences)."""

    ylabel = "packets / s"

    def __init__(self, att):
        self.att = att
        self._last: dict[tuple[str, str], int] = {}
        self._bins: Bins | None = None
        self._df = pd.DataFrame(columns=["action", "protocol", "packets", "bytes"])

    @property
    def name(self) -> str:
        return f"xdp({self.att.target})"

    @property
    def source(self):
        return self.att

    def _read(self) -> pd.DataFrame:
        try:
            return self.att.counters()
        except LabkitError:
            return self._df

    def bind(self, bins: Bins) -> None:
        self._bins = bins
        self._df = self._read()
        self._last = {(r.action, r.protocol): int(r.packets) for r in self._df.itertuples()}

    def unbind(self) -> None:
        self._bins = None

    def tick(self, now_bin: int) -> None:
        bins = self._bins
        if bins is None:
            return
        df = self._read()
        self._df = df
        labels, weights = [], []
        for r in df.itertuples():
            k = (r.action, r.protocol)
            d = int(r.packets) - self._last.get(k, 0)
            self._last[k] = int(r.packets)
            if d > 0:
                labels.append(f"{r.action} {r.protocol}")
                weights.append(d)
        if labels:
            bins.add(np.full(len(labels), now_bin), labels, np.array(weights, dtype=np.float64))

    @property
    def running(self) -> bool:
        return self.att.attached

    def table(self, rows: int) -> pd.DataFrame:
        df = self._df.copy()
        if self._bins is not None and not df.empty:
            x, series = self._bins.series(time.monotonic_ns() // self._bins.bin_ns)
            df["per s (last 2 s)"] = [
                float(series.get(f"{a} {p}", np.zeros(2))[-2:].mean()) for a, p in zip(df.action, df.protocol)]
        return df.sort_values(["action", "packets"], ascending=[True, False]).head(rows).reset_index(drop=True)

    def status(self) -> str:
        a = self.att
        return (f"<b>{html.escape(a.program.name)}</b> on {html.escape(a.target)} &middot; {a.mode} mode via "
                f"{a.via} &middot; {a.state} &middot; counters are exact (per-CPU maps)")

    def close(self) -> None:
        self.att.detach()


def feed_for(source, *, columns=None, by=None) -> StreamFeed | XdpFeed | None:
    """The feed that shows ``source`` (an EventStream or an XdpAttachment; None for None)."""
    if source is None:
        return None
    if isinstance(source, EventStream):
        return StreamFeed(source, columns=columns, by=by)
    if isinstance(source, XdpAttachment):
        return XdpFeed(source)
    raise ArgumentError(f"a live panel shows an EventStream or an XdpAttachment (what lab.trace_clone(), "
                        f"lab.trace_syscall() and lab.attach_xdp() return), got {type(source).__name__} {source!r:.60}")
