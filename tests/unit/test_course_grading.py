"""labkit course's grading pieces without a kernel: the test cell's points and
feedback, a dead kernel's test cells scored zero, the student release's
solution message, offline feedback HTML, the class overview's tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from nbformat import from_dict
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.utils import determine_grade

from labkit.commands.course.cell import GRADE_MIME, grade
from labkit.commands.course.gradebook import common_mistakes, pass_rates, time_spent, time_table
from labkit.commands.course.manage import offline_feedback
from labkit.commands.course.preprocessors import KERNEL_DIED, GradeExecute
from labkit.commands.report.offline import external_references
from labkit.exercises import framework
from labkit.exercises.framework import Checklist, Exercise, Incorrect


def _checker(answer):
    c = Checklist()
    c.part("one", answer >= 1)
    c.part("two", answer >= 2, "not two")
    c.part("three", answer >= 3, "not three")
    c.part("four", answer >= 4, "not four")
    if answer < 0:
        raise Incorrect("negative")
    return c.done("all four")


def _exercise() -> Exercise:
    return Exercise("q1", "count to four", _checker, "count", "answer = 4", lambda: 4)


@pytest.mark.parametrize("answer,earned,message", [(4, 2.0, "all four"), (2, 1.0, "not yet: not three; not four"),
                                                  (1, 0.5, "not three"), (-1, 0.0, "negative")])
def test_grade_is_points_times_score_and_says_why(answer, earned, message, capsys):
    assert grade(_exercise(), answer, points=2) == earned
    out = capsys.readouterr()
    assert f"q1: {earned:g} of 2 points" in out.out and message in out.out and out.err == ""


def test_nbgrader_reads_the_grade_cells_value_as_partial_credit():
    cell = new_code_cell("grade(...)", metadata={"nbgrader": {"grade": True, "solution": False, "points": 2,
                                                              "grade_id": "g", "locked": True}})
    cell.outputs = [from_dict({"output_type": "display_data", "data": {"text/plain": "q1: 1.5 of 2", GRADE_MIME: {}},
                               "metadata": {}}),
                    from_dict({"output_type": "execute_result", "data": {"text/plain": "1.5"}, "metadata": {},
                               "execution_count": 1})]
    assert determine_grade(cell) == (1.5, 2.0)


def test_a_dead_kernel_scores_the_test_cells_that_did_not_run_zero():
    nb = new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("os.kill(os.getpid(), 9)"),
                             new_code_cell("x = 2"),
                             new_code_cell("grade(ex.q1, a, points=2)",
                                           metadata={"nbgrader": {"grade": True, "solution": False, "points": 2,
                                                                  "grade_id": "g", "locked": True}})])
    ex = GradeExecute()
    ex.started = 1
    ex._kernel_died(nb, "Kernel died")
    assert [len(c.outputs) for c in nb.cells] == [0, 1, 0, 1]
    assert nb.cells[1].outputs[0].ename == KERNEL_DIED and "in this cell" in nb.cells[1].outputs[0].evalue
    assert "in cell 2, before this cell ran" in nb.cells[3].outputs[0].evalue
    assert determine_grade(nb.cells[3]) == (0, 2.0)      # not nbgrader's "no output = full marks"


def test_student_release_says_ask_the_instructor(monkeypatch, tmp_path, capsys):
    ex = _exercise()
    monkeypatch.setenv(framework.STUDENT_RELEASE_ENV, "0")
    assert not framework.student_release() and "answer = 4" in repr(ex.solution())
    monkeypatch.setenv(framework.STUDENT_RELEASE_ENV, "1")
    assert framework.student_release()
    note = ex.solution()
    assert "answer = 4" not in repr(note) and "Ask your instructor" in repr(note)
    assert ex.check_solution().status == framework.NOT_ATTEMPTED
    assert ex.reference is None and ex.check(4).correct
    monkeypatch.delenv(framework.STUDENT_RELEASE_ENV)
    monkeypatch.setattr(framework, "SNIPPET_DIR", tmp_path / "absent")     # no snippets at all: no crash
    assert framework.reference_files() == [] and framework.student_release()
    assert framework.is_reference("int x; {}") is False


def test_offline_feedback_drops_what_a_browser_would_fetch():
    html = ("<html><head><script src=\"https://cdnjs.cloudflare.com/require.js\"></script>"
            "<link rel=\"stylesheet\" href=\"https://cdn.example.org/x.css\">"
            "<script type=\"text/x-mathjax-config\">init({src: 'https://cdn.jsdelivr.net/mathjax'})</script>"
            "<style>@font-face{font-family:G;src:url(../fonts/glyphicons.woff)} p{color:red}</style>"
            "<script>var ok = 1;</script></head><body><a href=\"https://example.org\">link</a></body></html>")
    assert external_references(html)
    out = offline_feedback(html)
    assert external_references(out) == []
    assert "var ok = 1" in out and "p{color:red}" in out and "https://example.org" in out


def test_time_spent_from_recorded_cell_timing(tmp_path):
    nb = {"cells": [{"metadata": {"execution": {"iopub.execute_input": "2026-03-02T10:00:00.000Z"}}},
                    {"metadata": {}},
                    {"metadata": {"execution": {"shell.execute_reply": "2026-03-02T10:30:30.000Z"}}}]}
    p = tmp_path / "a.ipynb"
    p.write_text(json.dumps(nb))
    assert time_spent(p) == 30.5
    p.write_text(json.dumps({"cells": [{"metadata": {}}]}))
    assert time_spent(p) is None
    assert time_spent(tmp_path / "missing.ipynb") is None


def test_class_tables():
    df = pd.DataFrame([
        ("lesson01", "a", "q1", 2.0, 2.0, "correct", 1.0, "yes", 0.1, 10.0),
        ("lesson01", "b", "q1", 1.0, 2.0, "incorrect", 0.5, "not yet: kept 4 processes (child 123)", 0.1, None),
        ("lesson01", "c", "q1", 1.0, 2.0, "incorrect", 0.5, "not yet: kept 3 processes (child 456)", 0.1, None),
        ("lesson01", "c", "q2", 0.0, 2.0, "error", 0.0, "KernelDied: the kernel died", None, None),
    ], columns=["assignment", "student", "exercise", "points", "max_points", "status", "score", "message",
                "check_seconds", "minutes_spent"])
    rates = pass_rates(df)
    assert rates[["exercise", "students", "correct", "pass_rate"]].values.tolist() == [["q1", 3, 1, 0.333],
                                                                                       ["q2", 1, 0, 0.0]]
    top = common_mistakes(df)
    assert top.iloc[0].to_dict() == {"assignment": "lesson01", "exercise": "q1",
                                     "message": "not yet: kept N processes (child N)", "students": 2}
    assert len(top) == 2
    assert time_table(df).values.tolist() == [["lesson01", "a", 10.0]]
    assert pass_rates(df.iloc[:0]).empty and common_mistakes(df.iloc[:0]).empty


def test_under_nbgrader_validate_an_answer_that_is_not_correct_fails(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    assert grade(_exercise(), 4, points=2) == 2.0
    with pytest.raises(AssertionError, match=r"q1: incorrect: not yet: not three; not four"):
        grade(_exercise(), 2, points=2)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert grade(_exercise(), 2, points=2) == 1.0          # autograding: partial credit, no error
