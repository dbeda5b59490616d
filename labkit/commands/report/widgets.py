"""Widgets in a report are static snapshots: :class:`WidgetSnapshot` renders the
widget models a notebook's saved widget state holds as plain HTML (a Dropdown
becomes a disabled ``<select>`` with its choice, an Output widget its captured
outputs, an Image its picture as a data URI, ...), and :func:`snapshot_widgets`
puts that HTML in place of every widget view, so nbconvert emits no widget
JavaScript.
"""

from __future__ import annotations

import base64
import html as _html
from typing import Any

__all__ = ["WIDGET_STATE", "WIDGET_VIEW", "WidgetSnapshot", "snapshot_widgets"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

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
        from nbconvert.filters.ansi import ansi2html  # lazy: nbconvert is heavy; only rendering needs it

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

