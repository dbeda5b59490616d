"""Lesson 03, Counting in maps versus sending events: getppid() calls counted per thread."""

from __future__ import annotations

import os
import threading

from labkit.exercises.framework import (
    Exercise,
    Incorrect,
    Lesson,
    int_key_column,
    load_answer,
    need_map,
    snippet_text,
    value_column,
)
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["build"]


def _check_count_by_tid(answer) -> tuple[str, dict]:
    wanted = [5, 17, 42]
    tids: list[int] = [0] * len(wanted)
    go = threading.Barrier(len(wanted) + 1)

    def work(i: int, n: int) -> None:
        tids[i] = threading.get_native_id()
        go.wait()
        for _ in range(n):
            os.getppid()

    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": os.getpid()})
        need_map(prog, "counts")
        lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid", name="exercise 03 q1")
        ts = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(wanted)]
        for t in ts:
            t.start()
        go.wait()
        for t in ts:
            t.join()
        df = map_dataframe(prog, "counts")
    if df.empty:
        raise Incorrect("the map 'counts' stayed empty: is the program counting getppid() calls "
                        "(it is attached to syscalls:sys_enter_getppid)?")
    value = value_column(df)
    key = int_key_column(df, value)
    got = {int(k): int(v) for k, v in zip(df[key], df[value])}
    if got.get(os.getpid()) == sum(wanted) or (len(got) == 1 and sum(got.values()) == sum(wanted)):
        raise Incorrect(f"one counter of {sum(wanted)} for the whole process: those are per process. Key the "
                        "map by the thread id, the lower 32 bits of bpf_get_current_pid_tgid()", got=got)
    wrong = [(tid, n, got.get(tid)) for tid, n in zip(tids, wanted) if got.get(tid) != n]
    if wrong:
        tid, n, g = wrong[0]
        raise Incorrect(f"thread {tid} called getppid() {n} times, the map says {g}"
                        + (" (no entry: is the key the thread id, a u32?)" if g is None else ""),
                        expected=dict(zip(tids, wanted)), got=got)
    return (f"yes: three threads called getppid() {wanted} times and your map counted each exactly "
            f"(threads {tids})"), {"threads": dict(zip(map(str, tids), wanted))}


def build() -> Lesson:
    """The exercises of lesson 03."""
    return Lesson("03", "Counting in maps versus sending events", [
        Exercise(
            "q1",
            "Write a program for syscalls:sys_enter_getppid that counts calls per *thread* in a BPF_HASH "
            "called counts (key: the thread id, u32). Only this process matters: labkit passes "
            "-DLK_FILTER_PID=<pid>, and lk_wanted() from labkit.h tests it.",
            _check_count_by_tid,
            "bpf_get_current_pid_tgid() returns (process id << 32) | thread id. Keep the lower half as the "
            "key: u32 tid = (u32)id; counts.increment(tid);",
            lambda: snippet_text("solution_03_count_by_tid"),
            lambda: "solution_03_count_by_tid",
            "c",
        ),
    ])

