"""``labkit course collect DIR --hub STATE``: the students' lessons, from their disks into a course.

Each student's work is on their own disk (``STATE/users/NAME/home.img``,
ext4). This copies the disk (sparse), lets ``e2fsck`` replay the copy's
journal (a running VM's last writes may still be only there), and reads the
copy with e2fsprogs' ``debugfs``: the student's disk is never mounted or
written, whether their VM runs or not. Each lesson goes to
:func:`labkit.commands.course.manage.submit`, with the file's
own modification time as the time it was handed in.

Where the hub served a course (``./lab hub --course DIR``), students hand in
through nbgrader's exchange (the Assignments tab, see :mod:`labkit.hub.exchange`):
their submissions are on their own disk (``.nbgrader/inbound``), and the latest
one of each assignment is collected, with nbgrader's ``timestamp.txt`` and
``submission_secret.txt`` (what ``labkit course release-feedback`` needs to hand
the feedback back). A submission whose name says it is another student's is
refused and reported. Without a course, the lessons are read from the disk's
``notebooks/``: a lesson the student never changed (the same bytes ``labkit
lessons`` installed, ``.lessons-installed.json`` on their disk) is not
collected: it is reported as "not started". Either way nothing a student wrote
can name another student: the student is the disk's directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labkit._errors import ArgumentError, LabkitError
from labkit.commands.course.manage import submit
from labkit.commands.course.settings import TIMESTAMP_FILE, read_timestamp
from labkit.commands.lessons import BASE_FILE, LESSON
from labkit.hub.exchange import INBOUND, SECRET_FILE, parse_submission
from labkit.hub.vm import check_name

__all__ = ["Collected", "collect", "list_dir", "read_file", "snapshot"]

NOTEBOOKS = "/notebooks"    # on the student's disk (mounted at /home/student in the VM)


@dataclass(frozen=True)
class Collected:
    student: str
    assignment: str
    what: str                   # "submitted", "not submitted", "not started", "no such lesson"
    path: Path | None = None    # where it went in the course
    at: datetime | None = None

    def line(self) -> str:
        when = f" (last changed {self.at:%Y-%m-%d %H:%M} UTC)" if self.at else ""
        return f"{self.student:<16} {self.assignment:<10} {self.what}{when}"


def _debugfs(disk: Path, request: str) -> str:
    exe = shutil.which("debugfs") or "/sbin/debugfs"
    r = subprocess.run([exe, "-R", request, str(disk)], capture_output=True, text=True, timeout=60)
    # debugfs exits 0 even when it cannot open the image: its stderr says so
    if r.returncode != 0 or "while trying to open" in r.stderr or "Filesystem not open" in r.stderr:
        err = " ".join(line for line in r.stderr.splitlines() if not line.startswith("debugfs 1."))
        raise LabkitError(f"debugfs cannot read {disk} ({err.strip()}): is it a student's disk (ext4)?")
    return r.stdout


def list_dir(disk: Path, path: str) -> list[str]:
    """The names in ``path`` of an ext4 image (``ls -p``: one /-separated record per entry)."""
    names = []
    for line in _debugfs(disk, f'ls -p "{path}"').splitlines():
        parts = line.split("/")
        if len(parts) >= 7 and parts[5] not in (".", ".."):
            names.append(parts[5])
    return names


def read_file(disk: Path, path: str, dest: Path) -> bool:
    """Copy ``path`` of an ext4 image to ``dest``, with its times; False when it is not there."""
    if dest.exists():
        dest.unlink()
    _debugfs(disk, f'dump -p "{path}" "{dest}"')
    return dest.is_file()


def snapshot(disk: Path, tmp: Path) -> Path:
    """A consistent copy of a student's disk: sparse, its journal replayed (what the running VM
    synced is in it; the disk itself is only read)."""
    copy = tmp / f"{disk.parent.name}.img"
    subprocess.run(["cp", "--sparse=always", str(disk), str(copy)], check=True, timeout=600)
    fsck = shutil.which("e2fsck") or "/sbin/e2fsck"
    r = subprocess.run([fsck, "-f", "-p", str(copy)], capture_output=True, text=True, timeout=600)
    if r.returncode not in (0, 1):       # 0: clean, 1: errors fixed (the journal replayed)
        raise LabkitError(f"e2fsck cannot make sense of a copy of {disk} ({r.stdout.strip()} {r.stderr.strip()}): "
                          "is it a student's disk (ext4)?")
    return copy


def collect(state: Path, course: Path, assignments: list[str], students: list[str] | None = None) -> list[Collected]:
    """Every student's (or ``students``') lessons of ``assignments`` (lessonNN) into ``course``."""
    users = Path(state) / "users"
    if not users.is_dir():
        raise ArgumentError(f"{state} is not a class server's state directory (no users/): pass ./lab hub's --state")
    for a in assignments:
        if not re.fullmatch(r"lesson\d\d", a):
            raise ArgumentError(f"an assignment is lessonNN, e.g. lesson01, not {a!r}")
    names = sorted(p.name for p in users.iterdir() if (p / "home.img").is_file())
    if students:
        unknown = sorted(set(students) - set(names))
        if unknown:
            raise ArgumentError(f"no disk for {', '.join(unknown)} in {users}")
        names = [n for n in names if n in students]
    out = []
    with tempfile.TemporaryDirectory(prefix="labkit-collect-") as tmp:
        for name in names:
            check_name(name)
            disk = snapshot(users / name / "home.img", Path(tmp))
            if ".nbgrader" in list_dir(disk, "/"):
                out += _from_exchange(disk, name, course, assignments, Path(tmp) / name)
            else:
                out += _from_notebooks(disk, name, course, assignments, Path(tmp) / name)
    return out


def _from_notebooks(disk: Path, name: str, course: Path, assignments: list[str], tmp: Path) -> list[Collected]:
    """The lessons in the disk's notebooks/ (a class server without a course)."""
    tmp.mkdir()
    out = []
    base_file = tmp / "base.json"
    base = json.loads(base_file.read_text()) if read_file(disk, f"/{BASE_FILE}", base_file) else {}
    present = [n for n in list_dir(disk, NOTEBOOKS) if LESSON.match(n)]
    for a in assignments:
        lesson = [n for n in present if n.startswith(a[-2:] + "-")]
        if not lesson:
            out.append(Collected(name, a, "no such lesson"))
            continue
        local = tmp / lesson[0]
        read_file(disk, f"{NOTEBOOKS}/{lesson[0]}", local)
        if base.get(lesson[0]) == hashlib.sha256(local.read_bytes()).hexdigest():
            out.append(Collected(name, a, "not started"))
            continue
        at = datetime.fromtimestamp(os.stat(local).st_mtime, timezone.utc)
        dest = submit(course, name, local, a, at=at)
        out.append(Collected(name, a, "submitted", dest, at))
    return out


def _from_exchange(disk: Path, name: str, course: Path, assignments: list[str], tmp: Path) -> list[Collected]:
    """The latest submission of each assignment in the disk's nbgrader inbound (a course's class server)."""
    tmp.mkdir()
    inbound = "/" + INBOUND
    entries = [e for e in (parse_submission(n) for n in list_dir(disk, inbound)) if e]
    out = []
    for a in assignments:
        mine = [e for e in entries if e.assignment == a]
        forged = len([e for e in mine if e.student != name])
        refused = f" ({forged} refused: they name another student)" if forged else ""
        got = None
        for e in sorted((e for e in mine if e.student == name), key=lambda e: e.timestamp, reverse=True):
            got = _read_submission(disk, f"{inbound}/{e.name}", tmp / e.name.replace(" ", "_"))
            if got:
                break
        if not got:
            out.append(Collected(name, a, "not submitted" + refused))
            continue
        local, notebooks = got
        at = read_timestamp(local)
        dest_dir = course / "submitted" / name / a
        if dest_dir.is_dir():
            shutil.rmtree(dest_dir)       # the latest submission replaces what an earlier collect took
        for nb in notebooks:
            dest = submit(course, name, nb, a, at=at)
        shutil.copyfile(local / SECRET_FILE, dest_dir / SECRET_FILE)
        out.append(Collected(name, a, "submitted" + refused, dest, at))
    return out


def _read_submission(disk: Path, path: str, local: Path) -> tuple[Path, list[Path]] | None:
    """One submission's notebooks and its two nbgrader files, or None when it is not whole."""
    local.mkdir()
    names = list_dir(disk, path)
    if TIMESTAMP_FILE not in names or SECRET_FILE not in names:
        return None
    for n in (TIMESTAMP_FILE, SECRET_FILE):
        read_file(disk, f"{path}/{n}", local / n)
    if read_timestamp(local) is None:
        return None
    notebooks = []
    for n in sorted(names):
        if n.endswith(".ipynb") and "/" not in n and read_file(disk, f"{path}/{n}", local / n):
            notebooks.append(local / n)
    return (local, notebooks) if notebooks else None
