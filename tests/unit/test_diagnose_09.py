"""Lesson 09's diagnoses at their edges, on observations made by hand (the
pure verdicts behind them are also tested in test_exercises_maps.py): q1's
traced child under its tracer; q2's process whose main thread ended first."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT
from labkit.exercises.lessons.lesson09 import ENDINGS, MAIN_FIRST_CODE

HASH = {"name": "execs", "type": 1, "key_size": 4, "value_size": 8, "max_entries": 1024, "flags": 0}
RUNS = [{"pid": 100, "ok": 3, "bad": 1, "threaded": False, "kids": [101, 102, 103, 104], "traced": [[104, 105]]},
        {"pid": 200, "ok": 5, "bad": 2, "threaded": True, "kids": [201, 202, 203, 204, 205], "traced": []}]


def q1(counts):
    return lesson("09").q1.diagnose({"runs": RUNS, "counts": [[k, n] for k, n in counts.items()], "map": HASH})


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_right_and_the_traced_child_under_its_tracer():
    assert q1({100: 4, 200: 5}).status == CORRECT
    why = failed(q1({100: 3, 105: 1, 200: 5}))
    assert "the child of parent 100 that another process (pid 105) traced with ptrace was counted under that " \
           "tracer" in why["a child being traced (ptrace) is still counted under the parent that forked it"]


PIDS = {how: 300 + i for i, how in enumerate(ENDINGS)}


def q2(codes, last_thread=999):
    return lesson("09").q2.diagnose({"codes": [[k, c] for k, c in codes.items()], "pids": PIDS,
                                     "last_thread": last_thread,
                                     "map": {**HASH, "name": "exit_codes", "value_size": 4}})


def test_q2_right_and_the_main_thread_keyed_on_the_thread_id():
    right = {PIDS[h]: c for h, c in ENDINGS.items()}
    assert q2(right).status == CORRECT
    codes = {**right, PIDS["main_first"]: MAIN_FIRST_CODE, 999: ENDINGS["main_first"]}
    why = failed(q2(codes))
    assert len(why) == 1 and "you keyed on the thread id" in next(iter(why.values()))
