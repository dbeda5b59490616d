"""Showing labkit objects in a notebook: once per cell, with a plain-text fallback."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["ShownOnce", "TABLE_CSS", "ipython", "table_html", "widget_bundle"]

#: the style of every table a view shows (put it once before the tables)
TABLE_CSS = ("<style>.lk-table table{border-collapse:collapse;font-size:12px}"
             ".lk-table th,.lk-table td{padding:1px 6px;text-align:right;white-space:nowrap}"
             ".lk-table th{border-bottom:1px solid #999}</style>")


def table_html(df: pd.DataFrame) -> str:
    """``df`` as a compact HTML table (styled by :data:`TABLE_CSS`), or a note when empty."""
    if df.empty:
        return "<div class='lk-table'><i>no events yet</i></div>"
    return "<div class='lk-table'>" + df.to_html(index=False, border=0) + "</div>"


def widget_bundle(obj, **kw) -> dict:
    """Display ``obj.widget``, with ``repr(obj)`` as the plain-text fallback."""
    bundle = obj.widget._repr_mimebundle_(**kw)
    if isinstance(bundle, tuple):
        bundle = bundle[0]
    bundle = dict(bundle or {})
    bundle["text/plain"] = repr(obj)
    return bundle


class ShownOnce:
    """Something that shows itself when made (``check()``, ``snapshot()``)
    and is also returned. It is shown at most once per cell, so that being
    the cell's last expression too does not show it twice."""

    _shown_in: object = None

    def mimebundle(self) -> dict[str, Any]:
        """How it looks: a dict of mime type to content (HTML, plain text, ...)."""
        raise NotImplementedError

    def show(self) -> None:
        """Show it now (in a notebook: as output of the running cell; elsewhere: printed)."""
        ip = ipython()
        if ip is None:
            print(self.mimebundle().get("text/plain", repr(self)))
            return
        from IPython.display import publish_display_data  # lazy: IPython only exists in a notebook

        publish_display_data(self.mimebundle())
        self._shown_in = ip.execution_count

    def _ipython_display_(self) -> None:
        ip = ipython()
        if ip is not None and self._shown_in == ip.execution_count:
            return
        from IPython.display import publish_display_data  # lazy: IPython only exists in a notebook

        publish_display_data(self.mimebundle())
        if ip is not None:
            self._shown_in = ip.execution_count


def ipython():
    """The running IPython shell (a notebook kernel), or None."""
    try:
        from IPython import get_ipython  # lazy: IPython only exists in a notebook
    except ImportError:  # pragma: no cover
        return None
    ip = get_ipython()
    return ip if ip is not None and hasattr(ip, "execution_count") else None
