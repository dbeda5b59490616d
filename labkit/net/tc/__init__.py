"""TC attachments: a BPF program on what enters (ingress) or leaves (egress) an interface.

XDP sees a frame only as it arrives, before the kernel has made an skb of it.
TC (the traffic-control layer) runs with the skb, on both sides: ingress
after XDP, egress as a packet leaves, which XDP never sees. labkit attaches a
TC program through a **tcx link** (kernel >= 6.6: the kernel takes it off when
the owning process dies) or, on older kernels (Debian 12's 6.1) or when asked
with ``via="netlink"``, as a **cls_bpf filter in direct-action mode under the
clsact qdisc**, recorded under /run/labkit/tc so a dead owner's filter is
removed by the next labkit process (labkit.net.leftovers).

One file per job; this package re-exports their public names:

    link.py      tcx links through libbpf (bpf_link_create, BPF_TCX_INGRESS/EGRESS)
    netlink.py   clsact + cls_bpf through pyroute2, and the records of those attaches
    attach.py    the attach rules (Lab.attach_tc) and TcAttachment
"""

from labkit.net.tc.attach import TC_VIAS, TcAttachment, attach_tc, check_direction, check_tc_via
from labkit.net.counters import TC_ACTIONS
from labkit.net.tc.link import DIRECTIONS, TCX_ATTACH_TYPES, tcx_create, tcx_error_means_unsupported
from labkit.net.tc.netlink import (
    PARENTS,
    TC_STATE_DIR,
    filters,
    forget_tc_attach,
    netlink_add_filter,
    netlink_remove_filter,
    prog_id_of_fd,
    record_tc_attach,
    recorded_filter,
    tc_records,
)

__all__ = [
    "DIRECTIONS",
    "PARENTS",
    "TCX_ATTACH_TYPES",
    "TC_ACTIONS",
    "TC_STATE_DIR",
    "TC_VIAS",
    "TcAttachment",
    "attach_tc",
    "check_direction",
    "check_tc_via",
    "filters",
    "forget_tc_attach",
    "netlink_add_filter",
    "netlink_remove_filter",
    "prog_id_of_fd",
    "record_tc_attach",
    "recorded_filter",
    "tc_records",
    "tcx_create",
    "tcx_error_means_unsupported",
]
