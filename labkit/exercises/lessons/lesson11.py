"""Lesson 11, Latency: a run-queue latency histogram of one thread (q1: the checker's process sleeps,
wakes and works on a CPU it shares with a busy process of the checker's, both pinned there with
sched_setaffinity), and how long one process's clock_nanosleep() calls take, in microseconds (q2: two
threads of the checker's process sleep known times at once; the same process also calls poll(), and
another process sleeps too).

Each checker observes on the kernel and a pure function decides. The observation holds the answer's
histogram and, measured on the same events by the checker's own program beside it
(``latency_runq_check.c``, ``latency_syscall_check.c``), the histogram the task asks for and those the
usual mistakes make (wakeup to wakeup, the thread switched *out*, a start never deleted, no filter;
the process id as the key, the main thread only, another syscall). The diagnosis finds which of them the
answer's histogram is (:func:`distance`), and tells the units apart by where the buckets sit
(nanoseconds file every call about ten buckets higher than microseconds, milliseconds ten lower).

Why this file is long: both checkers run a control program beside the answer and name each
known mistake from the control's histograms; the histogram arithmetic they share is here, with them.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    int_key_column,
    load_answer,
    need_map,
    plural,
    snippet_text,
    value_column,
)
from labkit.exercises.helpers import Helper
from labkit.lab import Lab
from labkit.programs import hooks as kernel_hooks
from labkit.views.tables import map_dataframe

__all__ = ["CLOSE", "FAR", "NOISY", "SAME", "SAME_COUNT", "LONG", "OTHER_SLEEP", "POLLS", "SHORT", "SPIN_MS", "WAKEUPS", "build", "distance",
           "histogram", "log2_bucket", "mean_bucket", "moved", "nearest", "same"]

# ---------------------------------------------------------------------- the workloads
#: q1: the measured process sleeps 1 ms, then works SPIN_MS on the CPU it shares with a busy process, WAKEUPS
#: times: each wakeup waits in the run queue, and the work is cut by the scheduler (switched out and in again
#: without a wakeup). (Not SCHED_IDLE, whose waits would be milliseconds: on CFS kernels, 6.1's, an idle-policy
#: thread beside a busy one runs so rarely that the workload outlasts the checker's patience.)
WAKEUPS, SPIN_MS = 60, 12
#: q2: the main thread's clock_nanosleep() calls (time.sleep(ms / 1000)) and, at the same time, a second
#: thread's: (milliseconds, calls); then POLLS poll() calls of 6 ms each; another process sleeps OTHER_SLEEP
SHORT, LONG = (3, 16), (12, 6)
POLLS = (6, 4)
OTHER_SLEEP = (0.7, 20)
#: the greatest distance (see :func:`distance`) at which a histogram is one of the checker's kinds of mistake,
#: and the least at which those kinds must differ from the right one for the run to tell them apart
CLOSE, FAR = 0.2, 0.4
#: the answer's and the checker's programs read the clock at different moments of the same event (a few
#: hundred ns apart, microseconds under an emulator): a call near a bucket's edge may land one bucket apart.
#: Two histograms with the same number of counts (within SAME_COUNT of them, at least one) are the same
#: measurement when, on average, a count sits less than SAME buckets away (see :func:`moved`); every count
#: one bucket off (bpf_log2() for bpf_log2l()) is 1
SAME, SAME_COUNT = 0.5, 0.05
#: the machine's other threads are not the same between the two programs (attached and read a moment apart,
#: while the machine runs on): an answer that counts them all is near the checker's "all" within this, and
#: counts more than the measured process's own by more than half the other sleeper's wakeups
NOISY = 0.5

# select() with a timeout and nothing to watch always sleeps and is woken by its timer (time.sleep() hands the
# kernel an absolute deadline: a process that comes late to it, on an emulator, may not sleep at all)
_RUNQ_WORKER = """
import os, select, sys, time
os.sched_setaffinity(0, {%(cpu)d})
print("ready", flush=True)
sys.stdin.readline()
for _ in range(%(n)d):
    select.select([], [], [], 0.001)
    t = time.monotonic() + %(spin)f
    while time.monotonic() < t:
        pass
print("done", flush=True)
sys.stdin.read()
"""

# busy on the same CPU until its stdin has something (or ends)
_HOG = """
import os, select, sys
os.sched_setaffinity(0, {%(cpu)d})
print("ready", flush=True)
sys.stdin.readline()
print("busy", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for _ in range(20000):
        pass
"""

_SLEEPERS = """
import select, sys, threading, time
print("ready", flush=True)
sys.stdin.readline()
def long():
    for _ in range(%(long_n)d):
        time.sleep(%(long_s)f)
t = threading.Thread(target=long)
t.start()
for _ in range(%(short_n)d):
    time.sleep(%(short_s)f)
t.join()
p = select.poll()
for _ in range(%(poll_n)d):
    p.poll(%(poll_ms)d)
print("done", flush=True)
sys.stdin.read()
"""

_OTHER_SLEEPER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
for _ in range(%(n)d):
    time.sleep(%(s)f)
print("done", flush=True)
sys.stdin.read()
"""


# ---------------------------------------------------------------------- pure helpers
def log2_bucket(us: int) -> int:
    """bpf_log2l(us): 0 for 0, else floor(log2(us)) + 1 (bucket k holds 2^(k-1) .. 2^k - 1)."""
    return int(us).bit_length()


def histogram(pairs) -> dict[int, int]:
    """A histogram as the observation keeps it ([bucket, count] pairs) as a dict, empty buckets left out."""
    return {int(k): int(v) for k, v in pairs if int(v)}


def distance(a: dict[int, int], b: dict[int, int]) -> float:
    """How far histogram ``a`` is from ``b``: the counts that differ, bucket by bucket, over ``b``'s total
    (0: the same; 1: as many counts misplaced as ``b`` has)."""
    total = max(1, sum(b.values()))
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / total


def moved(a: dict[int, int], b: dict[int, int]) -> float:
    """How many buckets, on average per count of ``b``, the counts of ``a`` must move to make ``b`` (the earth
    mover's distance over the buckets, over ``b``'s total): every count one bucket off is 1."""
    total, gap, carried = max(1, sum(b.values())), 0, 0
    for k in range(min(a | b | {0: 0}), max(a | b | {0: 0}) + 1):
        carried += a.get(k, 0) - b.get(k, 0)
        gap += abs(carried)
    return gap / total


def same(a: dict[int, int], b: dict[int, int]) -> bool:
    """Whether ``a`` is the measurement ``b`` is, read by another program (see SAME)."""
    n, m = sum(a.values()), sum(b.values())
    return bool(m) and abs(n - m) <= max(1, int(m * SAME_COUNT)) and moved(a, b) <= SAME


def mean_bucket(h: dict[int, int]) -> float:
    """The mean bucket of a histogram (0.0 when empty)."""
    n = sum(h.values())
    return sum(k * v for k, v in h.items()) / n if n else 0.0


def _rebucketed(h: dict[int, int]) -> dict[int, int]:
    """A histogram whose keys are the values themselves (microseconds), filed into log2 buckets."""
    out: dict[int, int] = {}
    for k, v in h.items():
        out[log2_bucket(max(k, 0))] = out.get(log2_bucket(max(k, 0)), 0) + v
    return out


def _shown(h: dict[int, int]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(h.items())) + "}" if h else "{}"


def _ten_up(got: dict[int, int], want: dict[int, int]) -> bool:
    """``got`` is ``want`` ten log2 buckets up: the same histogram in nanoseconds (few linear keys spread
    by value fall in exactly those buckets with exactly those counts)."""
    return bool(got) and bool(want) and same(got, {k + 10: v for k, v in want.items()})


def _unit_problem(got: dict[int, int], want: dict[int, int], what: str) -> str:
    """Why ``got`` is ``want`` in other units or other buckets ("" when it is not that)."""
    n, m = sum(got.values()), sum(want.values())
    if not n or not m:
        return ""
    # the microseconds as the key: in a hash, every value its own key; in BPF_HISTOGRAM's array of 64, only
    # the values under 64 (buckets 0..6), the others dropped (an index past the end)
    under_64 = {k: v for k, v in want.items() if k <= 6}
    rebucketed = _rebucketed(got)
    n_under = sum(under_64.values())
    if not _ten_up(got, want) and max(got) >= 64 or (not same(got, want) and not _ten_up(got, want) and (
            same(rebucketed, want) or (
            under_64 and under_64 != want and n < m and abs(n - n_under) <= max(2, n_under // 3)
            and moved(rebucketed, under_64) <= 2 * SAME))):
        return (f"the keys are the microseconds themselves ({', '.join(map(str, sorted(got)[:5]))}, ...): a "
                f"linear histogram, one key per microsecond (an array of 64 keeps only what took less than 64 us). "
                f"The task's buckets are log2: dist.atomic_increment(bpf_log2l(us)), bucket k for "
                f"2^(k-1) .. 2^k - 1 us")
    if abs(n - m) > max(2, m // 4):
        return ""
    shift = mean_bucket(got) - mean_bucket(want)
    if 8.5 <= shift <= 11.5:
        return (f"every {what} landed about ten buckets too high (mean bucket {mean_bucket(got):.1f}, the "
                f"microseconds' {mean_bucket(want):.1f}): that is nanoseconds, what bpf_ktime_get_ns() counts. "
                f"Divide the difference by 1000 before bpf_log2l(): 2^10 = 1024, about a thousand")
    if -11.5 <= shift <= -2.5 and min(got) <= 2:
        return (f"every {what} landed far too low (mean bucket {mean_bucket(got):.1f}, the microseconds' "
                f"{mean_bucket(want):.1f}): divided by 1,000,000, that is milliseconds. The task's unit is the "
                f"microsecond: (bpf_ktime_get_ns() - start) / 1000")
    if same({k + 1: v for k, v in got.items()}, want):
        return (f"every {what} landed one bucket low: bpf_log2() is floor(log2(v)), bpf_log2l() is "
                f"floor(log2(v)) + 1 with bucket 0 kept for 0: the task's buckets are bpf_log2l(us)")
    return ""


def nearest(got: dict[int, int], right: dict[int, int], kinds: dict[str, dict[int, int]]) -> str | None:
    """Which of ``kinds`` (the checker's histograms of the usual mistakes) ``got`` is: the nearest one within
    CLOSE, or "all" (every thread of the machine) within NOISY when ``got`` holds more than ``right`` does and
    the other sleeper's wakeups; None when it is none of them."""
    mine = {k: distance(got, h) for k, h in kinds.items() if h and k != "all"}
    if mine and min(mine.values()) <= CLOSE:
        return min(mine, key=mine.get)
    # the same measurement read a moment apart (an emulator's microseconds move counts to a neighbour bucket)
    alike = [k for k, h in kinds.items() if h and k != "all" and same(got, h)]
    if alike:
        return min(alike, key=lambda k: moved(got, kinds[k]))
    if kinds.get("all") and sum(got.values()) > sum(right.values()) + OTHER_SLEEP[1] // 2 \
            and distance(got, kinds["all"]) <= NOISY:
        return "all"
    return None


def _read(prog, name: str) -> list[list[int]]:
    df = map_dataframe(prog, name)
    if df.empty:
        return []
    value = value_column(df)
    key = int_key_column(df, value)
    return [[int(k), int(v)] for k, v in zip(df[key], df[value]) if int(v)]


def _zero(prog, maps: list[str]) -> None:
    """Empty these maps of ``prog`` (an array's counters set to 0, a hash's entries deleted)."""
    for name in maps:
        prog[name].clear()


def _hooks_of(prog, want: str) -> list[str]:
    """The hooks the answer's functions run on (Lab.load attached the BCC-named ones); Incorrect when a
    function is attached to nothing (the task's hooks are several: each function says its own)."""
    autos = [p for att in prog.auto_attachments for p in att.probes]
    attached = {fn for _k, _t, fn in autos}
    rest = [fn for fn in prog.functions if fn not in attached]
    if rest or not autos:
        raise Incorrect(f"{', '.join(rest) or 'no function'} of your program is attached to nothing: the task "
                        f"needs several hooks, so name each function by its hook, {want}", parts=[])
    return [f"{kind} {target}" for kind, target, _fn in autos]


def _last_cpu() -> int:
    return sorted(os.sched_getaffinity(0))[-1]


# ---------------------------------------------------------------------- q1: run-queue latency
#: q1's kinds of histogram, measured by latency_runq_check.c: name -> (its map, the part of the task it
#: breaks, what went wrong)
RUNQ_KINDS = {
    "prev": ("h_prev", "from the wakeup to running (next_pid)",
             "your histogram is the time from a wakeup until the thread is switched *out*: sched_switch looked "
             "up prev_pid, the thread that stops running, so each count is the wait plus the run. The thread "
             "that starts running is next_pid: look that one up"),
    "wake": ("h_wake", "from the wakeup to running (next_pid)",
             "your histogram is the time from one wakeup to the next (about the 1 ms sleep plus the work): "
             "sched_wakeup should note the time, and sched_switch, when next_pid is that thread, count the "
             "difference"),
    "keep": ("h_keep", "once per wakeup (the start deleted)",
             "counts a wakeup again each time the thread is switched back in after being preempted, from the "
             "old wakeup: after counting, start.delete(&tid), so the next count needs a new wakeup"),
    "all": ("h_all", "only the measured process",
            "counted every thread of the machine: only the process LK_FILTER_PID matters (one thread: its "
            "thread id is its pid). sched_wakeup's args->pid is the woken thread: return early unless "
            "lk_wanted(args->pid)"),
}
RUNQ_PARTS = ("from the wakeup to running (next_pid)", "once per wakeup (the start deleted)",
              "only the measured process", "log2 buckets of microseconds")
_RUNQ_HOOKS = ("TRACEPOINT_PROBE(sched, sched_wakeup), TRACEPOINT_PROBE(sched, sched_wakeup_new) and "
               "TRACEPOINT_PROBE(sched, sched_switch)")


def _observe_runq_once(answer, cpu: int) -> dict:
    with ExitStack() as stack:
        worker = stack.enter_context(Helper(_RUNQ_WORKER % {"cpu": cpu, "n": WAKEUPS, "spin": SPIN_MS / 1000},
                                            "the process whose run-queue latency is measured"))
        hog = stack.enter_context(Helper(_HOG % {"cpu": cpu}, "a busy process on the same CPU"))
        other = stack.enter_context(Helper(_OTHER_SLEEPER % {"n": OTHER_SLEEP[1], "s": OTHER_SLEEP[0] / 1000},
                                           "another process that sleeps and wakes"))
        lab = stack.enter_context(Lab())
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": worker.pid})
        need_map(prog, "dist")
        hooks = _hooks_of(prog, _RUNQ_HOOKS)
        control = lab.load("latency_runq_check", defines={"LK_FILTER_PID": worker.pid},
                           name="exercise 11 q1 control")
        _zero(prog, ["dist"])        # both count from here: the machine's other threads over the same time
        _zero(control, ["h_right"] + [m for m, _p, _w in RUNQ_KINDS.values()])
        hog.go()
        hog.expect("busy")
        other.go()
        worker.go()
        worker.expect("done")
        other.expect("done")
        got = _read(prog, "dist")
        kinds = {"right": _read(control, "h_right")} | {k: _read(control, m) for k, (m, _p, _w) in RUNQ_KINDS.items()}
        return {"got": got, "kinds": kinds, "hooks": hooks, "pid": worker.pid, "cpu": cpu}


def _separated(kinds: dict) -> bool:
    right = histogram(kinds["right"])
    return bool(right) and all(distance(histogram(kinds[k]), right) >= FAR for k in RUNQ_KINDS)


def _observe_runq(answer) -> dict:
    """Run the answer beside the checker's own program while the measured process works on a CPU it shares
    with a busy one: the answer's 'dist' and the checker's histograms (right, and each mistake's), as
    [bucket, count] pairs. A run in which the mistakes came out like the right histogram (nothing preempted
    the work) is made again, twice at most."""
    cpu = _last_cpu()
    for _ in range(3):
        seen = _observe_runq_once(answer, cpu)
        if _separated(seen["kinds"]):
            return seen
    raise LabkitError(f"the checker could not make its workload show the mistakes apart on CPU {cpu} (each of "
                      f"3 runs: {seen['kinds']}); run the check again")


def _fail_the_known_mistake(c: Checklist, got: dict, right: dict, kinds: dict, table: dict, parts: tuple,
                            unit_part: str, what: str) -> None:
    """When ``got`` is what one mistake of ``table`` measures (the control's histograms ``kinds``), or
    the right histogram in another unit, raise Incorrect with that one part failed; else return."""
    near = nearest(got, right, {k: kinds[k] for k in table})
    unit = _unit_problem(got, right, what)
    # the right histogram ten buckets up (nanoseconds: 2^10 = 1024) is that, even when one of the mistakes'
    # lands near it (on a quiet host the run-queue's few microseconds, in ns, sit where wakeup-to-wakeup's
    # millisecond does)
    in_ns = _ten_up(got, right)
    failed, why = "", ""
    if near and not in_ns:
        _m, failed, why = table[near]
    elif unit:
        failed, why = unit_part, unit
    if failed:
        for p in parts:
            c.part(p, p != failed, why)
        c.done("")


def _diagnose_runq(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_runq` saw."""
    got = histogram(obs["got"])
    kinds = {k: histogram(v) for k, v in obs["kinds"].items()}
    right = kinds["right"]
    pid, n = obs["pid"], sum(right.values())
    if not got:
        raise Incorrect(f"the map 'dist' stayed empty though the process {pid} was woken {n} times (your program "
                        f"runs on {', '.join(obs['hooks'])}): note the time at sched_wakeup (and sched_wakeup_new) "
                        "under args->pid when lk_wanted(args->pid), and at sched_switch look up args->next_pid, "
                        "count bpf_log2l(microseconds) in dist (the key is the bucket: the microseconds themselves "
                        "are past BPF_HISTOGRAM's 64 buckets, which drop them)", parts=[])
    c = Checklist()
    if same(got, right):
        for p in RUNQ_PARTS:
            c.part(p, True)
        return c.done(f"yes: the process {pid}'s {n} wakeups, each counted once from sched_wakeup to the "
                      f"sched_switch that ran it, in log2 buckets of microseconds: {_shown(got)}",
                      buckets=got, pid=pid)
    _fail_the_known_mistake(c, got, right, kinds, RUNQ_KINDS, RUNQ_PARTS, RUNQ_PARTS[3], "wakeup")
    raise Incorrect(f"not yet: your histogram {_shown(got)} ({plural(sum(got.values()), 'count')}) is not the "
                    f"process {pid}'s run-queue latency, {_shown(right)} ({plural(n, 'wakeup')}), nor one mistake "
                    f"the checker knows: note the time at sched_wakeup/sched_wakeup_new for args->pid (when "
                    "lk_wanted(args->pid)), count at sched_switch for args->next_pid, in "
                    "bpf_log2l((now - start) / 1000), then delete the start",
                    parts=[])


# ---------------------------------------------------------------------- q2: one syscall's latency
SLEEP_KINDS = {
    "bypid": ("h_bypid", "keyed by the thread id",
              "the start is keyed by the process id: the process's two threads sleep at the same time, so one "
              "thread's entry overwrites the other's start and the first exit takes it away. Key it by the thread "
              "id, the lower 32 bits of bpf_get_current_pid_tgid() (u32 tid = id)"),
    "main": ("h_main", "every thread of the process",
             "only the main thread's calls were counted: the filter tests the thread id, which is the process id "
             "only in the main thread. The process id is the upper half: lk_wanted(id >> 32)"),
    "all": ("h_all", "only this process",
            "calls of other processes were counted too: return early unless lk_wanted(id >> 32)"),
    "poll": ("h_poll", "the syscall clock_nanosleep",
             "these are the process's poll() calls, another syscall: time.sleep() calls clock_nanosleep, "
             "syscalls:sys_enter_clock_nanosleep and sys_exit_clock_nanosleep"),
}
SLEEP_PARTS = ("the syscall clock_nanosleep", "keyed by the thread id", "every thread of the process",
               "only this process", "microseconds, in log2 buckets")
_SLEEP_HOOKS = ("TRACEPOINT_PROBE(syscalls, sys_enter_clock_nanosleep) and "
                "TRACEPOINT_PROBE(syscalls, sys_exit_clock_nanosleep)")


def _poll_syscall() -> str:
    """poll() as this kernel's syscall tracepoints name it (arm64 has only ppoll)."""
    return "poll" if kernel_hooks.tracepoint_exists("syscalls", "sys_enter_poll") else "ppoll"


def _observe_sleeps(answer) -> dict:
    """Run the answer beside the checker's own program while two threads of a process sleep at once: the
    answer's 'dist' and the checker's histograms, as [bucket, count] pairs."""
    code = _SLEEPERS % {"short_n": SHORT[1], "short_s": SHORT[0] / 1000, "long_n": LONG[1],
                        "long_s": LONG[0] / 1000, "poll_n": POLLS[1], "poll_ms": POLLS[0]}
    with ExitStack() as stack:
        sleeper = stack.enter_context(Helper(code, "the process whose clock_nanosleep() calls are timed"))
        other = stack.enter_context(Helper(_OTHER_SLEEPER % {"n": OTHER_SLEEP[1], "s": OTHER_SLEEP[0] / 1000},
                                           "another process that sleeps"))
        lab = stack.enter_context(Lab())
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": sleeper.pid})
        need_map(prog, "dist")
        hooks = _hooks_of(prog, _SLEEP_HOOKS)
        control = lab.load("latency_syscall_check", defines={"LK_FILTER_PID": sleeper.pid},
                           name="exercise 11 q2 control")
        poll = _poll_syscall()
        lab.attach_tracepoint(control, f"syscalls:sys_enter_{poll}", "lk_poll_enter", name="exercise 11 q2 poll in")
        lab.attach_tracepoint(control, f"syscalls:sys_exit_{poll}", "lk_poll_exit", name="exercise 11 q2 poll out")
        _zero(prog, ["dist"])        # both count from here: the machine's other sleepers over the same time
        _zero(control, ["h_right"] + [m for m, _p, _w in SLEEP_KINDS.values()])
        other.go()
        sleeper.go()
        sleeper.expect("done")
        other.expect("done")
        got = _read(prog, "dist")
        kinds = {"right": _read(control, "h_right")} | {k: _read(control, m) for k, (m, _p, _w) in SLEEP_KINDS.items()}
    return {"got": got, "kinds": kinds, "hooks": hooks, "pid": sleeper.pid}


def _diagnose_sleeps(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_sleeps` saw."""
    got = histogram(obs["got"])
    kinds = {k: histogram(v) for k, v in obs["kinds"].items()}
    right = kinds["right"]
    pid, n = obs["pid"], sum(right.values())
    calls = SHORT[1] + LONG[1]
    if not got:
        raise Incorrect(f"the map 'dist' stayed empty though the process {pid} called clock_nanosleep() {calls} "
                        f"times (your program runs on {', '.join(obs['hooks'])}): time.sleep() calls "
                        "clock_nanosleep, not nanosleep; is the filter lk_wanted(id >> 32), and does the exit "
                        "find the start the entry noted (the same key)? And the key of dist is the bucket, bpf_log2l(us): "
                        "the microseconds themselves are past BPF_HISTOGRAM's 64 buckets, which drop them", parts=[])
    c = Checklist()
    if same(got, right):
        for p in SLEEP_PARTS:
            c.part(p, True)
        return c.done(f"yes: the process {pid}'s {n} clock_nanosleep() calls, both threads', in log2 buckets of "
                      f"microseconds: {_shown(got)} ({SHORT[1]} of {SHORT[0]} ms, {LONG[1]} of {LONG[0]} ms)",
                      buckets=got, pid=pid)
    _fail_the_known_mistake(c, got, right, kinds, SLEEP_KINDS, SLEEP_PARTS, SLEEP_PARTS[4], "call")
    raise Incorrect(f"not yet: your histogram {_shown(got)} ({plural(sum(got.values()), 'count')}) is not the "
                    f"process {pid}'s clock_nanosleep() calls, {_shown(right)} ({plural(n, 'call')}), nor one "
                    "mistake the checker knows: note bpf_ktime_get_ns() at sys_enter_clock_nanosleep under the "
                    "thread id when lk_wanted(id >> 32), and at sys_exit_clock_nanosleep count "
                    "bpf_log2l((now - start) / 1000), then delete the start", parts=[])


def build() -> Lesson:
    """The exercises of lesson 11."""
    return Lesson("11", "Latency", [
        Exercise(
            "q1",
            "Write a program that keeps the run-queue latency of one process in BPF_HISTOGRAM(dist): for each "
            "time it is woken (sched:sched_wakeup, sched:sched_wakeup_new), the microseconds until it runs "
            "(the sched:sched_switch whose next_pid is it), filed by bpf_log2l(us), one count per wakeup. The "
            "checker compiles it with -DLK_FILTER_PID=<the process's pid> (lk_wanted() tests it; the process "
            f"has one thread). That process sleeps 1 ms and then works {SPIN_MS} ms, {WAKEUPS} times, on a CPU "
            "it shares with a busy process; another process sleeps and wakes too.",
            Check(_observe_runq, _diagnose_runq),
            "Three TRACEPOINT_PROBEs and a BPF_HASH(start, u32, u64) of thread id -> when it was woken. At "
            "sched_wakeup and sched_wakeup_new: u32 tid = args->pid; if lk_wanted(tid), start.update(&tid, &now). "
            "At sched_switch: u32 tid = args->next_pid; look it up; if found, "
            "dist.atomic_increment(bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000)); start.delete(&tid);",
            lambda: snippet_text("solution_11_runq_latency"),
            lambda: "solution_11_runq_latency",
            "c",
        ),
        Exercise(
            "q2",
            "Write a program that keeps how long one process's clock_nanosleep() calls take, in microseconds, "
            "in BPF_HISTOGRAM(dist): bucket bpf_log2l(us), one count per call, every thread of the process. The "
            "checker compiles it with -DLK_FILTER_PID=<the process's pid>. Its main thread sleeps "
            f"{SHORT[0]} ms {SHORT[1]} times while a second thread sleeps {LONG[0]} ms {LONG[1]} times (time.sleep()); "
            f"then it calls poll() with a {POLLS[0]} ms timeout {POLLS[1]} times; another process sleeps too.",
            Check(_observe_sleeps, _diagnose_sleeps),
            "The funclatency way: at syscalls:sys_enter_clock_nanosleep, u64 id = bpf_get_current_pid_tgid(); "
            "return unless lk_wanted(id >> 32); note bpf_ktime_get_ns() in a BPF_HASH under u32 tid = id (the "
            "thread: two threads sleep at once). At sys_exit_clock_nanosleep look the thread up, "
            "dist.atomic_increment(bpf_log2l((now - *t0) / 1000)) (nanoseconds / 1000 = microseconds), delete.",
            lambda: snippet_text("solution_11_sleep_latency"),
            lambda: "solution_11_sleep_latency",
            "c",
        ),
    ])
