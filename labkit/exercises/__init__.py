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
this module is imported: snippets are read when a check, hint or solution
needs them.
"""

from __future__ import annotations

from labkit._errors import LabkitError
from labkit.exercises.framework import SUMMARY_MIME, Exercise, Lesson, Result
from labkit.exercises.lessons import lesson00 as _lesson00
from labkit.exercises.lessons import lesson01 as _lesson01
from labkit.exercises.lessons import lesson02 as _lesson02
from labkit.exercises.lessons import lesson03 as _lesson03
from labkit.exercises.lessons import lesson04 as _lesson04
from labkit.exercises.lessons import lesson05 as _lesson05
from labkit.exercises.lessons import lesson06 as _lesson06
from labkit.exercises.lessons import lesson07 as _lesson07
from labkit.exercises.lessons import lesson08 as _lesson08
from labkit.exercises.lessons import lesson09 as _lesson09
from labkit.exercises.lessons import lesson10 as _lesson10

__all__ = ["Exercise", "Lesson", "Result", "SUMMARY_MIME", "lesson"]

_BUILDERS = {"00": _lesson00.build, "01": _lesson01.build, "02": _lesson02.build, "03": _lesson03.build,
             "04": _lesson04.build, "05": _lesson05.build, "06": _lesson06.build, "07": _lesson07.build,
             "08": _lesson08.build, "09": _lesson09.build, "10": _lesson10.build}
_made: dict[str, Lesson] = {}


def lesson(number: str | int) -> Lesson:
    """The exercises of lesson ``number`` ("01" or 1); made once per process."""
    key = f"{int(number):02d}" if str(number).isdigit() else str(number)
    if key not in _BUILDERS:
        raise LabkitError(f"no lesson {number!r}; lessons with exercises: {', '.join(_BUILDERS)}")
    if key not in _made:
        _made[key] = _BUILDERS[key]()
    return _made[key]


def __getattr__(name: str):
    """``labkit.exercises.lesson01`` is ``lesson("01")``."""
    if name.startswith("lesson") and name[6:].isdigit():
        return lesson(name[6:])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

