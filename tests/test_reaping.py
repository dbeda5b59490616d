"""Reaping without a command, on the real kernel (needs root): an owner is
SIGKILLed in every state it can hold kernel state in, and the next labkit entry
point in a fresh process removes what it left and says so in one line.

Only namespaces these tests create are touched; traffic stays inside them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import netns

import labkit
from labkit.net import records
from labkit.net import xdp as _xdp
from labkit.net.leftovers import reap_journal, reap_lock
from labkit.net.records import list_sandboxes, remove_sandbox

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

REPO = Path(labkit.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# Entry points, each run in a fresh process; what they print on stderr is the reap's line.
ENTRY = {
    "Lab()": "import labkit; labkit.Lab().close()",
    "Sandbox()": "import labkit; labkit.Sandbox().close()",
    "labkit cleanup --dead-owners": "import sys; from labkit.commands.cleanup import main; "
                                    "sys.exit(main(['--dead-owners']))",
}

# A child that builds sandbox state, prints what it built as JSON, then pauses
# (reading stdin) where the test wants to kill it.
BUILD = """
import json, sys
import labkit
from labkit.net import sandbox as _sandbox
STOP = {stop!r}
built = []

def pause(info):
    print(json.dumps(info), flush=True)
    sys.stdin.read()

real_create, real_configure = _sandbox.create_netns, _sandbox.configure_interface

def create(name):
    if STOP == "record" and not built:
        pause({{"id": name.split("-")[1]}})
    real_create(name)
    built.append(name)
    if STOP == "namespaces" and len(built) == 2:
        pause({{"id": name.split("-")[1]}})

def configure(ipr, iface, address, prefixlen):
    if STOP == "veth":
        pause({{"id": iface[2:-1]}})
    return real_configure(ipr, iface, address, prefixlen)

_sandbox.create_netns, _sandbox.configure_interface = create, configure
sb = labkit.Sandbox(persistent={persistent!r})
info = {{"id": sb.id}}
if {xdp!r}:
    x = labkit.Lab().attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="generic",
                               via="netlink")
    info["xdp"] = [x.via, x.program.name]
pause(info)
"""


def start(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def entry(name: str) -> str:
    """Run one entry point in a fresh process; its stderr."""
    r = subprocess.run([sys.executable, "-c", ENTRY[name]], cwd=REPO, env=ENV, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stderr


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)


def exists(sandbox_id: str) -> dict[str, bool]:
    names = records.sandbox_names(sandbox_id)
    have = netns.listnetns()
    return {"host_ns": names["host_ns"] in have, "target_ns": names["target_ns"] in have,
            "record": records.state_path(sandbox_id).exists()}


def gone(sandbox_id: str) -> bool:
    return not any(exists(sandbox_id).values())


@pytest.fixture
def children() -> Iterator[list]:
    """Children started by a test, and the sandboxes they built: all gone afterwards."""
    made: list = []
    yield made
    for child, sandbox_id in made:
        if child.poll() is None:
            child.kill()
            child.wait()
        for r in list_sandboxes():
            if r.id == sandbox_id:
                remove_sandbox(r, force=True)


def build(children: list, stop: str, *, persistent: bool = False, xdp: bool = False) -> tuple[subprocess.Popen, dict]:
    child = start(BUILD.format(stop=stop, persistent=persistent, xdp=xdp))
    line = child.stdout.readline() if child.stdout else ""
    info = json.loads(line) if line else {}
    children.append((child, info.get("id", "")))
    assert info.get("id"), "the child did not get to its pause"
    return child, info


def reaped(stderr: str, needle: str, since: float) -> str:
    """The one line that says ``needle`` was removed: said by the entry point we
    ran, or, when another run's entry point got there first (test runs may
    overlap on a machine, and every Lab() reaps), by that one, as the machine's
    reap journal shows. Either way it went without a command, in one line."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("labkit:")]
    assert len(lines) <= 1 and stderr.strip() == (lines[0] if lines else ""), f"not one line: {stderr!r}"
    if lines and needle in lines[0]:
        return lines[0]
    # another reaper interrupted on the way (a test stopping its process) says it could not; one removed it
    others = [e["line"] for e in reap_journal(since) if needle in e["line"] and e["reaper"] != os.getpid()
              and f"could not remove {needle}" not in e["line"]]
    assert len(others) == 1, f"nobody said {needle!r} was removed: {stderr!r}, journal {reap_journal(since)}"
    return others[0]


def the_line(stderr: str, sandbox_id: str, pid: int, since: float) -> str:
    """The reap's one line that names this sandbox (other runs may have left leftovers too)."""
    line = reaped(stderr, f"sandbox {sandbox_id} of pid {pid}", since)
    assert line.startswith("labkit: removed "), line
    return line


# ----------------------------------------------------------------------------- sandboxes


@pytest.mark.parametrize("stop, persistent, where", [
    ("done", False, "Lab()"),              # fully built
    ("record", False, "Sandbox()"),        # record written, nothing built yet
    ("namespaces", False, "Lab()"),        # both namespaces, no veth
    ("veth", False, "labkit cleanup --dead-owners"),  # veth, no addresses
    ("namespaces", True, "Lab()"),         # persistent (`labkit sandbox up`) killed half-way: never finished
])
def test_a_killed_owners_sandbox_goes_with_the_next_entry_point(children, stop, persistent, where) -> None:
    child, info = build(children, stop, persistent=persistent)
    sandbox_id = info["id"]
    state = exists(sandbox_id)
    assert state["record"] and (stop == "record" or (state["host_ns"] and state["target_ns"])), state
    assert sandbox_id not in entry("Lab()"), "a live owner's sandbox is never touched"
    assert exists(sandbox_id) == state
    kill(child)
    since = time.time()
    assert exists(sandbox_id) == state or gone(sandbox_id), "SIGKILL leaves it behind (or another run reaped it)"
    the_line(entry(where), sandbox_id, child.pid, since)
    assert gone(sandbox_id)
    assert sandbox_id not in entry("Lab()"), "said once: the next entry point has nothing of it to say"


def test_a_finished_persistent_sandbox_stays(children) -> None:
    child, info = build(children, "done", persistent=True)
    kill(child)  # `labkit sandbox up` ends once it is built: its sandbox is meant to outlive it
    assert info["id"] not in entry("Lab()")
    assert all(exists(info["id"]).values())


# ----------------------------------------------------------------------------- netlink XDP


def test_a_killed_owners_netlink_xdp_on_a_live_sandbox_goes(children) -> None:
    with labkit.Sandbox() as sb:  # this process owns the sandbox and stays alive
        code = f"""
            import json, sys, labkit
            x = labkit.Lab().attach_xdp("xdp_icmp_drop", iface={sb.target_iface!r}, netns={sb.target_ns!r},
                                        mode="generic", via="netlink")
            print(json.dumps([x.via, x.program.name]), flush=True)
            sys.stdin.read()
        """
        child = start(code)
        children.append((child, ""))
        via, _ = json.loads(child.stdout.readline())
        assert via == "netlink"
        prog_id = _xdp.interface(sb.target_iface, sb.target_ns)["generic"]
        name = _xdp.prog_name(prog_id)
        assert prog_id and name.startswith("lk_") and sb.ping(count=1, timeout=0.5).received == 0
        assert sb.target_ns not in entry("Lab()"), "a live owner's attach is never touched"
        since = time.time()
        kill(child)
        # under the reap lock, a reaper of another test running beside this one has either not started or
        # finished, its journal entry written
        with reap_lock():
            assert _xdp.interface(sb.target_iface, sb.target_ns)["generic"] == prog_id or reap_journal(since), \
                "netlink outlives its process (unless another run's entry point reaped it already)"
        err = entry("Sandbox()")
        line = reaped(err, f"XDP {name} on {sb.target_ns}:{sb.target_iface} of pid {child.pid}", since)
        assert line.startswith("labkit: removed "), line
        assert f"sandbox {sb.id}" not in line, "the live owner's sandbox stays"
        assert _xdp.interface(sb.target_iface, sb.target_ns)["generic"] == 0
        assert not [r for r in _xdp.netlink_records() if r.get("netns") == sb.target_ns]
        assert sb.ping(count=2, interval=0.05).received == 2


def test_a_killed_owners_sandbox_with_netlink_xdp_goes_as_two_leftovers(children) -> None:
    child, info = build(children, "done", xdp=True)
    since = time.time()
    kill(child)
    names = records.sandbox_names(info["id"])
    line = the_line(entry("Lab()"), info["id"], child.pid, since)
    assert f"on {names['target_ns']}:{names['target_iface']} of pid {child.pid}" in line
    assert gone(info["id"])
    assert not [r for r in _xdp.netlink_records() if r.get("netns") == names["target_ns"]]


# ----------------------------------------------------------------------------- live owners


def test_a_live_owner_in_another_process_is_never_touched(children) -> None:
    child, info = build(children, "done", xdp=True)
    names = records.sandbox_names(info["id"])
    prog_id = _xdp.interface(names["target_iface"], names["target_ns"])["generic"]
    for where in ENTRY:
        assert info["id"] not in entry(where)
    labkit.Lab().close()  # and in this process
    assert all(exists(info["id"]).values())
    assert _xdp.interface(names["target_iface"], names["target_ns"])["generic"] == prog_id
    child.stdin.close()  # a normal exit gives everything back
    child.wait(timeout=20)
    assert gone(info["id"])


def test_lab_costs_two_directory_reads_when_nothing_is_recorded(monkeypatch, tmp_path) -> None:
    from labkit.net import leftovers

    monkeypatch.setattr(leftovers, "STATE_DIR", tmp_path / "none")
    for recorder in labkit.hooks.recorders():
        monkeypatch.setattr(recorder, "state_dir", tmp_path / "none")
    monkeypatch.setattr(leftovers.Leftovers, "find_dead", classmethod(lambda cls: pytest.fail("scanned")))
    labkit.Lab().close()
