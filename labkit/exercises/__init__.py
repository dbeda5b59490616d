"""Self-checking exercises: every check runs the student's answer on the real
kernel (a filter on real events, a BPF program loaded, attached and fed
traffic) and says what is right or wrong.

    from labkit.exercises import lesson01 as ex
    ex.q1.check(my_filter)      # correct / incorrect, and why / not attempted
    ex.q1.hint()
    ex.q1.solution()
    ex.q1.check_solution()      # the checker run on the reference answer
    ex.record("pings dropped", 5)
    ex.summary()                # what this run did, as a table (and JSON)

``check()`` shows its verdict and returns it (a :class:`Result`: ``.status``
is "correct", "incorrect" or "not attempted", ``.message`` says why, and
``bool(result)`` is whether it was correct). Nothing is read or loaded when
this module is imported: snippets are read when a check, hint or solution
needs them.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from labkit._errors import CompileError, LabkitError, VerifierError
from labkit.views.display import ShownOnce
from labkit.views.live import map_dataframe

__all__ = ["Exercise", "Lesson", "Result", "lesson"]

CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
#: the mime type of a lesson summary's JSON (``ex.summary()``), for tools and tests
SUMMARY_MIME = "application/vnd.labkit.summary+json"
_COLORS = {CORRECT: "#2a7d2a", INCORRECT: "#b03030", NOT_ATTEMPTED: "#8a6d00"}


class Incorrect(Exception):
    """Raised by a checker: the answer is wrong, and the message says why."""

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.details = details


# ------------------------------------------------------------------ results
class Result(ShownOnce):
    """The verdict of one check."""

    def __init__(self, exercise: str, status: str, message: str, details: dict | None = None,
                 seconds: float = 0.0):
        self.exercise = exercise
        self.status = status
        self.message = message
        self.details = details or {}
        self.seconds = seconds

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __bool__(self) -> bool:
        return self.correct

    def _mimebundle(self) -> dict[str, Any]:
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}

    def _repr_html_(self) -> str:
        color = _COLORS.get(self.status, "#333")
        msg = html.escape(self.message).replace("\n", "<br>")
        return (f"<div style='border-left:4px solid {color};padding:4px 8px'>"
                f"<b style='color:{color}'>{html.escape(self.exercise)}: {self.status}</b>"
                f"<div style='white-space:pre-wrap'>{msg}</div></div>")

    def __repr__(self) -> str:
        return f"{self.exercise}: {self.status}: {self.message}"

    def to_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "seconds": round(self.seconds, 3),
                "details": _jsonable(self.details)}


class _Note(ShownOnce):
    def __init__(self, title: str, text: str, code: str | None = None, language: str = "c"):
        self.title, self.text, self.code, self.language = title, text, code, language

    def _mimebundle(self) -> dict[str, Any]:
        body = f"<div>{html.escape(self.text)}</div>" if self.text else ""
        if self.code:
            body += f"<pre style='font-size:12px'>{html.escape(self.code)}</pre>"
        plain = f"{self.title}\n{self.text}" + (f"\n\n{self.code}" if self.code else "")
        return {"text/html": f"<div style='border-left:4px solid #6a8caf;padding:4px 8px'>"
                             f"<b>{html.escape(self.title)}</b>{body}</div>", "text/plain": plain}

    def __repr__(self) -> str:
        return self._mimebundle()["text/plain"]


def _jsonable(x):
    try:
        json.dumps(x)
        return x
    except TypeError:
        if isinstance(x, dict):
            return {str(k): _jsonable(v) for k, v in x.items()}
        if isinstance(x, (list, tuple, set)):
            return [_jsonable(v) for v in x]
        if hasattr(x, "item"):
            return x.item()
        return str(x)


# ---------------------------------------------------------------- exercises
def _snippet_text(name: str) -> str:
    from labkit.programs.compile import SNIPPET_DIR

    return (SNIPPET_DIR / f"{name}.c").read_text()


@dataclass
class Exercise:
    """One exercise: ``task`` (what to do), a checker that runs the answer on
    the kernel, a ``hint`` and a reference solution."""

    id: str
    task: str
    checker: Callable[[Any], tuple[str, dict]]
    hint_text: str
    solution_text: Callable[[], str] | str
    solution_answer: Callable[[], Any]
    solution_language: str = "python"
    results: list = field(default_factory=list)

    def check(self, answer: Any = None) -> Result:
        """Run ``answer`` against the real kernel; show and return the verdict."""
        t0 = time.monotonic()
        if answer is None or answer is Ellipsis or (isinstance(answer, str) and not answer.strip()):
            res = Result(self.id, NOT_ATTEMPTED, "put your answer in the variable above and run this cell again "
                                                 f"(task: {self.task})")
        else:
            try:
                message, details = self.checker(answer)
                res = Result(self.id, CORRECT, message, details)
            except Incorrect as e:
                res = Result(self.id, INCORRECT, str(e), e.details)
            except VerifierError as e:
                res = Result(self.id, INCORRECT, "the verifier refused the program: "
                             + str(e).splitlines()[0].split(": ", 1)[-1]
                             + "\n(read the whole log: labkit.VerifierError's .log; lesson 04 shows how)",
                             {"error": "VerifierError"})
            except CompileError as e:
                res = Result(self.id, INCORRECT, f"the program does not compile:\n{e.diagnostics or e}",
                             {"error": "CompileError"})
            except LabkitError as e:
                res = Result(self.id, INCORRECT, f"{type(e).__name__}: {e}", {"error": type(e).__name__})
            except Exception as e:  # the answer itself crashed (a filter that raises, ...)
                res = Result(self.id, INCORRECT, f"running your answer raised {type(e).__name__}: {e}",
                             {"error": type(e).__name__})
        res.seconds = time.monotonic() - t0
        self.results.append(res)
        del self.results[:-10]
        res._show()
        return res

    def check_solution(self) -> Result:
        """Run the checker on the reference solution: proof that the checker
        (and this kernel) works. Does not show the solution."""
        res = self.check(self.solution_answer())
        res.details = {**res.details, "checked": "reference solution"}
        return res

    def hint(self) -> _Note:
        note = _Note(f"{self.id}: hint", self.hint_text)
        note._show()
        return note

    def solution(self) -> _Note:
        text = self.solution_text() if callable(self.solution_text) else self.solution_text
        note = _Note(f"{self.id}: a solution", "", text, self.solution_language)
        note._show()
        return note

    @property
    def last(self) -> Result | None:
        return self.results[-1] if self.results else None

    def __repr__(self) -> str:
        state = self.last.status if self.last else "not checked yet"
        return f"<exercise {self.id}: {state}> {self.task}"


class Lesson:
    """The exercises of one lesson (``q1``, ``q2``, ...) plus a small record of
    what the run did, for the summary at the end of the notebook."""

    def __init__(self, number: str, title: str, exercises: list[Exercise]):
        self.number = number
        self.title = title
        self.exercises = {e.id: e for e in exercises}
        for e in exercises:
            setattr(self, e.id, e)
        self.facts: dict[str, Any] = {}

    def record(self, key: str, value: Any) -> None:
        """Remember a fact of this run (shown by :meth:`summary`)."""
        self.facts[str(key)] = _jsonable(value)

    def summary_dict(self) -> dict:
        from labkit.attach import live_attachments
        from labkit.views.live import live_panels

        return {
            "lesson": self.number,
            "title": self.title,
            "pid": os.getpid(),
            "exercises": {k: (e.last.status if e.last else "not checked") for k, e in self.exercises.items()},
            "checks": {k: [r.status for r in e.results] for k, e in self.exercises.items()},
            "facts": dict(self.facts),
            "attachments_left": len(live_attachments()),
            "panels_left": len(live_panels()),
        }

    def summary(self) -> "_Summary":
        """Show what this run did (a table; also as JSON, type SUMMARY_MIME, for
        tools) and return it."""
        s = _Summary(self.summary_dict())
        s._show()
        return s

    def __repr__(self) -> str:
        return f"<lesson {self.number} {self.title}: {', '.join(map(repr, self.exercises.values()))}>"


class _Summary(ShownOnce):
    def __init__(self, data: dict):
        self.data = data

    def _mimebundle(self) -> dict[str, Any]:
        d = self.data
        rows = [("exercise " + k, v) for k, v in d["exercises"].items()]
        rows += list(d["facts"].items())
        rows += [("attachments left", d["attachments_left"]), ("live panels left", d["panels_left"])]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
        # the JSON goes under labkit's own type: JupyterLab would render plain
        # application/json as a tree instead of the table; tools read this one
        return {"text/html": f"<b>Lesson {html.escape(d['lesson'])}: what this run did</b><table>{body}</table>",
                SUMMARY_MIME: d,
                "text/plain": json.dumps(d, indent=1)}

    def __getitem__(self, k):
        return self.data[k]


# ------------------------------------------------------------------ helpers
def _value_column(df) -> str:
    if "value" in df.columns:
        return "value"
    import pandas as pd

    nums = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if not nums:
        raise Incorrect(f"the map's values are not numbers (columns: {', '.join(map(str, df.columns))})")
    return nums[-1]


def _int_key_column(df, value: str) -> str:
    if "key" in df.columns:
        return "key"
    import pandas as pd

    nums = [c for c in df.columns if c != value and pd.api.types.is_integer_dtype(df[c])]
    if not nums:
        raise Incorrect(f"the map's keys are not numbers (columns: {', '.join(map(str, df.columns))})")
    return nums[0]


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _need_map(prog, name: str) -> None:
    if not prog.has_table(name):
        raise Incorrect(f"the program has no map called {name!r}: the checker reads that map "
                        f"(BPF_HASH({name}, ...))")


def _run_python(code: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------- lesson 00 (setup)
def _check_hook(answer) -> tuple[str, dict]:
    from labkit.lab import Lab

    said = str(answer).strip().lower().split(":")[0].split()[0] if str(answer).strip() else ""
    if said not in ("kprobe", "tracepoint"):
        raise Incorrect(f"answer 'kprobe' or 'tracepoint', not {answer!r}")
    with Lab() as lab:
        s = lab.trace_clone(pid=os.getpid(), name="exercise 00 q1")
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        seen = s.wait(lambda df: (df.child_pid == t.native_id).any(), timeout=3)
        source, note = s.source, s.hook_note
    if not seen:
        raise Incorrect(f"trace_clone() attached ({source}) but saw no event within 3 s: run labkit.doctor()")
    actual = source.split(":")[0]
    if said != actual:
        raise Incorrect(f"on this machine trace_clone() uses a {actual} ({source}): {note}", actual=actual)
    return f"yes: trace_clone() uses {source} here ({note}), and it saw thread {t.native_id} being created", \
        {"source": source}


def _hook_solution() -> str:
    from labkit.programs import hooks as _hooks

    ok, _why = _hooks.kprobes_available()
    return "kprobe" if ok and _hooks.kernel_symbol("kernel_clone", "_do_fork") else "tracepoint"


def _lesson00() -> Lesson:
    return Lesson("00", "Check your lab", [
        Exercise(
            "q1",
            "Which hook does lab.trace_clone() use on this machine: 'kprobe' or 'tracepoint'?",
            _check_hook,
            "The doctor's table has a row for each hook: which one is 'ok', which one a warning? "
            "trace_clone() prefers a kprobe and falls back to the tracepoint.",
            "answer = 'kprobe' if labkit.doctor().set_index('name').loc['hook: kprobe', 'status'] == 'ok' "
            "else 'tracepoint'\n# or: lab.trace_clone().source.split(':')[0]",
            _hook_solution,
        ),
    ])


# ----------------------------------------------------- lesson 01 (clone)
_OTHER_THREAD = "import threading; t = threading.Thread(target=lambda: None); t.start(); t.join()"


def _apply_filter(answer, df, me: int):
    import pandas as pd

    if isinstance(answer, str):
        out = df.query(answer, local_dict={"me": me})
    elif callable(answer):
        out = answer(df.copy())
    else:
        raise Incorrect("the answer must be a function taking the DataFrame (e.g. lambda df: df[...]) "
                        "or a pandas query string")
    if isinstance(out, pd.Series) and out.dtype == bool:
        out = df[out.reindex(df.index, fill_value=False)]
    if not isinstance(out, pd.DataFrame):
        raise Incorrect(f"your filter returned a {type(out).__name__}, not a DataFrame")
    if "child_pid" not in out.columns:
        raise Incorrect("keep the columns (at least child_pid): filter rows, do not select columns")
    return out


def _check_thread_filter(answer) -> tuple[str, dict]:
    from labkit.lab import Lab

    me = os.getpid()
    with Lab() as lab:
        s = lab.trace_clone(name="exercise 01 q1")           # every process on the machine
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        ours = t.native_id
        child = subprocess.Popen(["true"])                    # a process we create
        child.wait()
        other = subprocess.Popen([sys.executable, "-c", _OTHER_THREAD])   # a thread another process creates
        other.wait()

        def ready(df):
            return ({ours, child.pid} <= set(df.child_pid)
                    and ((df.pid == other.pid) & (df.kind == "thread")).any())
        if not s.wait(ready, timeout=5):
            raise LabkitError("the checker's own events did not all arrive within 5 s; run it again")
        df = s.to_dataframe()
    got_df = _apply_filter(answer, df, me)
    expected = set(df[(df.pid == me) & (df.kind == "thread")].child_pid)
    got = set(got_df.child_pid)
    why = []
    extra_other = got_df[got_df.pid != me]
    if len(extra_other):
        ex = extra_other.iloc[0]
        why.append(f"it kept {_n(len(extra_other), 'creation')} by other processes (e.g. pid {ex.pid}, comm "
                   f"{ex.comm!r}): keep only pid == os.getpid()")
    extra_kind = got_df[(got_df.pid == me) & (got_df.kind != "thread")]
    if len(extra_kind):
        why.append(f"it kept {_n(len(extra_kind), 'process', 'processes')} this process created (kind "
                   f"{', '.join(sorted(set(extra_kind.kind)))}, e.g. child {extra_kind.child_pid.iloc[0]}): "
                   "keep only kind == 'thread'")
    missed = expected - got
    if missed:
        why.append(f"it dropped {_n(len(missed), 'thread')} this process created (e.g. {min(missed)})")
    if why:
        raise Incorrect("not yet: " + "; ".join(why),
                        expected=sorted(expected), got=sorted(got))
    return (f"yes: out of {len(df)} creations on the whole machine your filter kept exactly the "
            f"{len(expected)} threads of this process (among them {ours})"), {"kept": len(expected)}


_EX01_CHILD = r"""
import ctypes, os, threading
ctypes.CDLL(None).prctl(15, b"lkq-ex01", 0, 0, 0)      # PR_SET_NAME: this comm
ts = [threading.Thread(target=lambda: None) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _check_threads_by_comm(answer) -> tuple[str, dict]:
    from labkit.lab import Lab

    with Lab() as lab:
        prog = lab.load(answer)
        _need_map(prog, "counts")
        lab.attach_tracepoint(prog, "task:task_newtask", name="exercise 01 q2")
        r = _run_python(_EX01_CHILD)
        if r.returncode != 0:
            raise LabkitError(f"the checker's test process failed: {r.stderr.strip()[-300:]}")
        time.sleep(0.05)
        df = map_dataframe(prog, "counts")
    if df.empty:
        raise Incorrect("the map 'counts' stayed empty: is the function attached (it is the only one?) "
                        "and does it count with counts.increment(key)?")
    value = _value_column(df)
    import pandas as pd

    text_cols = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    rows = df[df[text_cols].eq("lkq-ex01").any(axis=1)] if text_cols else df.iloc[0:0]
    if rows.empty:
        raise Incorrect("no entry for the checker's program (comm 'lkq-ex01', which made 4 threads and 2 "
                        "processes): key the map by the creator's comm (bpf_get_current_comm)",
                        keys=df.drop(columns=[value]).head(5).to_dict("records"))
    n = int(rows[value].sum())
    if n == 6:
        raise Incorrect("counted 6 for 'lkq-ex01': that is its 4 threads *and* its 2 forks. Count only "
                        "creations whose clone_flags have CLONE_THREAD (0x10000)", counted=n)
    if n != 4:
        raise Incorrect(f"counted {n} for 'lkq-ex01', which created exactly 4 threads (and 2 processes)",
                        counted=n)
    return ("yes: 'lkq-ex01' created 4 threads and 2 processes, and your map counted exactly its 4 threads "
            f"({_n(len(df), 'comm')} counted in all)"), {"counted": n, "comms": len(df)}


def _lesson01() -> Lesson:
    return Lesson("01", "Hello clone", [
        Exercise(
            "q1",
            "Write a filter (a function of the DataFrame, or a pandas query string where @me is this "
            "process's pid) that keeps only the threads created by this process (os.getpid()).",
            _check_thread_filter,
            "Two conditions: who created it (the pid column is the creator's process id) and what was "
            "created (the kind column: fork, vfork or thread). Combine them with & in a boolean mask.",
            "my_filter = lambda df: df[(df.pid == os.getpid()) & (df.kind == 'thread')]\n"
            "# or the query string: \"pid == @me and kind == 'thread'\"",
            lambda: (lambda df: df[(df.pid == os.getpid()) & (df.kind == "thread")]),
        ),
        Exercise(
            "q2",
            "Change count_by_comm.c so that it counts only *thread* creations, per comm, in a map called "
            "counts (hook: tracepoint task:task_newtask).",
            _check_threads_by_comm,
            "The tracepoint's arguments (see trace_clone.c's struct task_newtask_args) include clone_flags; "
            "a new thread has CLONE_THREAD (0x00010000) set. Return early when it is not set.",
            lambda: _snippet_text("solution_01_threads_by_comm"),
            lambda: "solution_01_threads_by_comm",
            "c",
        ),
    ])


# -------------------------------------------------------- lesson 02 (XDP)
def _check_arp_safe(answer) -> tuple[str, dict]:
    from labkit.lab import Lab
    from labkit.net.sandbox import Sandbox

    with Sandbox() as sb, Lab() as lab:
        x = lab.attach_xdp(answer, iface=sb.target_iface, netns=sb.target_ns)
        ping = sb.ping(count=3, interval=0.1, timeout=0.4)
        flushed = sb.flush_neighbors()
        udp = sb.send_udp(count=10, timeout=0.5)
        mode = x.mode
    details = {"ping_received": ping.received, "udp_sent": udp.sent,
               "udp_received": udp.received, "neighbours_flushed": flushed, "mode": mode}
    problems = []
    if ping.received:
        problems.append(f"pings got through ({ping.received} of {ping.transmitted} answered): ICMP echo must "
                        "still be dropped")
    if udp.received < udp.sent:
        problems.append(f"after the neighbour caches were flushed, {udp.received} of {udp.sent} UDP datagrams "
                        "arrived: the ARP request that must come first was dropped. Pass every frame that is "
                        "not IPv4")
    if problems:
        raise Incorrect("; ".join(problems), **details)
    return ("yes: in a fresh sandbox pings were dropped, and after flushing the neighbour caches ARP went "
            f"through and {udp.received}/{udp.sent} UDP datagrams arrived"), details


def _lesson02() -> Lesson:
    return Lesson("02", "XDP ping drop", [
        Exercise(
            "q1",
            "Make the classic program ARP-safe: drop ICMP echo (ping), pass everything else — ARP, IPv6, "
            "UDP, TCP — even after the neighbour caches are flushed.",
            _check_arp_safe,
            "The bug is `if (ethertype != ETH_P_IP) return XDP_DROP`: a frame that is not IPv4 is not "
            "yours to judge. And not every ICMP message is a ping: look at the ICMP type (8 and 0).",
            lambda: _snippet_text("solution_02_arp_safe"),
            lambda: "solution_02_arp_safe",
            "c",
        ),
    ])


# ------------------------------------------------ lesson 03 (maps/events)
def _check_count_by_tid(answer) -> tuple[str, dict]:
    from labkit.lab import Lab

    wanted = [5, 17, 42]
    tids: list[int] = [0] * len(wanted)
    go = threading.Barrier(len(wanted) + 1)

    def work(i: int, n: int) -> None:
        tids[i] = threading.get_native_id()
        go.wait()
        for _ in range(n):
            os.getppid()

    with Lab() as lab:
        prog = lab.load(answer, defines={"LK_FILTER_PID": os.getpid()})
        _need_map(prog, "counts")
        lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid", name="exercise 03 q1")
        ts = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate(wanted)]
        for t in ts:
            t.start()
        go.wait()
        for t in ts:
            t.join()
        df = map_dataframe(prog, "counts")
    if df.empty:
        raise Incorrect("the map 'counts' stayed empty: is the program counting getppid() calls "
                        "(it is attached to syscalls:sys_enter_getppid)?")
    value = _value_column(df)
    key = _int_key_column(df, value)
    got = {int(k): int(v) for k, v in zip(df[key], df[value])}
    if got.get(os.getpid()) == sum(wanted) or (len(got) == 1 and sum(got.values()) == sum(wanted)):
        raise Incorrect(f"one counter of {sum(wanted)} for the whole process: those are per process. Key the "
                        "map by the thread id, the lower 32 bits of bpf_get_current_pid_tgid()", got=got)
    wrong = [(tid, n, got.get(tid)) for tid, n in zip(tids, wanted) if got.get(tid) != n]
    if wrong:
        tid, n, g = wrong[0]
        raise Incorrect(f"thread {tid} called getppid() {n} times, the map says {g}"
                        + (" (no entry: is the key the thread id, a u32?)" if g is None else ""),
                        expected=dict(zip(tids, wanted)), got=got)
    return (f"yes: three threads called getppid() {wanted} times and your map counted each exactly "
            f"(threads {tids})"), {"threads": dict(zip(map(str, tids), wanted))}


def _lesson03() -> Lesson:
    return Lesson("03", "Counting in maps versus sending events", [
        Exercise(
            "q1",
            "Write a program for syscalls:sys_enter_getppid that counts calls per *thread* in a BPF_HASH "
            "called counts (key: the thread id, u32). Only this process matters: labkit passes "
            "-DLK_FILTER_PID=<pid>, and lk_wanted() from labkit.h tests it.",
            _check_count_by_tid,
            "bpf_get_current_pid_tgid() returns (process id << 32) | thread id. Keep the lower half as the "
            "key: u32 tid = (u32)id; counts.increment(tid);",
            lambda: _snippet_text("solution_03_count_by_tid"),
            lambda: "solution_03_count_by_tid",
            "c",
        ),
    ])


# ----------------------------------------------------- lesson 04 (verifier)
class _TestRunOpts(__import__("ctypes").Structure):
    # struct bpf_test_run_opts (libbpf 1.x); libbpf reads fields up to sz
    import ctypes as _c
    _fields_ = [("sz", _c.c_size_t), ("data_in", _c.c_void_p), ("data_out", _c.c_void_p),
                ("data_size_in", _c.c_uint32), ("data_size_out", _c.c_uint32), ("ctx_in", _c.c_void_p),
                ("ctx_out", _c.c_void_p), ("ctx_size_in", _c.c_uint32), ("ctx_size_out", _c.c_uint32),
                ("retval", _c.c_uint32), ("repeat", _c.c_int), ("duration", _c.c_uint32),
                ("flags", _c.c_uint32), ("cpu", _c.c_uint32), ("batch_size", _c.c_uint32)]


def _test_run(prog_fd: int, data: bytes) -> int:
    """Run a loaded XDP program once on ``data`` in the kernel (BPF_PROG_TEST_RUN,
    no interface involved); returns its verdict (1 drop, 2 pass, ...)."""
    import ctypes

    from labkit.net import xdp as _xdp

    lib = _xdp.libbpf()
    if lib is None:
        raise LabkitError("libbpf.so.1 is needed to test-run a program (apt-get install libbpf1)")
    fn = lib.bpf_prog_test_run_opts
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    fn.restype = ctypes.c_int
    buf = ctypes.create_string_buffer(data, len(data))
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.cast(buf, ctypes.c_void_p),
                        data_size_in=len(data), repeat=1)
    rc = fn(prog_fd, ctypes.byref(opts))
    if rc != 0:
        err = -rc if rc < -1 else ctypes.get_errno()
        raise LabkitError(f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")
    return int(opts.retval)


def _frame(ethertype: int, payload: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + ethertype.to_bytes(2, "big") + payload


_IPV4_ICMP = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0])


def _check_bounds_fixed(answer) -> tuple[str, dict]:
    import bcc

    from labkit.lab import Lab

    with Lab() as lab:
        prog = lab.load(answer, need="xdp")
        _need_map(prog, "counts")
        fn = prog.load(prog.function_name(), bcc.BPF.XDP)       # VerifierError if still refused
        frames = [("IPv4", _frame(0x0800, _IPV4_ICMP)), ("IPv4", _frame(0x0800, _IPV4_ICMP)),
                  ("ARP", _frame(0x0806, b"\0" * 28)), ("IPv6", _frame(0x86DD, b"\0" * 40)),
                  ("a bare Ethernet header", _frame(0x0800, b""))]
        verdicts = [(what, _test_run(fn.fd, data)) for what, data in frames]
        counts = [int(prog["counts"][i].value) for i in range(3)]
    wrong = [(what, rv) for what, rv in verdicts if rv != 2]
    if wrong:
        raise Incorrect(f"it returned {wrong[0][1]} (not XDP_PASS, 2) for {wrong[0][0]}: the program must "
                        "pass every frame, it only counts", verdicts=verdicts)
    if counts != [3, 1, 1]:
        raise Incorrect(f"the counts are {counts} for 3 IPv4, 1 ARP and 1 IPv6 frame (expected [3, 1, 1]): "
                        "keep counting after the check", counts=counts)
    return ("yes: the verifier accepts it, and run on 5 test frames (BPF_PROG_TEST_RUN, no network) it passed "
            f"them all and counted {counts}"), {"counts": counts}


def _check_loop_fixed(answer) -> tuple[str, dict]:
    from labkit.lab import Lab

    with Lab() as lab:
        prog = lab.load(answer, defines={"LK_FILTER_PID": os.getpid()})
        _need_map(prog, "newlines")
        lab.attach_tracepoint(prog, "syscalls:sys_enter_write", name="exercise 04 q2")
        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            os.write(fd, b"one\ntwo\nthree\n")                          # 3 newlines
            os.write(fd, b"\n" * 10 + b"x" * 100 + b"\n" * 90)            # 10 in the first 64 bytes
            df = map_dataframe(prog, "newlines")
        finally:
            os.close(fd)
    value = _value_column(df) if not df.empty else "value"
    got = {int(k): int(v) for k, v in zip(df[_int_key_column(df, value)], df[value])} if not df.empty else {}
    n = got.get(fd)
    if n == 13:
        return ("yes: the verifier accepts the loop, and it counted 3 + 10 newlines in two writes (only the "
                "first 64 bytes of each)"), {"counted": n}
    if n == 103:
        raise Incorrect("counted 103: every newline of the 200-byte write. Look at the first 64 bytes only "
                        "(a loop bound of 64)", counted=n)
    raise Incorrect(f"for two writes with 3 and (in their first 64 bytes) 10 newlines the map says {n}",
                    counted=n, got=got)


def _lesson04() -> Lesson:
    return Lesson("04", "Verifier mistakes", [
        Exercise(
            "q1",
            "Fix verifier_missing_bounds.c: it must load, pass every frame, and still count IPv4, ARP and "
            "other frames in counts[0], [1], [2].",
            _check_bounds_fixed,
            "Before reading eth->h_proto, prove that the whole Ethernet header is inside the packet: "
            "compare (void *)(eth + 1) with data_end, and return XDP_PASS when it is not.",
            lambda: _snippet_text("solution_04_bounds_checked"),
            lambda: "solution_04_bounds_checked",
            "c",
        ),
        Exercise(
            "q2",
            "Fix verifier_unbounded_loop.c: count the newlines in the first 64 bytes of each write(), per "
            "file descriptor, in the map newlines.",
            _check_loop_fixed,
            "Give the loop a bound the verifier can see: a constant. Keep `i < args->count` too, or you "
            "read past what was written.",
            lambda: _snippet_text("solution_04_bounded_loop"),
            lambda: "solution_04_bounded_loop",
            "c",
        ),
    ])


# ---------------------------------------------------------------- registry
_BUILDERS = {"00": _lesson00, "01": _lesson01, "02": _lesson02, "03": _lesson03, "04": _lesson04}
_made: dict[str, Lesson] = {}


def lesson(number: str | int) -> Lesson:
    """The exercises of lesson ``number`` ("01" or 1); made once per process."""
    key = f"{int(number):02d}" if str(number).isdigit() else str(number)
    if key not in _BUILDERS:
        raise LabkitError(f"no lesson {number!r}; lessons with exercises: {', '.join(_BUILDERS)}")
    if key not in _made:
        _made[key] = _BUILDERS[key]()
    return _made[key]


def __getattr__(name: str):
    if name.startswith("lesson") and name[6:].isdigit():
        return lesson(name[6:])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
