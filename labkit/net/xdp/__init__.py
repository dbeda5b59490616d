"""XDP attachments that the kernel takes off when their process dies.

BCC's ``attach_xdp`` uses netlink: the program stays on the interface after
exit, ``kill -9`` or a Jupyter kernel restart, and keeps dropping. labkit
attaches through a **bpf_link** (``bpf_link_create`` from libbpf.so.1, kernel
>= 5.9): the link lives as long as its file descriptor, so the kernel detaches
the program when the owning process dies. Netlink attach is only a fallback
(or asked for with ``via="netlink"``), and then it is recorded under
/run/labkit/xdp so ``labkit cleanup`` finds it.

Generic (skb) and native (driver) mode are separate slots on an interface; a
program is always detached with the mode it was attached with.

One file per job; this package re-exports their public names:

    link.py      libbpf through ctypes: bpf_link_create, program names
    netlink.py   interfaces and their slots, netlink attach and its records
    attach.py    the attach rules (Lab.attach_xdp) and XdpAttachment
    devmap.py    writing a devmap (XDP_REDIRECT's targets) from inside a sandbox's namespace
"""

from labkit.net.guards import default_route_ifindexes
from labkit.net.xdp.attach import MODES, VIAS, XdpAttachment, attach_xdp, check_mode, check_via
from labkit.net.counters import read_counters
from labkit.net.xdp.devmap import devmap_set
from labkit.net.xdp.link import MODE_FLAGS, PREFIX, libbpf, link_create, link_error_means_unsupported, prog_name
from labkit.net.xdp.netlink import (
    XDP_STATE_DIR,
    find_labkit_xdp,
    forget_netlink_attach,
    interface,
    interfaces,
    netlink_records,
    netlink_set,
    record_netlink_attach,
)

__all__ = [
    "MODES",
    "MODE_FLAGS",
    "PREFIX",
    "VIAS",
    "XDP_STATE_DIR",
    "XdpAttachment",
    "attach_xdp",
    "check_mode",
    "check_via",
    "default_route_ifindexes",
    "devmap_set",
    "find_labkit_xdp",
    "forget_netlink_attach",
    "interface",
    "interfaces",
    "libbpf",
    "link_create",
    "link_error_means_unsupported",
    "netlink_records",
    "netlink_set",
    "prog_name",
    "read_counters",
    "record_netlink_attach",
]
