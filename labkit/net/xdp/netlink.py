"""XDP through netlink (pyroute2): which program sits in which slot of which
interface, attaching and removing by netlink, the records of netlink attaches,
and the names of loaded programs (labkit's start with ``lk_``).

A netlink attach stays on the interface after its process dies, so labkit
makes one only as a fallback (or when asked with ``via="netlink"``) and then
records it under /run/labkit/xdp, one JSON file per interface
(labkit.net.attach_records: the mode and program id, and the owner). labkit.net.leftovers
finds those records (a dead owner's attach is removed by the next labkit entry
point), and ``labkit cleanup`` also every program named lk_* on every interface
of every namespace.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from labkit._errors import AttachError
from labkit.net.attach_records import AttachRecords
from labkit.net.netns import list_netns, place, run_in_netns
from labkit.programs.libbpf import libbpf

__all__ = [
    "MODE_FLAGS",
    "PREFIX",
    "XDP_RECORDS",
    "XDP_STATE_DIR",
    "find_labkit_xdp",
    "forget_netlink_attach",
    "interface",
    "interfaces",
    "netlink_records",
    "netlink_set",
    "prog_name",
    "record_netlink_attach",
]

#: Where netlink attaches are recorded (one JSON file per interface).
XDP_STATE_DIR = Path("/run/labkit/xdp")
XDP_RECORDS = AttachRecords(XDP_STATE_DIR, ("netns", "iface"))
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
#: The attach flag of each XDP slot: native (driver) and generic (skb) are separate slots.
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
#: Every labkit program name starts with this, so leftovers are recognisable.
PREFIX = "lk_"


def _ipr() -> Any:
    # lazy: pyroute2 is only needed when an interface is queried or changed
    from pyroute2 import IPRoute

    return IPRoute()


def _link_attrs(msg: Any) -> dict:
    xdp = msg.get_attr("IFLA_XDP")
    out = {"index": msg["index"], "ifname": msg.get_attr("IFLA_IFNAME"), "native": 0, "generic": 0}
    if xdp is not None:
        out["native"] = xdp.get_attr("IFLA_XDP_DRV_PROG_ID") or 0
        out["generic"] = xdp.get_attr("IFLA_XDP_SKB_PROG_ID") or 0
        mode = xdp.get_attr("IFLA_XDP_ATTACHED")
        pid = xdp.get_attr("IFLA_XDP_PROG_ID") or 0
        if pid and not (out["native"] or out["generic"]):
            out["native" if mode in (1, "xdp") else "generic"] = pid
    return out


def interfaces(netns: str | None) -> list[dict]:
    """Every interface of a namespace with the XDP program ids in each slot:
    dicts index, ifname, native, generic (0 = empty)."""
    def work():
        with _ipr() as ipr:
            return [_link_attrs(m) for m in ipr.get_links()]
    return run_in_netns(netns, work)


def interface(iface: str, netns: str | None) -> dict:
    """One interface (as :func:`interfaces` lists it); AttachError names the
    ones there are when it does not exist."""
    if not isinstance(iface, str) or not iface:
        raise AttachError(f"an interface name is needed, got {iface!r}", target=str(iface))
    links = interfaces(netns)
    for link in links:
        if link["ifname"] == iface:
            return link
    where = f"network namespace {netns!r}" if netns else "the root network namespace"
    raise AttachError(
        f"no interface {iface!r} in {where} (it has: {', '.join(sorted(l['ifname'] for l in links))}); "
        "for a sandbox pass iface=sb.target_iface, netns=sb.target_ns",
        target=place(iface, netns))


def netlink_set(ifindex: int, netns: str | None, fd: int, mode: str) -> None:
    """Attach (fd >= 0) or remove (fd == -1) through netlink in ``mode``'s slot."""
    def work():
        with _ipr() as ipr:
            ipr.link("set", index=ifindex,
                     IFLA_XDP={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", MODE_FLAGS[mode])]})
    run_in_netns(netns, work)


# ---------------------------------------------------------- netlink records
def record_netlink_attach(netns: str | None, iface: str, mode: str, prog_id: int) -> None:
    """Record that this process attached ``prog_id`` to ``iface`` through netlink."""
    XDP_RECORDS.write(netns=netns, iface=iface, mode=mode, prog_id=prog_id)


def forget_netlink_attach(netns: str | None, iface: str) -> None:
    """Remove the record of a netlink attach on ``iface`` (if there is one)."""
    XDP_RECORDS.forget(netns, iface)


def netlink_records() -> list[dict]:
    """Every record of a netlink attach, each with its file as ``path``."""
    return XDP_RECORDS.read()


# ------------------------------------------------------------------ finding
def find_labkit_xdp() -> list[dict]:
    """Every labkit XDP program (name starts with lk_) on every interface of
    every namespace, in both slots: dicts netns, iface, ifindex, mode, prog_id, name."""
    found = []
    for ns in [None, *list_netns()]:
        try:
            links = interfaces(ns)
        except (OSError, AttachError):
            continue
        for link in links:
            for mode in ("native", "generic"):
                pid = link[mode]
                if pid:
                    name = prog_name(pid)
                    if name.startswith(PREFIX):
                        found.append({"netns": ns, "iface": link["ifname"], "ifindex": link["index"],
                                      "mode": mode, "prog_id": pid, "name": name})
    return found


def prog_name(prog_id: int) -> str:
    """The name (kernel keeps 15 characters) of a loaded BPF program, by id."""
    lib = libbpf()
    if lib is None or not prog_id:
        return ""
    fd = lib.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return ""
    try:
        info = (ctypes.c_uint8 * 256)()
        size = ctypes.c_uint32(256)
        if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
            return ""
        raw = bytes(info[64:80])  # struct bpf_prog_info.name
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")
    finally:
        os.close(fd)
