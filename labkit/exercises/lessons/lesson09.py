"""Lesson 09, The modern toolchain: CO-RE programs compiled by clang and loaded
by libbpf. q1 counts execs per parent process (``BPF_CORE_READ(task,
real_parent, tgid)``); q2 records each process's exit code from
``task->exit_code``, a field the tracepoint does not carry (found in the
kernel's BTF: ``vmlinux.h``). Both are judged on processes the checker starts,
whose parents, threads and ends it knows: a parent that forks from a second
thread, a child that another process traces (ptrace: its ->parent is the
tracer), a process whose main thread ends before the process does; every wait
on them is bounded (:class:`~labkit.exercises.helpers.Helper`). Both maps are
held to the kind the tasks name, a hash map (BPF_MAP_TYPE_HASH), as the kernel
reports it."""

from __future__ import annotations

import json
import re
import signal
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from labkit._errors import CompileError
from labkit.exercises.framework import Check, Checklist, Exercise, Incorrect, Lesson, is_reference, plural, snippet_text
from labkit.exercises.helpers import Helper
from labkit.exercises.maps import HASH, MapKind, MapShape, map_kind_problem, map_shape
from labkit.lab import Lab
from labkit.programs.core import CoreObject, resolve_core_source

__all__ = ["ENDINGS", "EXECS", "EXECS_MAP", "EXIT_CODES_MAP", "MAIN_FIRST_CODE", "ParentRun", "TRACED_EXECS",
           "build"]

#: q1: (successful execs, failed execs, spawned from a second thread) of each parent the checker starts
EXECS = ((3, 1, False), (5, 2, True))
#: q1: execs of each parent's children that another process traces meanwhile (ptrace): their task->parent
#: is that tracer, their task->real_parent the parent
TRACED_EXECS = (1, 0)

# A parent process: says "ready", waits for a line, runs /bin/true `ok` times and
# a missing program `bad` times (from a second thread if told: its children's
# real_parent is that thread, whose ->pid is not the process's id), and `traced`
# times forks a child that execs /bin/true while another child of its own traces
# it (PTRACE_SEIZE: no stops, but the traced child's ->parent is the tracer). It
# prints what it made as JSON and "done", then waits for its stdin to close.
_PARENT = """
import ctypes, json, os, subprocess, sys, threading
ok, bad, threaded, traced = %r
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
PTRACE_SEIZE, WALL = 0x4206, 0x40000000
print("ready", flush=True)
sys.stdin.readline()
kids, pairs = [], []
def work():
    for _ in range(ok):
        p = subprocess.Popen(["/bin/true"]); p.wait(); kids.append(p.pid)
    for _ in range(bad):
        try:
            subprocess.run(["/nonexistent/labkit-no-such-program"])
        except OSError:
            pass
def run_traced():
    go_r, go_w = os.pipe()
    told_r, told_w = os.pipe()
    kid = os.fork()
    if kid == 0:                                  # waits until it is traced, then execs
        try:
            os.read(go_r, 1)
            os.execv("/bin/true", ["/bin/true"])
        finally:
            os._exit(127)
    tracer = os.fork()
    if tracer == 0:                               # another child of this process traces the first
        try:
            seized = libc.ptrace(ctypes.c_long(PTRACE_SEIZE), ctypes.c_long(kid), None, None) == 0
            os.write(told_w, b"y" if seized else b"n")
            if seized:
                os.waitpid(kid, WALL)             # a tracee's end is told to its tracer first
        finally:
            os._exit(0)
    seized = os.read(told_r, 1) == b"y"
    os.write(go_w, b"g")
    os.waitpid(tracer, 0)
    os.waitpid(kid, 0)
    for fd in (go_r, go_w, told_r, told_w):
        os.close(fd)
    kids.append(kid)
    if seized:
        pairs.append([kid, tracer])
if threaded:
    t = threading.Thread(target=work); t.start(); t.join()
else:
    work()
for _ in range(traced):
    run_traced()
print(json.dumps({"kids": kids, "traced": pairs}), flush=True)
print("done", flush=True)
sys.stdin.read()
"""

# q2's processes: each says "ready", waits for a line, then ends as told.
_ENDER = """
import ctypes, os, platform, sys, threading, time
how = %r
print("ready", flush=True)
sys.stdin.readline()
if how in ("exit3", "main_first"):   # a thread that ended before the process (its own exit code: 0)
    t = threading.Thread(target=lambda: None); t.start(); t.join()
if how == "exit3":
    sys.exit(3)
if how == "exit0":
    sys.exit(0)
if how == "threads42":           # another thread is alive: the group exit ends it too
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    time.sleep(0.05)
    os._exit(42)
if how == "main_first":          # the main thread ends first, alone (exit(7), not exit_group); the process goes on
    me = os.getpid()
    def rest():
        for _ in range(1000):    # until the main thread is gone (a zombie leader)
            with open(f"/proc/{me}/task/{me}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    break
            time.sleep(0.005)
        print(threading.get_native_id(), flush=True)
        os._exit(11)             # the process ends here: exit_group(11) from its last thread
    threading.Thread(target=rest).start()
    ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}[platform.machine()], 7)   # SYS_exit: this thread only
time.sleep(60)                   # "term": wait for SIGTERM
"""
#: q2: how each process ends, and task->exit_code then (status << 8 | signal)
ENDINGS = {"exit3": 3 << 8, "exit0": 0, "threads42": 42 << 8, "term": signal.SIGTERM.value, "main_first": 11 << 8}
#: q2: the exit code of the main thread of the "main_first" process, which ends before the process does
MAIN_FIRST_CODE = 7 << 8
_ENDS = {"exit3": "sys.exit(3)", "exit0": "sys.exit(0)", "threads42": "os._exit(42) with a second thread alive",
         "term": "killed by SIGTERM",
         "main_first": "os._exit(11) from a second thread, after its main thread ended alone with exit(7)"}


#: the maps as the tasks name them: "a hash map"
EXECS_MAP = MapKind("execs", HASH, "a hash map execs", "__uint(type, BPF_MAP_TYPE_HASH) in execs", core=True)
EXIT_CODES_MAP = MapKind("exit_codes", HASH, "a hash map exit_codes",
                         "__uint(type, BPF_MAP_TYPE_HASH) in exit_codes", core=True)


def _core_text(answer) -> str:
    """The CO-RE C of an answer: a ``%%bpf --core`` object, C text or a snippet name."""
    if isinstance(answer, CoreObject):
        text = answer.source
        if is_reference(text):   # (a name or text given as an answer is refused by Exercise.check)
            raise Incorrect("that is the reference solution, not your answer: write your own (ex.qN.hint() helps)")
    elif isinstance(answer, str):
        text = resolve_core_source(answer)[1]
    else:
        raise Incorrect(f"the answer must be CO-RE C: a %%bpf --core object, the C text or a snippet name — "
                        f"not a {type(answer).__name__}")
    return text


_BCC_MACROS = re.compile(r"\b(BPF_(HASH|ARRAY|PERCPU_\w+|HISTOGRAM|RINGBUF_OUTPUT)|TRACEPOINT_PROBE)\(")


def _load(lab: Lab, answer, name: str, table: str, value: tuple[int, ...] = (4, 8)) -> CoreObject:
    """The answer's object, loaded and attached, with the map ``table``: a u32 key, a value of a size in
    ``value`` (the task's words)."""
    text = _core_text(answer)
    try:
        obj = lab.load_object(text, name=name)
    except CompileError as e:
        if _BCC_MACROS.search(text):
            raise Incorrect("that is BCC C (BPF_HASH, TRACEPOINT_PROBE, ... exist only in BCC): CO-RE C includes "
                            "\"vmlinux.h\" and <bpf/bpf_helpers.h>, declares maps as struct { __uint(type, ...); ... } "
                            f"NAME SEC(\".maps\") and functions under SEC(\"tracepoint/...\")\n{e.diagnostics}") from None
        raise
    if table not in obj.maps:
        raise Incorrect(f"the program has no map called {table!r} (its maps: {', '.join(obj.maps) or 'none'}): "
                        f"the checker reads that map")
    if not obj.attached_programs():
        raise Incorrect("no program of the object is attached: give it a SEC(\"tracepoint/...\")")
    m = obj.maps[table]
    if m.key_size != 4:
        raise Incorrect(f"{table}'s key is {m.key_size} bytes: the task asks for a process id (u32) as the key")
    if m.value_size not in value:
        raise Incorrect(f"{table}'s value is {m.value_size} bytes: " + (
            "make it a u32 or u64 number" if value == (4, 8) else
            f"the task asks for a u32 (4 bytes), as the kernel keeps the field (int exit_code): __type(value, u32)"))
    return obj


def _table(obj: CoreObject, table: str) -> dict[int, int]:
    df = obj.map_dataframe(table)
    return {int(k): int(v) for k, v in zip(df["key"], df["value"])}


# ---------------------------------------------------------------------- q1
@dataclass(frozen=True)
class ParentRun:
    """One of q1's parents as it ran: its pid, what it was told (ok, bad, threaded: EXECS; traced:
    TRACED_EXECS), the children that exec'ed (``kids``) and the (child, tracer) pairs of those traced."""

    pid: int
    ok: int
    bad: int
    threaded: bool
    kids: tuple = ()
    traced: tuple = ()

    @property
    def execs(self) -> int:
        return len(self.kids)


def _observe_execs_by_parent(answer) -> dict:
    """Run the answer while the checker's parents run programs: the parents as they ran (``runs``), the
    map ``execs`` (``counts``: [key, count] pairs) and what the kernel says it is (``map``)."""
    with Lab() as lab:
        obj = _load(lab, answer, "ex09_q1", "execs")
        shape = map_shape(obj, "execs")
        runs: list[ParentRun] = []
        with ExitStack() as helpers:
            parents = [helpers.enter_context(Helper(_PARENT % ((*spec, n),), f"parent {i + 1}, which runs programs"))
                       for i, (spec, n) in enumerate(zip(EXECS, TRACED_EXECS))]
            for p in parents:
                p.go()
            for p, (ok, bad, threaded) in zip(parents, EXECS):
                line = p.readline()
                if not line.startswith("{"):
                    raise p.failed(f"printed {line[:200]!r} where the checker waited for what it ran (JSON)")
                p.expect("done")
                made = json.loads(line)
                runs.append(ParentRun(p.pid, ok, bad, threaded, tuple(made["kids"]),
                                      tuple(tuple(t) for t in made["traced"])))
            counts = _table(obj, "execs")
    return {"runs": [asdict(r) for r in runs], "counts": sorted(counts.items()), "map": asdict(shape)}


def _diagnose_execs_by_parent(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_execs_by_parent` saw."""
    runs = [ParentRun(r["pid"], r["ok"], r["bad"], r["threaded"], tuple(r["kids"]), tuple(map(tuple, r["traced"])))
            for r in obs["runs"]]
    return _judge_execs_by_parent(runs, dict((k, n) for k, n in obs["counts"]), MapShape(**obs["map"]))


def _judge_execs_by_parent(runs: list[ParentRun], counts: dict[int, int], shape: MapShape) -> tuple[str, dict]:
    """The verdict on q1 from the parents as they ran and the map ``execs`` (key -> count; ``shape``: what
    the kernel says the map is)."""
    ck = Checklist()
    kind = map_kind_problem(shape, EXECS_MAP)
    ck.part("execs is a hash map", not kind, kind)
    want = {r.pid: r.execs for r in runs}
    got = {pid: counts.get(pid, 0) for pid in want}
    own = sum(1 for r in runs for k in r.kids if k in counts)
    failed = {r.pid: r.execs + r.bad for r in runs}
    if own:
        why = ("counted under the exec'ing processes' own pids: the key must be their parent's "
               "(BPF_CORE_READ(task, real_parent, tgid))")
    elif got == failed:
        why = ("counted exec attempts that failed too: count on sched:sched_process_exec, which fires only when "
               "an exec succeeds")
    elif not any(got.values()) and counts:
        why = (f"nothing under the parents' pids {', '.join(map(str, want))} (keys seen: "
               f"{', '.join(map(str, sorted(counts)[:6]))}{' ...' if len(counts) > 6 else ''}): the key must be "
               "the parent's process id, task->real_parent->tgid (a parent's thread id is ->pid)")
    else:
        why = "; ".join(f"parent {pid} ran {plural(n, 'program')} and {got[pid]} were counted"
                        for pid, n in want.items() if got[pid] != n)
    ck.part("counts one exec per program each parent started, under the parent's process id", got == want, why)
    thr = next(r for r in runs if r.threaded)
    others_ok = all(got[pid] == n for pid, n in want.items() if pid != thr.pid)
    ck.part("a parent that forks from a second thread is still counted under its process id",
            got[thr.pid] == want[thr.pid],
            f"parent {thr.pid} started its programs from a second thread and {got[thr.pid]} were counted under its "
            "pid: key by real_parent->tgid (the process), not ->pid (the thread)" if others_ok else
            f"(parent {thr.pid}, forking from a second thread: {got[thr.pid]} counted of {want[thr.pid]})")
    traced = [r for r in runs if r.traced]
    if traced:   # (none when this machine refused the tracer: nothing to judge)
        r = traced[0]
        tracers = [t for _k, t in r.traced]
        under_tracers = sum(counts.get(t, 0) for t in tracers)
        if got[r.pid] == want[r.pid]:
            why = ""
        elif under_tracers == len(tracers) and got[r.pid] == want[r.pid] - len(tracers):
            why = (f"the child of parent {r.pid} that another process (pid {', '.join(map(str, tracers))}) traced "
                   "with ptrace was counted under that tracer: task->parent is whoever traces a process (a debugger, "
                   "strace), task->real_parent the process that forked it: BPF_CORE_READ(task, real_parent, tgid)")
        else:
            why = (f"(parent {r.pid}, one of whose children was traced with ptrace: {got[r.pid]} counted of "
                   f"{want[r.pid]})")
        ck.part("a child being traced (ptrace) is still counted under the parent that forked it", not why, why)
    return ck.done(f"{', '.join(f'{n} execs under parent {pid}' for pid, n in want.items())} (from a second "
                   "thread, and by a child being traced, too), failed execs not counted", counts=got)


# ---------------------------------------------------------------------- q2
def _observe_exit_codes(answer) -> dict:
    """Run the answer while the checker's processes end each way of ENDINGS: the map ``exit_codes``
    (``codes``: [key, code] pairs), what the kernel says it is (``map``), the pid of each process, and the
    thread that ended the "main_first" one."""
    with Lab() as lab:
        obj = _load(lab, answer, "ex09_q2", "exit_codes", value=(4,))
        shape = map_shape(obj, "exit_codes")
        told: dict[str, str] = {}
        with ExitStack() as helpers:
            kids = {how: helpers.enter_context(Helper(_ENDER % (how,), f"a process that ends with {_ENDS[how]}"))
                    for how in ENDINGS}
            for how, c in kids.items():
                if how == "term":
                    c.send_signal(signal.SIGTERM)
                else:
                    c.go()
            for how, c in kids.items():
                c.wait()
                told[how] = c.rest()
            codes = _table(obj, "exit_codes")
    last = told.get("main_first", "").split()
    return {"codes": sorted(codes.items()), "pids": {how: c.pid for how, c in kids.items()},
            "last_thread": int(last[-1]) if last else 0, "map": asdict(shape)}


def _diagnose_exit_codes(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_exit_codes` saw."""
    return _judge_exit_codes(dict((k, c) for k, c in obs["codes"]), obs["pids"], obs["last_thread"],
                             shape=MapShape(**obs["map"]))


def _judge_exit_codes(codes: dict[int, int], pids: dict[str, int], last_thread: int = 0, *,
                      shape: MapShape) -> tuple[str, dict]:
    """The verdict on q2 from the map ``exit_codes`` (key -> code; ``shape``: what the kernel says the map
    is), the pid of the process that ended each way of ENDINGS, and the thread id of the last thread of the
    "main_first" one."""
    ck = Checklist()
    kind = map_kind_problem(shape, EXIT_CODES_MAP)
    ck.part("exit_codes is a hash map", not kind, kind)
    # the code read right where each thread ends with the process's code: a 0 elsewhere is a thread's own
    reads_exit_code = any(codes.get(pids[h]) == ENDINGS[h] for h in ("threads42", "term"))
    for how, want in ENDINGS.items():
        pid = pids[how]
        got = codes.get(pid)
        what = _ENDS[how]
        if got is None:
            why = (f"process {pid} ({what}) has no entry" + (
                ": a process killed by a signal never calls exit(); record at sched:sched_process_exit, which "
                "every ending passes" if how == "term" else ": key by the process id (tgid)"))
        elif want and not want & 0xFF and got == want >> 8:
            why = (f"process {pid} ({what}): {got} is the status passed to exit(), not task->exit_code "
                   f"({want} = {want >> 8} << 8)")
        elif how == "main_first" and got == MAIN_FIRST_CODE and codes.get(last_thread) == want:
            why = (f"process {pid} ({what}): under its pid you recorded {got}, the exit code of its main thread alone "
                   f"(thread {pid}), and the process's {want} went under the thread id {last_thread} of the thread that "
                   "ended it: you keyed on the thread id (the lower 32 bits of bpf_get_current_pid_tgid(), "
                   "task->pid); the task asks per process: bpf_get_current_pid_tgid() >> 32, or task->tgid")
        elif how == "main_first" and got == MAIN_FIRST_CODE:
            why = (f"process {pid} ({what}): recorded {got}, the exit code of its main thread, which ended first; "
                   f"the process ended later, with its last thread ({want}). Record every thread's end under the "
                   "process id and let the last one stay (bpf_map_update_elem(..., BPF_ANY)), whichever thread "
                   "it is")
        elif got == 0 and want and how in ("exit3", "main_first") and reads_exit_code:
            why = (f"process {pid} ({what}): recorded 0, the exit code of a thread that ended before the process "
                   f"(a finished threading.Thread); task->exit_code of the process's end is {want}. Every thread "
                   "passes sched_process_exit: let the last one's code stay (BPF_ANY, not BPF_NOEXIST)")
        else:
            why = f"process {pid} ({what}): recorded {got}, task->exit_code is {want}"
        ck.part(f"records task->exit_code of a process that ends with {what}", got == want, why)
    return ck.done("exit codes: " + ", ".join(f"{pids[h]} -> {c}" for h, c in ENDINGS.items()),
                   codes={pids[h]: codes.get(pids[h]) for h in ENDINGS})


def build() -> Lesson:
    return Lesson("09", "The modern toolchain", [
        Exercise(
            id="q1",
            task="write a CO-RE program (%%bpf --core my_execs) with a hash map `execs`, key the parent's process "
                 "id (u32), value a count: +1 for every successful exec, under the exec'ing process's parent "
                 "(BPF_CORE_READ(task, real_parent, tgid))",
            checker=Check(_observe_execs_by_parent, _diagnose_execs_by_parent),
            hint_text="SEC(\"tracepoint/sched/sched_process_exec\") fires once per successful exec, in the process "
                      "that exec'ed. bpf_get_current_task() gives its task_struct (cast it); "
                      "BPF_CORE_READ(task, real_parent, tgid) is its parent's process id (->pid would be the parent's "
                      "thread id). Count with bpf_map_lookup_elem + __sync_fetch_and_add, and "
                      "bpf_map_update_elem(..., BPF_NOEXIST) for the first exec of a parent.",
            solution_text=lambda: snippet_text("solution_09_execs_by_parent.bpf"),
            solution_answer=lambda: "solution_09_execs_by_parent",
            solution_language="c",
        ),
        Exercise(
            id="q2",
            task="write a CO-RE program (%%bpf --core my_exits) with a hash map `exit_codes`: key a process id "
                 "(u32), value its task->exit_code (u32) when the process ends — whether it called exit() or a "
                 "signal killed it",
            checker=Check(_observe_exit_codes, _diagnose_exit_codes),
            hint_text="Find the field in the kernel's BTF: grep -n 'exit_code' in the vmlinux.h this lesson dumped "
                      "(struct task_struct). SEC(\"tracepoint/sched/sched_process_exit\") runs in the ending task, "
                      "after do_exit() stored the code; its own fields do not have it. Read it with "
                      "BPF_CORE_READ(task, exit_code), key by the process id (bpf_get_current_pid_tgid() >> 32).",
            solution_text=lambda: snippet_text("solution_09_exit_codes.bpf"),
            solution_answer=lambda: "solution_09_exit_codes",
            solution_language="c",
        ),
    ])
