"""Records of attaches that outlive their process: one JSON file per slot, with its owner.

A bpf_link goes with the process that made it; a netlink attach (an XDP
program, a cls_bpf TC filter) stays on its interface. labkit writes each one
down under /run/labkit/<kind>/, one file per slot (the namespace and interface,
and for TC the direction), with its owner (pid and start time, labkit.owners),
so the next labkit process tells a dead owner's attach from a live one's
(labkit.net.leftovers) and ``labkit cleanup`` finds them:

.. code-block:: json

    {"netns": "lksb-3fa9c1-tgt", "iface": "lk3fa9c1t", "mode": "generic",
     "prog_id": 42, "pid": 4242, "start_time": 1234567, "created": 1735732800.0}
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from labkit import owners

__all__ = ["AttachRecords"]


class AttachRecords:
    """The records of one kind of attach, under ``state_dir``, one per ``slot``
    (the names of the fields that say where it sits: ``("netns", "iface")``)."""

    def __init__(self, state_dir: Path, slot: tuple[str, ...]):
        self.state_dir = state_dir
        self.slot_fields = slot

    def slot(self, record: dict) -> tuple:
        """Where a record (or what was found from one) sits."""
        return tuple(record.get(k) for k in self.slot_fields)

    def path(self, *where: object) -> Path:
        netns, *rest = where
        return self.state_dir / ("__".join([str(netns or "-root-"), *map(str, rest)]) + ".json")

    def write(self, **fields: object) -> None:
        """Record that this process made an attach; ``fields`` hold the slot's and what else the kind keeps."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.path(*self.slot(fields)).write_text(json.dumps(
            {**fields, "pid": pid, "start_time": owners.start_time(pid), "created": time.time()}))

    def forget(self, *where: object) -> None:
        """Remove the record of the attach at this slot (if there is one)."""
        try:
            self.path(*where).unlink()
        except FileNotFoundError:
            pass

    def read(self) -> list[dict]:
        """Every record, each with its file as ``path``."""
        out = []
        if self.state_dir.is_dir():
            for p in sorted(self.state_dir.glob("*.json")):
                try:
                    rec = json.loads(p.read_text())
                except (OSError, ValueError):
                    continue
                rec["path"] = str(p)
                out.append(rec)
        return out
