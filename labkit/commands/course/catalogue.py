"""``labkit course check-catalogue FILE ...``: a teacher's own answers, right
and wrong, judged by the exercises' checkers on the real kernel.

A catalogue is a TOML file, one ``[[case]]`` per answer::

    [[case]]
    lesson = "02"                 # the lesson's number
    exercise = "q1"
    name = "drops every ICMP message"
    expect = "incorrect"          # or "correct"
    says = "echo replies"         # optional: words the checker's message must contain
    answer = '''
    int xdp_arp_safe(struct xdp_md *ctx) { ... }
    '''
    # instead of answer: answer_file = "answers/02-all-icmp.c" (next to this file),
    # or answer_python = "lambda df: df[df.pid == os.getpid()]" (for exercises that take Python; os is there)

Each case is judged as a student's answer would be, except that a copy of the
reference solution is judged like any other answer (a student's verbatim copy
earns what the course's integrity policy says; here the question is whether
the checker is right). A case passes when the verdict is the one expected and
the message holds ``says``; the command exits 1 when any case does not.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit._errors import ArgumentError
from labkit.attach import live_attachments
from labkit.exercises import lesson as _lesson

__all__ = ["Case", "Outcome", "check_cases", "load_catalogue"]

_EXPECT = ("correct", "incorrect")
_ANSWER_KEYS = ("answer", "answer_file", "answer_python")
_KNOWN = {"lesson", "exercise", "name", "expect", "says", *_ANSWER_KEYS}


@dataclass
class Case:
    file: Path
    index: int            # 1-based, in its file
    lesson: str
    exercise: str
    name: str
    expect: str
    says: str | None
    answer: Any

    @property
    def where(self) -> str:
        return f"{self.file}, case {self.index} ({self.name!r})"


@dataclass
class Outcome:
    case: Case
    status: str
    message: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == self.case.expect and (not self.case.says or self.case.says in self.message)

    @property
    def why(self) -> str:
        if self.status != self.case.expect:
            return f"expected {self.case.expect}, judged {self.status}"
        if self.case.says and self.case.says not in self.message:
            return f"{self.status} as expected, but the message does not say {self.case.says!r}"
        return f"{self.status} as expected"


def _case(path: Path, i: int, raw: Any) -> Case:
    where = f"{path}, case {i}"
    if not isinstance(raw, dict):
        raise ArgumentError(f"{where}: each [[case]] is a table of keys (lesson, exercise, name, expect, answer)")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ArgumentError(f"{where}: unknown key(s) {', '.join(unknown)}; a case has "
                            f"{', '.join(sorted(_KNOWN))}")
    for key in ("lesson", "exercise", "name", "expect"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ArgumentError(f"{where}: '{key}' is missing (a string, e.g. lesson = \"02\", exercise = \"q1\", "
                                f"name = \"what this answer does\", expect = \"incorrect\")")
    where = f"{path}, case {i} ({raw['name']!r})"
    lesson_no = raw["lesson"].strip().zfill(2)
    try:
        exercises = _lesson(lesson_no)
    except Exception:
        raise ArgumentError(f"{where}: there is no lesson {raw['lesson']!r} with exercises") from None
    if raw["exercise"] not in exercises.exercises:
        raise ArgumentError(f"{where}: lesson {lesson_no} has no exercise {raw['exercise']!r}; its exercises: "
                            f"{', '.join(exercises.exercises)}")
    if raw["expect"] not in _EXPECT:
        raise ArgumentError(f"{where}: expect must be \"correct\" or \"incorrect\", not {raw['expect']!r}")
    given = [k for k in _ANSWER_KEYS if k in raw]
    if len(given) != 1:
        raise ArgumentError(f"{where}: give the answer once, as one of {', '.join(_ANSWER_KEYS)}"
                            + (f" (it has {', '.join(given)})" if given else ""))
    key = given[0]
    if key == "answer":
        answer = raw["answer"]
    elif key == "answer_file":
        f = (path.parent / raw["answer_file"]).resolve()
        try:
            answer = f.read_text()
        except OSError as e:
            raise ArgumentError(f"{where}: cannot read answer_file {f}: {e.strerror}") from None
    else:
        try:
            answer = eval(compile(raw["answer_python"], f"<{where}>", "eval"), {"os": os})   # the teacher's own code
        except Exception as e:
            raise ArgumentError(f"{where}: answer_python does not evaluate: {type(e).__name__}: {e}") from None
    says = raw.get("says")
    if says is not None and not isinstance(says, str):
        raise ArgumentError(f"{where}: 'says' is the words the message must contain, a string")
    return Case(path, i, lesson_no, raw["exercise"], raw["name"], raw["expect"], says, answer)


def load_catalogue(path: Path) -> list[Case]:
    """The cases of one catalogue file, each checked before anything runs."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ArgumentError(f"cannot read the catalogue {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ArgumentError(f"{path} is not valid TOML: {e}") from None
    raw = data.get("case")
    if not isinstance(raw, list) or not raw:
        raise ArgumentError(f"{path} has no [[case]] tables: each answer is one [[case]] "
                            "(see `labkit course check-catalogue --help`)")
    return [_case(path, i, c) for i, c in enumerate(raw, 1)]


def check_cases(cases: list[Case]) -> list[Outcome]:
    """Judge every case on this kernel, one after another; each check gives
    back what it attached (the checkers do; this asserts it)."""
    out = []
    for case in cases:
        ex = getattr(_lesson(case.lesson), case.exercise)
        res = ex.judge(case.answer)
        out.append(Outcome(case, res.status, res.message, res.seconds))
        left = live_attachments()
        if left:
            for att in left:
                att.detach()
            raise RuntimeError(f"{case.where}: the checker left {len(left)} attachment(s); report this")
    return out
