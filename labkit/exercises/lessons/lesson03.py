"""Lesson 03, Counting in maps versus sending events: getppid() calls counted per thread."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import asdict

from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    attach_answer,
    int_key_column,
    load_answer,
    need_map,
    plural,
    run_python,
    snippet_text,
    value_column,
)
from labkit.exercises.helpers import HelperFailed
from labkit.exercises.maps import HASH, MapKind, MapShape, map_kind_problem, map_shape
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["COUNTS", "build"]

TRACEPOINT = "syscalls:sys_enter_getppid"
#: getppid() calls each of this process's test threads makes (distinct, so a count names its thread)
THREAD_CALLS = (5, 17, 42)
#: the other process: its main thread and two threads call getppid() this often (never to be counted)
OTHER_CALLS = (60, 70, 80)

# A child process (its own pid) whose three threads call getppid(), all alive at
# once (so their thread ids are distinct), then print those ids.
_OTHER_PROCESS = """
import json, os, threading
calls = %r
tids = [threading.get_native_id()]
ready = threading.Barrier(len(calls))
def work(n):
    tids.append(threading.get_native_id())
    ready.wait()
    for _ in range(n):
        os.getppid()
    ready.wait()
ts = [threading.Thread(target=work, args=(n,)) for n in calls[1:]]
for t in ts:
    t.start()
ready.wait()
for _ in range(calls[0]):
    os.getppid()
ready.wait()
for t in ts:
    t.join()
print(json.dumps({"pid": os.getpid(), "tids": tids}))
""" % (OTHER_CALLS,)


#: the map as the task names it
COUNTS = MapKind("counts", HASH, "a BPF_HASH called counts", "BPF_HASH(counts, u32, u64)")


def _observe_count_by_tid(answer) -> dict:
    """Run the answer while this process's threads and another process's call getppid(): what the map
    counted (``counts``: [key, value] pairs), its kind and key size, the hooks it ran on, and who
    called how often."""
    me = os.getpid()
    tids: list[int] = [0] * len(THREAD_CALLS)
    done = threading.Barrier(len(THREAD_CALLS) + 1)
    release = threading.Event()

    def work(i: int, n: int) -> None:
        tids[i] = threading.get_native_id()
        done.wait()                  # all alive: distinct thread ids
        for _ in range(n):
            os.getppid()
        done.wait()
        release.wait(60)             # stay alive until the other process is done: no thread id is reused

    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": me})
        need_map(prog, "counts")
        shape = map_shape(prog, "counts")
        hooks = attach_answer(lab, prog, TRACEPOINT, "exercise 03 q1")
        ts = [threading.Thread(target=work, args=(i, n), name=f"lk-03q1-{i}") for i, n in enumerate(THREAD_CALLS)]
        try:
            for t in ts:
                t.start()
            done.wait(60)
            done.wait(60)
            other = run_python(_OTHER_PROCESS, timeout=60, what="another process whose threads call getppid()")
        finally:
            release.set()
            for t in ts:
                t.join()
        if other.returncode != 0:
            raise HelperFailed(f"the checker's helper process (another process whose threads call getppid()) "
                               f"exited with status {other.returncode}. Run the check again, and if it fails the "
                               f"same way, show this message to your instructor. Its last words on stderr:\n"
                               f"{other.stderr.strip()[-500:]}")
        df = map_dataframe(prog, "counts")
        key_size = ctypes.sizeof(prog["counts"].Key)
    theirs = json.loads(other.stdout.strip().splitlines()[-1])
    counts = []
    if not df.empty:
        value = value_column(df)
        key = int_key_column(df, value)
        counts = [[int(k), int(v)] for k, v in zip(df[key], df[value])]
    return {"me": me, "tids": tids, "thread_calls": list(THREAD_CALLS), "other_pid": int(theirs["pid"]),
            "other_tids": [int(t) for t in theirs["tids"]], "other_calls": list(OTHER_CALLS),
            "map": asdict(shape), "key_size": key_size, "hooks": hooks, "counts": counts}


def _diagnose_count_by_tid(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_count_by_tid` saw."""
    me, tids, calls = obs["me"], obs["tids"], obs["thread_calls"]
    other_pid, other_tids, hooks = obs["other_pid"], obs["other_tids"], obs["hooks"]
    key_size = obs["key_size"]
    kind = map_kind_problem(MapShape(**obs["map"]), COUNTS)
    if not obs["counts"]:
        where = f" (it attached itself to {', '.join(hooks)})" if hooks and not any(TRACEPOINT in h for h in hooks) \
            else ""
        raise Incorrect((f"{kind}; and " if kind else "") + "the map 'counts' stayed empty though this process's "
                        f"threads called getppid() {sum(calls)} times: is the program counting getppid() "
                        f"calls{where}? It must run on "
                        f"{TRACEPOINT}, and its filter must keep this process: lk_wanted(id >> 32), the process id "
                        "(the thread id is the process id only in the main thread)")
    got = {k: v for k, v in obs["counts"]}
    expected = dict(zip(tids, calls))

    # whole pid_tgid keys (process id << 32 | thread id): read them back by their halves
    full = {k & 0xFFFFFFFF: v for k, v in got.items() if k >> 32 == me}
    full_other = [k for k in got if k >> 32 == other_pid]
    keyed_by_pid_tgid = any(t in full for t in tids)
    per_thread = full if keyed_by_pid_tgid else got
    keyed_by_pid = not any(t in got for t in tids) and not keyed_by_pid_tgid and got.get(me, 0) >= sum(calls)

    counted_other = sorted({t for t in other_tids if t in got} | set(full_other)
                           | ({other_pid} if other_pid in got else set()))
    inverted = bool(counted_other) and not any(t in per_thread for t in tids) and got.get(me) is None
    none_of_mine = "none of this process's threads was counted (see the filter)"

    c = Checklist()
    c.part("counts is a BPF_HASH", not kind, kind)
    if inverted:
        why = none_of_mine
    elif keyed_by_pid_tgid:
        why = ("the keys are the whole bpf_get_current_pid_tgid() (process id << 32 | thread id, e.g. "
               f"{next(k for k in got if k >> 32 == me):#x}): the key is the thread id alone, a u32: "
               "u32 tid = id; (the lower 32 bits)")
    elif keyed_by_pid:
        why = (f"one counter of {got[me]} under the process id {me}: that counts per process, and this process's "
               f"{len(tids)} threads called getppid() {'/'.join(map(str, calls))} times. Key the map by the "
               "thread id, the lower 32 bits of bpf_get_current_pid_tgid(), not id >> 32")
    else:
        missing = [t for t in tids if t not in got]
        why = (f"no entry for {plural(len(missing), 'thread')} of this process ({', '.join(map(str, missing))}) "
               "though each called getppid(): does the filter test the process id, lk_wanted(id >> 32) (the thread id "
               "is the process id only in the main thread), and is the key the thread id, (u32)id?")
    c.part("keyed by the thread id", not keyed_by_pid_tgid and not keyed_by_pid and all(t in got for t in tids), why)

    wrong = [(t, n, per_thread.get(t)) for t, n in expected.items() if per_thread.get(t) != n]
    seen = [(t, n, g) for t, n, g in wrong if g is not None]
    if not wrong:
        why = ""
    elif inverted:
        why = "no counts to compare"
    elif keyed_by_pid:
        why = "a per-process counter cannot tell the threads' calls apart"
    elif seen and all(g == 1 for _, _, g in seen) and len(seen) == len(wrong):
        why = ("each thread is counted once, whatever its number of calls (the map says 1 for threads that "
               f"called {'/'.join(str(n) for _, n, _ in seen)} times): the first call creates the entry, and every "
               "later call must add one to it")
    elif seen and len(seen) == len(wrong) and len({g - n for _, n, g in seen}) == 1:
        d = seen[0][2] - seen[0][1]
        why = (f"off by {abs(d)}: every thread's count is {abs(d)} {'too many' if d > 0 else 'too few'} (e.g. "
               f"{seen[0][1]} calls, the map says {seen[0][2]}): start a new thread's counter so that its first "
               "call counts as 1")
    else:
        t, n, g = (seen or wrong)[0]
        why = f"thread {t} called getppid() {n} times, the map says {g if g is not None else 'nothing'}"
    c.part("exact count per thread", not wrong, why)

    if inverted:
        why = (f"your filter is inverted: the calls of another process (pid {other_pid}) were counted and "
               f"this process's (pid {me}) were not. Keep the events where lk_wanted(id >> 32) is true")
    else:
        why = (f"getppid() calls of another process (pid {other_pid}, threads "
               f"{', '.join(map(str, other_tids))}) were counted: only this process matters. Return early "
               "unless lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    c.part("only this process", not counted_other, why)

    c.part("the key is a u32", key_size == 4,
           f"the map's key is {key_size} bytes: the task asks for the thread id as a u32 (4 bytes), "
           "BPF_HASH(counts, u32, u64); a thread id fits in 32 bits")
    return c.done(f"yes: {len(tids)} threads called getppid() {'/'.join(map(str, calls))} times and your map "
                  f"counted each exactly (threads {', '.join(map(str, tids))}); another process's "
                  f"{sum(obs['other_calls'])} calls were left out", threads=dict(zip(map(str, tids), calls)),
                  other_process=other_pid)


def build() -> Lesson:
    """The exercises of lesson 03."""
    return Lesson("03", "Counting in maps versus sending events", [
        Exercise(
            "q1",
            "Write a program for syscalls:sys_enter_getppid that counts calls per *thread* in a BPF_HASH "
            "called counts (key: the thread id, a u32; value: the number of calls). Only this process matters: "
            "labkit passes -DLK_FILTER_PID=<pid>, and lk_wanted() from labkit.h tests it. The checker's threads "
            "call getppid() 5, 17 and 42 times, and another process calls it too (not to be counted).",
            Check(_observe_count_by_tid, _diagnose_count_by_tid),
            "bpf_get_current_pid_tgid() returns (process id << 32) | thread id. Test the upper half with "
            "lk_wanted(id >> 32), and keep the lower half as the key: u32 tid = id; counts.increment(tid);",
            lambda: snippet_text("solution_03_count_by_tid"),
            lambda: "solution_03_count_by_tid",
            "c",
        ),
    ])
