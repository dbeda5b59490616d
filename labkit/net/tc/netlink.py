"""TC through netlink (pyroute2): the clsact qdisc, cls_bpf filters in direct-action mode, and their records.

On a kernel without tcx (Debian 12's 6.1) a TC program goes on an interface
as a ``cls_bpf`` filter under the ``clsact`` qdisc (parent ffff:fff2 is
ingress, ffff:fff3 egress), like ``tc filter add dev X egress bpf da fd N``.
Such a filter stays after its process dies, so every netlink attach is
recorded under /run/labkit/tc, one JSON file per (namespace, interface, direction):

.. code-block:: json

    {"netns": "lksb-3fa9c1-tgt", "iface": "lk3fa9c1t", "direction": "egress", "prio": 1,
     "prog_id": 42, "made_qdisc": true, "pid": 4242, "start_time": 1234567, "created": 1735732800.0}

labkit.net.leftovers removes a dead owner's filter (when the filter at that
priority still runs the recorded program), and the clsact qdisc too when labkit
made it and nothing else is left under it. A sandbox's namespaces take
everything with them anyway.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from labkit._errors import AttachError, NotSupportedError
from labkit.net.attach_records import AttachRecords
from labkit.net.netns import run_in_netns
from labkit.programs.libbpf import libbpf

__all__ = [
    "PARENTS",
    "TC_RECORDS",
    "TC_STATE_DIR",
    "filters",
    "forget_tc_attach",
    "netlink_add_filter",
    "netlink_remove_filter",
    "prog_id_of_fd",
    "record_tc_attach",
    "recorded_filter",
    "tc_records",
]

#: Where netlink (cls_bpf) attaches are recorded.
TC_STATE_DIR = Path("/run/labkit/tc")
TC_RECORDS = AttachRecords(TC_STATE_DIR, ("netns", "iface", "direction"))
#: The clsact qdisc's parents: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS).
PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}
_HANDLE = 1


def _ipr() -> Any:
    # lazy: pyroute2 is only needed when a qdisc or filter is made or removed
    from pyroute2 import IPRoute

    return IPRoute()


def prog_id_of_fd(fd: int) -> int:
    """The kernel's id of the BPF program behind ``fd`` (0 when libbpf cannot say)."""
    lib = libbpf()
    if lib is None:
        return 0
    info = (ctypes.c_uint8 * 256)()
    size = ctypes.c_uint32(256)
    if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
        return 0
    return int.from_bytes(bytes(info[4:8]), "little")  # struct bpf_prog_info: type, id, ...


def filters(iface: str, netns: str | None, direction: str) -> list[dict]:
    """The bpf filters under ``iface``'s clsact qdisc on one side, as ``tc -j``
    reports them: dicts prio, handle, name (the filter's), prog_id, prog_name, direct_action.
    Empty when there is no clsact qdisc."""
    argv = ["tc", *(["-netns", netns] if netns else []), "-j", "filter", "show", "dev", iface, direction]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError:
        raise NotSupportedError("tc is not installed (apt-get install iproute2)", feature="tc") from None
    if out.returncode != 0 or not out.stdout.strip():
        return []
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        return []
    found = []
    for r in rows:
        opts = r.get("options") or {}
        if r.get("kind") != "bpf" or "handle" not in opts:
            continue
        prog = opts.get("prog") or {}
        handle = opts["handle"]
        found.append({"prio": int(r.get("pref", 0)),
                      "handle": int(handle, 16) if isinstance(handle, str) else int(handle),
                      "name": opts.get("bpf_name", ""), "prog_id": int(prog.get("id", 0)),
                      "prog_name": prog.get("name", ""), "direct_action": bool(opts.get("direct-action") or opts.get("direct_action"))})
    return found


def _has_clsact(ipr: Any, ifindex: int) -> bool:
    return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=ifindex))


def netlink_add_filter(ifindex: int, iface: str, netns: str | None, direction: str, fd: int,
                       name: str) -> tuple[int, bool]:
    """Put program ``fd`` on ``direction`` of interface ``ifindex`` as a cls_bpf
    filter in direct-action mode, making the clsact qdisc first when there is
    none. The filter takes the lowest free priority. Returns (prio, whether
    the qdisc was made here)."""
    used = {f["prio"] for f in filters(iface, netns, direction)}
    prio = next(p for p in range(1, 0xFFFF) if p not in used)

    def work() -> bool:
        with _ipr() as ipr:
            made = False
            if not _has_clsact(ipr, ifindex):
                ipr.tc("add", "clsact", index=ifindex)
                made = True
            try:
                ipr.tc("add-filter", "bpf", index=ifindex, handle=_HANDLE, fd=fd, name=name,
                       parent=PARENTS[direction], classid=1, direct_action=True, prio=prio)
            except BaseException:
                if made:
                    ipr.tc("del", "clsact", index=ifindex)
                raise
            return made

    return prio, run_in_netns(netns, work)


def netlink_remove_filter(ifindex: int, iface: str, netns: str | None, direction: str, prio: int,
                          made_qdisc: bool) -> None:
    """Remove the filter at ``prio`` on ``direction``; the clsact qdisc too
    when labkit made it and no filter is left on either side."""
    def work() -> None:
        with _ipr() as ipr:
            try:
                ipr.tc("del-filter", index=ifindex, parent=PARENTS[direction], prio=prio)
            except Exception as e:
                if "No such" not in str(e) and "Invalid argument" not in str(e):
                    raise
    run_in_netns(netns, work)
    if made_qdisc and not any(filters(iface, netns, d) for d in PARENTS):
        def drop_qdisc() -> None:
            with _ipr() as ipr:
                if _has_clsact(ipr, ifindex):
                    ipr.tc("del", "clsact", index=ifindex)
        try:
            run_in_netns(netns, drop_qdisc)
        except Exception:
            pass  # a qdisc already gone, or an interface that went: nothing left to give back


# ---------------------------------------------------------------- records
def record_tc_attach(netns: str | None, iface: str, direction: str, prio: int, prog_id: int,
                     made_qdisc: bool) -> None:
    """Record that this process put ``prog_id`` on ``iface``'s ``direction`` through netlink."""
    TC_RECORDS.write(netns=netns, iface=iface, direction=direction, prio=prio, prog_id=prog_id, made_qdisc=made_qdisc)


def forget_tc_attach(netns: str | None, iface: str, direction: str) -> None:
    """Remove the record of a netlink TC attach (if there is one)."""
    TC_RECORDS.forget(netns, iface, direction)


def tc_records() -> list[dict]:
    """Every record of a netlink TC attach, each with its file as ``path``."""
    return TC_RECORDS.read()


def recorded_filter(rec: dict) -> dict | None:
    """The filter a record names, if it is still there running the recorded
    program: dict netns, iface, ifindex, direction, prio, prog_id, name, made_qdisc; else None."""
    netns, iface, direction = rec.get("netns"), rec.get("iface"), rec.get("direction")
    if direction not in PARENTS or not iface:
        return None
    try:
        found = filters(iface, netns, direction)
        def index() -> int:
            with _ipr() as ipr:
                links = ipr.link_lookup(ifname=iface)
                return links[0] if links else 0
        ifindex = run_in_netns(netns, index)
    except (OSError, AttachError, NotSupportedError):
        return None
    for f in found:
        if f["prio"] == rec.get("prio") and f["prog_id"] == rec.get("prog_id") and ifindex:
            return {"netns": netns, "iface": iface, "ifindex": ifindex, "direction": direction, "prio": f["prio"],
                    "prog_id": f["prog_id"], "name": f["prog_name"], "made_qdisc": bool(rec.get("made_qdisc"))}
    return None
