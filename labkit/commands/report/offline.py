"""The offline check of a report: every reference in the HTML that a browser
would load (script, stylesheet, image, frame, CSS ``url()``/``@import``, ...)
and that is not a ``data:`` URI or a ``#fragment``."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["external_references"]

_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]*)\1\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'");\s]+)""", re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_JS_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[/:'"]|\bimport\s*\(""")
# attributes that make a browser fetch something, per tag ("*": any tag)
_LOADING_ATTRS = {
    "script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
    "frame": ("src",), "embed": ("src",), "object": ("data",), "source": ("src", "srcset"),
    "video": ("src", "poster"), "audio": ("src",), "track": ("src",), "input": ("src",),
    "image": ("href", "xlink:href"), "use": ("href", "xlink:href"), "feimage": ("href", "xlink:href"),
    "base": ("href",), "body": ("background",), "table": ("background",), "td": ("background",),
}


def _is_local(url: str) -> bool:
    u = url.strip()
    return (not u) or u.startswith("#") or u.lower().startswith(("data:", "about:blank"))


class _RefFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self._in: str | None = None

    def _check(self, what: str, url: str) -> None:
        # srcset: "url [descriptor], url [descriptor]" (a data: URI has a comma but no space after it)
        for part in (re.split(r",\s+", url.strip()) if what.endswith("srcset") else [url]):
            u = part.strip().split()[0] if what.endswith("srcset") and part.strip() else part.strip()
            if not _is_local(u):
                self.refs.append(f"{what}={u[:200]}")

    def _css(self, where: str, css: str) -> None:
        css = _CSS_COMMENT.sub("", css)
        for m in _CSS_URL.finditer(css):
            if not _is_local(m.group(2)):
                self.refs.append(f"{where} url({m.group(2)[:200]})")
        for m in _CSS_IMPORT.finditer(css):
            if not _is_local(m.group(1)):
                self.refs.append(f"{where} @import {m.group(1)[:200]}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        for name, value in attrs:
            if value is None:
                continue
            name = name.lower()
            if name in _LOADING_ATTRS.get(tag, ()):
                self._check(f"<{tag} {name}", value)
            elif name == "style":
                self._css(f"<{tag} style>", value)
            elif tag == "meta" and name == "content" and "url=" in value.lower():
                self._check("<meta refresh", value.lower().split("url=", 1)[1])
        if tag in ("style", "script"):
            self._in = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in = None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self._css("<style>", data)
        elif self._in == "script":
            for m in _JS_URL.finditer(data):
                self.refs.append(f"<script> code loads {m.group(0)[:80]!r}")


def external_references(html: str) -> list[str]:
    """Everything in ``html`` that a browser would fetch from outside the file
    (anything that is not a data: URI or a #fragment). Plain links (<a href>)
    are not fetched and are allowed."""
    finder = _RefFinder()
    finder.feed(html)
    finder.close()
    return finder.refs
