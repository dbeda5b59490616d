"""Lesson 05, Tracing user space: a histogram of the microseconds one process
asks libc's usleep() for (q1, a uprobe), and CPython's garbage collections
counted per generation from its USDT probe gc__start (q2). Both run in child
processes the checker starts and tells when to begin, so every call is known
(q1's process makes some of its calls from a second thread, which ends first;
every wait on them is bounded: :class:`~labkit.exercises.helpers.Helper`).
The maps are held to the kinds the tasks name, as the kernel reports them
(``dist`` an array of u64 counters, what BPF_HISTOGRAM(dist) makes;
``collections`` a BPF_HASH). Each checker observes on the kernel, then a pure
function (``_judge_...``) decides from what was observed."""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import asdict

from labkit._errors import VerifierError
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
from labkit.exercises.maps import ARRAY, HASH, MapKind, MapShape, map_kind_problem, map_shape
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["COLLECTIONS", "DIST", "PYTHON", "build"]

#: Debian's interpreter, built with USDT probes (``readelf -n /usr/bin/python3.11``)
PYTHON = "/usr/bin/python3.11"

#: q1: usleep(us) calls of the process the answer watches, and of another one (never to be counted)
MINE = ((1, 3), (20, 5), (300, 7), (2000, 2))
OTHERS = ((50, 11), (5000, 4))
#: q1: the ones of MINE a second thread of that process makes (it ends before the main thread makes the rest):
#: a filter on the thread id keeps only the main thread's calls, whose thread id is the process id
MINE_ON_A_THREAD = ((300, 7), (2000, 2))
#: q2: gc.collect(generation) calls of the checker's Python process
COLLECTS = ((0, 3), (1, 5), (2, 2))

# A process that says "ready" (its program and libraries are mapped: probes can be
# placed), waits for a line on stdin, calls usleep() as told (the calls in the
# second list from a second thread, which ends before the main thread makes the
# rest), says "done", and stays alive until its stdin closes (its pid stays its
# own while the map is read).
_SLEEPER = """
import ctypes, sys, threading
libc = ctypes.CDLL("libc.so.6")
calls, on_a_thread = %r, %r
def sleep(which):
    for us, n in which:
        for _ in range(n):
            libc.usleep(us)
print("ready", flush=True)
sys.stdin.readline()
t = threading.Thread(target=sleep, args=(on_a_thread,))
t.start()
t.join()
sleep([c for c in calls if c not in on_a_thread])
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
#: q1's map as the task names it: BPF_HISTOGRAM(dist) is an array of 64 u64 counters (BCC makes a
#: BPF_HISTOGRAM an array when its key is an int, and a hash otherwise)
DIST = MapKind("dist", ARRAY, "BPF_HISTOGRAM(dist), an array of 64 u64 counters whose buckets exist from the start",
               "BPF_HISTOGRAM(dist), and give dist.increment() the bucket", value_size=8, notes={
                   HASH: "a hash makes each bucket on its first count; BCC makes a BPF_HISTOGRAM an array only when "
                         "its key is an int: BPF_HISTOGRAM(dist, u64) or BPF_HISTOGRAM(dist, u32) is a hash too"})


def _observe_usleep_histogram(answer) -> dict:
    """Run the answer on usleep() while the checker's two processes call it: the map 'dist' (``got``:
    [bucket, count] pairs), what the kernel says it is (``map``), and the watched process's pid."""
    with ExitStack() as helpers:
        # each says "ready" once its program and libraries are mapped (the uprobe is placed in them)
        mine = helpers.enter_context(Helper(_SLEEPER % (MINE, MINE_ON_A_THREAD),
                                            "the process whose usleep() calls are counted"))
        other = helpers.enter_context(Helper(_SLEEPER % (OTHERS, ()), "another process that calls usleep()"))
        with Lab() as lab:
            prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": mine.pid})
            need_map(prog, "dist")
            shape = map_shape(prog, "dist")
            fn = _single_function(prog, "the uprobe on usleep()")
            lab.attach_uprobe(prog, "c", "usleep", fn, name="exercise 05 q1")
            other.go()
            mine.go()
            other.expect("done")
            mine.expect("done")
            got = _counts(prog, "dist")
    return {"got": sorted(got.items()), "pid": mine.pid, "map": asdict(shape)}


def _diagnose_usleep_histogram(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_usleep_histogram` saw."""
    return _judge_usleep_histogram(dict((k, n) for k, n in obs["got"]), obs["pid"], MapShape(**obs["map"]))


def _calls(calls) -> str:
    said = [f"usleep({us}) x{n}" for us, n in calls]
    return " and ".join([", ".join(said[:-1]), said[-1]] if len(said) > 1 else said)


def _judge_usleep_histogram(got: dict[int, int], pid: int, shape: MapShape) -> tuple[str, dict]:
    """The verdict on the map 'dist' (bucket -> count; ``shape``: what the kernel says the map is) after
    the process ``pid`` made MINE's usleep() calls (MINE_ON_A_THREAD from a second thread, the rest from
    its main thread) and another process made OTHERS'."""
    want = {_bucket(us): n for us, n in MINE}
    theirs = {_bucket(us): n for us, n in OTHERS}
    on_thread = {_bucket(us): n for us, n in MINE_ON_A_THREAD}
    on_main = {b: n for b, n in want.items() if b not in on_thread}
    raw_mine = {us: n for us, n in MINE}
    kind = map_kind_problem(shape, DIST)
    c = Checklist()
    if not got:
        raise Incorrect((f"{kind}; and " if kind else "") + f"the map 'dist' stayed empty though the process {pid} "
                        f"called usleep() {sum(n for _, n in MINE)} times: does your filter keep it, "
                        "lk_wanted(id >> 32) (the process id is the upper half of bpf_get_current_pid_tgid())?",
                        parts=[])
    c.part("dist is a BPF_HISTOGRAM (an array of u64 counters)", not kind, kind)
    counted_other = any(got.get(b, 0) >= n for b, n in theirs.items())
    # another process's calls all counted, and some of this process's missing: the filter keeps the others
    # (with it inverted, the whole machine's usleep() calls land in the map too: mine's buckets hold noise)
    inverted = counted_other and not all(got.get(b, 0) >= n for b, n in want.items())
    # the main thread's calls there and the second thread's not: the filter tests the thread id, which is
    # the process id only in the main thread (the other parts are judged on the main thread's calls)
    main_only = not inverted and all(b in got for b in on_main) and not any(b in got for b in on_thread)
    if main_only:
        want = on_main
    if inverted:
        why = (f"none of the process {pid}'s calls was counted, only another process's: the filter is "
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

    c.part("every thread of this process", not main_only,
           f"only the calls of the process's main thread were counted: its second thread's "
           f"{_calls(MINE_ON_A_THREAD)} (buckets {', '.join(map(str, sorted(on_thread)))}) are missing. The filter "
           "tests the thread id (the lower 32 bits of bpf_get_current_pid_tgid(), pid_tgid & 0xffffffff, or "
           "task->pid), which is the process id only in the main thread; the task asks for the process: "
           "lk_wanted(bpf_get_current_pid_tgid() >> 32)")

    c.part("only this process", not counted_other,
           "" if inverted else (f"another process's calls ({_calls(OTHERS)}: buckets "
                                f"{', '.join(map(str, sorted(theirs)))}) were counted: only the process "
                                "LK_FILTER_PID matters. Return early unless lk_wanted(id >> 32)"))
    return c.done(f"yes: the process {pid}'s {sum(n for _, n in MINE)} usleep() calls, its main thread's and "
                  f"a second thread's, are in their buckets "
                  f"({', '.join(f'{b}: {n}' for b, n in sorted(want.items()))}), another process's left out",
                  buckets=want, pid=pid)


# ---------------------------------------------------------------------- q2
_READARG = re.compile(r"bpf_usdt_readarg\s*\(\s*(\d+)")
_READARG_INTO = re.compile(r"bpf_usdt_readarg\s*\(\s*1\s*,\s*[^,()]+,\s*&\s*([A-Za-z_]\w*)\s*\)")
_C_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_TYPE_WORD = (r"(?:const|volatile|unsigned|signed|long|short|int|char|bool|_Bool|size_t|ssize_t|pid_t|"
              r"__[us](?:8|16|32|64)|[us](?:8|16|32|64)|u?int(?:8|16|32|64)_t)")
_DECLARATION = re.compile(rf"(?:^|(?<=[;{{}}(]))\s*(?P<type>(?:{_TYPE_WORD}\s+)+)(?P<rest>[^;{{}}]*)")
_BYTES = (({"u64", "s64", "__u64", "__s64", "uint64_t", "int64_t", "size_t", "ssize_t", "long"}, 8),
          ({"u16", "s16", "__u16", "__s16", "uint16_t", "int16_t", "short"}, 2),
          ({"u8", "s8", "__u8", "__s8", "uint8_t", "int8_t", "char", "bool", "_Bool"}, 1))


def _size_of(type_words: str) -> int:
    """The size of a C integer type as written (x86_64 and arm64: long is 8 bytes)."""
    words = set(type_words.split())
    return next((n for names, n in _BYTES if words & names), 4)


def _readarg_destination(source: str) -> tuple[str, str, int] | None:
    """(variable, its type as declared, its size) of the variable that ``bpf_usdt_readarg(1, ctx, &v)``
    writes in ``source``; None when that cannot be read from the text (a struct member, a pointer, ...).
    Used only to name the cause of what the kernel showed (nothing written), never to judge."""
    text = _C_COMMENT.sub(" ", source)
    call = _READARG_INTO.search(text)
    if call is None:
        return None
    var = call.group(1)
    found = None
    for m in _DECLARATION.finditer(text, 0, call.start()):
        for declarator in m.group("rest").split(","):
            d = re.match(r"\s*([A-Za-z_]\w*)\s*(=|$)", declarator)
            if d and d.group(1) == var:
                typ = " ".join(m.group("type").split())
                if "const" not in typ.split():
                    found = (var, typ, _size_of(typ))
    return found


def _arg_ctype(att) -> str:
    """The C type of gc__start's argument as the probe's note gives it (BCC's reading of the note)."""
    try:
        return att.program.usdt.get_probe_arg_ctype("gc__start", 0) or "int32_t"
    except Exception:   # an older BCC without the call: the note of Debian's python3.11 says -4@...
        return "int32_t"


#: q2's map as the task names it
COLLECTIONS = MapKind("collections", HASH, "a BPF_HASH called collections", "BPF_HASH(collections, u32, u64)")


def _observe_gc_generations(answer) -> dict:
    """Run the answer on gc__start while the checker's Python process collects: the map 'collections'
    (``got``: [key, count] pairs), what the kernel says it is (``map``), the process's pid, the variable the
    answer reads the argument into (``destination``, from its text) and the argument's type in the note."""
    # made once it says "ready": a USDT context reads the maps of the process as it is (before exec, they
    # are its parent's)
    with Helper(_COLLECTOR % (COLLECTS,), "the Python process whose collections are counted",
                python=PYTHON) as child:
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
            ctype = _arg_ctype(att)
            shape = map_shape(att.program, "collections")
            child.go()
            child.expect("done")
            got = _counts(att.program, "collections")
    return {"got": sorted(got.items()), "pid": child.pid, "destination": _readarg_destination(plain.source),
            "ctype": ctype, "map": asdict(shape)}


def _diagnose_gc_generations(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_gc_generations` saw."""
    destination = obs["destination"]
    return _judge_gc_generations(dict((k, n) for k, n in obs["got"]), obs["pid"],
                                 tuple(destination) if destination is not None else None, obs["ctype"],
                                 shape=MapShape(**obs["map"]))


def _judge_gc_generations(got: dict[int, int], pid: int, destination: tuple[str, str, int] | None,
                          ctype: str = "int32_t", *, shape: MapShape) -> tuple[str, dict]:
    """The verdict on the map 'collections' (key -> count; ``shape``: what the kernel says the map is)
    after the process ``pid`` made COLLECTS' collections. ``destination``: the variable the answer reads
    gc__start's argument into, as :func:`_readarg_destination` reads it; ``ctype``: that argument's type
    in the probe's note."""
    want = dict(COLLECTS)
    total = sum(want.values())
    arg_size = max(1, int(re.sub(r"\D", "", ctype) or 32) // 8)
    wrong_size = destination is not None and destination[2] != arg_size
    nothing_written = ""
    if wrong_size:
        var, typ, size = destination
        nothing_written = (
            f"bpf_usdt_readarg(1, ctx, &{var}) wrote nothing: {var} is a {typ} ({size} bytes) and gc__start's "
            f"argument is a {arg_size}-byte {ctype} in the probe's note, and BCC's bpf_usdt_readarg() returns -1 "
            f"and leaves the variable as it was unless sizeof({var}) is the argument's size. Read it into a "
            f"{arg_size}-byte variable (int or u32), then widen it if you like")
    c = Checklist()
    kind = map_kind_problem(shape, COLLECTIONS)
    c.part("collections is a BPF_HASH", not kind, kind)
    if not got:
        why = (f"the map 'collections' stayed empty though the process collected {total} times: "
               + (nothing_written or "does every gc__start count? A lookup() alone never creates an entry: "
                                     "increment(generation), or lookup_or_try_init() and then add"))
    elif len(got) == 1 and not set(want) <= set(got) and nothing_written:
        why = (f"every collection went under the key {next(iter(got))}, what {destination[0]} held before the "
               f"call: {nothing_written}")
    elif set(got) == {0}:
        why = ("every collection went under the key 0: the key must be the generation that "
               "bpf_usdt_readarg(1, ctx, &generation) writes — not what it returns (0 on success)"
               + ("" if destination is not None else
                  ", and it writes only into a variable of the argument's size: gc__start's generation is an int "
                  "(4 bytes: int or u32, not u64)"))
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
                  f"process {pid} counted under its generation", collections=want, pid=pid)


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
            Check(_observe_usleep_histogram, _diagnose_usleep_histogram),
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
            Check(_observe_gc_generations, _diagnose_gc_generations),
            "USDT arguments are read with bpf_usdt_readarg(n, ctx, &variable), counting from 1: gc__start has one, "
            "the generation. u32 generation = 0; bpf_usdt_readarg(1, ctx, &generation); "
            "collections.increment(generation);",
            _Q2_REFERENCE,
            lambda: _Q2_REFERENCE,
            "c",
        ),
    ])
