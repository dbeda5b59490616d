"""labkit course's grading pieces without a kernel: the test cell's points and
feedback, a dead kernel's test cells scored zero, the student release's
solution message, offline feedback HTML, the class overview's tables; the
weights table against the lessons' checkers, gates, rounding, the check cell's
verdict reused, the integrity setting, labkit.toml, submission times and
lateness, the autograde report line."""

from __future__ import annotations

import ast
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from nbformat import from_dict
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.utils import determine_grade

from labkit._errors import ArgumentError
from labkit.commands.course.cell import CHECK_CELL, GRADE_CELL, GRADE_MIME, GRADING_ENV, Grade, grade
from labkit.commands.course.gradebook import common_mistakes, pass_rates, time_spent, time_table
from labkit.commands.course.manage import Graded, offline_feedback
from labkit.commands.course.preprocessors import KERNEL_DIED, GradeExecute, course_root_of
from labkit.commands.course.settings import (SETTINGS_TEMPLATE, grading_payload, late_by, load_settings, parse_time,
                                             read_timestamp, say_late, write_timestamp)
from labkit.commands.course.weights import DEFAULT_WEIGHTS, course_scoring, default_scoring, weights_table
from labkit.commands.report.offline import external_references
from labkit.exercises import framework
from labkit.exercises import lesson as lesson_exercises
from labkit.exercises.framework import (REFERENCE_POLICY_ENV, Checklist, Exercise, Incorrect, Part, Result, Scoring,
                                        snippet_text)


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
    nb.cells.insert(0, new_markdown_cell("# lesson"))       # cells the student does not count as In [n]
    nb.cells.insert(1, new_code_cell(""))
    nb.cells[2].execution_count = 1
    ex = GradeExecute()
    ex.started = 3                # the os.kill cell: the fifth cell, the second that ran
    ex.code_cells_executed = 2
    ex._kernel_died(nb, "Kernel died")
    assert [len(c.get('outputs', [])) for c in nb.cells] == [0, 0, 0, 1, 0, 1]
    died = nb.cells[3].outputs[0]
    assert died.ename == KERNEL_DIED and "in this cell (In [2])" in died.evalue and nb.cells[3].execution_count == 2
    assert "in In [2], before this cell ran" in nb.cells[5].outputs[0].evalue and ex.died_in == 2
    assert determine_grade(nb.cells[5]) == (0, 2.0)      # not nbgrader's "no output = full marks"


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


# ------------------------------------------------------------------ weights, gates, rounding
LESSONS = Path(framework.__file__).parent / "lessons"


def _part_names(path: Path) -> tuple[set[str], set[str]]:
    """The names a lesson's checkers give their parts: plain strings, and f-strings' fixed prefixes."""
    plain, prefixes = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "part" \
                and node.args:
            a = node.args[0]
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                plain.add(a.value)
            elif isinstance(a, ast.JoinedStr) and a.values and isinstance(a.values[0], ast.Constant):
                prefixes.add(a.values[0].value)
    return plain, prefixes


def _known(key: str, plain: set[str], prefixes: set[str]) -> bool:
    if Scoring({key: 2}).weight(key) == 2 and any(Scoring({key: 2}).weight(n) == 2 for n in plain):
        return True
    fixed = key.split("*", 1)[0]
    return any(fixed.startswith(p) or p.startswith(fixed) for p in prefixes)


@pytest.mark.parametrize("number", sorted({n for n, _ in DEFAULT_WEIGHTS}))
def test_the_weights_table_names_the_parts_the_checkers_report(number):
    """Every part a lesson's checkers name has a weight in the table, and every name in the table is a part
    (a part renamed in a lesson shows here, instead of silently weighing 1)."""
    plain, prefixes = _part_names(LESSONS / f"lesson{number}.py")
    table = {k: w for k, w in DEFAULT_WEIGHTS.items() if k[0] == number}
    assert sorted(e for _n, e in table) == sorted(lesson_exercises(number).exercises)
    keys = [k for w in table.values() for k in w.weights]
    for name in plain:
        assert any(Scoring({k: 2}).weight(name) == 2 for k in keys), f"lesson {number}: no weight for {name!r}"
    for prefix in prefixes:
        assert any(k.startswith(prefix) or prefix.startswith(k.split("*", 1)[0]) for k in keys), \
            f"lesson {number}: no weight for the parts {prefix!r}..."
    for (n, e), w in table.items():
        for k in [*w.weights, *w.gates]:
            assert _known(k, plain, prefixes), f"lesson {n} {e}: {k!r} is no part of its checker"
        for k in w.gates:
            assert k in w.weights, f"lesson {n} {e}: the gate {k!r} has no weight"
        assert w.why


def _fraction(lesson: str, exercise: str, failed: set[str]) -> float:
    names = list(DEFAULT_WEIGHTS[lesson, exercise].weights)
    return default_scoring(lesson, exercise).fraction("incorrect", [Part(n, n not in failed) for n in names])


def test_the_defaults_grade_as_a_teacher_would():
    # lesson 06 q1: a counter that is not atomic (the race not fixed) counts the right calls, loses some
    assert _fraction("06", "q1", {"exact while two CPUs count at once"}) == 0.25
    # lesson 02 q1: dropping every ICMP message, not only echo
    every_icmp = {"other ICMP passes (port unreachable)",
                  "other ICMP with IP options passes (port unreachable, IHL 6 and 15)"}
    assert _fraction("02", "q1", every_icmp) == 0.5
    # the classic program: every ICMP, and every frame that is not IPv4 (ARP, IPv6)
    classic = every_icmp | {"ARP passes after the neighbour caches are flushed",
                            "IPv6 passes (neighbour discovery and UDP)"}
    assert _fraction("02", "q1", classic) == 0.25
    # a program that drops nothing passes everything else for free: nothing
    assert _fraction("02", "q1", {"IPv4 ping to the target is dropped",
                                  "ICMP echo replies are dropped (pings from the target fail)",
                                  "ICMP echo with IP options is dropped (IHL 6 and 15)"}) == 0.0
    assert _fraction("02", "q1", {"ICMP echo with IP options is dropped (IHL 6 and 15)"}) == pytest.approx(14 / 15)
    assert _fraction("08", "q1", {"UDP to port * is dropped"}) == 0.0
    assert _fraction("01", "q2", {"counts the threads", "does not count forks", "does not count vforks",
                                  "does not count processes that share memory"}) == 0.0     # inverted
    assert _fraction("01", "q2", {"does not count vforks", "does not count processes that share memory",
                                  "counts each thread once"}) == 0.5                         # CLONE_VM
    assert default_scoring("99", "q1") == Scoring()


def _thirds(answer):
    c = Checklist()
    c.part("one", answer >= 1)
    c.part("two", answer >= 2, "not two")
    c.part("three", answer >= 3, "not three")
    return c.done("all three")


def _ex(checker=_thirds, lesson="") -> Exercise:
    e = Exercise("q1", "count to three", checker, "count", "answer = 3", lambda: 3)
    e.lesson = lesson
    return e


def test_points_are_rounded_once(capsys, monkeypatch):
    monkeypatch.delenv(GRADING_ENV, raising=False)
    assert grade(_ex(), 1, points=2) == 0.67                              # 2 x 1/3, 2 decimals
    out = capsys.readouterr().out
    assert "q1: 0.67 of 2 points (incorrect)" in out and "parts passed: 1 of 3 by weight (33%)" in out
    g = Grade("q1", Result("q1", "incorrect", "x", parts=[Part("a", True), Part("b", False), Part("c", False)]), 2.0)
    assert g.earned == 0.67 and g.to_dict()["earned"] == 0.67 and g.to_dict()["score"] == 0.333
    assert Grade("q1", g.result, 2.0, decimals=3).earned == 0.667
    monkeypatch.setenv(GRADING_ENV, json.dumps({"assignment": "lesson42", "decimals": 1}))
    assert grade(_ex(), 1, points=2) == 0.7


def test_the_course_weights_and_gates_reach_the_test_cell(capsys, monkeypatch, tmp_path):
    (tmp_path / "labkit.toml").write_text('[weights.lesson42.q1]\n"three" = 4\n[gates.lesson42.q1]\n"two" = 0.1\n')
    monkeypatch.setenv(GRADING_ENV, json.dumps(grading_payload(load_settings(tmp_path), "lesson42")))
    assert grade(_ex(), 2, points=6) == 2.0                   # weights 1, 1, 4: two of six
    assert grade(_ex(), 1, points=2) == 0.2                   # "two" failed: at most 10%
    out = capsys.readouterr().out
    assert "✗ three (weight 4)" in out
    assert "✗ two (weight 1; essential: without it the exercise earns at most 10%)" in out
    assert "an essential part failed (two): the exercise earns at most 10%" in out


def test_the_test_cell_reuses_the_check_cells_verdict(capsys, monkeypatch):
    monkeypatch.delenv(GRADING_ENV, raising=False)
    runs = []

    def counted(answer):
        runs.append(answer)
        return _thirds(answer)

    ex = _ex(counted)
    ex.check(3)                                                  # the student's check cell
    assert grade(ex, 3, points=2) == 2.0 and runs == [3]         # the test cell: the same verdict, no second run
    out = capsys.readouterr().out
    ex2 = _ex(counted)
    assert grade(ex2, 2, points=2) == 1.33 and runs == [3, 2]     # no check cell ran: the test cell checks
    ex2.check(3)
    assert grade(ex2, 2, points=2) == 1.33 and runs == [3, 2, 3, 2]   # another answer than the one checked
    assert "q1: 2 of 2 points (correct): all three" in out


def test_where_the_verdict_came_from_is_recorded():
    ex = _ex()
    r = ex.check(3)
    assert Grade("q1", r, 2.0, verdict_from=CHECK_CELL).to_dict()["verdict_from"] == "check cell"
    assert Grade("q1", r, 2.0).to_dict()["verdict_from"] == GRADE_CELL == "grade cell"


def _c_exercise(runs: list) -> Exercise:
    ref = snippet_text("solution_03_count_by_tid")
    return Exercise("q1", "count", lambda a: runs.append(a) or ("yes: counted", {}), "h", ref, lambda: ref, "c")


def test_a_copy_of_the_reference_earns_what_the_course_says(capsys, monkeypatch):
    monkeypatch.delenv(GRADING_ENV, raising=False)
    ref, runs = snippet_text("solution_03_count_by_tid"), []
    monkeypatch.setenv(REFERENCE_POLICY_ENV, "zero")
    assert grade(_c_exercise(runs), ref, points=2) == 0.0 and runs == []
    out = capsys.readouterr().out
    assert "0 of 2 points (incorrect): that is the reference solution, not your answer" in out
    assert "this course gives a verbatim copy of the reference solution 0 points (its integrity setting: zero)" in out
    monkeypatch.setenv(REFERENCE_POLICY_ENV, "full")
    assert grade(_c_exercise(runs), ref, points=2) == 2.0 and runs == [ref]
    out = capsys.readouterr().out
    assert "2 of 2 points (correct): yes: counted" in out
    assert "a verbatim copy of the reference solution: this course grades it like any other answer" in out


# ------------------------------------------------------------------ labkit.toml, due dates, timestamps
def _settings(tmp_path: Path, text: str):
    (tmp_path / "labkit.toml").write_text(text)
    return load_settings(tmp_path)


def test_the_settings_file_and_its_defaults(tmp_path):
    assert load_settings(tmp_path).reference == "zero" and load_settings(tmp_path).decimals == 2   # no file
    s = _settings(tmp_path, SETTINGS_TEMPLATE)
    assert (s.reference, s.decimals, s.due, s.weights, s.gates, s.warnings) == ("zero", 2, {}, {}, {}, [])
    s = _settings(tmp_path, '[grading]\nreference = "full"\ndecimals = 1\n[due]\n'
                            'lesson01 = 2026-03-09T23:59:00+01:00\nlesson02 = "2026-03-10 12:00"\n'
                            '[weights.lesson06.q1]\n"exact while two CPUs count at once" = 4\n'
                            '[gates.lesson06.q2]\n"holds at most 8" = 1\n')
    assert s.reference == "full" and s.decimals == 1
    assert s.due["lesson01"] == datetime(2026, 3, 9, 22, 59, tzinfo=timezone.utc)
    assert s.due["lesson02"] == datetime(2026, 3, 10, 12, 0).astimezone(timezone.utc)     # local time
    assert s.warnings == []
    sc = course_scoring(s.overrides, "lesson06", "q1")
    assert sc.weight("exact while two CPUs count at once") == 4 and sc.cap("exact while two CPUs count at once") == 0.25
    assert course_scoring(s.overrides, "lesson06", "q2").cap("holds at most 8") == 1      # the gate turned off
    table = weights_table(["lesson06"], s.overrides)
    row = table[(table.exercise == "q1") & (table.part == "exact while two CPUs count at once")].iloc[0]
    assert (row.weight, row.gate, row["from"]) == (4.0, 0.25, "course")
    assert set(table.exercise) == {"q1", "q2"} and (table["from"] == "labkit").sum() == len(table) - 2


@pytest.mark.parametrize("text,error", [
    ('[grading]\nreference = "half"\n', 'reference is "zero" or "full"'),
    ('[grading]\ndecimals = 9\n', "decimals is a whole number from 0 to 6"),
    ('[grading]\nrounding = 2\n', "has reference and decimals"),
    ('[penalties]\nx = 1\n', "unknown table"),
    ('[due]\nlesson01 = "next monday"\n', "not a date and time"),
    ('[weights.lesson06.q1]\n"exact while two CPUs count at once" = "four"\n', "is not a number"),
    ('[gates.lesson06.q1]\n"exact while two CPUs count at once" = 2\n', "from 0 to 1"),
    ('[weights.lesson06]\nq1 = 2\n', "one table per exercise"),
    ('[grading\n', "labkit.toml"),
])
def test_a_settings_file_labkit_cannot_use_says_what_is_wrong(tmp_path, text, error):
    with pytest.raises(ArgumentError, match=re.escape(error)):
        _settings(tmp_path, text)


def test_a_part_name_labkit_does_not_know_is_warned_about(tmp_path):
    s = _settings(tmp_path, '[weights.lesson06.q1]\n"exact" = 4\n[gates.lesson06.q9]\n"x" = 0\n'
                            '[weights.lesson07.q2]\n"source .70: *" = 3\n[weights.mine.q1]\n"any" = 2\n')
    assert len(s.warnings) == 2
    assert "[weights.lesson06.q1] 'exact' names no part labkit knows" in s.warnings[0]
    assert "'exact while two CPUs count at once'" in s.warnings[0]
    assert "no exercise q9 in lesson 06" in s.warnings[1]


def test_submission_times_as_nbgrader_reads_them(tmp_path):
    from nbgrader.coursedir import CourseDirectory

    path = write_timestamp(tmp_path, "2026-03-10T09:30:00+01:00")
    assert path.read_text() == "2026-03-10 08:30:00.000000 UTC\n"
    when = datetime(2026, 3, 10, 8, 30, tzinfo=timezone.utc)
    assert read_timestamp(tmp_path) == when
    assert CourseDirectory().get_existing_timestamp(str(tmp_path)) == when.replace(tzinfo=None) or \
        CourseDirectory().get_existing_timestamp(str(tmp_path)) == when
    before = datetime.now(timezone.utc)
    write_timestamp(tmp_path)
    assert before - timedelta(seconds=1) <= read_timestamp(tmp_path) <= datetime.now(timezone.utc)
    assert read_timestamp(tmp_path / "none") is None
    (tmp_path / "timestamp.txt").write_text("garbage")
    assert read_timestamp(tmp_path) is None


def test_late_against_the_due_date():
    due = parse_time("2026-03-09T23:59:00+01:00")
    on_time, late = parse_time("2026-03-09T20:00:00+01:00"), parse_time("2026-03-10T09:30:00+01:00")
    assert late_by(on_time, due) == timedelta(0) and late_by(late, due) == timedelta(hours=9, minutes=31)
    assert late_by(None, due) is None and late_by(late, None) is None
    assert say_late(on_time, due) == "submitted 2026-03-09 19:00 UTC, on time"
    assert say_late(late, due) == "submitted 2026-03-10 08:30 UTC, LATE by 9 h 31 min (due 2026-03-09 22:59 UTC)"
    assert say_late(late + timedelta(days=2), due).endswith("LATE by 2 d 9 h 31 min (due 2026-03-09 22:59 UTC)")
    assert say_late(late, None) == "submitted 2026-03-10 08:30 UTC, no due date"
    assert say_late(None, due).startswith("submission time unknown")
    assert parse_time(datetime(2026, 3, 9).date()) == datetime(2026, 3, 9, 23, 59, 59).astimezone(timezone.utc)


def test_the_autograde_report_line():
    g = Graded("lesson01", "bob", True, seconds=41.26, score=1.8699999, max_score=4.0, timeouts=[3],
               kernel_died=5, gave_back=["sandbox lksb-1a2b (pid 77)"],
               submitted=parse_time("2026-03-10T09:30:00+01:00"), due=parse_time("2026-03-09T23:59:00+01:00"))
    assert g.line() == ("lesson01 bob: 1.87 of 4 points, 41.3 s, timeouts: 1 (In [3]), kernel deaths: 1 (In [5]), "
                        "gave back: sandbox lksb-1a2b (pid 77), submitted 2026-03-10 08:30 UTC, LATE by 9 h 31 min "
                        "(due 2026-03-09 22:59 UTC)")
    assert g.late == timedelta(hours=9, minutes=31)
    quiet = Graded("lesson03", "dave", False, seconds=2.0)
    assert quiet.line() == ("lesson03 dave: FAILED, not graded, 2.0 s, timeouts: 0, kernel deaths: 0, gave back: "
                            "nothing, submission time unknown (no timestamp.txt)")


def test_the_course_directory_of_a_grading_run(tmp_path, monkeypatch):
    assert course_root_of("/srv/course", None) == Path("/srv/course")
    assert course_root_of("", {"nbgrader": {"db_url": "sqlite:////srv/c2/gradebook.db"}}) == Path("/srv/c2")
    monkeypatch.chdir(tmp_path)
    assert course_root_of("", {}) == tmp_path


def test_submit_records_when(tmp_path):
    from labkit.commands.course.manage import submit

    nb = tmp_path / "01-hello-clone.ipynb"
    nb.write_text("{}")
    dest = submit(tmp_path / "course", "alice", nb, at="2026-03-09T23:10:00+01:00")
    assert dest == tmp_path / "course/submitted/alice/lesson01/01-hello-clone.ipynb" and dest.read_text() == "{}"
    assert read_timestamp(dest.parent) == datetime(2026, 3, 9, 22, 10, tzinfo=timezone.utc)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    submit(tmp_path / "course", "alice", nb)                                     # handed in again: now
    assert before <= read_timestamp(dest.parent) <= datetime.now(timezone.utc)
    with pytest.raises(ArgumentError, match="--at: 'friday' is not a date and time"):
        submit(tmp_path / "course", "bob", nb, at="friday")
    assert not (tmp_path / "course/submitted/bob").exists()
