"""Self-checking exercises: every check runs the student's answer on the real
kernel (a filter on real events, a BPF program loaded, attached and fed
traffic) and says what is right or wrong.

    from labkit.exercises import lesson01 as ex
    ex.q1.check(my_filter)      # correct / incorrect, and why / not attempted
    ex.q1.hint()
    ex.q1.solution()
    ex.q1.check_solution()      # the checker run on the reference answer
    ex.summary()                # what this run did, as a table (and JSON)

``check()`` shows its verdict and returns it (a :class:`Result`: ``.status``
is "correct", "incorrect" or "not attempted", ``.message`` says why, and
``bool(result)`` is whether it was correct). Nothing is read or loaded when
this module is imported: a lesson's module is imported when the lesson is
first asked for, and snippets are read when a check, hint or solution needs
them.
"""

from __future__ import annotations

import importlib

from labkit._errors import LabkitError
from labkit.exercises.framework import SUMMARY_MIME, Exercise, Lesson, Result
from labkit.exercises.lessons import lesson_numbers

__all__ = ["Exercise", "Lesson", "Result", "SUMMARY_MIME", "lesson"]

_made: dict[str, Lesson] = {}


def lesson(number: str | int) -> Lesson:
    """The exercises of lesson ``number`` ("01" or 1); made once per process."""
    key = f"{int(number):02d}" if str(number).isdigit() else str(number)
    numbers = lesson_numbers()
    if key not in numbers:
        raise LabkitError(f"no lesson {number!r}; lessons with exercises: {', '.join(numbers)}")
    if key not in _made:
        _made[key] = importlib.import_module(f"{__name__}.lessons.lesson{key}").build()
    return _made[key]


def __getattr__(name: str):
    """``labkit.exercises.lesson01`` is ``lesson("01")``."""
    if name.startswith("lesson") and name[6:].isdigit():
        return lesson(name[6:])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

