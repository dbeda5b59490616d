"""``labkit cleanup``: find and remove every leftover labkit program, namespace
and link on this machine.

What counts as a leftover, and how each kind is removed: labkit.net.leftovers.
``--dead-owners`` removes only what recorded owners that are gone left, as every
labkit entry point does on its own (``./lab start`` runs it before JupyterLab),
and says it in one line, or nothing when there was nothing; ``--reaped`` shows
what went that way lately (the reap journal, /run/labkit/reaped.log).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from labkit.net import leftovers
from labkit.net.leftovers import Leftovers, reap_dead_owners, reap_journal

__all__ = ["cleanup", "main", "reaped"]


def cleanup(dry_run: bool = False, out: Callable[[str], object] = print) -> int:
    """Remove leftovers (or only list them); returns how many remain afterwards."""
    found = Leftovers.find()
    if not found:
        out("clean: no labkit XDP program, sandbox namespace or record on this machine")
        return 0
    return found.remove(dry_run=dry_run, out=out)


def reaped(out: Callable[[str], object] = print) -> int:
    """Say what labkit removed on its own (dead owners' leftovers, reaped by a new Lab, Sandbox, report or
    start), one line per reap with when and which process did it; returns how many reaps there were."""
    entries = reap_journal()
    if not entries:
        out(f"nothing removed without a command lately ({leftovers.REAP_JOURNAL} is empty or absent)")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.get("time", 0)))
        out(f"{when}  by pid {e.get('reaper', '?')}: {e.get('line', '')}")
    return len(entries)


def main(argv: list[str]) -> int:
    """``labkit cleanup [--dry-run | --dead-owners | --reaped]``: 0 when nothing is left (or
    would be), else 1; ``--dead-owners`` and ``--reaped`` always 0 (the first never stops a start)."""
    p = argparse.ArgumentParser(prog="labkit cleanup", description=__doc__.split("\n\n")[0])
    how = p.add_mutually_exclusive_group()
    how.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    how.add_argument("--dead-owners", action="store_true",
                     help="only what processes that are gone left (recorded by labkit); one line to stderr, "
                          "nothing when there was nothing")
    how.add_argument("--reaped", action="store_true",
                     help="only say what labkit removed on its own lately (dead owners' leftovers), and when")
    a = p.parse_args(argv)
    if a.reaped:
        reaped()
        return 0
    if a.dead_owners:
        reap_dead_owners()
        return 0
    left = cleanup(dry_run=a.dry_run)
    return 0 if left == 0 else 1
