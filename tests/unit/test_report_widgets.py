"""Widgets in a report are static snapshots of their saved state (pure: a
notebook made here, rendered and exported, no kernel)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import nbformat

from labkit.commands.report.export import export_html
from labkit.commands.report.offline import external_references
from labkit.commands.report.widgets import WIDGET_STATE, WIDGET_VIEW, snapshot_widgets

HERE = Path(__file__).resolve().parent


def _view(model_id: str) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": f"Widget({model_id})",
                     WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": model_id}}}


def _model(name: str, module: str = "@jupyter-widgets/controls", buffers=None, **state) -> dict:
    m = {"model_name": name, "model_module": module, "model_module_version": "2.0.0",
         "state": {"_model_name": name, **state}}
    if buffers:
        m["buffers"] = buffers
    return m


def test_widget_views_become_static_snapshots_of_their_state():
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    state = {
        "hidden-layout": _model("LayoutModel", "@jupyter-widgets/base", display="none"),
        "panel": _model("VBoxModel", children=["IPY_MODEL_dd", "IPY_MODEL_lbl", "IPY_MODEL_btn", "IPY_MODEL_out",
                                                "IPY_MODEL_img", "IPY_MODEL_gone", "IPY_MODEL_hidden", "IPY_MODEL_odd"]),
        "dd": _model("DropdownModel", _options_labels=["eth0", "veth1"], index=1, description="iface"),
        "lbl": _model("LabelModel", value="dropped: 17 <not html>"),
        "btn": _model("ButtonModel", description="Start"),
        "out": _model("OutputModel", "@jupyter-widgets/output", outputs=[
            {"output_type": "stream", "name": "stdout", "text": "inside the output widget\n"},
            {"output_type": "display_data", "metadata": {},
             "data": {"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "t"}},
            {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=\n"}},
        ]),
        "img": _model("ImageModel", format="png", width="50",
                      buffers=[{"path": ["value"], "encoding": "base64", "data": base64.b64encode(png).decode()}]),
        "hidden": _model("LabelModel", value="never shown", layout="IPY_MODEL_hidden-layout"),
        "odd": _model("FancyModel", "fancy-widgets", value=3),
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("panel", outputs=[
        nbformat.from_dict(_view("panel")), nbformat.from_dict(_view("missing"))])])
    nb.metadata["widgets"] = {WIDGET_STATE: {"version_major": 2, "version_minor": 0, "state": state}}
    snap = snapshot_widgets(nb)
    assert "widgets" not in nb.metadata
    outs = nb.cells[0].outputs
    assert all(WIDGET_VIEW not in o.data for o in outs)
    html = outs[0].data["text/html"]
    assert outs[0].data["text/plain"] == "Widget(panel)"            # the fallback stays
    assert '<option selected>veth1</option>' in html and "<select disabled>" in html
    assert "dropped: 17 &lt;not html&gt;" in html
    assert "<button disabled" in html and "Start</button>" in html
    assert "inside the output widget" in html and "<table><tr><td>1</td></tr></table>" in html
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}" width="50"' in html
    assert "never shown" not in html
    assert "FancyModel" in html and "no static rendering" in html and snap.unknown == ["FancyModel"]
    assert "[widget not in the saved state]" in html
    assert "text/html" not in outs[1].data and outs[1].data["text/plain"] == "Widget(missing)"

    body, _ = export_html(copy.deepcopy(nb), name="w", path=HERE)
    assert external_references(body) == []
    assert "<script" not in body.lower()
