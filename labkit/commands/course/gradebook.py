"""The class at a glance: one row per (assignment, student, exercise) from
nbgrader's gradebook (points, rounded once when graded) and the autograded
notebooks (the checker's verdict and message, the weighed score, under
GRADE_MIME), plus the time a student spent where the submitted notebook
recorded it (JupyterLab's cell execution timing), when the submission was
handed in (its timestamp.txt) and whether that was late (labkit.toml's
``[due]``)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
from nbgrader.api import Gradebook, MissingEntry

from labkit._errors import ArgumentError
from labkit.commands.course.cell import GRADE_MIME
from labkit.commands.course.settings import late_by, load_settings, read_timestamp

__all__ = ["COLUMNS", "common_mistakes", "export_csv", "grades", "pass_rates", "time_spent", "time_table"]

COLUMNS = ["assignment", "student", "exercise", "points", "max_points", "status", "score", "message",
           "check_seconds", "minutes_spent", "submitted", "late", "minutes_late"]


def _cells(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return []


def time_spent(notebook: Path) -> float | None:
    """Minutes between the first and the last cell execution the notebook
    recorded (``metadata.execution``: JupyterLab with "record timing", nbclient);
    None when it recorded none."""
    stamps = []
    for cell in _cells(notebook):
        for k, v in (cell.get("metadata", {}).get("execution") or {}).items():
            try:
                stamps.append(datetime.fromisoformat(str(v).replace("Z", "+00:00")))
            except ValueError:
                continue
    if len(stamps) < 2:
        return None
    return round((max(stamps) - min(stamps)).total_seconds() / 60, 2)


def _verdicts(notebook: Path) -> dict[str, dict]:
    out = {}
    for cell in _cells(notebook):
        gid = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        for o in cell.get("outputs", []):
            d = (o.get("data") or {}).get(GRADE_MIME)
            if d:
                out[gid] = d
            elif o.get("output_type") == "error" and gid and gid not in out:
                out[gid] = {"status": "error", "message": f"{o.get('ename')}: {o.get('evalue')}"}
    return out


def grades(root: Path) -> pd.DataFrame:
    """Every autograded exercise of the course at ``root``, one row each (COLUMNS)."""
    root = Path(root)
    if not (root / "gradebook.db").is_file():
        raise ArgumentError(f"{root.resolve()} has no gradebook.db: name a course directory that "
                            "`labkit course autograde` has graded (COURSE or LABKIT_COURSE in the environment)")
    settings = load_settings(root)
    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for a in gb.assignments:
            for nb in a.notebooks:
                cells = list(nb.grade_cells)
                for student in gb.students:
                    try:
                        gb.find_submission_notebook(nb.name, a.name, student.id)
                    except MissingEntry:
                        continue
                    graded = root / "autograded" / student.id / a.name / f"{nb.name}.ipynb"
                    verdicts = _verdicts(graded)
                    minutes = time_spent(root / "submitted" / student.id / a.name / f"{nb.name}.ipynb")
                    when = read_timestamp(root / "submitted" / student.id / a.name)
                    late = late_by(when, settings.due_for(a.name))
                    for cell in cells:
                        g = gb.find_grade(cell.name, nb.name, a.name, student.id)
                        v = verdicts.get(cell.name, {})
                        rows.append({
                            "assignment": a.name, "student": student.id,
                            "exercise": v.get("exercise") or cell.name.rsplit("-", 2)[-2],
                            "points": g.score, "max_points": g.max_score,
                            "status": v.get("status", "not run"), "score": v.get("score", 0.0),
                            "message": v.get("message", "the test cell did not run"),
                            "check_seconds": v.get("seconds"), "minutes_spent": minutes,
                            "submitted": when.isoformat() if when else None,
                            "late": None if late is None else bool(late),
                            "minutes_late": None if late is None else round(late.total_seconds() / 60, 1)})
    return pd.DataFrame(rows, columns=COLUMNS)


def export_csv(root: Path, out: Path | None = None) -> Path:
    """Write the grades (:func:`grades`) as CSV (default ``ROOT/grades.csv``)."""
    out = Path(out) if out else Path(root) / "grades.csv"
    grades(root).to_csv(out, index=False)
    return out


def pass_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per (assignment, exercise): students graded, how many got it right, the
    pass rate and the mean points."""
    if df.empty:
        return pd.DataFrame(columns=["assignment", "exercise", "students", "correct", "pass_rate", "mean_points",
                                     "max_points"])
    g = df.assign(ok=df.status.eq("correct")).groupby(["assignment", "exercise"], sort=True)
    out = g.agg(students=("student", "nunique"), correct=("ok", "sum"), mean_points=("points", "mean"),
                max_points=("max_points", "max")).reset_index()
    out["pass_rate"] = (out.correct / out.students).round(3)
    out["mean_points"] = out.mean_points.round(2)
    return out[["assignment", "exercise", "students", "correct", "pass_rate", "mean_points", "max_points"]]


def _shape(message: str) -> str:
    """A message with its numbers (pids, counts, thread ids) made ``N``, so the same mistake groups together."""
    first = str(message).split("\n", 1)[0]
    return re.sub(r"\b\d+\b", "N", first)


def common_mistakes(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The most common wrong-answer messages (numbers made ``N``), with how
    many submissions got each and which exercise they belong to."""
    wrong = df[df.status.ne("correct")]
    if wrong.empty:
        return pd.DataFrame(columns=["assignment", "exercise", "message", "students"])
    out = (wrong.assign(message=wrong.message.map(_shape))
           .groupby(["assignment", "exercise", "message"]).student.nunique()
           .rename("students").reset_index()
           .sort_values(["students", "assignment", "exercise"], ascending=[False, True, True]))
    return out.head(n).reset_index(drop=True)


def time_table(df: pd.DataFrame) -> pd.DataFrame:
    """Minutes each student spent per assignment, where the notebook recorded it."""
    t = df.dropna(subset=["minutes_spent"]).groupby(["assignment", "student"]).minutes_spent.first()
    return t.reset_index()
