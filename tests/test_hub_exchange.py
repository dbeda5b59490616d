"""nbgrader's exchange on the class server (labkit/hub/exchange.py), end to end
without VMs: a course released here; a student's side laid out as
scripts/hub-guest.sh lays it out in their VM, driven by nbgrader's own
AssignmentList (what JupyterLab's Assignments tab calls) with the
nbgrader_config.py the hub writes; their home made into an ext4 disk; then
the teacher's collect and release-feedback, and the student fetching it back.
(tests/hub/hub_vms.py does the same through real VMs and the hub.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit._errors import ArgumentError
from labkit.commands.course import create, release
from labkit.commands.course import main as course_main
from labkit.commands.course.collect import collect
from labkit.hub import exchange

pytestmark = pytest.mark.requires("root")

NB = "01-hello-clone.ipynb"


def _guest(tmp: Path, course: Path, student: str, state: Path) -> dict:
    """A student's VM's view, as hub-guest.sh makes it: outbound the course's release
    (read-only there), inbound on their own home, feedback their own directory."""
    home = tmp / student / "home"
    ex = tmp / student / "exchange" / exchange.course_id(course)
    (home / "notebooks").mkdir(parents=True)
    (home / exchange.INBOUND).mkdir(parents=True)
    (home / exchange.CACHE).mkdir(parents=True)
    ex.mkdir(parents=True)
    (ex / "outbound").symlink_to(course / "release")
    (ex / "inbound").symlink_to(home / exchange.INBOUND)
    feedback = state / "users" / student / "feedback"
    feedback.mkdir(parents=True)
    (ex / "feedback").symlink_to(feedback)
    etc = tmp / student / "etc"
    etc.mkdir()
    (etc / "nbgrader_config.py").write_text(
        exchange.guest_config(exchange.course_id(course), student, exchange=str(ex.parent), home=str(home)))
    return {"home": home, "etc": etc, "course": exchange.course_id(course)}


_TAB = textwrap.dedent("""
    import json, sys
    from nbgrader.server_extensions.assignment_list.handlers import AssignmentList
    action, course, assignment, root = sys.argv[1:5]
    tab = AssignmentList()
    tab.root_dir = root
    out = None
    if action == "fetch":
        tab.fetch_assignment(course, assignment)
    elif action == "submit":
        out = tab.submit_assignment(course, assignment)
    elif action == "fetch_feedback":
        out = tab.fetch_feedback(course, assignment)
    out = {"result": out, "list": tab.list_assignments(course_id=course)}
    print("RESULT " + json.dumps(out, default=str))
""")


def _tab(g: dict, action: str, assignment: str = "lesson01") -> dict:
    """One press in the student's Assignments tab (nbgrader's server extension's own class)."""
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(g["etc"]), HOME=str(g["home"]))
    r = subprocess.run([sys.executable, "-c", _TAB, action, g["course"], assignment, str(g["home"] / "notebooks")],
                       capture_output=True, text=True, env=env, cwd="/", timeout=120)   # the VM's server runs in /
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and line, r.stderr[-3000:]
    return json.loads(line[0][len("RESULT "):])


def _mark(path: Path, text: str) -> None:
    nb = json.loads(path.read_text())
    nb["metadata"]["lk_test_marker"] = text
    path.write_text(json.dumps(nb))


def _disk(home: Path, image: Path) -> None:
    """The student's home as their disk (ext4), as the VM left it."""
    image.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(home), str(image), "64M"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("exchange") / "ebpf-2026"
    create(root, ["01"], points=2)
    release(root)
    return root


def test_fetch_submit_collect_feedback_through_the_exchange(course, tmp_path):
    state = tmp_path / "state"
    alice = _guest(tmp_path, course, "alice", state)
    bob = _guest(tmp_path, course, "bob", state)

    listed = _tab(alice, "list")["list"]["value"]
    assert [(a["assignment_id"], a["status"]) for a in listed] == [("lesson01", "released")]
    fetched = _tab(alice, "fetch")["list"]["value"]
    assert ("lesson01", "fetched") in [(a["assignment_id"], a["status"]) for a in fetched]
    mine = alice["home"] / "notebooks" / "lesson01" / NB
    assert json.loads(mine.read_text())["cells"] == json.loads((course / "release" / "lesson01" / NB).read_text())["cells"]

    _mark(mine, "first try")
    assert _tab(alice, "submit")["result"]["success"]
    _mark(mine, "second try")
    out = _tab(alice, "submit")
    assert out["result"]["success"]
    subs = [s for a in out["list"]["value"] if a["status"] == "submitted" for s in a["submissions"]]
    assert len(subs) == 2
    inbound = sorted(p.name for p in (alice["home"] / exchange.INBOUND).iterdir())
    assert len(inbound) == 2 and all(n.startswith("alice+lesson01+") for n in inbound)

    # alice, root in her VM, also writes a submission in bob's name: refused at collect
    forged = alice["home"] / exchange.INBOUND / "bob+lesson01+2030-01-01 00:00:00.000000 UTC+x"
    forged.mkdir()
    (forged / NB).write_text(mine.read_text())
    (forged / "timestamp.txt").write_text("2030-01-01 00:00:00.000000 UTC")
    (forged / exchange.SECRET_FILE).write_text("s")
    _tab(bob, "fetch")                                   # bob fetched, never submitted

    for g, name in ((alice, "alice"), (bob, "bob")):
        _disk(g["home"], state / "users" / name / "home.img")
    got = {c.student: c for c in collect(state, course, ["lesson01"])}
    assert got["alice"].what == "submitted (1 refused: they name another student)"
    assert got["bob"].what == "not submitted"
    sub = course / "submitted" / "alice" / "lesson01"
    assert json.loads((sub / NB).read_text())["metadata"]["lk_test_marker"] == "second try"   # the latest
    latest = sorted(inbound)[-1]
    stamp = (alice["home"] / exchange.INBOUND / latest / "timestamp.txt").read_text()
    assert got["alice"].at.strftime("%Y-%m-%d %H:%M:%S") == stamp[:19]
    assert (sub / exchange.SECRET_FILE).read_text() == \
        (alice["home"] / exchange.INBOUND / latest / exchange.SECRET_FILE).read_text()
    assert not (course / "submitted" / "bob").exists()

    # the teacher's feedback (as labkit course autograde writes it), handed back
    fb = course / "feedback" / "alice" / "lesson01"
    fb.mkdir(parents=True)
    (fb / f"{Path(NB).stem}.html").write_text("<html><body>alice: 2 of 2</body></html>")
    assert course_main(["release-feedback", str(course), "--hub", str(state)]) == 0
    assert [p.suffix for p in (state / "users" / "alice" / "feedback").iterdir()] == [".html"]
    assert not list((state / "users" / "bob" / "feedback").iterdir())     # bob's share holds nothing of alice's

    after = _tab(alice, "fetch_feedback")["list"]["value"]
    got_fb = list((alice["home"] / "notebooks" / "lesson01" / "feedback").rglob("*.html"))
    assert [p.read_text() for p in got_fb] == ["<html><body>alice: 2 of 2</body></html>"]
    assert any(s.get("has_local_feedback") for a in after for s in a.get("submissions", []))


def test_the_guest_config_and_names():
    text = exchange.guest_config("ebpf-2026", "alice")
    assert "c.CourseDirectory.student_id = 'alice'" in text and "/srv/nbgrader/exchange" in text
    assert "c.Exchange.assignment_dir = '/home/student/notebooks'" in text
    for bad in ("a+b", "*", ""):
        with pytest.raises(ArgumentError, match="exchange"):
            exchange.guest_config("ebpf-2026", bad)
    with pytest.raises(ArgumentError, match="course id"):
        exchange.guest_config("x'; import os", "alice")
    assert exchange.course_id(Path("/srv/My Course 2026")) == "My-Course-2026"
    s = exchange.parse_submission("alice+lesson01+2026-12-05 06:01:02.123456 UTC+AbC_-=")
    assert (s.student, s.assignment, s.timestamp) == ("alice", "lesson01", "2026-12-05 06:01:02.123456 UTC")
    assert exchange.parse_submission("notes.txt") is None


def test_release_feedback_needs_a_state_and_feedback(course, tmp_path):
    with pytest.raises(ArgumentError, match="--state"):
        exchange.release_feedback(course, tmp_path)
    (tmp_path / "users").mkdir()
    with pytest.raises(ArgumentError, match="autograde"):
        exchange.release_feedback(tmp_path / "no-course", tmp_path)
