"""TC on interfaces, as the network sees it: the clsact qdisc, cls_bpf filters and their records.

On a kernel without tcx (Debian 12's 6.1), or when asked with
``via="netlink"``, a TC program goes on an interface as a cls_bpf filter in
direct-action mode under the clsact qdisc; such a filter outlives its process,
so it is recorded under /run/labkit/tc and a dead owner's filter is removed by
the next labkit process (labkit.net.leftovers). Attaching itself (the rules,
the tcx link, TcAttachment) is the TC hook kind, labkit.hooks.tc.
"""

from labkit.net.counters import TC_ACTIONS
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
    "PARENTS",
    "TC_ACTIONS",
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
