"""``labkit report``: execute lessons headless and write self-contained HTML.

    labkit report [--notebooks DIR] [--out DIR] [--timeout S] [--kernel NAME] [NOTEBOOK ...]

Every notebook (default: notebooks/*.ipynb, sorted) is executed with nbclient on
the ``labkit`` kernel, in the notebook's own directory, with a per-cell timeout,
and exported to ``<out>/<lesson>.html`` (default out: reports/ at the repo root).

The reports work **offline**:

* plots are inline PNG data URIs (and markdown images are embedded too);
* tables are HTML;
* widgets are a **static snapshot of their state**: nbclient records the state
  of every widget model the kernel created; each widget view in an output is
  replaced by plain HTML rendered from that state (a Dropdown becomes a disabled
  ``<select>`` with its current choice, a Label/HTML its value, a Button its
  description, an Output widget its captured outputs, an Image its picture as a
  data URI, boxes their children...), and the widget state and nbconvert's widget
  loader (which fetches the widget manager from a CDN) are left out;
* the template drops every ``<script src>`` nbconvert would add (require.js,
  MathJax, mermaid, the widget manager): nothing is fetched from the internet.

The produced HTML is checked before it is written: any reference that a browser
would load (script, stylesheet, image, frame, CSS ``url()``/``@import``...) and
that is not a ``data:`` URI fails the report for that notebook, loudly.

Cells tagged ``raises-exception`` may fail; any other error fails the report for
that notebook (its HTML is still written, with a banner saying where it
stopped), the remaining notebooks still run, and the command exits non-zero.

Kernel state is given back: the kernel is shut down after each notebook
(gracefully, so labkit's exit handlers detach every program and remove the
notebook's sandboxes); anything a killed kernel left behind (its sandboxes, its
netlink-attached XDP programs) is removed and reported.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html as _html
import os
import re
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
DEFAULT_TIMEOUT = 180
DEFAULT_KERNEL = "labkit"
REPO = Path(__file__).resolve().parents[3]  # <repo>/labkit/commands/report/__init__.py

# ------------------------------------------------------------------ template
# The lab template without any script from the internet: require.js, MathJax,
# mermaid and the widget manager blocks are emptied.
_TEMPLATE_NAME = "labkit_report.html.j2"
_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">
""" + r"""
.lk-report-banner { margin: 8px 16px; padding: 8px 12px; border-radius: 4px;
  font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; }
.lk-report-info { background: #eef3f8; color: #333; }
.lk-report-failed { background: #fde2e1; color: #7a0b07; border: 2px solid #d1453b; font-size: 15px; }
.lk-widget { font-family: var(--jp-ui-font-family, sans-serif); font-size: 13px; margin: 2px 0; }
.lk-widget-box { display: flex; gap: 6px; }
.lk-widget-vbox { flex-direction: column; }
.lk-widget-hbox { flex-direction: row; flex-wrap: wrap; align-items: center; }
.lk-widget-desc { margin-right: 6px; font-weight: 600; }
.lk-widget button, .lk-widget select, .lk-widget input, .lk-widget textarea { font: inherit; }
.lk-widget-output { border-left: 3px solid #ddd; padding-left: 6px; }
.lk-widget-output pre { margin: 2px 0; white-space: pre-wrap; }
.lk-widget-tabtitle { font-weight: 600; border-bottom: 1px solid #ccc; margin-top: 4px; }
.lk-widget-unknown { color: #666; font-style: italic; }
.lk-widget-note { color: #888; font-size: 11px; }
</style>
{%- endblock html_head_css -%}
"""


# ------------------------------------------------------------- static widgets
# Font Awesome names buttons use, as text (the report loads no icon font)
_ICONS = {"refresh": "\u21bb", "sync": "\u21bb", "redo": "\u21bb", "rotate-right": "\u21bb",
          "play": "\u25b6", "stop": "\u25a0", "pause": "\u275a\u275a", "check": "\u2713",
          "times": "\u2715", "close": "\u2715", "trash": "\u2715", "plus": "+", "minus": "\u2212",
          "download": "\u2193", "upload": "\u2191", "search": "\u2315"}


def _esc(x: Any) -> str:
    return _html.escape("" if x is None else str(x), quote=True)


class WidgetSnapshot:
    """Renders widget models from a notebook's saved widget state as static HTML."""

    BOXES = {"VBoxModel": "vbox", "BoxModel": "vbox", "GridBoxModel": "vbox", "HBoxModel": "hbox"}
    CONTAINERS = {"TabModel", "AccordionModel", "StackModel"}
    SELECTS = {"DropdownModel", "SelectModel", "ToggleButtonsModel", "RadioButtonsModel",
               "SelectionSliderModel", "SelectMultipleModel", "SelectionRangeSliderModel"}
    TEXTS = {"TextModel", "PasswordModel", "ComboboxModel", "IntTextModel", "FloatTextModel",
             "BoundedIntTextModel", "BoundedFloatTextModel", "DatePickerModel", "ColorPickerModel",
             "TimePickerModel", "DatetimeModel", "NaiveDatetimeModel", "TagsInputModel"}
    SLIDERS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "IntRangeSliderModel",
               "FloatRangeSliderModel", "PlayModel"}
    PROGRESS = {"IntProgressModel", "FloatProgressModel"}

    def __init__(self, state: dict[str, Any]):
        self.models: dict[str, dict[str, Any]] = state or {}
        self.rendered = 0
        self.unknown: list[str] = []

    @classmethod
    def from_notebook(cls, nb: Any) -> "WidgetSnapshot":
        meta = (nb.get("metadata") or {}).get("widgets") or {}
        return cls((meta.get(WIDGET_STATE) or {}).get("state") or {})

    # -- helpers
    def _model(self, ref: Any) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        mid = ref[len("IPY_MODEL_"):] if isinstance(ref, str) and ref.startswith("IPY_MODEL_") else ref
        entry = self.models.get(mid) if isinstance(mid, str) else None
        if not entry:
            return None
        return mid, entry, entry.get("state") or {}

    def _buffer(self, entry: dict[str, Any], key: str) -> bytes | None:
        for b in entry.get("buffers") or []:
            if list(b.get("path") or []) == [key] and b.get("encoding", "base64") == "base64":
                try:
                    return base64.b64decode(b.get("data") or "")
                except ValueError:
                    return None
        return None

    def _hidden(self, st: dict[str, Any]) -> bool:
        lay = self._model(st.get("layout"))
        if not lay:
            return False
        ls = lay[2]
        return ls.get("display") == "none" or ls.get("visibility") == "hidden"

    @staticmethod
    def _desc(st: dict[str, Any]) -> str:
        d = st.get("description")
        if not d:
            return ""
        body = str(d) if st.get("description_allow_html") else _esc(d)
        return f'<span class="lk-widget-desc">{body}</span>'

    # -- rendering
    def render_view(self, model_id: str) -> str | None:
        """HTML for a widget view, or None if its model is not in the saved state."""
        if self._model(model_id) is None:
            return None
        return self.render(model_id, depth=0, seen=set())

    def render(self, ref: Any, depth: int, seen: set[str]) -> str:
        found = self._model(ref)
        if found is None:
            return '<span class="lk-widget-unknown">[widget not in the saved state]</span>'
        mid, entry, st = found
        if mid in seen or depth > 40:
            return '<span class="lk-widget-unknown">[widget cycle]</span>'
        if self._hidden(st):
            return ""
        seen = seen | {mid}
        self.rendered += 1
        name = entry.get("model_name") or st.get("_model_name") or "?"
        kind = name[:-5].lower() if name.endswith("Model") else name.lower()
        cls = f"lk-widget widget-{kind}"
        desc = self._desc(st)

        def children() -> list[str]:
            return [self.render(c, depth + 1, seen) for c in st.get("children") or []]

        if name in self.BOXES:
            return (f'<div class="{cls} lk-widget-box lk-widget-{self.BOXES[name]}" data-model="{_esc(name)}">'
                    + "".join(children()) + "</div>")
        if name in self.CONTAINERS:
            titles = list(st.get("titles") or st.get("_titles") or [])
            sel = st.get("selected_index")
            parts = []
            for i, child in enumerate(children()):
                title = titles[i] if i < len(titles) and titles[i] else f"{kind} {i + 1}"
                mark = " (selected)" if sel == i else ""
                parts.append(f'<div class="lk-widget-tabtitle">{_esc(title)}{mark}</div>{child}')
            return f'<div class="{cls} lk-widget-box lk-widget-vbox">' + "".join(parts) + "</div>"
        if name == "LabelModel":
            return f'<div class="{cls}">{desc}<span class="widget-label-value">{_esc(st.get("value"))}</span></div>'
        if name in ("HTMLModel", "HTMLMathModel"):
            return f'<div class="{cls}">{desc}<div class="widget-html-content">{st.get("value") or ""}</div></div>'
        if name == "ButtonModel":
            icon = _ICONS.get(str(st.get("icon") or ""), "")
            label = st.get("description") or (icon or st.get("icon") or "")
            text = f"{icon} {_esc(label)}" if icon and st.get("description") else _esc(label)
            return (f'<div class="{cls}"><button disabled title="{_esc(st.get("tooltip"))}">'
                    f'{text}</button></div>')
        if name in ("CheckboxModel", "ToggleButtonModel", "ValidModel"):
            box = "checked " if st.get("value") else ""
            return (f'<div class="{cls}"><label><input type="checkbox" disabled {box}/> '
                    f'{_esc(st.get("description"))}</label></div>')
        if name in self.SELECTS:
            labels = [str(x) for x in st.get("_options_labels") or []]
            idx = st.get("index")
            chosen = set(idx) if isinstance(idx, (list, tuple)) else {idx}
            multiple = " multiple" if name in ("SelectMultipleModel", "SelectionRangeSliderModel") else ""
            opts = "".join(f'<option{" selected" if i in chosen else ""}>{_esc(lbl)}</option>'
                           for i, lbl in enumerate(labels))
            value = ", ".join(labels[i] for i in sorted(x for x in chosen if isinstance(x, int))
                              if 0 <= i < len(labels))
            return (f'<div class="{cls}">{desc}<select disabled{multiple}>{opts}</select>'
                    f' <span class="lk-widget-note">{_esc(value)}</span></div>')
        if name == "TextareaModel":
            return f'<div class="{cls}">{desc}<textarea disabled rows="{int(st.get("rows") or 3)}">{_esc(st.get("value"))}</textarea></div>'
        if name in self.TEXTS:
            v = st.get("value")
            if name == "PasswordModel":
                v = "\u2022" * len(str(v or ""))
            if isinstance(v, (list, tuple)):
                v = ", ".join(map(str, v))
            return f'<div class="{cls}">{desc}<input type="text" disabled value="{_esc(v)}"/></div>'
        if name in self.SLIDERS:
            v = st.get("value")
            lo, hi = st.get("min"), st.get("max")
            shown = " \u2013 ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
            rng = ""
            if isinstance(v, (int, float)) and isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
                rng = f'<input type="range" disabled min="{lo}" max="{hi}" step="any" value="{v}"/> '
            return f'<div class="{cls}">{desc}{rng}<span class="widget-readout">{_esc(shown)}</span></div>'
        if name in self.PROGRESS:
            v, lo, hi = st.get("value") or 0, st.get("min") or 0, st.get("max") or 100
            return (f'<div class="{cls}">{desc}<progress value="{_esc(v - lo)}" max="{_esc(hi - lo)}"></progress>'
                    f' <span class="widget-readout">{_esc(v)} / {_esc(hi)}</span></div>')
        if name == "ImageModel":
            return f'<div class="{cls}">{self._image(entry, st)}</div>'
        if name == "OutputModel":
            return f'<div class="{cls} lk-widget-output">' + self.render_outputs(st.get("outputs") or [], depth, seen) + "</div>"
        # custom widgets: a picture if the model keeps one, else a note (plus the description)
        url = st.get("_data_url")
        if isinstance(url, str) and url.startswith("data:image/"):
            return f'<div class="{cls}"><img src="{_esc(url)}" alt="{_esc(name)}"/></div>'
        self.unknown.append(name)
        value = f": {_esc(st.get('value'))}" if "value" in st and not isinstance(st.get("value"), (dict, list)) else ""
        return (f'<div class="{cls} lk-widget-unknown">{desc}[{_esc(entry.get("model_module"))} {_esc(name)}'
                f"{value}; no static rendering]</div>")

    def _image(self, entry: dict[str, Any], st: dict[str, Any]) -> str:
        data = self._buffer(entry, "value")
        fmt = str(st.get("format") or "png")
        size = "".join(f' {k}="{_esc(st[k])}"' for k in ("width", "height") if st.get(k))
        if data is None:
            return '<span class="lk-widget-unknown">[image: no data in the saved state]</span>'
        if fmt == "url":
            # the value is a URL: show it, never load it (the report works offline)
            return f'<span class="lk-widget-unknown">[image at {_esc(data.decode("utf-8", "replace"))}]</span>'
        mime = "image/svg+xml" if fmt == "svg" else (fmt if "/" in fmt else f"image/{fmt}")
        b64 = base64.b64encode(data).decode("ascii")
        return f'<img src="data:{_esc(mime)};base64,{b64}"{size} alt="image widget"/>'

    def render_outputs(self, outputs: list[dict[str, Any]], depth: int, seen: set[str]) -> str:
        from nbconvert.filters.ansi import ansi2html

        parts = []
        for o in outputs:
            t = o.get("output_type")
            if t == "stream":
                text = o.get("text") or ""
                text = "".join(text) if isinstance(text, list) else text
                parts.append(f'<pre class="lk-stream-{_esc(o.get("name"))}">{ansi2html(text)}</pre>')
            elif t == "error":
                tb = "\n".join(o.get("traceback") or [f"{o.get('ename')}: {o.get('evalue')}"])
                parts.append(f'<pre class="lk-error">{ansi2html(tb)}</pre>')
            elif t in ("display_data", "execute_result"):
                parts.append(self._mime(o.get("data") or {}, depth, seen))
        return "".join(parts)

    def _mime(self, data: dict[str, Any], depth: int, seen: set[str]) -> str:
        def text(key: str) -> str:
            v = data[key]
            return "".join(v) if isinstance(v, list) else str(v)

        if WIDGET_VIEW in data and isinstance(data[WIDGET_VIEW], dict):
            mid = data[WIDGET_VIEW].get("model_id")
            if self._model(mid) is not None:
                return self.render(mid, depth + 1, seen)
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if mime in data:
                return f'<img src="data:{mime};base64,{text(mime).strip()}"/>'
        if "image/svg+xml" in data:
            return text("image/svg+xml")
        if "text/html" in data:
            return text("text/html")
        if "text/markdown" in data:
            return f"<pre>{_esc(text('text/markdown'))}</pre>"
        if "text/plain" in data:
            return f"<pre>{_esc(text('text/plain'))}</pre>"
        return ""


def snapshot_widgets(nb: Any) -> WidgetSnapshot:
    """Replace every widget view in ``nb``'s outputs by a static HTML rendering of
    its saved state (kept: the text/plain fallback), and drop the widget state
    from the metadata, so that nbconvert emits no widget JavaScript."""
    snap = WidgetSnapshot.from_notebook(nb)
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data = o.get("data")
            if not data or WIDGET_VIEW not in data:
                continue
            view = data.pop(WIDGET_VIEW)
            mid = view.get("model_id") if isinstance(view, dict) else None
            rendered = snap.render_view(mid) if mid else None
            if rendered is not None:
                data["text/html"] = (f'<div class="lk-widget-snapshot" data-model-id="{_esc(mid)}" '
                                     f'title="static snapshot of the widget state at the end of the run">'
                                     f"{rendered}</div>")
            elif "text/plain" not in data:
                data["text/plain"] = "[widget: its state was not saved]"
    meta = nb.get("metadata") or {}
    meta.pop("widgets", None)
    return snap


# ------------------------------------------------------- external references
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


# ------------------------------------------------------------------ export
def export_html(nb: Any, *, name: str, path: str | Path, banner: str = "") -> tuple[str, WidgetSnapshot]:
    """Self-contained HTML for an executed notebook (``nb`` is modified: its
    widget views become static snapshots)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    snap = snapshot_widgets(nb)
    exporter = HTMLExporter(extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                            template_name="lab", template_file=_TEMPLATE_NAME)
    exporter.embed_images = True
    exporter.exclude_anchor_links = True
    resources = {"metadata": {"name": name, "path": str(path)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if banner:
        body = body.replace("<main>", "<main>\n" + banner, 1)
    return body, snap


# -------------------------------------------------------------- execution
@dataclass
class Result:
    """What happened to one notebook."""

    notebook: Path
    html: Path | None = None
    ok: bool = False
    error: str = ""
    seconds: float = 0.0
    kernel_pid: int | None = None
    widgets: int = 0
    gave_back: list[str] = field(default_factory=list)   # what had to be removed after the kernel ended


def _failed_cell(nb: Any) -> tuple[int, dict[str, Any]] | None:
    code_i = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        code_i += 1
        if "raises-exception" in (cell.get("metadata", {}).get("tags") or []):
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                return code_i, o
    return None


def _pid_gone(pid: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        else:
            try:  # a zombie is gone for our purposes
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        return True
            except (OSError, IndexError):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def give_back(kernel_pid: int | None, wait: float = 10.0) -> list[str]:
    """After a kernel ended: remove what it still owns (sandboxes, netlink XDP
    attaches recorded with its pid). Normally labkit's exit handlers have done
    it already and this returns []; after a killed kernel it lists what it removed."""
    if not kernel_pid:
        return []
    if not _pid_gone(kernel_pid, wait):
        return [f"kernel process {kernel_pid} is still running after shutdown; left alone"]
    done: list[str] = []
    try:
        from labkit.net import sandbox as _sandbox
        from labkit.net import xdp as _xdp
    except Exception as e:  # pragma: no cover - labkit itself broken
        return [f"could not check for leftovers: {e}"]
    for rec in _xdp.netlink_records():
        if rec.get("pid") != kernel_pid:
            continue
        where = f"{rec.get('netns') or ''}:{rec.get('iface')}"
        try:
            link = _xdp.interface(rec["iface"], rec.get("netns"))
            mode = rec.get("mode") or "generic"
            if link.get(mode) == rec.get("prog_id"):
                _xdp.netlink_set(link["index"], rec.get("netns"), -1, mode)
                done.append(f"detached XDP program {rec.get('prog_id')} from {where} (netlink, {mode})")
        except Exception as e:  # interface or namespace gone: nothing attached any more
            if "No such" not in str(e) and "not exist" not in str(e):
                done.append(f"XDP record for {where}: {e}")
        try:
            os.unlink(rec["path"])
        except OSError:
            pass
    for r in _sandbox.list_sandboxes():
        if r.owner_pid == kernel_pid:
            try:
                _sandbox.remove_sandbox(r, force=True)
                done.append(f"removed sandbox {r.id} ({r.host_ns}, {r.target_ns})")
            except Exception as e:
                done.append(f"could not remove sandbox {r.id}: {e}")
    return done


def run_notebook(path: Path, out_dir: Path, *, timeout: int = DEFAULT_TIMEOUT,
                 kernel_name: str = DEFAULT_KERNEL, log: Callable[[str], None] = print) -> Result:
    """Execute one notebook and write ``out_dir/<name>.html``; never raises for
    a notebook's own failure (see ``Result.ok`` / ``Result.error``)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path).resolve()
    name = path.stem
    res = Result(notebook=path)
    t0 = time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:
        res.error = f"cannot read {path}: {e}"
        res.seconds = time.monotonic() - t0
        return res

    client = NotebookClient(
        nb, kernel_name=kernel_name, timeout=timeout, startup_timeout=120,
        allow_errors=False, store_widget_state=True, record_timing=True,
        shutdown_kernel="graceful", resources={"metadata": {"path": str(path.parent)}},
    )

    def on_start(**_: Any) -> None:
        prov = getattr(client.km, "provisioner", None)
        pid = getattr(prov, "pid", None) or getattr(getattr(prov, "process", None), "pid", None)
        res.kernel_pid = int(pid) if pid else None

    client.on_notebook_start = on_start
    error = ""
    try:
        client.execute(cwd=str(path.parent))
    except CellTimeoutError as e:
        error = f"a cell did not finish within {timeout} s (--timeout): {str(e).splitlines()[0] if str(e) else ''}"
    except DeadKernelError as e:
        error = f"the kernel died while running: {e}"
    except CellExecutionError as e:
        where = _failed_cell(nb)
        cell = f"code cell {where[0]}" if where else "a cell"
        error = (f"{cell} raised {e.ename}: {e.evalue} (tag the cell 'raises-exception' "
                 "if that error is part of the lesson)")
    except Exception as e:  # kernel missing, cannot start, ...
        error = f"{type(e).__name__}: {e}"
        if "No such kernel" in str(e) or type(e).__name__ == "NoSuchKernel":
            error += f" (the report runs on the '{kernel_name}' kernel: ./lab setup installs it)"
    finally:
        # nbclient shuts the kernel down (graceful: labkit's exit handlers run)
        res.gave_back = give_back(res.kernel_pid)
    res.widgets = 0
    banner_info = (f'<div class="lk-report-banner lk-report-info">{_esc(path.name)}: executed by '
                   f"<code>labkit report</code> on {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
                   f"(kernel <code>{_esc(kernel_name)}</code>, {time.monotonic() - t0:.1f} s). "
                   "Widgets are static snapshots of their final state.</div>")
    try:
        body, snap = export_html(nb, name=name, path=path.parent,
                                 banner=(_failed_banner(error) if error else "") + banner_info)
        res.widgets = snap.rendered
        refs = external_references(body)
        if refs and not error:
            error = ("the HTML would load from outside the file (the report must work offline): "
                     + "; ".join(refs[:5]) + (f" (+{len(refs) - 5} more)" if len(refs) > 5 else ""))
            body, _ = export_html(nb, name=name,
                                  path=path.parent, banner=_failed_banner(error) + banner_info)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.html"
        tmp = target.with_suffix(".html.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, target)
        res.html = target
    except Exception as e:
        error = error or f"export to HTML failed: {type(e).__name__}: {e}"
    res.error = error
    res.ok = not error
    res.seconds = time.monotonic() - t0
    return res


def _failed_banner(error: str) -> str:
    return (f'<div class="lk-report-banner lk-report-failed" id="labkit-report-failed"><b>This report is '
            f"incomplete: labkit report failed.</b> {_esc(error)}</div>")


# --------------------------------------------------------------------- CLI
def _default_dirs() -> tuple[Path, Path]:
    if (REPO / "notebooks").is_dir():
        return REPO / "notebooks", REPO / "reports"
    return Path.cwd() / "notebooks", Path.cwd() / "reports"


def _resolve(args: list[str], nb_dir: Path) -> tuple[list[Path], list[str]]:
    found, missing = [], []
    for a in args:
        p = Path(a)
        cands = [p, nb_dir / a, nb_dir / f"{a}.ipynb"]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:  # a lesson number or prefix: "02", "02-xdp"
            pref = sorted(nb_dir.glob(f"{a}*.ipynb")) if nb_dir.is_dir() else []
            hit = pref[0] if len(pref) == 1 else None
        if hit is None:
            missing.append(a)
        else:
            found.append(hit.resolve())
    return found, missing


def main(argv: list[str] | None = None) -> int:
    nb_default, out_default = _default_dirs()
    p = argparse.ArgumentParser(
        prog="labkit report",
        description="Execute lessons headless (nbclient, the labkit kernel) and write one self-contained "
                    "HTML report per notebook that works offline (inline plots, HTML tables, widgets "
                    "as static snapshots of their state).")
    p.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                   help="notebooks to run: paths, or names/prefixes in --notebooks (default: all, sorted)")
    p.add_argument("--notebooks", dest="nb_dir", metavar="DIR", type=Path, default=nb_default,
                   help=f"directory of the lessons (default: {nb_default})")
    p.add_argument("--out", metavar="DIR", type=Path, default=out_default, help=f"where to write <lesson>.html (default: {out_default})")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="per-cell timeout in seconds (default: %(default)s)")
    p.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel to run on (default: %(default)s)")
    a = p.parse_args(argv)

    if a.notebooks:
        paths, missing = _resolve(a.notebooks, a.nb_dir)
        if missing:
            print(f"labkit report: no such notebook: {', '.join(missing)} (looked in . and {a.nb_dir})", file=sys.stderr)
            return 2
    else:
        paths = sorted(a.nb_dir.glob("*.ipynb")) if a.nb_dir.is_dir() else []
        if not paths:
            print(f"labkit report: no notebooks in {a.nb_dir}", file=sys.stderr)
            return 2
    failed = []
    for path in paths:
        print(f"labkit report: {path.name} ...", flush=True)
        r = run_notebook(path, a.out, timeout=a.timeout, kernel_name=a.kernel)
        for g in r.gave_back:
            print(f"  gave back what the kernel left: {g}", file=sys.stderr)
        if r.ok:
            print(f"  ok ({r.seconds:.1f} s, kernel pid {r.kernel_pid}, {r.widgets} widgets as snapshots) -> {r.html}",
                  flush=True)
        else:
            failed.append(r)
            where = f" (partial report: {r.html})" if r.html else ""
            print(f"  FAILED ({r.seconds:.1f} s): {r.error}{where}", file=sys.stderr, flush=True)
    if failed:
        print(f"labkit report: {len(failed)} of {len(paths)} notebook(s) failed: "
              + ", ".join(r.notebook.name for r in failed), file=sys.stderr)
        return 1
    print(f"labkit report: {len(paths)} report(s) in {a.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
