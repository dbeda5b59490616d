"""XDP on interfaces, as the network sees it: slots, netlink, records, devmaps.

Which program sits in which slot (native, generic) of which interface of
which namespace, attaching and removing through netlink, the records of
netlink attaches, program names, and writing a devmap from inside a sandbox.
Attaching itself (the rules, the bpf_link, XdpAttachment) is the XDP hook
kind, labkit.hooks.xdp.
"""

from labkit.net.counters import read_counters
from labkit.net.guards import default_route_ifindexes
from labkit.net.xdp.devmap import devmap_set
from labkit.net.xdp.netlink import (
    MODE_FLAGS,
    PREFIX,
    XDP_STATE_DIR,
    find_labkit_xdp,
    forget_netlink_attach,
    interface,
    interfaces,
    netlink_records,
    netlink_set,
    prog_name,
    record_netlink_attach,
)
from labkit.programs.libbpf import libbpf

__all__ = [
    "MODE_FLAGS",
    "PREFIX",
    "XDP_STATE_DIR",
    "default_route_ifindexes",
    "devmap_set",
    "find_labkit_xdp",
    "forget_netlink_attach",
    "interface",
    "interfaces",
    "libbpf",
    "netlink_records",
    "netlink_set",
    "prog_name",
    "read_counters",
    "record_netlink_attach",
]
