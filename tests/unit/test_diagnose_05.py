"""Lesson 05's diagnoses at their edges, on observations made by hand (the
pure verdicts behind them are also tested in test_exercises_maps.py): q1's
buckets one low and every call in one bucket; q2's read into a variable of the
wrong size and the return value as the key."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT
from labkit.exercises.lessons.lesson05 import COLLECTS, MINE, OTHERS

ARRAY64 = {"name": "dist", "type": 2, "key_size": 4, "value_size": 8, "max_entries": 64, "flags": 0}
HASH = {"name": "collections", "type": 1, "key_size": 4, "value_size": 8, "max_entries": 10240, "flags": 0}


def q1(got):
    return lesson("05").q1.diagnose({"got": [[b, n] for b, n in got.items()], "pid": 77, "map": ARRAY64})


def q2(got, destination=("generation", "u32", 4), ctype="int32_t"):
    return lesson("05").q2.diagnose({"got": [[k, n] for k, n in got.items()], "pid": 78,
                                     "destination": list(destination) if destination else None, "ctype": ctype,
                                     "map": HASH})


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


RIGHT = {us.bit_length(): n for us, n in MINE}


def test_q1_the_buckets_with_another_process_left_out_are_correct_and_with_it_are_not():
    assert q1(RIGHT).status == CORRECT
    theirs = {us.bit_length(): n for us, n in OTHERS}
    assert "only this process" in failed(q1({**RIGHT, **theirs}))


def test_q1_one_bucket_low_and_one_bucket_for_all():
    assert "every call landed one bucket low" in failed(q1({b - 1: n for b, n in RIGHT.items()}))[
        "the argument, in log2 buckets"]
    assert failed(q1({0: sum(RIGHT.values())}))["the argument, in log2 buckets"].startswith(
        "every call landed in the same bucket (0)")


def test_q2_right_and_a_u64_destination_that_wrote_nothing():
    assert q2(dict(COLLECTS)).status == CORRECT
    res = q2({0: 10}, destination=("generation", "u64", 8))
    assert failed(res)["keyed by the generation"].startswith(
        "every collection went under the key 0, what generation held before the call: bpf_usdt_readarg(1, ctx, "
        "&generation) wrote nothing: generation is a u64 (8 bytes) and gc__start's argument is a 4-byte int32_t")


def test_q2_the_return_value_as_the_key():
    assert "not what it returns (0 on success)" in failed(q2({0: 10}))["keyed by the generation"]
