"""Lesson 08, TC: an egress filter that drops UDP to one port and nothing else
(q1), and a header rewrite on egress, DSCP 46 with the IPv4 checksum kept
right, that the receiver sees (q2).

Each check builds its own sandbox, puts the answer on the *egress* of the host
side (``lab.attach_tc(..., sb.host_iface, "egress", netns=sb.host_ns)``: a
tcx link on 6.6+, the clsact qdisc on 6.1) and sends real traffic from the host
namespace to sockets in the target namespace, all opened in this process. The
IPv4 parts run with permanent neighbour entries, so they do not depend on ARP;
the ARP part flushes them first and pings.

IP options exist: both exercises also send datagrams whose IP header carries
options (IHL 6 and 15, set with IP_OPTIONS on the sending socket). Where a
parser that assumes a 20-byte IP header reads the UDP destination port (frame
offset 36) these hold option bytes: 256 and 9988 for datagrams to port 4444,
and 4444 itself (a stream-identifier option) for datagrams to another port,
so q1's fixed-offset parser gets a verdict wrong either way; q2's checksum
covers the options. q2 also sends datagrams from a raw socket (IP_HDRINCL)
whose header checksum, chosen through the IP id, makes the TOS change borrow
in one's complement arithmetic (network and little-endian byte order) or need
RFC 1624's second fold: only a checksum update with the end-around carry gets
those to the receiver.

Why this file is long: both exercises share one traffic generator (UDP flows,
crafted raw headers, TCP, ARP, the sandbox's baseline), and each exercise's
diagnosis sits beside the parts it names.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from typing import NamedTuple

from labkit._errors import SandboxError, VerifierError
from labkit.exercises.framework import (
    Check,
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
from labkit.net.traffic import inet_checksum

__all__ = ["CARRY_CHECKSUMS", "DSCP", "PORT", "SENT_TOS", "build"]

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

#: IP options the checker's datagrams carry: (IHL, what they are, the bytes after the 20-byte header)
_NOPS = (6, "three no-ops and an end-of-options byte", bytes([1, 1, 1, 0]))
_RECORD_ROUTE = (15, "a no-op and a record-route option", bytes([1, 7, 39, 4]) + bytes(36))
_STREAM_ID = (6, f"a stream-identifier option, stream {PORT}", bytes([0x88, 4]) + PORT.to_bytes(2, "big"))
#: q1: the IP options of the datagrams to PORT that carry some; q2: those of the datagrams whose DSCP is set
_TO_PORT_WITH_OPTIONS = (_NOPS, _RECORD_ROUTE)
_DSCP_OPTIONS = (_NOPS, _RECORD_ROUTE)
#: q2: IP header checksums (as sent, TOS SENT_TOS, IHL 5) where changing the TOS to DSCP 46 borrows past 16 bits
#: in network byte order (below 0x78, the change), in a little-endian CPU's (low byte below 0x78), or where
#: RFC 1624's ~(~HC + ~m + m') needs its second fold (0x0077; 0xff77 in little-endian order)
CARRY_CHECKSUMS = (0x0001, 0x0077, 0xFF77)


class _Flow(NamedTuple):
    """Datagrams from the host namespace to a port in the target namespace: from ``sport`` (0: any), with
    TOS ``tos`` (None: the default), IP ``options`` (IHL, what, bytes), or sent from a raw socket with a header
    whose checksum is ``checksum``."""

    dport: int
    sport: int = 0
    tos: int | None = None
    options: tuple | None = None
    checksum: int | None = None


# ------------------------------------------------------------------ traffic
def _socket(ns: str, kind: int) -> socket.socket:
    return run_in_netns(ns, lambda: socket.socket(socket.AF_INET, kind))


def _crafted(sb: Sandbox, flow: _Flow, sport: int, payload: bytes) -> bytes:
    """An IPv4 UDP datagram for a raw IP_HDRINCL socket whose header checksum (the kernel computes it) is
    ``flow.checksum``: the IP id is chosen to make it so (an id of 0 the kernel would replace: then another
    TTL). The UDP checksum is 0, none (allowed over IPv4)."""
    for ttl in range(64, 32, -1):
        head = struct.pack("!BBHHHBBH4s4s", 0x45, flow.tos or 0, 28 + len(payload), 0, 0x4000, ttl,
                           socket.IPPROTO_UDP, 0, socket.inet_aton(sb.host_ip), socket.inet_aton(sb.target_ip))
        want, have = ~flow.checksum & 0xFFFF, ~inet_checksum(head) & 0xFFFF   # one's complement sums
        ident = want - have if want >= have else want - have + 0xFFFF
        if ident:
            head = head[:4] + struct.pack("!H", ident) + head[6:]
            return head + struct.pack("!HHHH", sport, flow.dport, 8 + len(payload), 0) + payload
    raise SandboxError(f"the checker could not make an IP header with checksum {flow.checksum:#06x}")


def _send(sb: Sandbox, flows: list[_Flow], tokens: list[bytes]) -> list[socket.socket]:
    """Send _COUNT datagrams per flow, all at once; the sending sockets (for the caller to close)."""
    txs = []
    for i, (flow, token) in enumerate(zip(flows, tokens)):
        if flow.checksum is not None:
            tx = run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
            txs.append(tx)
            packet = _crafted(sb, flow, 40000 + i, token)
            for _ in range(_COUNT):
                tx.sendto(packet, (sb.target_ip, 0))
            continue
        tx = _socket(sb.host_ns, socket.SOCK_DGRAM)
        txs.append(tx)
        tx.bind((sb.host_ip, flow.sport))
        if flow.tos is not None:
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, flow.tos)
        if flow.options is not None:
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, flow.options[2])
        for _ in range(_COUNT):
            tx.sendto(token, (sb.target_ip, flow.dport))
    return txs


def _udp(sb: Sandbox, flows: list[_Flow], *, dropped: tuple[int, ...] = ()) -> list[tuple[int, list[int]]]:
    """Send _COUNT datagrams per flow from the host namespace to the target namespace, all at once: for each
    flow (how many arrived, the TOS byte each arrived with). Waits until every flow but those in ``dropped``
    (indexes: the flows that must not arrive, waited for _DROP_WAIT) is complete, at most _PASS_WAIT.
    When not one datagram of the flows that must arrive did, they are all sent once more: a right answer
    once lost every one on a loaded host (CI), and an answer that drops them all loses them again."""
    got = _udp_once(sb, flows, dropped=dropped)
    if not any(n for i, (n, _t) in enumerate(got) if i not in dropped):
        got = _udp_once(sb, flows, dropped=dropped)
    return got


def _udp_once(sb: Sandbox, flows: list[_Flow], *, dropped: tuple[int, ...] = ()) -> list[tuple[int, list[int]]]:
    rxs: dict[int, socket.socket] = {}
    txs: list[socket.socket] = []
    tokens = [b"labkit-lesson08 flow %d" % i for i in range(len(flows))]
    try:
        for flow in flows:
            if flow.dport not in rxs:
                rx = rxs[flow.dport] = _socket(sb.target_ns, socket.SOCK_DGRAM)
                rx.setsockopt(socket.IPPROTO_IP, _IP_RECVTOS, 1)
                rx.bind((sb.target_ip, flow.dport))
                rx.setblocking(False)
        txs = _send(sb, flows, tokens)
        got = [0] * len(flows)
        toses: list[list[int]] = [[] for _ in flows]
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            complete = all(g >= _COUNT for i, g in enumerate(got) if i not in dropped)
            if elapsed >= _PASS_WAIT or (complete and (not dropped or elapsed >= _DROP_WAIT)):
                break
            ready, _, _ = select.select(list(rxs.values()), [], [], min(0.05, _PASS_WAIT - elapsed))
            for rx in ready:
                try:
                    data, anc, _flags, _addr = rx.recvmsg(256, socket.CMSG_SPACE(4))
                except BlockingIOError:
                    continue
                if data not in tokens:
                    continue
                i = tokens.index(data)
                got[i] += 1
                for level, kind, value in anc:
                    if level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
                        toses[i].append(value[0])
        return list(zip(got, toses))
    finally:
        for sock in list(rxs.values()) + txs:
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


#: a fresh sandbox must deliver within _BASELINE_WAIT s to _BASELINE_PORT (no flow's: no straggler is theirs)
_BASELINE_WAIT, _BASELINE_PORT = 10.0, 5999


def _baseline(sb: Sandbox, wait: float = _BASELINE_WAIT) -> None:
    """Before the answer is attached, a datagram must arrive (sent again until one does): a sandbox that
    delivers nothing by itself is the machine's failure, not the answer's (SandboxError, no verdict)."""
    deadline = time.monotonic() + wait
    while not _udp_once(sb, [_Flow(_BASELINE_PORT)])[0][0]:
        if time.monotonic() >= deadline:
            raise SandboxError(f"the checker's sandbox delivered none of its datagrams to port {_BASELINE_PORT} within "
                               f"{wait:g} s, before your program was attached: the machine is too busy "
                               "or its network namespaces are broken (labkit doctor); run the check again")


def _on_egress(answer, measure) -> dict:
    """The answer on a fresh sandbox's host egress (once it delivers: :func:`_baseline`), and what
    ``measure(sb)`` saw (with ``via``: how TC attached)."""
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        with Sandbox() as sb:
            _pin_neighbours(sb)
            _baseline(sb)
            t = _attach_egress(lab, prog, sb)
            return {"via": t.via, **measure(sb)}


# ------------------------------------------------------------------ q1
_CONSTANTS = ("TC's verdicts are not XDP's: TC_ACT_OK (0) lets a packet go, TC_ACT_SHOT (2) drops it; XDP_PASS "
              "is 2, which TC reads as TC_ACT_SHOT")


#: where a parser that assumes a 20-byte IP header finds the UDP header: Ethernet (14) + 20
_FIXED = "offset 34 (14 + 20)"
_IHL_HINT = ("The UDP header starts ip->ihl * 4 bytes into the IP header (IHL 6: offset 38 in the frame; IHL 15: "
             "offset 74): `struct udphdr *udp = (void *)ip + ip->ihl * 4;`")


def _read_as_dest(options: tuple) -> int:
    """What a parser that assumes a 20-byte IP header reads as udp->dest: the options' bytes 2 and 3."""
    return int.from_bytes(options[2][2:4], "big")


def _options_parts(c: Checklist, with_options: list[int], to_other: int, plain_dropped: bool,
                   plain_other_left: bool) -> None:
    """q1's parts on datagrams whose IP header carries options: to PORT (one count per option set in
    _TO_PORT_WITH_OPTIONS) dropped; to _OTHER with a stream-identifier option naming PORT leaves."""
    left = [(opts, n) for opts, n in zip(_TO_PORT_WITH_OPTIONS, with_options) if n]
    said = "; ".join(f"{n} of {_COUNT} with IHL {o[0]} ({o[1]})" for o, n in left)
    if not left:
        why = ""
    elif plain_dropped:
        reads = ", ".join(f"{_read_as_dest(o)} with IHL {o[0]}" for o, _n in left)
        why = (f"datagrams to UDP port {PORT} whose IP header carries options left the host ({said}) though those "
               f"without options were dropped: with options the UDP header is not at {_FIXED}, where the options "
               f"are (what is read there as the destination port: {reads}). {_IHL_HINT}")
    else:
        why = f"datagrams to UDP port {PORT} whose IP header carries options left the host too ({said})"
    c.part(f"UDP to port {PORT} with IP options is dropped (IHL 6 and 15)", not left, why)

    if to_other == _COUNT:
        why = ""
    elif plain_other_left:
        why = (f"{to_other} of {_COUNT} datagrams to UDP port {_OTHER} whose IP header carries {_STREAM_ID[1]} "
               f"(IHL 6) arrived though those without options did: at {_FIXED}, where a parser that assumes a "
               f"20-byte IP header reads the UDP header, is that option, so it reads {_read_as_dest(_STREAM_ID)} "
               f"as the destination port. {_IHL_HINT}")
    else:
        why = (f"{to_other} of {_COUNT} datagrams to UDP port {_OTHER} whose IP header carries {_STREAM_ID[1]} "
               "arrived, too few")
    c.part(f"UDP to port {_OTHER} with IP options leaves ({_STREAM_ID[1]})", to_other == _COUNT, why)


def _measure_port_drop(sb: Sandbox) -> dict:
    """How many datagrams of each flow arrived (``udp``: to PORT, to _OTHER, to _SWAPPED, from PORT, to PORT
    with each of _TO_PORT_WITH_OPTIONS, to _OTHER with _STREAM_ID), TCP to PORT, and ping after a flush."""
    tcp_run = _tcp_meanwhile(sb, PORT)
    flows = [_Flow(PORT), _Flow(_OTHER), _Flow(_SWAPPED), _Flow(_OTHER + 1, PORT),
             *(_Flow(PORT, options=o) for o in _TO_PORT_WITH_OPTIONS), _Flow(_OTHER, options=_STREAM_ID)]
    counts = [n for n, _toses in _udp(sb, flows, dropped=(0, 4, 5))]
    tcp_run.join()
    sent, answered = _arp_and_ping(sb)
    return {"udp": counts, "tcp": tcp_run.result, "ping_sent": sent, "ping_answered": answered}


def _diagnose_port_drop(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_measure_port_drop` saw."""
    dropped, other, swapped, from_port, *with_options, other_with_option = obs["udp"]
    tcp, sent, answered = obs["tcp"], obs["ping_sent"], obs["ping_answered"]
    details: dict = {"via": obs["via"]}
    details.update(udp_to_port=dropped, udp_to_other=other, udp_to_swapped=swapped, udp_from_port=from_port,
                   udp_to_port_with_options={f"IHL {o[0]}": n for o, n in zip(_TO_PORT_WITH_OPTIONS, with_options)},
                   udp_to_other_with_option=other_with_option, tcp_to_port=tcp, ping_sent=sent,
                   ping_answered=answered)
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
    _options_parts(c, with_options, other_with_option, dropped == 0, other == _COUNT)
    c.part(f"TCP to port {PORT} leaves", tcp == "ok",
           f"a TCP connection to port {PORT} failed ({tcp}): only UDP is to be dropped; look at ip->protocol "
           "before reading a UDP header")
    c.part("ARP and ping leave", answered > 0,
           f"after the neighbour caches were flushed, {answered} of {sent} pings were answered: ARP (not IPv4) "
           "and ICMP must leave; return TC_ACT_OK for what is not UDP to the port")
    return c.done(f"yes: on the egress (via {details['via']}) UDP to port {PORT} was dropped, with IP options too; "
                  f"UDP to ports {_OTHER} (with and without IP options) and {_SWAPPED}, UDP from port {PORT}, TCP to "
                  f"port {PORT}, ARP and ping left", **details)


def _observe_port_drop(answer) -> dict:
    """The answer on the egress, and the traffic's fate (:func:`_measure_port_drop`)."""
    return _on_egress(answer, _measure_port_drop)


# ------------------------------------------------------------------ q2
def _arrived(counts: list[int], what: list[str]) -> str:
    return "; ".join(f"{w}: {n} of {_COUNT}" for w, n in zip(what, counts) if n < _COUNT)


def _checksum_parts(c: Checklist, with_options: list[int], carry: list[int], plain_arrived: bool,
                    hdr_errors: int) -> None:
    """q2's parts on the header checksum beyond the plain datagrams: with IP options (the checksum covers them),
    and with the header checksums where the update borrows (CARRY_CHECKSUMS)."""
    bad = f" (the receiver's IP stack counted {hdr_errors} bad headers, Ip InHdrErrors)" if hdr_errors else ""
    lost = _arrived(with_options, [f"IHL {o[0]} ({o[1]})" for o in _DSCP_OPTIONS])
    if not lost:
        why = ""
    elif plain_arrived:
        why = (f"datagrams whose IP header carries options did not all arrive ({lost}){bad} though those without "
               "did: the header checksum covers the whole header, options included, ip->ihl * 4 bytes and not "
               "always 20. Recompute it over ip->ihl * 2 16-bit words, or update it incrementally "
               "(bpf_l3_csum_replace), which does not need the header's length")
    else:
        why = f"datagrams whose IP header carries options did not arrive either ({lost})"
    c.part("datagrams with IP options arrive (IHL 6 and 15)", not lost, why)

    lost = _arrived(carry, [f"checksum {x:#06x}" for x in CARRY_CHECKSUMS])
    if not lost:
        why = ""
    elif plain_arrived:
        why = (f"datagrams whose IP header checksum makes the update borrow past 16 bits did not all arrive ({lost})"
               f"{bad} though the others did: the checksum is a one's complement sum, so a carry (or borrow) out "
               "of the top bit comes back in at the bottom. RFC 1624: HC' = ~(~HC + ~m + m') with the sum folded back "
               "into 16 bits, sum = (sum & 0xffff) + (sum >> 16), twice (the first fold can carry again); or let "
               "bpf_l3_csum_replace() do it")
    else:
        why = f"datagrams whose IP header checksum makes the update borrow did not arrive either ({lost})"
    c.part("the checksum stays right when the update borrows (headers with checksums "
           f"{', '.join(f'{x:#06x}' for x in CARRY_CHECKSUMS)})", not lost, why)


def _measure_dscp(sb: Sandbox) -> dict:
    """For each flow (plain, with each of _DSCP_OPTIONS, with each of CARRY_CHECKSUMS) how many datagrams
    arrived and the TOS byte of each (``udp``: [how many, [TOS, ...]]), the receiver's Ip InHdrErrors growth,
    TCP, and ping after a flush."""
    tcp_run = _tcp_meanwhile(sb, _OTHER + 1)
    flows = [_Flow(_OTHER, tos=SENT_TOS), *(_Flow(_OTHER, tos=SENT_TOS, options=o) for o in _DSCP_OPTIONS),
             *(_Flow(_OTHER, tos=SENT_TOS, checksum=x) for x in CARRY_CHECKSUMS)]
    ip0 = sb.snmp("target")["Ip"]
    results = _udp(sb, flows)
    hdr_errors = sb.snmp("target")["Ip"].get("InHdrErrors", 0) - ip0.get("InHdrErrors", 0)
    tcp_run.join()
    sent, answered = _arp_and_ping(sb)
    return {"udp": [[n, list(toses)] for n, toses in results], "hdr_errors": hdr_errors, "tcp": tcp_run.result,
            "ping_sent": sent, "ping_answered": answered}


def _diagnose_dscp(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_measure_dscp` saw."""
    results, hdr_errors = obs["udp"], obs["hdr_errors"]
    tcp, sent, answered = obs["tcp"], obs["ping_sent"], obs["ping_answered"]
    details: dict = {"via": obs["via"]}
    (got, plain_toses), counts = results[0], [n for n, _t in results]
    with_options, carry = counts[1:1 + len(_DSCP_OPTIONS)], counts[1 + len(_DSCP_OPTIONS):]
    toses = [t for _n, ts in results for t in ts]          # every datagram that arrived, each judged
    dscps = sorted({t >> 2 for t in toses})
    ecns = sorted({t & 3 for t in toses})
    details.update(udp_sent=_COUNT, udp_received=got, tos_received=[hex(t) for t in plain_toses], tcp=tcp,
                   udp_with_options_received={f"IHL {o[0]}": n for o, n in zip(_DSCP_OPTIONS, with_options)},
                   udp_carry_received={f"{x:#06x}": n for x, n in zip(CARRY_CHECKSUMS, carry)},
                   target_ip_in_hdr_errors=hdr_errors, ping_sent=sent, ping_answered=answered)
    nothing = (f"no datagram arrived, so there was nothing to look at" if not toses else "")
    c = Checklist()
    c.part("the datagrams arrive (the IPv4 checksum is right)", got == _COUNT,
           f"{got} of {_COUNT} datagrams arrived: the receiver's IP stack drops a packet whose header checksum "
           "is wrong. The checksum covers the TOS byte: after changing it, update the checksum with "
           "bpf_l3_csum_replace() (old and new 16-bit word, size 2: the TOS is the second byte of the header's "
           "first word) or recompute it")
    c.part(f"the receiver sees DSCP {DSCP}", bool(toses) and dscps == [DSCP],
           nothing or f"the receiver saw DSCP {', '.join(map(str, dscps))} (TOS "
           f"{', '.join(sorted({hex(t) for t in toses}))}): DSCP is the TOS byte's upper six bits, so DSCP {DSCP} is "
           f"(tos & 0x03) | ({DSCP} << 2)")
    c.part("the ECN bits are kept", bool(toses) and ecns == [SENT_TOS & 3],
           nothing or f"the sender's ECN bits were {SENT_TOS & 3:#04b}, the receiver saw "
           f"{', '.join(f'{e:#04b}' for e in ecns)}: keep the TOS byte's two low bits (ECN) as they are")
    _checksum_parts(c, with_options, carry, got == _COUNT, hdr_errors)
    c.part("TCP still connects", tcp == "ok", f"a TCP connection failed ({tcp})")
    c.part("ARP and ping still work", answered > 0,
           f"after the neighbour caches were flushed, {answered} of {sent} pings were answered: rewrite only "
           "IPv4 packets (check the ethertype); ARP has no TOS byte")
    tos = (SENT_TOS & 3) | (DSCP << 2)
    return c.done(f"yes: on the egress (via {details['via']}) every datagram arrived with TOS {tos:#04x} (DSCP "
                  f"{DSCP}, ECN kept) and a right checksum, with IP options (IHL 6 and 15) too and where the update "
                  f"borrows (header checksums {', '.join(f'{x:#06x}' for x in CARRY_CHECKSUMS)}); TCP, ARP and ping "
                  "still work", **details)


def _observe_dscp(answer) -> dict:
    """The answer on the egress, and the traffic's fate (:func:`_measure_dscp`)."""
    return _on_egress(answer, _measure_dscp)


def build() -> Lesson:
    """The exercises of lesson 08."""
    return Lesson("08", "TC", [
        Exercise(
            "q1",
            f"Write a TC program for the egress of the sandbox's host side that drops IPv4 UDP datagrams to "
            f"destination port {PORT} and lets everything else leave: UDP to other ports (and from source port "
            f"{PORT}), TCP to port {PORT}, ARP and ping.",
            Check(_observe_port_drop, _diagnose_port_drop),
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
            Check(_observe_dscp, _diagnose_dscp),
            "The TOS byte is DSCP << 2 | ECN. Read it, build the new one ((tos & 3) | (46 << 2)), write it with "
            "bpf_skb_store_bytes() and update the checksum with bpf_l3_csum_replace(skb, csum offset, old word, "
            "new word, 2), where a word is the header's first two bytes (version/IHL and TOS) as they are in "
            "the packet. Leave what is not IPv4 alone.",
            lambda: snippet_text("solution_08_set_dscp"),
            lambda: "solution_08_set_dscp",
            "c",
        ),
    ])
