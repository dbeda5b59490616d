"""Event layouts: every record a labkit BPF program emits, defined once.

Each layout is a numpy dtype that matches a C struct in ``bpf_snippets/`` byte
for byte (``tests/unit/test_schemas.py`` compiles each snippet and compares
offsets and sizes, so the two cannot drift), plus the function that turns a
batch of records into a pandas DataFrame with named, typed columns.

    schema            C struct (snippet)                 DataFrame columns
    CLONE_DTYPE       struct clone_event (trace_clone*.c)      time pid tid child_pid uid comm kind flags source
    SYSCALL_DTYPE     struct syscall_event (trace_syscall.c)    time pid tid uid comm syscall nr arg0..arg5 source
    XDP_EVENT_DTYPE   struct xdp_event (xdp_icmp_drop.c)          time src dst protocol action length ...
"""

from __future__ import annotations

import ipaddress
import time
from typing import Callable

import numpy as np
import pandas as pd

__all__ = [
    "CLONE_DTYPE",
    "SYSCALL_DTYPE",
    "XDP_EVENT_DTYPE",
    "XDP_ACTIONS",
    "PROTOCOLS",
    "N_PROTO",
    "Frame",
    "clone_frame",
    "clone_kind",
    "comm_column",
    "syscall_frame",
    "time_column",
    "xdp_frame",
]

Frame = Callable[[np.ndarray], pd.DataFrame]

CLONE_THREAD = 0x00010000
CLONE_VFORK = 0x00004000

CLONE_DTYPE = np.dtype([("ts", "<u8"), ("pid", "<u4"), ("tid", "<u4"), ("child_pid", "<u4"),
                        ("uid", "<u4"), ("flags", "<u8"), ("comm", "S16")])
SYSCALL_DTYPE = np.dtype([("ts", "<u8"), ("pid", "<u4"), ("tid", "<u4"), ("uid", "<u4"), ("nr", "<i4"),
                          ("args", "<u8", (6,)), ("comm", "S16")])
XDP_EVENT_DTYPE = np.dtype({
    "names": ["ts", "saddr", "daddr", "len", "ethertype", "family", "proto", "ip_proto", "action", "icmp_type"],
    "formats": ["<u8", ("u1", 16), ("u1", 16), "<u4", "<u2", "u1", "u1", "u1", "u1", "u1"],
    "offsets": [0, 8, 24, 40, 44, 46, 47, 48, 49, 50],
    "itemsize": 56,
})

XDP_ACTIONS = {0: "aborted", 1: "drop", 2: "pass", 3: "tx", 4: "redirect"}
PROTOCOLS = ["other", "arp", "icmp", "icmpv6", "udp", "tcp", "ipv4-other", "ipv6-other"]
N_PROTO = len(PROTOCOLS)

# bpf_ktime_get_ns() is CLOCK_MONOTONIC; this turns it into wall-clock time
_MONO_TO_WALL_NS = time.time_ns() - time.monotonic_ns()


def comm_column(raw: np.ndarray) -> list[str]:
    return [b.split(b"\0", 1)[0].decode("utf-8", "replace") for b in raw.tolist()]


def time_column(ts: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(ts.astype("int64") + _MONO_TO_WALL_NS, unit="ns", utc=True)


def clone_kind(flags: np.ndarray) -> np.ndarray:
    flags = flags.astype(np.uint64)
    return np.where(flags & np.uint64(CLONE_THREAD), "thread",
                    np.where(flags & np.uint64(CLONE_VFORK), "vfork", "fork"))


def clone_frame(source: str) -> Frame:
    def frame(rec: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({
            "time": time_column(rec["ts"]),
            "pid": rec["pid"].astype("int64"),
            "tid": rec["tid"].astype("int64"),
            "child_pid": rec["child_pid"].astype("int64"),
            "uid": rec["uid"].astype("int64"),
            "comm": comm_column(rec["comm"]),
            "kind": clone_kind(rec["flags"]),
            "flags": rec["flags"].astype("uint64"),
            "source": source,
        })
    return frame


def syscall_frame(source: str, syscall: str) -> Frame:
    def frame(rec: np.ndarray) -> pd.DataFrame:
        cols = {
            "time": time_column(rec["ts"]),
            "pid": rec["pid"].astype("int64"),
            "tid": rec["tid"].astype("int64"),
            "uid": rec["uid"].astype("int64"),
            "comm": comm_column(rec["comm"]),
            "syscall": syscall,
            "nr": rec["nr"].astype("int64"),
        }
        for i in range(6):
            cols[f"arg{i}"] = rec["args"][:, i].astype("uint64")
        cols["source"] = source
        return pd.DataFrame(cols)
    return frame


def _addr(raw: bytes, family: int) -> str:
    if family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == 6:
        return str(ipaddress.IPv6Address(raw))
    return ""


def xdp_frame(rec: np.ndarray) -> pd.DataFrame:
    fam = rec["family"].tolist()
    cache: dict[tuple[bytes, int], str] = {}

    def addrs(col: str) -> list[str]:
        out = []
        for raw, f in zip((r.tobytes() for r in rec[col]), fam):
            k = (raw, f)
            if k not in cache:
                cache[k] = _addr(raw, f)
            out.append(cache[k])
        return out

    return pd.DataFrame({
        "time": time_column(rec["ts"]),
        "src": addrs("saddr"),
        "dst": addrs("daddr"),
        "protocol": [PROTOCOLS[p] if p < N_PROTO else str(p) for p in rec["proto"].tolist()],
        "action": [XDP_ACTIONS.get(a, str(a)) for a in rec["action"].tolist()],
        "length": rec["len"].astype("int64"),
        "family": rec["family"].astype("int64"),
        "ip_proto": rec["ip_proto"].astype("int64"),
        "icmp_type": pd.array([None if t == 0xFF else t for t in rec["icmp_type"].tolist()], dtype="Int64"),
        "ethertype": [f"0x{e:04x}" for e in rec["ethertype"].tolist()],
    })
