"""Collecting the class server's students' lessons from their own disks (real
ext4 images, read by debugfs, into a real course directory)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone

import pytest

from labkit._errors import ArgumentError
from labkit.commands.course import main as course_main
from labkit.commands.course.collect import collect as _collect
from labkit.hub.vm import make_home_disk

pytestmark = pytest.mark.requires("root")


def _write(disk, files: dict[str, bytes], tmp, mtime: int | None = None):
    """Put files on an ext4 image as the student's VM would (debugfs -w: nothing mounted)."""
    cmds = ["mkdir notebooks"]
    for i, (path, data) in enumerate(files.items()):
        local = tmp / f"f{i}"
        local.write_bytes(data)
        cmds.append(f"write {local} {path}")
        if mtime is not None:
            cmds.append(f"set_inode_field {path} mtime @{mtime}")
    script = tmp / "cmds"
    script.write_text("\n".join(cmds) + "\n")
    r = subprocess.run(["debugfs", "-w", "-f", str(script), str(disk)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_collect_submits_changed_lessons_with_their_time_and_skips_the_rest(tmp_path):
    state, course = tmp_path / "state", tmp_path / "course"
    shipped = b'{"cells": [], "shipped": 1}'
    base = {"01-hello-clone.ipynb": hashlib.sha256(shipped).hexdigest()}
    answer = b'{"cells": [], "alice": "her answer"}'
    when = int(datetime(2026, 3, 9, 22, 41, tzinfo=timezone.utc).timestamp())
    for name, lesson in (("alice", answer), ("bob", shipped), ("carol", None)):
        d = state / "users" / name
        d.mkdir(parents=True)
        make_home_disk(d / "home.img", 64)
        files = {".lessons-installed.json": json.dumps(base).encode()}
        if lesson is not None:
            files["notebooks/01-hello-clone.ipynb"] = lesson
            files["notebooks/01-hello-clone.mine-20260301-101010.ipynb"] = b"{}"   # a kept copy: not a lesson
        (tmp_path / name).mkdir()
        _write(d / "home.img", files, tmp_path / name, mtime=when)
    before = {p: p.read_bytes() for p in state.rglob("home.img")}

    got = {(c.student, c.what) for c in _collect(state, course, ["lesson01"])}
    assert got == {("alice", "submitted"), ("bob", "not started"), ("carol", "no such lesson")}
    sub = course / "submitted" / "alice" / "lesson01"
    assert (sub / "01-hello-clone.ipynb").read_bytes() == answer
    assert (sub / "timestamp.txt").read_text().startswith("2026-03-09 22:41:00")
    assert not (course / "submitted" / "bob").exists()
    assert {p: p.read_bytes() for p in state.rglob("home.img")} == before       # the disks are only read

    # the command, and one student
    assert course_main(["collect", str(course), "--hub", str(state), "--assignment", "lesson01",
                        "--student", "alice"]) == 0


def test_collect_refuses_what_it_cannot_read(tmp_path, capsys):
    with pytest.raises(ArgumentError, match="no users/"):
        _collect(tmp_path, tmp_path / "c", ["lesson01"])
    (tmp_path / "users" / "alice").mkdir(parents=True)
    (tmp_path / "users" / "alice" / "home.img").write_bytes(b"not ext4" * 1000)
    with pytest.raises(ArgumentError, match="lessonNN"):
        _collect(tmp_path, tmp_path / "c", ["01"])
    with pytest.raises(ArgumentError, match="no disk for bob"):
        _collect(tmp_path, tmp_path / "c", ["lesson01"], ["bob"])
    assert course_main(["collect", str(tmp_path / "c"), "--hub", str(tmp_path), "--assignment", "lesson01"]) == 1
    assert "is it a student's disk (ext4)?" in capsys.readouterr().err


def test_collect_sees_what_a_running_vm_synced(tmp_path):
    """The disk is in use (mounted, as by a running VM): what was synced may still be only in
    the journal. collect reads a copy with the journal replayed, and the disk stays untouched."""
    state, course, mnt = tmp_path / "state", tmp_path / "course", tmp_path / "mnt"
    d = state / "users" / "dora"
    d.mkdir(parents=True)
    make_home_disk(d / "home.img", 64)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(d / "home.img"), str(mnt)], check=True)
    try:
        (mnt / "notebooks").mkdir()
        (mnt / "notebooks" / "03-maps-vs-events.ipynb").write_text('{"cells": [], "dora": 1}')
        subprocess.run(["sync"], check=True)
        got = _collect(state, course, ["lesson03"])
        assert [(c.student, c.what) for c in got] == [("dora", "submitted")]
        assert json.loads((course / "submitted" / "dora" / "lesson03" / "03-maps-vs-events.ipynb").read_text())["dora"] == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
