"""Lesson 02, XDP ping drop: the classic program made ARP-safe, checked in a fresh sandbox."""

from __future__ import annotations

from labkit.exercises.framework import (
    Exercise,
    Incorrect,
    Lesson,
    load_answer,
    snippet_text,
)
from labkit.lab import Lab
from labkit.net.sandbox import Sandbox

__all__ = ["build"]


def _check_arp_safe(answer) -> tuple[str, dict]:
    with Sandbox() as sb, Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp", defines={"LK_SAMPLE_EVERY": 1})
        x = lab.attach_xdp(prog, iface=sb.target_iface, netns=sb.target_ns)
        ping = sb.ping(count=3, interval=0.1, timeout=0.4)
        flushed = sb.flush_neighbors()
        udp = sb.send_udp(count=10, timeout=0.5)
        mode = x.mode
    details = {"ping_received": ping.received, "udp_sent": udp.sent,
               "udp_received": udp.received, "neighbours_flushed": flushed, "mode": mode}
    problems = []
    if ping.received:
        problems.append(f"pings got through ({ping.received} of {ping.transmitted} answered): ICMP echo must "
                        "still be dropped")
    if udp.received < udp.sent:
        problems.append(f"after the neighbour caches were flushed, {udp.received} of {udp.sent} UDP datagrams "
                        "arrived: the ARP request that must come first was dropped. Pass every frame that is "
                        "not IPv4")
    if problems:
        raise Incorrect("; ".join(problems), **details)
    return ("yes: in a fresh sandbox pings were dropped, and after flushing the neighbour caches ARP went "
            f"through and {udp.received}/{udp.sent} UDP datagrams arrived"), details


def build() -> Lesson:
    """The exercises of lesson 02."""
    return Lesson("02", "XDP ping drop", [
        Exercise(
            "q1",
            "Make the classic program ARP-safe: drop ICMP echo (ping), pass everything else — ARP, IPv6, "
            "UDP, TCP — even after the neighbour caches are flushed.",
            _check_arp_safe,
            "The bug is `if (ethertype != ETH_P_IP) return XDP_DROP`: a frame that is not IPv4 is not "
            "yours to judge. And not every ICMP message is a ping: look at the ICMP type (8 and 0).",
            lambda: snippet_text("solution_02_arp_safe"),
            lambda: "solution_02_arp_safe",
            "c",
        ),
    ])

