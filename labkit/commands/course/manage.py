"""The course's life, driven through nbgrader's Python API: create (lessons ->
source notebooks), release (nbgrader generate_assignment), submit (a
student's notebook into submitted/), autograde (one submission at a time, as
root, on the real kernel, then offline feedback HTML)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from labkit._errors import ArgumentError, LabkitError
from labkit.commands.course.config import CONFIG_FILE, DEFAULT_CELL_TIMEOUT, course_config
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


def _api(root: Path, timeout: int = DEFAULT_CELL_TIMEOUT) -> NbGraderAPI:
    # nbgrader runs `alembic` (its database migrations) by name: the venv's bin/ must be on PATH
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # nbgrader's own SQLAlchemy use warns (SAWarning "not in session") on every autograde: not ours to fix
    warnings.filterwarnings("ignore", message=".*not in session.*")
    config = course_config(root, timeout=timeout)
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


def submit(root: Path, student: str, notebook: Path, assignment: str | None = None) -> Path:
    """Put a student's notebook where nbgrader collects it:
    ``submitted/STUDENT/ASSIGNMENT/NAME.ipynb`` (assignment from the name's
    lesson number when not given)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", student or ""):
        raise ArgumentError(f"a student id is letters, digits, '.', '_' or '-', got {student!r}")
    notebook = Path(notebook)
    if not notebook.is_file():
        raise ArgumentError(f"no notebook {notebook}")
    a = assignment or (assignment_id(notebook.name[:2]) if notebook.name[:2].isdigit() else None)
    if not a:
        raise ArgumentError(f"which assignment is {notebook.name}? name it NN-*.ipynb or pass --assignment")
    dest = Path(root) / "submitted" / student / a / notebook.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, dest)
    return dest


@dataclass
class Graded:
    """One submission, autograded."""

    assignment: str
    student: str
    ok: bool
    log: str = ""
    feedback: list[Path] = field(default_factory=list)
    reaped: str = ""
    gave_back: list[str] = field(default_factory=list)   # what the submission's kernel left, removed


def offline_feedback(html: str) -> str:
    """nbgrader's feedback HTML without what a browser would fetch from the
    internet (require.js, MathJax, the widget manager, CDN stylesheets)."""
    html = _SCRIPT_SRC.sub("", html)
    html = _LINK_EXT.sub("", html)
    html = _SCRIPT_BLOCK.sub(lambda m: "" if external_references(m.group(0)) else m.group(0), html)
    # bootstrap's icon font (../fonts/glyphicons-*): not shipped, and nothing in the feedback needs it
    return _FONT_FACE.sub(lambda m: "" if external_references(f"<style>{m.group(0)}</style>") else m.group(0), html)


def autograde(root: Path, assignments: list[str] | None = None, students: list[str] | None = None, *,
              timeout: int = DEFAULT_CELL_TIMEOUT, feedback: bool = True) -> list[Graded]:
    """Autograde every submission (or the ones named), one at a time, each in
    a fresh kernel; what a submission left in the kernel is given back before
    the next (GradeExecute, then a reap of dead owners). Writes offline
    feedback HTML under ``feedback/``. Needs root."""
    if os.geteuid() != 0:
        raise LabkitError("autograding loads the students' BPF programs: run it as root (sudo labkit course ...)")
    root = Path(root)
    api = _api(root, timeout)
    sub = root / "submitted"
    done = []
    for student_dir in sorted(p for p in sub.iterdir() if p.is_dir()) if sub.is_dir() else []:
        if students and student_dir.name not in students:
            continue
        for a_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if assignments and a_dir.name not in assignments:
                continue
            res = api.autograde(a_dir.name, student_dir.name, force=True)
            g = Graded(a_dir.name, student_dir.name, bool(res.get("success")),
                       (res.get("log") or "") + (res.get("error") or ""))
            g.gave_back = [ln.split("labkit: gave back what the submission's kernel left: ", 1)[1]
                           for ln in g.log.splitlines() if "labkit: gave back what the submission's kernel left: " in ln]
            g.reaped = reap_dead_owners()
            if g.ok and feedback:
                fb = api.generate_feedback(a_dir.name, student_dir.name, force=True)
                if not fb.get("success"):
                    g.ok, g.log = False, g.log + (fb.get("log") or "") + (fb.get("error") or "")
                for html in sorted((root / "feedback" / student_dir.name / a_dir.name).glob("*.html")):
                    text = offline_feedback(html.read_text(encoding="utf-8"))
                    refs = external_references(text)
                    if refs:
                        raise LabkitError(f"{html} would load from outside the file: {'; '.join(refs[:5])}")
                    html.write_text(text, encoding="utf-8")
                    g.feedback.append(html)
            done.append(g)
    return done
