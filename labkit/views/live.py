"""Views: live panels, pickers, and static tables of what the kernel holds.

    panel = labkit.live(lab.trace_clone())      # newest events + events/s, refreshed in place
    panel.stop(); panel.start(); panel.snapshot()
    labkit.live(x)                              # an XdpAttachment: packets/s by protocol and action
    labkit.SyscallPicker(lab)                   # a Dropdown of syscalls that retargets a live panel
    labkit.XdpControl(lab, "xdp_icmp_drop")     # interface picker, mode, attach/detach, live counters

A panel is an ipywidgets box (an HTML table and a PNG plot in an Image) whose
values a background thread replaces every ``interval`` seconds: nothing piles
up in the cell's output, and the notebook stays usable. Memory is fixed: the
table shows the newest ``rows`` events of the stream's bounded window, and the
plot's data is a ring of ``history`` time bins per series.

Panels are kept in a process-wide registry keyed by ``name``: making a panel
under a name that is live stops the old panel and, when it owned them (the
default), the programs that fed it. Re-running the cell that made a panel
therefore never leaves two panels, or two programs, running side by side.

Static HTML (nbconvert) cannot run widgets; ``panel.snapshot()`` displays the
last table and plot as plain HTML with the PNG inline, which any report keeps.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import select
import threading
import time
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from labkit import attach
from labkit._errors import LabkitError
from labkit.views.display import ShownOnce, widget_bundle

__all__ = [
    "LivePanel",
    "PanelSnapshot",
    "SyscallPicker",
    "XdpControl",
    "close_panels",
    "live",
    "live_panels",
    "map_dataframe",
    "read_trace_pipe",
    "xdp_interfaces",
]

# ------------------------------------------------------------------ registry
def live_panels() -> list["LivePanel"]:
    """Every panel that is not closed, in this process."""
    return attach.holders(LivePanel)


def close_panels() -> None:
    """Close every panel (and the programs the panels own)."""
    for p in live_panels():
        p.close()


_TABLE_CSS = ("<style>.lk-table table{border-collapse:collapse;font-size:12px}"
              ".lk-table th,.lk-table td{padding:1px 6px;text-align:right;white-space:nowrap}"
              ".lk-table th{border-bottom:1px solid #999}</style>")


def _table_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<div class='lk-table'><i>no events yet</i></div>"
    return "<div class='lk-table'>" + df.to_html(index=False, border=0) + "</div>"


def _short_time(col: pd.Series) -> pd.Series:
    try:
        return col.dt.tz_convert(None).dt.strftime("%H:%M:%S.%f").str[:-3] if col.dt.tz is not None \
            else col.dt.strftime("%H:%M:%S.%f").str[:-3]
    except (AttributeError, TypeError):
        return col


# --------------------------------------------------------------- time bins
class _Bins:
    """Counts per (series, time bin) for the newest ``nbins`` bins: fixed memory.

    Series are created on first sight up to ``max_series``; later labels are
    counted under "other". Thread-safe (the stream's thread adds, the panel's
    thread reads)."""

    OTHER = "other"

    def __init__(self, nbins: int, bin_ns: int, max_series: int):
        self.nbins = int(nbins)
        self.bin_ns = int(bin_ns)
        self.max_series = int(max_series)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.ids = np.full(self.nbins, -1, dtype=np.int64)
            self.counts = np.zeros((self.max_series + 1, self.nbins), dtype=np.float64)
            self.labels: list[str] = []
            self.index: dict[str, int] = {}
            self.version = 0

    def _series(self, label: str) -> int:
        i = self.index.get(label)
        if i is None:
            if len(self.labels) >= self.max_series:
                return self.max_series     # "other" (not remembered: memory stays bounded)
            i = len(self.labels)
            self.labels.append(label)
            self.index[label] = i
        return i

    def add(self, bin_ids: np.ndarray, labels: np.ndarray | list | None = None,
            weights: np.ndarray | None = None) -> None:
        bin_ids = np.asarray(bin_ids, dtype=np.int64)
        if bin_ids.size == 0:
            return
        w = np.ones(bin_ids.size) if weights is None else np.asarray(weights, dtype=np.float64)
        with self.lock:
            if labels is None:
                rows = np.zeros(bin_ids.size, dtype=np.int64)
                if not self.labels:
                    self._series("events")
            else:
                uniq, inv = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
                rows = np.array([self._series(str(u)) for u in uniq], dtype=np.int64)[inv.reshape(-1)]
            newest = int(bin_ids.max())
            for b in np.unique(bin_ids):
                b = int(b)
                if b <= newest - self.nbins:
                    continue              # older than the history kept
                slot = b % self.nbins
                if self.ids[slot] != b:
                    if self.ids[slot] > b:
                        continue          # the slot already holds a newer bin
                    self.ids[slot] = b
                    self.counts[:, slot] = 0
                sel = bin_ids == b
                np.add.at(self.counts, (rows[sel], slot), w[sel])
            self.version += 1

    def series(self, now_bin: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """x (seconds relative to now, oldest first) and per-series counts per second."""
        wanted = np.arange(now_bin - self.nbins + 1, now_bin + 1, dtype=np.int64)
        slots = wanted % self.nbins
        with self.lock:
            valid = self.ids[slots] == wanted
            data = np.where(valid[None, :], self.counts[:, slots], 0.0)
            labels = list(self.labels)
            has_other = self.max_series < self.counts.shape[0] and data[self.max_series].any()
        scale = 1e9 / self.bin_ns
        out = {lab: data[i] * scale for i, lab in enumerate(labels)}
        if has_other:
            out[self.OTHER] = data[self.max_series] * scale
        x = (wanted - now_bin) * (self.bin_ns / 1e9)
        return x, out

    def total(self) -> float:
        with self.lock:
            return float(self.counts.sum())


# ------------------------------------------------------------------- plots
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


class _Plot:
    """One matplotlib figure, reused: lines are updated, never re-created per refresh."""

    def __init__(self, ylabel: str, figsize=(6.0, 2.4), dpi=80):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=figsize, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        self.ax.set_xlabel("seconds ago")
        self.ax.set_ylabel(ylabel)
        self.ax.grid(True, alpha=0.3)
        self.fig.subplots_adjust(left=0.12, right=0.72, bottom=0.2, top=0.95)
        self.lines: dict[str, Any] = {}
        self._legend_for: tuple = ()
        self.lock = threading.Lock()

    @staticmethod
    def _style(label: str, n: int) -> dict:
        style: dict[str, Any] = {"color": _PALETTE[n % len(_PALETTE)], "lw": 1.6}
        if label.startswith("drop"):
            style["ls"] = "--"
        return style

    def render(self, x: np.ndarray, series: dict[str, np.ndarray]) -> bytes:
        with self.lock:
            for label, y in series.items():
                line = self.lines.get(label)
                if line is None:
                    (line,) = self.ax.plot(x, y, label=label, **self._style(label, len(self.lines)))
                    self.lines[label] = line
                else:
                    line.set_data(x, y)
            for label in [k for k in self.lines if k not in series]:
                self.lines.pop(label).remove()
            labels = tuple(series)
            if labels != self._legend_for:
                if labels:
                    self.ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
                elif self.ax.get_legend() is not None:
                    self.ax.get_legend().remove()
                self._legend_for = labels
            top = max([float(np.max(y)) for y in series.values()] + [1.0])
            self.ax.set_xlim(float(x[0]), float(x[-1]) if len(x) > 1 else 0.0)
            self.ax.set_ylim(0, top * 1.15)
            buf = io.BytesIO()
            self.canvas.print_png(buf)
            return buf.getvalue()


# ------------------------------------------------------------------- feeds
def _clone_kinds(rec: np.ndarray) -> np.ndarray:
    from labkit.events.schemas import clone_kind

    return clone_kind(rec["flags"])


def _comms(rec: np.ndarray) -> np.ndarray:
    raw = rec["comm"]
    uniq, inv = np.unique(raw, return_inverse=True)
    names = np.array([u.split(b"\0", 1)[0].decode("utf-8", "replace") for u in uniq.tolist()], dtype=object)
    return names[inv.reshape(-1)]


def _xdp_labels(rec: np.ndarray) -> np.ndarray:
    from labkit.events.schemas import N_PROTO, PROTOCOLS, XDP_ACTIONS

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
    raise LabkitError(f"by={by!r}: the events have no such field (fields: {', '.join(names)}, or 'kind')")


_DEFAULT_COLUMNS = {
    "clone": ["time", "pid", "child_pid", "uid", "comm", "kind"],
    "syscall": ["time", "pid", "tid", "uid", "comm", "syscall", "arg0", "arg1", "arg2"],
    "xdp": ["time", "src", "dst", "protocol", "action", "length"],
}


class _StreamFeed:
    """Events from an EventStream: the table is its newest events; the plot
    counts every event (through a listener) into time bins."""

    kind = "events"
    ylabel = "events / s"

    def __init__(self, stream, *, columns=None, by=None):
        self.stream = stream
        names = stream._payload.names or ()
        self._by = _resolve_by(by, stream._payload)
        if columns is None:
            key = "clone" if "child_pid" in names else "syscall" if "nr" in names else \
                "xdp" if "proto" in names else None
            columns = _DEFAULT_COLUMNS.get(key)
        self.columns = list(columns) if columns is not None else None
        self._bins: _Bins | None = None

    @property
    def name(self) -> str:
        return self.stream.name

    def bind(self, bins: _Bins) -> None:
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


class _XdpFeed:
    """Exact counters of an XDP attachment, read every refresh; the plot shows
    packets per second by action and protocol (the counters' differences)."""

    kind = "xdp"
    ylabel = "packets / s"

    def __init__(self, att):
        self.att = att
        self._last: dict[tuple[str, str], int] = {}
        self._bins: _Bins | None = None
        self._df = pd.DataFrame(columns=["action", "protocol", "packets", "bytes"])

    @property
    def name(self) -> str:
        return f"xdp({self.att.target})"

    def _read(self) -> pd.DataFrame:
        try:
            return self.att.counters()
        except LabkitError:
            return self._df

    def bind(self, bins: _Bins) -> None:
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


def _feed_for(source, *, columns=None, by=None):
    from labkit.net.xdp import XdpAttachment
    from labkit.events.stream import EventStream

    if source is None:
        return None
    if isinstance(source, EventStream):
        return _StreamFeed(source, columns=columns, by=by)
    if isinstance(source, XdpAttachment):
        return _XdpFeed(source)
    raise LabkitError(f"a live panel shows an EventStream or an XdpAttachment, got {type(source).__name__}")


# ------------------------------------------------------------------- panel
class PanelSnapshot(ShownOnce):
    """A static copy of a panel: ``table`` (DataFrame), ``png`` (the plot),
    ``status``; renders as plain HTML with the PNG inline (works offline)."""

    def __init__(self, title: str, status: str, table: pd.DataFrame, png: bytes | None):
        self.title = title
        self.status = status
        self.table = table
        self.png = png

    def _repr_html_(self) -> str:
        img = ""
        if self.png:
            img = f"<img alt='{html.escape(self.title)} plot' src='data:image/png;base64," \
                  f"{base64.b64encode(self.png).decode()}'/>"
        return (f"{_TABLE_CSS}<div class='lk-snapshot'><div><b>{html.escape(self.title)}</b> "
                f"(snapshot)</div><div style='font-size:12px'>{self.status}</div>"
                f"{_table_html(self.table)}{img}</div>")

    def _mimebundle(self) -> dict[str, Any]:
        return {"text/html": self._repr_html_(), "text/plain": self.__repr__()}

    def __repr__(self) -> str:
        return f"<labkit.PanelSnapshot {self.title}: {len(self.table)} rows>\n{self.table.to_string(index=False)}"


class LivePanel:
    """The newest events as a table plus a plot, refreshed in place.

    ``source``: an EventStream (table: newest events; plot: events per second
    by ``by`` — clone kind, comm, or any field) or an XdpAttachment (table:
    exact counters; plot: packets per second by action and protocol), or None
    to fill in later with :meth:`set_source`.
    ``name``: the registry key (default: the source's name); a new panel under
    a live name closes the old one. ``own``: closing the panel also stops the
    stream / detaches the attachment. ``rows``: table rows; ``interval``:
    seconds between refreshes (0.1 is fine); ``history``: seconds of plot;
    ``bin_seconds``: plot resolution; ``max_series``: lines before "other".

    ``start()``, ``stop()`` (the source keeps running), ``close()`` (stops
    the source too), ``refresh()`` (one refresh now), ``table()``,
    ``snapshot()`` (a static table + PNG for reports), ``widget``.
    """

    def __init__(self, source=None, *, name: str | None = None, columns: Iterable[str] | None = None,
                 by: str | Callable | None = None, rows: int = 10, interval: float = 0.5, history: float = 30,
                 bin_seconds: float = 1.0, max_series: int = 6, title: str | None = None, own: bool = True,
                 autostart: bool = True):
        import ipywidgets as w

        if not (isinstance(rows, int) and rows >= 1):
            raise LabkitError(f"rows must be a positive integer, got {rows!r}")
        if not (interval > 0 and bin_seconds > 0 and history >= bin_seconds):
            raise LabkitError("interval and bin_seconds must be > 0 and history >= bin_seconds")
        feed = _feed_for(source, columns=columns, by=by)
        self.name = name or (feed.name if feed is not None else "panel")
        self.title = title or self.name
        self.rows = rows
        self.interval = float(interval)
        self.own = own
        self._columns, self._by = columns, by
        self._bins = _Bins(max(2, int(round(history / bin_seconds))), int(bin_seconds * 1e9), max_series)
        self._plot: _Plot | None = None
        self._feed = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._render_lock = threading.RLock()
        self._state = "new"
        self._last_html = None
        self._last_plot_key = None
        self._png: bytes | None = None
        self._plotted_at = 0.0
        self._table_df = pd.DataFrame()
        self._status_html = ""
        self.refreshes = 0
        self.errors: list[str] = []

        self._status = w.HTML()
        self._table_w = w.HTML()
        self._image = w.Image(format="png", layout=w.Layout(min_width="300px"))
        self._start_b = w.Button(description="start", icon="play", layout=w.Layout(width="90px"))
        self._stop_b = w.Button(description="stop", icon="stop", layout=w.Layout(width="90px"))
        self._start_b.on_click(lambda _b: self._safe(self.start))
        self._stop_b.on_click(lambda _b: self._safe(self.stop))
        self.widget = w.VBox([
            w.HBox([w.HTML(f"<b>{html.escape(self.title)}</b>"), self._start_b, self._stop_b]),
            self._status,
            w.HBox([self._table_w, self._image], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
        ])
        self.key = ("panel", self.name)
        attach.claim(self)
        self._state = "stopped"
        if feed is not None:
            self._bind(feed)
        self._update_buttons()
        self.refresh()
        if autostart and feed is not None:
            self.start()

    # ----------------------------------------------------------- life cycle
    @property
    def state(self) -> str:
        """running, stopped, source stopped, closed or replaced."""
        return self._state

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def source(self):
        f = self._feed
        return None if f is None else (f.stream if isinstance(f, _StreamFeed) else f.att)

    def start(self) -> None:
        """Refresh every ``interval`` seconds in a background thread."""
        if self._state in ("closed", "replaced"):
            raise LabkitError(f"panel {self.name} is {self._state}; make a new one")
        if self._feed is None:
            raise LabkitError(f"panel {self.name} has nothing to show yet (set_source)")
        if self.running:
            return
        if not self._feed.running:
            self._state = "source stopped"
            self.refresh()
            return
        self._halt.clear()
        self._state = "running"
        self._thread = threading.Thread(target=self._run, name=f"labkit-panel-{self.name}", daemon=True)
        self._thread.start()
        self._update_buttons()

    def stop(self) -> None:
        """Stop refreshing (the source keeps running; ``start()`` resumes).
        The panel is refreshed one last time."""
        self._stop_thread()
        if self._state == "running":
            self._state = "stopped"
        self.refresh(force=True)
        self._update_buttons()

    def close(self, state: str = "closed") -> None:
        """Stop the panel and, if it owns its source, the source (idempotent)."""
        if self._state in ("closed", "replaced"):
            return
        self._stop_thread()
        feed = self._feed
        if feed is not None:
            if self.own:
                try:
                    feed.close()
                except Exception as e:  # report, but a panel must always close
                    self.errors.append(f"closing source: {e}")
            self.refresh(force=True)
            feed.unbind()
        self._state = state
        attach.release(self)
        head = self._status_html.rsplit(" &middot; panel ", 1)[0]
        self._status_html = f"{head} &middot; <b>panel {state}</b>"
        self._status.value = self._status_html
        self._update_buttons()

    def give_back(self, state: str) -> None:
        """The registry's name for :meth:`close`."""
        self.close(state)

    def set_source(self, source, *, columns: Iterable[str] | None = None, by=None) -> None:
        """Show another stream or attachment (the old one is stopped if owned)."""
        if self._state in ("closed", "replaced"):
            raise LabkitError(f"panel {self.name} is {self._state}; make a new one")
        was_running = self.running
        self._stop_thread()
        old = self._feed
        if old is not None:
            old.unbind()
            if self.own and old_source_differs(old, source):
                old.close()
        self._bins.reset()
        with self._render_lock:
            self._plot = None
            self._last_plot_key = None
        self._state = "stopped"
        self._feed = None
        feed = _feed_for(source, columns=columns if columns is not None else self._columns,
                         by=by if by is not None else self._by)
        if feed is not None:
            self._bind(feed)
        self.refresh()
        if feed is not None and (was_running or old is None):
            self.start()
        self._update_buttons()

    def _bind(self, feed) -> None:
        self._feed = feed
        feed.bind(self._bins)

    def _stop_thread(self) -> None:
        self._halt.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self.refresh()
            feed = self._feed
            if feed is None or not feed.running:
                self._state = "source stopped"
                self.refresh(force=True)
                self._update_buttons()
                return

    def _safe(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self._status.value = f"{self._status_html} &middot; <span style='color:#c33'>{html.escape(str(e))}</span>"

    def _update_buttons(self) -> None:
        live = self._state not in ("closed", "replaced")
        self._start_b.disabled = not live or self.running or self._feed is None
        self._stop_b.disabled = not self.running

    # ------------------------------------------------------------ rendering
    #: the plot is drawn at most this often (seconds); the table every refresh
    PLOT_EVERY = 0.25

    def refresh(self, *, force: bool = False) -> None:
        """Refresh table and plot now (cheap: a few rows of HTML and, when the
        data or the time axis moved, at most every PLOT_EVERY seconds, one PNG
        of a reused figure). ``force`` draws the plot whatever the timing."""
        with self._render_lock:
            feed = self._feed
            try:
                now_bin = time.monotonic_ns() // self._bins.bin_ns
                if feed is not None:
                    feed.tick(now_bin)
                    df = feed.table(self.rows)
                    status = feed.status()
                else:
                    df = pd.DataFrame()
                    status = "<i>nothing to show yet</i>"
                status += f" &middot; panel {self._state}"
                page = _TABLE_CSS + _table_html(df)
                if page != self._last_html:
                    self._table_w.value = page
                    self._last_html = page
                if self._status.value != status:
                    self._status.value = status
                self._table_df = df
                self._status_html = status
                key = (now_bin, self._bins.version, feed is None)
                due = force or time.monotonic() - self._plotted_at >= self.PLOT_EVERY
                if key != self._last_plot_key and feed is not None and due:
                    if self._plot is None:
                        self._plot = _Plot(feed.ylabel)
                    x, series = self._bins.series(now_bin)
                    self._png = self._plot.render(x, series)
                    self._image.value = self._png
                    self._last_plot_key = key
                    self._plotted_at = time.monotonic()
                self.refreshes += 1
            except Exception as e:  # a view must never take the notebook down
                msg = f"{type(e).__name__}: {e}"
                if len(self.errors) < 20:
                    self.errors.append(msg)
                self._status.value = f"<span style='color:#c33'>refresh failed: {html.escape(msg)}</span>"

    def table(self) -> pd.DataFrame:
        """The table as last shown."""
        return self._table_df.copy()

    def series(self) -> pd.DataFrame:
        """The plotted rates: one column per series, indexed by seconds ago."""
        x, s = self._bins.series(time.monotonic_ns() // self._bins.bin_ns)
        return pd.DataFrame(s, index=pd.Index(x, name="seconds ago"))

    def snapshot(self) -> PanelSnapshot:
        """Refresh once and display a static copy (table + PNG plot) — what an
        HTML report keeps of a live panel. Returns the PanelSnapshot."""
        self.refresh(force=True)
        snap = PanelSnapshot(self.title, self._status_html, self._table_df.copy(), self._png)
        snap._show()
        return snap

    # -------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit.LivePanel {self.name}: {self._state}, {self.refreshes} refreshes>"


def old_source_differs(feed, source) -> bool:
    cur = feed.stream if isinstance(feed, _StreamFeed) else feed.att
    return cur is not source


def live(source, *, name: str | None = None, **kw) -> LivePanel:
    """A live panel of an EventStream (newest events, events per second) or an
    XdpAttachment (exact counters, packets per second by protocol and action).
    See :class:`LivePanel` for the options."""
    return LivePanel(source, name=name, **kw)


# ----------------------------------------------------------- syscall picker
class SyscallPicker:
    """A Dropdown of the syscalls this kernel can trace (``labkit.syscalls()``)
    and a live panel of the chosen one: picking another retargets the panel
    (the old program is detached first, so only one runs).

        picker = labkit.SyscallPicker(lab, "openat")
        picker.select("execve")        # same as choosing it in the Dropdown
        picker.stream.to_dataframe()
    """

    def __init__(self, lab, value: str = "openat", *, pid: int | None = None, name: str = "syscall picker",
                 rows: int = 10, interval: float = 0.5, by: str | None = "comm", window: int = 10_000):
        import ipywidgets as w

        from labkit.lab import syscalls

        self.lab = lab
        self.pid = pid
        self.name = name
        self.window = window
        self.options = syscalls()
        if value not in self.options:
            raise LabkitError(f"no syscall tracepoint for {value!r} on this kernel; labkit.syscalls() lists them")
        self.dropdown = w.Dropdown(options=self.options, value=value, description="syscall")
        self._msg = w.HTML()
        self.panel = LivePanel(None, name=name, title=f"{name}", rows=rows, interval=interval, by=by)
        self.stream = None
        self.widget = w.VBox([w.HBox([self.dropdown, self._msg]), self.panel.widget])
        self.select(value)
        self.dropdown.observe(self._changed, names="value")

    def _changed(self, change) -> None:
        try:
            self.select(change["new"])
        except Exception as e:
            self._msg.value = f"<span style='color:#c33'>{html.escape(str(e))}</span>"

    def select(self, syscall: str):
        """Trace ``syscall`` instead (detaches the previous one); returns the new EventStream."""
        if syscall not in self.options:
            raise LabkitError(f"no syscall tracepoint for {syscall!r} on this kernel; labkit.syscalls() lists them")
        old = self.stream
        if old is not None:
            old.stop()
        self.stream = self.lab.trace_syscall(syscall, pid=self.pid, name=self.name, window=self.window)
        self.panel.set_source(self.stream)
        if self.dropdown.value != syscall:
            self.dropdown.unobserve(self._changed, names="value")
            self.dropdown.value = syscall
            self.dropdown.observe(self._changed, names="value")
        self._msg.value = f"tracing <code>syscalls:sys_enter_{html.escape(syscall)}</code>" + \
            (f" for pid {self.pid}" if self.pid else " (every process)")
        return self.stream

    @property
    def syscall(self) -> str:
        return self.dropdown.value

    def close(self) -> None:
        self.panel.close()

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit.SyscallPicker {self.name}: {self.syscall}, panel {self.panel.state}>"


# ---------------------------------------------------------- XDP interfaces
def _own_namespaces() -> list[str]:
    from labkit.net.records import list_sandboxes

    out: list[str] = []
    for r in list_sandboxes():
        if r.owner_pid == os.getpid() and r.complete:
            out += [r.host_ns, r.target_ns]
    return out


def xdp_interfaces(namespaces: Iterable[str] | None = None, *, root: bool = True) -> pd.DataFrame:
    """Interfaces of the root namespace and of the lab's namespaces (default:
    the sandboxes this process made), with the XDP program in each slot.

    Columns: namespace ("" = root), iface, ifindex, native, generic (program
    ids, 0 = empty), xdp (who is there, readable), labkit (a labkit program is
    attached), default_route (the interface carries a default route).
    """
    from labkit.net import xdp as _xdp

    spaces: list[str | None] = [None] if root else []
    spaces += list(_own_namespaces() if namespaces is None else namespaces)
    rows = []
    for ns in spaces:
        links = _xdp.interfaces(ns)
        try:
            defaults = _xdp.default_route_ifindexes(ns)
        except Exception:
            defaults = set()
        for link in links:
            desc, is_lk = [], False
            for slot in ("native", "generic"):
                pid = link[slot]
                if pid:
                    pname = _xdp.prog_name(pid)
                    is_lk = is_lk or pname.startswith(_xdp.PREFIX)
                    desc.append(f"{pname or '?'} ({slot}, id {pid})")
            rows.append({"namespace": ns or "", "iface": link["ifname"], "ifindex": link["index"],
                         "native": link["native"], "generic": link["generic"],
                         "xdp": ", ".join(desc) or "-", "labkit": is_lk,
                         "default_route": link["index"] in defaults})
    return pd.DataFrame(rows, columns=["namespace", "iface", "ifindex", "native", "generic", "xdp", "labkit",
                                       "default_route"])


class XdpControl:
    """Pick an interface (root namespace and the lab's namespaces, each shown
    with the XDP program it carries and in which mode), a mode, and attach or
    detach ``program`` there; a live panel shows its counters.

    Root-namespace interfaces are listed but attaching there needs
    ``allow_root=True``; the interface with the default route is refused by
    ``lab.attach_xdp`` anyway (force=True is never passed from here).

        ctl = labkit.XdpControl(lab, "xdp_icmp_drop")
        ctl.select(sb.target_iface, sb.target_ns); ctl.attach(mode="generic")
    """

    MODES = ("auto", "native", "generic")

    def __init__(self, lab, program: str = "xdp_icmp_drop", *, namespaces: Iterable[str] | None = None,
                 name: str = "xdp control", allow_root: bool = False, rows: int = 10, interval: float = 0.5):
        import ipywidgets as w

        self.lab = lab
        self.program = program
        self.name = name
        self.allow_root = allow_root
        self._namespaces = None if namespaces is None else list(namespaces)
        self.attachment = None
        self.dropdown = w.Dropdown(description="interface", layout=w.Layout(width="520px"))
        self.mode = w.ToggleButtons(options=list(self.MODES), value="auto", description="mode")
        self._attach_b = w.Button(description="attach", icon="link", button_style="warning")
        self._detach_b = w.Button(description="detach", icon="unlink")
        self._refresh_b = w.Button(description="", icon="refresh", layout=w.Layout(width="40px"),
                                   tooltip="list the interfaces again")
        self._msg = w.HTML()
        self._attach_b.on_click(lambda _b: self._safe(self.attach))
        self._detach_b.on_click(lambda _b: self._safe(self.detach))
        self._refresh_b.on_click(lambda _b: self._safe(self.refresh))
        self.panel = LivePanel(None, name=name, title=f"{name}: {program}", rows=rows, interval=interval)
        self.widget = w.VBox([
            w.HBox([self.dropdown, self._refresh_b]),
            w.HBox([self.mode]),
            w.HBox([self._attach_b, self._detach_b, self._msg]),
            self.panel.widget,
        ])
        self.refresh()

    # --------------------------------------------------------------- listing
    def interfaces(self) -> pd.DataFrame:
        """The table behind the Dropdown (see :func:`xdp_interfaces`)."""
        return xdp_interfaces(self._namespaces)

    def refresh(self) -> pd.DataFrame:
        """List the interfaces again (and who carries XDP now)."""
        df = self.interfaces()
        keep = self.dropdown.value
        options = []
        for r in df.itertuples():
            where = r.namespace or "root"
            flags = []
            if r.xdp != "-":
                flags.append(f"XDP: {r.xdp}")
            if r.default_route:
                flags.append("default route")
            if not r.namespace and not self.allow_root:
                flags.append("view only")
            label = f"{r.iface} in {where}" + (f" — {'; '.join(flags)}" if flags else "")
            options.append((label, (r.namespace or None, r.iface)))
        self.dropdown.options = options
        values = [v for _, v in options]
        if keep in values:
            self.dropdown.value = keep
        else:
            sandbox = [v for v in values if v[0] and v[0].endswith("-tgt") and v[1] != "lo"]
            self.dropdown.value = sandbox[0] if sandbox else (values[0] if values else None)
        return df

    def select(self, iface: str, netns: str | None = None) -> None:
        """Choose an interface, as the Dropdown does."""
        value = (netns or None, iface)
        if value not in [v for _, v in self.dropdown.options]:
            self.refresh()
        if value not in [v for _, v in self.dropdown.options]:
            raise LabkitError(f"no interface {iface!r} in {netns or 'the root namespace'} among the listed ones")
        self.dropdown.value = value

    # -------------------------------------------------------------- actions
    def attach(self, iface: str | None = None, netns: str | None = None, mode: str | None = None):
        """Attach the program to the chosen interface (or ``iface``/``netns``)
        in the chosen mode; returns the XdpAttachment."""
        if iface is not None:
            self.select(iface, netns)
        if mode is not None:
            self.mode.value = mode
        if self.dropdown.value is None:
            raise LabkitError("no interface chosen")
        ns, name = self.dropdown.value
        if ns is None and not self.allow_root:
            raise LabkitError(f"{name} is in the root namespace: this control only views it. Attach to the "
                              "sandbox, or make the control with allow_root=True (instructor demos).")
        if self.attachment is not None:
            self.attachment.detach()
        self.attachment = self.lab.attach_xdp(self.program, iface=name, netns=ns, mode=self.mode.value)
        self.panel.set_source(self.attachment)
        self._msg.value = f"attached to {html.escape(name)} in {html.escape(ns or 'root')}: " \
                          f"{self.attachment.mode} mode via {self.attachment.via}"
        self.refresh()
        return self.attachment

    def detach(self) -> None:
        """Detach the program (the panel keeps the last counters)."""
        if self.attachment is not None:
            self.attachment.detach()
            self.panel.refresh()
            self._msg.value = "detached"
        self.refresh()

    def close(self) -> None:
        self.panel.close()
        if self.attachment is not None:
            self.attachment.detach()

    def _safe(self, fn) -> None:
        try:
            fn()
        except Exception as e:
            self._msg.value = f"<span style='color:#c33'>{html.escape(type(e).__name__)}: " \
                              f"{html.escape(str(e))}</span>"

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        att = self.attachment.hook if self.attachment is not None and self.attachment.attached else "nothing"
        return f"<labkit.XdpControl {self.name}: {self.program} on {att}>"


# --------------------------------------------------------------- map tables
def _ctype_value(v) -> Any:
    import ctypes

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
    from labkit.programs.hooks import require_tracefs

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
    rows = []
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
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
