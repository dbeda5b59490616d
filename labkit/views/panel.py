"""Live panels: the newest events as a table plus a plot, refreshed in place.

    panel = labkit.live(lab.trace_clone())      # newest events + events/s, refreshed in place
    panel.stop(); panel.start(); panel.snapshot()
    labkit.live(x)                              # an XdpAttachment: packets/s by protocol and action

A panel is an ipywidgets box (an HTML table and a PNG plot in an Image) whose
values a background thread replaces every ``interval`` seconds: nothing piles
up in the cell's output, and the notebook stays usable. Memory is fixed: the
table shows the newest ``rows`` events of the stream's bounded window, and the
plot's data is a ring of ``history`` time bins per series.

Panels are kept in the process-wide registry (:mod:`labkit.owners`) keyed by
``name``: making a panel under a name that is live stops the old panel and,
when it owned them (the default), the programs that fed it. Re-running the
cell that made a panel therefore never leaves two panels, or two programs,
running side by side; the replaced panel's widgets (and the control around it)
are closed too, since its cell's output is gone, so nothing piles up in the
kernel either.

Static HTML (nbconvert) cannot run widgets; ``panel.snapshot()`` displays the
last table and plot as plain HTML with the PNG inline, which any report keeps.
"""

from __future__ import annotations

import base64
import html
import threading
import time
from typing import Any, Callable, Iterable

import pandas as pd

from labkit._errors import ArgumentError, ClosedError, LabkitError
from labkit._renamed import renamed_method
from labkit.owners import claim, forget, holders
from labkit.views.bins import Bins
from labkit.views.display import TABLE_CSS, ShownOnce, table_html, widget_bundle
from labkit.views.feeds import feed_for
from labkit.views.plot import Plot

__all__ = ["LivePanel", "PanelSnapshot", "close_panels", "live", "live_panels"]


def live_panels() -> list[LivePanel]:
    """Every panel that is not closed, in this process."""
    return holders(LivePanel)


def close_panels() -> None:
    """Close every panel (and the programs the panels own)."""
    for p in live_panels():
        p.close()


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
        return (f"{TABLE_CSS}<div class='lk-snapshot'><div><b>{html.escape(self.title)}</b> "
                f"(snapshot)</div><div style='font-size:12px'>{self.status}</div>"
                f"{table_html(self.table)}{img}</div>")

    def mimebundle(self) -> dict[str, Any]:
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
        import ipywidgets as w  # lazy: ipywidgets is only needed in a notebook

        for what, value in (("rows", rows), ("max_series", max_series)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ArgumentError(f"{what} must be a positive integer, got {value!r}")
        for what, value in (("interval", interval), ("bin_seconds", bin_seconds), ("history", history)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise ArgumentError(f"{what} must be a positive number of seconds, got {value!r}")
        if history < bin_seconds:
            raise ArgumentError(f"history ({history} s) must be at least bin_seconds ({bin_seconds} s)")
        for what, value in (("name", name), ("title", title)):
            if value is not None and not isinstance(value, str):
                raise ArgumentError(f"{what} must be text (or None for the source's name), got {value!r}")
        feed = feed_for(source, columns=columns, by=by)
        self.name = name or (feed.name if feed is not None else "panel")
        self.title = title or self.name
        self.rows = rows
        self.interval = float(interval)
        self.own = own
        self._columns, self._by = columns, by
        self._bins = Bins(max(2, int(round(history / bin_seconds))), int(bin_seconds * 1e9), max_series)
        self._plot: Plot | None = None
        self._feed = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._render_lock = threading.RLock()
        self._state = "new"
        #: called after every refresh, in the refreshing thread: views shown beside the panel
        #: (a control's own table) stay as current as the panel
        self.after_refresh: list[Callable[[], None]] = []
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
        self._outer = self.widget     # what is closed when the panel is replaced (see shown_in)
        self.key = ("panel", self.name)
        claim(self, self.close)
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
        return None if f is None else f.source

    def start(self) -> None:
        """Refresh every ``interval`` seconds in a background thread."""
        if self._state in ("closed", "replaced"):
            raise ClosedError(f"panel {self.name} is {self._state}; make a new one")
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
        forget(self)
        head = self._status_html.rsplit(" &middot; panel ", 1)[0]
        self._status_html = f"{head} &middot; <b>panel {state}</b>"
        self._status.value = self._status_html
        self._update_buttons()
        if state == "replaced":      # its cell was re-run: the output that showed it is gone
            _close_widgets(self._outer)
            with self._render_lock:
                self._plot = None       # the figure goes with the panel (a later refresh draws a new one)

    def shown_in(self, box) -> None:
        """``box`` shows this panel's widget among others (a control's Dropdown
        and buttons): when the panel is replaced, ``box`` is closed with it."""
        self._outer = box

    #: the old name, for one release (labkit._renamed)
    give_back = renamed_method("give_back", "close")

    def set_source(self, source, *, columns: Iterable[str] | None = None, by=None) -> None:
        """Show another stream or attachment (the old one is stopped if owned)."""
        if self._state in ("closed", "replaced"):
            raise ClosedError(f"panel {self.name} is {self._state}; make a new one")
        was_running = self.running
        self._stop_thread()
        old = self._feed
        if old is not None:
            old.unbind()
            if self.own and old.source is not source:
                old.close()
        self._bins.reset()
        with self._render_lock:
            self._plot = None
            self._last_plot_key = None
        self._state = "stopped"
        self._feed = None
        feed = feed_for(source, columns=columns if columns is not None else self._columns,
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
                page = TABLE_CSS + table_html(df)
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
                        self._plot = Plot(feed.ylabel)
                    x, series = self._bins.series(now_bin)
                    self._png = self._plot.render(x, series)
                    self._image.value = self._png
                    self._last_plot_key = key
                    self._plotted_at = time.monotonic()
                self.refreshes += 1
                for fn in list(self.after_refresh):
                    fn()
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
        snap.show()
        return snap

    # -------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit.LivePanel {self.name}: {self._state}, {self.refreshes} refreshes>"


def _close_widgets(widget) -> None:
    """Close ``widget``, every widget inside it and their layouts and styles
    (ipywidgets keeps each one, and whatever its callbacks hold, until it is closed)."""
    for part in (*getattr(widget, "children", ()), getattr(widget, "layout", None), getattr(widget, "style", None)):
        if part is not None:
            _close_widgets(part)
    widget.close()


def live(source, *, name: str | None = None, **kw) -> LivePanel:
    """A live panel of an EventStream (newest events, events per second) or an
    XdpAttachment (exact counters, packets per second by protocol and action).
    See :class:`LivePanel` for the options."""
    return LivePanel(source, name=name, **kw)
