"""Reading a TC program's exact counters: per-CPU packets and bytes per (verdict, protocol)."""

from __future__ import annotations

import pandas as pd

from labkit.events.schemas import N_PROTO, PROTOCOLS
from labkit.programs.compile import Program

__all__ = ["TC_ACTIONS", "read_tc_counters"]

#: TC verdicts (uapi/linux/pkt_cls.h TC_ACT_*) by value, as labkit names them.
TC_ACTIONS = {0: "ok", 1: "reclassify", 2: "shot", 3: "pipe", 4: "stolen", 5: "queued", 6: "repeat",
              7: "redirect"}


def read_tc_counters(program: Program) -> pd.DataFrame:
    """Sum the per-CPU (verdict, protocol) counters of ``program``'s ``counters``
    map (index verdict * N_PROTO + protocol class, as labkit's tc_* snippets
    count): exact packets and bytes, one row per pair that saw a packet."""
    table = program["counters"]
    rows = []
    for idx in range(int(table.max_entries)):
        vals = table[idx]
        packets = sum(int(v.packets) for v in vals)
        nbytes = sum(int(v.bytes) for v in vals)
        if packets:
            action, proto = divmod(idx, N_PROTO)
            rows.append({"action": TC_ACTIONS.get(action, str(action)),
                         "protocol": PROTOCOLS[proto] if proto < N_PROTO else str(proto),
                         "packets": packets, "bytes": nbytes})
    return pd.DataFrame(rows, columns=["action", "protocol", "packets", "bytes"]).astype(
        {"packets": "int64", "bytes": "int64"})
