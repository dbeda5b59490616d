"""Writing a devmap (the map XDP_REDIRECT sends frames through) safely.

A devmap entry names a device by ifindex, and the kernel resolves that ifindex
in the network namespace of the *thread that writes the entry*, at the moment
it writes. Written from the notebook's process (the root namespace), index 2
of a sandbox would mean the root namespace's device 2, typically the
machine's own network card. :func:`devmap_set` therefore writes from a thread
inside the sandbox's namespace (labkit.net.netns.run_in_netns), after checking
that the device is there, and refuses the root namespace.
"""

from __future__ import annotations

import ctypes
from typing import Any

from labkit._errors import ArgumentError
from labkit.net.netns import run_in_netns
from labkit.net.xdp.netlink import interfaces

__all__ = ["devmap_set"]


def devmap_set(table: Any, index: int, ifindex: int, netns: str) -> None:
    """Store device ``ifindex`` of namespace ``netns`` at ``index`` of devmap
    ``table`` (a program's BPF_DEVMAP, e.g. ``prog["out"]``), written from
    inside ``netns`` so the kernel finds the right device."""
    if not isinstance(netns, str) or not netns:
        raise ArgumentError("devmap_set needs netns= (the namespace the device is in, e.g. sb.target_ns): the "
                            "kernel resolves the ifindex in the writer's namespace, and labkit redirects only "
                            f"between devices of namespaces it made; got {netns!r}")
    for what, value in (("index", index), ("ifindex", ifindex)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise ArgumentError(f"devmap_set's {what} must be a whole number (0 or more), got {value!r}")
    if getattr(table, "ttype", None) not in (14, 25):  # BPF_MAP_TYPE_DEVMAP, _DEVMAP_HASH
        raise ArgumentError(f"devmap_set writes a devmap (BPF_DEVMAP in the C code), got {type(table).__name__}")
    names = {i["index"]: i["ifname"] for i in interfaces(netns)}
    if ifindex not in names:
        raise ArgumentError(f"no device with ifindex {ifindex} in namespace {netns} (it has: "
                            + ", ".join(f"{n} {i}" for i, n in sorted(names.items())) + ")")

    def write() -> None:
        table[ctypes.c_int(index)] = ctypes.c_int(ifindex)

    run_in_netns(netns, write)
