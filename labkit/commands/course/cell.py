"""The autograder's test cell: run an exercise's own real-kernel check on the
student's answer and turn its verdict into nbgrader points.

nbgrader reads a test cell's result as partial credit when the cell's value is
a number (``points × Result.score``); an error, or anything on stderr, is
zero. So :func:`grade` shows the checker's verdict (what was wrong), prints one
feedback line, records the grade as JSON (``GRADE_MIME``, read by the class
overview) and returns the points; the check's own stderr goes to stdout so a
warning never costs a student their points.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from labkit.exercises.framework import INCORRECT, Exercise, Result
from labkit.views.display import ShownOnce

__all__ = ["GRADE_MIME", "Grade", "grade"]

#: the mime type of a grade's JSON in an autograded notebook
GRADE_MIME = "application/vnd.labkit.grade+json"


class Grade(ShownOnce):
    """One exercise's grade: points out of ``points``, and the checker's message."""

    def __init__(self, exercise: str, result: Result, points: float):
        self.exercise = exercise
        self.result = result
        self.points = points
        self.earned = round(points * result.score, 3)

    def to_dict(self) -> dict:
        r = self.result
        return {"exercise": self.exercise, "status": r.status, "score": r.score, "earned": self.earned,
                "points": self.points, "message": r.message, "seconds": round(r.seconds, 3),
                "parts": [p.to_dict() for p in r.parts]}

    def text(self) -> str:
        return f"{self.exercise}: {self.earned:g} of {self.points:g} points ({self.result.status}): {self.result.message}"

    def mimebundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), GRADE_MIME: self.to_dict()}


def grade(exercise: Exercise, answer: Any, points: float) -> float:
    """Check ``answer`` with ``exercise``'s checker (on the real kernel) and
    return ``points × score``. Under ``nbgrader validate`` the reference
    solution (the instructor's source notebook) is checked as the reference,
    and an answer that is not correct raises (validate reports it failed)."""
    with contextlib.redirect_stderr(sys.stdout):
        res = exercise.check(answer)
        if (res.status == INCORRECT and res.details.get("error") == "reference"
                and os.environ.get("NBGRADER_EXECUTION") == "validate"):
            res = exercise.check_solution()
    g = Grade(exercise.id, res, float(points))
    g.show()
    if os.environ.get("NBGRADER_EXECUTION") == "validate" and not res.correct:
        # nbgrader validate (the instructor's check of the source, a student's Validate button):
        # a test that did not pass is an error there, with the checker's message
        raise AssertionError(f"{exercise.id}: {res.status}: {res.message}")
    return g.earned
