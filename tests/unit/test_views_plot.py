"""labkit.views.plot: one figure reused, drawn to PNG."""

from __future__ import annotations

import numpy as np

from labkit.views.plot import Plot

PNG = b"\x89PNG\r\n\x1a\n"


def test_render_reuses_lines_and_drops_gone_series():
    plot = Plot("events / s")
    x = np.array([-2.0, -1.0, 0.0])
    png = plot.render(x, {"fork": np.array([1.0, 2.0, 3.0]), "drop icmp": np.zeros(3)})
    assert png[:8] == PNG
    fork = plot.lines["fork"]
    assert plot.lines["drop icmp"].get_linestyle() == "--" and fork.get_linestyle() == "-"
    assert plot.render(x, {"fork": np.array([4.0, 5.0, 6.0])})[:8] == PNG
    assert plot.lines == {"fork": fork}, "the line is updated in place, the gone series removed"
    assert list(fork.get_ydata()) == [4.0, 5.0, 6.0] and len(plot.ax.get_lines()) == 1
    assert plot.ax.get_ylim()[1] >= 6.0
    assert plot.render(x, {})[:8] == PNG and plot.ax.get_legend() is None
