"""The live panel's plot: one matplotlib figure, redrawn to PNG in place.

Every PNG is drawn in one thread ("labkit-plot"), whichever panel asks:
matplotlib keeps its font files open per thread that draws text, so drawing in
each panel's own refresh thread would leave open files behind for every thread
that ever drew (and matplotlib is not made to draw in several threads at once).
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

__all__ = ["Plot"]

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]


_drawer: ThreadPoolExecutor | None = None
_drawer_lock = threading.Lock()


def _in_drawing_thread(fn: Callable[[], bytes]) -> bytes:
    global _drawer
    with _drawer_lock:
        if _drawer is None:
            _drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-plot")
    try:
        future = _drawer.submit(fn)
    except RuntimeError:        # the interpreter is exiting (a panel's last refresh): draw here
        return fn()
    return future.result()


class Plot:
    """One matplotlib figure, reused: lines are updated, never re-created per refresh."""

    def __init__(self, ylabel: str, figsize=(6.0, 2.4), dpi=80):
        # lazy: matplotlib is only needed once a panel draws its first plot
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
        """Draw ``series`` (label -> y) against ``x``; returns the PNG."""
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
            return _in_drawing_thread(self._png)

    def _png(self) -> bytes:
        buf = io.BytesIO()
        self.canvas.print_png(buf)
        return buf.getvalue()
