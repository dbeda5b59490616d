"""The kind of map a task names, held by the checkers (labkit.exercises.maps), and
the verdicts of lessons 05 and 09 when the answer's map is of another kind: pure
functions, judged here on made-up measurements (no kernel)."""

from __future__ import annotations

import pytest

from labkit.exercises.framework import Incorrect
from labkit.exercises.lessons import lesson03, lesson05, lesson09
from labkit.exercises.maps import (ARRAY, HASH, LRU_HASH, PERCPU_ARRAY, PERCPU_HASH, MapKind, MapShape, kind_words,
                                   map_kind_problem)

COUNTS = MapKind("counts", HASH, "a BPF_HASH called counts", "BPF_HASH(counts, u32, u64)")


def shape(name: str, map_type: int, key: int = 4, value: int = 8, entries: int = 10240) -> MapShape:
    return MapShape(name, map_type, key, value, entries)


def test_the_kind_the_task_asks_for_is_no_problem_whatever_its_sizes():
    assert map_kind_problem(shape("counts", HASH), COUNTS) == ""
    # key and value widths are other parts' business where the task's kind does not fix them
    assert map_kind_problem(shape("counts", HASH, key=8, value=4, entries=64), COUNTS) == ""


@pytest.mark.parametrize("map_type,written,does", [
    (PERCPU_HASH, "a per-CPU hash (BPF_PERCPU_HASH)", "one value per CPU"),
    (ARRAY, "an array (BPF_ARRAY)", "every key from 0 to its size"),
    (LRU_HASH, 'an LRU hash (BPF_TABLE("lru_hash", ...))', "evicts"),
])
def test_another_kind_is_named_beside_what_the_task_asks_and_how_to_declare_it(map_type, written, does):
    why = map_kind_problem(shape("counts", map_type), COUNTS)
    assert why.startswith(f"counts is {written}, and the task asks for a BPF_HASH called counts ("), why
    assert does in why and why.endswith(": declare BPF_HASH(counts, u32, u64)"), why


def test_a_task_that_fixes_the_value_width_holds_it():
    want = MapKind("dist", ARRAY, "BPF_HISTOGRAM(dist)", "BPF_HISTOGRAM(dist)", value_size=8)
    assert map_kind_problem(shape("dist", ARRAY, value=8, entries=64), want) == ""
    assert map_kind_problem(shape("dist", ARRAY, value=4, entries=64), want) == (
        "dist's values are 4 bytes, and those of the task's map are 8 (it asks for BPF_HISTOGRAM(dist)): "
        "declare BPF_HISTOGRAM(dist)")


def test_a_lessons_own_note_replaces_the_general_one_and_core_names_the_kernels_types():
    why = map_kind_problem(shape("dist", HASH, key=8, entries=64), lesson05.DIST)
    assert "BCC makes a BPF_HISTOGRAM an array only when its key is an int" in why
    assert "holds only the keys stored" not in why
    assert kind_words(PERCPU_HASH, core=True) == "a per-CPU hash (BPF_MAP_TYPE_PERCPU_HASH)"
    assert kind_words(99) == "a map of type 99 (enum bpf_map_type)"
    why = map_kind_problem(shape("execs", LRU_HASH), lesson09.EXECS_MAP)
    assert why.startswith("execs is an LRU hash (BPF_MAP_TYPE_LRU_HASH), and the task asks for a hash map execs")
    assert why.endswith("declare __uint(type, BPF_MAP_TYPE_HASH) in execs")


def test_the_lessons_kinds_are_what_their_tasks_say():
    for want, ex in ((lesson03.COUNTS, lesson03.build().q1), (lesson05.DIST, lesson05.build().q1),
                     (lesson05.COLLECTIONS, lesson05.build().q2), (lesson09.EXECS_MAP, lesson09.build().q1),
                     (lesson09.EXIT_CODES_MAP, lesson09.build().q2)):
        task = ex.task.replace("`", "")
        said = [f"BPF_HISTOGRAM({want.name})"] if want.type == ARRAY else \
            [f"BPF_HASH called {want.name}", f"hash map {want.name}"]
        assert any(s in task for s in said), (want, ex.task)


# --------------------------------------------------------- lesson 05's verdicts with a map of another kind
Q1_RIGHT = {b.bit_length(): n for b, n in lesson05.MINE}


def _parts(res) -> dict[str, bool]:
    return {p.name: p.passed for p in res[1]["parts"]}


def test_05_q1_a_right_histogram_in_an_array_is_correct():
    msg, details = lesson05._judge_usleep_histogram(dict(Q1_RIGHT), 1234, shape("dist", ARRAY, entries=64))
    assert msg.startswith("yes") and all(p.passed for p in details["parts"])


@pytest.mark.parametrize("map_type,key,written", [(HASH, 4, "a hash (BPF_HASH)"),
                                                   (PERCPU_ARRAY, 4, "a per-CPU array (BPF_PERCPU_ARRAY)"),
                                                   (HASH, 8, "a hash (BPF_HASH)")])
def test_05_q1_right_counts_in_another_kind_of_map_fail_only_the_kind(map_type, key, written):
    with pytest.raises(Incorrect) as e:
        lesson05._judge_usleep_histogram(dict(Q1_RIGHT), 1234, shape("dist", map_type, key=key))
    assert str(e.value).startswith(f"not yet: dist is {written}, and the task asks for BPF_HISTOGRAM(dist)")
    assert [p.name for p in e.value.parts if not p.passed] == ["dist is a BPF_HISTOGRAM (an array of u64 counters)"]


def test_05_q1_an_empty_map_of_another_kind_says_the_kind_first():
    with pytest.raises(Incorrect, match=r"^dist is an LRU hash .*; and the map 'dist' stayed empty"):
        lesson05._judge_usleep_histogram({}, 1234, shape("dist", LRU_HASH))


def test_05_q2_right_counts_in_an_array_fail_only_the_kind():
    got = dict(lesson05.COLLECTS)
    ok = lesson05._judge_gc_generations(got, 1, ("gen", "u32", 4), shape=shape("collections", HASH))
    assert all(p.passed for p in ok[1]["parts"])
    with pytest.raises(Incorrect) as e:
        lesson05._judge_gc_generations(got, 1, ("gen", "int", 4), shape=shape("collections", ARRAY, entries=3))
    assert str(e.value) == (
        "not yet: collections is an array (BPF_ARRAY), and the task asks for a BPF_HASH called collections (an "
        "array has every key from 0 to its size from the start, each 0 until written: its keys are indexes): "
        "declare BPF_HASH(collections, u32, u64)")


# --------------------------------------------------------- lesson 09's verdicts with a map of another kind
def _runs() -> list[lesson09.ParentRun]:
    return [lesson09.ParentRun(100, 3, 1, False, (101, 102, 103, 104), ((104, 105),)),
            lesson09.ParentRun(200, 5, 2, True, (201, 202, 203, 204, 205))]


def test_09_q1_right_counts_in_a_per_cpu_hash_fail_only_the_kind():
    counts = {100: 4, 200: 5}
    assert lesson09._judge_execs_by_parent(_runs(), counts, shape("execs", HASH))[0].startswith("4 execs")
    with pytest.raises(Incorrect) as e:
        lesson09._judge_execs_by_parent(_runs(), counts, shape("execs", PERCPU_HASH))
    assert [p.name for p in e.value.parts if not p.passed] == ["execs is a hash map"]
    assert "execs is a per-CPU hash (BPF_MAP_TYPE_PERCPU_HASH), and the task asks for a hash map execs" \
        in str(e.value)


def test_09_q2_right_codes_in_an_lru_hash_fail_only_the_kind():
    pids = {how: 300 + i for i, how in enumerate(lesson09.ENDINGS)}
    codes = {pids[how]: code for how, code in lesson09.ENDINGS.items()}
    assert lesson09._judge_exit_codes(codes, pids, 0, shape=shape("exit_codes", HASH, value=4))[0].startswith("exit")
    with pytest.raises(Incorrect) as e:
        lesson09._judge_exit_codes(codes, pids, 0, shape=shape("exit_codes", LRU_HASH, value=4))
    assert [p.name for p in e.value.parts if not p.passed] == ["exit_codes is a hash map"]
    assert "an LRU hash evicts its least recently used entry" in str(e.value)
