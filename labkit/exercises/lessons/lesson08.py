"""Lesson 08, TC: an egress filter that drops UDP to one port and nothing else
(q1), and a header rewrite on egress, DSCP 46 with the IPv4 checksum kept
right, that the receiver sees (q2).

Each check builds its own sandbox, puts the answer on the *egress* of the host
side (``lab.attach_tc(..., sb.host_iface, "egress", netns=sb.host_ns)``: a
tcx link on 6.6+, the clsact qdisc on 6.1) and sends real traffic from the host
namespace to sockets in the target namespace, all opened in this process. The
IPv4 parts run with permanent neighbour entries, so they do not depend on ARP;
the ARP part flushes them first and pings.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time

from labkit._errors import SandboxError, VerifierError
from labkit.exercises.framework import (
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    answer_function,
    load_answer,
    snippet_text,
)
from labkit.lab import Lab
from labkit.net.netns import run_in_netns
from labkit.net.sandbox import Sandbox

__all__ = ["DSCP", "PORT", "SENT_TOS", "build"]

#: q1: the UDP destination port the answer drops
PORT = 4444
_SWAPPED = int.from_bytes(PORT.to_bytes(2, "big"), "little")   # 23569: PORT read in the wrong byte order
_OTHER = 5000
#: q2: the DSCP the answer sets, and the TOS byte the checker sends (DSCP 16 = CS2, ECN 0b10 = ECT(0))
DSCP = 46
SENT_TOS = (16 << 2) | 0b10

_COUNT = 3          # datagrams per flow
_DROP_WAIT = 0.5    # s: how long a datagram that must be dropped is waited for
_PASS_WAIT = 2.0    # s: how long traffic that must pass may take (right answers finish at once)
_IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)


# ------------------------------------------------------------------ traffic
def _socket(ns: str, kind: int) -> socket.socket:
    return run_in_netns(ns, lambda: socket.socket(socket.AF_INET, kind))


def _udp(sb: Sandbox, flows: list[tuple[int, int, int | None]], *, dropped: int | None = None
         ) -> list[tuple[int, list[int]]]:
    """Send _COUNT datagrams per flow (destination port, source port or 0,
    TOS or None) from the host namespace to the target namespace, all at once:
    for each flow (how many arrived, the TOS byte each arrived with). Waits
    until every other flow than ``dropped`` (an index: the flow that must not
    arrive, waited for _DROP_WAIT) is complete, at most _PASS_WAIT."""
    rxs, txs = [], []
    try:
        for dport, sport, tos in flows:
            rx = _socket(sb.target_ns, socket.SOCK_DGRAM)
            rxs.append(rx)
            rx.setsockopt(socket.IPPROTO_IP, _IP_RECVTOS, 1)
            rx.bind((sb.target_ip, dport))
            rx.setblocking(False)
            tx = _socket(sb.host_ns, socket.SOCK_DGRAM)
            txs.append(tx)
            tx.bind((sb.host_ip, sport))
            if tos is not None:
                tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        tokens = [b"labkit-lesson08 %d" % dport for dport, _, _ in flows]
        for tx, token, (dport, _, _) in zip(txs, tokens, flows):
            for _ in range(_COUNT):
                tx.sendto(token, (sb.target_ip, dport))
        got = [0] * len(flows)
        toses: list[list[int]] = [[] for _ in flows]
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            complete = all(g == _COUNT for i, g in enumerate(got) if i != dropped)
            if elapsed >= _PASS_WAIT or (complete and (dropped is None or elapsed >= _DROP_WAIT)):
                break
            ready, _, _ = select.select([r for r, g in zip(rxs, got) if g < _COUNT] or [], [], [],
                                        min(0.05, _PASS_WAIT - elapsed))
            for rx in ready:
                i = rxs.index(rx)
                try:
                    data, anc, _flags, _addr = rx.recvmsg(256, socket.CMSG_SPACE(4))
                except BlockingIOError:
                    continue
                if data != tokens[i]:
                    continue
                got[i] += 1
                for level, kind, value in anc:
                    if level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
                        toses[i].append(value[0])
        return list(zip(got, toses))
    finally:
        for sock in rxs + txs:
            sock.close()


def _tcp(sb: Sandbox, port: int) -> str:
    """Connect from the host namespace to ``port`` in the target namespace: "ok" or what failed."""
    with _socket(sb.target_ns, socket.SOCK_STREAM) as srv, _socket(sb.host_ns, socket.SOCK_STREAM) as cli:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((sb.target_ip, port))
        srv.listen(1)
        cli.settimeout(_PASS_WAIT)
        try:
            cli.connect((sb.target_ip, port))
            cli.sendall(b"hello")
            srv.settimeout(_PASS_WAIT)
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(_PASS_WAIT)
                return "ok" if conn.recv(10) == b"hello" else "the bytes sent did not arrive"
        except (socket.timeout, TimeoutError):
            return f"no connection within {_PASS_WAIT:g} s"
        except OSError as e:
            return e.strerror or str(e)


def _tcp_meanwhile(sb: Sandbox, port: int) -> threading.Thread:
    """:func:`_tcp` in a thread (started), its result as ``.result``: it runs while UDP is waited for."""
    t = threading.Thread(target=lambda: setattr(t, "result", _tcp(sb, port)), name="lesson08-tcp", daemon=True)
    t.result = "not run"
    t.start()
    return t


def _ip(sb: Sandbox, side: str, *args: str) -> None:
    out = sb.run(["ip", *args], side=side)
    if out.returncode:
        raise SandboxError(f"the checker could not run `ip {' '.join(args)}` in the sandbox: {out.stderr.strip()}")


def _pin_neighbours(sb: Sandbox) -> None:
    """Permanent neighbour entries both ways: the IPv4 parts do not depend on ARP."""
    _ip(sb, "host", "neigh", "replace", sb.target_ip, "lladdr", sb.target_mac, "dev", sb.host_iface,
        "nud", "permanent")
    _ip(sb, "target", "neigh", "replace", sb.host_ip, "lladdr", sb.host_mac, "dev", sb.target_iface,
        "nud", "permanent")


def _arp_and_ping(sb: Sandbox) -> tuple[int, int]:
    """Forget the neighbours, then ping: (sent, answered). ARP has to leave the host for any answer."""
    _ip(sb, "host", "neigh", "del", sb.target_ip, "dev", sb.host_iface)
    _ip(sb, "target", "neigh", "del", sb.host_ip, "dev", sb.target_iface)
    sb.flush_neighbors()
    r = sb.ping(count=2, interval=0.1, timeout=1)
    return r.transmitted, r.received


# ------------------------------------------------------------------ the answer on the kernel
def _attach_egress(lab: Lab, prog, sb: Sandbox):
    try:
        return lab.attach_tc(prog, sb.host_iface, "egress", netns=sb.host_ns, fn=answer_function(prog, "struct __sk_buff", "TC"))
    except VerifierError as e:
        log = e.log if getattr(e, "log", None) else str(e)
        if re.search(r"invalid access to packet|outside of the packet", log):
            raise Incorrect(
                "the verifier refused the program: it reads packet bytes that no bounds check proved are there. "
                "Before reading a header's fields, check that the whole header is inside the packet, e.g. "
                "`if ((void *)(udp + 1) > data_end) return TC_ACT_OK;`.\nThe verifier said: "
                + str(e).splitlines()[0].split(": ", 1)[-1], error="VerifierError") from None
        raise


def _on_egress(answer, judge) -> tuple[str, dict]:
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        with Sandbox() as sb:
            _pin_neighbours(sb)
            t = _attach_egress(lab, prog, sb)
            return judge(sb, {"via": t.via})


# ------------------------------------------------------------------ q1
_CONSTANTS = ("TC's verdicts are not XDP's: TC_ACT_OK (0) lets a packet go, TC_ACT_SHOT (2) drops it; XDP_PASS "
              "is 2, which TC reads as TC_ACT_SHOT")


def _judge_port_drop(sb: Sandbox, details: dict) -> tuple[str, dict]:
    tcp_run = _tcp_meanwhile(sb, PORT)
    (dropped, _), (other, _), (swapped, _), (from_port, _) = _udp(
        sb, [(PORT, 0, None), (_OTHER, 0, None), (_SWAPPED, 0, None), (_OTHER + 1, PORT, None)], dropped=0)
    tcp_run.join()
    tcp = tcp_run.result
    sent, answered = _arp_and_ping(sb)
    details.update(udp_to_port=dropped, udp_to_other=other, udp_to_swapped=swapped, udp_from_port=from_port,
                   tcp_to_port=tcp, ping_sent=sent, ping_answered=answered)
    everything_else_gone = other == 0 and swapped == 0 and from_port == 0 and tcp != "ok"
    c = Checklist()
    c.part(f"UDP to port {PORT} is dropped", dropped == 0,
           f"{dropped} of {_COUNT} datagrams to UDP port {PORT} left the host: compare the UDP header's dest with "
           f"bpf_htons({PORT}) (ports are in network byte order) and return TC_ACT_SHOT"
           + (f". Everything else was dropped instead: {_CONSTANTS}" if everything_else_gone else ""))
    c.part(f"UDP to another port ({_OTHER}) leaves", other == _COUNT,
           f"{other} of {_COUNT} datagrams to UDP port {_OTHER} arrived: only port {PORT} is to be dropped, not "
           "all UDP" + (f" ({_CONSTANTS})" if everything_else_gone else ""))
    c.part(f"UDP to port {_SWAPPED} ({PORT} with its bytes swapped) leaves", swapped == _COUNT,
           f"{swapped} of {_COUNT} datagrams to UDP port {_SWAPPED} arrived: {_SWAPPED} is {PORT} in the wrong "
           f"byte order. udp->dest is big-endian: compare it with bpf_htons({PORT}), or bpf_ntohs(udp->dest) "
           f"with {PORT}")
    c.part(f"UDP from source port {PORT} leaves", from_port == _COUNT,
           f"{from_port} of {_COUNT} datagrams from source port {PORT} (to port {_OTHER + 1}) arrived: on egress "
           f"the port this host sends *to* is the destination (udp->dest), not the source")
    c.part(f"TCP to port {PORT} leaves", tcp == "ok",
           f"a TCP connection to port {PORT} failed ({tcp}): only UDP is to be dropped; look at ip->protocol "
           "before reading a UDP header")
    c.part("ARP and ping leave", answered > 0,
           f"after the neighbour caches were flushed, {answered} of {sent} pings were answered: ARP (not IPv4) "
           "and ICMP must leave; return TC_ACT_OK for what is not UDP to the port")
    return c.done(f"yes: on the egress (via {details['via']}) UDP to port {PORT} was dropped, UDP to ports "
                  f"{_OTHER} and {_SWAPPED}, UDP from port {PORT}, TCP to port {PORT}, ARP and ping left",
                  **details)


def _check_port_drop(answer) -> tuple[str, dict]:
    return _on_egress(answer, _judge_port_drop)


# ------------------------------------------------------------------ q2
def _judge_dscp(sb: Sandbox, details: dict) -> tuple[str, dict]:
    tcp_run = _tcp_meanwhile(sb, _OTHER + 1)
    [(got, toses)] = _udp(sb, [(_OTHER, 0, SENT_TOS)])
    tcp_run.join()
    tcp = tcp_run.result
    sent, answered = _arp_and_ping(sb)
    dscps = sorted({t >> 2 for t in toses})
    ecns = sorted({t & 3 for t in toses})
    details.update(udp_sent=_COUNT, udp_received=got, tos_received=[hex(t) for t in toses], tcp=tcp,
                   ping_sent=sent, ping_answered=answered)
    nothing = (f"no datagram arrived, so there was nothing to look at" if not got else "")
    c = Checklist()
    c.part("the datagrams arrive (the IPv4 checksum is right)", got == _COUNT,
           f"{got} of {_COUNT} datagrams arrived: the receiver's IP stack drops a packet whose header checksum "
           "is wrong. The checksum covers the TOS byte: after changing it, update the checksum with "
           "bpf_l3_csum_replace() (old and new 16-bit word, size 2: the TOS is the second byte of the header's "
           "first word) or recompute it")
    c.part(f"the receiver sees DSCP {DSCP}", bool(toses) and dscps == [DSCP],
           nothing or f"the receiver saw DSCP {', '.join(map(str, dscps))} (TOS {', '.join(details['tos_received'])})"
           f": DSCP is the TOS byte's upper six bits, so DSCP {DSCP} is (tos & 0x03) | ({DSCP} << 2)")
    c.part("the ECN bits are kept", bool(toses) and ecns == [SENT_TOS & 3],
           nothing or f"the sender's ECN bits were {SENT_TOS & 3:#04b}, the receiver saw "
           f"{', '.join(f'{e:#04b}' for e in ecns)}: keep the TOS byte's two low bits (ECN) as they are")
    c.part("TCP still connects", tcp == "ok", f"a TCP connection failed ({tcp})")
    c.part("ARP and ping still work", answered > 0,
           f"after the neighbour caches were flushed, {answered} of {sent} pings were answered: rewrite only "
           "IPv4 packets (check the ethertype); ARP has no TOS byte")
    tos = (SENT_TOS & 3) | (DSCP << 2)
    return c.done(f"yes: on the egress (via {details['via']}) every datagram arrived with TOS {tos:#04x} (DSCP "
                  f"{DSCP}, ECN kept) and a right checksum; TCP, ARP and ping still work", **details)


def _check_dscp(answer) -> tuple[str, dict]:
    return _on_egress(answer, _judge_dscp)


def build() -> Lesson:
    """The exercises of lesson 08."""
    return Lesson("08", "TC", [
        Exercise(
            "q1",
            f"Write a TC program for the egress of the sandbox's host side that drops IPv4 UDP datagrams to "
            f"destination port {PORT} and lets everything else leave: UDP to other ports (and from source port "
            f"{PORT}), TCP to port {PORT}, ARP and ping.",
            _check_port_drop,
            f"Parse Ethernet, IPv4 (ip->protocol == IPPROTO_UDP), then the UDP header at ip->ihl * 4, checking "
            f"each header is inside the packet. Ports are big-endian: udp->dest == bpf_htons({PORT}). TC's "
            "verdicts: TC_ACT_SHOT drops, TC_ACT_OK lets go (not XDP_DROP / XDP_PASS).",
            lambda: snippet_text("solution_08_udp_port_drop"),
            lambda: "solution_08_udp_port_drop",
            "c",
        ),
        Exercise(
            "q2",
            f"Write a TC program for the egress of the sandbox's host side that sets the DSCP of every IPv4 "
            f"packet to {DSCP} (EF, expedited forwarding), keeps the two ECN bits as they are, and keeps the "
            "IPv4 header checksum right, so the receiver gets the packets and sees the new DSCP.",
            _check_dscp,
            "The TOS byte is DSCP << 2 | ECN. Read it, build the new one ((tos & 3) | (46 << 2)), write it with "
            "bpf_skb_store_bytes() and update the checksum with bpf_l3_csum_replace(skb, csum offset, old word, "
            "new word, 2), where a word is the header's first two bytes (version/IHL and TOS) as they are in "
            "the packet. Leave what is not IPv4 alone.",
            lambda: snippet_text("solution_08_set_dscp"),
            lambda: "solution_08_set_dscp",
            "c",
        ),
    ])
