"""Lesson 07, XDP beyond DROP: a ping responder with XDP_TX (q1) and allow/block
rules in an LPM trie, longest prefix wins (q2). Each check builds its own
sandbox and sends its own traffic there.

q1 attaches the answer in generic mode (native XDP_TX on a veth needs an XDP
program on the peer too: see the lesson). It judges, each as one part: every
ping from the host is answered; the host's kernel accepted every reply (its
Icmp InEchoReps grew by the pings sent and InCsumErrors not at all: ping
itself reads replies on a raw socket before the kernel checks them, so its
own count is not enough); the target's stack saw no echo request (Icmp
InEchos of the target namespace unchanged) and sent no reply; the target's
own pings still get their replies (echo replies entering it pass); UDP
passes; ARP passes (the neighbour caches start empty). Two parts send echo
requests of their own from a raw socket in the host namespace: ones whose
checksum makes the update carry out of 16 bits (0xf800 and up: adding 0x0800
overflows, in network byte order and in a little-endian CPU's), whose replies
the host's kernel must accept; and ones whose IP header carries options
(IHL 6 and 15, set with IP_OPTIONS), which must be answered from XDP too:
their ICMP header is not at offset 34.

q2 fills the answer's ``rules`` trie itself (keys: prefix length in bits,
IPv4 address in network byte order; values: 1 drop, 0 pass) in a /24
sandbox, and sends UDP from several source addresses of the host namespace.
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from labkit._errors import SandboxError, VerifierError
from labkit.exercises.framework import (
    Check,
    Checklist,
    Exercise,
    Incorrect,
    Lesson,
    answer_function,
    load_answer,
    plural,
    snippet_text,
)
from labkit.lab import Lab
from labkit.net.netns import run_in_netns
from labkit.net.sandbox import Sandbox
from labkit.net.traffic import inet_checksum

__all__ = ["CARRY_CHECKSUMS", "Q2_RULES", "Q2_SOURCES", "build"]

_PINGS = 5
_WAIT_S = 2.0          # how long traffic that must pass may take (right answers: milliseconds)
_ECHO_ID = 0x6C6B      # "lk": the ICMP id of the checker's own echo requests
#: q1: checksums (network byte order) of echo requests whose update for type 8 -> 0 carries: adding 0x0800
#: overflows 16 bits from 0xf800 on, and added in a little-endian CPU's byte order (0x0008 to the
#: byte-swapped word) when the low byte is 0xff too
CARRY_CHECKSUMS = (0xF800, 0xF8FF, 0xFCFF, 0xFEFF)
#: q1: the IP options of echo requests (IHL, what they are, the bytes after the 20-byte header)
_IP_OPTIONS = (
    (6, "three no-ops and an end-of-options byte", bytes([1, 1, 1, 0])),
    (15, "a no-op and a record-route option", bytes([1, 7, 39, 4]) + bytes(36)),
)

#: q2: (host part of the prefix in the sandbox's /24, prefix length, verdict): 1 drop, 0 pass
Q2_RULES = ((64, 26, 1), (72, 29, 0), (200, 32, 1), (128, 25, 0))
#: q2: (host part of a source address, what the rules say for it, why)
Q2_SOURCES = (
    (10, "pass", "no rule covers it"),
    (70, "drop", "inside the blocked /26 (.64 - .127)"),
    (75, "pass", "inside the /29 (.72 - .79) that passes, inside the blocked /26: the longest prefix wins"),
    (200, "drop", "a blocked /32"),
    (130, "pass", "inside a /25 (.128 - .255) that passes"),
)
_KEY = struct.Struct("=I4s")


def _verifier_refused(e: VerifierError) -> Incorrect | None:
    log = e.log if getattr(e, "log", None) else str(e)
    if re.search(r"invalid access to packet|outside of the packet", log):
        return Incorrect(
            "the verifier refused the program: it reads or writes packet bytes that no bounds check proved are "
            "there. Check each header before touching it, e.g. `if ((void *)(icmp + 1) > data_end) return "
            "XDP_PASS;`.\nThe verifier said: " + str(e).splitlines()[0].split(": ", 1)[-1], error="VerifierError")
    return None


def _attach(lab: Lab, prog, sb: Sandbox, mode: str):
    fn = answer_function(prog, "struct xdp_md", "XDP")
    try:
        return lab.attach_xdp(prog, iface=sb.target_iface, netns=sb.target_ns, mode=mode, fn=fn)
    except VerifierError as e:
        raise (_verifier_refused(e) or e) from None


def _icmp(sb: Sandbox, side: str) -> dict[str, int]:
    return sb.snmp(side)["Icmp"]


def _delta(after: dict[str, int], before: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


# ------------------------------------------------------------------ q1




def _echo_request(seq: int, payload: bytes) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, _ECHO_ID, seq) + payload
    return msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]


def _echo_with_checksum(checksum: int) -> bytes:
    """An echo request whose checksum is ``checksum``: its sequence number chosen to make it so."""
    want = ~checksum & 0xFFFF                         # the one's complement sum the words must have
    have = 0xFFFF & ~struct.unpack("!H", _echo_request(0, b"labkit lesson 07: the carry")[2:4])[0]
    seq = want - have if want >= have else want - have + 0xFFFF
    msg = _echo_request(seq, b"labkit lesson 07: the carry")
    if struct.unpack("!H", msg[2:4])[0] != checksum:
        raise AssertionError(f"the checker could not make an echo request with checksum {checksum:#06x}")
    return msg


@dataclass
class _Pings:
    """The checker's own echo requests (from a raw socket in the host namespace) and what became of them."""

    requests: dict[int, bytes]                       # sequence number -> the request (ICMP message)
    replies: dict[int, bytes] = field(default_factory=dict)   # sequence number -> the reply the host received
    host_accepted: int = 0                           # the host's Icmp InEchoReps grew by
    host_bad_csum: int = 0                           # the host's Icmp InCsumErrors grew by
    target_saw: int = 0                              # the target's Icmp InEchos grew by

    @property
    def unanswered(self) -> list[int]:
        return [seq for seq in self.requests if seq not in self.replies]

    def bad_checksums(self) -> list[tuple[int, int, int]]:
        """(request's checksum, reply's checksum, the reply's right checksum) for each reply with a wrong one."""
        return sorted((struct.unpack("!H", self.requests[seq][2:4])[0], struct.unpack("!H", r[2:4])[0],
                       inet_checksum(r[:2] + b"\0\0" + r[4:])) for seq, r in self.replies.items() if inet_checksum(r))

    def to_plain(self) -> dict:
        """As plain data: the requests and replies as [sequence number, hex] pairs, in order."""
        return {"requests": [[q, m.hex()] for q, m in self.requests.items()],
                "replies": [[q, m.hex()] for q, m in self.replies.items()], "host_accepted": self.host_accepted,
                "host_bad_csum": self.host_bad_csum, "target_saw": self.target_saw}

    @classmethod
    def from_plain(cls, d: dict) -> "_Pings":
        return cls({q: bytes.fromhex(m) for q, m in d["requests"]}, {q: bytes.fromhex(m) for q, m in d["replies"]},
                   d["host_accepted"], d["host_bad_csum"], d["target_saw"])

    @property
    def right(self) -> bool:
        """Every request answered, every reply's checksum right, and the host's kernel accepted them all."""
        return (not self.unanswered and not self.bad_checksums() and self.host_bad_csum == 0
                and self.host_accepted >= len(self.requests))


def _send_pings(sb: Sandbox, requests: list[bytes], options: bytes = b"") -> _Pings:
    """Send ``requests`` (echo requests, ICMP messages) from a raw socket in the host namespace, their IP
    header carrying ``options``; wait (at most _WAIT_S) for the replies there, and read both stacks' counters."""
    out = _Pings({struct.unpack("!H", m[6:8])[0]: m for m in requests})
    host0, tgt0 = _icmp(sb, "host"), _icmp(sb, "target")
    sock = run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    with sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, options)
        for msg in requests:
            sock.sendto(msg, (sb.target_ip, 0))
        deadline = time.monotonic() + _WAIT_S
        while out.unanswered and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            packet = sock.recv(2048)
            reply = packet[(packet[0] & 0x0F) * 4:]             # a raw socket reads the IP header too
            if len(reply) < 8 or reply[0] != 0:
                continue
            ident, seq = struct.unpack("!HH", reply[4:8])
            if ident == _ECHO_ID and seq in out.requests:
                out.replies[seq] = reply
    host1, tgt1 = _icmp(sb, "host"), _icmp(sb, "target")
    out.host_accepted = _delta(host1, host0, "InEchoReps")
    out.host_bad_csum = _delta(host1, host0, "InCsumErrors")
    out.target_saw = _delta(tgt1, tgt0, "InEchos")
    return out


def _crafted_pings(sb: Sandbox) -> tuple[_Pings, list[_Pings]]:
    """The checker's own echo requests: those whose checksum update carries, then those with each of
    _IP_OPTIONS (each set on its own, so the target's counters tell them apart)."""
    carry = _send_pings(sb, [_echo_with_checksum(x) for x in CARRY_CHECKSUMS])
    with_options = [_send_pings(sb, [_echo_request(seq, b"labkit lesson 07: IP options") for seq in (1, 2)], opts)
                    for _ihl, _what, opts in _IP_OPTIONS]
    return carry, with_options


def _crafted_details(carry: _Pings, with_options: list[_Pings]) -> dict:
    return {"carry_replies_bad": [f"{a:#06x} -> {b:#06x} (right {r:#06x})" for a, b, r in carry.bad_checksums()],
            "carry_unanswered": len(carry.unanswered), "carry_host_csum_errors": carry.host_bad_csum,
            "options_target_in_echos": {f"IHL {o[0]}": p.target_saw for o, p in zip(_IP_OPTIONS, with_options)},
            "options_unanswered": {f"IHL {o[0]}": len(p.unanswered) for o, p in zip(_IP_OPTIONS, with_options)}}


def _carry_part(c: Checklist, carry: _Pings, plain_accepted: bool) -> None:
    """The replies to echo requests whose checksum update carries: the host's kernel must accept them all."""
    n = len(carry.requests)
    bad = carry.bad_checksums()
    asked = ", ".join(f"{struct.unpack('!H', m[2:4])[0]:#06x}" for m in carry.requests.values())
    if carry.right:
        why = ""
    elif bad:
        why = ((f"every reply to ping was accepted, but the host's kernel rejected {len(bad)} of {n} replies" if
                plain_accepted else f"{len(bad)} of {n} replies had a wrong checksum too") +
               f" to echo requests whose checksum update carries out of 16 bits (Icmp InCsumErrors grew by "
               f"{carry.host_bad_csum}): " + "; ".join(f"the request's checksum {a:#06x}, the reply's {b:#06x}, "
                                                        f"right {r:#06x}" for a, b, r in bad[:2]) +
               ". The checksum is a one's complement sum: a carry out of the top bit comes back in at the bottom "
               "(RFC 1624): `u32 sum = icmp->checksum + bpf_htons(0x0800); icmp->checksum = sum + (sum >> 16);`")
    elif carry.unanswered:
        why = (f"{len(carry.unanswered)} of {n} echo requests whose checksum update carries (checksums {asked}) "
               "got no reply")
    else:
        why = (f"the host's kernel accepted {carry.host_accepted} of {n} replies to echo requests whose checksum "
               f"update carries (checksums {asked})")
    c.part(f"replies are right when the checksum update carries (requests with checksums {asked})", carry.right,
           why)


def _options_part(c: Checklist, with_options: list[_Pings], plain_unseen: bool) -> None:
    """Echo requests whose IP header carries options: answered from XDP as well, the target's stack sees none."""
    seen = [(ihl, what, p) for (ihl, what, _b), p in zip(_IP_OPTIONS, with_options) if p.target_saw]
    lost = [(ihl, what, p) for (ihl, what, _b), p in zip(_IP_OPTIONS, with_options)
            if p.unanswered and not p.target_saw]
    if seen:
        said = "; ".join(f"{p.target_saw} of {len(p.requests)} with IHL {ihl} ({what})" for ihl, what, p in seen)
        why = (f"echo requests whose IP header carries options reached the target's stack (Icmp InEchos: {said})"
               + (" though those without options were answered from XDP: a request with options is a request too, "
                  "and its ICMP header is not at offset 34, where its options begin. It starts ip->ihl * 4 bytes "
                  "into the IP header (IHL 6: offset 38 in the frame; IHL 15: offset 74): use "
                  "(void *)ip + ip->ihl * 4" if plain_unseen else " too"))
    elif lost:
        why = "echo requests whose IP header carries options got no reply: " + "; ".join(
            f"{len(p.unanswered)} of {len(p.requests)} with IHL {ihl} ({what})" for ihl, what, p in lost)
    else:
        why = ""
    c.part("echo requests with IP options are answered from XDP too (IHL 6 and 15)", not seen and not lost, why)


def _observe_responder(answer) -> dict:
    """Run the answer on a fresh sandbox's target: what became of pings, ARP, the target's own pings,
    UDP and the checker's crafted echo requests (see :func:`_responder_in`)."""
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        with Sandbox() as sb:
            return _responder_in(lab, prog, sb)


def _responder_in(lab: Lab, prog, sb: Sandbox) -> dict:
    """The pings from the host (sent, answered), both stacks' ICMP counters' growth, ARP, the target's own
    pings, UDP, and the crafted echo requests (``carry``, ``with_options``: :class:`_Pings` as plain data)."""
    x = _attach(lab, prog, sb, "generic")
    sb.flush_neighbors()
    host0, tgt0 = _icmp(sb, "host"), _icmp(sb, "target")
    ping = sb.ping(count=_PINGS, interval=0.05, timeout=_WAIT_S)
    host1, tgt1 = _icmp(sb, "host"), _icmp(sb, "target")
    arp = "lladdr" in sb.run(["ip", "neigh", "show", "to", sb.target_ip, "dev", sb.host_iface]).stdout
    back = sb.run(["ping", "-n", "-c", "3", "-i", "0.05", "-W", f"{_WAIT_S:g}", sb.host_ip], side="target",
                  timeout=_WAIT_S + 20).stdout
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", back)
    if not m:
        raise SandboxError(f"the checker could not read ping's output: {back.strip()[-300:]}")
    back_sent, back_got = int(m.group(1)), int(m.group(2))
    udp = sb.send_udp(count=5, timeout=_WAIT_S)
    carry, with_options = _crafted_pings(sb)
    return {"mode": x.mode, "pings": ping.transmitted, "ping_received": ping.received,
            "host_in_echo_reps": _delta(host1, host0, "InEchoReps"),
            "host_in_csum_errors": _delta(host1, host0, "InCsumErrors"), "target_in_echos": _delta(tgt1, tgt0, "InEchos"),
            "target_out_echo_reps": _delta(tgt1, tgt0, "OutEchoReps"), "arp_resolved": arp,
            "target_ping_sent": back_sent, "target_ping_received": back_got, "udp_sent": udp.sent,
            "udp_received": udp.received, "carry": carry.to_plain(), "with_options": [p.to_plain() for p in with_options]}


def _diagnose_responder(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_responder_in` saw."""
    transmitted, received = obs["pings"], obs["ping_received"]
    accepted, bad_csum = obs["host_in_echo_reps"], obs["host_in_csum_errors"]
    saw, replied, arp = obs["target_in_echos"], obs["target_out_echo_reps"], obs["arp_resolved"]
    back_sent, back_got = obs["target_ping_sent"], obs["target_ping_received"]
    udp_sent, udp_received = obs["udp_sent"], obs["udp_received"]
    carry, with_options = _Pings.from_plain(obs["carry"]), [_Pings.from_plain(p) for p in obs["with_options"]]
    details = {"mode": obs["mode"], "pings": transmitted, "ping_received": received, "host_in_echo_reps": accepted,
               "host_in_csum_errors": bad_csum, "target_in_echos": saw, "target_out_echo_reps": replied,
               "arp_resolved": arp, "target_ping_received": back_got, "udp_sent": udp_sent,
               "udp_received": udp_received, **_crafted_details(carry, with_options)}
    c = Checklist()

    c.part("ARP passes (the host finds the target's MAC address)", arp,
           "the host could not resolve the target's MAC address: the ARP request was not passed to the target's "
           "stack. Answer only IPv4 ICMP echo requests; XDP_PASS everything else")
    c.part("every ping from the host is answered", received >= transmitted > 0,
           f"{received} of {transmitted} pings were answered. A reply goes back where the request came "
           "from: swap the Ethernet addresses (the host drops a frame addressed to another MAC) and the IP "
           "addresses, set the type to 0 (echo reply) and return XDP_TX")
    c.part("the host's kernel accepts every reply (ICMP checksum right)",
           bad_csum == 0 and accepted >= transmitted,
           f"the host's kernel counted {plural(bad_csum, 'reply', 'replies')} with a bad checksum (Icmp "
           f"InCsumErrors) and accepted {accepted} of {transmitted} (InEchoReps). The ICMP checksum covers the "
           "type: changing it from 8 to 0 lowers the sum by 0x0800 (in network byte order), so the checksum must "
           "grow by as much, with the carry folded back (RFC 1624); ping itself reads replies before the kernel "
           "checks them, so its count alone does not show this" if bad_csum else
           f"the host's kernel accepted {accepted} echo replies (Icmp InEchoReps) for {transmitted} pings")
    _carry_part(c, carry, bad_csum == 0 and accepted >= transmitted)
    c.part("the target's stack never sees the pings (Icmp InEchos unchanged)", saw == 0 and replied == 0,
           f"the target namespace's own stack received {plural(saw, 'echo request')} and sent "
           f"{plural(replied, 'echo reply', 'echo replies')}: the requests should be answered by XDP_TX before "
           "the stack sees them, not passed on")
    _options_part(c, with_options, saw == 0 and replied == 0)
    c.part("echo replies to the target's own pings pass", back_got == back_sent > 0,
           f"the target's own pings to the host got {back_got} of {back_sent} replies: an echo reply (type 0) "
           "entering the target is not a request: pass it (answer only type 8)")
    c.part("UDP passes", udp_sent > 0 and udp_received == udp_sent,
           f"{udp_received} of {udp_sent} UDP datagrams reached the target: only ping is yours to answer")
    return c.done(f"yes: all {transmitted} pings answered from XDP (the host's kernel accepted {accepted} "
                  "replies, none with a bad checksum), and so were echo requests whose checksum update carries "
                  f"({len(CARRY_CHECKSUMS)}, every reply accepted) and ones with IP options (IHL 6 and 15); the "
                  "target's stack saw none of them (Icmp InEchos unchanged), and ARP, echo replies and UDP reached it",
                  **details)


# ------------------------------------------------------------------ q2


def _fill_rules(prog, net: ipaddress.IPv4Network) -> None:
    if not prog.has_table("rules"):
        raise Incorrect("the program has no map called 'rules': the checker writes the rules there "
                        "(BPF_LPM_TRIE(rules, struct your_key, u32, 64))")
    table = prog["rules"]
    ksize, vsize = ctypes.sizeof(table.Key), ctypes.sizeof(table.Leaf)
    if ksize != _KEY.size:
        raise Incorrect(f"the rules' key is {ksize} bytes; it must be 8: u32 prefixlen (bits) then the IPv4 "
                        "address (4 bytes, network byte order)")
    if vsize != 4:
        raise Incorrect(f"the rules' value is {plural(vsize, 'byte')}; the task says a u32 verdict (4 bytes: 1 drop, "
                        "0 pass), which is what the checker writes: BPF_LPM_TRIE(rules, struct your_key, u32, 64)")
    base = int(net.network_address)
    for host, plen, verdict in Q2_RULES:
        key, leaf = table.Key(), table.Leaf()
        addr = ipaddress.IPv4Address(base + host)
        ctypes.memmove(ctypes.addressof(key), _KEY.pack(plen, addr.packed), _KEY.size)
        ctypes.memmove(ctypes.addressof(leaf), verdict.to_bytes(vsize, sys.byteorder), vsize)
        try:
            table[key] = leaf
        except Exception as e:
            raise Incorrect(f"the checker could not store rule {addr}/{plen} in 'rules' ({e}); it must be a "
                            "BPF_LPM_TRIE with room for at least 8 rules") from None


def _send_from(sb: Sandbox, sources: list[str], per_source: int = 3) -> dict[str, int]:
    """UDP datagrams from each source address of the host namespace to the
    target: how many from each reached a socket there."""
    rx = run_in_netns(sb.target_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    got = {s: 0 for s in sources}
    with rx:
        rx.bind((sb.target_ip, 0))
        port = rx.getsockname()[1]
        for src in sources:
            tx = run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with tx:
                tx.bind((src, 0))
                for _ in range(per_source):
                    tx.sendto(src.encode(), (sb.target_ip, port))
        deadline = time.monotonic() + _WAIT_S
        expected = per_source * len(sources)
        while sum(got.values()) < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            rx.settimeout(min(left, 0.5) if any(got.values()) else left)   # all sent at once: they arrive together
            try:
                data, (peer, _) = rx.recvfrom(100)
            except (socket.timeout, TimeoutError):
                break
            if peer in got and data == peer.encode():
                got[peer] += 1
    return got


def _observe_rules(answer) -> dict:
    """Run the answer with the checker's rules on a fresh sandbox's target: how many UDP datagrams from
    each source (``received``: [host part, how many]) reached the target, and the host's own pings."""
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp")
        with Sandbox(prefixlen=24) as sb:
            return _rules_in(lab, prog, sb)


def _rules_in(lab: Lab, prog, sb: Sandbox) -> dict:
    net = sb.subnet
    base = int(net.network_address)
    sources = [str(ipaddress.IPv4Address(base + h)) for h, _, _ in Q2_SOURCES]
    for src in sources:
        out = sb.run(["ip", "addr", "add", f"{src}/{net.prefixlen}", "dev", sb.host_iface])
        if out.returncode:
            raise SandboxError(f"the checker could not add {src} in the sandbox: {out.stderr.strip()}")
    out = sb.run(["ip", "neigh", "replace", sb.target_ip, "lladdr", sb.target_mac, "dev", sb.host_iface,
                  "nud", "permanent"])
    if out.returncode:
        raise SandboxError(f"the checker could not set the host's neighbour entry: {out.stderr.strip()}")
    x = _attach(lab, prog, sb, "auto")
    _fill_rules(prog, net)
    got = _send_from(sb, sources)
    ping = sb.ping(count=2, interval=0.05, timeout=_WAIT_S)    # from the host's own address: no rule
    return {"mode": x.mode, "sources": sources, "received": [[h, got[s]] for (h, _, _), s in zip(Q2_SOURCES, sources)],
            "host_ip": sb.host_ip, "pings": ping.transmitted, "ping_received": ping.received}


def _diagnose_rules(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_rules_in` saw."""
    sources, host_ip = obs["sources"], obs["host_ip"]
    got = dict((h, n) for h, n in obs["received"])
    transmitted, received = obs["pings"], obs["ping_received"]
    details: dict = {"mode": obs["mode"], "received": {f".{h}": got[h] for h, _, _ in Q2_SOURCES},
                     "rules": [f".{h}/{p} {'drop' if v else 'pass'}" for h, p, v in Q2_RULES],
                     "ping_received": received}
    passed = {h: got[h] > 0 for h, _, _ in Q2_SOURCES}
    nothing_dropped = all(passed.values())
    only_exact = passed[70] and not passed[200]
    c = Checklist()
    for (h, want, why), src in zip(Q2_SOURCES, sources):
        ok = passed[h] == (want == "pass")
        if want == "pass":
            if h == 75 and not ok and not passed[70]:
                why_not = (f"{src} ({why}) was dropped: the trie's lookup returns the longest matching rule, and "
                           "its value is the verdict: 0 means pass. Drop only when the verdict is 1, not whenever "
                           "a rule matches")
            else:
                why_not = f"{src} ({why}) was dropped: only a rule whose verdict is 1 drops"
        elif nothing_dropped and h != 70:
            why_not = f"{src} ({why}) passed too"
        elif nothing_dropped:
            why_not = (f"{src} ({why}) passed, and so did every other source: no rule ever matched. The lookup "
                       "key is {prefixlen = 32 (bits, the whole address), addr = ip->saddr as it is in the "
                       "packet (network byte order, no bpf_ntohl)}, and the map a BPF_LPM_TRIE")
        elif only_exact and h == 70:
            why_not = (f"{src} ({why}) passed although the /32 rule worked: an exact-match map (a hash) finds "
                       "only whole addresses; a prefix needs BPF_LPM_TRIE (longest prefix match)")
        else:
            why_not = f"{src} ({why}) passed: it must be dropped"
        c.part(f"source .{h}: {want} ({why})", ok, why_not)
    c.part("ARP and a ping from the host's own address pass", received == transmitted,
           f"{received} of {transmitted} pings from {host_ip} (no rule covers it) were answered. To "
           "answer, the target first asks for the host's MAC address (ARP): a frame that is not IPv4 must pass")
    return c.done("yes: with the checker's rules in your trie, the longest matching prefix decided for every "
                  f"source ({', '.join(f'.{h} {w}' for h, w, _ in Q2_SOURCES)})", **details)


def build() -> Lesson:
    """The exercises of lesson 07."""
    return Lesson("07", "XDP beyond DROP", [
        Exercise(
            "q1",
            "Answer pings from XDP: turn each IPv4 ICMP echo request (type 8) into its echo reply (swap the "
            "Ethernet and IP addresses, type 0, a correct ICMP checksum) and send it back with XDP_TX, so the "
            "target's stack never sees it. Everything else (ARP, echo replies, UDP, ...) passes. The checker "
            "attaches your program in generic mode.",
            Check(_observe_responder, _diagnose_responder),
            "Start from xdp_tx_no_checksum.c above: it does everything but the checksum. The checksum is the "
            "complement of a one's complement sum of 16-bit words. The type byte is the high byte of the first "
            "word (network byte order), so 8 -> 0 lowers the sum by 0x0800 and the checksum grows by 0x0800: "
            "add bpf_htons(0x0800) to the field as it is in memory, then fold the carry: "
            "`u32 sum = icmp->checksum + bpf_htons(0x0800); icmp->checksum = sum + (sum >> 16);`",
            lambda: snippet_text("solution_07_ping_responder"),
            lambda: "solution_07_ping_responder",
            "c",
        ),
        Exercise(
            "q2",
            "Allow and block rules, longest prefix wins: declare `rules`, a BPF_LPM_TRIE whose key is "
            "{u32 prefixlen (bits); IPv4 address (network byte order)} and whose value is a u32 verdict "
            "(1 drop, 0 pass). Look up each IPv4 packet's source address: drop it when the longest matching "
            "rule says 1; pass it when that rule says 0, when nothing matches, and for every frame that is not "
            "IPv4. The checker fills the rules.",
            Check(_observe_rules, _diagnose_rules),
            "The lookup key is the whole source address: `struct key k = {.prefixlen = 32, .addr = ip->saddr};` "
            "(bits, and the address as it is in the packet). `rules.lookup(&k)` returns the value of the longest "
            "prefix that matches, or NULL: then pass. Read the value: a /29 inside a blocked /26 may say pass.",
            lambda: snippet_text("solution_07_lpm_rules"),
            lambda: "solution_07_lpm_rules",
            "c",
        ),
    ])
