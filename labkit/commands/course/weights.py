"""How much each part of each exercise is worth when a course grades it: the
teacher's table. A check reports the parts of its task it tested (a
:class:`~labkit.exercises.framework.Part` each); here every part has a weight,
and the parts without which the answer has not done the exercise are *gates*:
when one fails, the exercise earns at most the gate's fraction, whatever the
other parts did (they are often what an answer that does nothing passes for
free: "UDP passes" when nothing is dropped).

The keys are the part names the lessons' checkers use (``*`` in a name stands
for any text: the parts named after a constant or a case). A part this table
does not name weighs 1. A course overrides any of it in its ``labkit.toml``
(:mod:`labkit.commands.course.settings`); ``labkit course weights`` prints the
table a course grades with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from labkit.exercises.framework import Scoring

__all__ = ["DEFAULT_WEIGHTS", "Weighed", "course_scoring", "default_scoring", "known_parts", "lesson_of",
           "weights_table"]


@dataclass(frozen=True)
class Weighed:
    """One exercise's default weights and gates, and why a teacher would weigh it so."""

    weights: Mapping[str, float]
    gates: Mapping[str, float]
    why: str

    @property
    def scoring(self) -> Scoring:
        return Scoring(dict(self.weights), dict(self.gates))


#: (lesson, exercise) -> its parts' weights, its gates, and why
DEFAULT_WEIGHTS: dict[tuple[str, str], Weighed] = {
    ("00", "q1"): Weighed(
        {"lists the checks that are not ok": 5,          # the list missing altogether: the three below at once
         "lists every check that is not ok": 3, "names only the doctor's checks": 1,
         "lists no check that is ok": 1, "names the hook trace_clone() uses": 3},
        {"lists every check that is not ok": 0.5},
        "reading the doctor's table is the exercise: a list that leaves out a check that is not ok earns at most "
        "half (an empty list passes 'names only' and 'lists no check that is ok' for free)"),
    ("01", "q1"): Weighed(
        {"keeps the threads this process created": 1, "keeps the threads created by this process's other threads": 1,
         "drops the processes this process created (fork, vfork)": 1, "drops what other processes created": 1},
        {"keeps the threads this process created": 0},
        "a filter that drops this process's own threads has kept nothing the task asks for (the 'drops' parts "
        "pass for free when everything is dropped): 0; otherwise each part counts the same"),
    ("01", "q2"): Weighed(
        {"keyed by the creator's comm": 1, "counts the threads": 1, "does not count forks": 1,
         "does not count vforks": 1, "does not count processes that share memory": 1, "counts each thread once": 1},
        {"counts the threads": 0},
        "a program that does not count the threads (an inverted test, a test that never passes) has not done the "
        "task, and the 'does not count' parts pass for free then: 0"),
    ("02", "q1"): Weighed(
        {"IPv4 ping to the target is dropped": 2, "ICMP echo replies are dropped (pings from the target fail)": 2,
         "other ICMP passes (port unreachable)": 2, "UDP passes": 1, "TCP passes": 1,
         "ICMP echo with IP options is dropped (IHL 6 and 15)": 1,
         "other ICMP with IP options passes (port unreachable, IHL 6 and 15)": 1,
         "ARP passes after the neighbour caches are flushed": 3, "IPv6 passes (neighbour discovery and UDP)": 2},
        {"IPv4 ping to the target is dropped": 0, "other ICMP passes (port unreachable)": 0.5,
         "ARP passes after the neighbour caches are flushed": 0.25},
        "pings must be dropped (a program that passes them earns nothing: everything else passes for free); "
        "echo only: dropping every ICMP message is half the task (at most 50%); ARP-safe is the lesson: the "
        "classic program that drops ARP earns at most 25%"),
    ("03", "q1"): Weighed(
        {"keyed by the thread id": 3, "exact count per thread": 2, "only this process": 2, "the key is a u32": 1,
         "counts is a BPF_HASH": 1},
        {},
        "per thread is the point of the exercise (a per-process count earns 3 of 9), then exact counts and the "
        "filter; the key's size and the map's kind (the task's BPF_HASH) are details"),
    ("04", "q1"): Weighed(
        {"passes every frame": 2, "counts IPv4 frames in counts[0]": 1, "counts ARP frames in counts[1]": 1,
         "counts other frames in counts[2]": 1, "counts a frame of exactly 14 bytes (a whole Ethernet header)": 2},
        {},
        "a program the verifier refuses earns nothing (no part is tested); passing every frame and the exact "
        "bound (a whole 14-byte header) are the fix, the three counters what it keeps"),
    ("04", "q2"): Weighed(
        {"per file descriptor": 1, "counts newlines, not bytes": 1, "stops at the write's count": 2,
         "looks at the first 64 bytes": 2, "adds up every write to a descriptor": 1},
        {},
        "the two bounds are the lesson: never past the bytes written, never past 64 bytes"),
    ("05", "q1"): Weighed(
        {"the argument, in log2 buckets": 2, "exact counts per bucket": 2, "every thread of this process": 2,
         "only this process": 1, "dist is a BPF_HISTOGRAM (an array of u64 counters)": 1},
        {"the argument, in log2 buckets": 0.25},
        "the histogram of the argument is the task: counts that are not filed by usleep()'s argument earn at "
        "most 25%; the process-versus-thread filter is the lesson's other point; the map's kind (the task's "
        "BPF_HISTOGRAM) is a detail"),
    ("05", "q2"): Weighed(
        {"keyed by the generation": 2, "exact count per generation": 2, "collections is a BPF_HASH": 1},
        {},
        "reading the USDT argument and counting weigh the same; the map's kind (the task's BPF_HASH) is a detail"),
    ("06", "q1"): Weighed(
        {"counts the children's calls": 1, "only the children's calls": 1, "exact while two CPUs count at once": 2},
        {"exact while two CPUs count at once": 0.25},
        "the race is the exercise: a counter that loses calls when two CPUs count at once (a plain += or BCC's "
        "increment()) earns at most 25%, however right its filter"),
    ("06", "q2"): Weighed(
        {"keeps the newest pid": 2, "counts each ask": 1, "holds at most *": 2, "only this process": 1,
         "the key is a u32": 1},
        {"keeps the newest pid": 0.25, "holds at most *": 0.5},
        "an LRU that makes room is the exercise: a map that refuses the newest pid (a full BPF_HASH) earns at "
        "most 25%, one that grows past its size at most 50%"),
    ("07", "q1"): Weighed(
        {"ARP passes (the host finds the target's MAC address)": 1, "every ping from the host is answered": 2,
         "the host's kernel accepts every reply (ICMP checksum right)": 2,
         "replies are right when the checksum update carries *": 1,
         "the target's stack never sees the pings (Icmp InEchos unchanged)": 2,
         "echo requests with IP options are answered from XDP too (IHL 6 and 15)": 1,
         "echo replies to the target's own pings pass": 1, "UDP passes": 1},
        {"the target's stack never sees the pings (Icmp InEchos unchanged)": 0,
         "the host's kernel accepts every reply (ICMP checksum right)": 0.25},
        "answering from XDP is the task: a program that lets the target's stack answer earns nothing (every other "
        "part passes for free then); the starter already does all but the checksum, so a wrong checksum earns at "
        "most 25%"),
    ("07", "q2"): Weighed(
        {"source .10: *": 1, "source .70: *": 2, "source .75: *": 2, "source .200: *": 1, "source .130: *": 1,
         "ARP and a ping from the host's own address pass": 1},
        {"source .200: *": 0, "source .70: *": 0.25, "source .75: *": 0.5},
        "a program under which no rule ever drops earns nothing; one that misses the /26 (an exact-match map) at "
        "most 25%; one that drops on any match, ignoring the longest prefix's verdict, at most 50%"),
    ("08", "q1"): Weighed(
        {"UDP to port * is dropped": 3, "UDP to another port (*) leaves": 1,
         "UDP to port * (* with its bytes swapped) leaves": 1, "UDP from source port * leaves": 1,
         "TCP to port * leaves": 1, "ARP and ping leave": 1,
         "UDP to port * with IP options is dropped (IHL 6 and 15)": 1, "UDP to port * with IP options leaves *": 1},
        {"UDP to port * is dropped": 0, "UDP to another port (*) leaves": 0.5},
        "the port's datagrams must be dropped (a program that drops nothing passes everything else for free: 0); "
        "dropping all UDP earns at most 50%"),
    ("08", "q2"): Weighed(
        {"the datagrams arrive (the IPv4 checksum is right)": 2, "the receiver sees DSCP *": 2,
         "the ECN bits are kept": 1, "TCP still connects": 1, "ARP and ping still work": 1,
         "datagrams with IP options arrive (IHL 6 and 15)": 1, "the checksum stays right when the update borrows *": 1},
        {"the receiver sees DSCP *": 0},
        "the receiver must see the new DSCP: a program that changes nothing passes every other part for free"),
    ("09", "q1"): Weighed(
        {"counts one exec per program each parent started, under the parent's process id": 2,
         "a parent that forks from a second thread is still counted under its process id": 2,
         "a child being traced (ptrace) is still counted under the parent that forked it": 2,
         "execs is a hash map": 1},
        {},
        "the count under the parent's process id, the thread case and the traced child weigh the same; the map's "
        "kind (the task's hash map) is a detail"),
    ("09", "q2"): Weighed(
        {"records task->exit_code of a process that ends with *": 1, "exit_codes is a hash map": 1},
        {},
        "each way of ending counts the same, and so does the map's kind (the task's hash map)"),
    ("10", "q1"): Weighed(
        {"counts is keyed by user stack ids": 2, "only lk_busy's samples": 1, "both of its threads": 1,
         "one count per sample": 1, "the stacks show the hot function (lk_compress)": 2},
        {"counts is keyed by user stack ids": 0.25},
        "a profile without the process's user stacks (the kernel's, which are empty here, or the leaf's address "
        "alone) cannot say which function is hot: at most a quarter; the filter, the threads and the count weigh "
        "one each, the stacks that show the hot function two"),
    ("10", "q2"): Weighed(
        {"only lk_waiter's threads": 1, "the stack where each thread left the CPU": 2,
         "time off the CPU, in microseconds": 2, "lk_wait_input waited 0.4 s and lk_nap 0.1 s": 1},
        {"time off the CPU, in microseconds": 0.5},
        "off-CPU time is the exercise: time on the CPU, a count of switches or the wrong unit earns at most half; "
        "the stack taken as the thread leaves weighs as much"),
    ("12", "q1"): Weighed(
        {"refuses the program in the sandbox with EPERM": 3, "by any path (a symbolic link to it)": 1,
         "other programs run in the sandbox": 1, "the program's file can still be read in the sandbox": 1,
         "only the sandbox": 3},
        {"refuses the program in the sandbox with EPERM": 0, "only the sandbox": 0},
        "the exec must be refused in the sandbox (a program that refuses nothing passes the rest for free: 0), and "
        "only there: a program that refuses it to the machine (the guard detached it) earns nothing"),
    ("12", "q2"): Weighed(
        {"refuses opening the file in the sandbox with EPERM": 3, "for writing too": 1,
         "by any name (a hard link to it)": 1, "other files open in the sandbox": 1, "only the sandbox": 3},
        {"refuses opening the file in the sandbox with EPERM": 0, "only the sandbox": 0},
        "the open must be refused in the sandbox, and only there: refusing nothing, or refusing the machine "
        "(detached by the guard), earns nothing; the modes, the other name and the other files weigh one each"),
    ("13", "q1"): Weighed(
        {"refuses TCP to the port from cgroup a": 3, "lets other ports through": 1, "only cgroup a": 2,
         "TCP only": 1},
        {"refuses TCP to the port from cgroup a": 0, "only cgroup a": 0.5},
        "the port must be refused for cgroup a (a program that refuses nothing passes every other part for free: "
        "0); refusing every cgroup, as a program on the root would, earns at most 50%"),
    ("13", "q2"): Weighed(
        {"lets the traffic through": 1, "counts cgroup a's bytes sent (egress)": 2,
         "counts cgroup a's bytes received (ingress)": 2, "only cgroup a, keyed by its id": 1},
        {"counts cgroup a's bytes sent (egress)": 0.5, "counts cgroup a's bytes received (ingress)": 0.5},
        "the bytes of each direction weigh most; a program that counts one direction only earns at most 50%, "
        "one that counts neither passes the rest for free and is capped the same"),
    ("14", "q1"): Weighed(
        {"handlers has a program at slot 1 (ICMP) and at slot 17 (UDP)": 2, "ICMP is dropped": 2,
         "UDP is counted and passed": 2, "a protocol without a handler passes (the fall-through)": 1,
         "frames that are not IPv4 pass": 1},
        {"handlers has a program at slot 1 (ICMP) and at slot 17 (UDP)": 0.25},
        "the tail calls are the exercise: a dispatcher whose prog array is empty (or that does not jump at all) "
        "passes the fall-through and the frames that are not IPv4 for free: at most 25%"),
    ("14", "q2"): Weighed(
        {"calls is pinned by name": 2, "the second run reuses the first run's map": 2,
         "a second program with the same definition shares it": 1,
         "counts every call exactly, on two CPUs at once": 2},
        {"calls is pinned by name": 0.25, "the second run reuses the first run's map": 0.25},
        "sharing through a pin is the exercise: a counter nobody can find again (not pinned, or a new map at each "
        "run) earns at most 25%, however exact its count"),
}


def lesson_of(assignment: str) -> str | None:
    """The lesson number of an assignment named lessonNN ("lesson06" -> "06"), else None."""
    a = str(assignment)
    return a[6:] if a.startswith("lesson") and a[6:].isdigit() else None


def default_scoring(lesson: str, exercise: str) -> Scoring:
    """labkit's weights and gates for an exercise (every part weighing 1, no gate, when the table has none)."""
    w = DEFAULT_WEIGHTS.get((str(lesson), str(exercise)))
    return w.scoring if w is not None else Scoring()


def course_scoring(overrides: Mapping[str, Any] | None, assignment: str, exercise: str,
                   lesson: str | None = None) -> Scoring:
    """An exercise's scoring in a course: labkit's table for its lesson, with the course's own weights and
    gates for that assignment and exercise on top. ``overrides``: {"weights": {assignment: {exercise:
    {part: weight}}}, "gates": {...}} (what labkit.toml holds)."""
    lesson = lesson if lesson is not None else lesson_of(assignment)
    base = default_scoring(lesson, exercise) if lesson is not None else Scoring()
    o = overrides or {}
    return base.merged((o.get("weights") or {}).get(assignment, {}).get(exercise),
                       (o.get("gates") or {}).get(assignment, {}).get(exercise))


def known_parts(lesson: str, exercise: str) -> list[str]:
    """The part names (and patterns) labkit's table has for an exercise."""
    w = DEFAULT_WEIGHTS.get((str(lesson), str(exercise)))
    return list(w.weights) if w is not None else []


def weights_table(assignments: list[str], overrides: Mapping[str, Any] | None = None,
                  exercises: Mapping[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per (assignment, exercise, part) a course grades with: its weight, its gate (the most the
    exercise earns when the part fails, or empty) and where the number comes from ("labkit" or "course").
    ``exercises``: each assignment's exercise ids (default: the ones in labkit's table)."""
    o = overrides or {}
    rows = []
    for a in assignments:
        lesson = lesson_of(a)
        ids = (exercises or {}).get(a) or sorted({e for (n, e) in DEFAULT_WEIGHTS if n == lesson}
                                                 | set((o.get("weights") or {}).get(a, {}))
                                                 | set((o.get("gates") or {}).get(a, {})))
        for e in ids:
            mine = (set((o.get("weights") or {}).get(a, {}).get(e, {}))
                    | set((o.get("gates") or {}).get(a, {}).get(e, {})))
            s = course_scoring(o, a, e)
            names = list(dict.fromkeys([*known_parts(lesson, e), *s.weights, *s.gates])) if lesson else \
                list(dict.fromkeys([*s.weights, *s.gates]))
            for part in names:
                rows.append({"assignment": a, "exercise": e, "part": part, "weight": s.weight(part),
                             "gate": s.cap(part), "from": "course" if part in mine else "labkit"})
    return pd.DataFrame(rows, columns=["assignment", "exercise", "part", "weight", "gate", "from"])
