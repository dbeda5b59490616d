"""`labkit course autograde --vm IMAGE --jobs 2`: each submission in its own fresh VM
of the class server's image, graded here from the outputs: the same points as
grading here, on the host's kernel. Run by tests/hub/run after hub_vms.py;
seconds per submission go to test-artifacts/hub/grading.json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from labkit.commands.course import autograde, create, grades, release, submit
from labkit.exercises.framework import snippet_text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from test_course import _answer  # noqa: E402
from test_exercises_01 import Q2_WRONG, _CONDITION, student  # noqa: E402

IMAGES = Path(os.environ.get("LABKIT_HUB_IMAGES", "/var/cache/labkit-hub-images"))
ARTIFACTS = ROOT / "test-artifacts" / "hub"
NB = "01-hello-clone.ipynb"


def _points(root: Path) -> list:
    df = grades(root)
    return sorted(zip(df.student, df.exercise, df.points))


def test_grading_in_vms_gives_the_points_grading_here_gives(tmp_path):
    root = tmp_path / "course"
    create(root, ["01"], points=2)
    release(root)
    rel = json.loads((root / "release" / "lesson01" / NB).read_text())
    # alice right, bob wrong (the catalogue's "or" and CLONE_VM), carol right but q2 a verbatim copy
    # of the reference (the course's default integrity rule: it earns nothing)
    answers = {"alice": ("\"pid == @me and kind == 'thread'\"", student(_CONDITION)),
               "bob": ("\"pid == @me or kind == 'thread'\"", Q2_WRONG[1][1]),
               "carol": ("\"kind == 'thread' & pid == @me\"", snippet_text("solution_01_threads_by_comm"))}
    for who, (q1, q2) in answers.items():
        nb = json.loads(json.dumps(rel))
        _answer(nb, "lesson01-q1-answer", f"my_filter = {q1}")
        _answer(nb, "lesson01-q2-answer", "%%bpf my_program\n" + q2)
        path = tmp_path / "in" / who / NB
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(nb))
        submit(root, who, path, at="2026-03-09T20:00:00+01:00")
    here = tmp_path / "here"
    shutil.copytree(root, here)

    t0 = time.monotonic()
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "labkit"), "course", "autograde", str(root), "--vm",
                        str(IMAGES / "current"), "--jobs", "2", "--vm-mem", "1536", "--timeout", "600"],
                       capture_output=True, text=True, timeout=3600)
    vm_s = time.monotonic() - t0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("VM  ") == 3 and "FAILED" not in r.stdout, r.stdout
    assert (root / "feedback" / "alice" / "lesson01").is_dir()

    t0 = time.monotonic()
    graded_here = autograde(here, ["lesson01"], feedback=False, timeout=600)
    here_s = time.monotonic() - t0
    assert all(g.ok for g in graded_here)
    assert _points(root) == _points(here)
    by = {s: sum(p for st, _, p in _points(root) if st == s) for s in answers}
    assert by["alice"] > by["bob"] and by["alice"] > by["carol"]      # the grades say something
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "grading.json").write_text(json.dumps({
        "submissions": 3, "vm_jobs": 2, "vm_total_s": round(vm_s, 1), "vm_s_per_submission": round(vm_s / 3, 1),
        "host_total_s": round(here_s, 1), "host_s_per_submission": round(here_s / 3, 1),
        "vm_lines": [ln for ln in r.stdout.splitlines() if ln.startswith("VM  ") or "submissions in VMs" in ln],
    }, indent=1) + "\n")
