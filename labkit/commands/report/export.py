"""An executed notebook as one self-contained HTML file: nbconvert's lab template
without any script from the internet, widgets as static snapshots, images
embedded, and the banners a report carries at its top."""

from __future__ import annotations

import datetime as _dt
import html as _html
from pathlib import Path
from typing import Any

from labkit.commands.report.widgets import WidgetSnapshot, snapshot_widgets

__all__ = ["export_html", "failed_banner", "info_banner"]

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


def export_html(nb: Any, *, name: str, path: str | Path, banner: str = "") -> tuple[str, WidgetSnapshot]:
    """Self-contained HTML for an executed notebook (``nb`` is modified: its
    widget views become static snapshots)."""
    from jinja2 import DictLoader  # lazy (with nbconvert): heavy, only an export needs them
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


def info_banner(notebook: str, kernel_name: str, seconds: float) -> str:
    """The line at the top of every report: which notebook, when, on which kernel, how long."""
    return (f'<div class="lk-report-banner lk-report-info">{_html.escape(notebook)}: executed by '
            f"<code>labkit report</code> on {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} "
            f"(kernel <code>{_html.escape(kernel_name)}</code>, {seconds:.1f} s). "
            "Widgets are static snapshots of their final state.</div>")


def failed_banner(error: str) -> str:
    """The banner at the top of a report that failed, saying why."""
    return (f'<div class="lk-report-banner lk-report-failed" id="labkit-report-failed"><b>This report is '
            f"incomplete: labkit report failed.</b> {_html.escape(error)}</div>")
