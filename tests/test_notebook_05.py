"""Lesson 05 executed headless twice in one kernel (the helpers of
test_notebooks.py), and what it proves: a uretprobe timed every usleep() of
its child, the notebook's own Python was counted through its USDT probes
(lk_fib exactly), bpftrace answered the same question where it is installed,
the exercises' references pass and the shipped answer cells do not, and
nothing stays attached after Run All (each cell detaches its probes); detaching a USDT probe sets its semaphore back."""

from __future__ import annotations

import shutil
import subprocess

import nbformat
import pytest

import labkit

import test_notebooks
from test_notebooks import NOTEBOOKS, _errors, _execute_twice, _mimes, _tagged, _text

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.requires("root", "tracefs"),
              pytest.mark.timeout(900)]

NAME = "05-tracing-user-space"
FIB_CALLS = 1973          # lk_fib(15) calls itself 2 * fib(16) - 1 times
PYTHON = "/usr/bin/python3.11"

# what the assertions read from the lesson's kernel after each round (test_notebooks' probe cell);
# the lead moves this entry into test_notebooks.PROBES when lesson 05 joins EXPECTED_LESSONS
PROBE = ("", {
    "python": "python",
    "usleep calls timed": "int(took.value.sum())",
    "fastest bucket (µs)": "took['took (µs)'].iloc[0]",
    "python usdt probes": "len(probes)",
    "lk_fib calls (BCC, this process)": "int(counted.set_index('name').value.get('lk_fib', 0))",
    "lk_fib calls (bpftrace, a child)": "bt_fib",
})
test_notebooks.PROBES.setdefault(NAME, PROBE)


def _semaphores(pid: int) -> dict[str, int]:
    """The USDT semaphores of the interpreter in process ``pid`` (non-PIE: the note's addresses are addresses)."""
    from bcc import USDT  # lazy: BCC comes from the distro

    out = {}
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for p in USDT(path=PYTHON).enumerate_probes():
            mem.seek(p.semaphore)
            out[p.short_name()] = int.from_bytes(mem.read(2), "little")
    return out


@pytest.fixture(scope="module")
def run():
    r = _execute_twice(NOTEBOOKS / f"{NAME}.ipynb")
    if r.error is not None:
        raise AssertionError(f"{NAME} did not execute: {r.error}") from r.error
    return r


def test_05_runs_twice_and_gives_everything_back(run):
    assert len(run.rounds) == 2 and run.summaries[0]["pid"] == run.summaries[1]["pid"]
    for rnd, (nb, s, state) in enumerate(zip(run.rounds, run.summaries, run.state), 1):
        assert _errors(nb) == [], f"round {rnd}: {_errors(nb)}"
        assert s["reference_checked"] == {"q1": "correct", "q2": "correct"}, s["reference_checked"]
        assert s["exercises"] == {"q1": "incorrect", "q2": "incorrect"}, "the shipped %%bpf cells are not answers"
        assert all(s["messages"][q].strip() for q in ("q1", "q2"))
        # every probe was detached in the cell that attached it: nothing fires after Run All
        assert state["attachments"] == 0 and state["panels"] == 0 and state["perf events"] == 0, state
        assert state["fds"]["prog"] == state["fds"]["link"] == state["fds"]["perf_event"] == 0, state
    assert run.state[1] == run.state[0]
    assert run.after_exit == {"process": False, "leftover sandboxes": [], "owned sandboxes": [],
                              "BPF programs": [], "BPF links": []}, run.after_exit


def test_05_uretprobe_timed_every_call_of_the_child(run):
    for nb, f in zip(run.rounds, run.facts):
        assert f["usleep calls timed"] == 4 * 300
        low = int(f["fastest bucket (µs)"].split()[0])
        assert low >= 16, "usleep(20) never returns in less than 20 µs: its bucket starts at 16 or above"
        assert "image/png" in _mimes(_tagged(nb, "usleep-latency"))
        assert "no function 'usleeep'" in _text(_tagged(nb, "typo")) and "usleep" in _text(_tagged(nb, "typo"))


def test_05_usdt_counted_the_notebooks_own_python(run):
    for nb, f in zip(run.rounds, run.facts):
        assert f["python"] == PYTHON
        assert f["python usdt probes"] >= 8     # 3.11: function__entry/return, line, gc__start/done, ...
        assert "python:function__entry" in _text(_tagged(nb, "usdt-probes"))
        assert f["lk_fib calls (BCC, this process)"] == FIB_CALLS
        assert "lk_fib" in _text(_tagged(nb, "usdt-own"))


def test_05_bpftrace_answers_the_same_question_where_installed(run):
    for nb, f in zip(run.rounds, run.facts):
        got = f["lk_fib calls (bpftrace, a child)"]
        text = _text(_tagged(nb, "bpftrace"))
        if shutil.which("bpftrace"):
            assert got == FIB_CALLS, text
            assert f"lk_fib {FIB_CALLS} times" in text
        else:
            assert got is None and "bpftrace is not installed" in text


def test_05_usdt_semaphores_are_given_back():
    """What the lesson does to its own interpreter — attach line and function__entry, detach — leaves
    the semaphores where they were, in a process of this test's (the lesson's kernel is gone by now)."""
    child = subprocess.Popen([PYTHON, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"     # the interpreter is mapped: its semaphores exist
        before = _semaphores(child.pid)
        with labkit.Lab() as lab:
            lines = lab.attach_usdt("usdt_python_lines", "python:line", "lk_py_line", pid=child.pid)
            during = _semaphores(child.pid)
            lines.detach()
            after = _semaphores(child.pid)
        assert before["python:line"] == 0 and during["python:line"] == 1 and after == before
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


def test_05_notebook_outline():
    nb = nbformat.read(NOTEBOOKS / f"{NAME}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "nav" not in c.metadata.get("tags", [])]
    assert "**What you will learn:**" in cells[0].source
    assert cells[1].cell_type == "code" and len(cells[1].source.strip().splitlines()) == 1
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "## Exercise" in text and "## Further reading" in text
    assert sum(c.source.startswith("%%bpf") for c in cells if c.cell_type == "code") >= 3
    for i, c in enumerate(cells):      # each answer cell is followed by its check
        if c.cell_type == "code" and c.source.startswith("%%bpf my_program"):
            assert cells[i + 1].source.strip() in ("ex.q1.check(my_program)", "ex.q2.check(my_program)")
    last = [c for c in cells if c.cell_type == "code"][-1]
    assert "summary" in last.metadata.get("tags", []) and last.source.startswith("ex.summary()")
    assert "lab.close()" in last.source and "Kernel › Shut Down Kernel" in text
    assert not any("ex.record" in c.source for c in cells if c.cell_type == "code")
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
