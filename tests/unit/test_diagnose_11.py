"""Lesson 11's diagnoses on observations made by hand (no kernel): the boundaries of "the same histogram",
which mistake a histogram is, and the units told apart by where the buckets sit. What the kernel really
did for each catalogue answer is replayed by test_diagnose.py."""

from __future__ import annotations

import pytest

from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons import lesson11 as l11

RIGHT = {3: 20, 4: 25, 5: 6, 11: 4, 12: 6}
KINDS = {"prev": {11: 10, 12: 30, 13: 21}, "wake": {14: 50, 15: 10}, "keep": {3: 20, 4: 25, 5: 6, 12: 30, 13: 40},
         "all": {1: 300, 3: 120, 4: 200, 12: 50}}
Q2_RIGHT = {12: 16, 14: 6}
Q2_KINDS = {"bypid": {11: 4, 12: 12, 14: 2}, "main": {12: 16}, "all": {10: 20, 12: 16, 14: 6, 16: 3},
            "poll": {13: 4}}


def pairs(h):
    return [[k, v] for k, v in sorted(h.items())]


def runq(got, right=RIGHT, kinds=KINDS):
    obs = {"got": pairs(got), "kinds": {"right": pairs(right)} | {k: pairs(v) for k, v in kinds.items()},
           "hooks": ["tracepoint sched:sched_switch"], "pid": 4242, "cpu": 1}
    return l11.build().q1.diagnose(obs)


def sleeps(got, right=Q2_RIGHT, kinds=Q2_KINDS):
    obs = {"got": pairs(got), "kinds": {"right": pairs(right)} | {k: pairs(v) for k, v in kinds.items()},
           "hooks": ["tracepoint syscalls:sys_enter_clock_nanosleep"], "pid": 4343}
    return l11.build().q2.diagnose(obs)


def test_log2_buckets_are_bpf_log2l():
    assert [l11.log2_bucket(us) for us in (0, 1, 2, 3, 4, 1023, 1024, 3000)] == [0, 1, 2, 2, 3, 10, 11, 12]


def test_distance_counts_misplaced_over_the_reference():
    assert l11.distance(RIGHT, RIGHT) == 0
    assert l11.distance({}, RIGHT) == 1
    assert l11.distance({3: 21, 4: 24, 5: 6, 11: 4, 12: 6}, RIGHT) == pytest.approx(2 / 61)


def test_moved_counts_buckets_per_count():
    assert l11.moved(RIGHT, RIGHT) == 0
    assert l11.moved({k - 1: v for k, v in RIGHT.items()}, RIGHT) == pytest.approx(1.0)
    assert l11.moved({3: 19, 4: 26, 5: 6, 11: 4, 12: 6}, RIGHT) == pytest.approx(1 / 61)


def test_the_right_histogram_is_correct_within_same_and_not_beyond():
    """Two programs' clocks read the same events a moment apart: counts may sit one bucket apart."""
    total = sum(RIGHT.values())
    shifted = int(l11.SAME * total)            # that many counts one bucket up: moved = shifted / total
    near = {**RIGHT, 3: RIGHT[3] - 20, 4: RIGHT[4] + 20 - (shifted - 20), 5: RIGHT[5] + (shifted - 20)}
    assert sum(near.values()) == total and l11.moved(near, RIGHT) <= l11.SAME
    assert runq(near).status == CORRECT
    far = {**near, 11: 0, 12: RIGHT[12] + RIGHT[11]}          # 4 more counts one bucket up: past SAME
    assert l11.moved(far, RIGHT) > l11.SAME and runq(far).status == INCORRECT
    # the counts must be the same too (5% of them, at least one)
    assert runq({**RIGHT, 3: RIGHT[3] + 3}).status == CORRECT
    assert runq({**RIGHT, 3: RIGHT[3] + 4}).status == INCORRECT


@pytest.mark.parametrize("kind,part,words", [
    ("prev", "from the wakeup to running (next_pid)", "switched *out*"),
    ("wake", "from the wakeup to running (next_pid)", "from one wakeup to the next"),
    ("keep", "once per wakeup (the start deleted)", "start.delete(&tid)"),
    ("all", "only the measured process", "every thread of the machine"),
])
def test_each_mistake_fails_its_part_only(kind, part, words):
    res = runq(KINDS[kind])
    assert res.status == INCORRECT and words in res.message, res.message
    assert [p.name for p in res.parts if not p.passed] == [part]
    assert res.score == pytest.approx(3 / 4)


def test_all_needs_more_than_the_process_and_the_other_sleepers_wakeups():
    # the machine's threads measured a moment apart: near "all" within NOISY, and more counts than the process's
    noisy = {1: 250, 3: 150, 4: 160, 12: 80}
    assert l11.CLOSE < l11.distance(noisy, KINDS["all"]) <= l11.NOISY
    assert l11.nearest(noisy, RIGHT, KINDS) == "all"
    # as near, but no more counts than the process's own and half the other sleeper's: not that mistake
    few = {3: 30, 4: 31, 5: 10}
    assert l11.nearest(few, RIGHT, {"all": {3: 31, 4: 30, 5: 10}}) is None


@pytest.mark.parametrize("got,words", [
    ({k + 10: v for k, v in RIGHT.items()}, "ten buckets too high"),
    ({k - 1: v for k, v in RIGHT.items()}, "one bucket low"),
    ({8: 20, 12: 25, 20: 6, 1500: 4, 3000: 6}, "linear histogram"),
    ({5: 20, 12: 25, 20: 6}, "linear histogram"),           # an array of 64: the values under 64 us only
])
def test_units_and_buckets_are_told_apart(got, words):
    res = runq(got)
    assert res.status == INCORRECT and words in res.message, res.message
    assert [p.name for p in res.parts if not p.passed] == ["log2 buckets of microseconds"]


def test_milliseconds_land_far_too_low():
    res = sleeps({2: 16, 4: 6})
    assert res.status == INCORRECT and "milliseconds" in res.message, res.message
    assert [p.name for p in res.parts if not p.passed] == ["microseconds, in log2 buckets"]


def test_empty_and_unknown_histograms_say_what_to_do():
    res = runq({})
    assert res.status == INCORRECT and "stayed empty" in res.message and res.parts == []
    res = runq({40: 3})
    assert res.status == INCORRECT and "nor one mistake the checker knows" in res.message and res.parts == []


@pytest.mark.parametrize("kind,part", [("bypid", "keyed by the thread id"), ("main", "every thread of the process"),
                                       ("all", "only this process"), ("poll", "the syscall clock_nanosleep")])
def test_q2_mistakes(kind, part):
    res = sleeps(Q2_KINDS[kind])
    assert res.status == INCORRECT
    assert [p.name for p in res.parts if not p.passed] == [part], res.message


def test_q2_right_and_the_empty_map():
    assert sleeps(Q2_RIGHT).status == CORRECT
    res = sleeps({})
    assert "clock_nanosleep, not nanosleep" in res.message and "past BPF_HISTOGRAM's 64 buckets" in res.message


def test_an_emulators_jitter_still_names_the_mistake():
    """Under TCG the answer's and the checker's clocks read the same events tens of microseconds apart (Debian's
    6.1 in qemu): a third of the counts one bucket apart is still the same measurement, and still its mistake."""
    keep = KINDS["keep"]
    jittered = {3: 5, 4: 25, 5: 21, 12: 20, 13: 50}          # 25 counts one bucket up
    assert l11.distance(jittered, keep) > l11.CLOSE and l11.same(jittered, keep)
    res = runq(jittered)
    assert [p.name for p in res.parts if not p.passed] == ["once per wakeup (the start deleted)"], res.message
    # the microseconds as the key, in an array of 64: only the fastest waits kept, near the checker's count of them
    right = {5: 3, 6: 8, 7: 20, 8: 20, 12: 10}
    got = {20: 2, 33: 2, 40: 3, 50: 2, 70: 0}
    res = runq({k: v for k, v in got.items() if v}, right=right)
    assert "linear histogram" in res.message, res.message
