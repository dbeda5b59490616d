"""Lesson 06, Maps in depth: a counter two CPUs share (q1: the checker's children, most of
them forked by a second thread of the checker, call getppid()), and a map that makes room (q2: two
threads of the checker ask about pids). Each checker observes on the kernel, then a pure function
(``_judge_exact_counter``, ``_judge_recent``) decides from what was observed."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, TypeVar

from labkit._errors import LabkitError
from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    attach_answer,
    int_key_column,
    load_answer,
    need_map,
    plural,
    run_python,
    snippet_text,
    value_column,
)
from labkit.lab import Lab
from labkit.views.tables import map_dataframe

__all__ = ["Counted", "KEY_BASE", "MARKED", "burst", "build", "ask_about"]

T = TypeVar("T")

EXIT_GETPPID = "syscalls:sys_exit_getppid"
ENTER_GETPGID = "syscalls:sys_enter_getpgid"
#: pids asked about with getpgid(): above any pid_max (at most 2^22), so no process has them
KEY_BASE = 0x40000000
#: getppid() calls each of the two pinned children makes per round (forked by a second thread of the checker)
CALLS = 100_000
#: getppid() calls of one more child, forked by the checking thread itself, alone before the race
MARKED = 1_000
#: getppid() calls of a grandchild in the first round (its parent is a child: another pid). Not MARKED: an
#: inverted filter counts exactly these on a quiet machine, and must not look like an answer that counted
#: only the marked child
STRAY = 1_500
#: bursts until the checker's own plain += has lost PROVOKED adds: while time is left (a slow emulator
#: races less often per second), MIN_ROUNDS even when it is not, never more than MAX_ROUNDS. While the answer
#: is still exact, on until the control has lost EVIDENCE adds over RACED_ROUNDS rounds that each lost PROVOKED
#: (or time or rounds run out): how much two programs lose in one round varies wildly (CI once saw a plain +=
#: lose none while the control lost 111; an emulated 5.10, none against 3,758 in one round and 10,804 against
#: 24 in another), so one round is no evidence however much the control lost in it
PROVOKED, EVIDENCE, RACED_ROUNDS, MIN_ROUNDS, MAX_ROUNDS, RACE_SECONDS = 10, 1000, 4, 2, 40, 45.0
IDLE_SECONDS = 0.3      # a moment without the children's calls: what an answer counts then is someone else's
#: the LRU exercise: pids asked about, the map's size, and the calls of another process
ASKED, KEEP, OTHER_KEYS = 30, 8, range(100, 110)
#: of those, the first ones the checking thread asks about (fewer than KEEP: a full map holds others too);
#: a second thread asks about the rest
ASKED_HERE = 4


def burst(calls: int, cpus: list[int] | None = None, *, stray: int = 0) -> int:
    """Fork one child per CPU (two at most), pin each to its CPU, and let them
    call getppid() ``calls`` times each, all at once; with ``stray``, one more
    child's own child calls it ``stray`` times (answered with another pid).
    Returns the calls the direct children made."""
    cpus = sorted(os.sched_getaffinity(0))[:2] if cpus is None else cpus
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    kids = []
    told = False
    try:
        for cpu in cpus:
            pid = os.fork()
            if pid == 0:  # the child: on its CPU only, says it is there, waits for "go", calls getppid()
                try:
                    os.sched_setaffinity(0, {cpu})
                    os.write(ready_write, b"r")
                    os.read(go_read, 1)
                    for _ in range(calls):
                        os.getppid()
                finally:
                    os._exit(0)
            kids.append(pid)
        if stray:
            pid = os.fork()
            if pid == 0:  # a grandchild's calls: getppid() answers them with the child's pid
                try:
                    inner = os.fork()
                    if inner == 0:
                        try:
                            for _ in range(stray):
                                os.getppid()
                        finally:
                            os._exit(0)
                    os.waitpid(inner, 0)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
        # "go" only once every child is on its CPU: a child still being forked or moved when the other
        # starts may find it done (on a loaded machine), and the calls would not overlap
        # (a child that died before it said so only delays "go" by a few seconds)
        got, deadline = 0, time.monotonic() + 5
        while got < len(kids) and select.select([ready_read], [], [], max(0.0, deadline - time.monotonic()))[0]:
            got += len(os.read(ready_read, len(kids) - got))
        os.write(go_write, b"g" * len(kids))
        told = True
    finally:
        for pid in kids:
            if not told:                # never told to go (a fork failed): they would wait for it forever
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for fd in (go_read, go_write, ready_read, ready_write):
            os.close(fd)
    return calls * len(kids)


def ask_about(keys) -> None:
    """getpgid(KEY_BASE + k) for each k: a pid no process has (ESRCH, nothing else)."""
    for k in keys:
        try:
            os.getpgid(KEY_BASE + k)
        except ProcessLookupError:
            pass
        except OSError as e:  # pragma: no cover - only ESRCH is expected
            if e.errno != errno.ESRCH:
                raise


def _count_at_zero(prog, name: str) -> int | None:
    df = map_dataframe(prog, name)
    if df.empty:
        return None
    value = value_column(df)
    key = int_key_column(df, value)
    rows = df[df[key] == 0]
    return int(rows[value].sum()) if len(rows) else None


# ------------------------------------------------------------------ q1: an exact shared counter
def _on_a_thread(fn: Callable[..., T], *args, **kw) -> tuple[T, int]:
    """``fn(*args, **kw)`` run on a new thread of this process: (its result, the thread's id)."""
    out: list = []

    def run() -> None:
        try:
            out.append((True, fn(*args, **kw)))
        except BaseException as e:  # handed to the caller
            out.append((False, e))

    t = threading.Thread(target=run, name="lk-06-forker")
    t.start()
    t.join()
    ok, value = out[0]
    if not ok:
        raise value
    return value, t.native_id


def _observe_exact_counter(answer) -> dict:
    """Run the answer while the checker's children race on two CPUs: what it counted and what was
    called (a :class:`Counted`, as a dict)."""
    me = os.getpid()
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        raise LabkitError("this checker needs two CPUs (the race needs two CPUs counting at once), and this "
                          f"process may run on {len(cpus)}: give the VM two vCPUs")
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", defines={"LK_PARENT_PID": me})
        need_map(prog, "count")
        hooks = attach_answer(lab, prog, EXIT_GETPPID, "exercise 06 q1")
        control = lab.attach_tracepoint(lab.load("maps_race", defines={"LK_PARENT_PID": me},
                                                 name="exercise 06 q1 control"), EXIT_GETPPID)
        # every getppid() of the machine meanwhile (LK_PARENT_PID 0: no filter), counted atomically: what an
        # inverted filter counts is the rest, whatever else runs on the machine
        everyone = lab.attach_tracepoint(lab.load("maps_race", defines={"LK_PARENT_PID": 0},
                                                  name="exercise 06 q1 every call"), EXIT_GETPPID)
        made = rounds = control_lost = 0

        def everyones() -> int:
            return int(everyone.program["atomic"][0].value)

        # from here on: the answer's and everyone's counts, compared over the same bursts
        before_answer = _count_at_zero(prog, "count") or 0
        before_everyone = everyones()
        # one child forked by this thread, alone; the racing ones by a second thread of this process: their
        # real_parent is that thread, whose id (->pid) is not LK_PARENT_PID, the process's (->tgid)
        made += burst(MARKED, cpus[:1])
        forker = 0
        deadline = time.monotonic() + RACE_SECONDS
        raced = 0
        while (control_lost < EVIDENCE or raced < RACED_ROUNDS) and rounds < MAX_ROUNDS and \
                (rounds < MIN_ROUNDS or time.monotonic() < deadline):
            n, forker = _on_a_thread(burst, CALLS, cpus, stray=STRAY if rounds == 0 else 0)
            made += n
            rounds += 1
            lost_before, control_lost = control_lost, made - int(control.program["plain"][0].value)
            raced += control_lost - lost_before >= PROVOKED
            # raced enough to judge, and the answer already differs from the calls made: the verdict is decided
            if control_lost >= PROVOKED and (_count_at_zero(prog, "count") or 0) - before_answer != made:
                break
        got = _count_at_zero(prog, "count")
        others = max(0, everyones() - before_everyone - made)
        in_bursts = (got or 0) - before_answer
        # the children are gone: over a moment with none of their calls, does the answer count anyone's? (its
        # window, from the read above to the one below, holds everyone's window)
        idle_start = everyones()
        time.sleep(IDLE_SECONDS)
        idle_others = everyones() - idle_start
        idle_counted = (_count_at_zero(prog, "count") or 0) - (got or 0)
        kind = type(prog["count"]).__name__
    if control_lost < PROVOKED:
        raise LabkitError(f"the checker could not provoke the race: its own plain += lost only {control_lost} of "
                          f"{made} calls in {rounds} rounds on CPUs {cpus}; run the check again")
    return asdict(Counted(
        got=got, made=made, in_bursts=in_bursts, others=others, idle_others=idle_others, idle_counted=idle_counted,
        control_lost=control_lost, rounds=rounds, kind=kind, hooks=hooks, cpus=cpus, forker=forker,
        checker_on_main=threading.current_thread() is threading.main_thread()))


def _diagnose_exact_counter(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_exact_counter` saw."""
    return _judge_exact_counter(Counted(**obs))


@dataclass(frozen=True)
class Counted:
    """What q1's checker measured: the answer's count at key 0 (``got``, None when there is no key 0) for
    ``made`` calls of the checker's children (MARKED by a child of the checking thread, the main thread when
    ``checker_on_main``; the rest by children of thread ``forker``), the calls of everyone else meanwhile (``others``) and in a moment without the
    children (``idle_others``, of which the answer counted ``idle_counted``), and what the checker's own
    plain += lost (``control_lost``)."""

    got: int | None
    made: int
    in_bursts: int
    others: int
    idle_others: int
    idle_counted: int
    control_lost: int
    rounds: int
    kind: str
    hooks: list = field(default_factory=list)
    cpus: list = field(default_factory=list)
    forker: int = 0
    checker_on_main: bool = True


def _judge_exact_counter(m: Counted) -> tuple[str, dict]:
    """The verdict on q1 from what was measured (no kernel here)."""
    got, made, control_lost, hooks = m.got, m.made, m.control_lost, m.hooks
    c = Checklist()
    if got is None:
        where = f" (it runs on {', '.join(hooks)})" if hooks and not any(EXIT_GETPPID in h for h in hooks) else ""
        why = (f"the map 'count' has nothing at key 0 though the children called getppid() {made} times{where}: "
               "a BPF_HASH starts empty (lookup() finds nothing until something inserts the key: use an array, "
               "or lookup_or_try_init()), and the program must run on " + EXIT_GETPPID + " and keep the calls "
               "where args->ret == LK_PARENT_PID")
    elif got == 0:
        why = (f"count[0] is 0 though the children called getppid() {made} times: does the program run on "
               f"{EXIT_GETPPID}, keep the calls where args->ret == LK_PARENT_PID, and add to key 0? (most "
               f"children were forked by a second thread of the checker, thread {m.forker}: their "
               "task->real_parent is that thread, whose ->pid is its thread id; getppid() answers with its ->tgid)")
    else:
        why = ""
    n = got or 0
    # only the child the checking thread forked: the answer compares the parent's thread id
    by_thread_id = m.checker_on_main and MARKED < made and n == MARKED
    if by_thread_id:
        why = (f"counted {n} calls: those of the one child forked by the checker's main thread (its thread id is "
               f"the process id), not the {made - MARKED} of the children its second thread (thread {m.forker}) "
               "forked. The parent's thread id (task->real_parent->pid) names the thread that forked; "
               "LK_PARENT_PID is the parent's process id, which getppid() answers (args->ret) and "
               "task->real_parent->tgid holds")
    # nearer to what everyone else called than to the children's calls (or to both together): the filter
    # keeps the others and drops the children
    k = m.in_bursts
    if m.idle_others > 0:
        # other processes called meanwhile: an answer that counted none of them filters them out; one that
        # did is inverted when it counted about the others' calls alone, not theirs plus the children's
        inverted = m.idle_counted > 0 and abs(k - m.others) < abs(k - m.others - made)
    else:
        inverted = k > 0 and m.others > made // 10 and abs(k - m.others) < min(abs(k - made),
                                                                               abs(k - m.others - made))
    if inverted:
        why = (f"counted {n} calls, about what the other processes called meanwhile ({m.others}), while the "
               f"children made {made}: is the filter inverted? keep the calls where args->ret == LK_PARENT_PID")
    c.part("counts the children's calls", got is not None and got > 0 and not inverted and not by_thread_id, why)
    c.part("only the children's calls", n <= made and not inverted,
           "" if inverted else
           f"counted {n} calls but the children made {made}: calls of other processes were counted too (a "
           "grandchild's getppid() answers with another pid): keep only args->ret == LK_PARENT_PID")
    if inverted:
        why = "nothing of the children's to compare"
    elif by_thread_id:
        why = "the children of the second thread were not counted: nothing to compare"
    elif n < made and n > 0:
        lost = made - n
        percpu = "PerCpu" in m.kind
        if n <= made // 10:
            why = (f"only {n} of {made} calls counted: the children's calls were left out and others' kept (is the "
                   "filter inverted? keep the calls where args->ret == LK_PARENT_PID)")
        elif lost > made // 4:
            why = (f"{plural(lost, 'call')} of {made} missing: far more than two CPUs racing lose (the checker's own "
                   f"plain += lost {control_lost}): is every call counted, on every CPU, at key 0?")
        elif percpu:
            why = (f"{plural(lost, 'call')} of {made} missing: a per-CPU map never races, so a CPU's copy was "
                   "already short: is every call counted?")
        else:
            why = (f"{plural(lost, 'call')} of {made} lost while two CPUs counted at once (the checker's own plain "
                   f"+= lost {control_lost}): (*v) += 1 and BCC's increment() are a load, an add and a store: two "
                   "CPUs that load the same value store the same sum. Use an atomic add (__sync_fetch_and_add(v, 1), "
                   "lock_xadd, count.atomic_increment(0)) or a per-CPU map")
    elif n > made:
        why = f"{n} counted for {made} calls: the extra ones are not the children's (see above)"
    elif got is None or n == 0:
        why = "nothing counted, nothing to compare"
    else:
        why = ""
    c.part("exact while two CPUs count at once", n == made and not inverted, why)
    cpus = m.cpus
    return c.done(f"yes: two children pinned to CPUs {cpus[0]} and {cpus[1]} called getppid() {made - MARKED} "
                  f"times at once (forked by a second thread of the checker), one more {MARKED} times, and your "
                  f"count is exactly {n} (the checker's own plain += lost {control_lost} meanwhile)",
                  made=made, counted=n, control_lost=control_lost, rounds=m.rounds, map_kind=m.kind)


# ------------------------------------------------------------------ q2: an LRU that makes room
_OTHER = """
import os
for k in %r:
    try:
        os.getpgid(%d + k)
    except ProcessLookupError:
        pass
""" % (list(OTHER_KEYS), KEY_BASE)


def _ask_pinned(cpu: int, keys) -> None:
    """ask_about(keys) from this thread, pinned to ``cpu`` meanwhile (the LRU's order is that CPU's order)."""
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpu})      # this thread only
        ask_about(keys)
    finally:
        os.sched_setaffinity(0, allowed)


def _observe_recent(answer) -> dict:
    """Run the answer while two threads of this process and another process ask about pids: the map
    'recent' (``got``: [key, count] pairs), its kind and key size, and the second thread's id."""
    me = os.getpid()
    cpus = sorted(os.sched_getaffinity(0))
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", defines={"LK_FILTER_PID": me, "LK_KEY_BASE": KEY_BASE})
        need_map(prog, "recent")
        attach_answer(lab, prog, ENTER_GETPGID, "exercise 06 q2")
        # the first pids asked by this thread, the others (the newest, asked 3 times in all, among them) by a
        # second thread of this process, which then ends: one at a time, on one CPU
        _ask_pinned(cpus[0], range(ASKED_HERE))
        _, asker = _on_a_thread(_ask_pinned, cpus[0], list(range(ASKED_HERE, ASKED)) + [ASKED - 1] * 2)
        other = run_python(_OTHER, what="another process that asks about pids")
        if other.returncode != 0:
            raise RuntimeError(f"the checker's other process failed: {other.stderr.strip()[-500:]}")
        df = map_dataframe(prog, "recent")
        kind = type(prog["recent"]).__name__
        key_size = ctypes.sizeof(prog["recent"].Key)
    got = []
    if not df.empty:
        value = value_column(df)
        key = int_key_column(df, value)
        got = [[int(k), int(v)] for k, v in zip(df[key], df[value])]
    return {"got": got, "kind": kind, "key_size": key_size, "asker": asker}


def _diagnose_recent(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_recent` saw."""
    if not obs["got"]:
        raise Incorrect(f"the map 'recent' stayed empty though this process called getpgid() {ASKED + 2} times: "
                        f"is the program on {ENTER_GETPGID}, keeping this process (lk_wanted(id >> 32), the process "
                        f"id: the checker asks from two threads), and storing the pid asked about (args->pid) as the "
                        "key? BCC's increment() and atomic_increment() insert a missing key only in a BPF_HASH: in an "
                        "LRU hash they add to keys already there, so nothing is ever inserted; insert with "
                        "lookup_or_try_init(&pid, &zero) or update()")
    return _judge_recent(dict(obs["got"]), obs["kind"], obs["key_size"], obs["asker"])


def _judge_recent(got: dict[int, int], kind: str, key_size: int, asker: int = 0) -> tuple[str, dict]:
    """The verdict on q2 from the map 'recent' (key -> count), its kind and key size, after the checking
    thread asked about KEY_BASE + 0 .. ASKED_HERE - 1 and thread ``asker`` about the rest (the newest 3 times)."""
    base = KEY_BASE if any(k >= KEY_BASE for k in got) else None
    keys = {k - KEY_BASE: v for k, v in got.items() if k >= KEY_BASE} if base is not None else {}
    # only pids the checking thread asked about: the filter tests the thread id, the process id only there
    by_thread_id = bool(keys) and all(k < ASKED_HERE for k in keys)
    c = Checklist()
    if base is None:
        why = (f"the keys are {sorted(got)[:8]}...: the key is the pid asked about, args->pid (getpgid's argument; "
               f"the checker asks about {KEY_BASE:#x} + k), as a u32")
    elif "Array" in kind:
        why = f"'recent' is an array ({kind}): its keys are indexes 0..N-1; the key must be the pid asked about"
    elif by_thread_id:
        why = (f"the map holds only pids the checker's main thread asked about ({KEY_BASE:#x} + "
               f"{min(keys)}..{max(keys)}), none of the {ASKED - ASKED_HERE} a second thread of the same process "
               f"(thread {asker}) asked about, the newest among them. The filter tests the thread id (the lower 32 "
               "bits of bpf_get_current_pid_tgid(), pid_tgid & 0xffffffff), which is the process id only in the "
               "main thread; the task asks for this process: lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    else:
        why = (f"the newest pid asked about ({KEY_BASE:#x} + {ASKED - 1}) is missing: the map refused it. A "
               "BPF_HASH that is full refuses new keys (the update fails with -E2BIG); an LRU hash "
               "(BPF_TABLE(\"lru_hash\", ...)) evicts the least recently used entry to make room")
    c.part("keeps the newest pid", base is not None and "Array" not in kind and (ASKED - 1) in keys, why)
    newest = keys.get(ASKED - 1)
    c.part("counts each ask", newest == 3,
           "the newest pid is not there to count (see above)" if by_thread_id else
           f"the newest pid was asked about 3 times and the map says {newest if newest is not None else 'nothing'}: "
           "the value counts the calls (insert 1 the first time, add 1 after that)")
    n = len(got)
    # (with the second thread's pids left out there was nothing to evict: the size alone is judged)
    c.part(f"holds at most {KEEP}", n <= KEEP and (0 not in keys or by_thread_id),
           f"the map holds {n} entries" + (f", the first pid asked about among them" if 0 in keys else "")
           + f": it must keep only the newest {KEEP}: an LRU hash of {KEEP} entries "
           f"(BPF_TABLE(\"lru_hash\", u32, u64, recent, {KEEP}))")
    strays = sorted(k for k in keys if k in OTHER_KEYS)
    c.part("only this process", not strays,
           f"pids another process asked about were kept ({', '.join(f'{KEY_BASE:#x} + {k}' for k in strays)}): "
           "return early unless lk_wanted(bpf_get_current_pid_tgid() >> 32)")
    c.part("the key is a u32", key_size == 4,
           f"the map's key is {key_size} bytes: the task asks for the pid asked about as a u32 key (4 bytes): "
           f"u32 pid = args->pid; BPF_TABLE(\"lru_hash\", u32, u64, recent, {KEEP})")
    return c.done(f"yes: {ASKED} pids asked about (by two threads of this process), your map of {n} kept the newest "
                  f"(asked 3 times: 3) and let the oldest go; another process's pids were left out",
                  kept=n, map_kind=kind)


def build() -> Lesson:
    """The exercises of lesson 06."""
    return Lesson("06", "Maps in depth", [
        Exercise(
            "q1",
            "Write a program for syscalls:sys_exit_getppid that counts, in a map called count at key 0, the "
            "getppid() calls answered with LK_PARENT_PID (the checker passes -DLK_PARENT_PID=<its pid>: the calls "
            "of its children), exactly: two children pinned to two CPUs call getppid() 100000 times each, at the "
            "same time. A per-CPU map is read as the sum of its CPUs' copies.",
            Check(_observe_exact_counter, _diagnose_exact_counter),
            "Start from lesson 06's maps_race.c: the atomic and the per-CPU counters are both exact. In an array, "
            "u64 *v = count.lookup(&zero); if (v) __sync_fetch_and_add(v, 1); (or count.atomic_increment(0)); or "
            "declare BPF_PERCPU_ARRAY(count, u64, 1) and count.increment(0).",
            lambda: snippet_text("solution_06_exact_counter"),
            lambda: "solution_06_exact_counter",
            "c",
        ),
        Exercise(
            "q2",
            f"Write a program for syscalls:sys_enter_getpgid that keeps, in a map called recent, the pids this "
            f"process asks about (getpgid's argument, args->pid, as a u32 key) with how many times each was asked, "
            f"but only the newest: the map must never refuse a new pid and never hold more than {KEEP}. The "
            f"checker's process (-DLK_FILTER_PID, tested by lk_wanted()) asks about {ASKED} pids no process has, "
            f"the last one 3 times; another process asks too (not to be kept).",
            Check(_observe_recent, _diagnose_recent),
            f"A full BPF_HASH refuses new keys; an LRU hash evicts the least recently used entry instead: "
            f"BPF_TABLE(\"lru_hash\", u32, u64, recent, {KEEP}). BCC's increment() inserts missing keys only in a "
            "BPF_HASH, so insert them yourself: u32 pid = args->pid; u64 zero = 0; "
            "u64 *n = recent.lookup_or_try_init(&pid, &zero); if (n) __sync_fetch_and_add(n, 1);",
            lambda: snippet_text("solution_06_recent_lru"),
            lambda: "solution_06_recent_lru",
            "c",
        ),
    ])
