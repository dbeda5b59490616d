"""The XDP interfaces table: every interface of the root namespace and of the
lab's namespaces, with the XDP program in each slot and the default route.

    labkit.xdp_interfaces()                     # root + this process's sandboxes
    labkit.xdp_interfaces(namespaces=[])        # the root namespace only
"""

from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

from labkit.net import xdp as _xdp
from labkit.net.records import list_sandboxes

__all__ = ["xdp_interfaces"]


def _own_namespaces() -> list[str]:
    out: list[str] = []
    for r in list_sandboxes():
        if r.owner_pid == os.getpid() and r.complete:
            out += [r.host_ns, r.target_ns]
    return out


def xdp_interfaces(namespaces: Iterable[str] | None = None, *, root: bool = True) -> pd.DataFrame:
    """Interfaces of the root namespace and of the lab's namespaces (default:
    the sandboxes this process made), with the XDP program in each slot.

    Columns: namespace ("" = root), iface, ifindex, native, generic (program
    ids, 0 = empty), xdp (who is there, readable), labkit (a labkit program is
    attached), default_route (the interface carries a default route).
    """
    spaces: list[str | None] = [None] if root else []
    spaces += list(_own_namespaces() if namespaces is None else namespaces)
    rows = []
    for ns in spaces:
        links = _xdp.interfaces(ns)
        try:
            defaults = _xdp.default_route_ifindexes(ns)
        except Exception:
            defaults = set()
        for link in links:
            desc, is_lk = [], False
            for slot in ("native", "generic"):
                pid = link[slot]
                if pid:
                    pname = _xdp.prog_name(pid)
                    is_lk = is_lk or pname.startswith(_xdp.PREFIX)
                    desc.append(f"{pname or '?'} ({slot}, id {pid})")
            rows.append({"namespace": ns or "", "iface": link["ifname"], "ifindex": link["index"],
                         "native": link["native"], "generic": link["generic"],
                         "xdp": ", ".join(desc) or "-", "labkit": is_lk,
                         "default_route": link["index"] in defaults})
    return pd.DataFrame(rows, columns=["namespace", "iface", "ifindex", "native", "generic", "xdp", "labkit",
                                       "default_route"])
