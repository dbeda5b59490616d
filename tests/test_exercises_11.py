"""Lesson 11's exercise checkers, tried with the mistakes students make (each judged incorrect, with a
message that names it) and with right answers written in other ways: real kernel; q1's process sleeps,
wakes and works on a CPU it shares with a busy process (both pinned there), q2's two threads sleep at
once while another process sleeps too."""

from __future__ import annotations

import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises.lessons import lesson11

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]


def runq(*, wake: str = "args->pid", filt: str = "if (!lk_wanted(tid)) return 0;", key: str = "args->next_pid",
         bucket: str = "bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000)", delete: str = "start.delete(&tid);",
         wakeup_counts: str = "") -> str:
    """A run-queue latency program, the reference's shape, with one piece swapped for a mistake."""
    return f"""#include "labkit.h"
BPF_HASH(start, u32, u64, 10240);
BPF_HISTOGRAM(dist, int, 64);

static __always_inline int woken(u32 tid)
{{
    {filt}
    u64 now = bpf_ktime_get_ns();
    {wakeup_counts}
    start.update(&tid, &now);
    return 0;
}}
TRACEPOINT_PROBE(sched, sched_wakeup) {{ return woken({wake}); }}
TRACEPOINT_PROBE(sched, sched_wakeup_new) {{ return woken({wake}); }}
TRACEPOINT_PROBE(sched, sched_switch)
{{
    u32 tid = {key};
    u64 *t0 = start.lookup(&tid);
    if (!t0)
        return 0;
    dist.atomic_increment({bucket});
    {delete}
    return 0;
}}
"""


# the time between wakeups: counted at the wakeup, from the one before (the switch counts nothing)
WAKE_TO_WAKE = runq(wakeup_counts="u64 *last = start.lookup(&tid); if (last) dist.atomic_increment("
                                  "bpf_log2l((now - *last) / 1000));",
                    key="0", delete="")

Q1_WRONG = [
    ("wakeup to wakeup", WAKE_TO_WAKE, r"from one wakeup to the next"),
    ("prev_pid at the switch", runq(key="args->prev_pid"), r"switched \*out\*.*prev_pid.*next_pid"),
    ("start never deleted", runq(delete=""), r"switched back in after being preempted.*start\.delete"),
    ("no pid filter", runq(filt=""), r"counted every thread of the machine.*lk_wanted\(args->pid\)"),
    # the waits are milliseconds: in BPF_HISTOGRAM's array of 64, the microseconds as the key are past its end
    ("linear buckets", runq(bucket="(bpf_ktime_get_ns() - *t0) / 1000"),
     r"linear histogram.*log2|stayed empty.*past BPF_HISTOGRAM's 64"),
    ("linear buckets in a hash", runq(bucket="(bpf_ktime_get_ns() - *t0) / 1000").replace(
        "BPF_HISTOGRAM(dist, int, 64);", "BPF_HISTOGRAM(dist, u64);"), r"linear histogram.*log2"),
    ("nanoseconds", runq(bucket="bpf_log2l(bpf_ktime_get_ns() - *t0)"), r"ten buckets too high.*nanoseconds"),
    ("bpf_log2", runq(bucket="bpf_log2((bpf_ktime_get_ns() - *t0) / 1000)"), r"one bucket low.*bpf_log2l"),
    ("nothing counted", runq(filt="if (tid != 1) return 0;"), r"stayed empty.*woken \d+ times"),
    ("a function attached to nothing", '#include "labkit.h"\nBPF_HISTOGRAM(dist, int, 64);\n'
     "int on_switch(void *ctx) { dist.atomic_increment(0); return 0; }\n", r"attached to nothing.*TRACEPOINT_PROBE"),
]

Q1_RIGHT = [
    ("the reference's shape", runq()),
    ("the filter spelled out, a hash histogram", runq(filt="if (LK_FILTER_PID && tid != LK_FILTER_PID) return 0;")
     .replace("BPF_HISTOGRAM(dist, int, 64);", "BPF_HISTOGRAM(dist, u64);")),
    ("the filter at the switch too", runq().replace("u32 tid = args->next_pid;",
                                                    "u32 tid = args->next_pid;\n    if (!lk_wanted(tid)) return 0;")),
]


def sleeps(*, key: str = "tid", filt: str = "if (!lk_wanted(id >> 32)) return 0;", syscall: str = "clock_nanosleep",
           took: str = "bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000)") -> str:
    """A clock_nanosleep() latency program, the reference's shape, with one piece swapped for a mistake."""
    return f"""#include "labkit.h"
BPF_HASH(start, u32, u64, 10240);
BPF_HISTOGRAM(dist, int, 64);

TRACEPOINT_PROBE(syscalls, sys_enter_{syscall})
{{
    u64 id = bpf_get_current_pid_tgid();
    {filt}
    u32 tid = id, tgid = id >> 32;
    u64 now = bpf_ktime_get_ns();
    start.update(&{key}, &now);
    return 0;
}}
TRACEPOINT_PROBE(syscalls, sys_exit_{syscall})
{{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id, tgid = id >> 32;
    u64 *t0 = start.lookup(&{key});
    if (!t0)
        return 0;
    dist.atomic_increment({took});
    start.delete(&{key});
    return 0;
}}
"""


Q2_WRONG = [
    ("nanoseconds", sleeps(took="bpf_log2l(bpf_ktime_get_ns() - *t0)"), r"ten buckets too high.*nanoseconds"),
    ("milliseconds", sleeps(took="bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000000)"), r"far too low.*milliseconds"),
    ("keyed by the process id", sleeps(key="tgid"), r"keyed by the process id.*thread id"),
    ("filter on the thread id", sleeps(filt="if (!lk_wanted((u32)id)) return 0;"), r"only the main thread's calls"),
    ("no filter", sleeps(filt=""), r"other processes were counted"),
    ("the wrong syscall: nanosleep", sleeps(syscall="nanosleep"), r"stayed empty.*clock_nanosleep, not nanosleep"),
    ("the wrong syscall: poll", sleeps(syscall="poll"), r"poll\(\) calls, another syscall"),
    # in BPF_HISTOGRAM's array of 64, every call's key (3000 us and more) is past the end: nothing is kept
    ("linear buckets", sleeps(took="(bpf_ktime_get_ns() - *t0) / 1000"), r"stayed empty.*past BPF_HISTOGRAM's 64"),
    ("linear buckets in a hash", sleeps(took="(bpf_ktime_get_ns() - *t0) / 1000").replace(
        "BPF_HISTOGRAM(dist, int, 64);", "BPF_HISTOGRAM(dist, u64);"), r"linear histogram"),
]

Q2_RIGHT = [
    ("the reference's shape", sleeps()),
    ("the filter spelled out, a u64 histogram key", sleeps(filt="if (LK_FILTER_PID && (id >> 32) != LK_FILTER_PID) "
                                                                "return 0;").replace("BPF_HISTOGRAM(dist, int, 64);",
                                                                                     "BPF_HISTOGRAM(dist, u64);")),
]


def _poll_on_this_kernel(answer: str) -> str:
    return answer.replace("sys_enter_poll", f"sys_enter_{lesson11._poll_syscall()}") \
        .replace("sys_exit_poll", f"sys_exit_{lesson11._poll_syscall()}")


@pytest.mark.parametrize("name,answer,message", Q1_WRONG, ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong(name, answer, message):
    res = lesson11.build().q1.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q1_RIGHT, ids=[r[0] for r in Q1_RIGHT])
def test_q1_right(name, answer):
    res = lesson11.build().q1.check(answer)
    assert res.status == "correct", res.message


@pytest.mark.parametrize("name,answer,message", Q2_WRONG, ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong(name, answer, message):
    res = lesson11.build().q2.check(_poll_on_this_kernel(answer))
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q2_RIGHT, ids=[r[0] for r in Q2_RIGHT])
def test_q2_right(name, answer):
    res = lesson11.build().q2.check(answer)
    assert res.status == "correct", res.message


@pytest.mark.requires("kprobes")
def test_q2_right_as_a_kprobe_and_kretprobe():
    """Where the kernel has kprobes (the stock kernels): the syscall's kernel function, entry and return,
    named the BCC way (kprobe__<symbol>, kretprobe__<symbol>: Lab.load attaches them)."""
    with labkit.Lab() as lab:       # the syscall's symbol on this architecture (__x64_sys_..., __arm64_sys_...)
        sym = lab.load('int lk_none(void *ctx) { return 0; }', name="exercise 11 symbol") \
            .syscall_symbol("sys_clock_nanosleep")
    answer = sleeps().replace("TRACEPOINT_PROBE(syscalls, sys_enter_clock_nanosleep)",
                              f"int kprobe__{sym}(struct pt_regs *ctx)") \
        .replace("TRACEPOINT_PROBE(syscalls, sys_exit_clock_nanosleep)", f"int kretprobe__{sym}(struct pt_regs *ctx)")
    res = lesson11.build().q2.check(answer)
    assert res.status == "correct", res.message


def test_partial_credit_names_the_part_that_failed():
    res = lesson11.build().q2.check(Q2_WRONG[0][1])      # nanoseconds: 4 of 5 parts
    assert [p.passed for p in res.parts] == [True, True, True, True, False]
    assert res.score == pytest.approx(0.8)


def test_references_pass():
    lesson = lesson11.build()
    assert lesson.q1.check_solution().status == "correct"
    assert lesson.q2.check_solution().status == "correct"


def test_bpf_cell_programs_are_correct():
    """The student's %%bpf cells (compiled in the notebook without the checker's -D flags): the checkers
    load their own copies with them."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        sh.run_cell_magic("bpf", "my_runq", Q1_RIGHT[0][1])
        lesson = lesson11.build()
        assert lesson.q1.check(sh.user_ns["my_runq"]).status == "correct"
    finally:
        lab.close()


def test_a_reference_is_not_an_answer():
    res = lesson11.build().q2.check("solution_11_sleep_latency")
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message
