"""Lesson 03's diagnosis at its edges, on observations made by hand: counts one
away from right, a thread missing, both halves of a pid_tgid key, the key's size."""

from __future__ import annotations

import pytest

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT

ME, TIDS, OTHER, OTHER_TIDS = 1000, [1001, 1002, 1003], 2000, [2000, 2001, 2002]


def seen(counts, *, key_size=4, map_type=1, hooks=("tracepoint syscalls:sys_enter_getppid",)) -> dict:
    return {"me": ME, "tids": TIDS, "thread_calls": [5, 17, 42], "other_pid": OTHER, "other_tids": OTHER_TIDS,
            "other_calls": [60, 70, 80], "key_size": key_size, "hooks": list(hooks), "counts": counts,
            "map": {"name": "counts", "type": map_type, "key_size": key_size, "value_size": 8,
                    "max_entries": 10240, "flags": 0}}


RIGHT = [[1001, 5], [1002, 17], [1003, 42]]


def judge(observation):
    return lesson("03").q1.diagnose(observation)


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_exact_counts_are_correct_and_other_keys_of_this_process_do_not_matter():
    res = judge(seen(RIGHT + [[ME, 3]]))          # the main thread called too: not a test thread, not wrong
    assert res.status == CORRECT and res.score == 1.0 and len(res.parts) == 5


@pytest.mark.parametrize("delta,words", [(1, "1 too many"), (-1, "1 too few")])
def test_one_away_from_every_count_is_off_by_one(delta, words):
    res = judge(seen([[t, n + delta] for t, n in RIGHT]))
    assert res.status == INCORRECT
    assert failed(res) == {"exact count per thread": f"off by 1: every thread's count is {words} (e.g. 5 calls, the "
                           f"map says {5 + delta}): start a new thread's counter so that its first call counts as 1"}


def test_counts_off_by_different_amounts_name_the_first_thread():
    res = judge(seen([[1001, 5], [1002, 18], [1003, 44]]))
    assert failed(res) == {"exact count per thread": "thread 1002 called getppid() 17 times, the map says 18"}


def test_a_thread_with_no_entry():
    res = judge(seen([[1001, 5], [1003, 42]]))
    assert set(failed(res)) == {"keyed by the thread id", "exact count per thread"}
    assert failed(res)["keyed by the thread id"].startswith("no entry for 1 thread of this process (1002)")
    assert failed(res)["exact count per thread"] == "thread 1002 called getppid() 17 times, the map says nothing"
    assert res.score == 0.6


def test_whole_pid_tgid_keys_are_read_by_their_halves_and_the_other_process_is_seen_in_them():
    counts = [[ME << 32 | t, n] for t, n in RIGHT] + [[OTHER << 32 | OTHER, 60]]
    res = judge(seen(counts, key_size=8))
    assert set(failed(res)) == {"keyed by the thread id", "only this process", "the key is a u32"}
    assert "e.g. 0x3e8000003e9" in failed(res)["keyed by the thread id"]


def test_an_empty_map_of_the_wrong_kind_says_both():
    res = judge(seen([], map_type=5, hooks=["tracepoint syscalls:sys_enter_getpid"]))
    assert res.status == INCORRECT and res.parts == [] and res.score == 0.0
    assert res.message.startswith("counts is a per-CPU hash (BPF_PERCPU_HASH), and the task asks for a BPF_HASH "
                                  "called counts")
    assert "; and the map 'counts' stayed empty though this process's threads called getppid() 64 times" in res.message
    assert "(it attached itself to tracepoint syscalls:sys_enter_getpid)" in res.message


def test_a_u32_key_is_four_bytes_exactly():
    assert failed(judge(seen(RIGHT, key_size=8))) == {"the key is a u32": (
        "the map's key is 8 bytes: the task asks for the thread id as a u32 (4 bytes), BPF_HASH(counts, u32, u64); "
        "a thread id fits in 32 bits")}
