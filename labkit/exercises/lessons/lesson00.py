"""Lesson 00, Check your lab: which hook ``lab.trace_clone()`` uses on this machine."""

from __future__ import annotations

import os
import threading

from labkit.exercises.framework import Exercise, Incorrect, Lesson
from labkit.lab import Lab
from labkit.programs import hooks as _hooks

__all__ = ["build"]


def _check_hook(answer) -> tuple[str, dict]:
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
    ok, _why = _hooks.kprobes_available()
    return "kprobe" if ok and _hooks.kernel_symbol("kernel_clone", "_do_fork") else "tracepoint"


def build() -> Lesson:
    """The exercises of lesson 00."""
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

