"""A lesson notebook turned into an nbgrader source notebook (pure notebook
surgery, no kernel).

For each exercise ``qN`` of the lesson (found by its ``ex.qN.check(VAR)``
cell) the answer cell — a ``%%bpf VAR`` cell, or the cell that assigns
``VAR = ...`` — becomes an nbgrader *solution* cell holding the reference
answer between solution delimiters (``### BEGIN SOLUTION`` / ``### END
SOLUTION``; in C ``// ### BEGIN SOLUTION``: nbgrader matches the words
anywhere on the line). The lesson's starter is kept in the cell's metadata
(``labkit.starter``): :class:`~labkit.commands.course.preprocessors.ClearToStarter`
puts it back in the student release, so students get the lesson's own
unanswered cell. After the student's check cell comes a read-only autograder
*test* cell worth ``points`` that grades that check's verdict (or runs the
check when the student's cell did not: :func:`labkit.commands.course.cell.grade`). Cells that run the reference
(tag ``solution-check``) are left out of the course.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from labkit._errors import LabkitError
from labkit.exercises.framework import Lesson

__all__ = ["BEGIN", "END", "GRADE_TAG", "Answer", "find_answers", "source_notebook"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
GRADE_TAG = "labkit-grade"
_CHECK = re.compile(r"^\s*ex\.(q\d+)\.check\((\w+)\)\s*(#.*)?$", re.M)


@dataclass
class Answer:
    """Where one exercise's answer lives in a lesson notebook."""

    exercise: str
    variable: str
    answer_cell: int          # index of the cell with the answer
    check_cell: int           # index of the cell with ex.qN.check(VAR)
    bpf: bool                 # a %%bpf cell (C), else Python assigning VAR


def _src(cell: Any) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _assigns(src: str, var: str) -> bool:
    return re.search(rf"^{re.escape(var)}\s*=", src, re.M) is not None


def find_answers(nb: Any) -> list[Answer]:
    """Every exercise's answer and check cell, in notebook order."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        for m in _CHECK.finditer(_src(cell)):
            qid, var = m.group(1), m.group(2)
            for j in range(i, -1, -1):
                c = nb["cells"][j]
                if c.get("cell_type") != "code":
                    continue
                s = _src(c)
                if s.lstrip().startswith(f"%%bpf {var}"):
                    found.append(Answer(qid, var, j, i, True))
                    break
                if _assigns(s, var):
                    found.append(Answer(qid, var, j, i, False))
                    break
            else:
                raise LabkitError(f"exercise {qid}: no cell before its check assigns {var} (or is %%bpf {var})")
    return found


def _code(text: str, meta: dict | None = None, cell_id: str = "") -> dict:
    c = {"cell_type": "code", "metadata": meta or {}, "source": text, "outputs": [], "execution_count": None}
    if cell_id:
        c["id"] = cell_id
    return c


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool, points: float | None = None) -> dict:
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
         "task": False}
    if points is not None:
        m["points"] = points
    return m


def _answer_cell(lesson: str, a: Answer, starter: str, solution: str) -> dict:
    if a.bpf:
        head, _, body = starter.partition("\n")
        src = f"{head}\n// {BEGIN}\n{solution.strip()}\n// {END}"
        stub = body
    else:
        src = f"{BEGIN}\n{solution.strip()}\n{END}"
        stub = starter
    return _code(src, {"nbgrader": _nbgrader(f"lesson{lesson}-{a.exercise}-answer", solution=True, grade=False,
                                             locked=False),
                       "labkit": {"starter": stub, "exercise": a.exercise}}, f"lk-{lesson}-{a.exercise}-answer")


def _grade_cell(lesson: str, a: Answer, points: float) -> dict:
    src = (f"# autograder: {a.exercise} ({points:g} points): the verdict of ex.{a.exercise}.check on the same answer "
           f"(else that check, run here), weighed as the course says\n"
           f"from labkit.commands.course.cell import grade\n"
           f"grade(ex.{a.exercise}, {a.variable}, points={points:g})")
    return _code(src, {"nbgrader": _nbgrader(f"lesson{lesson}-{a.exercise}-grade", solution=False, grade=True,
                                             locked=True, points=points),
                       "tags": [GRADE_TAG]}, f"lk-{lesson}-{a.exercise}-grade")


def source_notebook(nb: Any, lesson: Lesson, points: float = 2.0) -> Any:
    """The nbgrader source notebook of lesson notebook ``nb`` (not modified)."""
    out = copy.deepcopy(nb)
    answers = find_answers(nb)
    if not answers:
        raise LabkitError(f"lesson {lesson.number} has no exercise cells (ex.qN.check(...))")
    by_answer = {a.answer_cell: a for a in answers}
    by_check = {a.check_cell: a for a in answers}
    cells = []
    for i, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags") or []
        if "solution-check" in tags:
            continue
        a = by_answer.get(i)
        c = by_check.get(i)
        src = _src(cell)
        if a is not None:
            ex = lesson.exercises[a.exercise]
            solution = ex.solution_text() if callable(ex.solution_text) else ex.solution_text
            if a.answer_cell == a.check_cell:   # answer and check in one cell: split them
                lines = src.split("\n")
                check_lines = [ln for ln in lines if _CHECK.match(ln)]
                starter = "\n".join(ln for ln in lines if not _CHECK.match(ln)).rstrip()
                cells.append(_answer_cell(lesson.number, a, starter, solution))
                cells.append(_code("\n".join(check_lines), cell_id=f"lk-{lesson.number}-{a.exercise}-check"))
            else:
                cells.append(_answer_cell(lesson.number, a, src, solution))
            if a.answer_cell == a.check_cell:
                cells.append(_grade_cell(lesson.number, a, points))
            continue
        cells.append(copy.deepcopy(cell))
        if c is not None:
            cells.append(_grade_cell(lesson.number, c, points))
    out["cells"] = cells
    for cell in out["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return out
