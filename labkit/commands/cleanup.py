"""``labkit cleanup``: find and remove every leftover labkit program, namespace
and link on this machine.

* XDP programs named lk_* in either slot (native, generic) of every interface
  in every namespace. Programs held by a live bpf_link belong to a running
  process and are reported, not removed (they go when that process ends).
* Sandboxes whose owner died (and lksb-* namespaces without a record).
* Records of netlink attaches whose program is gone.
"""

from __future__ import annotations

import os

from labkit.net import sandbox as _sandbox
from labkit.net import xdp as _xdp


def find() -> dict[str, list]:
    return {"xdp": _xdp.find_labkit_xdp(), "sandboxes": _sandbox.find_leftovers(),
            "records": [r for r in _xdp.netlink_records()]}


def _xdp_where(x: dict) -> str:
    return f"{x['netns'] + ':' if x['netns'] else ''}{x['iface']}"


def cleanup(dry_run: bool = False, out=print) -> int:
    """Remove leftovers (or only list them); returns how many remain afterwards."""
    found = find()
    leftover_ns = {ns for r in found["sandboxes"] for ns in r.namespaces}
    remaining = 0
    if not any(found.values()):
        out("clean: no labkit XDP program, sandbox namespace or record on this machine")
        return 0
    owners = {(r.get("netns"), r.get("iface")): r.get("pid") for r in found["records"]}
    for x in found["xdp"]:
        desc = f"XDP {x['name']} (id {x['prog_id']}) on {_xdp_where(x)} [{x['mode']}]"
        owner = owners.get((x["netns"], x["iface"]))
        if owner and owner != os.getpid() and _alive(owner) and x["netns"] not in leftover_ns:
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
            _xdp.netlink_set(x["ifindex"], x["netns"], -1, x["mode"])
            out(f"removed {desc}")
        except Exception as e:
            out(f"kept {desc}: held by a bpf_link of a running process ({e}); it goes when that process ends")
            remaining += 1
    for r in found["sandboxes"]:
        desc = f"sandbox {r.id} ({', '.join(ns for ns in r.namespaces)}; owner pid {r.owner_pid}, {r.status})"
        if dry_run:
            out(f"would remove {desc}")
            remaining += 1
            continue
        try:
            _sandbox.remove_sandbox(r)
            out(f"removed {desc}")
        except Exception as e:
            out(f"could not remove {desc}: {e}")
            remaining += 1
    live = {(x["netns"], x["iface"]) for x in _xdp.find_labkit_xdp()} if not dry_run else set()
    for rec in found["records"]:
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


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="labkit cleanup", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    a = p.parse_args(argv)
    left = cleanup(dry_run=a.dry_run)
    if a.dry_run:
        return 0 if left == 0 else 1
    return 0 if left == 0 else 1
