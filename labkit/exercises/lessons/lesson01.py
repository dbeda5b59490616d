"""Lesson 01, Hello clone: a filter that keeps this process's threads (q1), and a
program that counts only thread creations per comm (q2)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pandas as pd

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Exercise,
    Incorrect,
    Lesson,
    load_answer,
    need_map,
    plural,
    run_python,
    snippet_text,
    value_column,
)
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["build"]


_OTHER_THREAD = "import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()"


def _apply_filter(answer, df, me: int):
    if isinstance(answer, str):
        out = df.query(answer, local_dict={"me": me})
    elif callable(answer):
        out = answer(df.copy())
    else:
        raise Incorrect("the answer must be a function taking the DataFrame (e.g. lambda df: df[...]) "
                        "or a pandas query string")
    if isinstance(out, pd.Series) and out.dtype == bool:
        out = df[out.reindex(df.index, fill_value=False)]
    if not isinstance(out, pd.DataFrame):
        raise Incorrect(f"your filter returned a {type(out).__name__}, not a DataFrame")
    if "child_pid" not in out.columns:
        raise Incorrect("keep the columns (at least child_pid): filter rows, do not select columns")
    return out


def _check_thread_filter(answer) -> tuple[str, dict]:
    me = os.getpid()
    with Lab() as lab:
        s = lab.trace_clone(name="exercise 01 q1")           # every process on the machine
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        ours = t.native_id
        child = subprocess.Popen(["true"])                    # a process we create
        child.wait()
        other = subprocess.Popen([sys.executable, "-c", _OTHER_THREAD])   # a thread another process creates
        other.wait()

        def ready(df):
            return ({ours, child.pid} <= set(df.child_pid)
                    and ((df.pid == other.pid) & (df.kind == "thread")).any())
        if not s.wait(ready, timeout=5):
            raise LabkitError("the checker's own events did not all arrive within 5 s; run it again")
        df = s.to_dataframe()
    got_df = _apply_filter(answer, df, me)
    expected = set(df[(df.pid == me) & (df.kind == "thread")].child_pid)
    got = set(got_df.child_pid)
    why = []
    extra_other = got_df[got_df.pid != me]
    if len(extra_other):
        ex = extra_other.iloc[0]
        why.append(f"it kept {plural(len(extra_other), 'creation')} by other processes (e.g. pid {ex.pid}, comm "
                   f"{ex.comm!r}): keep only pid == os.getpid()")
    extra_kind = got_df[(got_df.pid == me) & (got_df.kind != "thread")]
    if len(extra_kind):
        why.append(f"it kept {plural(len(extra_kind), 'process', 'processes')} this process created (kind "
                   f"{', '.join(sorted(set(extra_kind.kind)))}, e.g. child {extra_kind.child_pid.iloc[0]}): "
                   "keep only kind == 'thread'")
    missed = expected - got
    if missed:
        why.append(f"it dropped {plural(len(missed), 'thread')} this process created (e.g. {min(missed)})")
    if why:
        raise Incorrect("not yet: " + "; ".join(why),
                        expected=sorted(expected), got=sorted(got))
    return (f"yes: out of {len(df)} creations on the whole machine your filter kept exactly the "
            f"{len(expected)} threads of this process (among them {ours})"), {"kept": len(expected)}


_EX01_CHILD = r"""
import ctypes, os, threading
ctypes.CDLL(None).prctl(15, b"lkq-ex01", 0, 0, 0)      # PR_SET_NAME: this comm
ts = [threading.Thread(target=lambda: None) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _check_threads_by_comm(answer) -> tuple[str, dict]:
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer")
        need_map(prog, "counts")
        lab.attach_tracepoint(prog, "task:task_newtask", name="exercise 01 q2")
        r = run_python(_EX01_CHILD)
        if r.returncode != 0:
            raise LabkitError(f"the checker's test process failed: {r.stderr.strip()[-300:]}")
        time.sleep(0.05)
        df = map_dataframe(prog, "counts")
    if df.empty:
        raise Incorrect("the map 'counts' stayed empty: is the function attached (it is the only one?) "
                        "and does it count with counts.increment(key)?")
    value = value_column(df)
    text_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    rows = df[df[text_cols].eq("lkq-ex01").any(axis=1)] if text_cols else df.iloc[0:0]
    if rows.empty:
        raise Incorrect("no entry for the checker's program (comm 'lkq-ex01', which made 4 threads and 2 "
                        "processes): key the map by the creator's comm (bpf_get_current_comm)",
                        keys=df.drop(columns=[value]).head(5).to_dict("records"))
    n = int(rows[value].sum())
    if n == 6:
        raise Incorrect("counted 6 for 'lkq-ex01': that is its 4 threads *and* its 2 forks. Count only "
                        "creations whose clone_flags have CLONE_THREAD (0x10000)", counted=n)
    if n != 4:
        raise Incorrect(f"counted {n} for 'lkq-ex01', which created exactly 4 threads (and 2 processes)",
                        counted=n)
    return ("yes: 'lkq-ex01' created 4 threads and 2 processes, and your map counted exactly its 4 threads "
            f"({plural(len(df), 'comm')} counted in all)"), {"counted": n, "comms": len(df)}


def build() -> Lesson:
    """The exercises of lesson 01."""
    return Lesson("01", "Hello clone", [
        Exercise(
            "q1",
            "Write a filter (a function of the DataFrame, or a pandas query string where @me is this "
            "process's pid) that keeps only the threads created by this process (os.getpid()).",
            _check_thread_filter,
            "Two conditions: who created it (the pid column is the creator's process id) and what was "
            "created (the kind column: fork, vfork or thread). Combine them with & in a boolean mask.",
            "my_filter = lambda df: df[(df.pid == os.getpid()) & (df.kind == 'thread')]\n"
            "# or the query string: \"pid == @me and kind == 'thread'\"",
            lambda: (lambda df: df[(df.pid == os.getpid()) & (df.kind == "thread")]),
        ),
        Exercise(
            "q2",
            "Change count_by_comm.c so that it counts only *thread* creations, per comm, in a map called "
            "counts (hook: tracepoint task:task_newtask).",
            _check_threads_by_comm,
            "The tracepoint's arguments (see trace_clone.c's struct task_newtask_args) include clone_flags; "
            "a new thread has CLONE_THREAD (0x00010000) set. Return early when it is not set.",
            lambda: snippet_text("solution_01_threads_by_comm"),
            lambda: "solution_01_threads_by_comm",
            "c",
        ),
    ])

