"""Lesson 06's diagnoses at their edges, on observations made by hand: q1's
count exactly right, one short, at a quarter lost, at the marked child's calls
alone, near what the others called; q2's LRU at its size and one past it."""

from __future__ import annotations

import pytest

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson06 import ASKED, KEEP, KEY_BASE, MARKED

MADE = MARKED + 2 * 100_000 * 2      # the marked child and two rounds of two racing children


def q1(got, *, in_bursts=None, others=50, idle_others=0, idle_counted=0, kind="Array", on_main=True):
    return lesson("06").q1.diagnose({
        "got": got, "made": MADE, "in_bursts": got or 0 if in_bursts is None else in_bursts, "others": others,
        "idle_others": idle_others, "idle_counted": idle_counted, "control_lost": 40, "rounds": 2, "kind": kind,
        "hooks": ["tracepoint syscalls:sys_exit_getppid"], "cpus": [0, 1], "forker": 777,
        "checker_on_main": on_main})


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_exact_is_correct():
    res = q1(MADE)
    assert res.status == CORRECT and res.details["counted"] == MADE and len(res.parts) == 3


def test_q1_one_short_is_a_lost_race_and_a_per_cpu_map_one_short_is_not():
    assert failed(q1(MADE - 1)) == {"exact while two CPUs count at once": (
        f"1 call of {MADE} lost while two CPUs counted at once (the checker's own plain += lost 40): (*v) += 1 and "
        "BCC's increment() are a load, an add and a store: two CPUs that load the same value store the same sum. "
        "Use an atomic add (__sync_fetch_and_add(v, 1), lock_xadd, count.atomic_increment(0)) or a per-CPU map")}
    assert "a per-CPU map never races" in failed(q1(MADE - 1, kind="PerCpuArray"))["exact while two CPUs count at once"]


@pytest.mark.parametrize("lost,far", [(MADE // 4, False), (MADE // 4 + 1, True)])
def test_q1_a_quarter_lost_is_still_a_race_and_more_is_not(lost, far):
    why = failed(q1(MADE - lost))["exact while two CPUs count at once"]
    assert ("far more than two CPUs racing lose" in why) is far


def test_q1_one_more_than_made_counted_someone_else():
    assert set(failed(q1(MADE + 1))) == {"only the children's calls", "exact while two CPUs count at once"}


def test_q1_exactly_the_marked_child_is_the_thread_id_mistake_only_from_the_main_thread():
    assert "The parent's thread id (task->real_parent->pid) names the thread" in \
        failed(q1(MARKED))["counts the children's calls"]
    assert "counts the children's calls" not in failed(q1(MARKED, on_main=False))


def test_q1_near_the_others_calls_is_an_inverted_filter():
    res = q1(5000, in_bursts=5000, others=5100, idle_others=20, idle_counted=20)
    assert "is the filter inverted?" in failed(res)["counts the children's calls"]
    assert failed(q1(5000, in_bursts=5000, others=5100, idle_others=20, idle_counted=0)).keys() == {
        "exact while two CPUs count at once"}     # counted nothing of the others when they called alone


def test_q1_nothing_at_key_0():
    res = q1(None)
    assert "nothing at key 0" in failed(res)["counts the children's calls"] and res.score == pytest.approx(1 / 3, 0.01)


def q2(keys: dict[int, int], *, kind="LruHash", key_size=4):
    return lesson("06").q2.diagnose({"got": [[KEY_BASE + k, v] for k, v in keys.items()], "kind": kind,
                                     "key_size": key_size, "asker": 555})


def newest(n: int) -> dict[int, int]:
    keys = {k: 1 for k in range(ASKED - n, ASKED)}
    keys[ASKED - 1] = 3
    return keys


def test_q2_the_newest_at_the_size_is_correct_and_one_more_is_not():
    assert q2(newest(KEEP)).status == CORRECT
    assert list(failed(q2(newest(KEEP + 1)))) == [f"holds at most {KEEP}"]


def test_q2_an_empty_map_is_told_how_an_lru_inserts():
    res = lesson("06").q2.diagnose({"got": [], "kind": "LruHash", "key_size": 4, "asker": 555})
    assert res.status == INCORRECT and res.parts == [] and "only in a BPF_HASH" in res.message


def test_q2_keys_that_are_not_the_pids_asked_about():
    res = lesson("06").q2.diagnose({"got": [[1, 3], [2, 1]], "kind": "LruHash", "key_size": 4, "asker": 555})
    assert failed(res)["keeps the newest pid"].startswith("the keys are [1, 2]...: the key is the pid asked about")
