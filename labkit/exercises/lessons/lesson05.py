"""Lesson 05, Tracing user space: a histogram of the microseconds one process
asks libc's usleep() for (q1, a uprobe), and CPython's garbage collections
counted per generation from its USDT probe gc__start (q2). Both run in child
processes the checker starts and tells when to begin, so every call is known."""

from __future__ import annotations

import re
import subprocess
import sys

from labkit._errors import VerifierError
from labkit.exercises.framework import (
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
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["PYTHON", "build"]

#: Debian's interpreter, built with USDT probes (``readelf -n /usr/bin/python3.11``)
PYTHON = "/usr/bin/python3.11"

#: q1: usleep(us) calls of the process the answer watches, and of another one (never to be counted)
MINE = ((1, 3), (20, 5), (300, 7), (2000, 2))
OTHERS = ((50, 11), (5000, 4))
#: q2: gc.collect(generation) calls of the checker's Python process
COLLECTS = ((0, 3), (1, 5), (2, 2))

# A process that says "ready" (its program and libraries are mapped: probes can be
# placed), waits for a line on stdin, calls usleep() as told, says "done", and stays
# alive until its stdin closes (its pid stays its own while the map is read).
_SLEEPER = """
import ctypes, sys
libc = ctypes.CDLL("libc.so.6")
print("ready", flush=True)
sys.stdin.readline()
for us, n in %r:
    for _ in range(n):
        libc.usleep(us)
print("done", flush=True)
sys.stdin.read()
"""

_COLLECTOR = """
import gc, sys
gc.disable()                      # no automatic collections: only the ones below
print("ready", flush=True)
sys.stdin.readline()
for generation, n in %r:
    for _ in range(n):
        gc.collect(generation)
print("done", flush=True)
sys.stdin.read()
"""

_Q2_REFERENCE = """\
// lesson 05, q2: CPython's garbage collections counted per generation.
// gc__start(generation) fires once per collection; USDT arguments count from 1.
BPF_HASH(collections, u32, u64);

int lk_gc_start(struct pt_regs *ctx)
{
    u32 generation = 0;
    bpf_usdt_readarg(1, ctx, &generation);
    collections.increment(generation);    // one writer: the collecting thread holds the GIL
    return 0;
}
"""


def _bucket(us: int) -> int:
    """bpf_log2l(us): 0 for 0, else floor(log2(us)) + 1."""
    return us.bit_length()


class _Child:
    """A Python process of the checker's that runs ``code`` when told to; made
    once it says it is ready (a USDT context reads the maps of the process as it
    is: before exec they are its parent's)."""

    def __init__(self, code: str, python: str = sys.executable):
        self.p = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the checker's process {self.pid} failed: {self.p.stderr.read()[-500:]}")

    def go(self) -> None:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def wait_done(self) -> None:
        line = self.p.stdout.readline().strip()
        if line != "done":
            raise RuntimeError(f"the checker's process {self.pid} failed: {self.p.stderr.read()[-500:]}")

    def close(self) -> None:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


def _counts(prog, table: str) -> dict[int, int]:
    df = map_dataframe(prog, table)
    if df.empty:
        return {}
    value = value_column(df)
    key = int_key_column(df, value)
    return {int(k): int(v) for k, v in zip(df[key], df[value]) if int(v)}


def _single_function(prog, what: str) -> str:
    fns = prog.functions
    if len(fns) != 1:
        raise Incorrect(f"the program has {plural(len(fns), 'function')} ({', '.join(fns) or 'none'}): write one, "
                        f"the function {what} calls")
    return fns[0]


# ---------------------------------------------------------------------- q1
def _check_usleep_histogram(answer) -> tuple[str, dict]:
    mine, other = _Child(_SLEEPER % (MINE,)), _Child(_SLEEPER % (OTHERS,))
    try:
        with Lab() as lab:
            prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": mine.pid})
            need_map(prog, "dist")
            fn = _single_function(prog, "the uprobe on usleep()")
            lab.attach_uprobe(prog, "c", "usleep", fn, name="exercise 05 q1")
            other.go()
            mine.go()
            other.wait_done()
            mine.wait_done()
            got = _counts(prog, "dist")
    finally:
        mine.close()
        other.close()

    want = {_bucket(us): n for us, n in MINE}
    theirs = {_bucket(us): n for us, n in OTHERS}
    raw_mine = {us: n for us, n in MINE}
    c = Checklist()
    if not got:
        raise Incorrect(f"the map 'dist' stayed empty though the process {mine.pid} called usleep() "
                        f"{sum(n for _, n in MINE)} times: does your filter keep it, lk_wanted(id >> 32) (the "
                        "process id is the upper half of bpf_get_current_pid_tgid())?", parts=[])
    counted_other = any(got.get(b, 0) >= n for b, n in theirs.items())
    # another process's calls all counted, and some of this process's missing: the filter keeps the others
    # (with it inverted, the whole machine's usleep() calls land in the map too: mine's buckets hold noise)
    inverted = counted_other and not all(got.get(b, 0) >= n for b, n in want.items())
    if inverted:
        why = (f"none of the process {mine.pid}'s calls was counted, only another process's: the filter is "
               "inverted. Return early unless lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    elif all(got.get(us) == n for us, n in raw_mine.items()):
        why = ("the keys are the microseconds themselves (1, 20, 300, 2000): a histogram files each call by "
               "bpf_log2l(us), its power-of-two bucket")
    elif all(got.get(b - 1) == n for b, n in want.items() if b > 0) and not all(got.get(b) == n for b, n in want.items()):
        why = ("every call landed one bucket low (usleep(1) in bucket 0): the task's buckets are bpf_log2l(us), "
               "floor(log2(us)) + 1, bucket 0 kept for 0 (BCC's bpf_log2() is floor(log2) without the + 1)")
    elif len(got) == 1:
        k = next(iter(got))
        why = (f"every call landed in the same bucket ({k}): the histogram must file each call by the "
               "microseconds it asks for, usleep()'s first argument, PT_REGS_PARM1(ctx)")
    elif not any(b in got for b in want):
        why = (f"no call landed in the buckets of usleep()'s argument ({', '.join(map(str, sorted(want)))}): "
               f"the map holds {dict(sorted(got.items()))}. Read the first argument with PT_REGS_PARM1(ctx) "
               "and file it by bpf_log2l()")
    else:
        why = ""
    c.part("the argument, in log2 buckets", not inverted and all(b in got for b in want) and not why, why)

    why = _count_mismatch(got, want, "no buckets to compare" if inverted or why else "",
                          "each bucket says 1, whatever the number of calls: the first call creates the entry "
                          "and every later one must add to it (dist.increment(bucket))",
                          "bucket {key} should hold {want}, holds {got}")
    c.part("exact counts per bucket", not why, why)

    c.part("only this process", not counted_other,
           "" if inverted else (f"another process's calls (usleep(50) x11, usleep(5000) x4: buckets "
                                f"{', '.join(map(str, sorted(theirs)))}) were counted: only the process "
                                "LK_FILTER_PID matters. Return early unless lk_wanted(id >> 32)"))
    return c.done(f"yes: the process {mine.pid}'s {sum(n for _, n in MINE)} usleep() calls are in their buckets "
                  f"({', '.join(f'{b}: {n}' for b, n in sorted(want.items()))}), another process's left out",
                  buckets=want, pid=mine.pid)


# ---------------------------------------------------------------------- q2
_READARG = re.compile(r"bpf_usdt_readarg\s*\(\s*(\d+)")


def _check_gc_generations(answer) -> tuple[str, dict]:
    child = _Child(_COLLECTOR % (COLLECTS,), python=PYTHON)
    try:
        with Lab() as lab:
            plain = load_answer(lab, answer, name="your answer")
            need_map(plain, "collections")
            fn = _single_function(plain, "gc__start")
            try:
                att = lab.attach_usdt(plain, "python:gc__start", fn, pid=child.pid, name="exercise 05 q2")
            except VerifierError:
                bad = sorted({int(n) for n in _READARG.findall(plain.source)} - {1})
                if bad:
                    raise Incorrect(f"bpf_usdt_readarg({bad[0]}, ...): gc__start has one argument, the generation, "
                                    "and USDT arguments count from 1: bpf_usdt_readarg(1, ctx, &generation)",
                                    parts=[]) from None
                raise
            child.go()
            child.wait_done()
            got = _counts(att.program, "collections")
    finally:
        child.close()

    want = dict(COLLECTS)
    total = sum(want.values())
    c = Checklist()
    if not got:
        why = (f"the map 'collections' stayed empty though the process collected {total} times: does every "
               "gc__start count? A lookup() alone never creates an entry: increment(generation), or "
               "lookup_or_try_init() and then add")
    elif set(got) == {0}:
        why = ("every collection went under the key 0: the key must be the generation that "
               "bpf_usdt_readarg(1, ctx, &generation) writes — not what it returns (0 on success), and it writes "
               "only into a variable of the argument's size: gc__start's generation is an int (4 bytes: int or "
               "u32, not u64)")
    elif not set(want) <= set(got):
        why = (f"the keys are {', '.join(map(str, sorted(got)[:6]))}, not the generations 0, 1 and 2: read the "
               "probe's argument with bpf_usdt_readarg(1, ctx, &generation) (PT_REGS_PARM1 is a C function's "
               "argument, not a USDT probe's)")
    else:
        why = ""
    c.part("keyed by the generation", not why, why)

    why = _count_mismatch(got, want, "no generations to compare" if why else "",
                          "each generation says 1, whatever the number of collections: every collection must "
                          "add one (collections.increment(generation))",
                          "generation {key} was collected {want} times, the map says {got}")
    c.part("exact count per generation", not why, why)
    return c.done(f"yes: {', '.join(f'generation {g}: {n}' for g, n in COLLECTS)} — every gc.collect() of the "
                  f"process {child.pid} counted under its generation", collections=want, pid=child.pid)


def _count_mismatch(got: dict, want: dict, blocked: str, all_ones: str, each: str) -> str:
    """Why the counts in ``got`` are not ``want`` ("" when they are): ``blocked`` if an earlier part
    already failed, ``all_ones`` when every entry is 1 (created, never added to), else each wrong entry."""
    if blocked:
        return blocked
    if all(got.get(k) == 1 for k in want):
        return all_ones
    return "; ".join(each.format(key=k, want=n, got=got.get(k, 0)) for k, n in want.items() if got.get(k, 0) != n)


def build() -> Lesson:
    """The exercises of lesson 05."""
    return Lesson("05", "Tracing user space", [
        Exercise(
            "q1",
            "Write a program for a uprobe on libc's usleep() that keeps a log2 histogram of the microseconds each "
            "call asks for (usleep's first argument) in BPF_HISTOGRAM(dist): bucket bpf_log2l(us), one count per "
            "call. Only one process matters: the checker compiles your program with -DLK_FILTER_PID=<its pid>, "
            "which lk_wanted() from labkit.h tests. That process calls usleep(1) 3 times, usleep(20) 5 times, "
            "usleep(300) 7 times and usleep(2000) twice; another process calls usleep() too.",
            _check_usleep_histogram,
            "A uprobe's function gets the registers of the call: u64 us = PT_REGS_PARM1(ctx); is the first "
            "argument. Return early unless lk_wanted(bpf_get_current_pid_tgid() >> 32), then "
            "dist.increment(bpf_log2l(us));",
            lambda: snippet_text("solution_05_usleep_histogram"),
            lambda: "solution_05_usleep_histogram",
            "c",
        ),
        Exercise(
            "q2",
            "Write a program for CPython's USDT probe python:gc__start that counts garbage collections per "
            "generation in a BPF_HASH called collections (key: the generation, gc__start's argument; value: how "
            "many collections). The checker attaches it to a /usr/bin/python3.11 process of its own that collects "
            "generation 0 three times, generation 1 five times and generation 2 twice (automatic collections off).",
            _check_gc_generations,
            "USDT arguments are read with bpf_usdt_readarg(n, ctx, &variable), counting from 1: gc__start has one, "
            "the generation. u32 generation = 0; bpf_usdt_readarg(1, ctx, &generation); "
            "collections.increment(generation);",
            _Q2_REFERENCE,
            lambda: _Q2_REFERENCE,
            "c",
        ),
    ])
