"""nbgrader's exchange for the class server's students, one student's view per VM.

nbgrader's own (file-system) exchange runs inside each student's VM, where the
Assignments tab of JupyterLab lists, fetches, submits and fetches feedback as
in any nbgrader course. What each of its three directories is:

- ``outbound`` (what is released): the course's ``release/`` (``labkit course
  release``), shared read-only into every VM;
- ``inbound`` (what is submitted): a directory on the student's own disk, so a
  submission is as private and as lasting as their notebooks, and no student
  can read or fill another's;
- ``feedback``: ``STATE/users/NAME/feedback`` on the host, shared read-only
  into that student's VM only, holding their own feedback and nobody else's.

The teacher's side: ``labkit course collect DIR --hub STATE`` reads the
submissions from each disk (:func:`submissions`; a submission that names
another student is refused), and ``labkit course release-feedback DIR --hub
STATE`` puts each student's feedback where their VM sees it
(:func:`release_feedback`), named as nbgrader's ``fetch_feedback`` looks for it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from nbgrader.utils import notebook_hash

from labkit._errors import ArgumentError

__all__ = ["CACHE", "EXCHANGE", "INBOUND", "SECRET_FILE", "Submission", "course_id", "guest_config",
           "parse_submission", "release_feedback"]

# inside the VM (scripts/hub-guest.sh makes them)
EXCHANGE = "/srv/nbgrader/exchange"
HOME = "/home/student"
INBOUND = ".nbgrader/inbound"          # on the student's disk (relative to their home)
CACHE = ".nbgrader/cache"              # nbgrader's record of what this student submitted (the secrets)
SECRET_FILE = "submission_secret.txt"

_SUBMISSION = re.compile(r"(?P<student>[^+/]+)\+(?P<assignment>[^+/]+)\+(?P<timestamp>[^+/]+)(?:\+[^/]*)?")


def course_id(course: Path) -> str:
    """The nbgrader course id of the course at ``course``: its directory's name, kept to
    what an id may hold (letters, digits, '-', '_'), e.g. ``ebpf-2026``."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(course).resolve().name).strip("-")
    if not name:
        raise ArgumentError(f"{course}: a course directory needs a name with a letter or digit")
    return name


def guest_config(course: str, student: str, *, exchange: str = EXCHANGE, home: str = HOME) -> str:
    """The VM's ``nbgrader_config.py``: the course, the exchange, and the student's own
    name (the server runs as root inside the VM; nbgrader would submit as "root")."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", course):
        raise ArgumentError(f"course id {course!r}: use letters, digits, '-' and '_'")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", student):
        raise ArgumentError(f"student {student!r} cannot submit to nbgrader's exchange ('+' and '*' are its separators)")
    return (
        "# nbgrader in a class server's VM (written by the hub: labkit/hub/exchange.py)\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course!r}\n"
        f"c.CourseDirectory.student_id = {student!r}\n"
        f"c.Exchange.root = {exchange!r}\n"
        f"c.Exchange.cache = {str(Path(home) / CACHE)!r}\n"
        # fetched assignments go beside the lessons; nbgrader's default (".") is the server's
        # working directory, which in the VM is "/"
        f"c.Exchange.assignment_dir = {str(Path(home) / 'notebooks')!r}\n"
        "c.Exchange.path_includes_course = False\n"
    )


@dataclass(frozen=True)
class Submission:
    """One entry of a student's inbound: ``alice+lesson01+2026-12-05 06:01:02.123456 UTC+ab12``."""

    name: str
    student: str
    assignment: str
    timestamp: str


def parse_submission(name: str) -> Submission | None:
    """The parts of an inbound entry's name, or None for anything else."""
    m = _SUBMISSION.fullmatch(name)
    if not m:
        return None
    return Submission(name, m["student"], m["assignment"], m["timestamp"])


@dataclass(frozen=True)
class Released:
    student: str
    assignment: str
    notebook: str
    path: Path


def release_feedback(course: Path, state: Path, assignments: list[str] | None = None,
                     students: list[str] | None = None) -> list[Released]:
    """Each collected submission's feedback (``DIR/feedback/NAME/ASSIGNMENT/NB.html``, from
    ``labkit course autograde``) into ``STATE/users/NAME/feedback/HASH.html``: the name nbgrader's
    ``fetch_feedback`` computes from the submission's secret, in the directory only NAME's VM sees."""
    course, users = Path(course), Path(state) / "users"
    if not users.is_dir():
        raise ArgumentError(f"{state} is not a class server's state directory (no users/): pass ./lab hub's --state")
    feedback = course / "feedback"
    if not feedback.is_dir():
        raise ArgumentError(f"{course} has no feedback/ yet: run labkit course autograde {course} first")
    out = []
    for student_dir in sorted(p for p in feedback.iterdir() if p.is_dir()):
        name = student_dir.name
        if students and name not in students:
            continue
        if not (users / name).is_dir():
            continue                      # graded, but not a student of this class server
        for a_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if assignments and a_dir.name not in assignments:
                continue
            secret_file = course / "submitted" / name / a_dir.name / SECRET_FILE
            if not secret_file.is_file():
                continue                  # not submitted through the exchange (a lesson taken from the disk)
            secret = secret_file.read_text()
            dest_dir = users / name / "feedback"
            dest_dir.mkdir(mode=0o755, exist_ok=True)
            for html in sorted(a_dir.glob("*.html")):
                dest = dest_dir / f"{notebook_hash(secret=secret, notebook_id=html.stem)}.html"
                tmp = dest.with_suffix(".tmp")
                shutil.copyfile(html, tmp)
                os.chmod(tmp, 0o644)
                tmp.replace(dest)         # whole or not at all, even while the VM reads
                out.append(Released(name, a_dir.name, html.stem, dest))
    return out
