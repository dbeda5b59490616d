"""Lesson 12's diagnosis at its edges, on observations made by hand: the errno each try got (0: it worked,
1: EPERM, 13: EACCES, 1000 + errno: opened, then the read was refused) and the guard's record of a program
that reached outside the sandbox."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson12 import errno_name

EXEC_OK = {"exec": 1, "exec via link": 1, "exec other": 0, "read": 0, "b exec": 0}
OPEN_OK = {"open": 1, "write": 1, "open via link": 1, "open other": 0, "exec": 0, "b open": 0}


def seen(tried: dict, **changes) -> dict:
    return {"machine_wide": [], "ms": None, "hooks": ["bprm_check_security"], "tried": {**tried, **changes}}


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_errno_names():
    assert [errno_name(n) for n in (0, 1, 13, -1, 1001, None)] == [
        "it worked", "EPERM (1)", "EACCES (13)", "it ran but failed", "opened, then the read failed with EPERM (1)",
        "not tried"]


def test_q1_right_and_each_part_alone():
    assert lesson("12").q1.diagnose(seen(EXEC_OK)).status == CORRECT
    res = lesson("12").q1.diagnose(seen(EXEC_OK, **{"exec via link": 0}))
    assert set(failed(res)) == {"by any path (a symbolic link to it)"} and res.score == 0.8
    res = lesson("12").q1.diagnose(seen(EXEC_OK, **{"b exec": 1}))
    assert set(failed(res)) == {"only the sandbox"} and "cgroup b" in res.message


def test_q1_an_errno_other_than_eperm_is_named():
    res = lesson("12").q1.diagnose(seen(EXEC_OK, exec=13, **{"exec via link": 13}))
    assert set(failed(res)) == {"refuses the program in the sandbox with EPERM"}
    assert "EACCES (13)" in res.message and "-EPERM" in res.message
    res = lesson("12").q1.diagnose(seen(EXEC_OK, exec=22, **{"exec via link": 22}))
    assert "refused with EINVAL (22), not EPERM" in res.message


def test_q1_nothing_refused_does_not_blame_the_link():
    res = lesson("12").q1.diagnose(seen(EXEC_OK, exec=0, **{"exec via link": 0}))
    assert set(failed(res)) == {"refuses the program in the sandbox with EPERM"} and "nothing was refused" in res.message


def test_machine_wide_fails_every_part_and_says_so():
    obs = {"machine_wide": [{"act": "open", "path": "/tmp/lk12-q2-x/secret", "errno": 1,
                             "error": "EPERM: Operation not permitted"}], "ms": 3, "hooks": [], "tried": {}}
    res = lesson("12").q2.diagnose(obs)
    assert res.status == INCORRECT and res.score == 0.0 and len(res.parts) == 5
    assert res.message.startswith("machine-wide: your program refused, to the checker's own process (outside the "
                                  "sandbox), opening secret (EPERM: Operation not permitted)")
    assert "detached it 3 ms after attaching it" in res.message


def test_q2_the_read_refused_is_file_permission():
    res = lesson("12").q2.diagnose(seen(OPEN_OK, open=1001, write=0, **{"open via link": 0}))
    assert set(failed(res)) == {"refuses opening the file in the sandbox with EPERM"}
    assert "file_permission" in res.message and "file_open" in res.message


def test_q2_every_open_in_the_sandbox_names_both_casualties():
    res = lesson("12").q2.diagnose(seen(OPEN_OK, **{"open other": 1, "exec": 1}))
    assert failed(res) == {"other files open in the sandbox": "in the sandbox another file failed too (EPERM (1)) and "
                           "running /bin/true failed too (EPERM (1)): every open there is refused (a program opens its "
                           "libraries as it starts). Refuse only when the file's inode is LK12_INO"}
    assert lesson("12").q2.diagnose(seen(OPEN_OK)).status == CORRECT


def test_a_machine_wide_verdict_names_the_same_parts_as_any_other():
    from labkit.exercises.lessons.lesson12 import Q1_PARTS, Q2_PARTS

    assert [p.name for p in lesson("12").q1.diagnose(seen(EXEC_OK)).parts] == Q1_PARTS
    assert [p.name for p in lesson("12").q2.diagnose(seen(OPEN_OK)).parts] == Q2_PARTS
