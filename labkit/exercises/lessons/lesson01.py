"""Lesson 01, Hello clone: a filter that keeps this process's threads (q1), and a
program that counts only thread creations per comm (q2)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading

import pandas as pd

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
    run_python,
    snippet_text,
    value_column,
)
from labkit.exercises.helpers import HelperFailed
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["OTHER_TIMEOUT_S", "build"]

_TRUE = "/bin/true" if os.path.exists("/bin/true") else (shutil.which("true") or "true")


# ------------------------------------------------------------------ q1
# another process, with this process's comm (so a filter on comm is caught),
# that creates a thread and a process of its own
_OTHER = r"""
import ctypes, os, sys, threading
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)     # PR_SET_NAME
t = threading.Thread(target=lambda: None); t.start(); t.join()
p = os.fork()
if p == 0:
    os._exit(0)
os.waitpid(p, 0)
"""
#: how long that process may take (seconds): then it is killed, and the check says so
OTHER_TIMEOUT_S = 30.0


def _apply_filter(answer, df, me: int):
    if isinstance(answer, str):
        out = df.query(answer, local_dict={"me": me})   # @me: this process's pid
    elif callable(answer):
        out = answer(df.copy())
    else:
        raise Incorrect("the answer must be a function taking the DataFrame (e.g. lambda df: df[...]) "
                        "or a pandas query string (in which @me is this process's pid)")
    if isinstance(out, pd.Series) and out.dtype == bool:
        out = df[out.reindex(df.index, fill_value=False)]
    if not isinstance(out, pd.DataFrame):
        raise Incorrect(f"your filter returned a {type(out).__name__}, not a DataFrame")
    if not {"child_pid", "pid"} <= set(out.columns):
        raise Incorrect("keep the columns (at least pid and child_pid): filter rows, do not select columns")
    return out


def _thread_comm() -> str:
    try:
        with open("/proc/thread-self/comm") as f:
            return f.read().strip() or "python3"
    except OSError:
        return "python3"


def _make_creations(me: int) -> dict:
    """Create, in this process, a thread, a thread made by that thread, a fork,
    a vfork (subprocess) and a posix_spawn; and start another process (same
    comm) that creates a thread and a fork. Returns what was made."""
    nested: list[int] = []

    def parent_thread() -> None:
        inner = threading.Thread(target=lambda: None)
        inner.start()
        inner.join()
        nested.append(inner.native_id)

    t = threading.Thread(target=parent_thread)
    t.start()
    t.join()
    fork = os.fork()
    if fork == 0:
        os._exit(0)
    os.waitpid(fork, 0)
    vfork = subprocess.Popen([_TRUE])
    vfork.wait()
    spawn = os.posix_spawn(_TRUE, [_TRUE], os.environ)
    os.waitpid(spawn, 0)
    other = subprocess.Popen([sys.executable, "-c", _OTHER, _thread_comm()], stdin=subprocess.DEVNULL)
    try:
        status = other.wait(timeout=OTHER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        other.kill()                         # never left running
        other.wait()
        raise HelperFailed(f"the checker's helper process {other.pid} (another process with this one's comm, "
                           f"which makes a thread and a fork) did not end within {OTHER_TIMEOUT_S:g} s, and the "
                           "checker killed it. Run the check again, and if it fails the same way, show this message "
                           "to your instructor") from None
    if status != 0:
        raise LabkitError("the checker's other process failed; run the check again")
    return {"threads": {t.native_id, *nested}, "by_thread": set(nested), "processes": {fork, vfork.pid, spawn},
            "other": other.pid, "me": me}


_ROW = ["pid", "tid", "child_pid", "kind", "comm"]   # the columns of a creation the diagnosis reads


def _rows(df: pd.DataFrame) -> dict:
    """A table of creations as plain data: the columns the diagnosis reads (those it has), row by row."""
    cols = [c_ for c_ in _ROW if c_ in df.columns]
    return {"columns": cols, "rows": [[v.item() if hasattr(v, "item") else v for v in row]
                                      for row in df[cols].itertuples(index=False)]}


def _table(t: dict) -> pd.DataFrame:
    return pd.DataFrame.from_records(t["rows"], columns=t["columns"])


def _observe_thread_filter(answer) -> dict:
    """Trace every creation on the machine while this process and another make threads and processes,
    and apply the answer's filter: this process's threads (``threads``, as traced), what the filter kept
    (``kept``), how many creations there were, and who made what."""
    me = os.getpid()
    with Lab() as lab:
        s = lab.trace_clone(name="exercise 01 q1")           # every process on the machine
        made = _make_creations(me)

        def ready(df):
            mine = set(df.child_pid[df.pid == me])
            theirs = set(df.kind[df.pid == made["other"]])
            return (made["threads"] | made["processes"] | {made["other"]}) <= mine and {"thread", "fork"} <= theirs
        if not s.wait(ready, timeout=10):
            raise LabkitError("the checker's own events did not all arrive within 10 s; run it again")
        df = s.to_dataframe()
    got_df = _apply_filter(answer, df, me)
    return {"me": me, "other": made["other"], "by_thread": sorted(made["by_thread"]), "creations": len(df),
            "threads": _rows(df[(df.pid == me) & (df.kind == "thread")]), "kept": _rows(got_df)}


def _diagnose_thread_filter(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_thread_filter` saw."""
    me = obs["me"]
    got_df = _table(obs["kept"])
    got = set(got_df.child_pid)
    expected = _table(obs["threads"])
    c = Checklist()
    missed = expected[(expected.tid == me) & ~expected.child_pid.isin(got)]
    c.part("keeps the threads this process created", missed.empty,
           f"it dropped {plural(len(missed), 'thread')} this process created"
           + (f" (e.g. {missed.child_pid.iloc[0]})" if len(missed) else ""))
    missed = expected[(expected.tid != me) & ~expected.child_pid.isin(got)]
    c.part("keeps the threads created by this process's other threads", missed.empty,
           f"it dropped {plural(len(missed), 'thread')} that another thread of this process created"
           + (f" (e.g. thread {missed.child_pid.iloc[0]}, made by thread {missed.tid.iloc[0]})" if len(missed) else "")
           + ": the pid column is the creating process, tid the creating thread — compare pid, not tid")
    procs = got_df[(got_df.pid == me) & (got_df.kind != "thread")]
    c.part("drops the processes this process created (fork, vfork)", procs.empty,
           f"it kept {plural(len(procs), 'process', 'processes')} this process created"
           + (f" (kind {', '.join(sorted(set(procs.kind)))}, e.g. child {procs.child_pid.iloc[0]})" if len(procs) else "")
           + ": keep only kind == 'thread'")
    others = got_df[got_df.pid != me]
    others = others.iloc[(others.pid != obs["other"]).argsort(kind="stable")]   # the checker's own first
    example = ""
    if len(others):
        o = others.iloc[0]
        example = (f" (e.g. a {o.kind} by pid {o.pid}, comm {o.comm!r}"
                   + (", the same comm as this process" if o.pid == obs["other"] else "") + ")")
    c.part("drops what other processes created", others.empty,
           f"it kept {plural(len(others), 'creation')} by other processes{example}: keep only pid == os.getpid()")
    return c.done(f"yes: out of {obs['creations']} creations on the whole machine your filter kept exactly the "
                  f"{len(expected)} threads of this process (among them {min(obs['by_thread'])}, made by one "
                  "of its threads)", kept=len(expected), expected=sorted(set(expected.child_pid)), got=sorted(got))


# ------------------------------------------------------------------ q2
# The test process: its own comm, and every kind of creation, made one at a
# time (so even a plain += counts exactly). The counts are powers of two, so
# the total tells which kinds an answer counted.
_N = {
    "vm": 1,       # clone(CLONE_VM): a process that shares memory, no CLONE_THREAD
    "near": 2,     # clone with CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_SYSVSEM|... but no CLONE_THREAD
    "vfork": 4,    # subprocess (vfork) and posix_spawn (clone CLONE_VM|CLONE_VFORK)
    "fork": 8,     # os.fork(): neither CLONE_VM nor CLONE_THREAD
    "thread": 16,  # threading.Thread (clone3 with CLONE_THREAD) made by the main thread
    "nested": 32,  # threads made by another thread (the first of those 16)
}
_THREADS = _N["thread"] + _N["nested"]
_ALL = sum(_N.values())

_EX01_CHILD = r"""
import ctypes, os, platform, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(15, COMM, 0, 0, 0)                         # PR_SET_NAME: this comm
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = 0x40000, 0x80000, 0x100000, 0x200000
SIGCHLD = 17
# glibc's clone(fn, stack, flags, arg, ptid, tls, ctid): the child runs fn = _exit on its own stack
libc.clone.restype = ctypes.c_int
libc.clone.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int] + [ctypes.c_void_p] * 4
exit_fn = ctypes.cast(libc._exit, ctypes.c_void_p).value
stack = ctypes.create_string_buffer(64 * 1024)
top = (ctypes.addressof(stack) + len(stack) - 256) & ~0xF
tid = ctypes.c_int(0)
def vm_clone(flags, tls=None):
    pid = libc.clone(exit_fn, top, flags | SIGCHLD, None, ctypes.byref(tid), tls, ctypes.byref(tid))
    if pid < 0:
        raise OSError(ctypes.get_errno(), "clone")
    os.waitpid(pid, 0)
tls = None
if platform.machine() == "x86_64":                     # CLONE_SETTLS too: this thread's own TLS base
    base = ctypes.c_ulong(0)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(158, 0x1003, ctypes.byref(base)) == 0 and base.value:   # arch_prctl(ARCH_GET_FS)
        tls = base.value
for _ in range(N_VM):
    vm_clone(CLONE_VM)
near = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID
for _ in range(N_NEAR):
    vm_clone(near | (CLONE_SETTLS if tls else 0), tls)
for _ in range(N_VFORK // 2):
    subprocess.run([TRUE], check=True)                 # _posixsubprocess: vfork
    os.waitpid(os.posix_spawn(TRUE, [TRUE], os.environ), 0)   # glibc: clone(CLONE_VM|CLONE_VFORK)
for _ in range(N_FORK):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
def nested():                                         # threads made by a thread, not the main one
    for _ in range(N_NESTED):
        t = threading.Thread(target=lambda: None); t.start(); t.join()
for i in range(N_THREAD):
    t = threading.Thread(target=nested if i == 0 else (lambda: None)); t.start(); t.join()
print(os.getpid())
"""


def _child_code(comm: str) -> str:
    code = _EX01_CHILD.replace("COMM", repr(comm.encode())).replace("TRUE", repr(_TRUE))
    for k, n in _N.items():
        code = code.replace(f"N_{k.upper()}", str(n))
    return code


def _kinds_in(n: int) -> set[str]:
    return {k for k, m in _N.items() if n & m}


def _observe_threads_by_comm(answer) -> dict:
    """Run the answer while a test process of its own comm makes every kind of creation: the map's
    entries (``entries``: each one's text and integer key fields and its count), the test process's comm
    and pid, and the hooks the answer ran on."""
    comm = "lkq-ex01-" + secrets.token_hex(2)
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer")
        need_map(prog, "counts")
        hooks = attach_answer(lab, prog, "task:task_newtask", "exercise 01 q2")
        r = run_python(_child_code(comm), timeout=60,
                       what=f"the test process {comm}, which makes threads and processes")
        if r.returncode != 0:
            raise LabkitError(f"the checker's test process failed: {r.stderr.strip()[-300:]}")
        child = int(r.stdout.split()[-1])
        # task_newtask runs in the creating task before clone() returns: every count is in by now
        df = map_dataframe(prog, "counts")
    entries = []
    if not df.empty:
        value = value_column(df)
        texts = [c_ for c_ in df.columns if c_ != value and not pd.api.types.is_numeric_dtype(df[c_])]
        ints = [c_ for c_ in df.columns if c_ != value and pd.api.types.is_integer_dtype(df[c_])]
        entries = [{"texts": [str(x) for x in row[texts]], "ints": [int(x) for x in row[ints]],
                    "value": int(row[value])} for _i, row in df.iterrows()]
    return {"comm": comm, "child": child, "hooks": hooks, "entries": entries}


def _diagnose_threads_by_comm(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_threads_by_comm` saw."""
    comm, child, hooks, entries = obs["comm"], obs["child"], obs["hooks"], obs["entries"]
    made = (f"'{comm}' created {_THREADS} threads, {_N['fork']} forks, {_N['vfork']} vforks and "
            f"{_N['vm'] + _N['near']} processes that share its memory")
    c = Checklist()
    if not entries:
        c.part("counts the threads", False, "the map 'counts' stayed empty: is the function attached to "
               "task:task_newtask (the only function, or TRACEPOINT_PROBE(task, task_newtask)) and does it "
               "add to counts? Or does its test skip every creation? A thread's clone_flags hold many flags: "
               "test the CLONE_THREAD bit with &, not ==")
        return c.done("")
    rows = [e for e in entries if comm in e["texts"]]
    keyed = c.part("keyed by the creator's comm", bool(rows),
                   f"no entry for the checker's program (comm '{comm}'): key the map by the creator's comm "
                   "(bpf_get_current_comm), as count_by_comm.c does")
    if not keyed:   # keyed by something else: judge the rest on the test process's own entry, if there is one
        rows = [e for e in entries if child in e["ints"]]
        if not rows:
            return c.done("")
    n = sum(e["value"] for e in rows)
    if n > _ALL or n < 0:
        c.part("counts each thread once", False,
               f"counted {n} for '{comm}', more than every creation it made ({_ALL}): is each one counted "
               "twice (two functions on the hook, or one attached twice)?")
        return c.done("", counted=n)
    got = _kinds_in(n)
    if "thread" not in got and "nested" not in got:
        why = (f"it did not count the {_THREADS} threads (clone_flags with CLONE_THREAD, 0x10000)"
               + (": nothing at all was counted for it" if n == 0 else ""))
    elif "nested" not in got:
        why = (f"it counted the {_N['thread']} threads made by the main thread but not the {_N['nested']} made by "
               "another thread: who creates does not tell a thread from a process, CLONE_THREAD does")
    else:
        why = (f"it counted only the {_N['nested']} threads made by a thread other than the main one, not the "
               f"{_N['thread']} made by the main thread: pid != tid says who creates, not what is created — "
               "test CLONE_THREAD in clone_flags")
    c.part("counts the threads", {"thread", "nested"} <= got, why)
    c.part("does not count forks", "fork" not in got,
           f"it also counted the {_N['fork']} forks (os.fork(): no CLONE_THREAD)")
    c.part("does not count vforks", "vfork" not in got,
           f"it also counted the {_N['vfork']} vforks (subprocess, posix_spawn: CLONE_VFORK|CLONE_VM, no "
           "CLONE_THREAD)")
    shared = [k for k in ("vm", "near") if k in got]
    c.part("does not count processes that share memory", not shared,
           f"it also counted {plural(sum(_N[k] for k in shared), 'process', 'processes')} made with "
           + " and ".join({"vm": "CLONE_VM alone", "near": "CLONE_VM|CLONE_SIGHAND|CLONE_FILES|... but no "
                           "CLONE_THREAD"}[k] for k in shared)
           + ": they share memory but are not threads — test CLONE_THREAD itself")
    diagnosis = _usual_mistake(got)
    if hooks and not any(h.endswith("task_newtask") for h in hooks):
        diagnosis = (f"your program runs on {' and '.join(hooks)}, not on task:task_newtask, whose clone_flags "
                     "tell a thread from a process")
    if diagnosis and c.failed:
        try:
            c.done("", counted=n, comms=len(entries))
        except Incorrect as e:   # the usual mistake by name first, then the parts that failed
            raise Incorrect(str(e).replace("not yet: ", f"not yet: {diagnosis}. ", 1), parts=e.parts,
                            **e.details) from None
    return c.done(f"yes: {made}, and your map counted exactly its {_THREADS} threads "
                  f"({plural(len(entries), 'key')} counted in all)", counted=n, comms=len(entries))


def _usual_mistake(got: set[str]) -> str | None:
    """A name for the usual mistakes, by which kinds were counted."""
    every = set(_N)
    if got == every:
        return ("it counts every creation: nothing tests CLONE_THREAD, or the test never returns early "
                "(careful: `flags & CLONE_THREAD == 0` is `flags & (CLONE_THREAD == 0)`; write "
                "`!(flags & CLONE_THREAD)`)")
    if got == every - {"thread", "nested"}:
        return "the condition is inverted: it counts everything but the threads"
    if got == {"thread", "nested", "vfork", "vm", "near"}:
        return "that is every creation with CLONE_VM (0x100): test CLONE_THREAD (0x10000)"
    if got == {"vfork"}:
        return "that is the creations with CLONE_VFORK (0x4000): test CLONE_THREAD (0x10000)"
    if got == {"thread", "nested", "near"}:
        return ("that is every creation with CLONE_SIGHAND/CLONE_FILES/CLONE_FS: "
                "test CLONE_THREAD (0x10000)")
    return None


def build() -> Lesson:
    """The exercises of lesson 01."""
    return Lesson("01", "Hello clone", [
        Exercise(
            "q1",
            "Write a filter that keeps only the threads created by this process (os.getpid()): a function "
            "of the DataFrame, or a pandas query string, in which the checker defines @me as this "
            "process's pid.",
            Check(_observe_thread_filter, _diagnose_thread_filter),
            "Two conditions: who created it (the pid column is the creating process; tid is the creating "
            "thread, which need not be the main one) and what was created (the kind column: fork, vfork or "
            "thread). Combine them with & in a boolean mask, or with 'and' in a query string.",
            "my_filter = lambda df: df[(df.pid == os.getpid()) & (df.kind == 'thread')]\n"
            "# or the query string: \"pid == @me and kind == 'thread'\"",
            lambda: (lambda df: df[(df.pid == os.getpid()) & (df.kind == "thread")]),
        ),
        Exercise(
            "q2",
            "Change count_by_comm.c so that it counts only *thread* creations, per comm (the creator's, "
            "as count_by_comm.c keys it), in a map called counts (hook: tracepoint task:task_newtask).",
            Check(_observe_threads_by_comm, _diagnose_threads_by_comm),
            "The tracepoint's arguments (see trace_clone.c's struct task_newtask_args, or "
            "TRACEPOINT_PROBE(task, task_newtask)'s args) include clone_flags; a new thread has CLONE_THREAD "
            "(0x00010000) set. CLONE_VM or CLONE_VFORK are not enough: processes can share memory too. "
            "Return early when CLONE_THREAD is not set.",
            lambda: snippet_text("solution_01_threads_by_comm"),
            lambda: "solution_01_threads_by_comm",
            "c",
        ),
    ])
