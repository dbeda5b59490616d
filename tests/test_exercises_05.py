"""Lesson 05's exercise checkers, tried with the half-fixes students write (each
judged incorrect, with a message that names the mistake; maps of another kind
than the tasks' BPF_HISTOGRAM and BPF_HASH among them) and with right answers
written in other ways (BCC macros, BPF_ARRAY and BPF_TABLE spelled out, a %%bpf
Program): real kernel,
real uprobes on libc's usleep() and CPython's USDT probe gc__start, in child
processes the checkers start (q1's makes some of its calls from a second thread)."""

from __future__ import annotations

import os
import re
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises import helpers
from labkit.exercises.lessons import lesson05

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

HEAD = '#include <uapi/linux/ptrace.h>\n#include "labkit.h"\n'

# ============================================================ q1: usleep() histogram
Q1_NO_FILTER = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    u64 us = PT_REGS_PARM1(ctx);
    dist.increment(bpf_log2l(us));
    return 0;
}
"""
Q1_RAW_VALUES = HEAD + """
BPF_HASH(dist, u64, u64);
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 us = PT_REGS_PARM1(ctx);
    dist.increment(us);                  // "a histogram": one bar per value
    return 0;
}
"""
Q1_OWN_LOG2 = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 us = PT_REGS_PARM1(ctx);
    int slot = 0;
    for (int i = 1; i < 64; i++)           // floor(log2(us)): usleep(1) in bucket 0
        if (us >> i)
            slot = i;
    dist.increment(slot);
    return 0;
}
"""
Q1_BPF_LOG2 = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    dist.increment(bpf_log2(PT_REGS_PARM1(ctx)));   // BCC has bpf_log2 and bpf_log2l
    return 0;
}
"""
Q1_RETURN_VALUE = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u64 us = PT_REGS_RC(ctx);             // the return value? on entry it is not there yet
    dist.increment(bpf_log2l(us));
    return 0;
}
"""
Q1_ONCE_PER_BUCKET = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    int slot = bpf_log2l(PT_REGS_PARM1(ctx));
    u64 one = 1;
    dist.update(&slot, &one);
    return 0;
}
"""
Q1_INVERTED = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    if (lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    dist.increment(bpf_log2l(PT_REGS_PARM1(ctx)));
    return 0;
}
"""
Q1_FILTER_ON_TID_AND_PID = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    u32 pid = bpf_get_current_pid_tgid();      // the lower half: the thread id
    if (!lk_wanted(pid))
        return 0;
    dist.increment(bpf_log2l(PT_REGS_PARM1(ctx)));
    return 0;
}
"""
Q1_FILTER_ON_MASKED_ID = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((pid_tgid & 0xffffffff) != LK_FILTER_PID)   // "the pid is the low half"
        return 0;
    dist.atomic_increment(bpf_log2l(PT_REGS_PARM1(ctx)));
    return 0;
}
"""
Q1_WRONG = [
    ("no pid filter", Q1_NO_FILTER, r"another process's calls .* were counted"),
    ("the raw microseconds as keys", Q1_RAW_VALUES, r"keys are the microseconds themselves.*bpf_log2l"),
    ("own floor(log2)", Q1_OWN_LOG2, r"one bucket low.*floor\(log2\(us\)\) \+ 1"),
    ("bpf_log2, not bpf_log2l", Q1_BPF_LOG2, r"one bucket low.*bpf_log2\(\) is floor\(log2\) without"),
    ("the return register on entry", Q1_RETURN_VALUE, r"PT_REGS_PARM1"),
    ("one per bucket", Q1_ONCE_PER_BUCKET, r"each bucket says 1.*must add"),
    ("filter inverted", Q1_INVERTED, r"filter is\s+inverted"),
    ("wrong map name", Q1_NO_FILTER.replace("dist", "hist"), r"no map called 'dist'"),
    # the thread id is the process id only in the main thread: the process's second thread's calls are lost
    ("filter on the thread id", Q1_FILTER_ON_TID_AND_PID,
     r"only the calls of the process's main thread were counted: its second thread's usleep\(300\) x7 and "
     r"usleep\(2000\) x2 \(buckets 9, 11\) are missing.*thread id.*lk_wanted\(bpf_get_current_pid_tgid\(\) >> 32\)"),
    ("filter on the masked id", Q1_FILTER_ON_MASKED_ID, r"only the calls of the process's main thread.*pid_tgid & 0xffffffff"),
]

# the task's words: BPF_HISTOGRAM(dist), an array of 64 u64 counters. These count right, and passed before the
# checker held the map's kind
Q1_PERCPU_ARRAY = HEAD + """
BPF_PERCPU_ARRAY(dist, u64, 64);        // per-CPU buckets: read as their sum
int lk_sleep(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (LK_FILTER_PID && (id >> 32) != LK_FILTER_PID)
        return 0;
    unsigned long us = PT_REGS_PARM1(ctx);
    dist.increment(bpf_log2l(us));
    return 0;
}
"""
Q1_HASH_LOG2 = HEAD + """
BPF_HASH(dist, u32, u64);
int count_sleep(struct pt_regs *ctx, unsigned int usec)   // BCC maps the arguments for us
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    u32 bucket = bpf_log2l(usec);
    u64 zero = 0, *n = dist.lookup_or_try_init(&bucket, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""
Q1_HISTOGRAM_U64_KEY = HEAD + """
BPF_HISTOGRAM(dist, u64, 64);            // BCC makes this a hash: its key is not an int
int on_usleep(struct pt_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!lk_wanted(pid_tgid >> 32))
        return 0;
    u64 slot = bpf_log2l(PT_REGS_PARM1(ctx));
    dist.atomic_increment(slot);
    return 0;
}
"""
Q1_U32_COUNTERS = HEAD + """
BPF_ARRAY(dist, u32, 64);                // 32-bit counters
int on_usleep(struct pt_regs *ctx)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    dist.atomic_increment(bpf_log2l(PT_REGS_PARM1(ctx)));
    return 0;
}
"""
Q1_WRONG += [
    ("a BPF_HASH for the histogram", Q1_HASH_LOG2,
     r"^not yet: dist is a hash \(BPF_HASH\), and the task asks for BPF_HISTOGRAM\(dist\), an array of 64 u64 "
     r"counters whose buckets exist from the start \(a hash makes each bucket on its first count; .*\): declare "
     r"BPF_HISTOGRAM\(dist\), and give dist.increment\(\) the bucket$"),
    ("a per-CPU array", Q1_PERCPU_ARRAY, r"^not yet: dist is a per-CPU array \(BPF_PERCPU_ARRAY\), and the task asks "
                                         r"for BPF_HISTOGRAM\(dist\).*whoever reads it must add them up"),
    ("BPF_HISTOGRAM with a u64 key", Q1_HISTOGRAM_U64_KEY,
     r"dist is a hash \(BPF_HASH\).*BCC makes a BPF_HISTOGRAM an array only when its key is an int: "
     r"BPF_HISTOGRAM\(dist, u64\) or BPF_HISTOGRAM\(dist, u32\) is a hash too"),
    ("u32 counters", Q1_U32_COUNTERS, r"^not yet: dist's values are 4 bytes, and those of the task's map are 8 \(it "
                                      r"asks for BPF_HISTOGRAM\(dist\)"),
]

Q1_ARRAY_FETCH_ADD = HEAD + """
BPF_ARRAY(dist, u64, 64);               // what BPF_HISTOGRAM(dist) makes, spelled out
int lk_sleep(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if (LK_FILTER_PID && (id >> 32) != LK_FILTER_PID)
        return 0;
    int bucket = bpf_log2l(PT_REGS_PARM1(ctx));
    u64 *n = dist.lookup(&bucket);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""
Q1_TABLE_ARGUMENT = HEAD + """
BPF_TABLE("histogram", int, u64, dist, 64);
int count_sleep(struct pt_regs *ctx, unsigned int usec)   // BCC maps the arguments for us
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    dist.increment(bpf_log2l(usec));
    return 0;
}
"""
Q1_TGID_AND_TID = HEAD + """
BPF_HISTOGRAM(dist);
int on_usleep(struct pt_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32, tid = (u32)pid_tgid;   // every thread of a process has its tgid
    if (!lk_wanted(tgid))
        return 0;
    u64 slot = bpf_log2l(PT_REGS_PARM1(ctx));
    dist.atomic_increment(slot);
    return 0;
}
"""
Q1_RIGHT = [
    ("BPF_ARRAY of u64 + -D filter", Q1_ARRAY_FETCH_ADD),
    ("BPF_TABLE histogram + BCC argument", Q1_TABLE_ARGUMENT),
    ("the tgid half, a u64 slot", Q1_TGID_AND_TID),
]
_KIND = "dist is a BPF_HISTOGRAM (an array of u64 counters)"
Q1_PARTS = {
    "no pid filter": ({_KIND: True, "the argument, in log2 buckets": True, "exact counts per bucket": True,
                       "every thread of this process": True, "only this process": False}, 4 / 5),
    "one per bucket": ({_KIND: True, "the argument, in log2 buckets": True, "exact counts per bucket": False,
                        "every thread of this process": True, "only this process": True}, 4 / 5),
    # judged on the main thread's calls, which it counts right: only the threads part fails
    "filter on the thread id": ({_KIND: True, "the argument, in log2 buckets": True, "exact counts per bucket": True,
                                 "every thread of this process": False, "only this process": True}, 4 / 5),
    # right in every other way: only the kind the task names fails
    **{case: ({_KIND: False, "the argument, in log2 buckets": True, "exact counts per bucket": True,
               "every thread of this process": True, "only this process": True}, 4 / 5)
       for case in ("a BPF_HASH for the histogram", "a per-CPU array", "BPF_HISTOGRAM with a u64 key", "u32 counters")},
}

# ============================================================ q2: gc__start per generation
Q2_KEYED_BY_RETURN = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    u32 key = bpf_usdt_readarg(1, ctx, &gen);   // 0 on success: the key is always 0
    collections.increment(key);
    return 0;
}
"""
Q2_KPROBE_HABIT = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = PT_REGS_PARM1(ctx);          // a C function's first argument, not the probe's
    collections.increment(gen);
    return 0;
}
"""
Q2_LOOKUP_ONLY = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    bpf_usdt_readarg(1, ctx, &gen);
    u64 *n = collections.lookup(&gen);
    if (n)
        (*n)++;                            // never creates an entry
    return 0;
}
"""
Q2_ARG_FROM_ZERO = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    bpf_usdt_readarg(0, ctx, &gen);        // "the first argument": counted from 0?
    collections.increment(gen);
    return 0;
}
"""
Q2_SECOND_ARG = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    bpf_usdt_readarg(2, ctx, &gen);
    collections.increment(gen);
    return 0;
}
"""
Q2_SET_TO_ONE = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    bpf_usdt_readarg(1, ctx, &gen);
    u64 one = 1;
    collections.update(&gen, &one);
    return 0;
}
"""
Q2_TWO_FUNCTIONS = HEAD + """
BPF_HASH(collections, u32, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 gen = 0;
    bpf_usdt_readarg(1, ctx, &gen);
    collections.increment(gen);
    return 0;
}
int on_gc_done(struct pt_regs *ctx) { return 0; }
"""
Q2_U64_DESTINATION = HEAD + """
BPF_HASH(collections, u64, u64);
int on_gc(struct pt_regs *ctx)
{
    u64 generation = 0;                    // the argument is an int: readarg refuses 8 bytes
    bpf_usdt_readarg(1, ctx, &generation);
    collections.increment(generation);
    return 0;
}
"""
Q2_U64_CHECKED = HEAD + """
BPF_HASH(collections, u64, u64);
int on_gc(struct pt_regs *ctx)
{
    u64 generation;
    if (bpf_usdt_readarg(1, ctx, &generation) != 0)   // careful: skip a failed read
        return 0;
    collections.increment(generation);
    return 0;
}
"""
Q2_LONG_CHECKED = HEAD + """
BPF_HASH(collections, long, u64);
int on_gc(struct pt_regs *ctx)
{
    long gen = -1;
    bpf_usdt_readarg(1, ctx, &gen);
    if (gen < 0)
        return 0;
    collections.increment(gen);
    return 0;
}
"""
Q2_WRONG = [
    ("the readarg return value as key", Q2_KEYED_BY_RETURN, r"every collection went under the key 0: the key must be "
     r"the generation that bpf_usdt_readarg\(1, ctx, &generation\) writes — not what it returns \(0 on success\); no generations"),
    ("PT_REGS_PARM1 on a USDT probe", Q2_KPROBE_HABIT, r"not the generations 0, 1 and 2.*PT_REGS_PARM1"),
    # the key is not to blame: readarg wrote nothing (sizeof generation is not the argument's 4 bytes)
    ("a u64 destination for an int argument", Q2_U64_DESTINATION,
     r"under the key 0, what generation held before the call: bpf_usdt_readarg\(1, ctx, &generation\) wrote "
     r"nothing: generation is a u64 \(8 bytes\) and gc__start's argument is a 4-byte int32_t in the probe's note, "
     r"and BCC's bpf_usdt_readarg\(\) returns -1 and leaves the variable as it was unless sizeof\(generation\) is "
     r"the argument's size"),
    ("a u64 destination, the failed read skipped", Q2_U64_CHECKED,
     r"stayed empty though the process collected 10 times: bpf_usdt_readarg\(1, ctx, &generation\) wrote nothing: "
     r"generation is a u64 \(8 bytes\).*returns -1"),
    ("a long destination, checked", Q2_LONG_CHECKED, r"stayed empty.*wrote nothing: gen is a long \(8 bytes\)"),
    ("lookup without insert", Q2_LOOKUP_ONLY, r"stayed empty.*lookup\(\) alone never creates"),
    ("arguments counted from 0", Q2_ARG_FROM_ZERO, r"bpf_usdt_readarg\(0, \.\.\.\).*count from 1"),
    ("a second argument that is not there", Q2_SECOND_ARG, r"bpf_usdt_readarg\(2, \.\.\.\).*one argument"),
    ("set to one", Q2_SET_TO_ONE, r"each generation says 1"),
    ("two functions", Q2_TWO_FUNCTIONS, r"2 functions \(on_gc, on_gc_done\)"),
]

# the task's words: a BPF_HASH called collections. These count right, and passed before the checker held the
# map's kind
Q2_ARRAY_INT = HEAD + """
BPF_ARRAY(collections, u64, 3);        // generations 0, 1, 2
int lk_gc(struct pt_regs *ctx)
{
    int generation = 0;
    bpf_usdt_readarg(1, ctx, &generation);
    collections.atomic_increment(generation);
    return 0;
}
"""
Q2_PERCPU_INIT = HEAD + """
BPF_PERCPU_HASH(collections, int, u64);
int count_gc(struct pt_regs *ctx)
{
    int g = -1;
    if (bpf_usdt_readarg(1, ctx, &g) != 0)
        return 0;
    u64 zero = 0;
    u64 *n = collections.lookup_or_try_init(&g, &zero);
    if (n)
        *n += 1;
    return 0;
}
"""
Q2_WRONG += [
    ("a BPF_ARRAY", Q2_ARRAY_INT,
     r"^not yet: collections is an array \(BPF_ARRAY\), and the task asks for a BPF_HASH called collections \(an "
     r"array has every key from 0 to its size from the start.*\): declare BPF_HASH\(collections, u32, u64\)$"),
    ("a BPF_PERCPU_HASH", Q2_PERCPU_INIT, r"^not yet: collections is a per-CPU hash \(BPF_PERCPU_HASH\), and the task "
                                          r"asks for a BPF_HASH called collections"),
]

Q2_TABLE_INT = HEAD + """
BPF_TABLE("hash", int, u64, collections, 8);   // BPF_HASH spelled out
int lk_gc(struct pt_regs *ctx)
{
    int generation = 0;
    bpf_usdt_readarg(1, ctx, &generation);
    collections.atomic_increment(generation);
    return 0;
}
"""
Q2_U32_WIDENED = HEAD + """
BPF_HASH(collections, u64, u64);
int on_gc(struct pt_regs *ctx)
{
    u32 arg = 0;                           // the argument's own size, then widened for the key
    if (bpf_usdt_readarg(1, ctx, &arg) < 0)
        return 0;
    u64 generation = arg;
    collections.atomic_increment(generation);
    return 0;
}
"""
Q2_RIGHT = [
    ("BPF_TABLE hash, int argument, atomic_increment", Q2_TABLE_INT),
    ("a u32 read, widened to a u64 key", Q2_U32_WIDENED),
]
Q2_PARTS = {
    "set to one": ({"collections is a BPF_HASH": True, "keyed by the generation": True,
                    "exact count per generation": False}, 2 / 3),
    **{case: ({"collections is a BPF_HASH": False, "keyed by the generation": True,
               "exact count per generation": True}, 2 / 3) for case in ("a BPF_ARRAY", "a BPF_PERCPU_HASH")},
}


def run(q, answer):
    res = q.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.fixture(scope="module")
def ex():
    return lesson05.build()


def judged_wrong(q, case, answer, expected, parts):
    res = run(q, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    if case in parts:
        want, score = parts[case]
        assert {p.name: p.passed for p in res.parts} == want
        assert res.score == pytest.approx(score, abs=1e-3)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q1, case, answer, expected, Q1_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q1_RIGHT])
def test_q1_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q1, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q2, case, answer, expected, Q2_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q2_RIGHT])
def test_q2_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q2, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


def test_the_references_are_correct_as_the_checkers_run_them(ex):
    for q in (ex.q1, ex.q2):
        res = q.check_solution()
        assert res.correct, res.message


def test_bpf_cell_programs_are_correct(ex):
    """The student's %%bpf cells: the checkers load their own copies (q2's with its USDT context)."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        sh.run_cell_magic("bpf", "my_sleeps", Q1_TABLE_ARGUMENT.replace("count_sleep", "lk_mine"))
        sh.run_cell_magic("bpf", "my_gcs", Q2_TABLE_INT)
        assert run(ex.q1, sh.user_ns["my_sleeps"]).status == "correct"
        assert run(ex.q2, sh.user_ns["my_gcs"]).status == "correct"
    finally:
        lab.close()


def test_the_q2_reference_kept_as_text_is_not_an_answer():
    from labkit.exercises import lesson

    q2 = lesson("05").q2
    res = q2.check(q2.solution_answer())
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message


# ------------------------------------------------------------ the checker's own processes failing
from fixtures.timing import within  # noqa: E402


def helpers_gone(message: str) -> None:
    for pid in map(int, re.findall(r"helper process (\d+)", message)):
        assert not os.path.exists(f"/proc/{pid}"), f"helper {pid} was left behind"


# after "go": the helper says something else and waits on its stdin, or says nothing at all. The old checker
# read the helper's stderr to its end in the first case (the helper, waiting on stdin, never closed it) and
# read its stdout forever in the second
_SAYS_OTHER = """
import sys
calls, on_a_thread = %r, %r
print("ready", flush=True)
sys.stdin.readline()
sys.stderr.write("usleep: this helper was told to fail\\n"); sys.stderr.flush()
print("usleep failed", flush=True)
sys.stdin.read()
"""
_SILENT = """
import sys, time
calls, on_a_thread = %r, %r
print("ready", flush=True)
sys.stdin.readline()
time.sleep(600)
"""


@pytest.mark.parametrize("code,said", [
    # it ends when its stdin closes: within the checker's grace on a quiet machine, after it (killed) on a busy one
    (_SAYS_OTHER, r"printed 'usleep failed' where the checker waited for 'done', and (it exited with status 0|"
                  r"the checker killed it).*"
                  r"Its last words on stderr:\nusleep: this helper was told to fail"),
    (_SILENT, r"printed no line for 3 s, and the checker killed it"),
], ids=["says something else", "says nothing"])
def test_q1_a_helper_that_fails_gives_a_verdict_promptly_that_says_so(ex, monkeypatch, code, said):
    monkeypatch.setattr(lesson05, "_SLEEPER", code)
    monkeypatch.setattr(helpers, "HELPER_TIMEOUT_S", 3.0)
    res, took = within(60, lambda: run(ex.q1, Q1_TGID_AND_TID))
    assert took < 30, f"{took:.0f} s"
    assert res.status == "incorrect"
    assert re.search(r"^HelperFailed: the checker's helper process \d+ \(another process that calls usleep\(\)\) "
                     + said, res.message, re.S), res.message
    assert "run the check again" in res.message
    helpers_gone(res.message)


def test_q2_a_helper_that_never_gets_ready_gives_a_verdict_promptly(ex, monkeypatch):
    monkeypatch.setattr(lesson05, "_COLLECTOR", "import sys; print('no gc here', flush=True); sys.stdin.read()  # %r")
    res, took = within(60, lambda: run(ex.q2, Q2_TABLE_INT))
    assert took < 30, f"{took:.0f} s"
    assert res.status == "incorrect" and re.search(
        r"helper process \d+ \(the Python process whose collections are counted\) printed 'no gc here' where the "
        r"checker waited for 'ready'", res.message), res.message
    helpers_gone(res.message)
