"""Lesson 00's exercise, tried as a teacher would: answers a student really
writes after reading the doctor's table, wrong and right, judged on this
machine's real doctor and its real trace_clone() (right on a kernel with
kprobes and on one without: every answer is computed from what this machine
says, never a constant)."""

from __future__ import annotations

import re

import pytest

import labkit
from kstate import bpf_fds
from labkit.exercises import lesson

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]


class Truth:
    """What this machine says: the doctor's table and the hook trace_clone() uses."""

    def __init__(self):
        self.checks = labkit.doctor()
        with labkit.Lab() as lab:
            self.source = lab.trace_clone(name="test 00 truth").source
        self.hook = self.source.split(":")[0]
        self.other_hook = {"kprobe": "tracepoint", "tracepoint": "kprobe"}[self.hook]
        self.not_ok = self.checks[self.checks.status != "ok"].name.tolist()
        self.ok = self.checks[self.checks.status == "ok"].name.tolist()


@pytest.fixture(scope="module")
def truth():
    return Truth()


def _other_kernel(t: Truth) -> dict:
    """The answer a classmate on the other kernel got (copied, not read)."""
    if t.hook == "kprobe":
        return {"not ok": ["kernel headers", "hook: kprobe"], "hook": "tracepoint"}
    return {"not ok": [], "hook": "kprobe"}


WRONG = [
    # the old coin flip: the hook alone, no look at the table's statuses
    ("only the hook", lambda t: t.hook, r"which checks are not 'ok'\?"),
    # the rows that passed instead of the ones that did not
    ("the ok checks", lambda t: {"not ok": t.ok, "hook": t.hook}, r"are 'ok' on this machine"),
    # every row of the table
    ("every check", lambda t: {"not ok": t.checks.name.tolist(), "hook": t.hook}, r"'ok' on this machine"),
    # the list read right, the hook guessed
    ("the other hook", lambda t: {"not ok": t.not_ok, "hook": t.other_hook},
     r"trace_clone\(\) uses a (kprobe|tracepoint) here .*, not a (kprobe|tracepoint): the 'hook: kprobe' row says"),
    # copied from a classmate on the other kernel (a constant): wrong here, whichever kernel this is
    ("the other kernel's answer", _other_kernel, r"trace_clone\(\) uses a \w+ here"),
    # the list alone, the hook forgotten
    ("no hook", lambda t: t.not_ok, r"which hook does trace_clone\(\) use"),
    # a hook that is not one of the two
    ("a uprobe", lambda t: {"not ok": t.not_ok, "hook": "uprobe"}, r"'kprobe' or 'tracepoint', not 'uprobe'"),
    # a name typed from memory: the doctor's check is 'hook: kprobe'
    ("names from memory", lambda t: {"not ok": t.not_ok + ["kprobes"], "hook": t.hook},
     r"'kprobes' is not a check of the doctor: its names are"),
]

RIGHT = [
    ("list and hook word", lambda t: {
        "not ok": t.checks[t.checks.status != "ok"].name.tolist(),
        "hook": "kprobe" if t.checks.set_index("name").status["hook: kprobe"] == "ok" else "tracepoint"}),
    ("a set, and the source string", lambda t: {"not_ok": set(t.checks.name[t.checks.status.isin(["warn", "FAIL"])]),
                                                 "hook": t.source}),
    ("a tuple of the rows and the hook", lambda t: (t.checks.query("status != 'ok'"), t.hook.upper())),
    ("a dict of name: status", lambda t: {"not ok": {n: s for n, s in zip(t.checks.name, t.checks.status)
                                                     if s != "ok"}, "hook": f"the {t.hook}"}),
    ("a Series, reversed, and the tracepoint's or function's name", lambda t: {
        "Not OK": t.checks.name[t.checks.status != "ok"][::-1],
        "hook": "task:task_newtask" if t.hook == "tracepoint" else "kernel_clone"}),
]


@pytest.fixture
def q1():
    ex = lesson("00").q1
    before = bpf_fds()
    yield ex
    assert labkit.live_attachments() == []
    after = bpf_fds()
    for kind in ("prog", "link", "perf_event"):
        assert not set(after[kind]) - set(before[kind]), f"the check left {kind} fds open"


@pytest.mark.parametrize("answer,pattern", [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_wrong_answers_are_incorrect_and_say_why(q1, truth, answer, pattern):
    r = q1.check(answer(truth))
    assert r.status == "incorrect", r.message
    assert re.search(pattern, r.message), r.message
    assert r.score < 1.0


@pytest.mark.parametrize("answer", [r[1] for r in RIGHT], ids=[r[0] for r in RIGHT])
def test_right_answers_are_correct(q1, truth, answer):
    r = q1.check(answer(truth))
    assert r.status == "correct", r.message
    assert r.score == 1.0 and all(p.passed for p in r.parts)
    assert r.details["hook"] == truth.hook and r.details["not_ok"] == truth.not_ok


def test_partial_credit_names_the_parts(q1, truth):
    r = q1.check({"not ok": truth.checks.name.tolist(), "hook": truth.hook})
    assert {p.name: p.passed for p in r.parts} == {
        "names only the doctor's checks": True, "lists every check that is not ok": True,
        "lists no check that is ok": False, "names the hook trace_clone() uses": True}
    assert r.score == 0.75
    r = q1.check(truth.hook)   # the old answer: only the hook part can pass
    assert [(p.name, p.passed) for p in r.parts] == [("lists the checks that are not ok", False),
                                                      ("names the hook trace_clone() uses", True)]
    assert r.score == 0.5


def test_no_single_constant_is_right_on_both_kernels(q1, truth):
    # the doctor's table differs between the two kernels in exactly what the question asks
    here = {"not ok": truth.not_ok, "hook": truth.hook}
    assert here != _other_kernel(truth)
    assert q1.check(here).status == "correct"
    assert q1.check(_other_kernel(truth)).status == "incorrect"


def test_not_attempted_and_reference(q1):
    assert q1.check(None).status == "not attempted"
    assert q1.check_solution().status == "correct"
    assert q1.status == "not attempted"   # the reference is not the student's verdict
