"""The exercise framework: an :class:`Exercise` runs a checker on the student's
answer and turns what it says into a :class:`Result` (correct, incorrect and
why, or not attempted); a :class:`Lesson` holds a lesson's exercises, whose
verdicts it shows at the end as a :class:`Summary`. Also the
helpers the lessons' checkers share (a :class:`Checklist` of the behaviours a
task names, loading an answer, reading a map's key and value columns, running
Python in a child process, reading a snippet).

Verdicts belong to the student. ``check(answer)`` records the student's
verdict; ``check_solution()`` runs the same checker on the reference answer
and records that apart (``reference``), never as the student's. An answer that
*is* a reference solution (its snippet name, or its text) is judged incorrect:
"the reference solution, not your answer" — unless the course's integrity
setting says a copy earns what the checker gives (:func:`reference_policy`,
``LABKIT_REFERENCE_ANSWERS=full``, set by the autograder). A checker reports
the parts of the task it tested (``Result.parts``, ``Result.score``), so
grading can give partial credit; a :class:`Scoring` weighs the parts (a teacher's
weights, and gates: an essential part that fails caps the whole score).
The grader reuses the student's own check of the same answer
(:meth:`Exercise.verdict_for`) instead of running the checker twice.

A checker is two steps, a :class:`Check`: ``observe(answer)`` runs the answer on
the kernel and returns what it did, as plain data (an *observation*: counts,
packets seen, errors; JSON's types), and ``diagnose(observation)`` decides the
verdict, its parts and its message from that alone (a pure function). The
observation is kept in the result's details (``details["observation"]``), and
:meth:`Exercise.diagnose` judges a recorded one again without the kernel.

A student release (``labkit course``) ships without the reference solutions
(:func:`student_release`): ``solution()`` and ``check_solution()`` then say to
ask the instructor, and ``check()`` works as before.

Why this file is long: the verdict model (Exercise, Result, Lesson, Summary,
and Scoring: how a verdict's parts add up) and the few helpers every lesson's
checker calls (loading and attaching an answer, picking its function, reading
its maps) are one vocabulary; split, each lesson would import from several
places for one check.
"""

from __future__ import annotations

import copy
import html
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from labkit._errors import CompileError, LabkitError, VerifierError
from labkit.attach import live_attachments
from labkit.exercises.helpers import HelperFailed
from labkit.lab import Lab
from labkit.programs.compile import (
    REFERENCE_PREFIX,
    SNIPPET_DIR,
    Program,
    resolve_source,
)
from labkit.views.cellmagic import FailedCell
from labkit.views.display import ShownOnce
from labkit.views.panel import live_panels

__all__ = ["ASK_INSTRUCTOR", "CORRECT", "Check", "Checklist", "answer_function", "attach_answer", "Exercise", "INCORRECT", "Incorrect", "Lesson", "NOT_ATTEMPTED", "Note",
           "Part", "REFERENCE_POLICIES", "REFERENCE_POLICY_ENV", "Result", "STUDENT_RELEASE_ENV", "SUMMARY_MIME",
           "Scoring", "Summary", "int_key_column", "is_reference", "load_answer", "need_map", "plain_data", "plural",
           "reference_files", "reference_policy", "run_python", "snippet_text", "student_release", "value_column"]

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
#: the mime type of a lesson summary's JSON (``ex.summary()``), for tools and tests
SUMMARY_MIME = "application/vnd.labkit.summary+json"
#: set to 1 to behave as a student release even where the reference snippets are present
STUDENT_RELEASE_ENV = "LABKIT_STUDENT_RELEASE"
#: what a verbatim copy of a reference solution earns in ``check()``: "zero" (judged incorrect, "the
#: reference solution, not your answer") or "full" (judged like any answer); a course's autograder sets it
REFERENCE_POLICY_ENV = "LABKIT_REFERENCE_ANSWERS"
REFERENCE_POLICIES = ("zero", "full")
ASK_INSTRUCTOR = ("this is a student release: the reference solutions are not shipped with it. "
                  "Ask your instructor (ex.{id}.hint() gives a hint, ex.{id}.check(...) checks your own answer).")
_COLORS = {CORRECT: "#2a7d2a", INCORRECT: "#b03030", NOT_ATTEMPTED: "#8a6d00"}


class Incorrect(Exception):
    """Raised by a checker: the answer is wrong, and the message says why.
    ``parts``: the task's parts and which of them passed (partial credit)."""

    def __init__(self, message: str, *, parts: "list[Part] | None" = None, **details):
        super().__init__(message)
        self.parts = list(parts or [])
        self.details = details


@dataclass(frozen=True)
class Part:
    """One behaviour a task names, tested on the kernel: did the answer do it?"""

    name: str
    passed: bool
    message: str = ""  # what went wrong (empty when it passed)

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "message": self.message}


class Checklist:
    """The parts of one check. Each :meth:`part` records one behaviour the task
    names; :meth:`done` raises :class:`Incorrect` naming every part that failed,
    or returns the checker's success (message, details)."""

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def part(self, name: str, passed: bool, why_not: str = "") -> bool:
        self.parts.append(Part(name, bool(passed), "" if passed else (why_not or name)))
        return bool(passed)

    @property
    def failed(self) -> list[Part]:
        return [p for p in self.parts if not p.passed]

    def done(self, message: str, **details) -> tuple[str, dict]:
        failed = self.failed
        if failed:
            raise Incorrect("not yet: " + "; ".join(p.message for p in failed), parts=self.parts, **details)
        return message, {**details, "parts": self.parts}


def plain_data(x: Any) -> Any:
    """``x`` as JSON has it (a tuple becomes a list, a dict's keys text): what a recorded observation
    reads back as. TypeError when ``x`` holds something JSON cannot keep."""
    return json.loads(json.dumps(x))


@dataclass(frozen=True)
class Check:
    """A checker in two steps. ``observe(answer)`` runs the answer on the kernel (loads it, makes the
    events or the traffic, reads the maps) and returns the observation: plain data (JSON's types)
    of what happened; an answer that cannot be run at all (it does not compile, lacks the map the
    checker reads) stops there, as any checker. ``diagnose(observation)`` is pure: it decides from the
    observation alone, returning the success (message, details) or raising :class:`Incorrect`
    (through a :class:`Checklist`). Both steps see the observation as JSON has it, so a recorded one
    is judged exactly as the live one was; the result's details keep it (``"observation"``)."""

    observe: Callable[[Any], Any]
    diagnose: Callable[[Any], tuple[str, dict]]

    def __call__(self, answer: Any) -> tuple[str, dict]:
        return self.decide(self.observe(answer))

    def decide(self, observation: Any) -> tuple[str, dict]:
        """The verdict on an observation (the checker's success, or :class:`Incorrect`), with the
        observation in its details."""
        seen = plain_data(observation)
        try:
            message, details = self.diagnose(plain_data(seen))
        except Incorrect as e:
            e.details.setdefault("observation", seen)
            raise
        return message, {**details, "observation": seen}


def _matches(pattern: str, name: str) -> bool:
    """A part's name against a key of a weights or gates table: the name itself, or a pattern whose
    ``*`` stands for any text ("holds at most *")."""
    if pattern == name:
        return True
    return "*" in pattern and re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name, re.S) is not None


def _lookup(table: Mapping[str, float], name: str, default):
    if name in table:
        return table[name]
    return next((v for k, v in table.items() if _matches(k, name)), default)


def _percent(x: float) -> str:
    return f"{x * 100:.0f}%"


def _at_most(cap: float) -> str:
    return "nothing" if cap <= 0 else f"at most {_percent(cap)}"


@dataclass(frozen=True)
class Scoring:
    """How the parts of one check add up to its score, as a teacher weighs them.

    ``weights``: a part's name (or a pattern, ``*`` for any text) -> its weight
    (parts not named weigh 1). ``gates``: a part's name (or pattern) -> a cap:
    when that part fails, the exercise earns at most that fraction (0: nothing)
    whatever the other parts did — the essential behaviour gates the rest.

    The score: 1.0 when the answer is correct; 0.0 when it is not and no part
    could be tested (it did not compile, the checker stopped early); else the
    passed parts' weight over all the parts' weight, capped by every gate that
    failed. ``Scoring()`` weighs every part the same, with no gate."""

    weights: Mapping[str, float] = field(default_factory=dict)
    gates: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, table, top in (("weight", self.weights, math.inf), ("gate", self.gates, 1.0)):
            for k, v in table.items():
                if not isinstance(k, str) or not k:
                    raise ValueError(f"a {what}'s part is named by a non-empty string, not {k!r}")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= top or math.isnan(v):
                    raise ValueError(f"the {what} of {k!r} must be a number "
                                     + ("from 0 to 1 (the fraction the exercise earns at most when it fails)"
                                        if what == "gate" else "of 0 or more") + f", not {v!r}")

    def weight(self, name: str) -> float:
        """The weight of the part called ``name`` (1 unless the table says otherwise)."""
        return float(_lookup(self.weights, name, 1.0))

    def cap(self, name: str) -> float | None:
        """The most the exercise earns when the part called ``name`` fails (None: not a gate)."""
        c = _lookup(self.gates, name, None)
        return None if c is None else float(c)

    def merged(self, weights: Mapping[str, float] | None = None, gates: Mapping[str, float] | None = None) -> "Scoring":
        """This scoring with some parts' weights and gates replaced (a course's own settings)."""
        return Scoring({**self.weights, **(weights or {})}, {**self.gates, **(gates or {})})

    def weighed(self, parts: list[Part]) -> float:
        """The passed parts' weight over all the parts' weight, before any gate (unrounded)."""
        total = sum(self.weight(p.name) for p in parts)
        if total <= 0:
            return float(all(p.passed for p in parts))
        return sum(self.weight(p.name) for p in parts if p.passed) / total

    def gates_failed(self, parts: list[Part]) -> list[tuple[Part, float]]:
        """The failed parts that are gates, with their caps."""
        return [(p, c) for p in parts if not p.passed and (c := self.cap(p.name)) is not None]

    def fraction(self, status: str, parts: list[Part]) -> float:
        """The score, unrounded (see the class)."""
        if status == CORRECT:
            return 1.0
        if status != INCORRECT or not parts:
            return 0.0
        return min([self.weighed(parts)] + [c for _p, c in self.gates_failed(parts)])

    def score(self, result: "Result") -> float:
        """``result``'s score under these weights, to 3 decimals."""
        return round(self.fraction(result.status, result.parts), 3)

    def explain(self, parts: list[Part]) -> list[str]:
        """How the parts added up, one line each, then the gates that capped it (for feedback)."""
        if not parts:
            return []
        lines = [f"{'✓' if p.passed else '✗'} {p.name} (weight {self.weight(p.name):g}"
                 + (f"; essential: without it the exercise earns {_at_most(c)}" if (c := self.cap(p.name)) is not None
                    else "") + ")" for p in parts]
        w = self.weighed(parts)
        total = sum(self.weight(p.name) for p in parts)
        lines.append(f"parts passed: {sum(self.weight(p.name) for p in parts if p.passed):g} of {total:g} "
                     f"by weight ({_percent(w)})")
        for p, c in self.gates_failed(parts):
            if c < w:
                lines.append(f"an essential part failed ({p.name}): the exercise earns {_at_most(c)}")
        return lines

    def to_dict(self, parts: list[Part] | None = None) -> dict:
        """The weights and gates, of ``parts`` only when given (JSON)."""
        if parts is None:
            return {"weights": dict(self.weights), "gates": dict(self.gates)}
        return {"weights": {p.name: self.weight(p.name) for p in parts},
                "gates": {p.name: c for p in parts if (c := self.cap(p.name)) is not None}}


_EQUAL = Scoring()


class Result(ShownOnce):
    """The verdict of one check: ``status``, ``message``, the task's ``parts``
    (which passed) and ``score`` (1.0 correct, else the fraction of parts that
    passed, every part weighing the same — a course weighs them with a
    :class:`Scoring`; 0.0 when nothing could be tested). ``of`` is "your
    answer" or "reference solution"."""

    def __init__(self, exercise: str, status: str, message: str, details: dict | None = None,
                 seconds: float = 0.0, parts: list[Part] | None = None, of: str = "your answer"):
        self.exercise = exercise
        self.status = status
        self.message = message
        self.details = details or {}
        self.seconds = seconds
        self.parts = list(parts or [])
        self.of = of
        self.answer_seen = None   # the answer check() judged (an _AnswerSeen), for Exercise.verdict_for

    @property
    def score(self) -> float:
        return _EQUAL.score(self)

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __bool__(self) -> bool:
        return self.correct

    def mimebundle(self) -> dict[str, Any]:
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}

    def _repr_html_(self) -> str:
        color = _COLORS.get(self.status, "#333")
        msg = _inline_code(self.message).replace("\n", "<br>")
        who = " (the reference solution)" if self.of == "reference solution" else ""
        parts = ""
        if self.parts and self.status == INCORRECT:
            items = "".join(f"<li>{'&#10003;' if p.passed else '&#10007;'} {html.escape(p.name)}</li>"
                            for p in self.parts)
            parts = f"<ul style='margin:2px 0;padding-left:18px'>{items}</ul>"
        return (f"<div style='border-left:4px solid {color};padding:4px 8px'>"
                f"<b style='color:{color}'>{html.escape(self.exercise)}{who}: {self.status}</b>"
                f"<div style='white-space:pre-wrap'>{msg}</div>{parts}</div>")

    def __repr__(self) -> str:
        who = " (reference solution)" if self.of == "reference solution" else ""
        return f"{self.exercise}{who}: {self.status}: {self.message}"

    def to_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "of": self.of, "score": self.score,
                "parts": [p.to_dict() for p in self.parts], "seconds": round(self.seconds, 3),
                "details": _jsonable(self.details)}


class Note(ShownOnce):
    """A hint or a solution, shown as a titled note (with code, if any)."""

    def __init__(self, title: str, text: str, code: str | None = None, language: str = "c"):
        self.title, self.text, self.code, self.language = title, text, code, language

    def mimebundle(self) -> dict[str, Any]:
        body = f"<div>{_inline_code(self.text)}</div>" if self.text else ""
        if self.code:
            body += f"<pre style='font-size:12px'>{html.escape(self.code)}</pre>"
        plain = f"{self.title}\n{self.text}" + (f"\n\n{self.code}" if self.code else "")
        return {"text/html": f"<div style='border-left:4px solid #6a8caf;padding:4px 8px'>"
                             f"<b>{html.escape(self.title)}</b>{body}</div>", "text/plain": plain}

    def __repr__(self) -> str:
        return self.mimebundle()["text/plain"]


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _inline_code(text: str) -> str:
    """A message or hint as HTML: escaped, with its `code spans` set as code
    (the text/plain form keeps the backticks, which read well as text)."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(text))


def _jsonable(x):
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple, set)):
            return [_jsonable(v) for v in x]
        if hasattr(x, "item"):
            return x.item()
        return str(x)


@dataclass
class Exercise:
    """One exercise: ``task`` (what to do), a checker that runs the answer on
    the kernel, a ``hint`` and a reference solution. ``results`` are the
    student's checks; ``reference`` is the last check of the reference
    solution (kept apart: it never counts as the student's). ``lesson``: the
    number of the lesson it belongs to (set by :class:`Lesson`)."""

    id: str
    task: str
    checker: Callable[[Any], tuple[str, dict]]
    hint_text: str
    solution_text: Callable[[], str] | str
    solution_answer: Callable[[], Any]
    solution_language: str = "python"
    results: list = field(default_factory=list)
    reference: Result | None = None
    lesson: str = ""

    def check(self, answer: Any = None) -> Result:
        """Run ``answer`` against the real kernel; show and return the verdict.
        The name of a ``%%bpf`` cell that failed (a FailedCell) is incorrect
        as it is: the cell did not compile, fix it and run it again. A copy of
        the reference solution is incorrect ("not your answer"), or, where
        :func:`reference_policy` is "full", judged like any answer (its
        details then say ``reference_copy``)."""
        if answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip()):
            res = Result(self.id, NOT_ATTEMPTED, "put your answer in the variable above and run this cell again "
                                                 f"(task: {self.task})")
        elif isinstance(answer, FailedCell):  # a %%bpf cell that failed: never grade an older program of that name
            res = Result(self.id, INCORRECT, answer.verdict(),
                         {"error": "the %%bpf cell " + answer.failure, "cause": type(answer.error).__name__})
        elif is_reference(answer) or self._is_own_reference(answer):
            if reference_policy() == "full":
                res = self._run(answer, "your answer")
                res.details = {**res.details, "reference_copy": True}
            else:
                res = Result(self.id, INCORRECT, "that is the reference solution, not your answer: write your own "
                                                 "(ex.{0}.hint() helps)".format(self.id), {"error": "reference"})
        else:
            res = self._run(answer, "your answer")
        res.answer_seen = _AnswerSeen(answer)
        self.results.append(res)
        del self.results[:-10]
        res.show()
        return res

    def verdict_for(self, answer: Any) -> Result | None:
        """The student's last verdict, if it was on this very answer: the same
        text, or the same object unchanged since (a list or dict is compared
        with a copy taken at the check). None otherwise. The autograder's
        test cell reuses it rather than run the checker a second time."""
        last = self.last
        seen = getattr(last, "answer_seen", None)
        if last is None or last.of != "your answer" or not isinstance(seen, _AnswerSeen):
            return None
        return last if seen.same(answer) else None

    def judge(self, answer: Any) -> Result:
        """The checker's verdict on ``answer``, neither shown nor recorded as
        the student's, and without the integrity rule (a reference answer is
        judged like any other): for teachers' catalogues
        (``labkit course check-catalogue``)."""
        if isinstance(answer, FailedCell):
            return Result(self.id, INCORRECT, answer.verdict(), {"error": "the %%bpf cell " + answer.failure})
        return self._run(answer, "catalogue answer")

    def _is_own_reference(self, answer: Any) -> bool:
        """A C reference kept as text rather than a snippet (e.g. one that needs a USDT context)."""
        if self.solution_language != "c":
            return False
        try:
            ref = self.solution_answer()
        except (OSError, LabkitError):   # a reference that is not here: nothing to compare with
            return False
        if not isinstance(ref, str) or "{" not in ref:
            return False  # a snippet name: is_reference knows those
        text = answer.source if isinstance(answer, Program) else answer if isinstance(answer, str) else None
        return text is not None and _normalized_c(text) == _normalized_c(ref)

    def check_solution(self) -> Result:
        """Run the checker on the reference solution: proof that the checker
        (and this kernel) works. Shows only the verdict, and does not change
        yours."""
        if student_release():
            res = Result(self.id, NOT_ATTEMPTED, ASK_INSTRUCTOR.format(id=self.id), of="reference solution")
            res.show()
            return res
        res = self._run(self.solution_answer(), "reference solution")
        res.details = {**res.details, "checked": "reference solution"}
        self.reference = res
        res.show()
        return res

    def diagnose(self, observation: Any, of: str = "recorded observation") -> Result:
        """The verdict the checker gives for ``observation`` (what ``details["observation"]`` of an
        earlier result holds), decided again without running anything: the checker's pure step.
        Neither shown nor recorded as the student's."""
        if not isinstance(self.checker, Check):
            raise LabkitError(f"exercise {self.id}'s checker is not an observe + diagnose Check: it cannot judge "
                              "an observation without running the answer")
        return self._verdict(lambda: self.checker.decide(observation), of)

    def _run(self, answer: Any, of: str) -> Result:
        return self._verdict(lambda: self.checker(answer), of)

    def _verdict(self, run: Callable[[], tuple[str, dict]], of: str) -> Result:
        t0 = time.monotonic()
        try:
            message, details = run()
            parts = details.pop("parts", [])
            res = Result(self.id, CORRECT, message, details, parts=parts, of=of)
        except Incorrect as e:
            res = Result(self.id, INCORRECT, str(e), e.details, parts=e.parts, of=of)
        except VerifierError as e:
            res = Result(self.id, INCORRECT, "the verifier refused the program: "
                         + str(e).splitlines()[0].split(": ", 1)[-1]
                         + "\n(read the whole log: labkit.VerifierError's .log; lesson 04 shows how)",
                         {"error": "VerifierError"}, of=of)
        except CompileError as e:
            res = Result(self.id, INCORRECT, f"the program does not compile:\n{e.diagnostics or e}",
                         {"error": "CompileError"}, of=of)
        except LabkitError as e:
            res = Result(self.id, INCORRECT, f"{type(e).__name__}: {e}", {"error": type(e).__name__}, of=of)
        except Exception as e:  # the answer itself crashed (a filter that raises, ...)
            res = Result(self.id, INCORRECT, f"running your answer raised {type(e).__name__}: {e}",
                         {"error": type(e).__name__}, of=of)
        res.seconds = time.monotonic() - t0
        return res

    def hint(self) -> Note:
        note = Note(f"{self.id}: hint", self.hint_text)
        note.show()
        return note

    def solution(self) -> Note:
        if student_release():
            note = Note(f"{self.id}: ask your instructor", ASK_INSTRUCTOR.format(id=self.id))
            note.show()
            return note
        text = self.solution_text() if callable(self.solution_text) else self.solution_text
        note = Note(f"{self.id}: a solution", "", text, self.solution_language)
        note.show()
        return note

    @property
    def last(self) -> Result | None:
        """The student's last verdict (None before the first check)."""
        return self.results[-1] if self.results else None

    @property
    def status(self) -> str:
        """The student's verdict: the last check's status, or "not attempted"."""
        return self.last.status if self.last is not None else NOT_ATTEMPTED

    def __repr__(self) -> str:
        return f"<exercise {self.id}: {self.status}> {self.task}"


class Lesson:
    """The exercises of one lesson (``q1``, ``q2``, ...), and the summary of
    their verdicts at the end of the notebook."""

    def __init__(self, number: str, title: str, exercises: list[Exercise]):
        self.number = number
        self.title = title
        self.exercises = {e.id: e for e in exercises}
        for e in exercises:
            e.lesson = number
            setattr(self, e.id, e)

    def summary_dict(self) -> dict:
        return {
            "lesson": self.number,
            "title": self.title,
            "pid": os.getpid(),
            "exercises": {k: e.status for k, e in self.exercises.items()},
            "scores": {k: (e.last.score if e.last is not None else 0.0) for k, e in self.exercises.items()},
            "messages": {k: (e.last.message if e.last is not None else "") for k, e in self.exercises.items()},
            "checks": {k: [r.status for r in e.results] for k, e in self.exercises.items()},
            "reference_checked": {k: (e.reference.status if e.reference is not None else None)
                                  for k, e in self.exercises.items()},
            "attachments_left": len(live_attachments()),
            "panels_left": len(live_panels()),
        }

    def summary(self) -> "Summary":
        """Show the student's verdicts (a table; also as JSON, type SUMMARY_MIME,
        for tools) and return them."""
        s = Summary(self.summary_dict())
        s.show()
        return s

    def __repr__(self) -> str:
        return f"<lesson {self.number} {self.title}: {', '.join(map(repr, self.exercises.values()))}>"


class Summary(ShownOnce):
    """A lesson's verdicts (:meth:`Lesson.summary`): a table, and the JSON under SUMMARY_MIME."""

    def __init__(self, data: dict):
        self.data = data

    def mimebundle(self) -> dict[str, Any]:
        d = self.data
        ref = d.get("reference_checked", {})
        rows = [("exercise " + k, v + (f" (reference solution checked: {ref[k]})" if ref.get(k) else ""))
                for k, v in d["exercises"].items()]
        rows += [("attached now (given back when the kernel stops)", d["attachments_left"]),
                 ("live panels now", d["panels_left"])]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
        # the JSON goes under labkit's own type: JupyterLab would render plain
        # application/json as a tree instead of the table; tools read this one
        return {"text/html": f"<b>Lesson {html.escape(d['lesson'])}: what this run did</b><table>{body}</table>",
                SUMMARY_MIME: d,
                "text/plain": json.dumps(d, indent=1)}

    def __getitem__(self, k):
        return self.data[k]


# ------------------------------------------------------------------ helpers
_PLAIN = (str, bytes, int, float, bool, type(None))
_CONTAINERS = (list, tuple, dict, set, frozenset)


def _plain(x: Any, depth: int = 0) -> bool:
    """Whether ``x`` is made of plain values only (compared by value with ``==``, copied with deepcopy)."""
    if isinstance(x, _PLAIN):
        return True
    if depth > 6 or not isinstance(x, _CONTAINERS):
        return False
    items = list(x.items()) if isinstance(x, dict) else [(v, None) for v in x]
    return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in items)


class _AnswerSeen:
    """The answer a check judged: the object itself, and a copy of its value when it is plain data
    (so a list changed after the check is not taken for the one that was judged)."""

    def __init__(self, answer: Any):
        self.obj = answer
        self.copy = copy.deepcopy(answer) if isinstance(answer, _CONTAINERS) and _plain(answer) else None

    def same(self, answer: Any) -> bool:
        if isinstance(answer, str):
            return isinstance(self.obj, str) and answer == self.obj
        if answer is not self.obj:
            return False
        if isinstance(answer, _CONTAINERS):
            return self.copy is not None and _plain(answer) and type(answer) is type(self.copy) and answer == self.copy
        return True


def reference_policy() -> str:
    """What a verbatim copy of a reference solution earns in ``check()``: "zero" (the default: incorrect,
    "the reference solution, not your answer") or "full" (judged like any answer), from
    ``LABKIT_REFERENCE_ANSWERS`` (a course's autograder sets it from the course's integrity setting)."""
    value = os.environ.get(REFERENCE_POLICY_ENV, "").strip().lower()
    return value if value in REFERENCE_POLICIES else "zero"


_C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _normalized_c(text: str) -> str:
    return re.sub(r"\s+", "", _C_COMMENT.sub("", text))


def is_reference(answer: Any) -> bool:
    """Whether ``answer`` is one of the exercises' reference solutions: named
    (``"solution_02_arp_safe"``, a path to it) or the same C text (comments and
    whitespace aside), as a string or a Program."""
    if isinstance(answer, Program):
        text = answer.source
    elif isinstance(answer, str):
        stem = os.path.basename(answer.strip())
        if stem.startswith(REFERENCE_PREFIX):
            return True
        if "\n" not in answer and "{" not in answer and ";" not in answer:
            return False  # a snippet name or path that is not a reference
        text = answer
    else:
        return False
    mine = _normalized_c(text)
    return any(_normalized_c(p.read_text()) == mine for p in reference_files())


def reference_files() -> list:
    """The reference solutions present here (``bpf_snippets/solution_*.c``);
    none in a student release."""
    try:
        return sorted(p for p in SNIPPET_DIR.glob(f"{REFERENCE_PREFIX}*") if p.is_file())
    except OSError:
        return []


def student_release() -> bool:
    """Whether this is a student's copy of the lab: no reference solution
    ships with it (``bpf_snippets/solution_*`` absent), or
    ``LABKIT_STUDENT_RELEASE=1``. Then ``solution()`` and ``check_solution()``
    say to ask the instructor; ``check()`` works the same."""
    flag = os.environ.get(STUDENT_RELEASE_ENV, "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return not reference_files()


def load_answer(lab: Lab, answer: Any, *, name: str, **kw) -> Program:
    """Compile the student's answer in the checker's own Lab, under the
    checker's ``name`` (so it never replaces what the student attached). The
    answer may be a snippet name or path, C text, or a Program (``%%bpf``)."""
    if isinstance(answer, Program):
        return lab.load(answer.source, name=name, **kw)
    if not isinstance(answer, str):
        raise Incorrect(f"the answer must be C: a snippet name or path, the C text, or a %%bpf program — "
                        f"not a {type(answer).__name__}")
    _found, text, _path = resolve_source(answer)
    return lab.load(text, name=name, **kw)


def answer_function(prog: Program, ctx: str, hook: str) -> str | None:
    """The answer's function for a hook whose programs take ``ctx`` (e.g.
    "struct xdp_md" for XDP, "struct __sk_buff" for TC): None when it has one
    function (the attach call takes it), else the only one taking ``ctx *``;
    Incorrect when that cannot be told."""
    fns = prog.functions
    if len(fns) <= 1:
        return None
    pattern = r"\s+".join(map(re.escape, ctx.split()))
    found = [f for f in fns if re.search(rf"\b{re.escape(f)}\s*\(\s*{pattern}\s*\*", prog.source)]
    if len(found) == 1:
        return found[0]
    raise Incorrect(f"the program has {plural(len(fns), 'function')} ({', '.join(fns)}) and the checker cannot "
                    f"tell which one is the {hook} program: keep one function that takes a {ctx} * (make "
                    "helpers static __always_inline)")


def attach_answer(lab: Lab, prog: Program, tracepoint: str, name: str) -> list[str]:
    """Attach the answer's function to ``tracepoint``, unless the answer is
    already attached by itself (BCC-named functions: TRACEPOINT_PROBE(...),
    RAW_TRACEPOINT_PROBE(...), ...): then it is judged by what it counts.
    Returns the hooks the answer runs on ("tracepoint task:task_newtask", ...)."""
    autos = [p for att in prog.auto_attachments for p in att.probes]
    hooks = [f"{kind} {target}" for kind, target, _fn in autos]
    if any(kind == "tracepoint" and target == tracepoint for kind, target, _fn in autos):
        return hooks
    rest = [fn for fn in prog.functions if fn not in {fn for _k, _t, fn in autos}]
    if not rest:
        return hooks
    if len(rest) > 1:
        raise Incorrect(f"the program has {len(rest)} functions that nothing attaches ({', '.join(rest)}): "
                        f"keep the one for {tracepoint}, or name it TRACEPOINT_PROBE({tracepoint.replace(':', ', ')})")
    lab.attach_tracepoint(prog, tracepoint, fn=rest[0], name=name)
    return hooks + [f"tracepoint {tracepoint}"]


def snippet_text(name: str) -> str:
    """The C text of ``bpf_snippets/<name>.c`` (read when asked, never at import)."""
    return (SNIPPET_DIR / f"{name}.c").read_text()


def value_column(df) -> str:
    """The column of a map's DataFrame that holds the counts: ``value``, else
    its last numeric (not boolean) column."""
    if "value" in df.columns:
        return "value"
    nums = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if not nums:
        raise Incorrect(f"the map's values are not numbers (columns: {', '.join(map(str, df.columns))})")
    return nums[-1]


def int_key_column(df, value: str) -> str:
    """The integer key column of a map's DataFrame: ``key``, else its first
    integer column other than ``value``."""
    if "key" in df.columns:
        return "key"
    nums = [c for c in df.columns if c != value and pd.api.types.is_integer_dtype(df[c])]
    if not nums:
        raise Incorrect(f"the map's keys are not numbers (columns: {', '.join(map(str, df.columns))})")
    return nums[0]


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 thread"``, ``"3 threads"``, ``"2 processes"`` (with ``many``)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def need_map(prog, name: str) -> None:
    """Raise :class:`Incorrect` unless the program defines the map ``name``."""
    if not prog.has_table(name):
        raise Incorrect(f"the program has no map called {name!r}: the checker reads that map "
                        f"(BPF_HASH({name}, ...))")


def run_python(code: str, timeout: float = 20, what: str = "a Python process the checker runs") \
        -> subprocess.CompletedProcess:
    """Run ``code`` in a new Python process (its own pid and comm), capturing its output. One that is
    not done within ``timeout`` seconds is killed: :class:`HelperFailed` says so (``what`` names it)."""
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise HelperFailed(f"the checker's helper process ({what}) did not end within {timeout:g} s, and the "
                           "checker killed it. Run the check again, and if it fails the same way, show this message "
                           "to your instructor" + (f". Its last words on stderr:\n{err.strip()[-1000:]}"
                                                   if err.strip() else "")) from None

