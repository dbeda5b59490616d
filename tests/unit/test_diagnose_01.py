"""Lesson 01's diagnoses at their edges, on observations made by hand: q2's
totals at and past every creation the test process made, an entry found by
the pid instead of the comm; q1's filter that keeps nothing."""

from __future__ import annotations

import pytest

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT

COMM, CHILD = "lkq-ex01-abcd", 4242
HOOK = ["tracepoint task:task_newtask"]


def q2(entries, hooks=HOOK):
    return lesson("01").q2.diagnose({"comm": COMM, "child": CHILD, "hooks": hooks, "entries": entries})


def mine(n: int) -> dict:
    return {"texts": [COMM], "ints": [0], "value": n}


def failed(res) -> list[str]:
    return [p.name for p in res.parts if not p.passed]


def test_q2_the_threads_exactly_with_other_comms_beside_them():
    res = q2([mine(48), {"texts": ["bash"], "ints": [0], "value": 7}])
    assert res.status == CORRECT and res.details["counted"] == 48 and res.details["comms"] == 2


@pytest.mark.parametrize("n,said,parts", [
    (63, "it counts every creation: nothing tests CLONE_THREAD", ["does not count forks", "does not count vforks",
                                                                  "does not count processes that share memory"]),
    (64, "more than every creation it made (63): is each one counted twice", ["counts each thread once"]),
    (0, "it did not count the 48 threads (clone_flags with CLONE_THREAD, 0x10000): nothing at all was counted",
     ["counts the threads"]),
    (15, "the condition is inverted: it counts everything but the threads", ["counts the threads",
     "does not count forks", "does not count vforks", "does not count processes that share memory"]),
])
def test_q2_totals_at_the_edges(n, said, parts):
    res = q2([mine(n)])
    assert res.status == INCORRECT and said in res.message and failed(res) == parts


def test_q2_a_program_on_another_hook_is_told_so_first():
    res = q2([mine(63)], hooks=["tracepoint sched:sched_process_fork"])
    assert res.message.startswith("not yet: your program runs on tracepoint sched:sched_process_fork, not on "
                                  "task:task_newtask")


def test_q2_keyed_by_pid_is_judged_on_the_test_process_entry_and_no_entry_ends_there():
    res = q2([{"texts": [], "ints": [CHILD], "value": 48}])
    assert failed(res) == ["keyed by the creator's comm"] and res.score == 0.8
    res = q2([{"texts": [], "ints": [1], "value": 48}])
    assert failed(res) == ["keyed by the creator's comm"] and len(res.parts) == 1 and res.score == 0.0


def test_q2_an_empty_map():
    res = q2([])
    assert res.status == INCORRECT and "the map 'counts' stayed empty" in res.message and res.score == 0.0


COLS = ["pid", "tid", "child_pid", "kind", "comm"]


def test_q1_a_filter_that_keeps_nothing_drops_every_thread_and_nothing_else():
    obs = {"me": 100, "other": 200, "by_thread": [103], "creations": 9,
           "threads": {"columns": COLS, "rows": [[100, 100, 102, "thread", "py"], [100, 102, 103, "thread", "py"]]},
           "kept": {"columns": COLS, "rows": []}}
    res = lesson("01").q1.diagnose(obs)
    assert [p.passed for p in res.parts] == [False, False, True, True] and res.score == 0.5
    assert "it dropped 1 thread this process created (e.g. 102)" in res.message
    obs["kept"] = obs["threads"]
    res = lesson("01").q1.diagnose(obs)
    assert res.status == CORRECT and res.message.startswith("yes: out of 9 creations")
    assert res.details["got"] == [102, 103]
