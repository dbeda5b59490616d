"""The autograder's test cell: an exercise's own real-kernel verdict on the
student's answer, turned into nbgrader points.

nbgrader reads a test cell's result as partial credit when the cell's value is
a number (``points × score``); an error, or anything on stderr, is zero. So
:func:`grade` takes the verdict — the one the student's own check cell just
gave on the same answer (the checker runs once per exercise), or a check run
here when there was none — weighs its parts as the course says (labkit's
table, :mod:`~labkit.commands.course.weights`, with the course's labkit.toml
on top, passed in by the grader under ``LABKIT_GRADING``), rounds the points
once (the course's ``decimals``), prints one feedback block (the points, the
checker's message, each part with its weight, the gate that capped it, what a
copy of the reference earns here), records the grade as JSON (``GRADE_MIME``,
read by the gradebook and the class overview) and returns the points. The
check's own stderr goes to stdout so a warning never costs a student their
points.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

from labkit.commands.course.weights import course_scoring
from labkit.exercises.framework import INCORRECT, Exercise, Result, Scoring, reference_policy
from labkit.views.display import ShownOnce

__all__ = ["CHECK_CELL", "GRADE_CELL", "GRADE_MIME", "GRADING_ENV", "Grade", "grade", "grading_settings"]

#: the mime type of a grade's JSON in an autograded notebook
GRADE_MIME = "application/vnd.labkit.grade+json"
#: where the verdict came from: the student's own check cell (reused), or a check run by the test cell
CHECK_CELL, GRADE_CELL = "check cell", "grade cell"
#: the environment variable that carries a course's grading settings (JSON) into the grading kernel
GRADING_ENV = "LABKIT_GRADING"
_DEFAULT_DECIMALS = 2


def grading_settings() -> dict:
    """The course's settings for this kernel's grading (from ``LABKIT_GRADING``, which the autograder
    sets), or the defaults: labkit's weights, a copy of the reference earns zero, points to 2 decimals."""
    try:
        got = json.loads(os.environ.get(GRADING_ENV) or "{}")
    except ValueError:
        got = {}
    got = got if isinstance(got, dict) else {}
    decimals = got.get("decimals", _DEFAULT_DECIMALS)
    return {"assignment": got.get("assignment"), "decimals": decimals if isinstance(decimals, int) else 2,
            "weights": got.get("weights") or {}, "gates": got.get("gates") or {}}


def _reference_note(result: Result, policy: str) -> str:
    if result.details.get("reference_copy"):
        return ("this is a verbatim copy of the reference solution: this course grades it like any other "
                "answer (its integrity setting: full)")
    if result.status == INCORRECT and result.details.get("error") == "reference":
        return ("this course gives a verbatim copy of the reference solution 0 points (its integrity setting: "
                f"{policy})")
    return ""


class Grade(ShownOnce):
    """One exercise's grade: points out of ``points`` (``points × score``, rounded once to ``decimals``),
    the checker's message, and how the parts were weighed."""

    def __init__(self, exercise: str, result: Result, points: float, *, scoring: Scoring | None = None,
                 decimals: int = _DEFAULT_DECIMALS, verdict_from: str = GRADE_CELL, policy: str = "zero"):
        self.exercise = exercise
        self.result = result
        self.points = points
        self.scoring = scoring or Scoring()
        self.decimals = decimals
        self.verdict_from = verdict_from
        self.policy = policy
        self.fraction = self.scoring.fraction(result.status, result.parts)
        self.score = round(self.fraction, 3)
        self.earned = round(points * self.fraction, decimals) + 0.0     # + 0.0: never "-0"

    def to_dict(self) -> dict:
        r = self.result
        return {"exercise": self.exercise, "status": r.status, "score": self.score, "earned": self.earned,
                "points": self.points, "message": r.message, "seconds": round(r.seconds, 3),
                "parts": [p.to_dict() for p in r.parts], "scoring": self.scoring.to_dict(r.parts),
                "gated_by": [p.name for p, c in self.scoring.gates_failed(r.parts)
                             if c < self.scoring.weighed(r.parts)],
                "verdict_from": self.verdict_from, "reference_copy": bool(r.details.get("reference_copy")),
                "integrity": self.policy}

    def text(self) -> str:
        r = self.result
        lines = [f"{self.exercise}: {self.earned:g} of {self.points:g} points ({r.status}): {r.message}"]
        note = _reference_note(r, self.policy)
        if note:
            lines.append(note)
        if r.parts and r.status == INCORRECT:
            lines += ["  " + ln for ln in self.scoring.explain(r.parts)]
        return "\n".join(lines)

    def mimebundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), GRADE_MIME: self.to_dict()}


def grade(exercise: Exercise, answer: Any, points: float) -> float:
    """The points ``answer`` earns on ``exercise`` (its real-kernel checker): the verdict of the student's
    own check of this very answer when there was one, else a check run now; weighed as the course says and
    rounded once. Under ``nbgrader validate`` the reference solution (the instructor's source notebook) is
    checked as the reference, and an answer that is not correct raises (validate reports it failed)."""
    settings = grading_settings()
    validating = os.environ.get("NBGRADER_EXECUTION") == "validate"
    with contextlib.redirect_stderr(sys.stdout):
        res = exercise.verdict_for(answer)
        verdict_from = CHECK_CELL
        if res is None:
            res = exercise.check(answer)
            verdict_from = GRADE_CELL
        if res.status == INCORRECT and res.details.get("error") == "reference" and validating:
            res = exercise.check_solution()
            verdict_from = GRADE_CELL
    assignment = settings["assignment"] or (f"lesson{exercise.lesson}" if exercise.lesson else "")
    scoring = course_scoring(settings, assignment, exercise.id, exercise.lesson or None)
    g = Grade(exercise.id, res, float(points), scoring=scoring, decimals=settings["decimals"],
              verdict_from=verdict_from, policy=reference_policy())
    g.show()
    if validating and not res.correct:
        # nbgrader validate (the instructor's check of the source, a student's Validate button):
        # a test that did not pass is an error there, with the checker's message
        raise AssertionError(f"{exercise.id}: {res.status}: {res.message}")
    return g.earned
