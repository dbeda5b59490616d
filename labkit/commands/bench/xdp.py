"""The XDP phase: labkit's XDP counters under a UDP and a ping flood, inside a
:class:`labkit.Sandbox` (traffic never leaves the sandbox's namespaces)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from typing import Any

from labkit.lab import Lab
from labkit.net import netns as _netns
from labkit.net.sandbox import Sandbox
from labkit.net.traffic import parse_ping

__all__ = ["phase_xdp"]


def _link_stats(sb, side: str, iface: str) -> dict[str, int]:
    """An interface's packet and drop counters (``ip -s link``) on one side of the sandbox."""
    r = sb.run(["ip", "-s", "-j", "link", "show", "dev", iface], side=side)
    try:
        st = json.loads(r.stdout)[0]["stats64"]
        return {"rx_packets": st["rx"]["packets"], "rx_dropped": st["rx"]["dropped"],
                "tx_packets": st["tx"]["packets"], "tx_dropped": st["tx"]["dropped"]}
    except (ValueError, KeyError, IndexError):
        return {}


def _qdisc_drops(sb) -> int | None:
    """Packets dropped by the qdiscs on the sender's veth (None without tc)."""
    if not shutil.which("tc"):
        return None
    r = sb.run(["tc", "-s", "-j", "qdisc", "show", "dev", sb.host_iface], side="host")
    try:
        return sum(int(q.get("drops", 0)) for q in json.loads(r.stdout))
    except (ValueError, TypeError):
        return None


def _udp_flood_python(sb, count: int, port: int) -> tuple[int, float, int]:
    """The UDP flood without the C load generator: (sent, seconds, send errors)."""
    sock = _netns.run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        payload, dst, sent, errors = b"labkit bench datagram".ljust(32, b"\0"), (sb.target_ip, port), 0, 0
        t = time.perf_counter()
        deadline = t + 60
        while sent < count and time.perf_counter() < deadline:
            try:
                sock.sendto(payload, dst)
                sent += 1
            except OSError:
                errors += 1
        return sent, time.perf_counter() - t, errors


def phase_xdp(lg_kind: str, lg_exe: str | None, cfg: dict) -> dict[str, Any]:
    """xdp_icmp_drop in a fresh :class:`Sandbox`: a UDP flood (passed) and a ping flood
    (dropped), and whether its counters match what was sent. Traffic stays in the sandbox."""
    out: dict[str, Any] = {}
    sb = Sandbox()
    out["sandbox_id"] = sb.id
    out["namespaces"] = [sb.host_ns, sb.target_ns]
    lab = Lab()
    try:
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        out["mode"] = x.mode
        out["via"] = x.via
        warm = sb.send_udp(count=3)            # resolves ARP before counting starts
        out["warmup_udp_received"] = warm.received
        port = 9                                 # discard; nothing listens in the target namespace
        # a queue on the sender's veth: when the receiving ring is full the veth then
        # pushes back (the socket blocks) instead of dropping before XDP sees the packet
        out["sender_qdisc"] = None
        if shutil.which("tc"):
            r = sb.run(["tc", "qdisc", "replace", "dev", sb.host_iface, "root", "pfifo", "limit", "1000"], side="host")
            out["sender_qdisc"] = "pfifo limit 1000" if r.returncode == 0 else f"none ({r.stderr.strip()})"
        time.sleep(0.05)
        if x.events is not None:
            x.events.poll()
        before = x.counters()
        ev0 = (x.events.received, x.events.lost) if x.events else (0, 0)
        st0 = {"host": _link_stats(sb, "host", sb.host_iface), "target": _link_stats(sb, "target", sb.target_iface)}
        n = cfg["udp_packets"]
        if lg_kind == "c":
            r = sb.run([lg_exe, "udp", sb.target_ip, str(port), str(n), "60"], side="host", timeout=90)
            parts = r.stdout.split()
            if len(parts) < 4 or parts[0] != "D":
                raise RuntimeError(f"UDP flood failed: {r.stdout!r} {r.stderr!r}")
            sent, secs, errors = int(parts[1]), int(parts[2]) / 1e9, int(parts[3])
            out["sender"] = "C loop (sendto) in the sandbox's host namespace"
        else:
            sent, secs, errors = _udp_flood_python(sb, n, port)
            out["sender"] = "Python loop (sendto) in the sandbox's host namespace"
        time.sleep(0.3)
        mid = x.counters()

        def delta(df_after, df_before, action, proto):
            def get(df):
                m = df[(df.action == action) & (df.protocol == proto)]
                return int(m.packets.sum())
            return get(df_after) - get(df_before)

        counted = delta(mid, before, "pass", "udp")
        st1 = {"host": _link_stats(sb, "host", sb.host_iface), "target": _link_stats(sb, "target", sb.target_iface)}
        out.update({"udp_sent": sent, "udp_send_errors": errors, "udp_seconds": secs,
                    "udp_counted": counted, "udp_pps": counted / secs if secs else 0.0,
                    "host_tx_dropped": st1["host"].get("tx_dropped", 0) - st0["host"].get("tx_dropped", 0),
                    "target_rx_dropped": st1["target"].get("rx_dropped", 0) - st0["target"].get("rx_dropped", 0),
                    "host_tx_packets": st1["host"].get("tx_packets", 0) - st0["host"].get("tx_packets", 0),
                    "qdisc_dropped": _qdisc_drops(sb)})
        # ping flood: every echo request is dropped by the program
        pc = cfg["ping_count"]
        r = sb.run(["ping", "-n", "-q", "-f", "-i", "0.001", "-c", str(pc), "-W", "1", sb.target_ip], side="host", timeout=120)
        ping = parse_ping(r.stdout + r.stderr, r.returncode)
        time.sleep(0.2)
        after = x.counters()
        out.update({"ping_sent": ping.transmitted, "ping_received": ping.received,
                    "ping_counted_dropped": delta(after, mid, "drop", "icmp")})
        total_after = int(after.packets.sum()) - int(before.packets.sum())
        if x.events is not None:
            deadline = time.time() + 5
            while time.time() < deadline:
                x.events.poll()
                got = x.events.received - ev0[0] + x.events.lost - ev0[1]
                if got >= total_after:
                    break
                time.sleep(0.01)
            out["events_received"] = x.events.received - ev0[0]
            out["events_lost"] = x.events.lost - ev0[1]
            out["packets_counted_all"] = total_after
        out["sent"] = sent + ping.transmitted
        out["counted"] = counted + out["ping_counted_dropped"]
        x.detach()
    finally:
        lab.close()
        sb.close()
    out["sandbox_left"] = any(os.path.exists(f"/run/netns/{ns}") for ns in out["namespaces"])
    return out
