"""A student's feedback: the autograded notebook as labkit's own offline HTML
(``labkit report``'s exporter: widgets as static snapshots of their state,
images embedded, no script at all), under the same paths nbgrader writes
(``feedback/STUDENT/ASSIGNMENT/NAME.html``).

What nbgrader's feedback showed is kept, in a header at the top: the
notebook's score (the gradebook's, less any late penalty), each graded
exercise's points (the gradebook's, so a teacher's manual override shows) with
its checker's verdict and a link to its cell, and any grader's comments. What
a student cannot use is left out: the lessons' navigation cells (tagged
``nav``) and any other link to a notebook (made plain text: the student has
none of those files beside the feedback)."""

from __future__ import annotations

import datetime as _dt
import html as _html
import re
from pathlib import Path
from typing import Any

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from labkit._errors import LabkitError
from labkit.commands.course.cell import GRADE_MIME
from labkit.commands.report.export import export_html
from labkit.commands.report.offline import external_references

__all__ = ["NAV_TAG", "feedback_notebook", "score_header", "unlink_notebooks", "write_feedback"]

NAV_TAG = "nav"                          # the lessons' navigation cells (notebooks/make_nav.py)
_NAV_MARK = "<!--NAVIGATION-->"
_NOTEBOOK_LINK = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(["'])[^"']*?\.ipynb(?:[#?][^"']*)?\1[^>]*>(.*?)</a>""",
                            re.I | re.S)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.I | re.S)
_STYLE = """<style type="text/css">
.lk-feedback { font-size: 14px; }
.lk-feedback h2 { font-size: 17px; margin: 2px 0 6px; }
.lk-feedback ul { margin: 4px 0; padding-left: 20px; }
.lk-feedback .lk-late { color: #a3281f; }
.lk-feedback-comment { white-space: pre-wrap; margin: 2px 0 4px 0; padding-left: 6px; border-left: 3px solid #bbb; }
</style>"""


def _is_nav(cell: Any) -> bool:
    tags = (cell.get("metadata") or {}).get("tags") or []
    src = cell.get("source") or ""
    src = "".join(src) if isinstance(src, list) else src
    return NAV_TAG in tags or (cell.get("cell_type") == "markdown" and src.lstrip().startswith(_NAV_MARK))


def feedback_notebook(nb: Any) -> int:
    """Drop ``nb``'s navigation cells (tagged ``nav``, or a markdown cell opening with
    ``<!--NAVIGATION-->``) in place; returns how many went."""
    keep = [c for c in nb["cells"] if not _is_nav(c)]
    gone = len(nb["cells"]) - len(keep)
    nb["cells"] = keep
    return gone


def unlink_notebooks(html: str) -> str:
    """Every link to a notebook (``href="...ipynb"``, with or without a ``#fragment``) made plain text."""
    return _NOTEBOOK_LINK.sub(lambda m: f'<span class="lk-feedback-unlinked">{m.group(2)}</span>', html)


def _num(x: float, decimals: int) -> str:
    return f"{round(float(x), decimals) + 0.0:g}"


def _verdict(cell: Any) -> dict:
    """The grade cell's own record (GRADE_MIME), or its error, or {}."""
    for o in cell.get("outputs") or []:
        d = (o.get("data") or {}).get(GRADE_MIME)
        if d:
            return dict(d)
    for o in cell.get("outputs") or []:
        if o.get("output_type") == "error":
            return {"status": "error", "message": f"{o.get('ename')}: {o.get('evalue')}"}
    return {}


def _grades(nb: Any, gb: Gradebook | None, name: str, assignment: str, student: str) -> dict:
    """The notebook's score, late penalty, and each graded cell's (label, points, out of, status, anchor),
    with the comments a grader left: from the gradebook, else from the grade cells' own records."""
    rows, comments = [], []
    for cell in nb["cells"]:
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        gid = meta.get("grade_id")
        if not gid:
            continue
        anchor = f"#cell-id={cell['id']}" if cell.get("id") else ""
        if gb is not None and (meta.get("solution") or meta.get("task")):
            try:
                text = gb.find_comment(gid, name, assignment, student).comment
            except MissingEntry:
                text = None
            if text:
                comments.append((gid, text, anchor))
        if not (meta.get("grade") or meta.get("task")):
            continue
        v = _verdict(cell)
        label = v.get("exercise") or (gid.rsplit("-", 2)[-2] if gid.count("-") >= 2 else gid)
        score, points = v.get("earned"), v.get("points", meta.get("points"))
        if gb is not None:
            try:
                g = gb.find_grade(gid, name, assignment, student)
                score, points = g.score, g.max_score
            except MissingEntry:
                pass
        rows.append({"label": label, "score": score or 0.0, "points": points or 0.0,
                     "status": v.get("status", "not run"), "anchor": anchor})
    total, out_of, late = sum(r["score"] for r in rows), sum(r["points"] for r in rows), 0.0
    if gb is not None:
        try:
            s = gb.find_submission_notebook(name, assignment, student)
            late = float(s.late_submission_penalty or 0.0)
            total, out_of = float(s.score) - late, float(s.max_score)
        except MissingEntry:
            pass
    return {"score": total, "max_score": out_of, "late_penalty": late, "cells": rows, "comments": comments}


def score_header(name: str, assignment: str, student: str, grades: dict, *, decimals: int = 2) -> str:
    """The feedback's header: the notebook's points, each exercise's, the late penalty, the comments."""
    e = _html.escape
    items = []
    for r in grades["cells"]:
        label = f'<a href="{e(r["anchor"])}">{e(r["label"])}</a>' if r["anchor"] else e(r["label"])
        items.append(f"<li>{label}: {_num(r['score'], decimals)} of {_num(r['points'], decimals)} points "
                     f"({e(str(r['status']))})</li>")
    if grades["late_penalty"] > 0:
        items.append(f'<li class="lk-late">late submission penalty: -{_num(grades["late_penalty"], decimals)} '
                     "points</li>")
    comments = "".join(f'<div>comment on <a href="{e(a)}">{e(gid)}</a>:</div>'
                       f'<div class="lk-feedback-comment">{e(text)}</div>' if a else
                       f'<div>comment on {e(gid)}:</div><div class="lk-feedback-comment">{e(text)}</div>'
                       for gid, text, a in grades["comments"])
    return (f'{_STYLE}<div class="lk-report-banner lk-report-info lk-feedback" id="labkit-feedback">'
            f"<h2>{e(name)}: {_num(grades['score'], decimals)} of {_num(grades['max_score'], decimals)} points</h2>"
            f"<div>{e(assignment)}, {e(student)}: graded by <code>labkit course autograde</code> on "
            f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}. Each exercise's feedback is below its test cell; "
            f"widgets and live panels are static snapshots of their final state.</div>"
            f"<ul>{''.join(items)}</ul>{comments}</div>")


def write_feedback(root: Path, assignment: str, student: str, *, decimals: int = 2) -> list[Path]:
    """``feedback/STUDENT/ASSIGNMENT/NAME.html`` for each autograded notebook of the submission, offline
    (checked: nothing a browser would fetch, no script). Returns the files written."""
    root = Path(root)
    src_dir = root / "autograded" / student / assignment
    out_dir = root / "feedback" / student / assignment
    db = root / "gradebook.db"
    written = []
    gb = Gradebook(f"sqlite:///{db}") if db.is_file() else None
    try:
        for path in sorted(src_dir.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            feedback_notebook(nb)
            grades = _grades(nb, gb, path.stem, assignment, student)
            header = score_header(path.stem, assignment, student, grades, decimals=decimals)
            html, _ = export_html(nb, name=path.stem, path=src_dir, banner=header)
            html = _SCRIPT.sub("", unlink_notebooks(html))    # a script an output carried: nothing to run it offline
            refs = external_references(html)
            if refs:
                raise LabkitError(f"the feedback for {path} would load from outside the file: {'; '.join(refs[:5])}")
            out_dir.mkdir(parents=True, exist_ok=True)
            out = out_dir / f"{path.stem}.html"
            out.write_text(html, encoding="utf-8")
            out.chmod(0o644)      # as nbgrader's generate_feedback leaves it: readable by the release step
            written.append(out)
    finally:
        if gb is not None:
            gb.close()
    return written
