"""Lesson 01's exercises, tried as a teacher would: the half-fixes students
really write must be judged incorrect with a message that names the mistake,
right answers written other ways (BCC's macros, per-CPU maps, a %%bpf cell)
must be judged correct, and each check reports its parts.

q1 traces the whole machine while the checker makes, in this process, a
thread, a thread made by that thread, a fork, a vfork and a posix_spawn, and
another process (with this process's comm) makes a thread and a fork.
q2's test process (its own comm) makes 16 threads from its main thread and 32
from another thread, 8 forks,
4 vforks (subprocess, posix_spawn), 1 clone(CLONE_VM) and 2 clones with every
thread flag but CLONE_THREAD, one after the other from one thread."""

from __future__ import annotations

import os
import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from kstate import bpf_fds
from labkit.exercises import lesson
from labkit.exercises.framework import snippet_text

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]


def _comm() -> str:
    with open("/proc/thread-self/comm") as f:
        return f.read().strip()


# ===================================================================== q1
Q1_WRONG = [
    # who, but not what: forks and vforks of this process pass
    ("pid only", lambda df: df[df.pid == os.getpid()], r"kept \d+ processes this process created.*kind == 'thread'"),
    # what, but not who: every thread on the machine
    ("kind only", "kind == 'thread'", r"by other processes.*keep only pid == os.getpid\(\)"),
    # tid is the creating *thread*: a thread made by another thread of this process is lost
    ("tid instead of pid", lambda df: df[(df.tid == os.getpid()) & (df.kind == "thread")],
     r"dropped 1 thread that another thread of this process created.*compare pid, not tid"),
    ("tid in a query", "tid == @me and kind == 'thread'", r"compare pid, not tid"),
    # this process by its name: another process can have the same comm
    ("same comm", lambda df: df[(df.comm == _comm()) & (df.kind == "thread")],
     r"by other processes \(e\.g\. a thread by pid \d+, comm '[^']*', the same comm as this process\)"),
    # 'not a fork' is not 'a thread': vforks pass
    ("not fork", lambda df: df[(df.pid == os.getpid()) & (df.kind != "fork")],
     r"kept 3 processes this process created \(kind vfork"),
    # or instead of and
    ("or", "pid == @me or kind == 'thread'", r"processes this process created.*by other processes"),
    # selecting columns instead of rows
    ("columns", lambda df: df[(df.pid == os.getpid()) & (df.kind == "thread")][["time", "child_pid"]],
     r"keep the columns \(at least pid and child_pid\)"),
]

Q1_RIGHT = [
    ("mask", lambda df: df[(df.pid == os.getpid()) & (df.kind == "thread")]),
    ("query with @me", "pid == @me and kind == 'thread'"),
    ("query with &", "kind == 'thread' & pid == @me"),
    ("a boolean Series", lambda df: df.pid.eq(os.getpid()) & df.kind.eq("thread")),
    ("the flags", lambda df: df.loc[(df.pid == os.getpid()) & ((df["flags"] & 0x10000) != 0)]),
    ("query in a function", lambda df: df.query("pid == @me and kind == 'thread'", local_dict={"me": os.getpid()})),
]


@pytest.fixture
def ex01():
    before = bpf_fds()
    yield lesson("01")
    assert labkit.live_attachments() == []
    after = bpf_fds()
    for kind in ("prog", "link", "perf_event"):
        assert not set(after[kind]) - set(before[kind]), f"the check left {kind} fds open"


@pytest.mark.parametrize("answer,pattern", [w[1:] for w in Q1_WRONG], ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex01, answer, pattern):
    r = ex01.q1.check(answer)
    assert r.status == "incorrect", r.message
    assert re.search(pattern, r.message), r.message


@pytest.mark.parametrize("answer", [r[1] for r in Q1_RIGHT], ids=[r[0] for r in Q1_RIGHT])
def test_q1_right_answers_are_correct(ex01, answer):
    r = ex01.q1.check(answer)
    assert r.status == "correct", r.message
    assert r.score == 1.0 and len(r.parts) == 4
    assert os.getpid() not in r.details["got"] and len(r.details["got"]) >= 3   # two threads + the reader


def test_q1_parts(ex01):
    r = ex01.q1.check(lambda df: df[(df.tid == os.getpid()) & (df.kind == "thread")])
    assert {p.name: p.passed for p in r.parts} == {
        "keeps the threads this process created": True,
        "keeps the threads created by this process's other threads": False,
        "drops the processes this process created (fork, vfork)": True,
        "drops what other processes created": True}
    assert r.score == 0.75
    r = ex01.q1.check("pid == @me or kind == 'thread'")
    assert [p.passed for p in r.parts] == [True, True, False, False] and r.score == 0.5


def test_q1_me_is_defined_in_query_strings(ex01):
    r = ex01.q1.check("pid == @me and kind == 'thread'")
    assert r.status == "correct", r.message
    r = ex01.q1.check("pid == @nobody and kind == 'thread'")      # only @me is defined
    assert r.status == "incorrect" and "nobody" in r.message


# ===================================================================== q2
_ARGS = r"""
#define CLONE_THREAD 0x00010000

struct task_newtask_args {
    u64 common;
    s32 pid;
    char comm[16];
    u64 clone_flags;
    s16 oom_score_adj;
};
"""


def student(condition: str, *, key: str = "creator", count: str = "atomic", defines: str = _ARGS) -> str:
    """count_by_comm.c as a student changes it: the tracepoint's arguments, an
    early return on ``condition`` (C, over ``args``), and a key."""
    keys = {
        "creator": ("struct key_t {\n    u32 uid;\n    char comm[16];\n};",
                    "key.uid = (u32)bpf_get_current_uid_gid();\n    bpf_get_current_comm(&key.comm, sizeof(key.comm));"),
        "pid": ("struct key_t {\n    u32 pid;\n};", "key.pid = bpf_get_current_pid_tgid() >> 32;"),
        "new task": ("struct key_t {\n    char comm[16];\n};",
                     "bpf_probe_read_kernel(&key.comm, sizeof(key.comm), args->comm);"),
    }
    decl, fill = keys[key]
    add = {"atomic": "counts.atomic_increment(key);",
           "plain": "counts.increment(key);",
           "sync": "u64 zero = 0;\n    u64 *n = counts.lookup_or_try_init(&key, &zero);\n    if (n)\n"
                   "        __sync_fetch_and_add(n, 1);"}[count]
    return f"""#include "labkit.h"
{defines}
{decl}

BPF_HASH(counts, struct key_t, u64, 10240);

int count_threads(struct task_newtask_args *args)
{{
    {condition}
    struct key_t key = {{}};
    {fill}
    {add}
    return 0;
}}
"""


WITH_CLONE_VM = _ARGS.replace("#define CLONE_THREAD 0x00010000", "#define CLONE_VM 0x00000100")
WITH_CLONE_VFORK = _ARGS.replace("#define CLONE_THREAD 0x00010000", "#define CLONE_VFORK 0x00004000")
WITH_CLONE_SIGHAND = _ARGS.replace("#define CLONE_THREAD 0x00010000", "#define CLONE_SIGHAND 0x00000800")

PRINTK = _ARGS.join(['#include "labkit.h"\n', r"""
int count_threads(struct task_newtask_args *args)
{
    if (!(args->clone_flags & CLONE_THREAD))
        return 0;
    char comm[16];
    bpf_get_current_comm(&comm, sizeof(comm));
    bpf_trace_printk("thread by %s\n", comm);
    return 0;
}
"""])

FORK_TRACEPOINT = r"""
struct key_t {
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64, 10240);

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    struct key_t key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    counts.atomic_increment(key);
    return 0;
}
"""

Q2_WRONG = [
    ("unchanged count_by_comm", "count_by_comm", r"it counts every creation: nothing tests CLONE_THREAD"),
    ("CLONE_VM", student("if (!(args->clone_flags & CLONE_VM))\n        return 0;", defines=WITH_CLONE_VM),
     r"every creation with CLONE_VM \(0x100\): test CLONE_THREAD"),
    ("CLONE_VFORK", student("if (!(args->clone_flags & CLONE_VFORK))\n        return 0;", defines=WITH_CLONE_VFORK),
     r"the creations with CLONE_VFORK \(0x4000\): test CLONE_THREAD.*did not count the 48 threads"),
    ("CLONE_SIGHAND", student("if (!(args->clone_flags & CLONE_SIGHAND))\n        return 0;",
                              defines=WITH_CLONE_SIGHAND),
     r"CLONE_SIGHAND/CLONE_FILES/CLONE_FS: test CLONE_THREAD.*share memory but are not threads"),
    ("inverted", student("if (args->clone_flags & CLONE_THREAD)\n        return 0;"),
     r"the condition is inverted"),
    ("precedence", student("if (args->clone_flags & CLONE_THREAD == 0)\n        return 0;"),
     r"`flags & CLONE_THREAD == 0` is `flags & \(CLONE_THREAD == 0\)`"),
    ("equality", student("if (args->clone_flags != CLONE_THREAD)\n        return 0;"),
     r"stayed empty.*test the CLONE_THREAD bit with &, not =="),
    # "a thread is when pid != tid", about the creator: only threads' threads are counted
    ("creator's tid vs pid", student("u64 id = bpf_get_current_pid_tgid();\n    if ((u32)id == (id >> 32))\n"
                                     "        return 0;"),
     r"counted only the 32 threads made by a thread other than the main one.*test CLONE_THREAD"),
    ("keyed by pid", student("if (!(args->clone_flags & CLONE_THREAD))\n        return 0;", key="pid"),
     r"no entry for the checker's program \(comm 'lkq-ex01-\w+'\): key the map by the creator's comm"),
    ("printk, no map", PRINTK, r"no map called 'counts'"),
    ("fork tracepoint", FORK_TRACEPOINT,
     r"runs on tracepoint sched:sched_process_fork, not on task:task_newtask.*also counted the 8 forks"),
]

_CONDITION = "if (!(args->clone_flags & CLONE_THREAD))\n        return 0;"

TP_PROBE = r"""
#define CLONE_THREAD 0x00010000
struct key_t {
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64);

TRACEPOINT_PROBE(task, task_newtask)
{
    if ((args->clone_flags & CLONE_THREAD) == 0)
        return 0;
    struct key_t key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    counts.increment(key);
    return 0;
}
"""

PERCPU = r"""
struct key_t {
    u32 uid;
    char comm[16];
};
BPF_PERCPU_HASH(counts, struct key_t, u64, 10240);

TRACEPOINT_PROBE(task, task_newtask)
{
    if (!(args->clone_flags & 0x10000))      /* CLONE_THREAD */
        return 0;
    struct key_t key = {.uid = bpf_get_current_uid_gid()};
    bpf_get_current_comm(key.comm, sizeof(key.comm));
    u64 zero = 0, *n = counts.lookup_or_try_init(&key, &zero);
    if (n)
        (*n)++;                               /* per-CPU: a plain add is exact */
    return 0;
}
"""

RAW_TP = r"""
#include <linux/sched.h>
struct key_t {
    char comm[16];
};
BPF_HASH(counts, struct key_t, u64, 10240);

RAW_TRACEPOINT_PROBE(task_newtask)
{
    u64 flags = ctx->args[1];                 /* task_newtask(struct task_struct *task, u64 clone_flags) */
    if (!(flags & CLONE_THREAD))
        return 0;
    struct key_t key = {};
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    counts.atomic_increment(key);
    return 0;
}
"""

Q2_RIGHT = [
    ("count_by_comm with the test", student(_CONDITION, count="sync")),
    ("atomic_increment", student(_CONDITION)),
    ("plain increment (one creating thread)", student(_CONDITION, count="plain")),
    ("keyed by the new task's comm", student(_CONDITION, key="new task", count="sync")),
    ("TRACEPOINT_PROBE", TP_PROBE),
    ("BPF_PERCPU_HASH", PERCPU),
    ("RAW_TRACEPOINT_PROBE", RAW_TP),
]


@pytest.mark.parametrize("answer,pattern", [w[1:] for w in Q2_WRONG], ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex01, answer, pattern):
    r = ex01.q2.check(answer)
    assert r.status == "incorrect", r.message
    assert re.search(pattern, r.message, re.S), r.message


@pytest.mark.parametrize("answer", [r[1] for r in Q2_RIGHT], ids=[r[0] for r in Q2_RIGHT])
def test_q2_right_answers_are_correct(ex01, answer):
    r = ex01.q2.check(answer)
    assert r.status == "correct", r.message
    assert r.details["counted"] == 48 and r.score == 1.0 and len(r.parts) == 5


def test_q2_a_bpf_cell_is_an_answer(ex01):
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        res = sh.run_cell("%%bpf my_threads\n" + TP_PROBE)
        assert res.error_in_exec is None and res.error_before_exec is None
        prog = sh.user_ns["my_threads"]
        assert isinstance(prog, labkit.Program)
        r = ex01.q2.check(prog)
        assert r.status == "correct", r.message
        # a Program made with lab.load (a plain function, attached by the checker) is an answer too
        r = ex01.q2.check(lab.load(student(_CONDITION), name="mine"))
        assert r.status == "correct", r.message
    finally:
        lab.close()
        sh.user_ns.clear()
        InteractiveShell.clear_instance()


def test_q2_parts(ex01):
    r = ex01.q2.check(Q2_WRONG[1][1])            # CLONE_VM
    assert {p.name: p.passed for p in r.parts} == {
        "keyed by the creator's comm": True, "counts the threads": True, "does not count forks": True,
        "does not count vforks": False, "does not count processes that share memory": False}
    assert r.score == 0.6 and r.details["counted"] == 48 + 4 + 1 + 2
    r = ex01.q2.check(student(_CONDITION, key="pid"))   # right test, wrong key: judged on its pid's entry
    assert [(p.name, p.passed) for p in r.parts if not p.passed] == [("keyed by the creator's comm", False)]
    assert r.score == 0.8


def test_q2_reference_and_its_text_are_not_answers(ex01):
    assert ex01.q2.check_solution().status == "correct"
    r = ex01.q2.check(snippet_text("solution_01_threads_by_comm"))
    assert r.status == "incorrect" and "reference solution" in r.message
