"""labkit.views.feeds with fake records: what a live panel counts and shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import LabkitError
from labkit.events.schemas import CLONE_DTYPE, SYSCALL_DTYPE, XDP_EVENT_DTYPE, clone_frame, syscall_frame, xdp_frame
from labkit.views.bins import Bins
from labkit.views.feeds import StreamFeed, XdpFeed, feed_for

SEC = 10**9
CLONE_THREAD, CLONE_VFORK = 0x00010000, 0x00004000


class FakeStream:
    """What a feed uses of an EventStream, over records made here."""

    def __init__(self, rec: np.ndarray, frame):
        self.rec, self.frame, self.payload = rec, frame, rec.dtype
        self.name, self.source, self.state = "fake", "tracepoint x:y", "running"
        self.running, self.received, self.lost, self.window = True, len(rec), 0, 100
        self.listeners: list = []

    def records(self, last=None):
        return self.rec[len(self.rec) - (len(self.rec) if last is None else last):]

    def to_dataframe(self, last=None):
        return self.frame(self.records(last))

    def __len__(self):
        return len(self.rec)

    def add_listener(self, fn):
        self.listeners.append(fn)

    def remove_listener(self, fn):
        self.listeners.remove(fn)

    def stop(self):
        self.running = False

    def emit(self):
        for fn in self.listeners:
            fn(self.rec)


def clone_records() -> np.ndarray:
    rec = np.zeros(4, dtype=CLONE_DTYPE)
    rec["ts"] = [1 * SEC, 1 * SEC, 2 * SEC, 2 * SEC + 5]
    rec["pid"] = [10, 11, 12, 13]
    rec["flags"] = [0, CLONE_THREAD, CLONE_VFORK, CLONE_THREAD | 0x11]
    rec["comm"] = [b"bash", b"python\0junk", b"bash", b"sh"]
    return rec


def xdp_records() -> np.ndarray:
    rec = np.zeros(3, dtype=XDP_EVENT_DTYPE)
    rec["ts"] = 3 * SEC
    rec["action"] = [1, 1, 2]
    rec["proto"] = [2, 2, 4]                      # icmp, icmp, udp
    rec["family"] = 4
    return rec


def counted(feed: StreamFeed, stream: FakeStream, now_bin: int) -> dict[str, list[float]]:
    bins = Bins(nbins=3, bin_ns=SEC, max_series=6)
    feed.bind(bins)
    stream.emit()
    feed.unbind()
    assert stream.listeners == []
    return {k: list(v) for k, v in bins.series(now_bin)[1].items()}


def test_clone_events_are_counted_by_kind_and_shown_newest_first():
    s = FakeStream(clone_records(), clone_frame("tracepoint"))
    feed = StreamFeed(s)
    assert feed.name == "fake" and feed.source is s and feed.running
    assert counted(feed, s, 2) == {"fork": [0.0, 1.0, 0.0], "thread": [0.0, 1.0, 1.0], "vfork": [0.0, 0.0, 1.0]}
    df = feed.table(3)
    assert list(df.columns) == ["time", "pid", "child_pid", "uid", "comm", "kind"]
    assert list(df.pid) == [13, 12, 11] and list(df.comm) == ["sh", "bash", "python"]
    assert df.time.str.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}").all()
    assert "received 4" in feed.status() and "window 100" in feed.status()
    feed.close()
    assert not s.running


@pytest.mark.parametrize("by, expected", [
    ("comm", {"bash": [0.0, 1.0, 1.0], "python": [0.0, 1.0, 0.0], "sh": [0.0, 0.0, 1.0]}),
    ("pid", {"10": [0.0, 1.0, 0.0], "11": [0.0, 1.0, 0.0], "12": [0.0, 0.0, 1.0], "13": [0.0, 0.0, 1.0]}),
    (lambda rec: np.where(rec["pid"] % 2 == 0, "even", "odd"), {"even": [0.0, 1.0, 1.0], "odd": [0.0, 1.0, 1.0]}),
    (False, {"events": [0.0, 2.0, 2.0]}),
])
def test_by_any_field_a_function_or_nothing(by, expected):
    s = FakeStream(clone_records(), clone_frame("tracepoint"))
    assert counted(StreamFeed(s, by=by), s, 2) == expected


def test_by_an_unknown_field_is_refused():
    s = FakeStream(clone_records(), clone_frame("tracepoint"))
    with pytest.raises(LabkitError, match="no such field"):
        StreamFeed(s, by="nope")


def test_syscall_events_by_comm_and_their_columns():
    rec = np.zeros(2, dtype=SYSCALL_DTYPE)
    rec["ts"], rec["comm"] = 5 * SEC, [b"cat", b"cat"]
    s = FakeStream(rec, syscall_frame("tracepoint", "openat"))
    feed = StreamFeed(s, columns=["pid", "syscall", "no such column"])
    assert counted(feed, s, 5) == {"cat": [0.0, 0.0, 2.0]}
    assert list(feed.table(5).columns) == ["pid", "syscall"]
    assert list(StreamFeed(s).table(1).columns) == ["time", "pid", "tid", "uid", "comm", "syscall",
                                                    "arg0", "arg1", "arg2"]


def test_xdp_events_by_action_and_protocol():
    s = FakeStream(xdp_records(), xdp_frame)
    feed = StreamFeed(s)
    assert counted(feed, s, 3) == {"drop icmp": [0.0, 0.0, 2.0], "pass udp": [0.0, 0.0, 1.0]}
    assert list(feed.table(1).columns) == ["time", "src", "dst", "protocol", "action", "length"]


class FakeXdp:
    """What a feed uses of an XdpAttachment: counters that grow."""

    class program:
        name = "xdp_icmp_drop"

    target, mode, via, state, attached = "ns:veth", "generic", "bpf_link", "attached", True

    def __init__(self):
        self.packets = {("drop", "icmp"): 2, ("pass", "udp"): 5}

    def counters(self) -> pd.DataFrame:
        if not self.attached:
            raise LabkitError("detached")
        return pd.DataFrame([{"action": a, "protocol": p, "packets": n, "bytes": 100 * n}
                             for (a, p), n in self.packets.items()])

    def detach(self):
        self.attached = False


def test_xdp_counters_become_packets_per_second():
    att = FakeXdp()
    feed = XdpFeed(att)
    assert feed.name == "xdp(ns:veth)" and feed.source is att and feed.running
    bins = Bins(nbins=3, bin_ns=SEC, max_series=6)
    feed.bind(bins)                                    # what was counted before is not a rate
    feed.tick(7)
    assert bins.series(7)[1] == {}
    att.packets[("drop", "icmp")] += 4
    att.packets[("pass", "arp")] = 1
    feed.tick(8)
    assert {k: list(v) for k, v in bins.series(8)[1].items()} == {"drop icmp": [0.0, 0.0, 4.0],
                                                                  "pass arp": [0.0, 0.0, 1.0]}
    df = feed.table(10)
    assert list(df.columns) == ["action", "protocol", "packets", "bytes", "per s (last 2 s)"]
    assert list(zip(df.action, df.protocol, df.packets)) == [("drop", "icmp", 6), ("pass", "udp", 5),
                                                             ("pass", "arp", 1)]
    assert "generic mode via bpf_link" in feed.status()
    feed.close()
    assert not feed.running
    feed.tick(9)                                       # a detached attachment keeps its last counters
    assert len(feed.table(10)) == 3


def test_feed_for():
    assert feed_for(None) is None
    with pytest.raises(LabkitError, match="EventStream or an XdpAttachment"):
        feed_for(object())
