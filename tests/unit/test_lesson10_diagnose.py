"""Lesson 10's diagnoses, without root: the verdict, the parts and the message
each catalogue answer gets, decided from the observation the kernel run
recorded (tests/unit/data/lesson10/<q>-<case>.json, written by
``LABKIT_RECORD_OBSERVATIONS=tests/unit/data/lesson10 ./lab test
tests/test_exercises_10.py -n 0``), and from observations built here for the
edges no catalogue answer reaches."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from labkit.exercises.framework import Incorrect
from labkit.exercises.lessons.lesson10 import (
    HotObservation,
    Stack,
    WaitObservation,
    _collided,
    diagnose_hot,
    diagnose_waits,
    inclusive,
)

DATA = Path(__file__).resolve().parent / "data" / "lesson10"

# recorded case -> (correct?, what the message says, the parts that pass (None: not checked))
HOT = {
    "reference": (True, r"^yes: your stacks say lk_compress is hot — on the stack in \d+% of lk_busy's \d+ samples "
                        r"\(lk_parse \d+%, lk_checksum \d+%\), in both threads; the leaf of 100% of them is lk_mix", None),
    "a-u32-key": (True, r"^yes: your stacks say lk_compress is hot", None),
    "the-tgid-compared-by-hand-lookup-or-try-init-and-an-atomic-add": (True, r"^yes: ", None),
    # recorded on a loaded machine: the other processes' stacks filled the stack map, and most of lk_busy's were lost
    "no-pid-filter": (False, r"are under stacks that are not lk_busy's.*-DLK_FILTER_PID=\d+.*the other processes' "
                             r"stacks filled the map 'stacks'", {"counts is keyed by user stack ids", "both of its threads"}),
    "kernel-stacks-only": (False, r"samples have no user stack \(stack id -14: -EFAULT.*flags 0",
                           {"one count per sample"}),
    "the-thread-id-not-the-process-id": (False, r"only lk_busy's main thread was counted.*tests the thread id",
                                         {"counts is keyed by user stack ids", "only lk_busy's samples",
                                          "one count per sample"}),
    "the-leaf-s-address-not-the-stack": (False, r"the keys are code addresses, not stack ids.*lk_mix", None),
    "a-lookup-that-never-creates": (False, r"^the map 'counts' stayed empty while lk_busy \(pid \d+\) ran", set()),
    "one-count-per-stack": (False, r"every stack says 1, whatever its samples",
                            {"counts is keyed by user stack ids", "only lk_busy's samples", "both of its threads"}),
}
WAITS = {
    "reference": (True, r"^yes: lk_waiter waited 0\.\d\d s in lk_wait_input \(its input, held back 0\.4 s\) and "
                        r"0\.\d\d s in lk_nap", None),
    "two-maps-the-thread-id-from-bpf-get-current-pid-tgid": (True, r"^yes: ", None),
    "no-pid-filter": (False, r"stacks that are not lk_waiter's hold \d+% of the total: other processes' waits",
                      {"the stack where each thread left the CPU", "time off the CPU, in microseconds"}),
    "on-cpu-instead-of-off-cpu": (False, r"that is the time ON the CPU",
                                  {"only lk_waiter's threads", "the stack where each thread left the CPU"}),
    "nanoseconds": (False, r"that is nanoseconds", {"only lk_waiter's threads", "the stack where each thread left the CPU"}),
    "milliseconds": (False, r"that is milliseconds", {"only lk_waiter's threads",
                                                      "the stack where each thread left the CPU"}),
    "switches-not-time": (False, r"those are switches \(lk_nap slept 10 times\), not time",
                          {"only lk_waiter's threads", "the stack where each thread left the CPU"}),
    "the-stack-taken-when-it-comes-back": (False, r"sched_switch runs in the task that is leaving the CPU, so a stack "
                                                  r"taken when lk_waiter comes back", {"only lk_waiter's threads"}),
}


def recorded(q: str, case: str) -> dict:
    return json.loads((DATA / f"{q}-{case}.json").read_text())


def verdict(diagnose, o):
    """(correct, message, the names of the parts that passed)."""
    try:
        message, details = diagnose(o)
        return True, message, {p.name for p in details["parts"]}
    except Incorrect as e:
        return False, str(e), {p.name for p in e.parts if p.passed}


def test_every_recorded_case_is_judged():
    assert {p.stem for p in DATA.glob("q1-*.json")} == {f"q1-{c}" for c in HOT}
    assert {p.stem for p in DATA.glob("q2-*.json")} == {f"q2-{c}" for c in WAITS}


@pytest.mark.parametrize("case", sorted(HOT))
def test_q1_recorded(case):
    correct, pattern, passing = HOT[case]
    o = HotObservation.from_dict(recorded("q1", case))
    assert HotObservation.from_dict(o.to_dict()) == o
    got, message, passed = verdict(diagnose_hot, o)
    assert got is correct and re.search(pattern, message, re.S), message
    if passing is not None:
        assert passed == passing, message


@pytest.mark.parametrize("case", sorted(WAITS))
def test_q2_recorded(case):
    correct, pattern, passing = WAITS[case]
    o = WaitObservation.from_dict(recorded("q2", case))
    assert WaitObservation.from_dict(o.to_dict()) == o
    got, message, passed = verdict(diagnose_waits, o)
    assert got is correct and re.search(pattern, message, re.S), message
    if passing is not None:
        assert passed == passing, message


# ------------------------------------------------------------ q1 edges
REF = HotObservation.from_dict(recorded("q1", "reference"))


def test_q1_an_empty_map_says_what_to_check_and_tests_no_part():
    with pytest.raises(Incorrect, match=r"the map 'counts' stayed empty while lk_busy \(pid \d+\) ran") as e:
        diagnose_hot(replace(REF, stacks=()))
    assert e.value.parts == []


def test_q1_an_eight_byte_key_that_is_no_address_names_the_key_size():
    o = replace(REF, key_size=8, stacks=tuple(replace(s, frames=(), as_address="") for s in REF.stacks))
    ok, message, _ = verdict(diagnose_hot, o)
    assert not ok and "the key of 'counts' is 8 bytes" in message


def test_q1_a_stage_other_than_the_hot_one_on_top_is_named():
    # the parse stage's stacks weigh ten times what they did: the stacks no longer show lk_compress
    o = replace(REF, stacks=tuple(replace(s, value=s.value * 10) if "lk_parse" in s.frames else s for s in REF.stacks))
    o = replace(o, cpu=(o.cpu[0] * 3, o.cpu[1] * 3), sampled=o.sampled * 3)
    ok, message, passed = verdict(diagnose_hot, o)
    assert not ok and re.search(r"the stacks put lk_parse on top .*lk_compress does four times the work", message)
    assert "the stacks show the hot function (lk_compress)" not in passed


def test_q1_keys_that_are_no_stack_say_so():
    """The shipped starter counts every sample under 0, a stack id nothing stored."""
    o = replace(REF, stacks=(Stack(0, 250),))
    ok, message, passed = verdict(diagnose_hot, o)
    assert not ok and "no key of 'counts' is a stack the map 'stacks' holds (the keys: 0)" in message, message
    assert "counts is keyed by user stack ids" not in passed


def test_q1_too_few_samples_for_the_checkers_own_count_are_one_count_per_sample_failing():
    o = replace(REF, sampled=REF.sampled * 10)
    ok, message, passed = verdict(diagnose_hot, o)
    assert not ok and re.search(r"\d+ samples counted, where the checker's own program counted \d+ of lk_busy's on "
                                r"the same clock", message), message
    assert "one count per sample" not in passed


def test_q1_without_the_checkers_own_count_the_cpu_time_is_the_yardstick():
    o = replace(REF, sampled=0, cpu=(REF.cpu[0] * 10, REF.cpu[1] * 10))
    ok, message, passed = verdict(diagnose_hot, o)
    assert not ok and re.search(r"\d+ samples counted, where lk_busy's [\d.]+ s on a CPU at 99 Hz make about", message)
    assert "one count per sample" not in passed
    assert verdict(diagnose_hot, replace(REF, sampled=0))[0] is True


def test_q1_inclusive_counts_a_function_anywhere_on_the_stack():
    stacks = [Stack(1, 5, ("main", "lk_stages", "lk_compress", "lk_mix")),
              Stack(2, 2, ("main", "lk_stages", "lk_checksum", "lk_round1", "lk_mix"))]
    assert inclusive(stacks, ("lk_compress", "lk_checksum", "lk_mix", "main")) == {
        "lk_compress": 5, "lk_checksum": 2, "lk_mix": 7, "main": 7}


# ------------------------------------------------------------ q2 edges
WREF = WaitObservation.from_dict(recorded("q2", "reference"))


def test_q2_an_empty_map_says_what_to_check_and_tests_no_part():
    with pytest.raises(Incorrect, match=r"the map 'offcpu' stayed empty while lk_waiter \(pid \d+\)") as e:
        diagnose_waits(replace(WREF, stacks=()))
    assert e.value.parts == []


def test_q2_a_wide_key_is_refused_by_name():
    with pytest.raises(Incorrect, match=r"the key of 'offcpu' is 8 bytes"):
        diagnose_waits(replace(WREF, key_size=8))


def test_q2_time_missing_from_a_wait_is_named_with_its_numbers():
    o = replace(WREF, stacks=tuple(replace(s, value=s.value // 2) if "lk_wait_input" in s.frames else s
                                   for s in WREF.stacks))
    ok, message, passed = verdict(diagnose_waits, o)
    assert not ok and re.search(r"lk_wait_input holds \d+ µs and lk_nap \d+ µs; they waited at least 400000 µs",
                                message), message
    assert passed == {"only lk_waiter's threads", "the stack where each thread left the CPU",
                      "time off the CPU, in microseconds"}


def test_q2_a_wait_lost_to_a_stack_collision_is_seen_so_the_run_is_made_again():
    """A right answer whose lk_wait_input stack found its slot of the stack map taken (-EEXIST) would be
    judged on a missing wait: observe_waits makes such a run again instead (a pure check of when)."""
    assert not _collided(WREF)
    lost = tuple(replace(s, key=-17) if "lk_wait_input" in s.frames else s for s in WREF.stacks)
    assert _collided(replace(WREF, stacks=lost))
    # a little time under -EEXIST (under 5%) is no reason to run again
    total = sum(s.value for s in WREF.stacks)
    assert not _collided(replace(WREF, stacks=WREF.stacks + (Stack(-17, total // 50),)))
    # an answer that keeps every process's stacks fills its map: that is its mistake, judged as it is
    others = tuple(Stack(1000 + i, 500, ("_start", f"other_{i}")) for i in range(3))
    assert not _collided(replace(WREF, stacks=lost + others))
    assert not _collided(WaitObservation.from_dict(recorded("q2", "no-pid-filter")))
