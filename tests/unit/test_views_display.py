"""labkit.views.display and the panel snapshot: static HTML that any report keeps."""

from __future__ import annotations

import base64

import pandas as pd

from labkit.views.display import TABLE_CSS, table_html
from labkit.views.panel import PanelSnapshot

PNG = b"\x89PNG\r\n\x1a\nfake"


def test_table_html():
    assert "no events yet" in table_html(pd.DataFrame())
    page = table_html(pd.DataFrame({"pid": [1, 2], "comm": ["a<b", "c"]}))
    assert page.startswith("<div class='lk-table'><table") and "a&lt;b" in page and "<th>pid</th>" in page
    assert ".lk-table" in TABLE_CSS


def test_snapshot_is_static_html_with_the_png_inline():
    snap = PanelSnapshot("clone <1>", "via tracepoint", pd.DataFrame({"pid": [7]}), PNG)
    page = snap._repr_html_()
    assert page.startswith(TABLE_CSS) and "clone &lt;1&gt;" in page and "via tracepoint" in page
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page and "<td>7</td>" in page
    assert "<img" not in PanelSnapshot("t", "", pd.DataFrame(), None)._repr_html_()
    assert repr(snap).startswith("<labkit.PanelSnapshot clone <1>: 1 rows>")
