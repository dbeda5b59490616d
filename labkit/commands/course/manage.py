"""The course's life, driven through nbgrader's Python API: create (lessons ->
source notebooks, nbgrader_config.py, labkit.toml), release (nbgrader
generate_assignment), submit (a student's notebook into submitted/, with its
time in timestamp.txt), autograde (one submission at a time, as root, on the
real kernel, then offline feedback HTML: labkit's own export, see feedback.py;
one report line per submission)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from labkit._errors import ArgumentError, LabkitError, PrivilegeError
from labkit.commands.course.config import CONFIG_FILE, DEFAULT_CELL_TIMEOUT, course_config
from labkit.commands.course.feedback import write_feedback
from labkit.commands.course.settings import (late_by, load_settings, parse_time, read_timestamp, say_late,
                                             write_settings_template, write_timestamp)
from labkit.commands.course.source import source_notebook
from labkit.commands.report.offline import external_references
from labkit.exercises import lesson as lesson_exercises
from labkit.net.leftovers import reap_dead_owners
from labkit.programs.compile import REFERENCE_PREFIX

__all__ = ["Graded", "LESSONS_DIR", "assignment_id", "autograde", "create", "offline_feedback", "release",
           "submit"]

LESSONS_DIR = Path(__file__).resolve().parents[3] / "notebooks"   # <repo>/labkit/commands/course/manage.py
_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>\s*</script>", re.I | re.S)
_LINK_EXT = re.compile(r"<link\b[^>]*\bhref\s*=\s*['\"]?(?:https?:)?//[^>]*>", re.I)
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>(.*?)</script>", re.I | re.S)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)


def assignment_id(number: str) -> str:
    """The assignment of lesson ``number``: ``lesson01``."""
    return f"lesson{int(number):02d}"


def _lesson_notebook(number: str, lessons_dir: Path) -> Path:
    found = sorted(lessons_dir.glob(f"{int(number):02d}-*.ipynb"))
    if not found:
        raise ArgumentError(f"no lesson {number!r} in {lessons_dir} (lessons: "
                            f"{', '.join(p.name[:2] for p in sorted(lessons_dir.glob('[0-9][0-9]-*.ipynb')))})")
    return found[0]


def _api(root: Path, timeout: int = DEFAULT_CELL_TIMEOUT, executed: Path | None = None) -> NbGraderAPI:
    # nbgrader runs `alembic` (its database migrations) by name: the venv's bin/ must be on PATH
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # nbgrader's own SQLAlchemy use warns (SAWarning "not in session") on every autograde: not ours to fix
    warnings.filterwarnings("ignore", message=".*not in session.*")
    config = course_config(root, timeout=timeout)
    if executed is not None:
        config.GradeExecute.executed_dir = str(Path(executed).resolve())
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def _ok(result: dict, what: str) -> None:
    if not result.get("success"):
        raise LabkitError(f"nbgrader {what} failed:\n{result.get('error') or ''}\n{result.get('log') or ''}".strip())


def create(root: Path, lessons: list[str] | None = None, *, points: float = 2.0,
           lessons_dir: Path = LESSONS_DIR, timeout: int = DEFAULT_CELL_TIMEOUT) -> list[Path]:
    """Make (or refresh) the course at ``root``: ``nbgrader_config.py`` and
    ``source/lessonNN/NN-*.ipynb`` for each lesson with exercises (default:
    all). Returns the source notebooks written."""
    root = Path(root)
    if points <= 0:
        raise ArgumentError(f"--points must be more than 0, got {points}")
    numbers = lessons or sorted({p.name[:2] for p in lessons_dir.glob("[0-9][0-9]-*.ipynb")})
    made = []   # every source notebook first: a bad lesson leaves nothing written
    for n in numbers:
        if not str(n).isdigit():
            raise ArgumentError(f"a lesson is a number such as 01, got {n!r}")
        nb_path = _lesson_notebook(n, lessons_dir)
        nb = nbformat.read(nb_path, as_version=4)
        src = nbformat.from_dict(source_notebook(nb, lesson_exercises(n), points=points))
        nbformat.validate(src)
        made.append((root / "source" / assignment_id(n) / nb_path.name, src))
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG_FILE.format(timeout=int(timeout)))
    write_settings_template(root)        # the course's grading settings: written once, never overwritten
    for out, src in made:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(src, out)
    return [out for out, _ in made]


def release(root: Path, assignments: list[str] | None = None) -> list[Path]:
    """nbgrader generate_assignment for each assignment (default: every source
    one). Returns the released notebooks; refuses a release that would carry a
    solution region or a reference snippet."""
    root = Path(root)
    api = _api(root)
    ids = assignments or sorted(p.name for p in (root / "source").iterdir() if p.is_dir())
    out = []
    for a in ids:
        _ok(api.generate_assignment(a, force=True), f"generate_assignment {a}")
        for nb in sorted((root / "release" / a).rglob("*")):
            if nb.name.startswith(REFERENCE_PREFIX):
                raise LabkitError(f"{nb} is a reference solution: it must not be released")
            if nb.suffix == ".ipynb":
                text = nb.read_text()
                if "BEGIN SOLUTION" in text or "check_solution()" in text:
                    raise LabkitError(f"{nb} still carries a solution: not released")
                out.append(nb)
    return out


def submit(root: Path, student: str, notebook: Path, assignment: str | None = None, *,
           at: datetime | str | None = None) -> Path:
    """Put a student's notebook where nbgrader collects it:
    ``submitted/STUDENT/ASSIGNMENT/NAME.ipynb`` (assignment from the name's
    lesson number when not given), and record when in nbgrader's
    ``timestamp.txt`` beside it: ``at`` (when the student handed it in, e.g.
    a mail's date; naive: local time), else now."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", student or ""):
        raise ArgumentError(f"a student id is letters, digits, '.', '_' or '-', got {student!r}")
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ArgumentError(f"no notebook {notebook}")
    a = assignment or (assignment_id(notebook.name[:2]) if notebook.name[:2].isdigit() else None)
    if not a:
        raise ArgumentError(f"which assignment is {notebook.name}? name it NN-*.ipynb or pass --assignment")
    when = parse_time(at, what="--at") if at is not None else None     # a time that cannot be read: nothing copied
    dest = Path(root) / "submitted" / student / a / notebook.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, dest)
    write_timestamp(dest.parent, when)
    return dest


def _cells(counts: list) -> str:
    """Cells as the student sees them: "In [3], In [7]"."""
    return ", ".join(f"In [{n}]" if n else "a cell" for n in counts)


@dataclass
class Graded:
    """One submission, autograded: how it went (``line()``: the report's line)."""

    assignment: str
    student: str
    ok: bool
    log: str = ""
    feedback: list[Path] = field(default_factory=list)
    reaped: str = ""
    gave_back: list[str] = field(default_factory=list)   # what the submission's kernel left, removed
    seconds: float = 0.0                                 # the autograde of this submission, wall time
    score: float | None = None                           # points, from nbgrader's gradebook
    max_score: float | None = None
    timeouts: list[int] = field(default_factory=list)    # the cells the timeout stopped (execution counts)
    kernel_died: int | None = None                       # the cell the kernel died in (its execution count)
    submitted: datetime | None = None                    # timestamp.txt
    due: datetime | None = None                          # labkit.toml's [due]
    decimals: int = 2

    @property
    def late(self) -> timedelta | None:
        """How late (0 when on time); None without a due date or a submission time."""
        return late_by(self.submitted, self.due)

    def line(self) -> str:
        """One line: assignment, student, points, seconds, timeouts, kernel deaths, what was given back, when."""
        points = (f"{round(self.score, self.decimals):g} of {self.max_score:g} points" if self.score is not None
                  else "not graded")
        return (f"{self.assignment} {self.student}: {'' if self.ok else 'FAILED, '}{points}, {self.seconds:.1f} s, "
                f"timeouts: {len(self.timeouts)}{' (' + _cells(self.timeouts) + ')' if self.timeouts else ''}, "
                f"kernel deaths: {1 if self.kernel_died is not None else 0}"
                f"{' (' + _cells([self.kernel_died]) + ')' if self.kernel_died is not None else ''}, "
                f"gave back: {'; '.join(self.gave_back) if self.gave_back else 'nothing'}, "
                f"{say_late(self.submitted, self.due)}")


def offline_feedback(html: str) -> str:
    """nbgrader's own feedback HTML (``nbgrader generate_feedback`` run by hand; ``autograde`` writes
    labkit's, :mod:`~labkit.commands.course.feedback`) without what a browser would fetch from the
    internet (require.js, MathJax, the widget manager, CDN stylesheets)."""
    html = _SCRIPT_SRC.sub("", html)
    html = _LINK_EXT.sub("", html)
    html = _SCRIPT_BLOCK.sub(lambda m: "" if external_references(m.group(0)) else m.group(0), html)
    # bootstrap's icon font (../fonts/glyphicons-*): not shipped, and nothing in the feedback needs it
    return _FONT_FACE.sub(lambda m: "" if external_references(f"<style>{m.group(0)}</style>") else m.group(0), html)


def _due_dates_to_gradebook(root: Path, due: dict[str, datetime]) -> None:
    """Give nbgrader's gradebook the course's due dates (so nbgrader's own late accounting and formgrader agree)."""
    if not due or not (root / "gradebook.db").exists():
        return
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for a, when in due.items():
            try:
                gb.find_assignment(a)
            except MissingEntry:
                continue
            gb.update_or_create_assignment(a, duedate=when.astimezone(timezone.utc).replace(tzinfo=None))


def _what_happened(g: Graded, root: Path) -> None:
    """Fill in the report's facts from the autograded notebooks (GradeExecute's metadata) and the gradebook."""
    for nb in sorted((root / "autograded" / g.student / g.assignment).glob("*.ipynb")):
        try:
            meta = (json.loads(nb.read_text(encoding="utf-8")).get("metadata") or {}).get("labkit") or {}
        except (OSError, ValueError):
            continue
        run = meta.get("grading") or {}
        g.timeouts += [n for n in run.get("timeouts") or []]
        if run.get("kernel_died") is not None:
            g.kernel_died = run["kernel_died"]
        g.gave_back += [x for x in run.get("gave_back") or [] if x not in g.gave_back]
    try:
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            s = gb.find_submission(g.assignment, g.student)
            g.score, g.max_score = float(s.score), float(s.max_score)
    except MissingEntry:
        pass


def autograde(root: Path, assignments: list[str] | None = None, students: list[str] | None = None, *,
              timeout: int = DEFAULT_CELL_TIMEOUT, feedback: bool = True,
              executed: Path | None = None) -> list[Graded]:
    """Autograde every submission (or the ones named), one at a time, each in
    a fresh kernel; what a submission left in the kernel is given back before
    the next (GradeExecute, then a reap of dead owners). Grades with the
    course's labkit.toml (read first: a file labkit cannot use stops here,
    before any kernel). Writes offline feedback HTML under ``feedback/`` (labkit's
    exporter: the notebook's and each exercise's points on top, no navigation, no script).
    Each :class:`Graded` says how it went (``line()``). Needs root. With ``executed``, each
    submission's outputs come from ``executed/STUDENT/ASSIGNMENT/`` (run in a VM:
    labkit/commands/course/vmgrade.py) and nothing runs here."""
    if os.geteuid() != 0:
        raise PrivilegeError("autograding loads the students' BPF programs: run it as root (sudo labkit course ...)")
    root = Path(root)
    settings = load_settings(root)
    for w in settings.warnings:
        print(f"labkit course: {settings.path}: {w}", file=sys.stderr)
    api = _api(root, timeout, executed)
    _due_dates_to_gradebook(root, settings.due)
    sub = root / "submitted"
    done = []
    for student_dir in sorted(p for p in sub.iterdir() if p.is_dir()) if sub.is_dir() else []:
        if students and student_dir.name not in students:
            continue
        for a_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if assignments and a_dir.name not in assignments:
                continue
            t0 = time.monotonic()
            res = api.autograde(a_dir.name, student_dir.name, force=True)
            g = Graded(a_dir.name, student_dir.name, bool(res.get("success")),
                       (res.get("log") or "") + (res.get("error") or ""), seconds=time.monotonic() - t0,
                       submitted=read_timestamp(a_dir), due=settings.due_for(a_dir.name), decimals=settings.decimals)
            g.gave_back = [ln.split("labkit: gave back what the submission's kernel left: ", 1)[1]
                           for ln in g.log.splitlines() if "labkit: gave back what the submission's kernel left: " in ln]
            g.reaped = reap_dead_owners()
            if g.ok:
                _what_happened(g, root)
            if g.ok and feedback:
                # labkit's own offline export of the autograded notebook, scores from the gradebook (autograde
                # wrote them): nbgrader's generate_feedback records nothing, so it is not run
                try:
                    g.feedback = write_feedback(root, a_dir.name, student_dir.name, decimals=settings.decimals)
                except Exception as e:   # the grades stand (the gradebook has them): this line says FAILED
                    g.ok, g.log = False, g.log + f"\nlabkit: no feedback written: {type(e).__name__}: {e}"
            done.append(g)
    return done
