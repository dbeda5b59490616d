"""Lesson 09, The modern toolchain: CO-RE programs compiled by clang and loaded
by libbpf. q1 counts execs per parent process (``BPF_CORE_READ(task,
real_parent, tgid)``); q2 records each process's exit code from
``task->exit_code``, a field the tracepoint does not carry (found in the
kernel's BTF: ``vmlinux.h``). Both are judged on processes the checker starts,
whose parents, threads and ends it knows."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from labkit._errors import CompileError
from labkit.exercises.framework import Checklist, Exercise, Incorrect, Lesson, is_reference, plural, snippet_text
from labkit.lab import Lab
from labkit.programs.core import CoreObject, resolve_core_source

__all__ = ["EXECS", "build"]

#: q1: (successful execs, failed execs, spawned from a second thread) of each parent the checker starts
EXECS = ((3, 1, False), (5, 2, True))

# A parent process: says "ready", waits for a line, runs /bin/true `ok` times and
# a missing program `bad` times (from a second thread if told: its children's
# real_parent is that thread, whose ->pid is not the process's id), prints its
# children's pids and "done", then waits for its stdin to close.
_PARENT = """
import subprocess, sys, threading
ok, bad, threaded = %r
print("ready", flush=True)
sys.stdin.readline()
kids = []
def work():
    for _ in range(ok):
        p = subprocess.Popen(["/bin/true"]); p.wait(); kids.append(p.pid)
    for _ in range(bad):
        try:
            subprocess.run(["/nonexistent/labkit-no-such-program"])
        except OSError:
            pass
if threaded:
    t = threading.Thread(target=work); t.start(); t.join()
else:
    work()
print(" ".join(map(str, kids)), flush=True)
print("done", flush=True)
sys.stdin.read()
"""

# q2's processes: each says "ready", waits for a line, then ends as told.
_ENDER = """
import os, sys, threading, time
how = %r
print("ready", flush=True)
sys.stdin.readline()
if how == "exit3":
    sys.exit(3)
if how == "exit0":
    sys.exit(0)
if how == "threads42":           # another thread is alive: the group exit ends it too
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    time.sleep(0.05)
    os._exit(42)
time.sleep(60)                   # "term": wait for SIGTERM
"""
#: q2: how each process ends, and task->exit_code then (status << 8 | signal)
ENDINGS = {"exit3": 3 << 8, "exit0": 0, "threads42": 42 << 8, "term": signal.SIGTERM.value}


class _Child:
    def __init__(self, code: str):
        self.p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the checker's process {self.pid} failed: {self.p.stderr.read()[-500:]}")

    def go(self) -> None:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def close(self) -> None:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


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


def _load(lab: Lab, answer, name: str, table: str) -> CoreObject:
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
    if m.value_size not in (4, 8):
        raise Incorrect(f"{table}'s value is {m.value_size} bytes: make it a u32 or u64 number")
    return obj


def _table(obj: CoreObject, table: str) -> dict[int, int]:
    df = obj.map_dataframe(table)
    return {int(k): int(v) for k, v in zip(df["key"], df["value"])}


# ---------------------------------------------------------------------- q1
def _check_execs_by_parent(answer) -> tuple[str, dict]:
    with Lab() as lab:
        obj = _load(lab, answer, "ex09_q1", "execs")
        parents = [_Child(_PARENT % (spec,)) for spec in EXECS]
        kids: list[list[int]] = []
        try:
            for p in parents:
                p.go()
            for p in parents:
                kids.append([int(x) for x in p.p.stdout.readline().split()])
                if p.p.stdout.readline().strip() != "done":
                    raise RuntimeError(f"the checker's process {p.pid} failed: {p.p.stderr.read()[-500:]}")
            counts = _table(obj, "execs")
        finally:
            for p in parents:
                p.close()
    ck = Checklist()
    want = {p.pid: ok for p, (ok, _bad, _thr) in zip(parents, EXECS)}
    got = {pid: counts.get(pid, 0) for pid in want}
    own = sum(1 for ks in kids for k in ks if k in counts)
    failed = {p.pid: ok + bad for p, (ok, bad, _t) in zip(parents, EXECS)}
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
    thr_pid = next(p.pid for p, spec in zip(parents, EXECS) if spec[2])
    main_ok = all(got[pid] == n for pid, n in want.items() if pid != thr_pid)
    ck.part("a parent that forks from a second thread is still counted under its process id",
            got[thr_pid] == want[thr_pid],
            f"parent {thr_pid} started its programs from a second thread and {got[thr_pid]} were counted under its "
            "pid: key by real_parent->tgid (the process), not ->pid (the thread)" if main_ok else
            f"(parent {thr_pid}, forking from a second thread: {got[thr_pid]} counted of {want[thr_pid]})")
    return ck.done(f"{', '.join(f'{n} execs under parent {pid}' for pid, n in want.items())}, "
                   "failed execs not counted", counts=got)


# ---------------------------------------------------------------------- q2
def _check_exit_codes(answer) -> tuple[str, dict]:
    with Lab() as lab:
        obj = _load(lab, answer, "ex09_q2", "exit_codes")
        kids = {how: _Child(_ENDER % (how,)) for how in ENDINGS}
        try:
            for how, c in kids.items():
                if how == "term":
                    c.p.send_signal(signal.SIGTERM)
                else:
                    c.go()
            for c in kids.values():
                c.p.wait(timeout=20)
            codes = _table(obj, "exit_codes")
        finally:
            for c in kids.values():
                c.close()
    ck = Checklist()
    for how, want in ENDINGS.items():
        pid = kids[how].pid
        got = codes.get(pid)
        what = {"exit3": "sys.exit(3)", "exit0": "sys.exit(0)", "threads42": "os._exit(42) with a second thread alive",
                "term": "killed by SIGTERM"}[how]
        if got is None:
            why = (f"process {pid} ({what}) has no entry" + (
                ": a process killed by a signal never calls exit(); record at sched:sched_process_exit, which "
                "every ending passes" if how == "term" else ": key by the process id (tgid)"))
        elif want and not want & 0xFF and got == want >> 8:
            why = (f"process {pid} ({what}): {got} is the status passed to exit(), not task->exit_code "
                   f"({want} = {want >> 8} << 8)")
        else:
            why = f"process {pid} ({what}): recorded {got}, task->exit_code is {want}"
        ck.part(f"records task->exit_code of a process that ends with {what}", got == want, why)
    return ck.done("exit codes: " + ", ".join(f"{kids[h].pid} -> {c}" for h, c in ENDINGS.items()),
                   codes={kids[h].pid: codes.get(kids[h].pid) for h in ENDINGS})


def build() -> Lesson:
    return Lesson("09", "The modern toolchain", [
        Exercise(
            id="q1",
            task="write a CO-RE program (%%bpf --core my_execs) with a hash map `execs`, key the parent's process "
                 "id (u32), value a count: +1 for every successful exec, under the exec'ing process's parent "
                 "(BPF_CORE_READ(task, real_parent, tgid))",
            checker=_check_execs_by_parent,
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
            checker=_check_exit_codes,
            hint_text="Find the field in the kernel's BTF: grep -n 'exit_code' in the vmlinux.h this lesson dumped "
                      "(struct task_struct). SEC(\"tracepoint/sched/sched_process_exit\") runs in the ending task, "
                      "after do_exit() stored the code; its own fields do not have it. Read it with "
                      "BPF_CORE_READ(task, exit_code), key by the process id (bpf_get_current_pid_tgid() >> 32).",
            solution_text=lambda: snippet_text("solution_09_exit_codes.bpf"),
            solution_answer=lambda: "solution_09_exit_codes",
            solution_language="c",
        ),
    ])
