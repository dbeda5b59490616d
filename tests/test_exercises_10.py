"""Lesson 10's exercise checkers on the real kernel, tried with the half-fixes
students write (each judged incorrect, with a message that names the mistake)
and with right answers written in other ways. q1 samples lk_busy (two threads,
one second) at 99 Hz beside another busy process; q2 watches lk_waiter nap
and wait on sched:sched_switch beside another process that sleeps. The
diagnoses themselves (every wrong class, from recorded observations) are
unit-tested without root in tests/unit/test_lesson10_diagnose.py; here each
catalogue answer runs on the kernel once, and its observation is what those
unit tests hold (LABKIT_RECORD_OBSERVATIONS=DIR writes them there)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import labkit
from fixtures.timing import within
from labkit.exercises import helpers
from labkit.exercises.lessons import lesson10

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

RECORD = os.environ.get("LABKIT_RECORD_OBSERVATIONS")

# ============================================================ q1: samples per user stack
Q1_HEAD = '#include <uapi/linux/bpf_perf_event.h>\n#include "labkit.h"\n\nBPF_STACK_TRACE(stacks, 1024);\n'


def q1(body: str, maps: str = "BPF_HASH(counts, int, u64, 1024);\n", head: str = Q1_HEAD) -> str:
    return head + maps + "\nint lk_sample(struct bpf_perf_event_data *ctx)\n{\n" + body + "    return 0;\n}\n"


FILTER = "    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))\n        return 0;\n"
USER = "    int id = stacks.get_stackid(ctx, BPF_F_USER_STACK);\n"
COUNT = "    counts.atomic_increment(id);\n"

Q1_WRONG = [
    ("no pid filter", q1(USER + COUNT),
     r"^not yet: \d+% of the samples \(\d+ of \d+\) are under stacks that are not lk_busy's \(other processes, and "
     r"the idle task\).*-DLK_FILTER_PID=\d+; return early unless lk_wanted\(bpf_get_current_pid_tgid\(\) >> 32\)"),
    ("kernel stacks only", q1(FILTER + "    int id = stacks.get_stackid(ctx, 0);\n" + COUNT),
     r"samples have no user stack \(stack id -14: -EFAULT.*you asked for the kernel stack \(flags 0\).*BPF_F_USER_STACK"),
    ("the thread id, not the process id", q1("    if (!lk_wanted((u32)bpf_get_current_pid_tgid()))\n        return 0;\n"
                                             + USER + COUNT),
     r"only lk_busy's main thread was counted \(\d+ samples under main\), none of its worker thread \(tid \d+.*"
     r"the filter tests the thread id"),
    ("the leaf's address, not the stack", q1(FILTER + "    u64 ip = PT_REGS_IP(&ctx->regs);\n    counts.atomic_increment(ip);\n",
                                             maps="BPF_HASH(counts, u64, u64, 1024);\n"),
     r"the keys are code addresses, not stack ids: \d+% of the samples are under an instruction pointer in "
     r"(\w+(, )?)*lk_mix.*That is the leaf alone.*lk_mix"),
    ("one count per stack", q1(FILTER + USER + "    u64 one = 1;\n    counts.update(&id, &one);\n"),
     r"every stack says 1, whatever its samples: \d+ stacks.*counts\.atomic_increment\(stack_id\)"),
    ("a lookup that never creates", q1(FILTER + USER + "    u64 *n = counts.lookup(&id);\n    if (n)\n"
                                       "        __sync_fetch_and_add(n, 1);\n"),
     r"^the map 'counts' stayed empty while lk_busy \(pid \d+\) ran"),
    ("a struct key", q1(FILTER + "    struct k key = {stacks.get_stackid(ctx, BPF_F_USER_STACK)};\n"
                        "    u64 zero = 0, *n = counts.lookup_or_try_init(&key, &zero);\n"
                        "    if (n)\n        __sync_fetch_and_add(n, 1);\n", maps="struct k { int id; };\nBPF_HASH(counts, struct k, u64, 1024);\n"),
     r"the key of 'counts' is a struct: the task asks for the stack id itself, an int"),
    ("no stack map", q1(FILTER + "    counts.atomic_increment(0);\n").replace("BPF_STACK_TRACE(stacks, 1024);\n", ""),
     r"no map called 'stacks'.*BPF_STACK_TRACE\(stacks, 1024\)"),
]
Q1_PARTS = {
    "kernel stacks only": ({"counts is keyed by user stack ids": False, "only lk_busy's samples": False,
                            "both of its threads": False, "one count per sample": True,
                            "the stacks show the hot function (lk_compress)": False}, 1 / 5),
    "the thread id, not the process id": ({"counts is keyed by user stack ids": True, "only lk_busy's samples": True,
                                           "both of its threads": False, "one count per sample": True,
                                           "the stacks show the hot function (lk_compress)": False}, 3 / 5),
}
Q1_RIGHT = [
    ("the tgid compared by hand, lookup_or_try_init and an atomic add",
     q1("    u64 id = bpf_get_current_pid_tgid();\n    if (id >> 32 != LK_FILTER_PID)\n        return 0;\n"
        "    int stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);\n    u64 zero = 0;\n"
        "    u64 *n = counts.lookup_or_try_init(&stack_id, &zero);\n    if (n)\n        __sync_fetch_and_add(n, 1);\n")),
    ("a u32 key", q1(FILTER + "    u32 id = stacks.get_stackid(ctx, BPF_F_USER_STACK);\n" + COUNT,
                     maps="BPF_HASH(counts, u32, u64, 1024);\n")),
]

# ============================================================ q2: off-CPU time per user stack
Q2_HEAD = '#include "labkit.h"\n\nstruct left { u64 ns; int stack_id; };\nBPF_STACK_TRACE(stacks, 1024);\n' \
          'BPF_HASH(leaving, u32, struct left, 10240);\nBPF_HASH(offcpu, int, u64, 1024);\n\n'


def q2(leave: str = "    if (lk_wanted(bpf_get_current_pid_tgid() >> 32)) {\n",
       amount: str = "(now - l->ns) / 1000", stack: str = "l->stack_id", head: str = Q2_HEAD) -> str:
    return head + ("TRACEPOINT_PROBE(sched, sched_switch)\n{\n    u64 now = bpf_ktime_get_ns();\n" + leave +
                   "        u32 prev = args->prev_pid;\n"
                   "        struct left l = {now, stacks.get_stackid(args, BPF_F_USER_STACK)};\n"
                   "        leaving.update(&prev, &l);\n    }\n"
                   "    u32 next = args->next_pid;\n    struct left *l = leaving.lookup(&next);\n"
                   "    if (!l)\n        return 0;\n"
                   f"    int stack_id = {stack};\n    u64 amount = {amount};\n    leaving.delete(&next);\n"
                   "    u64 zero = 0, *total = offcpu.lookup_or_try_init(&stack_id, &zero);\n"
                   "    if (total)\n        __sync_fetch_and_add(total, amount);\n    return 0;\n}\n")


Q2_ON_CPU = Q2_HEAD.replace("struct left { u64 ns; int stack_id; };\n", "").replace(
    "BPF_HASH(leaving, u32, struct left, 10240);", "BPF_HASH(came_in, u32, u64, 10240);") + """TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid, next = args->next_pid;
    if (lk_wanted(bpf_get_current_pid_tgid() >> 32)) {      /* one of ours leaves: it ran since it came in */
        u64 *t = came_in.lookup(&prev);
        if (t) {
            int stack_id = stacks.get_stackid(args, BPF_F_USER_STACK);
            u64 zero = 0, *total = offcpu.lookup_or_try_init(&stack_id, &zero);
            if (total)
                __sync_fetch_and_add(total, (now - *t) / 1000);
            came_in.delete(&prev);
        }
    }
    came_in.update(&next, &now);
    return 0;
}
"""
Q2_WRONG = [
    ("no pid filter", q2(leave="    {\n"),
     r"^not yet: \d+ stacks that are not lk_waiter's hold \d+% of the total: other processes' waits are summed "
     r"too.*-DLK_FILTER_PID=\d+"),
    ("on-CPU instead of off-CPU", Q2_ON_CPU,
     r"lk_wait_input holds \d+, far below the 0\.4 s it waited \(and lk_nap \d+, where the thread first leaves the "
     r"CPU after lk_think's work\): that is the time ON the CPU"),
    ("nanoseconds", q2(amount="now - l->ns"), r"lk_wait_input holds \d+, about \d+ times the 400000 microseconds it "
                                               r"waited: that is nanoseconds"),
    ("milliseconds", q2(amount="(now - l->ns) / 1000000"),
     r"lk_wait_input holds \d+, where it waited 400000 microseconds: that is milliseconds"),
    ("switches, not time", q2(amount="1"), r"lk_wait_input holds [12] and lk_nap 1\d: those are switches"),
    ("the stack taken when it comes back", q2(stack="stacks.get_stackid(args, BPF_F_USER_STACK)"),
     r"the time went under stacks that are not lk_waiter's .*sched_switch runs in the task that is leaving the CPU"),
]
Q2_PARTS = {
    "nanoseconds": ({"only lk_waiter's threads": True, "the stack where each thread left the CPU": True,
                     "time off the CPU, in microseconds": False,
                     "lk_wait_input waited 0.4 s and lk_nap 0.1 s": False}, 2 / 4),
}
Q2_TWO_MAPS = '#include "labkit.h"\n\nBPF_STACK_TRACE(stacks, 1024);\nBPF_HASH(left_ns, u32, u64, 10240);\n' \
    'BPF_HASH(left_from, u32, int, 10240);\nBPF_HASH(offcpu, int, u64, 1024);\n\n' + """TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
    if (lk_wanted(id >> 32)) {
        u32 tid = (u32)id;                     /* the running task is prev */
        int stack_id = stacks.get_stackid(args, BPF_F_USER_STACK);
        left_ns.update(&tid, &now);
        left_from.update(&tid, &stack_id);
    }
    u32 next = args->next_pid;
    u64 *then = left_ns.lookup(&next);
    int *from = left_from.lookup(&next);
    if (!then || !from)
        return 0;
    int stack_id = *from;
    u64 us = (now - *then) / 1000, zero = 0;
    left_ns.delete(&next);
    left_from.delete(&next);
    u64 *total = offcpu.lookup_or_try_init(&stack_id, &zero);
    if (total)
        __sync_fetch_and_add(total, us);
    return 0;
}
"""
Q2_RIGHT = [("two maps, the thread id from bpf_get_current_pid_tgid()", Q2_TWO_MAPS)]


def run(q, answer):
    res = q.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.fixture(scope="module")
def ex():
    return lesson10.build()


def _record(q: str, case: str, monkeypatch) -> None:
    """With LABKIT_RECORD_OBSERVATIONS=DIR, write this answer's observation to DIR/<q>-<case>.json."""
    if not RECORD:
        return
    observe = {"q1": "observe_hot", "q2": "observe_waits"}[q]
    real = getattr(lesson10, observe)

    def keep(answer):
        o = real(answer)
        name = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
        Path(RECORD, f"{q}-{name}.json").write_text(observation_json(o.to_dict()))
        return o
    monkeypatch.setattr(lesson10, observe, keep)


def observation_json(d: dict) -> str:
    """An observation as JSON, one stack a line (the recordings are read by people too)."""
    head = {k: v for k, v in d.items() if k != "stacks"}
    stacks = ",\n".join(" " + json.dumps(x) for x in d["stacks"])
    return json.dumps(head)[:-1] + ', "stacks": [\n' + stacks + "\n]}\n"


def judged_wrong(q, qid, case, answer, expected, parts, monkeypatch):
    _record(qid, case, monkeypatch)
    res = run(q, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    if case in parts:
        want, score = parts[case]
        assert {p.name: p.passed for p in res.parts} == want, res.parts
        assert res.score == pytest.approx(score, abs=1e-3)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected, monkeypatch):
    judged_wrong(ex.q1, "q1", case, answer, expected, Q1_PARTS, monkeypatch)


@pytest.mark.parametrize("case,answer", [pytest.param(*r, id=r[0]) for r in Q1_RIGHT])
def test_q1_right_answers_written_other_ways_are_correct(ex, case, answer, monkeypatch):
    _record("q1", case, monkeypatch)
    res = run(ex.q1, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)
    assert re.search(r"^yes: your stacks say lk_compress is hot — on the stack in \d+% of lk_busy's \d+ samples",
                     res.message), res.message


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected, monkeypatch):
    judged_wrong(ex.q2, "q2", case, answer, expected, Q2_PARTS, monkeypatch)


@pytest.mark.parametrize("case,answer", [pytest.param(*r, id=r[0]) for r in Q2_RIGHT])
def test_q2_right_answers_written_other_ways_are_correct(ex, case, answer, monkeypatch):
    _record("q2", case, monkeypatch)
    res = run(ex.q2, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


def test_the_references_are_correct_as_the_checkers_run_them(ex, monkeypatch):
    _record("q1", "reference", monkeypatch)
    _record("q2", "reference", monkeypatch)
    for q in (ex.q1, ex.q2):
        res = q.check_solution()
        assert res.correct, res.message
    res = ex.q1.check("solution_10_hot_stacks")
    assert res.status == "incorrect" and "reference solution" in res.message


def test_no_workload_is_left_running(ex):
    """The checker's workloads (exec'd C programs) end with the check."""
    assert _workloads() == set()
    run(ex.q2, Q2_WRONG[0][1])
    assert _workloads() == set()


def _workloads() -> set[int]:
    """This process's children that run a workload (other tests run their own at the same time)."""
    out = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                status = (p / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if fields.get("Name", "").strip() in ("lk_busy", "lk_waiter") and int(fields["PPid"]) == os.getpid():
                out.add(int(p.name))
    return out


# a process beside the workload that, told to go, never says it is done
_NEVER_DONE = "import sys, time; print('ready', flush=True); sys.stdin.readline(); time.sleep(600)"


def test_q2_a_process_beside_it_that_never_ends_gives_a_verdict_promptly_that_says_so(ex, monkeypatch):
    monkeypatch.setattr(lesson10, "_NAPPER", _NEVER_DONE)
    monkeypatch.setattr(helpers, "HELPER_TIMEOUT_S", 3.0)
    res, took = within(60, lambda: run(ex.q2, Q2_TWO_MAPS))
    assert took < 30, f"{took:.0f} s"
    m = re.search(r"^HelperFailed: the checker's helper process (\d+) \(another process that sleeps beside it\) "
                  r"printed no line for 3 s", res.message)
    assert res.status == "incorrect" and m, res.message
    assert not os.path.exists(f"/proc/{m.group(1)}"), "the process was left behind"
    assert _workloads() == set()
