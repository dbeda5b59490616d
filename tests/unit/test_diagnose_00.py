"""Lesson 00's diagnosis at its edges, on observations made by hand: a machine
where every check is ok, a 'warn' left out, a hook the student did not name."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT

KPROBE_OK = [{"name": "hook: kprobe", "status": "ok", "detail": "kernel_clone", "fix": ""},
             {"name": "tracefs", "status": "ok", "detail": "/sys/kernel/tracing", "fix": ""}]
NO_KPROBES = [{"name": "hook: kprobe", "status": "warn", "detail": "no kprobes in this kernel", "fix": "none"},
              {"name": "kernel headers", "status": "FAIL", "detail": "missing", "fix": "apt-get install ..."},
              {"name": "tracefs", "status": "ok", "detail": "/sys/kernel/tracing", "fix": ""}]


def seen(names, hook, doctor, source="kprobe:kernel_clone"):
    given = hook is not None
    kind = None if not given else ("kprobe" if "kprobe" in hook else "tracepoint" if "tracepoint" in hook else None)
    return lesson("00").q1.diagnose({"names": names, "hook": {"given": given, "kind": kind,
                                                              "as_written": repr(hook) if given else ""},
                                     "doctor": doctor, "source": source, "note": "the note"})


def test_every_check_ok_and_the_kprobe():
    res = seen([], "kprobe", KPROBE_OK)
    assert res.status == CORRECT
    assert res.message == "yes: every check is ok on this machine, and trace_clone() uses kprobe:kernel_clone here " \
                          "(the note)"
    assert res.details["not_ok"] == [] and res.details["hook"] == "kprobe"


def test_a_warn_left_out_is_told_a_warn_is_not_ok():
    res = seen(["kernel headers"], "tracepoint", NO_KPROBES, source="tracepoint:task:task_newtask")
    assert res.status == INCORRECT and res.score == 0.75
    why = {p.name: p.message for p in res.parts if not p.passed}["lists every check that is not ok"]
    assert why == "it leaves out 'hook: kprobe' (warn: no kprobes in this kernel): a 'warn' is not 'ok' either"


def test_names_without_a_hook_and_a_hook_without_names():
    res = seen(["hook: kprobe", "kernel headers"], None, NO_KPROBES, source="tracepoint:task:task_newtask")
    assert [p.passed for p in res.parts] == [True, True, True, False]
    assert "which hook does trace_clone() use, 'kprobe' or 'tracepoint'?" in res.message
    res = seen(None, "tracepoint", NO_KPROBES, source="tracepoint:task:task_newtask")
    assert [(p.name, p.passed) for p in res.parts] == [("lists the checks that are not ok", False),
                                                        ("names the hook trace_clone() uses", True)]


def test_the_wrong_hook_quotes_the_kprobe_row():
    res = seen(["hook: kprobe", "kernel headers"], "kprobe", NO_KPROBES, source="tracepoint:task:task_newtask")
    assert res.message == ("not yet: trace_clone() uses a tracepoint here (tracepoint:task:task_newtask), not a "
                           "kprobe: the 'hook: kprobe' row says warn (no kprobes in this kernel)")
