"""Every exercise's diagnosis, without root: what the kernel really did for each
answer of the lessons' catalogues (tests/test_exercises_NN.py), recorded as
observations (tests/fixtures/observations/lessonNN.json, written by
``LABKIT_RECORD_OBSERVATIONS=1 ./lab test tests/test_exercises_NN.py -n 0``),
is judged again by the exercise's pure diagnosis: the same verdict, message,
parts and score as on the kernel, and what the catalogue says of the answer.

Edge cases made by hand (boundary values) are in test_diagnose_NN.py.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT, Check

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "observations"

#: the lessons whose checks are observe + diagnose, and their catalogues: the lists of wrong and right answers
#: in tests/test_exercises_NN.py (each entry's first item is its name, the test's id), and the parametrized
#: tests that judge them
CATALOGUES = {
    "01": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", INCORRECT),
           "test_q1_right_answers_are_correct": ("Q1_RIGHT", CORRECT),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", INCORRECT),
           "test_q2_right_answers_are_correct": ("Q2_RIGHT", CORRECT)},
    "03": {"test_wrong_answers_are_incorrect_and_say_why": ("WRONG", INCORRECT),
           "test_right_answers_written_other_ways_are_correct": ("RIGHT", CORRECT)},
}

#: catalogue entries judged before anything is observed (the answer cannot be run: it does not compile, or
#: lacks the map the checker reads): nothing to diagnose
BEFORE_OBSERVING: dict[str, set[str]] = {
    "01": {"columns", "printk, no map"},
    "03": set(),
}


def _records() -> list:
    out = []
    for number in CATALOGUES:
        data = json.loads((RECORDS / f"lesson{number}.json").read_text())
        for test, checks in data.items():
            for i, r in enumerate(checks):
                if r["observation"] is not None:
                    out.append(pytest.param(number, test, r, id=f"{number}-{test}-{i}"))
    return out


@pytest.mark.parametrize("number,test,recorded", _records())
def test_a_recorded_observation_is_judged_as_on_the_kernel(number, test, recorded):
    ex = getattr(lesson(number), recorded["exercise"])
    assert isinstance(ex.checker, Check)
    res = ex.diagnose(recorded["observation"])
    assert (res.status, res.message) == (recorded["status"], recorded["message"])
    assert [p.to_dict() for p in res.parts] == recorded["parts"] and res.score == recorded["score"]
    assert res.details["observation"] == recorded["observation"]
    name = test.split("[", 1)[0]
    if name in CATALOGUES[number]:
        assert res.status == CATALOGUES[number][name][1], res.message


def _catalogue(number: str) -> list[tuple[str, str, tuple]]:
    """(test, entry name, entry) of every catalogue entry of lesson ``number``."""
    module = importlib.import_module(f"test_exercises_{number}")
    return [(test, entry[0], entry) for test, (var, _status) in CATALOGUES[number].items()
            for entry in getattr(module, var)]


@pytest.mark.parametrize("number", list(CATALOGUES))
def test_every_catalogue_entry_has_a_recorded_observation(number):
    data = json.loads((RECORDS / f"lesson{number}.json").read_text())
    missing = []
    for test, name, _entry in _catalogue(number):
        checks = data.get(f"{test}[{name}]", [])
        if name in BEFORE_OBSERVING[number]:
            assert checks and all(c["observation"] is None and c["status"] == INCORRECT for c in checks), name
        elif not checks or any(c["observation"] is None for c in checks):
            missing.append(name)
    assert not missing, f"record them: LABKIT_RECORD_OBSERVATIONS=1 ./lab test tests/test_exercises_{number}.py -n 0"


@pytest.mark.parametrize("number", list(CATALOGUES))
def test_a_wrong_answer_is_still_told_what_its_catalogue_expects(number):
    """The replayed message says what the catalogue's pattern asks of it (its third item, a regex)."""
    data = json.loads((RECORDS / f"lesson{number}.json").read_text())
    for test, name, entry in _catalogue(number):
        if CATALOGUES[number][test][1] != INCORRECT or name in BEFORE_OBSERVING[number]:
            continue
        pattern = entry[2]
        for c in data[f"{test}[{name}]"]:
            res = getattr(lesson(number), c["exercise"]).diagnose(c["observation"])
            assert re.search(pattern, res.message, re.S), (name, res.message)
