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
import sys
from pathlib import Path

from labkit.commands.lessons import is_kept_copy
from labkit.commands.report.export import export_html
from labkit.commands.report.offline import external_references
from labkit.commands.report.runner import DEFAULT_KERNEL, DEFAULT_TIMEOUT, Result, give_back, reap_kernel, run_notebook
from labkit.commands.report.widgets import WIDGET_STATE, WIDGET_VIEW, WidgetSnapshot, snapshot_widgets

__all__ = ["DEFAULT_KERNEL", "DEFAULT_TIMEOUT", "Result", "WIDGET_STATE", "WIDGET_VIEW", "WidgetSnapshot",
           "export_html", "external_references", "give_back", "main", "reap_kernel", "run_notebook", "snapshot_widgets"]

REPO = Path(__file__).resolve().parents[3]  # <repo>/labkit/commands/report/__init__.py


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
            pref = sorted(p for p in nb_dir.glob(f"{a}*.ipynb") if not is_kept_copy(p)) if nb_dir.is_dir() else []
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
        # every notebook but a student's kept copies (labkit lessons reset keeps them beside the lesson)
        paths = sorted(p for p in a.nb_dir.glob("*.ipynb") if not is_kept_copy(p)) if a.nb_dir.is_dir() else []
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

