"""A course's own grading settings: ``COURSE/labkit.toml``, read at every
autograde (by ``labkit course`` and by ``nbgrader`` run by hand in the course).

    [grading]
    reference = "zero"     # what a verbatim copy of the reference solution earns: "zero" or "full"
    decimals = 2           # points are rounded once, to this many decimals

    [due]                  # when each assignment is due (a TOML date-time; no offset: this machine's time)
    lesson01 = 2026-03-09T23:59:00+01:00

    [weights.lesson06.q1]  # a part's weight (labkit's table: `labkit course weights COURSE`)
    "exact while two CPUs count at once" = 4
    [gates.lesson06.q1]    # when that part fails, the exercise earns at most this fraction
    "exact while two CPUs count at once" = 0.25

Also the submission times: nbgrader's ``timestamp.txt`` beside each
submission (``submitted/STUDENT/ASSIGNMENT/timestamp.txt``), written by
``labkit course submit`` and by nbgrader's own collect, and how late a
submission is against its assignment's due date.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from nbgrader.utils import parse_utc

from labkit._errors import ArgumentError
from labkit.commands.course.cell import GRADING_ENV
from labkit.commands.course.weights import DEFAULT_WEIGHTS, known_parts, lesson_of
from labkit.exercises.framework import REFERENCE_POLICIES, Scoring

__all__ = ["CourseSettings", "DEFAULT_DECIMALS", "GRADING_ENV", "SETTINGS_FILE", "SETTINGS_TEMPLATE",
           "TIMESTAMP_FILE", "grading_payload", "late_by", "load_settings", "parse_time", "read_timestamp",
           "say_late", "say_time", "write_settings_template", "write_timestamp"]

SETTINGS_FILE = "labkit.toml"
TIMESTAMP_FILE = "timestamp.txt"
DEFAULT_DECIMALS = 2
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"    # nbgrader's own (Exchange.timestamp_format), in UTC

SETTINGS_TEMPLATE = '''\
# labkit's grading settings for this course: read by every `labkit course autograde`
# (and by `nbgrader autograde` run here). `labkit course create` writes this file once
# and never overwrites it. `labkit course weights .` prints the weights a course grades with.

[grading]
# What a verbatim copy of the reference solution earns:
#   "zero": 0 points; the feedback says "that is the reference solution, not your answer"
#   "full": graded like any other answer (the feedback says it is a copy)
reference = "zero"
# Points are rounded once, to this many decimals: the same number in grades.csv,
# the feedback and nbgrader's gradebook.
decimals = 2

[due]
# When each assignment is due; a submission's time is its timestamp.txt
# (`labkit course submit` writes it). A TOML date-time; without an offset it is this
# machine's local time.
# lesson01 = 2026-03-09T23:59:00+01:00

# An exercise's parts weigh what labkit's table says (parts it does not name weigh 1).
# Your own weights, part by part (the names as `labkit course weights .` prints them):
# [weights.lesson06.q1]
# "exact while two CPUs count at once" = 4
#
# Gates: when that part fails, the exercise earns at most this fraction of its points
# (0: nothing), whatever its other parts did. 1 turns a gate off.
# [gates.lesson06.q1]
# "exact while two CPUs count at once" = 0.25
'''


@dataclass
class CourseSettings:
    """A course's grading settings (defaults when the course has no labkit.toml)."""

    reference: str = "zero"
    decimals: int = DEFAULT_DECIMALS
    due: dict[str, datetime] = field(default_factory=dict)                       # assignment -> due (UTC)
    weights: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # assignment -> ex -> part
    gates: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)   # part names labkit does not know (typos?)

    @property
    def overrides(self) -> dict:
        return {"weights": self.weights, "gates": self.gates}

    def due_for(self, assignment: str) -> datetime | None:
        return self.due.get(assignment)


def parse_time(value: Any, *, what: str = "a time") -> datetime:
    """A moment as an aware UTC datetime: a datetime (naive: this machine's local time), a date (its end,
    23:59:59 local) or a string in ISO 8601 ("2026-03-09 23:59", "2026-03-09T23:59:00+01:00")."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ArgumentError(f"{what}: {value!r} is not a date and time (write 2026-03-09 23:59, "
                                "or 2026-03-09T23:59:00+01:00)") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(23, 59, 59))
    if not isinstance(value, datetime):
        raise ArgumentError(f"{what}: {value!r} is not a date and time")
    return value.astimezone(timezone.utc)    # a naive datetime is taken as local time


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise ArgumentError(f"{where}: {v!r} is not a number")
    return float(v)


def _per_part(table: Any, kind: str, where: Path) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    if not isinstance(table, dict):
        raise ArgumentError(f"{where}: [{kind}] holds [{kind}.ASSIGNMENT.EXERCISE] tables")
    for a, exercises in table.items():
        if not isinstance(exercises, dict) or not all(isinstance(p, dict) for p in exercises.values()):
            raise ArgumentError(f"{where}: [{kind}.{a}] holds one table per exercise, e.g. [{kind}.{a}.q1] "
                                f"with \"part name\" = number")
        for e, parts in exercises.items():
            out.setdefault(a, {})[e] = {str(p): _number(v, f"{where}: [{kind}.{a}.{e}] {p!r}")
                                        for p, v in parts.items()}
            try:
                Scoring(**{("weights" if kind == "weights" else "gates"): out[a][e]})
            except ValueError as err:
                raise ArgumentError(f"{where}: [{kind}.{a}.{e}]: {err}") from None
    return out


def _unknown_parts(s: CourseSettings) -> list[str]:
    """Overrides that name an exercise or a part labkit's table does not have (a typo does nothing)."""
    said = []
    for kind, table in (("weights", s.weights), ("gates", s.gates)):
        for a, exercises in table.items():
            lesson = lesson_of(a)
            if lesson is None:
                continue
            for e, parts in exercises.items():
                if (lesson, e) not in DEFAULT_WEIGHTS:
                    said.append(f"[{kind}.{a}.{e}]: labkit knows no exercise {e} in lesson {lesson}")
                    continue
                known = known_parts(lesson, e)
                marked = Scoring(dict.fromkeys(known, 2.0))      # a name labkit knows weighs 2 here
                for p in parts:
                    if marked.weight(p) != 2.0:
                        said.append(f"[{kind}.{a}.{e}] {p!r} names no part labkit knows; its parts: "
                                    + "; ".join(map(repr, known)))
    return said


def load_settings(root: Path) -> CourseSettings:
    """The settings of the course at ``root`` (``root/labkit.toml``; defaults when there is none).
    A file that cannot be read, or says something labkit cannot use, raises ArgumentError naming it."""
    path = Path(root) / SETTINGS_FILE
    if not path.is_file():
        return CourseSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ArgumentError(f"{path}: {e}") from None
    unknown = sorted(set(data) - {"grading", "due", "weights", "gates"})
    if unknown:
        raise ArgumentError(f"{path}: unknown table(s) {', '.join(unknown)} (labkit reads [grading], [due], "
                            "[weights.ASSIGNMENT.EXERCISE] and [gates.ASSIGNMENT.EXERCISE])")
    g = data.get("grading", {})
    if not isinstance(g, dict) or set(g) - {"reference", "decimals"}:
        raise ArgumentError(f"{path}: [grading] has reference and decimals, not "
                            f"{', '.join(sorted(set(g) - {'reference', 'decimals'})) if isinstance(g, dict) else g}")
    s = CourseSettings(path=path)
    s.reference = str(g.get("reference", "zero")).strip().lower()
    if s.reference not in REFERENCE_POLICIES:
        raise ArgumentError(f"{path}: [grading] reference is \"zero\" or \"full\", not {g.get('reference')!r}")
    d = g.get("decimals", DEFAULT_DECIMALS)
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6:
        raise ArgumentError(f"{path}: [grading] decimals is a whole number from 0 to 6, not {d!r}")
    s.decimals = d
    due = data.get("due", {})
    if not isinstance(due, dict):
        raise ArgumentError(f"{path}: [due] holds ASSIGNMENT = date-time lines")
    s.due = {str(a): parse_time(v, what=f"{path}: [due] {a}") for a, v in due.items()}
    s.weights = _per_part(data.get("weights", {}), "weights", path)
    s.gates = _per_part(data.get("gates", {}), "gates", path)
    s.warnings = _unknown_parts(s)
    return s


def write_settings_template(root: Path) -> Path | None:
    """Write ``root/labkit.toml`` with the defaults, commented, unless the course has one (returns it if written)."""
    path = Path(root) / SETTINGS_FILE
    if path.exists():
        return None
    path.write_text(SETTINGS_TEMPLATE, encoding="utf-8")
    return path


def grading_payload(s: CourseSettings, assignment: str) -> dict:
    """What the grading kernel needs of the settings for one assignment (JSON, under GRADING_ENV)."""
    return {"assignment": assignment, "reference": s.reference, "decimals": s.decimals,
            "weights": {assignment: s.weights.get(assignment, {})}, "gates": {assignment: s.gates.get(assignment, {})}}


# ------------------------------------------------------------------ submission times
def write_timestamp(directory: Path, when: datetime | None = None) -> Path:
    """Write nbgrader's ``timestamp.txt`` (UTC) in a submission's directory: ``when``, or now."""
    moment = parse_time(when) if when is not None else datetime.now(timezone.utc)
    path = Path(directory) / TIMESTAMP_FILE
    path.write_text(moment.strftime(_TIMESTAMP_FORMAT) + "\n")
    return path


def read_timestamp(directory: Path) -> datetime | None:
    """When a submission was made (its ``timestamp.txt``, as nbgrader reads it), as UTC; None without one."""
    path = Path(directory) / TIMESTAMP_FILE
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        moment = parse_utc(text)
    except (ValueError, OverflowError):
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def late_by(submitted: datetime | None, due: datetime | None) -> timedelta | None:
    """How late a submission is (0 when on time); None when there is no due date or no submission time."""
    if submitted is None or due is None:
        return None
    return max(submitted - due, timedelta(0))


def say_time(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "unknown"


def say_late(submitted: datetime | None, due: datetime | None) -> str:
    """"submitted 2026-03-10 08:30 UTC, 9 h 31 min late (due 2026-03-09 22:59 UTC)", "..., on time", ..."""
    if submitted is None:
        return "submission time unknown (no timestamp.txt)" + (f", due {say_time(due)}" if due else "")
    head = f"submitted {say_time(submitted)}"
    late = late_by(submitted, due)
    if late is None:
        return head + ", no due date"
    if not late:
        return head + ", on time"
    minutes = int(late.total_seconds() // 60)
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    said = " ".join(x for x in (f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m or not (d or h) else "")
                    if x)
    return f"{head}, LATE by {said} (due {say_time(due)})"

