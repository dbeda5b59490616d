"""``labkit hub stop --state STATE``: the class server and everything it started, given back.

The hub first (so that it starts nothing more), then every student's VM of
this state directory (asked to shut down cleanly through its spawn share, as
the spawner's stop does, so their disk is synced and unmounted; killed after
``grace`` seconds), their cgroups, then the proxy (which outlives a hub restart
on purpose, so only a stop takes it). A process is only signalled when its
command line says it is this server's: the hub and the proxy by their pid
files and program names, a VM by its marker and its disk in ``STATE``.
What was left, if anything, is said, and the command fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from labkit._errors import ArgumentError
from labkit.hub import limits, vm

__all__ = ["leftovers", "main", "stop"]


def _pid_file(path: Path, program: str) -> int | None:
    """The pid in ``path`` when that process runs ``program``, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if any(program in a for a in vm.process_args(pid)) else None


def _vms(state: Path) -> dict[str, int]:
    """name -> pid of each running VM whose disk is in ``state``."""
    users = state / "users"
    names = [p.name for p in users.iterdir() if p.is_dir()] if users.is_dir() else []
    found = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        argv = vm.process_args(int(p.name))
        for name in names:
            if vm.vm_marker(name) in argv and any(str(users / name / "home.img") in a for a in argv):
                found[name] = int(p.name)
    return found


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if vm.process_args(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.25)


def _end(pid: int, seconds: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if not _wait_gone([pid], seconds):
            return


def stop(state: Path, grace: float = 30.0, say=print) -> list[str]:
    """Stop the class server of ``state``; returns what is left (empty: nothing)."""
    state = Path(state)
    if not (state / "users").is_dir() and not (state / "jupyterhub.pid").exists():
        raise ArgumentError(f"{state} is not a class server's state directory (no users/): pass ./lab hub's --state")
    hub = _pid_file(state / "jupyterhub.pid", "jupyterhub")
    if hub:
        say(f"stopping the hub (pid {hub})")
        _end(hub, 15)
    running = _vms(state)
    for name in running:
        spawn = state / "users" / name / "spawn"
        if spawn.is_dir():
            (spawn / "stop").touch()     # the guest syncs, unmounts the student's disk, powers off
    if running:
        say(f"stopping {len(running)} VM(s): {', '.join(sorted(running))}")
        for pid in _wait_gone(list(running.values()), grace):
            _end(pid, 5)
    users = state / "users"
    for name in (p.name for p in users.iterdir() if p.is_dir()) if users.is_dir() else []:
        limits.remove(name)
        # the spawn share (with the server's token) goes, as the spawner's stop does
        for f in ("env", "stop", "nbgrader_config.py", "course_id"):
            (users / name / "spawn" / f).unlink(missing_ok=True)
    proxy = _pid_file(state / "proxy.pid", "configurable-http-proxy")
    if proxy:
        say(f"stopping the proxy (pid {proxy})")
        _end(proxy, 10)
    return leftovers(state)


def leftovers(state: Path) -> list[str]:
    """What of the class server at ``state`` still runs or holds a cgroup."""
    state = Path(state)
    left = [f"VM of {name} (pid {pid})" for name, pid in sorted(_vms(state).items())]
    for what, program in (("jupyterhub.pid", "jupyterhub"), ("proxy.pid", "configurable-http-proxy")):
        pid = _pid_file(state / what, program)
        if pid:
            left.append(f"{program} (pid {pid})")
    users = state / "users"
    for name in (p.name for p in users.iterdir() if p.is_dir()) if users.is_dir() else []:
        left += [f"cgroup {d}" for d in limits.held(name)]
    return left


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="labkit hub", description="the class server (./lab hub starts it)")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("stop", help="stop the hub, every student's VM and the proxy; nothing is left running")
    s.add_argument("--state", type=Path, default=Path("/var/lib/labkit-hub"), help="./lab hub's --state")
    s.add_argument("--grace", type=float, default=30.0, help="seconds each VM has to shut down cleanly")
    args = p.parse_args(argv)
    try:
        left = stop(args.state, args.grace, say=lambda m: print(f"labkit hub: {m}"))
    except ArgumentError as e:
        print(f"labkit hub: {e}", file=sys.stderr)
        return 2
    if left:
        print("labkit hub: still there: " + "; ".join(left), file=sys.stderr)
        return 1
    print("labkit hub: stopped; nothing of it is left running (the students' disks stay in "
          f"{args.state / 'users'})")
    return 0
