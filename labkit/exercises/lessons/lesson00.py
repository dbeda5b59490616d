"""Lesson 00, Check your lab: read the doctor's table — which checks are not
'ok' on this machine, and so which hook ``lab.trace_clone()`` uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from labkit._errors import LabkitError
from labkit.exercises.framework import Check, Checklist, Exercise, Incorrect, Lesson
from labkit.lab import Lab

__all__ = ["build"]

_HOOKS = ("kprobe", "tracepoint")
_FORM = ("answer with a dict: {'not ok': [the names of the checks whose status is not 'ok'], "
         "'hook': 'kprobe' or 'tracepoint'}")
_MISSING = object()
# the doctor lives a floor above the exercises (labkit.commands): the checker
# asks it the way a student does, labkit.doctor(), in a process of its own
_DOCTOR = "import json, labkit; print(json.dumps(labkit.doctor().to_dict('records')))"
_ROOT = str(Path(__file__).resolve().parents[3])   # where this labkit is imported from


_DOCTOR_FRESH_S = 60.0   # a check within a minute of the last reuses its table (the doctor takes seconds)
_last_doctor: list = []  # [(monotonic time, table)]


def _doctor() -> pd.DataFrame:
    """labkit.doctor()'s table, as this machine says it now (at most a minute old)."""
    if _last_doctor and time.monotonic() - _last_doctor[0][0] < _DOCTOR_FRESH_S:
        return _last_doctor[0][1].copy()
    table = _run_doctor()
    _last_doctor[:] = [(time.monotonic(), table)]
    return table.copy()


def _run_doctor() -> pd.DataFrame:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-c", _DOCTOR], capture_output=True, text=True, timeout=300, env=env)
    if r.returncode != 0 or not r.stdout.strip():
        raise LabkitError(f"the checker could not run labkit.doctor(): {r.stderr.strip()[-300:]}")
    return pd.DataFrame(json.loads(r.stdout.strip().splitlines()[-1]), columns=["name", "status", "detail", "fix"])


def _norm(name) -> str:
    return " ".join(str(name).split()).lower()


def _names(value) -> list[str]:
    """The check names a student gave: a list/tuple/set, a Series or Index of
    names, a DataFrame with a ``name`` column, a dict keyed by name, one name,
    or nothing."""
    if value is None:
        return []
    if isinstance(value, pd.DataFrame):
        if "name" not in value.columns:
            raise Incorrect("the 'not ok' DataFrame has no 'name' column: give the names of the checks "
                            "(the doctor's 'name' column)")
        value = value["name"]
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Mapping):                     # {name: status}: the names are its keys
        value = list(value)
    if isinstance(value, (pd.Series, pd.Index)):
        return [str(v) for v in value.tolist()]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        out = list(value)
        if not all(isinstance(v, str) for v in out):
            odd = next(v for v in out if not isinstance(v, str))
            raise Incorrect(f"'not ok' should hold the checks' names (text), not {odd!r}: the 'name' column")
        return out
    raise Incorrect(f"'not ok' should be a list of the checks' names, not a {type(value).__name__}")


def _split(answer) -> tuple:
    """(names or _MISSING, hook or _MISSING) from the answer's form."""
    if isinstance(answer, Mapping):
        keys = {_norm(k).replace("_", " ").replace("-", " "): v for k, v in answer.items()}
        names = keys.get("not ok", _MISSING)
        hook = keys.get("hook", _MISSING)
        if names is _MISSING and hook is _MISSING:
            raise Incorrect(f"the dict has neither 'not ok' nor 'hook' (it has {', '.join(map(repr, answer))}): "
                            + _FORM)
        return (_MISSING if names is _MISSING else _names(names)), hook
    if isinstance(answer, str):
        return _MISSING, answer                       # just a hook (the old question)
    if (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], str)
            and not isinstance(answer[0], str)):
        return _names(answer[0]), answer[1]           # (names, hook)
    if isinstance(answer, (list, tuple, set, frozenset, pd.Series, pd.Index, pd.DataFrame)):
        return _names(answer), _MISSING               # just the list
    raise Incorrect(f"{_FORM} — not {answer!r}")


def _hook_kind(hook) -> str | None:
    """'kprobe' or 'tracepoint' from how a student names the hook ('kprobe',
    'tracepoint:task:task_newtask', 'kernel_clone', 'TRACEPOINT', ...); None
    when it names neither, or both."""
    text = _norm(hook) if isinstance(hook, str) else ""
    said = {k for k, words in (("kprobe", ("kprobe", "kernel_clone", "_do_fork")),
                               ("tracepoint", ("tracepoint", "task_newtask")))
            if any(w in text for w in words)}
    return said.pop() if len(said) == 1 else None


def _real_hook() -> tuple[str, str]:
    """The hook lab.trace_clone() really uses here, proved by seeing a thread being created."""
    with Lab() as lab:
        s = lab.trace_clone(pid=os.getpid(), name="exercise 00 q1")
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        seen = s.wait(lambda df: (df.child_pid == t.native_id).any(), timeout=5)
        source, note = s.source, s.hook_note
    if not seen:
        raise LabkitError(f"trace_clone() attached ({source}) but saw no thread being created within 5 s: "
                          "run labkit.doctor() and check again")
    return source, note


def _row(checks: pd.DataFrame, name: str) -> str:
    r = checks[checks.name == name].iloc[0]
    return f"'{name}' ({r.status}: {r.detail})"


def _observe_doctor(answer) -> dict:
    """The answer as read (``names``: the checks it names, None when it names none; ``hook``: whether it
    names a hook, which kind, and as written), the doctor's table as this machine says it now, and the
    hook lab.trace_clone() really uses here (``source``, ``note``)."""
    names, hook = _split(answer)
    checks = _doctor()
    source, note = _real_hook()
    return {"names": None if names is _MISSING else list(names),
            "hook": {"given": hook is not _MISSING, "kind": None if hook is _MISSING else _hook_kind(hook),
                     "as_written": "" if hook is _MISSING else repr(hook)},
            "doctor": checks.to_dict("records"), "source": source, "note": note}


def _diagnose_doctor(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_doctor` saw."""
    names, hook = obs["names"], obs["hook"]
    checks = pd.DataFrame(obs["doctor"], columns=["name", "status", "detail", "fix"])
    source, note = obs["source"], obs["note"]
    real = {_norm(n): n for n in checks.name}
    not_ok = [n for n, st in zip(checks.name, checks.status) if st != "ok"]
    actual = source.split(":")[0]

    c = Checklist()
    if names is None:
        c.part("lists the checks that are not ok", False,
               "which checks are not 'ok'? (the doctor's rows whose status is not 'ok', by name): " + _FORM)
    else:
        given = {_norm(n) for n in names}
        unknown = sorted(n for n in names if _norm(n) not in real)
        c.part("names only the doctor's checks", not unknown,
               f"{', '.join(map(repr, unknown))} {'is not a check' if len(unknown) == 1 else 'are not checks'} "
               f"of the doctor: its names are {', '.join(map(repr, checks.name))}")
        missed = [n for n in not_ok if _norm(n) not in given]
        c.part("lists every check that is not ok", not missed,
               "it leaves out " + "; ".join(_row(checks, n) for n in missed)
               + ": a 'warn' is not 'ok' either" * any(checks.set_index("name").status[n] == "warn" for n in missed))
        extra = [n for n in checks.name if _norm(n) in given and n not in not_ok]
        c.part("lists no check that is ok", not extra,
               f"{', '.join(map(repr, extra))} {'is' if len(extra) == 1 else 'are'} 'ok' on this machine")
    said = hook["kind"]
    kp = checks[checks.name == "hook: kprobe"]
    kprobe_row = (f"the 'hook: kprobe' row says {kp.status.iloc[0]} ({kp.detail.iloc[0]})" if len(kp)
                  else note)
    if not hook["given"]:
        why = "and which hook does trace_clone() use, 'kprobe' or 'tracepoint'? " + _FORM
    elif said is None:
        why = f"the hook is 'kprobe' or 'tracepoint', not {hook['as_written']}"
    else:
        why = f"trace_clone() uses a {actual} here ({source}), not a {said}: {kprobe_row}"
    c.part("names the hook trace_clone() uses", said == actual, why)
    return c.done(f"yes: {_said_not_ok(not_ok)}, and trace_clone() uses {source} here ({note})",
                  not_ok=not_ok, hook=actual)


def _said_not_ok(not_ok: list[str]) -> str:
    if not not_ok:
        return "every check is ok on this machine"
    return f"{len(not_ok)} {'check is' if len(not_ok) == 1 else 'checks are'} not ok ({', '.join(not_ok)})"


def _solution() -> dict:
    checks = _doctor()
    kprobe_ok = (checks.set_index("name").status.get("hook: kprobe") == "ok")
    return {"not ok": checks[checks.status != "ok"].name.tolist(), "hook": "kprobe" if kprobe_ok else "tracepoint"}


def build() -> Lesson:
    """The exercises of lesson 00."""
    return Lesson("00", "Check your lab", [
        Exercise(
            "q1",
            "Read the doctor's table (checks = labkit.doctor()): which checks are not 'ok' on this machine, "
            "and so which hook does lab.trace_clone() use? " + _FORM[0].upper() + _FORM[1:] + ".",
            Check(_observe_doctor, _diagnose_doctor),
            "Rows whose status is 'warn' or 'FAIL' are not ok: checks[checks.status != 'ok'] has them, and "
            ".name.tolist() gives their names. trace_clone() takes a kprobe where the 'hook: kprobe' row is "
            "'ok', and the task:task_newtask tracepoint otherwise: read that row's detail.",
            "answer = {'not ok': checks[checks.status != 'ok'].name.tolist(),\n"
            "          'hook': 'kprobe' if checks.set_index('name').status['hook: kprobe'] == 'ok' "
            "else 'tracepoint'}",
            _solution,
        ),
    ])
