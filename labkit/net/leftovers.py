"""What labkit processes left in the kernel when they ended, and removing it.

The one routine behind ``labkit cleanup`` (the whole machine) and ``labkit
report`` (what one notebook kernel left after it ended):

* XDP programs named lk_* in either slot (native, generic) of every interface
  in every namespace. Programs held by a live bpf_link belong to a running
  process and are reported, not removed (they go when that process ends); a
  netlink attach recorded by a running process is kept.
* Sandboxes whose owner died (and lksb-* namespaces without a record).
* Records of netlink attaches whose program is gone.

Scoped to one owner (``Leftovers.find(owner_pid=pid)``, for a process known to
have ended): the sandboxes it owned, persistent ones included, the programs it
attached through netlink that are still in their slot, and its records.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit import owners
from labkit._errors import AttachError
from labkit.net.records import SandboxRecord, find_leftovers, list_sandboxes, remove_sandbox
from labkit.net.xdp.link import prog_name
from labkit.net.xdp.netlink import find_labkit_xdp, interface, netlink_records, netlink_set

__all__ = ["Leftovers"]


@dataclass
class Leftovers:
    """What :meth:`find` found: XDP programs (dicts netns, iface, ifindex, mode,
    prog_id, name), sandbox records, and netlink attach records (dicts with
    their file as ``path``); ``owner_pid`` is the owner they were scoped to."""

    xdp: list[dict] = field(default_factory=list)
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    owner_pid: int | None = None

    @classmethod
    def find(cls, owner_pid: int | None = None) -> Leftovers:
        """Every leftover on this machine, or (``owner_pid``) everything that
        process left; call that only once it has ended (owners.wait_gone)."""
        records = netlink_records()
        if owner_pid is None:
            return cls(xdp=find_labkit_xdp(), sandboxes=find_leftovers(), records=records)
        records = [r for r in records if r.get("pid") == owner_pid]
        return cls(xdp=_recorded_programs(records),
                   sandboxes=[r for r in list_sandboxes() if r.owner_pid == owner_pid],
                   records=records, owner_pid=owner_pid)

    def __bool__(self) -> bool:
        return bool(self.xdp or self.sandboxes or self.records)

    def remove(self, *, dry_run: bool = False, out: Callable[[str], object] = print) -> int:
        """Remove what was found (``dry_run``: only say what would go), one line
        per thing to ``out``; returns how many remain afterwards."""
        leftover_ns = {ns for r in self.sandboxes for ns in r.namespaces}
        remaining = 0
        recorded_by = {(r.get("netns"), r.get("iface")): r.get("pid") for r in self.records}
        for x in self.xdp:
            desc = f"XDP {x['name']} (id {x['prog_id']}) on {_where(x)} [{x['mode']}]"
            owner = recorded_by.get((x["netns"], x["iface"]))
            if owner and owner != os.getpid() and owners.alive(owner) and x["netns"] not in leftover_ns:
                out(f"kept {desc}: attached by running process {owner}")
                continue
            if x["netns"] in leftover_ns:
                out(f"{'would remove' if dry_run else 'removing'} {desc} (with its leftover sandbox)")
                continue
            if dry_run:
                out(f"would remove {desc}")
                remaining += 1
                continue
            try:
                netlink_set(x["ifindex"], x["netns"], -1, x["mode"])
                out(f"removed {desc}")
            except Exception as e:
                out(f"kept {desc}: held by a bpf_link of a running process ({e}); it goes when that process ends")
                remaining += 1
        for r in self.sandboxes:
            desc = f"sandbox {r.id} ({', '.join(ns for ns in r.namespaces)}; owner pid {r.owner_pid}, {r.status})"
            if dry_run:
                out(f"would remove {desc}")
                remaining += 1
                continue
            try:
                remove_sandbox(r)
                out(f"removed {desc}")
            except Exception as e:
                out(f"could not remove {desc}: {e}")
                remaining += 1
        live = self._attached() if not dry_run else set()
        for rec in self.records:
            if (rec.get("netns"), rec.get("iface")) in live:
                continue
            if dry_run:
                out(f"would forget record {rec['path']}")
                continue
            try:
                os.unlink(rec["path"])
            except FileNotFoundError:
                pass
        return remaining

    def _attached(self) -> set[tuple[str | None, str]]:
        """(netns, iface) of the programs in scope that are attached now."""
        found = find_labkit_xdp() if self.owner_pid is None else _recorded_programs(self.records)
        return {(x["netns"], x["iface"]) for x in found}


def _where(x: dict) -> str:
    return f"{x['netns'] + ':' if x['netns'] else ''}{x['iface']}"


def _recorded_programs(records: list[dict]) -> list[dict]:
    """The programs of netlink attach records that are still in their slot."""
    found = []
    for rec in records:
        netns, iface, mode = rec.get("netns"), rec.get("iface"), rec.get("mode") or "generic"
        try:
            link = interface(iface, netns)
        except (AttachError, OSError):  # interface or namespace gone: nothing attached any more
            continue
        prog_id = link.get(mode)
        if prog_id and prog_id == rec.get("prog_id"):
            found.append({"netns": netns, "iface": iface, "ifindex": link["index"], "mode": mode,
                          "prog_id": prog_id, "name": prog_name(prog_id)})
    return found
