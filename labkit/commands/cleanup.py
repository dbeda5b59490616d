"""``labkit cleanup``: find and remove every leftover labkit program, namespace
and link on this machine.

What counts as a leftover, and how each kind is removed: labkit.net.leftovers.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from labkit.net.leftovers import Leftovers

__all__ = ["cleanup", "main"]


def cleanup(dry_run: bool = False, out: Callable[[str], object] = print) -> int:
    """Remove leftovers (or only list them); returns how many remain afterwards."""
    found = Leftovers.find()
    if not found:
        out("clean: no labkit XDP program, sandbox namespace or record on this machine")
        return 0
    return found.remove(dry_run=dry_run, out=out)


def main(argv: list[str]) -> int:
    """``labkit cleanup [--dry-run]``: 0 when nothing is left (or would be), else 1."""
    p = argparse.ArgumentParser(prog="labkit cleanup", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    a = p.parse_args(argv)
    left = cleanup(dry_run=a.dry_run)
    return 0 if left == 0 else 1
