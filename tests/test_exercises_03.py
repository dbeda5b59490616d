"""Lesson 03's exercise checker, tried with the half-fixes students write (each
judged incorrect, with a message that names the mistake; a map of another kind
than the task's BPF_HASH among them) and with right answers written in other
ways (BCC macros, BPF_TABLE("hash", ...) spelled out, a %%bpf Program): real
kernel."""

from __future__ import annotations

import re

import pytest

import labkit
from labkit.exercises.lessons import lesson03

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

HEAD = '#include "labkit.h"\n'

# ------------------------------------------------------------------ wrong answers
NO_FILTER = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u32 tid = bpf_get_current_pid_tgid();
    counts.increment(tid);
    return 0;
}
"""

KEYED_BY_PID = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 pid = id >> 32;          // "the pid" -- but that is the process
    counts.increment(pid);
    return 0;
}
"""

KEYED_BY_PID_TGID = HEAD + """
BPF_HASH(counts, u64, u64);
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    counts.increment(id);        // the whole id: unique per thread, but not the thread id
    return 0;
}
"""

FIRST_CALL_ONLY = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    u64 one = 1;
    counts.lookup_or_try_init(&tid, &one);   // creates the entry... and never adds
    return 0;
}
"""

INVERTED_FILTER = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    counts.increment(tid);
    return 0;
}
"""

OFF_BY_ONE = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    u64 one = 1;
    u64 *n = counts.lookup_or_try_init(&tid, &one);
    if (n)
        __sync_fetch_and_add(n, 1);          // the first call is counted twice
    return 0;
}
"""

U64_KEY_TID = HEAD + """
BPF_HASH(counts);                            // BCC's default: u64 key, u64 value
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    counts.increment(tid);
    return 0;
}
"""

WRONG_HOOK = HEAD + """
BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getpid)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    counts.increment(tid);
    return 0;
}
"""

FILTER_ON_TID = HEAD + """
BPF_HASH(counts, u32, u64);
int count_calls(void *ctx)
{
    u32 tid = bpf_get_current_pid_tgid();
    if (!lk_wanted(tid))                     // the thread id: equals the pid in the main thread only
        return 0;
    counts.increment(tid);
    return 0;
}
"""

# the task's words: "a BPF_HASH called counts" (a per-CPU hash or an LRU hash count the same here, and
# passed before the checker held the map's kind)
PERCPU = HEAD + """
BPF_PERCPU_HASH(counts, u32, u64);           // one value per CPU: read as their sum
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 id = bpf_get_current_pid_tgid();
    if (LK_FILTER_PID && (id >> 32) != LK_FILTER_PID)
        return 0;
    u32 tid = id;
    u64 *n = counts.lookup(&tid);
    if (n) {
        (*n)++;
    } else {
        u64 one = 1;
        counts.update(&tid, &one);
    }
    return 0;
}
"""

LRU = HEAD + """
BPF_TABLE("lru_hash", u32, u64, counts, 1024);   // a hash that never refuses a thread
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    u64 zero = 0, *n = counts.lookup_or_try_init(&tid, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""

WRONG = [
    ("a BPF_PERCPU_HASH", PERCPU, r"^not yet: counts is a per-CPU hash \(BPF_PERCPU_HASH\), and the task asks for a "
     r"BPF_HASH called counts \(a per-CPU hash keeps one value per CPU.*\): declare BPF_HASH\(counts, u32, u64\)$"),
    ("an LRU hash", LRU, r"^not yet: counts is an LRU hash \(BPF_TABLE\(\"lru_hash\", \.\.\.\)\), and the task "
     r"asks for a BPF_HASH called counts \(an LRU hash evicts .*\): declare BPF_HASH\(counts, u32, u64\)$"),
    ("no pid filter", NO_FILTER, r"another process .* were counted: only this process matters"),
    ("keyed by the process id", KEYED_BY_PID, r"under the process id .* counts per process"),
    ("keyed by the whole pid_tgid", KEYED_BY_PID_TGID, r"whole bpf_get_current_pid_tgid\(\).*thread id alone, a u32"),
    ("counts only the first call", FIRST_CALL_ONLY, r"each thread is counted once.*must add one"),
    ("filter inverted", INVERTED_FILTER, r"filter is inverted"),
    ("off by one", OFF_BY_ONE, r"off by 1: every thread's count is 1 too many"),
    ("u64 key holding the tid", U64_KEY_TID, r"key is 8 bytes: the task asks for the thread id as a u32"),
    ("filter on the thread id", FILTER_ON_TID, r"filter must keep this process: lk_wanted\(id >> 32\)"),
    ("wrong tracepoint", WRONG_HOOK, r"stayed empty.*attached itself to tracepoint syscalls:sys_enter_getpid"),
]

# ------------------------------------------------------------------ right answers
TRACEPOINT_PROBE_ATOMIC = HEAD + """
BPF_HASH(counts, u32, u64, 4096);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id & 0xffffffff;
    counts.atomic_increment(tid);
    return 0;
}
"""

LOOKUP_OR_INIT_FETCH_ADD = HEAD + """
BPF_HASH(counts, u32, u64);
int on_getppid(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!lk_wanted(tgid))
        return 0;
    u64 zero = 0;
    u64 *n = counts.lookup_or_try_init(&tid, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""

NO_PREALLOC = HEAD + """
BPF_F_TABLE("hash", u32, u64, counts, 4096, BPF_F_NO_PREALLOC);   // a BPF_HASH, its entries made on demand
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    u32 tid = id;
    counts.atomic_increment(tid);
    return 0;
}
"""

INT_KEY_UPDATE = HEAD + """
BPF_TABLE("hash", int, u32, counts, 1024);   // BPF_HASH spelled out: s32 key, u32 value
int count_calls(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (!lk_wanted(id >> 32))
        return 0;
    int tid = (int)id;
    u32 *n = counts.lookup(&tid);
    u32 v = n ? *n + 1 : 1;
    counts.update(&tid, &v);
    return 0;
}
"""

RIGHT = [
    ("TRACEPOINT_PROBE + atomic_increment", TRACEPOINT_PROBE_ATOMIC),
    ("lookup_or_try_init + __sync_fetch_and_add", LOOKUP_OR_INIT_FETCH_ADD),
    ("BPF_F_TABLE hash without preallocation", NO_PREALLOC),
    ("BPF_TABLE hash, int key, u32 value", INT_KEY_UPDATE),
]


# partial credit: the parts some wrong answers pass (checked with the wrong answers, no extra runs)
PARTS = {
    "no pid filter": ({"counts is a BPF_HASH": True, "keyed by the thread id": True, "exact count per thread": True,
                       "only this process": False, "the key is a u32": True}, 0.8),
    "keyed by the whole pid_tgid": ({"counts is a BPF_HASH": True, "keyed by the thread id": False,
                                     "exact count per thread": True, "only this process": True,
                                     "the key is a u32": False}, 0.6),
    # right in every other way: only the kind the task names fails
    "a BPF_PERCPU_HASH": ({"counts is a BPF_HASH": False, "keyed by the thread id": True,
                           "exact count per thread": True, "only this process": True, "the key is a u32": True}, 0.8),
    "an LRU hash": ({"counts is a BPF_HASH": False, "keyed by the thread id": True, "exact count per thread": True,
                     "only this process": True, "the key is a u32": True}, 0.8),
}


@pytest.fixture
def q1():
    return lesson03.build().q1


def check(q1, answer):
    res = q1.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.mark.parametrize("case,answer,expected", [pytest.param(i, a, m, id=i) for i, a, m in WRONG])
def test_wrong_answers_are_incorrect_and_say_why(q1, case, answer, expected):
    res = check(q1, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    if case in PARTS:
        parts, score = PARTS[case]
        assert {p.name: p.passed for p in res.parts} == parts
        assert res.score == score


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in RIGHT])
def test_right_answers_written_other_ways_are_correct(q1, answer):
    res = check(q1, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


def test_the_reference_is_correct_as_the_checker_runs_it(q1):
    res = q1.check_solution()
    assert res.correct, res.message
    assert q1.status == "not attempted"


def test_a_bpf_cell_program_is_correct(q1):
    with labkit.Lab() as lab:     # the student's %%bpf program: the checker loads its own copy
        prog = lab.load(LOOKUP_OR_INIT_FETCH_ADD.replace("on_getppid", "mine"), name="my_count_by_tid",
                        defines={"LK_FILTER_PID": 1})
        res = check(q1, prog)
    assert res.status == "correct", res.message
