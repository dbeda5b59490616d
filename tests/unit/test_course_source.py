"""labkit course's notebook surgery, for every lesson (no kernel): each
exercise's answer cell becomes a solution cell with the reference inside
solution regions and the lesson's starter kept, an autograder test cell
follows each check, reference checks are left out; nbgrader's release of it
carries the starters and no solution."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from labkit._errors import ArgumentError
from labkit.commands.course.manage import LESSONS_DIR, create, release, submit
from labkit.commands.course.source import BEGIN, END, GRADE_TAG, find_answers, source_notebook
from labkit.exercises import lesson

LESSONS = sorted(p.name[:2] for p in LESSONS_DIR.glob("[0-9][0-9]-*.ipynb"))


def _src(c) -> str:
    return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]


def _nbg(c) -> dict:
    return c.get("metadata", {}).get("nbgrader") or {}


@pytest.mark.parametrize("number", LESSONS)
def test_every_exercise_has_a_solution_cell_and_a_test_cell(number):
    path = next(LESSONS_DIR.glob(f"{number}-*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    before = json.dumps(nb, sort_keys=True)
    ex = lesson(number)
    src = source_notebook(nb, ex, points=3)
    assert json.dumps(nb, sort_keys=True) == before              # the lesson itself is not changed
    nbformat.validate(nbformat.from_dict(src))
    answers = {a.exercise: a for a in find_answers(nb)}
    assert sorted(answers) == sorted(ex.exercises)
    cells = {_nbg(c).get("grade_id"): c for c in src["cells"] if _nbg(c)}
    for q, a in answers.items():
        ans, grade = cells[f"lesson{number}-{q}-answer"], cells[f"lesson{number}-{q}-grade"]
        text = _src(ans)
        assert _nbg(ans)["solution"] and not _nbg(ans)["grade"]
        assert BEGIN in text and END in text and text.index(BEGIN) < text.index(END)
        if a.bpf:
            head, _, body = text.partition("\n")
            assert head.split()[:2] == ["%%bpf", a.variable] and body.startswith(f"// {BEGIN}\n")
        starter = ans["metadata"]["labkit"]["starter"]
        assert BEGIN not in starter and starter.strip()
        assert _nbg(grade) == {"grade": True, "grade_id": f"lesson{number}-{q}-grade", "locked": True, "points": 3,
                               "schema_version": 3, "solution": False, "task": False}
        assert _src(grade).endswith(f"grade(ex.{q}, {a.variable}, points=3)")
        assert GRADE_TAG in grade["metadata"]["tags"]
        # the student's own check stays, before the test cell
        order = [_src(c) for c in src["cells"]]
        check = next(i for i, s in enumerate(order) if f"ex.{q}.check({a.variable})" in s and "grade(" not in s)
        assert order.index(text) < check < order.index(_src(grade))
    assert not [c for c in src["cells"] if "check_solution()" in _src(c)]
    assert all(not c.get("outputs") for c in src["cells"] if c["cell_type"] == "code")


def test_release_of_every_lesson_has_the_starters_and_no_solution(tmp_path):
    sources = create(tmp_path, LESSONS, points=2)
    assert (tmp_path / "nbgrader_config.py").read_text().count("apply(c, timeout=") == 1
    released = release(tmp_path)
    assert [p.name for p in released] == [p.name for p in sources]
    assert sorted(p.name for p in (tmp_path / "release").rglob("*") if p.is_file()) == sorted(p.name for p in sources)
    for src_path, rel_path in zip(sources, released):
        src, rel = json.loads(src_path.read_text()), json.loads(rel_path.read_text())
        text = rel_path.read_text()
        for secret in ("BEGIN SOLUTION", "END SOLUTION", "check_solution", "solution_0"):
            assert secret not in text, (rel_path.name, secret)
        starters = {_nbg(c)["grade_id"]: c["metadata"]["labkit"]["starter"] for c in src["cells"]
                    if _nbg(c).get("solution")}
        for c in rel["cells"]:
            gid = _nbg(c).get("grade_id")
            if gid in starters:
                got = _src(c)
                assert got.endswith(starters[gid]), (rel_path.name, gid)
                assert "raise NotImplementedError" not in got and "YOUR CODE HERE" not in got


def test_bad_course_inputs_say_what_to_do(tmp_path):
    with pytest.raises(ArgumentError, match=r"no lesson '42'.*lessons: 00, 01"):
        create(tmp_path / "c", ["01", "42"])
    assert not (tmp_path / "c").exists()          # nothing half-built
    with pytest.raises(ArgumentError, match=r"a lesson is a number such as 01"):
        create(tmp_path, ["one"])
    with pytest.raises(ArgumentError, match=r"--points must be more than 0"):
        create(tmp_path, ["01"], points=0)
    nb = tmp_path / "01-hello-clone.ipynb"
    nb.write_text("{}")
    with pytest.raises(ArgumentError, match=r"a student id is letters"):
        submit(tmp_path, "../eve", nb)
    with pytest.raises(ArgumentError, match=r"no notebook"):
        submit(tmp_path, "eve", tmp_path / "missing.ipynb")
    other = tmp_path / "mine.ipynb"
    other.write_text("{}")
    with pytest.raises(ArgumentError, match=r"which assignment is mine.ipynb"):
        submit(tmp_path, "eve", other)
    assert submit(tmp_path, "eve", nb) == tmp_path / "submitted/eve/lesson01/01-hello-clone.ipynb"
    assert submit(tmp_path, "eve", other, "lesson03") == tmp_path / "submitted/eve/lesson03/mine.ipynb"
