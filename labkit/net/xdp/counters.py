"""Reading an XDP program's exact counters: per-CPU packets and bytes per (action, protocol)."""

from __future__ import annotations

import pandas as pd

from labkit.events.schemas import N_PROTO, PROTOCOLS, XDP_ACTIONS
from labkit.programs.compile import Program

__all__ = ["read_counters"]


def read_counters(program: Program) -> pd.DataFrame:
    """Sum the per-CPU (action, protocol) counters of ``program``'s ``counters``
    map: exact packets and bytes, one row per pair that saw a packet."""
    table = program["counters"]
    rows = []
    n = int(table.max_entries)
    for idx in range(n):
        vals = table[idx]
        packets = sum(int(v.packets) for v in vals)
        nbytes = sum(int(v.bytes) for v in vals)
        if packets:
            action, proto = divmod(idx, N_PROTO)
            rows.append({"action": XDP_ACTIONS.get(action, str(action)),
                         "protocol": PROTOCOLS[proto] if proto < N_PROTO else str(proto),
                         "packets": packets, "bytes": nbytes})
    return pd.DataFrame(rows, columns=["action", "protocol", "packets", "bytes"]).astype(
        {"packets": "int64", "bytes": "int64"})
