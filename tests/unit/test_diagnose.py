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

#: the lessons whose checks are observe + diagnose, and their catalogues: for each parametrized test of
#: tests/test_exercises_NN.py that judges a list of answers, (the list, the verdict each entry must get,
#: where in an entry its name (the test's id) is, where its pattern (a regex the message matches) is, or None).
#: A verdict of None: the entry's first item says it ("wrong" or "right").
W, R = INCORRECT, CORRECT
CATALOGUES = {
    "00": {"test_wrong_answers_are_incorrect_and_say_why": ("WRONG", W, 0, 2),
           "test_right_answers_are_correct": ("RIGHT", R, 0, None)},
    "01": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answers_are_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answers_are_correct": ("Q2_RIGHT", R, 0, None)},
    "02": {"test_wrong_answer_is_judged_incorrect_and_told_why": ("WRONG", W, 0, 2),
           "test_right_answer_is_judged_correct": ("RIGHT", R, 0, None)},
    "03": {"test_wrong_answers_are_incorrect_and_say_why": ("WRONG", W, 0, 2),
           "test_right_answers_written_other_ways_are_correct": ("RIGHT", R, 0, None)},
    "04": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answers_written_other_ways_are_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answers_written_other_ways_are_correct": ("Q2_RIGHT", R, 0, None)},
    "05": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answers_written_other_ways_are_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answers_written_other_ways_are_correct": ("Q2_RIGHT", R, 0, None)},
    "06": {"test_q1_wrong": ("Q1_WRONG", W, 0, 2), "test_q1_right": ("Q1_RIGHT", R, 0, None),
           "test_q1_parent_read_from_the_task": ("Q1_TASK", None, 1, 3),
           "test_q2_wrong": ("Q2_WRONG", W, 0, 2), "test_q2_right": ("Q2_RIGHT", R, 0, None)},
    "07": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answers_written_other_ways_are_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answers_written_other_ways_are_correct": ("Q2_RIGHT", R, 0, None)},
    "08": {"test_q1_wrong_answer_is_judged_incorrect_and_told_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answer_is_judged_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answer_is_judged_incorrect_and_told_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answer_is_judged_correct": ("Q2_RIGHT", R, 0, None)},
    "09": {"test_q1_wrong_answers_are_incorrect_and_say_why": ("Q1_WRONG", W, 0, 2),
           "test_q1_right_answers_written_other_ways_are_correct": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong_answers_are_incorrect_and_say_why": ("Q2_WRONG", W, 0, 2),
           "test_q2_right_answers_written_other_ways_are_correct": ("Q2_RIGHT", R, 0, None)},
    "11": {"test_q1_wrong": ("Q1_WRONG", W, 0, 2), "test_q1_right": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong": ("Q2_WRONG", W, 0, 2), "test_q2_right": ("Q2_RIGHT", R, 0, None)},
    "12": {"test_q1_wrong": ("Q1_WRONG", W, 0, 2), "test_q1_right": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong": ("Q2_WRONG", W, 0, 2), "test_q2_right": ("Q2_RIGHT", R, 0, None)},
    "13": {"test_q1_wrong": ("Q1_WRONG", W, 0, 2), "test_q1_right": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong": ("Q2_WRONG", W, 0, 2), "test_q2_right": ("Q2_RIGHT", R, 0, None)},
    "14": {"test_q1_wrong": ("Q1_WRONG", W, 0, 2), "test_q1_right": ("Q1_RIGHT", R, 0, None),
           "test_q2_wrong": ("Q2_WRONG", W, 0, 2), "test_q2_right": ("Q2_RIGHT", R, 0, None)},
}

#: catalogue entries judged before anything is observed (the answer cannot be run: it does not compile, or
#: lacks the map the checker reads): nothing to diagnose
BEFORE_OBSERVING: dict[str, set[str]] = {
    "00": set(),
    "01": {"columns", "printk, no map"},
    "02": {"no_ip_bounds_check", "no_icmp_bounds_check"},     # the verifier refuses them
    "05": {"wrong map name", "two functions", "a second argument that is not there",  # no map, two functions,
           "arguments counted from 0"},                                                # refused by the verifier
    "06": set(),
    "03": set(),
    "04": {"check 12 bytes only (h_proto unproven)", "counts before the check",     # the verifier refuses them
           "second read past the checked bound"},
    "07": {"no bounds check on the ICMP header",          # refused by the verifier
           "a 64-bit prefix length in the key", "a u8 verdict"},   # the checker cannot write its rules
    "08": {"no UDP bounds check"},                         # refused by the verifier
    "09": {"wrong map name", "key is u64", "a u64 value"},     # the object lacks the map or has its sizes wrong
    "11": {"a function attached to nothing"},     # refused before anything runs: its hooks are not named
    "12": {"a plain function, not LSM_PROBE"},              # nothing attached: judged before anything is tried
    "13": {"returns -EPERM"},                                 # the verifier keeps connect4's return in [0, 1]
    "14": {"a handler of another program type", "BCC's BPF_PROG_ARRAY",   # the kernel refuses the slot; clang
           "-D instead of a read-only global", "a global the program can write"},   # the checker cannot set it
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


def _verdict(number: str, test: str, entry: tuple) -> str:
    status = CATALOGUES[number][test][1]
    return status or {"wrong": INCORRECT, "right": CORRECT}[entry[0]]


def _catalogue(number: str) -> list[tuple[str, str, tuple]]:
    """(test, entry name, entry) of every catalogue entry of lesson ``number``."""
    module = importlib.import_module(f"test_exercises_{number}")
    return [(test, entry[name_at], entry) for test, (var, _status, name_at, _p) in CATALOGUES[number].items()
            for entry in getattr(module, var)]


@pytest.mark.parametrize("number,test,recorded", _records())
def test_a_recorded_observation_is_judged_as_on_the_kernel(number, test, recorded):
    ex = getattr(lesson(number), recorded["exercise"])
    assert isinstance(ex.checker, Check)
    res = ex.diagnose(recorded["observation"])
    assert (res.status, res.message) == (recorded["status"], recorded["message"])
    assert [p.to_dict() for p in res.parts] == recorded["parts"] and res.score == recorded["score"]
    assert res.details["observation"] == recorded["observation"]


@pytest.mark.parametrize("number", list(CATALOGUES))
def test_every_catalogue_entry_was_recorded_and_gets_its_verdict(number):
    """Each entry of the catalogues has recorded observations (or is one judged before observing), and
    its diagnosis gives the verdict the catalogue expects, with a message its pattern finds."""
    data = json.loads((RECORDS / f"lesson{number}.json").read_text())
    missing = []
    for test, name, entry in _catalogue(number):
        checks = data.get(f"{test}[{name}]", [])
        if name in BEFORE_OBSERVING[number]:
            assert checks and all(c["observation"] is None and c["status"] == INCORRECT for c in checks), name
            continue
        if not checks or any(c["observation"] is None for c in checks):
            missing.append(name)
            continue
        pattern_at = CATALOGUES[number][test][3]
        for c in checks:
            res = getattr(lesson(number), c["exercise"]).diagnose(c["observation"])
            assert res.status == _verdict(number, test, entry), (name, res.message)
            if pattern_at is not None and entry[pattern_at] is not None:
                assert re.search(entry[pattern_at], res.message, re.S), (name, res.message)
    assert not missing, f"{missing}: record them: LABKIT_RECORD_OBSERVATIONS=1 ./lab test " \
                        f"tests/test_exercises_{number}.py -n 0"


#: what a diagnosis must not touch: the kernel, processes, the clock, the network (it decides from its observation)
_OUTSIDE = {"os", "time", "subprocess", "threading", "socket", "select", "Lab", "Sandbox", "Helper", "run_python",
            "map_dataframe", "map_shape", "load_answer", "attach_answer", "run_in_netns"}


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "labkit" / "exercises" / "lessons")
                                        .glob("lesson[0-9][0-9].py")), ids=lambda p: p.stem)
def test_a_diagnosis_reads_nothing_but_its_observation(path):
    """Every exercise's checker is a Check, and its diagnose (with the module's functions it calls) names
    nothing that reaches outside the observation."""
    import ast

    number = path.stem[6:]
    assert all(isinstance(ex.checker, Check) for ex in lesson(number).exercises.values())
    fns = {n.name: n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
    todo, seen, used = [n for n in fns if n.startswith("_diagnose")], set(), set()
    assert todo, f"{path.name} has no _diagnose_ function"
    while todo:
        name = todo.pop()
        seen.add(name)
        for node in ast.walk(fns[name]):
            if isinstance(node, ast.Name):
                used.add((name, node.id))
                if node.id in fns and node.id not in seen:
                    todo.append(node.id)
    assert not {(f, n) for f, n in used if n in _OUTSIDE}
