"""`labkit course` end to end on the real kernel: lessons 01 and 03 become an
nbgrader course, the release carries no solution, four students submit
lesson 01 (alice the whole lesson, the others only its setup and exercise
cells; all right, q2 a verbatim copy of the reference; the catalogue's
wrong answers, late; one whose kernel kills itself holding a sandbox and a
netlink XDP program; one whose q2 fails the exercise's gate) and one lesson 03
(right, then an endless loop), the autograder grades them one at a time with
the course's labkit.toml (its own weights for lesson 01 q1, a copy of the
reference graded like any answer, a due date) and gives everything back, and
the report lines, the gradebook, the feedback HTML and the instructor's
overview say so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from nbgrader.api import Gradebook

from labkit.commands.course import autograde, create, grades, load_settings, release, submit
from labkit.commands.course.cell import GRADE_MIME
from labkit.exercises import SUMMARY_MIME
from labkit.exercises.framework import snippet_text
from labkit.commands.report.offline import external_references
from labkit.net.leftovers import reap_journal
from labkit.net.records import list_sandboxes

sys.path.insert(0, str(Path(__file__).parent))
from test_exercises_01 import Q2_WRONG, _CONDITION, student  # noqa: E402
from test_exercises_03 import RIGHT as RIGHT_03  # noqa: E402

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.requires("root", "tracefs")]

REPO = Path(__file__).resolve().parents[1]
NB, NB3 = "01-hello-clone.ipynb", "03-maps-vs-events.ipynb"
CELL_TIMEOUT = 20   # seconds per cell while grading dave: his endless loop is cut there
RIGHT_Q1, RIGHT_Q2 = "\"pid == @me and kind == 'thread'\"", student(_CONDITION)
WRONG_Q1 = "\"pid == @me or kind == 'thread'\""          # catalogue "or": parts [T, T, F, F] -> 2 of 6 here
WRONG_Q2 = Q2_WRONG[1][1]                                 # catalogue CLONE_VM: 0.6
INVERTED_Q2 = dict((w[0], w[1]) for w in Q2_WRONG)["inverted"]   # counts all but the threads: the gate, 0
# the course's settings: its own weights for lesson 01 q1 (the two "drops" parts weigh 2: "or" earns 2 of 6,
# 0.67 of 2 points once rounded), a verbatim copy of the reference graded like any answer, lesson 01 due
SETTINGS = """[grading]
reference = "full"
[due]
lesson01 = 2026-03-09T23:59:00+01:00
[weights.lesson01.q1]
"drops the processes this process created (fork, vfork)" = 2
"drops what other processes created" = 2
"""
ON_TIME, LATE = "2026-03-09T20:00:00+01:00", "2026-03-10T09:30:00+01:00"   # bob: 9 h 31 min late
KILL = """import signal, subprocess
sb = labkit.Sandbox()
x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, via="netlink")
link = json.loads(subprocess.run(["ip", "-n", sb.target_ns, "-j", "link", "show", "dev", sb.target_iface],
                                 capture_output=True, text=True).stdout)[0]
with open(LEFT_FILE, "w") as f:
    json.dump({"pid": os.getpid(), "sandbox": sb.id, "netns": [sb.host_ns, sb.target_ns],
               "prog": link["xdp"]["prog"]["id"]}, f)
os.kill(os.getpid(), signal.SIGKILL)"""


def _answer(nb: dict, gid: str, src: str) -> None:
    for c in nb["cells"]:
        if (c["metadata"].get("nbgrader") or {}).get("grade_id") == gid:
            c["source"] = src
            return
    raise AssertionError(f"no cell {gid}")


def _after(nb: dict, gid: str, src: str) -> None:
    i = next(i for i, c in enumerate(nb["cells"]) if (c["metadata"].get("nbgrader") or {}).get("grade_id") == gid)
    nb["cells"].insert(i + 1, nbformat.v4.new_code_cell("import json, os\n" + src))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    t0 = time.time()
    root = tmp_path_factory.mktemp("course")
    sources = create(root, ["01", "03"], points=2)
    template = load_settings(root)          # create wrote labkit.toml with the defaults
    (root / "labkit.toml").write_text(SETTINGS)
    released = release(root)
    rel = json.loads((root / "release" / "lesson01" / NB).read_text())
    subs = tmp_path_factory.mktemp("submissions")
    notebooks = {}
    reference = snippet_text("solution_01_threads_by_comm")
    for who, q1, q2, extra, at in [("alice", RIGHT_Q1, reference, None, ON_TIME),
                                   ("bob", WRONG_Q1, WRONG_Q2, None, LATE),
                                   ("carol", "\"kind == 'thread' & pid == @me\"", RIGHT_Q2, KILL, None),
                                   ("erin", RIGHT_Q1, INVERTED_Q2, None, ON_TIME)]:
        nb = json.loads(json.dumps(rel))
        if who != "alice":   # the others deleted the lesson's live cells: only the setup and the exercises run
            nb["cells"] = [c for c in nb["cells"] if "as ex" in "".join(c["source"]) or "ex.summary" in
                           "".join(c["source"]) or any(q in json.dumps(c) for q in ("q1", "q2"))]
        _answer(nb, "lesson01-q1-answer", f"my_filter = {q1}")
        _answer(nb, "lesson01-q2-answer", "%%bpf my_program\n" + q2)
        if extra:
            _after(nb, "lesson01-q1-grade", extra.replace("LEFT_FILE", repr(str(subs / "left.json"))))
        if who == "alice":   # as JupyterLab records it ("record timing"): 12 minutes of work
            code = [c for c in nb["cells"] if c["cell_type"] == "code"]
            code[0]["metadata"]["execution"] = {"iopub.execute_input": "2026-03-02T10:00:00.000Z"}
            code[-1]["metadata"]["execution"] = {"shell.execute_reply": "2026-03-02T10:12:00.000Z"}
        path = subs / who / NB
        path.parent.mkdir()
        path.write_text(json.dumps(nb))
        notebooks[who] = submit(root, who, path, at=at)        # carol: now
    # dave (lesson 03): a right answer, then a cell that never ends: cut at the cell timeout, graded on what ran
    # (he deleted the lesson's live cells, so only his own cells meet the short cell timeout)
    nb = json.loads((root / "release" / "lesson03" / NB3).read_text())
    nb["cells"] = [c for c in nb["cells"] if "as ex" in "".join(c["source"]) or "q1" in json.dumps(c)]
    _answer(nb, "lesson03-q1-answer", "%%bpf my_program\n" + RIGHT_03[0][1])
    _after(nb, "lesson03-q1-answer", "while True:\n    pass")
    path = subs / "dave" / NB3
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    submit(root, "dave", path)
    graded = autograde(root, students=["alice", "bob", "carol", "erin"], timeout=180)
    graded += autograde(root, students=["dave"], timeout=CELL_TIMEOUT)
    return {"t0": t0, "root": root, "left": subs / "left.json", "sources": sources, "released": released,
            "graded": {g.student: g for g in graded}, "template": template}


def test_source_has_solution_regions_and_a_test_cell_per_exercise(course):
    root = course["root"]
    assert [p.relative_to(root).as_posix() for p in course["sources"]] == [
        "source/lesson01/01-hello-clone.ipynb", "source/lesson03/03-maps-vs-events.ipynb"]
    nb = json.loads((root / "source/lesson01" / NB).read_text())
    meta = {c["metadata"]["nbgrader"]["grade_id"]: c for c in nb["cells"] if "nbgrader" in c["metadata"]}
    assert sorted(meta) == ["lesson01-q1-answer", "lesson01-q1-grade", "lesson01-q2-answer", "lesson01-q2-grade"]
    q2 = "".join(meta["lesson01-q2-answer"]["source"])
    assert q2.startswith("%%bpf my_program\n// ### BEGIN SOLUTION\n") and "CLONE_THREAD" in q2
    assert meta["lesson01-q2-answer"]["metadata"]["nbgrader"]["solution"] is True
    grade = meta["lesson01-q2-grade"]["metadata"]["nbgrader"]
    assert grade["grade"] is True and grade["points"] == 2 and grade["locked"] is True
    assert "check_solution()" not in json.dumps(nb)


def test_release_has_the_starters_and_no_solution(course):
    root = course["root"]
    assert [p.relative_to(root).as_posix() for p in course["released"]] == [
        "release/lesson01/01-hello-clone.ipynb", "release/lesson03/03-maps-vs-events.ipynb"]
    assert sorted(p.name for p in (root / "release").rglob("*") if p.is_file()) == [
        "01-hello-clone.ipynb", "03-maps-vs-events.ipynb"]
    for nb_path in course["released"]:
        text = nb_path.read_text()
        for secret in ("BEGIN SOLUTION", "check_solution", "solution_0", "CLONE_THREAD)\n"):
            assert secret not in text, (nb_path.name, secret)
    rel = json.loads((root / "release/lesson01" / NB).read_text())
    answers = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) for c in rel["cells"]
               if "nbgrader" in c["metadata"]}
    assert answers["lesson01-q1-answer"].startswith("my_filter = None")
    assert answers["lesson01-q2-answer"].startswith("%%bpf my_program\n// count_by_comm.c, unchanged")


def test_exact_scores(course):
    assert {s: g.ok for s, g in course["graded"].items()} == {"alice": True, "bob": True, "carol": True,
                                                               "dave": True, "erin": True}
    df = grades(course["root"])
    got = {(r.student, r.exercise): (r.points, r.status) for r in df.itertuples()}
    assert got == {("alice", "q1"): (2.0, "correct"), ("alice", "q2"): (2.0, "correct"),   # q2: the reference, "full"
                   ("bob", "q1"): (0.67, "incorrect"), ("bob", "q2"): (1.2, "incorrect"),  # q1: the course's weights
                   ("carol", "q1"): (2.0, "correct"), ("carol", "q2"): (0.0, "error"),
                   ("dave", "q1"): (2.0, "correct"),
                   ("erin", "q1"): (2.0, "correct"), ("erin", "q2"): (0.0, "incorrect")}     # q2: the gate
    scores = {(r.student, r.exercise): r.score for r in df.itertuples()}
    assert scores["bob", "q1"] == 0.333 and scores["erin", "q2"] == 0.0
    minutes = df.groupby("student").minutes_spent.first()
    assert minutes["alice"] == 12.0 and minutes[["bob", "carol", "dave", "erin"]].isna().all()
    late = df.groupby("student")[["submitted", "late", "minutes_late"]].first()
    assert late.loc["alice"].tolist() == ["2026-03-09T19:00:00+00:00", False, 0.0]
    assert late.loc["bob"].tolist() == ["2026-03-10T08:30:00+00:00", True, 571.0]
    assert late.loc["carol", "late"] and late.loc["carol", "submitted"] >= "2026-"     # submitted now: late
    assert late.loc["dave", "late"] is None and late.loc["dave", "submitted"]          # lesson 03: no due date
    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:            # nbgrader agrees
        assert gb.find_submission("lesson01", "bob").total_seconds_late == 571 * 60
        assert gb.find_submission("lesson01", "alice").total_seconds_late == 0
    csv = subprocess.run([sys.executable, "-m", "labkit", "course", "gradebook", str(course["root"])],
                         capture_output=True, text=True, timeout=120)
    assert csv.returncode == 0, csv.stderr
    lines = (course["root"] / "grades.csv").read_text().splitlines()
    assert lines[0] == ("assignment,student,exercise,points,max_points,status,score,message,check_seconds,"
                        "minutes_spent,submitted,late,minutes_late")
    assert len(lines) == 10
    assert [ln for ln in lines if ln.startswith("lesson01,bob,q1,")][0].startswith("lesson01,bob,q1,0.67,2.0,")
    weights = subprocess.run([sys.executable, "-m", "labkit", "course", "weights", str(course["root"]), "lesson01"],
                             capture_output=True, text=True, timeout=120)
    assert weights.returncode == 0 and not weights.stderr, weights.stderr
    assert re.search(r"lesson01 +q1 +drops what other processes created +2\.0 +course", weights.stdout)
    assert re.search(r"lesson01 +q2 +counts the threads +1\.0 +at most 0% +labkit", weights.stdout)
    dave = json.loads((course["root"] / "autograded/dave/lesson03" / NB3).read_text())
    loop = next(c for c in dave["cells"] if "".join(c["source"]).endswith("while True:\n    pass"))
    assert [o.get("ename") for o in loop["outputs"] if o["output_type"] == "error"] in (
        ["CellTimeoutError"], ["KeyboardInterrupt"], ["KeyboardInterrupt", "CellTimeoutError"])
    assert course["graded"]["dave"].timeouts == [loop["execution_count"]] and loop["execution_count"]


def _grades_in(path: Path) -> dict:
    out = {}
    for c in json.loads(path.read_text())["cells"]:
        for o in c.get("outputs", []):
            d = (o.get("data") or {}).get(GRADE_MIME)
            if d:
                out[d["exercise"]] = d
    return out


def test_each_check_runs_once_and_the_settings_reach_the_grader(course):
    root = course["root"]
    assert course["template"].reference == "zero" and course["template"].decimals == 2   # create's defaults
    for who, expected in [("alice", {"q1", "q2"}), ("bob", {"q1", "q2"}), ("carol", {"q1"}), ("erin", {"q1", "q2"})]:
        got = _grades_in(root / "autograded" / who / "lesson01" / NB)
        assert set(got) == expected, (who, got)
        # the test cell took the verdict of the student's own check cell: the checker ran once per exercise
        assert {e: g["verdict_from"] for e, g in got.items()} == {e: "check cell" for e in expected}, who
    assert _grades_in(root / "autograded/dave/lesson03" / NB3)["q1"]["verdict_from"] == "check cell"
    alice = json.loads((root / "autograded/alice/lesson01" / NB).read_text())
    summary = [o["data"][SUMMARY_MIME] for c in alice["cells"] for o in c.get("outputs", [])
               if SUMMARY_MIME in (o.get("data") or {})]
    assert summary and summary[-1]["checks"] == {"q1": ["correct"], "q2": ["correct"]}      # one check each
    a = _grades_in(root / "autograded/alice/lesson01" / NB)["q2"]
    assert a["reference_copy"] and a["integrity"] == "full" and a["earned"] == 2.0
    b = _grades_in(root / "autograded/bob/lesson01" / NB)["q1"]
    assert b["earned"] == 0.67 and b["scoring"]["weights"]["drops what other processes created"] == 2.0
    e = _grades_in(root / "autograded/erin/lesson01" / NB)["q2"]
    assert e["gated_by"] == ["counts the threads"] and e["earned"] == 0.0 and e["status"] == "incorrect"


def test_one_report_line_per_submission(course):
    g = course["graded"]
    lines = {s: x.line() for s, x in g.items()}
    assert re.fullmatch(r"lesson01 alice: 4 of 4 points, [\d.]+ s, timeouts: 0, kernel deaths: 0, gave back: "
                        r"nothing, submitted 2026-03-09 19:00 UTC, on time", lines["alice"]), lines["alice"]
    assert re.fullmatch(r"lesson01 bob: 1\.87 of 4 points, [\d.]+ s, timeouts: 0, kernel deaths: 0, gave back: "
                        r"nothing, submitted 2026-03-10 08:30 UTC, LATE by 9 h 31 min \(due 2026-03-09 22:59 UTC\)",
                        lines["bob"]), lines["bob"]
    assert re.fullmatch(rf"lesson01 carol: 2 of 4 points, [\d.]+ s, timeouts: 0, kernel deaths: 1 "
                        rf"\(In \[{g['carol'].kernel_died}\]\), gave back: .*, submitted .* UTC, LATE by .*",
                        lines["carol"]), lines["carol"]
    dave = rf"lesson03 dave: 2 of 2 points, [\d.]+ s, timeouts: 1 \(In \[{g['dave'].timeouts[0]}\]\), "
    assert re.fullmatch(dave + r"kernel deaths: 0, gave back: nothing, submitted .* UTC, no due date",
                        lines["dave"]), lines["dave"]
    assert lines["erin"].startswith("lesson01 erin: 2 of 4 points, ") and lines["erin"].endswith(", on time")
    assert all(x.seconds > 1 for x in g.values())
    for who in g:
        assert (course["root"] / "submitted" / who / ("lesson03" if who == "dave" else "lesson01") /
                "timestamp.txt").is_file()


def test_feedback_says_what_was_wrong_offline(course):
    fb = {s: g.feedback for s, g in course["graded"].items()}
    assert all(len(v) == 1 for v in fb.values()) and len(fb) == 5, fb
    bob = fb["bob"][0].read_text()
    assert "0.67 of 2 points (incorrect)" in bob and "1.2 of 2 points (incorrect)" in bob
    assert "drops what other processes created (weight 2)" in bob and "parts passed: 2 of 6 by weight (33%)" in bob
    assert re.search(r"every creation with CLONE_VM \(0x100\): test CLONE_THREAD", bob)
    assert re.search(r"processes this process created.*by other processes", bob)
    alice = fb["alice"][0].read_text()
    assert "a verbatim copy of the reference solution: this course grades it like any other answer" in alice
    erin = fb["erin"][0].read_text()
    assert "0 of 2 points (incorrect)" in erin
    assert "an essential part failed (counts the threads): the exercise earns nothing" in erin
    carol = fb["carol"][0].read_text()
    n = course["graded"]["carol"].kernel_died
    assert "2 of 2 points (correct)" in carol and f"the kernel died in this cell (In [{n}])" in carol
    assert f"the kernel died in In [{n}], before this cell ran" in carol
    died = json.loads((course["root"] / "autograded/carol/lesson01" / NB).read_text())
    assert [c["execution_count"] for c in died["cells"] if "os.kill(os.getpid()" in "".join(c["source"])] == [n]
    # labkit's own export, not nbgrader's template: the same paths, a score header on top, nothing to fetch,
    # no script at all, the panels as their snapshot or their text, no navigation to notebooks the student lacks
    assert fb["bob"][0] == course["root"] / "feedback/bob/lesson01/01-hello-clone.html"
    header = re.search(r'<div [^>]*id="labkit-feedback".*?</ul>', bob, re.S).group(0)
    assert "01-hello-clone: 1.87 of 4 points</h2>" in header and "lesson01, bob" in header
    assert re.search(r'q1</a>: 0\.67 of 2 points \(incorrect\)</li>.*q2</a>: 1\.2 of 2 points \(incorrect\)', header,
                     re.S), header
    assert "01-hello-clone: 4 of 4 points</h2>" in alice and "01-hello-clone: 2 of 4 points</h2>" in erin
    assert re.search(r"q2</a>: 0 of 2 points \(error\)", carol)
    assert "03-maps-vs-events: 2 of 2 points</h2>" in fb["dave"][0].read_text()
    assert re.search(r'class="lk-widget-snapshot"[^>]*>.{0,400}?trace_clone', alice, re.S), "the live panel is blank"
    for who, paths in fb.items():
        page = paths[0].read_text()
        assert external_references(page) == [], who
        assert "<script" not in page.lower(), who
        assert not re.search(r"jquery|require(?:js|\.js|\s*\()", page, re.I), who
        assert not re.search(r'href\s*=\s*["\'][^"\']*\.ipynb', page, re.I), who
        assert "<!--NAVIGATION-->" not in page and "application/vnd.jupyter.widget-view+json" not in page, who
        assert (paths[0].stat().st_mode & 0o777) == 0o644, who


def test_nothing_left_in_the_kernel(course):
    left = json.loads(course["left"].read_text())     # what carol's kernel held when it killed itself
    pid, sb_id, (host_ns, target_ns), prog_id = str(left["pid"]), left["sandbox"], left["netns"], str(left["prog"])
    assert sb_id not in {r.id for r in list_sandboxes()}
    assert not [r for r in list_sandboxes() if str(getattr(r, "owner_pid", "")) == pid]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert host_ns not in netns and target_ns not in netns
    assert subprocess.run(["bpftool", "prog", "show", "id", prog_id], capture_output=True).returncode != 0
    assert not list(Path("/run/labkit/xdp").glob(f"*{pid}*")) if Path("/run/labkit/xdp").is_dir() else True
    log = course["graded"]["carol"].log
    # given back after carol's kernel (or, on this shared machine, by another process's reap of dead owners
    # first: every new Lab() reaps them; the journal says so)
    assert (any(sb_id in line for line in course["graded"]["carol"].gave_back)
            or any(sb_id in e["line"] for e in reap_journal(course["t0"]))), (log, reap_journal(course["t0"]))
    assert course["graded"]["alice"].gave_back == [] and course["graded"]["bob"].gave_back == []
    assert course["graded"]["carol"].kernel_died and not course["graded"]["alice"].kernel_died


def test_class_overview_notebook(course, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    # COURSE, as the README says (LABKIT_COURSE works too); run from instructor/, as JupyterLab runs it
    monkeypatch.delenv("LABKIT_COURSE", raising=False)
    monkeypatch.setenv("COURSE", str(course["root"]))
    csv = course["root"] / "grades.csv"
    csv.unlink(missing_ok=True)
    nb = nbformat.read(REPO / "instructor/class-overview.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="labkit",
                   resources={"metadata": {"path": str(REPO / "instructor")}}).execute()
    outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outs if o.output_type == "error"]
    assert not csv.exists(), "the overview says it writes nothing unless asked"
    late_text = "\n".join(str(o.get("text", "")) for c in nb.cells if c.get("id") == "late-code" for o in c.outputs)
    assert "late submission(s)" in late_text and "bob" in "".join(
        o.get("data", {}).get("text/html", "") for c in nb.cells if c.get("id") == "late-code" for o in c.outputs)
    # its offline page, as the notebook says: labkit report, nothing fetched from the internet
    r = subprocess.run([sys.executable, "-m", "labkit", "report", "--out", str(tmp_path),
                        str(REPO / "instructor/class-overview.ipynb")], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "COURSE": str(course["root"]), "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "class-overview.html").read_text()
    assert external_references(page) == [] and "5 students" in page
    assert not csv.exists()
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outs)
    assert "5 students, 9 graded exercises" in text and "points on offer: 6" in text
    assert not [o for o in outs if o.get("name") == "stderr"], [o.text for o in outs if o.get("name") == "stderr"]
    assert sum("image/png" in o.get("data", {}) for o in outs) == 2          # pass rates, time spent
    html = "".join(o.get("data", {}).get("text/html", "") for o in outs)
    assert re.search(r"every creation with CLONE_VM \(0x100\)", html)      # the most common mistakes, whole
    assert re.search(r"it kept N processes this process created \(kind fork, vfork, e.g. child N\)", html)
    assert "the kernel died" in html


def test_student_release_without_the_references(monkeypatch, tmp_path):
    """A student's copy has no bpf_snippets/solution_*: solution() says to ask, checks still judge."""
    from labkit.exercises import framework
    from labkit.exercises.lessons import lesson03
    from test_exercises_03 import RIGHT, WRONG

    _, wrong_src, wrong_says = next(w for w in WRONG if w[0] == "no pid filter")
    judged_here = lesson03.build().q1.check(wrong_src)      # the same answer, judged with the references shipped
    for p in framework.SNIPPET_DIR.iterdir():
        if not p.name.startswith("solution_"):
            (tmp_path / p.name).symlink_to(p)
    monkeypatch.setattr(framework, "SNIPPET_DIR", tmp_path)
    monkeypatch.delenv(framework.STUDENT_RELEASE_ENV, raising=False)
    assert framework.student_release() and framework.reference_files() == []
    ex = lesson03.build()
    assert "ask your instructor" in repr(ex.q1.solution()).lower()
    ref = ex.q1.check_solution()
    assert ref.status == "not attempted" and "Ask your instructor" in ref.message
    assert ex.q1.check(RIGHT[0][1]).correct
    wrong = ex.q1.check(wrong_src)
    assert not wrong.correct and 0 < wrong.score == judged_here.score < 1 and re.search(wrong_says, wrong.message)


def test_grading_outputs_executed_elsewhere_gives_the_same_grades(course, tmp_path):
    """`autograde --vm` runs each submission in its own VM and grades here from its outputs
    (GradeExecute.executed_dir): the same points as running it here, and a notebook that is
    not the submission is refused. (Last in this file: it regrades alice and bob.)"""
    import shutil

    root = course["root"]

    def points(df):
        df = df[df.student.isin(["alice", "bob"]) & (df.assignment == "lesson01")]
        return sorted(zip(df.student, df.exercise, df.points))

    before = points(grades(root))
    assert len(before) >= 4
    executed = tmp_path / "executed"
    for who in ("alice", "bob"):
        shutil.copytree(root / "autograded" / who / "lesson01", executed / who / "lesson01")
    t0 = time.monotonic()
    again = autograde(root, ["lesson01"], ["alice", "bob"], executed=executed, feedback=False)
    assert [g.ok for g in again] == [True, True], [g.log[-500:] for g in again]
    assert time.monotonic() - t0 < 60                  # nothing ran: no kernel, no BPF
    assert points(grades(root)) == before
    nb = json.loads((executed / "alice" / "lesson01" / NB).read_text())
    nb["cells"][-1]["source"] = "print('not what alice handed in')"
    (executed / "alice" / "lesson01" / NB).write_text(json.dumps(nb))
    bad = autograde(root, ["lesson01"], ["alice"], executed=executed, feedback=False)
    assert not bad[0].ok and "not the same notebook" in bad[0].log
