"""The exact packet counters labkit's XDP and TC snippets keep: a per-CPU array
``counters`` indexed by action * N_PROTO + protocol class, with packets and
bytes. :func:`read_counters` sums it; :class:`PacketCounters` gives an
attachment ``counters()`` and ``packets()``, which still answer after detach."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from labkit._errors import ArgumentError, ClosedError
from labkit.events.schemas import N_PROTO, PROTOCOLS, XDP_ACTIONS
from labkit.programs.compile import Program

__all__ = ["PacketCounters", "TC_ACTIONS", "read_counters"]

#: TC verdicts (uapi/linux/pkt_cls.h TC_ACT_*) by value, as labkit names them.
TC_ACTIONS = {0: "ok", 1: "reclassify", 2: "shot", 3: "pipe", 4: "stolen", 5: "queued", 6: "repeat",
              7: "redirect"}


def read_counters(program: Program, actions: Mapping[int, str] = XDP_ACTIONS) -> pd.DataFrame:
    """Sum the per-CPU (action, protocol) counters of ``program``'s ``counters``
    map: exact packets and bytes, one row per pair that saw a packet.
    ``actions`` names the action numbers (XDP_ACTIONS, or TC_ACTIONS for TC)."""
    table = program["counters"]
    rows = []
    for idx in range(int(table.max_entries)):
        vals = table[idx]
        packets = sum(int(v.packets) for v in vals)
        nbytes = sum(int(v.bytes) for v in vals)
        if packets:
            action, proto = divmod(idx, N_PROTO)
            rows.append({"action": actions.get(action, str(action)),
                         "protocol": PROTOCOLS[proto] if proto < N_PROTO else str(proto),
                         "packets": packets, "bytes": nbytes})
    return pd.DataFrame(rows, columns=["action", "protocol", "packets", "bytes"]).astype(
        {"packets": "int64", "bytes": "int64"})


class PacketCounters:
    """``counters()`` and ``packets()`` for an attachment whose program keeps
    labkit's ``counters`` map; ``keep_final_counters()`` (called while
    unhooking) lets them answer after detach with the last values read."""

    #: what the counters' action numbers mean, and whose snippets keep the map (for errors)
    actions: Mapping[int, str] = XDP_ACTIONS
    hook_name = "XDP"
    snippets = "labkit's XDP snippets"
    _final_counters: pd.DataFrame | None = None

    def counters(self) -> pd.DataFrame:
        """Exact packets and bytes per (action, protocol), from the per-CPU maps.
        After detach: the last values read."""
        if self.state != "attached" or self.program.closed:  # type: ignore[attr-defined]
            if self._final_counters is not None:
                return self._final_counters.copy()
            raise ClosedError(f"{self.hook_name} on {self.target} is {self.state} "  # type: ignore[attr-defined]
                              "and its program has no counters map")
        if not self.program.has_table("counters"):  # type: ignore[attr-defined]
            raise ArgumentError(f"{self.program.name} has no 'counters' map ({self.snippets} have one)")  # type: ignore[attr-defined]
        return read_counters(self.program, self.actions)  # type: ignore[attr-defined]

    def packets(self, action: str | None = None, protocol: str | None = None) -> int:
        """Sum of counted packets, e.g. ``x.packets("drop", "icmp")`` or ``t.packets("shot", "udp")``."""
        df = self.counters()
        if action is not None:
            df = df[df.action == action]
        if protocol is not None:
            df = df[df.protocol == protocol]
        return int(df.packets.sum())

    def keep_final_counters(self) -> None:
        """Read the counters one last time (before the program goes), if it has them."""
        try:
            if self.program.has_table("counters") and not self.program.closed:  # type: ignore[attr-defined]
                self._final_counters = read_counters(self.program, self.actions)  # type: ignore[attr-defined]
        except Exception:
            pass
