"""Lesson 10, Profiling: CPU-clock samples of one process counted per user stack
(q1, perf_event at 99 Hz), and the microseconds one process spends off the CPU,
per user stack, from sched:sched_switch (q2).

Each check is two steps. *Observe* runs the answer on the kernel against a
workload of the lab's own (``labkit.exercises.workloads``: lk_busy, two threads
whose hot function is known, beside another busy process; lk_waiter, which
naps 0.1 s and then waits 0.4 s for a line the checker holds back) and returns
a plain record of what the answer's maps held: every key with its value and
its stack, named in the workload's memory map (:class:`HotObservation`,
:class:`WaitObservation`, both to and from JSON). *Diagnose*
(:func:`diagnose_hot`, :func:`diagnose_waits`) decides from that record
alone: the verdict, the parts, and the message naming the mistake. The
diagnoses are unit-tested without root from recorded observations
(tests/unit/test_lesson10_diagnose.py).

Why this file is long: each exercise is a record (to and from JSON, what the
unit tests feed), the kernel run that fills it, and a diagnosis that tells six
or more kinds of wrong answer apart; split, a record and the code that reads it
would live in different files."""

from __future__ import annotations

import ctypes
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    attach_answer,
    load_answer,
    need_map,
    plural,
    snippet_text,
)
from labkit.exercises.helpers import Helper
from labkit.exercises import workloads
from labkit.lab import Lab
from labkit.views.stacks import KERNEL_ADDRESS, UNKNOWN, stack_addresses, stack_frames

__all__ = ["BUSY_FUNCTIONS", "FREQUENCY", "HotObservation", "NAP_US", "STAGES", "Stack", "WAIT_US", "WaitObservation",
           "build", "diagnose_hot", "diagnose_waits", "inclusive", "observe_hot", "observe_waits"]

#: q1: the sampling frequency (per CPU), and how long each of lk_busy's two threads works (seconds on a CPU)
FREQUENCY = 99
BUSY_SECONDS = 0.5
#: q1: the functions main() and lk_worker() call in a loop; lk_compress does four times the work of each other
STAGES = ("lk_parse", "lk_compress", "lk_checksum")
HOT = "lk_compress"
LEAF = "lk_mix"
#: every function of lk_busy (a stack holding one of them is lk_busy's)
BUSY_FUNCTIONS = frozenset({"main", "lk_worker", "lk_stages", "lk_mix", "lk_round1", "lk_round2", "lk_round3",
                            "lk_round4", *STAGES})
#: q2: how long the checker holds lk_waiter's input back, and lk_nap's ten 10 ms sleeps (microseconds)
WAIT_US = 400_000
NAP_US = 100_000
WAITER_FUNCTIONS = frozenset({"main", "lk_think", "lk_nap", "lk_wait_input"})

# runs a workload in the helper's own process (exec keeps the pid the checker filters on)
_EXEC = "import os, sys; exe = %r; os.execv(exe, [exe, *%r])"
# another busy process beside lk_busy (a pid filter keeps it out)
_SPINNER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + %r
while time.monotonic() < end:
    pass
print("done", flush=True)
sys.stdin.read()
"""
# another process that sleeps and wakes while lk_waiter waits (a pid filter keeps it out)
_NAPPER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
for _ in range(50):
    time.sleep(0.01)
print("done", flush=True)
sys.stdin.read()
"""

_Q2_REFERENCE_NAME = "solution_10_offcpu"
_Q1_REFERENCE_NAME = "solution_10_hot_stacks"


# ---------------------------------------------------------------- observations
@dataclass(frozen=True)
class Stack:
    """One key of the answer's map: the key as an integer (a stack id is an int:
    negative is -errno), its value, the frames of that stack id in the answer's
    stack map (outermost first, named in the workload's memory map; empty when
    the id is negative or not in the map), whether those addresses are the
    kernel's, and the key read as a code address of the workload (its function's
    name, or "" when no function is there: an answer keyed by instruction pointers)."""

    key: int
    value: int
    frames: tuple[str, ...] = ()
    kernel: bool = False
    as_address: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "Stack":
        return cls(int(d["key"]), int(d["value"]), tuple(d.get("frames", ())), bool(d.get("kernel", False)),
                   str(d.get("as_address", "")))


@dataclass(frozen=True)
class HotObservation:
    """What q1's answer counted while lk_busy (pid ``pid``, its worker thread
    ``worker_tid``) ran: ``cpu`` seconds on a CPU (main thread, worker), the
    answer's map ``counts`` (``key_size`` bytes a key) one :class:`Stack` a key; ``sampled``: the samples
    of lk_busy the checker's own program counted on the same clock at the same time (0: not counted)."""

    pid: int
    worker_tid: int
    cpu: tuple[float, float]
    key_size: int
    stacks: tuple[Stack, ...]
    frequency: int = FREQUENCY
    sampled: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HotObservation":
        return cls(int(d["pid"]), int(d["worker_tid"]), tuple(float(x) for x in d["cpu"]), int(d["key_size"]),
                   tuple(Stack.from_dict(s) for s in d["stacks"]), int(d.get("frequency", FREQUENCY)),
                   int(d.get("sampled", 0)))


@dataclass(frozen=True)
class WaitObservation:
    """What q2's answer summed while lk_waiter (pid ``pid``) thought, napped
    and waited: ``span_us`` microseconds from the checker's "go" to its "done",
    the input held back ``wait_us``, the answer's map ``offcpu`` one
    :class:`Stack` a key."""

    pid: int
    span_us: int
    key_size: int
    stacks: tuple[Stack, ...]
    wait_us: int = WAIT_US
    nap_us: int = NAP_US
    hooks: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WaitObservation":
        return cls(int(d["pid"]), int(d["span_us"]), int(d["key_size"]), tuple(Stack.from_dict(s) for s in d["stacks"]),
                   int(d.get("wait_us", WAIT_US)), int(d.get("nap_us", NAP_US)), tuple(d.get("hooks", ())))


def _int_key(raw, size: int) -> int:
    """A key as the int it holds: a stack id is a C int (negative: -errno), whatever the key's width."""
    v = int(getattr(raw, "value", raw) or 0)
    if size <= 4:
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >= 1 << 31 else v
    return v


def _read_stacks(prog, counts: str, pid: int) -> tuple[int, tuple[Stack, ...]]:
    """Every key of the answer's map ``counts`` with its stack in ``stacks`` (named in process ``pid``)."""
    table = prog[counts]
    size = ctypes.sizeof(table.Key)
    if getattr(table.Key, "_fields_", None):
        raise Incorrect(f"the key of '{counts}' is a struct: the task asks for the stack id itself, an int "
                        f"(BPF_HASH({counts}, int, u64))", parts=[])
    bpf = prog.bpf
    out = []
    for k, v in table.items():
        key = _int_key(k, size)
        # a per-CPU hash gives one value per CPU: their sum
        value = sum(int(getattr(x, "value", x)) for x in v) if isinstance(v, (list, ctypes.Array)) \
            else int(getattr(v, "value", v))
        if key < 0 or size > 4 and key >= 1 << 31:
            frames, kernel = (), False
        else:
            addrs = stack_addresses(prog, "stacks", key)
            frames = tuple(stack_frames(prog, "stacks", key, pid))
            kernel = bool(addrs) and addrs[0] >= KERNEL_ADDRESS
        as_address = ""
        if size == 8 and 0 < key < KERNEL_ADDRESS:
            name = bpf.sym(key, pid)
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            as_address = "" if name.startswith("[unknown]") else name
        out.append(Stack(key, value, frames, kernel, as_address))
    return size, tuple(sorted(out, key=lambda s: -s.value))


# ---------------------------------------------------------------------- q1
def observe_hot(answer) -> HotObservation:
    """Run lk_busy (two threads, BUSY_SECONDS on a CPU each) beside another busy process with the answer
    attached to the CPU clock at FREQUENCY Hz, filtered to lk_busy's pid; return what it counted."""
    exe = str(workloads.build("busy"))
    with ExitStack() as helpers:
        busy = helpers.enter_context(Helper(_EXEC % (exe, [str(BUSY_SECONDS)]), "lk_busy, the program profiled"))
        other = helpers.enter_context(Helper(_SPINNER % (BUSY_SECONDS,), "another busy process beside it"))
        with Lab() as lab:
            prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": busy.pid})
            need_map(prog, "counts")
            _need_stacks(prog)
            fn = _one_function(prog)
            # the checker's own count of lk_busy's samples on the same clock: what the answer should count
            # (CPU time x frequency is that only when the timers fire on time: not in an emulator on a busy host).
            # Both are compiled before either samples: an answer that samples the whole machine then samples
            # only the workload's second, not a compile (seconds in an emulator)
            yardstick = lab.load("perf_cpu_samples", defines={"LK_FILTER_PID": busy.pid}, name="exercise 10 q1 count")
            lab.attach_perf_event(prog, fn, frequency=FREQUENCY, name="exercise 10 q1")
            lab.attach_perf_event(yardstick, frequency=FREQUENCY, name="exercise 10 q1 count")
            other.go()
            busy.go()
            busy.expect("done")
            other.expect("done")
            words = busy.readline().split()
            if len(words) != 4 or words[0] != "cpu":
                raise busy.failed(f"printed {' '.join(words)!r} where the checker waited for its CPU times")
            size, stacks = _read_stacks(prog, "counts", busy.pid)
            sampled = sum(int(x) for _k, v in yardstick["samples"].items() for x in v)
    return HotObservation(busy.pid, int(words[3]), (float(words[1]), float(words[2])), size, stacks,
                          sampled=sampled)


def _need_stacks(prog) -> None:
    if not prog.has_table("stacks"):
        raise Incorrect("the program has no map called 'stacks': the checker names your stack ids from it "
                        "(BPF_STACK_TRACE(stacks, 1024))", parts=[])


def _one_function(prog) -> str:
    fns = prog.functions
    if len(fns) != 1:
        raise Incorrect(f"the program has {plural(len(fns), 'function')} ({', '.join(fns) or 'none'}): write one, "
                        "the function the CPU clock runs (it takes struct bpf_perf_event_data *ctx)", parts=[])
    return fns[0]


def _busy(s: Stack) -> bool:
    return any(f in BUSY_FUNCTIONS for f in s.frames)


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "0%"


def inclusive(stacks, names) -> dict[str, int]:
    """Samples (values) of the stacks each of ``names`` is on (anywhere: a function's own and its callees')."""
    return {n: sum(s.value for s in stacks if n in s.frames) for n in names}


def diagnose_hot(o: HotObservation) -> tuple[str, dict]:
    """The verdict on q1 from what the answer counted (pure: no kernel)."""
    total = sum(s.value for s in o.stacks)
    if not o.stacks or total == 0:
        raise Incorrect(f"the map 'counts' stayed empty while lk_busy (pid {o.pid}) ran {sum(o.cpu):.2f} s on the "
                        "CPUs: does your filter keep it, lk_wanted(bpf_get_current_pid_tgid() >> 32)? Does every "
                        "sample add to counts (counts.atomic_increment(stack_id))?", parts=[])
    c = Checklist()
    mine = [s for s in o.stacks if _busy(s)]
    mine_n = sum(s.value for s in mine)
    negative = sum(s.value for s in o.stacks if s.key < 0 and o.key_size <= 4)
    kernel = sum(s.value for s in o.stacks if s.kernel)
    addresses = sum(s.value for s in o.stacks if s.as_address)
    # ---- the keys
    if o.key_size == 8 and addresses > total / 2:
        leafs = sorted({s.as_address for s in o.stacks if s.as_address})
        why = (f"the keys are code addresses, not stack ids: {_share(addresses, total)} of the samples are under an "
               f"instruction pointer in {', '.join(leafs[:4])}. That is the leaf alone, the function the CPU was in "
               f"({LEAF} for nearly every sample: every stage does its work there), and it cannot say which stage "
               "called it. Count stacks.get_stackid(ctx, BPF_F_USER_STACK), an int that names the whole stack")
    elif o.key_size > 4:
        why = (f"the key of 'counts' is {o.key_size} bytes: the task's key is the stack id, an int "
               "(BPF_HASH(counts, int, u64)), what stacks.get_stackid() returns")
    elif (negative + kernel) > total / 2:
        ids = sorted({s.key for s in o.stacks if s.key < 0})
        why = (f"{_share(negative + kernel, total)} of the samples have no user stack"
               + (f" (stack id {', '.join(map(str, ids))}: -EFAULT, no such stack at that moment)" if ids else
                  " (kernel addresses)")
               + ": you asked for the kernel stack (flags 0), and lk_busy was running its own code, where the "
                 "kernel has no stack to give. stacks.get_stackid(ctx, BPF_F_USER_STACK) walks the process's frames")
    elif not any(s.frames for s in o.stacks):
        keys = sorted(s.key for s in o.stacks)
        why = (f"no key of 'counts' is a stack the map 'stacks' holds (the keys: "
               f"{', '.join(map(str, keys[:5]))}{', ...' if len(keys) > 5 else ''}): count each sample under "
               "stacks.get_stackid(ctx, BPF_F_USER_STACK), which stores the stack and returns its id")
    else:
        why = ""
    keys_ok = c.part("counts is keyed by user stack ids", not why, why)

    # ---- only lk_busy
    foreign = total - mine_n
    if not keys_ok:
        why = "no stacks to tell whose they are"
    elif foreign > max(0.2 * total, 5):
        why = (f"{_share(foreign, total)} of the samples ({foreign} of {total}) are under stacks that are not "
               f"lk_busy's (other processes, and the idle task): the checker compiles your program with "
               f"-DLK_FILTER_PID={o.pid}; return early unless lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    else:
        why = ""
    c.part("only lk_busy's samples", not why, why)

    # ---- both threads
    worker = sum(s.value for s in mine if "lk_worker" in s.frames)
    main = sum(s.value for s in mine if "main" in s.frames)
    if not keys_ok:
        why = "no stacks to tell the threads apart"
    elif main and not worker:
        why = (f"only lk_busy's main thread was counted ({main} samples under main), none of its worker thread "
               f"(tid {o.worker_tid}, {o.cpu[1]:.2f} s on a CPU under lk_worker): the filter tests the thread id "
               "(the lower 32 bits of bpf_get_current_pid_tgid()), which is the process id only in the main thread. "
               "Test the process id: lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    elif not main and not worker:
        why = "none of lk_busy's stacks names main or lk_worker"
    else:
        why = ""
    c.part("both of its threads", not why, why)

    # ---- one count per sample
    threads = o.cpu[0] + o.cpu[1]
    ran = o.cpu[0] + (o.cpu[1] if worker or not keys_ok else 0.0)
    if o.sampled:      # the checker's own count on the same clock (of the threads the answer kept)
        expected = o.sampled * (ran / threads if threads else 1.0)
        yard = f"the checker's own program counted {expected:.0f} of lk_busy's on the same clock"
    else:
        expected = o.frequency * ran
        yard = f"lk_busy's {ran:.2f} s on a CPU at {o.frequency} Hz make about {expected:.0f}"
    counted = mine_n if keys_ok else total
    if keys_ok and mine and all(s.value == 1 for s in mine) and expected >= 1.2 * len(mine) + 5:
        why = (f"every stack says 1, whatever its samples: {len(mine)} stacks, where {yard}. The first sample "
               "creates the entry and every later one must add to it (counts.atomic_increment(stack_id))")
    elif not 0.5 * expected - 5 <= counted <= 1.5 * expected + 10 and c.parts[1].passed:
        why = (f"{counted} samples counted, where {yard}: count each sample once, counts.atomic_increment(stack_id)")
    elif not 0.5 * expected - 5 <= counted <= 1.5 * expected + 10:
        why = (f"{counted} of lk_busy's samples counted under its stacks, where {yard}: the other processes' "
               "stacks filled the map 'stacks', and most of lk_busy's found no room (get_stackid returned an "
               "error) — filter first")
    else:
        why = ""
    c.part("one count per sample", not why, why)

    per = inclusive(mine, STAGES)
    hot = max(per, key=per.get) if any(per.values()) else ""
    c.part("the stacks show the hot function (lk_compress)", not c.failed and hot == HOT,
           "blocked by the parts above" if c.failed else
           f"the stacks put {hot or 'no stage'} on top ({', '.join(f'{k} {v}' for k, v in per.items())}): "
           f"{HOT} does four times the work of each other stage")
    leaf = sum(s.value for s in mine if s.frames and s.frames[-1] == LEAF)
    return c.done(f"yes: your stacks say {HOT} is hot — on the stack in {_share(per[HOT], mine_n)} of lk_busy's "
                  f"{mine_n} samples ({', '.join(f'{k} {_share(v, mine_n)}' for k, v in per.items() if k != HOT)}), "
                  f"in both threads; the leaf of {_share(leaf, mine_n)} of them is {LEAF}, where every stage works",
                  hot=HOT, samples=mine_n, shares={k: v / mine_n for k, v in per.items()} if mine_n else {})


# ---------------------------------------------------------------------- q2
#: bpf_get_stackid's -EEXIST: the stack hashed to a slot of the stack map another stack holds
EEXIST_ID = -17


def _collided(o: WaitObservation) -> bool:
    """Whether the answer lost lk_waiter's time to stack-map collisions (more than 5% of it under -EEXIST)
    while it kept only lk_waiter's stacks: a right answer's bad luck, which no verdict may rest on (an answer
    that keeps every process's stacks fills its map, and that is its mistake)."""
    total = sum(s.value for s in o.stacks)
    lost = sum(s.value for s in o.stacks if s.key == EEXIST_ID)
    foreign = [s for s in o.stacks if s.key >= 0 and not any(f in WAITER_FUNCTIONS for f in s.frames)]
    return total > 0 and lost > 0.05 * total and len(foreign) < 3


def observe_waits(answer) -> WaitObservation:
    """Run lk_waiter (think, nap 10 x 10 ms, wait WAIT_US for a line) beside another process that
    sleeps, with the answer on sched:sched_switch, filtered to lk_waiter's pid; return what it summed.
    A run whose stacks collided in the answer's stack map (see :func:`_collided`) is made again, twice
    at most."""
    for _ in range(3):
        o = _observe_waits_once(answer)
        if not _collided(o):
            return o
    lost = sum(s.value for s in o.stacks if s.key == EEXIST_ID)
    raise LabkitError(f"in each of 3 runs some of lk_waiter's stacks found their slot of 'stacks' taken by another "
                      f"stack (get_stackid returned -EEXIST: {lost} µs of the last run under that id), so the "
                      "checker cannot tell where the time went; run the check again (a bigger "
                      "BPF_STACK_TRACE makes collisions rarer)")


def _observe_waits_once(answer) -> WaitObservation:
    exe = str(workloads.build("waiter"))
    with ExitStack() as helpers:
        waiter = helpers.enter_context(Helper(_EXEC % (exe, []), "lk_waiter, the program that waits"))
        other = helpers.enter_context(Helper(_NAPPER, "another process that sleeps beside it"))
        with Lab() as lab:
            prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": waiter.pid})
            need_map(prog, "offcpu")
            _need_stacks(prog)
            hooks = attach_answer(lab, prog, "sched:sched_switch", name="exercise 10 q2")
            t0 = time.monotonic()
            other.go()
            waiter.go()
            waiter.expect("waiting")
            time.sleep(WAIT_US / 1e6)
            waiter.go("input")
            waiter.expect("done")
            span = int((time.monotonic() - t0) * 1e6)
            other.expect("done")
            size, stacks = _read_stacks(prog, "offcpu", waiter.pid)
    return WaitObservation(waiter.pid, span, size, stacks, hooks=tuple(hooks))


def _at(stacks, name: str) -> int:
    """The values of the stacks whose innermost lk_waiter function is ``name``."""
    def inner(s: Stack) -> str:
        return next((f for f in reversed(s.frames) if f in WAITER_FUNCTIONS), "")
    return sum(s.value for s in stacks if inner(s) == name)


def diagnose_waits(o: WaitObservation) -> tuple[str, dict]:
    """The verdict on q2 from what the answer summed (pure: no kernel)."""
    total = sum(s.value for s in o.stacks)
    if not o.stacks or total == 0:
        raise Incorrect(f"the map 'offcpu' stayed empty while lk_waiter (pid {o.pid}) napped and waited "
                        f"{(o.nap_us + o.wait_us) / 1e6:.1f} s: does your program run on sched:sched_switch "
                        "(TRACEPOINT_PROBE(sched, sched_switch)), keep lk_waiter's threads "
                        "(lk_wanted(bpf_get_current_pid_tgid() >> 32)) when they leave, and add the time when they "
                        "come back?", parts=[])
    if o.key_size > 4:
        raise Incorrect(f"the key of 'offcpu' is {o.key_size} bytes: the task's key is the user stack id, an int "
                        "(BPF_HASH(offcpu, int, u64))", parts=[])
    c = Checklist()
    mine = [s for s in o.stacks if any(f in WAITER_FUNCTIONS for f in s.frames)]
    mine_sum = sum(s.value for s in mine)
    foreign = [s for s in o.stacks if s not in mine]
    foreign_sum = total - mine_sum
    wait, nap, think = _at(mine, "lk_wait_input"), _at(mine, "lk_nap"), _at(mine, "lk_think")

    # ---- whose stacks
    if mine and foreign_sum > max(0.5 * mine_sum, 10) and len(foreign) >= 3:
        why = (f"{plural(len(foreign), 'stack')} that are not lk_waiter's hold {_share(foreign_sum, total)} of the "
               f"total: other processes' waits are summed too. The checker compiles your program with "
               f"-DLK_FILTER_PID={o.pid}: note a thread's time only when lk_wanted(bpf_get_current_pid_tgid() >> 32) "
               "as it leaves the CPU")
        c.part("only lk_waiter's threads", False, why)
        c.part("the stack where each thread left the CPU", True)
    elif not mine or foreign_sum > mine_sum:
        why = (f"the time went under stacks that are not lk_waiter's ({_share(foreign_sum, total)} of it"
               + (", under stack ids " + ", ".join(str(s.key) for s in foreign if s.key < 0) if
                  any(s.key < 0 for s in foreign) else "") +
               "): sched_switch runs in the task that is leaving the CPU, so a stack taken when lk_waiter comes "
               "back is the stack of whatever leaves then (often the idle task, which has no user stack). Take "
               "the stack when lk_waiter's thread leaves (stacks.get_stackid(args, BPF_F_USER_STACK), prev's), "
               "keep it with the time, and add to it when the thread comes back")
        c.part("only lk_waiter's threads", True)
        c.part("the stack where each thread left the CPU", False, why)
    else:
        c.part("only lk_waiter's threads", True)
        c.part("the stack where each thread left the CPU", True)

    # ---- what the values are
    w = o.wait_us
    if c.failed and not mine:
        why = "no stacks of lk_waiter to read the time from"
    elif not c.parts[0].passed and wait == 0:
        why = ("lk_wait_input's wait is not in the map: with every process's stacks going into 'stacks' (1024 "
               "of them), its stack found no room (get_stackid returned an error) — filter first")
    elif wait == 0 and nap == 0:
        why = (f"nothing under lk_wait_input or lk_nap, where lk_waiter waited {(w + o.nap_us) / 1e6:.1f} s: "
               "add the time when the thread comes back (args->next_pid) to the stack it left from")
    elif 0.8 * w * 1000 <= wait <= 20 * w * 1000:
        why = (f"lk_wait_input holds {wait}, about {wait / w:.0f} times the {w} microseconds it waited: that is "
               "nanoseconds. Divide bpf_ktime_get_ns()'s difference by 1000")
    elif wait <= 5 and 5 <= nap <= 40:
        why = (f"lk_wait_input holds {wait} and lk_nap {nap}: those are switches (lk_nap slept 10 times), not "
               "time. Add the microseconds each stay off the CPU lasted")
    elif 0.8 * w / 1000 <= wait <= 20 * w / 1000 and 0.8 * o.nap_us / 1000 <= nap <= 20 * o.nap_us / 1000:
        why = (f"lk_wait_input holds {wait}, where it waited {w} microseconds: that is milliseconds. The task "
               "asks for microseconds: (now - then) / 1000 from bpf_ktime_get_ns()")
    elif wait < 0.1 * w:
        why = (f"lk_wait_input holds {wait}, far below the {w / 1e6:.1f} s it waited (and lk_nap {nap}, where the "
               "thread first leaves the CPU after lk_think's work): that is the time ON the CPU, from a thread's "
               "switch in to its switch out. Off the CPU is the other interval: from when it leaves "
               "(args->prev_pid) to when it comes back (args->next_pid)")
    else:
        why = ""
    units_ok = c.part("time off the CPU, in microseconds", not why, why)

    # ---- where it waited
    if not units_ok or c.failed:
        why = "blocked by the parts above"
    elif not (0.9 * w <= wait <= o.span_us and 0.9 * o.nap_us <= nap <= o.span_us):
        why = (f"lk_wait_input holds {wait} µs and lk_nap {nap} µs; they waited at least {w} µs and "
               f"{o.nap_us} µs (10 sleeps of 10 ms), within the {o.span_us} µs lk_waiter ran: is every stay off "
               "the CPU added, once?")
    else:
        why = ""
    c.part("lk_wait_input waited 0.4 s and lk_nap 0.1 s", not why, why)
    return c.done(f"yes: lk_waiter waited {wait / 1e6:.2f} s in lk_wait_input (its input, held back {w / 1e6:.1f} "
                  f"s) and {nap / 1e6:.2f} s in lk_nap (10 sleeps of 10 ms); lk_think, on the CPU, "
                  f"{think / 1e3:.1f} ms off it", wait_us=wait, nap_us=nap, think_us=think)


def _diagnose_hot(observation: dict) -> tuple[str, dict]:
    return diagnose_hot(HotObservation.from_dict(observation))


def _diagnose_waits(observation: dict) -> tuple[str, dict]:
    return diagnose_waits(WaitObservation.from_dict(observation))


# the framework's two steps: the observation as plain data (it is kept in the result and can be judged again)
_check_hot = Check(lambda answer: observe_hot(answer).to_dict(), _diagnose_hot)
_check_waits = Check(lambda answer: observe_waits(answer).to_dict(), _diagnose_waits)


def build() -> Lesson:
    """The exercises of lesson 10."""
    return Lesson("10", "Profiling", [
        Exercise(
            "q1",
            "Write a perf_event program that counts the CPU-clock samples of one process per user stack: "
            "BPF_STACK_TRACE(stacks, 1024) for the stacks, and BPF_HASH(counts, int, u64) from the stack id "
            "(stacks.get_stackid(ctx, BPF_F_USER_STACK)) to its samples. Only one process matters: the checker "
            "compiles your program with -DLK_FILTER_PID=<its pid>, which lk_wanted() from labkit.h tests. It "
            "attaches your function to the CPU clock at 99 Hz while lk_busy's two threads each run half a second on a CPU, "
            "beside another busy process, and names lk_busy's hot function from your stacks.",
            _check_hot,
            "A perf_event program takes struct bpf_perf_event_data *ctx. Return early unless "
            "lk_wanted(bpf_get_current_pid_tgid() >> 32); then int id = stacks.get_stackid(ctx, BPF_F_USER_STACK); "
            "counts.atomic_increment(id); (two CPUs may count the same stack at once).",
            lambda: snippet_text(_Q1_REFERENCE_NAME),
            lambda: _Q1_REFERENCE_NAME,
            "c",
        ),
        Exercise(
            "q2",
            "Write a program for the tracepoint sched:sched_switch that sums, per user stack, the microseconds "
            "the threads of one process spend off the CPU: from the moment a thread leaves a CPU to the moment it "
            "is switched in again, added to the user stack it left from. BPF_STACK_TRACE(stacks, 1024), and "
            "BPF_HASH(offcpu, int, u64) from the stack id to microseconds. Only one process matters "
            "(-DLK_FILTER_PID=<its pid>, lk_wanted()). The checker runs lk_waiter, which thinks a moment, naps ten "
            "times 10 ms in lk_nap() and waits 0.4 s for a line on its stdin in lk_wait_input(), while another "
            "process sleeps and wakes beside it.",
            _check_waits,
            "sched_switch runs in the task that leaves (args->prev_pid); args->next_pid comes in. When a thread "
            "of the process leaves, keep bpf_ktime_get_ns() and stacks.get_stackid(args, BPF_F_USER_STACK) under "
            "its thread id; when a thread you kept comes in, add (now - then) / 1000 to offcpu[its stack id] and "
            "delete its entry.",
            lambda: snippet_text(_Q2_REFERENCE_NAME),
            lambda: _Q2_REFERENCE_NAME,
            "c",
        ),
    ])
