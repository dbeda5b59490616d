"""Lesson 02, XDP ping drop: the classic program made ARP-safe, checked in a fresh sandbox.

The answer goes on the sandbox's *target* interface, so it judges what enters
the target namespace. The checker sends real traffic and tests each behaviour
the task names as one part:

* pings from the host get no reply (the echo requests, type 8, are dropped);
* pings from the target get no reply (the echo replies, type 0, are dropped);
* an ICMP port unreachable (type 3) reaches the target (only echo is ping);
* UDP and TCP from the host reach the target;
* after the neighbour caches are flushed, the host resolves the target again
  (the ARP request enters the target) and UDP arrives;
* IPv6 (ULA addresses added inside the sandbox, no DAD): neighbour discovery
  resolves the target and a UDP datagram arrives. IPv6's own ping (ICMPv6
  echo) is not judged: the task leaves it to the student;
* IP options exist: ICMP whose IP header is longer than 20 bytes (IHL 6 and
  15), sent from a raw socket in the host namespace with IP_OPTIONS, is judged
  as ICMP without options is (echo requests and replies dropped, a port
  unreachable passed), counted by a raw socket in the target namespace (it sees
  what XDP passed). At offset 34, where a parser that assumes a 20-byte IP
  header reads the ICMP type, these packets hold their options: 0 (an echo
  reply's type) in one set, 1 (no echo) in the other, so such a parser gets
  one verdict or the other wrong.

The IPv4 parts run with permanent neighbour entries, so they do not depend on
ARP (a program that drops ARP fails the ARP part, not the UDP part); the
entries go before the caches are flushed.
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

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

__all__ = ["build"]

_MUST_PASS_S = 3.0      # how long traffic that must pass may take (right answers finish at once)
_PING_WAIT_S = 1.0      # ping's -W: how long a ping that must be dropped is waited for
_CLOSED_PORT = 33434    # nothing listens there in a fresh namespace: UDP to it gets ICMP port unreachable
_DROP_WAIT_S = 0.5      # how long ICMP with IP options that must be dropped is waited for
_PER_KIND = 2           # ICMP messages with IP options sent per kind and option set

#: the IP options of the checker's ICMP: (IHL, what they are, the bytes after the 20-byte header, what the
#: first of them holds: frame offset 34, where the ICMP type is only when the IP header has no options)
_IP_OPTIONS = (
    (6, "four end-of-options bytes", bytes(4), "0, an echo reply's type"),
    (15, "a no-op and a record-route option", bytes([1, 7, 39, 4]) + bytes(36), "1, no echo"),
)
#: (ICMP type, what they are) of the ICMP with IP options: echo is to be dropped, the port unreachable to pass
_KINDS = ((8, "echo requests"), (0, "echo replies"), (3, "port unreachables"))

# a peer for one exchange: TCP (accept, read, answer) or UDP (receive, answer)
_LISTEN = r"""
import socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
kind = socket.SOCK_STREAM if sys.argv[2] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(fam, kind)
s.bind((sys.argv[3], 0))
if kind == socket.SOCK_STREAM:
    s.listen(1)
s.settimeout(float(sys.argv[4]))
print("ready", s.getsockname()[1], flush=True)
try:
    if kind == socket.SOCK_STREAM:
        c, _ = s.accept()
        c.settimeout(float(sys.argv[4]))
        c.sendall(b"ok " + c.recv(100))
    else:
        data, peer = s.recvfrom(100)
        s.sendto(b"ok " + data, peer)
except OSError as e:
    print("listener:", type(e).__name__, e, flush=True)
    sys.exit(3)
"""

# the other side: connect (TCP) or send until answered (UDP); prints "ok" or what failed
_CONNECT = r"""
import socket, sys, time
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
tcp = sys.argv[2] == "tcp"
addr, port, wait = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
token = b"labkit-lesson02"
deadline = time.monotonic() + wait
try:
    if tcp:
        s = socket.create_connection((addr, port), timeout=wait)
        s.sendall(token)
        s.settimeout(max(0.1, deadline - time.monotonic()))
        reply = s.recv(100)
    else:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        reply = b""
        while time.monotonic() < deadline:
            s.sendto(token, (addr, port))
            s.settimeout(min(0.3, max(0.01, deadline - time.monotonic())))
            try:
                reply = s.recv(100)
                break
            except (socket.timeout, TimeoutError):
                pass
    if not reply:
        print(f"no answer within {wait:g} s")
    else:
        print("ok" if reply == b"ok " + token else f"wrong reply {reply!r}")
except (socket.timeout, TimeoutError):
    print(f"timed out after {wait:g} s")
except OSError as e:
    print(f"{type(e).__name__}: {e.strerror or e}")
"""

# UDP to a closed port: the answer that comes back is an ICMP port unreachable
_UNREACHABLE = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    try:
        s.send(b"anyone there?")
        s.settimeout(0.3)
        s.recv(100)
    except ConnectionRefusedError:
        print("refused")
        break
    except (socket.timeout, TimeoutError):
        continue
else:
    print("no answer")
"""

_RECEIVED = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def _python(code: str, *args) -> list[str]:
    """argv for a short Python helper (isolated, no site: it starts fast)."""
    return [sys.executable, "-I", "-S", "-c", code, *map(str, args)]


def _netns_argv(sb: Sandbox, side: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", sb.host_ns if side == "host" else sb.target_ns, *argv]


def _spawn(sb: Sandbox, side: str, argv: list[str]) -> subprocess.Popen:
    """Start ``argv`` in one of the sandbox's namespaces, output (and errors) captured as text."""
    return subprocess.Popen(_netns_argv(sb, side, argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "LC_ALL": "C"})


def _output(proc: subprocess.Popen) -> str:
    """What a helper started by :func:`_spawn` printed (its last line), once it has ended."""
    try:
        out, _ = proc.communicate(timeout=_MUST_PASS_S + 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = out.strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _start_ping(sb: Sandbox, side: str, dst: str) -> subprocess.Popen:
    return _spawn(sb, side, ["ping", "-n", "-c", "3", "-i", "0.1", "-W", f"{_PING_WAIT_S:g}", dst])


def _ping_result(proc: subprocess.Popen) -> tuple[int, int]:
    """(transmitted, received) of a ping started by :func:`_start_ping`, once it has ended."""
    try:
        out, _ = proc.communicate(timeout=_PING_WAIT_S + 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    m = _RECEIVED.search(out)
    if not m:
        raise SandboxError(f"the checker could not read ping's output: {out.strip()[-300:]}")
    return int(m.group(1)), int(m.group(2))


class _Exchange:
    """One TCP or UDP exchange from the host namespace to a listener in the
    target namespace, running in the background; :meth:`result` is "ok" or
    what went wrong."""

    def __init__(self, sb: Sandbox, family: int, proto: str, listen_addr: str, dst: str):
        self.listener = subprocess.Popen(
            _netns_argv(sb, "target", _python(_LISTEN, family, proto, listen_addr, _MUST_PASS_S + 10)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.connector = None
        try:
            ready, _, _ = select.select([self.listener.stdout], [], [], 20)
            line = self.listener.stdout.readline() if ready else ""
            if not line.startswith("ready "):
                raise SandboxError(f"the checker's {proto} listener did not start: {line.strip() or 'no output'}")
            self.connector = _spawn(sb, "host", _python(_CONNECT, family, proto, dst, line.split()[1],
                                                        _MUST_PASS_S))
        except BaseException:
            self.close()
            raise

    def result(self) -> str:
        try:
            out, _ = self.connector.communicate(timeout=_MUST_PASS_S + 20)
            return out.strip()[-300:] or f"exit status {self.connector.returncode}"
        finally:
            self.close()

    def close(self) -> None:
        for proc in (self.connector, self.listener):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()


def _neighbour(sb: Sandbox, side: str, addr: str) -> str:
    """The line ``ip neigh`` shows for ``addr`` on the sandbox's interface ("" if none)."""
    iface = sb.host_iface if side == "host" else sb.target_iface
    return sb.run(["ip", "neigh", "show", "to", addr, "dev", iface], side=side).stdout.strip()


def _resolved(sb: Sandbox, addr: str, timeout: float) -> bool:
    """Whether the host namespace has (or gets, within ``timeout``) the MAC address of ``addr``."""
    deadline = time.monotonic() + timeout
    while True:
        line = _neighbour(sb, "host", addr)
        if "lladdr" in line:
            return True
        if time.monotonic() >= deadline or "FAILED" in line:
            return False
        time.sleep(0.05)


def _ip(sb: Sandbox, side: str, *args: str) -> None:
    out = sb.run(["ip", *args], side=side)
    if out.returncode:
        raise SandboxError(f"the checker could not run `ip {' '.join(args)}` in the sandbox: {out.stderr.strip()}")


def _attach(lab: Lab, prog, sb: Sandbox):
    try:
        return lab.attach_xdp(prog, iface=sb.target_iface, netns=sb.target_ns, fn=answer_function(prog, "struct xdp_md", "XDP"))
    except VerifierError as e:
        log = e.log if getattr(e, "log", None) else str(e)
        if re.search(r"invalid access to packet|outside of the packet", log):
            raise Incorrect(
                "the verifier refused the program: it reads packet bytes that no bounds check proved are "
                "there. Before reading a header's fields, check that the whole header is inside the packet, "
                "e.g. `if ((void *)(ip + 1) > data_end) return XDP_PASS;` for the IP header (and the same "
                "for the ICMP header before reading its type).\nThe verifier said: "
                + str(e).splitlines()[0].split(": ", 1)[-1], error="VerifierError") from None
        raise


def _icmp_message(icmp_type: int, code: int, rest: bytes, payload: bytes) -> bytes:
    """An ICMP message: type, code, its checksum, the header's last 4 bytes (``rest``), then ``payload``."""
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]


def _messages(sb: Sandbox) -> dict[bytes, tuple[int, int]]:
    """The ICMP messages the options phase sends, each with (option set, ICMP type): echo requests and replies
    (id "lk", a sequence number each) and port unreachables quoting a UDP datagram from the target to the host
    (its source port tells them apart)."""
    out = {}
    for o in range(len(_IP_OPTIONS)):
        for t, _what in _KINDS:
            for i in range(_PER_KIND):
                seq = 100 * o + 10 * t + i
                if t == 3:
                    quoted = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, seq, 0, 64, socket.IPPROTO_UDP, 0,
                                         socket.inet_aton(sb.target_ip), socket.inet_aton(sb.host_ip))
                    quoted = quoted[:10] + struct.pack("!H", inet_checksum(quoted)) + quoted[12:]
                    msg = _icmp_message(3, 3, bytes(4), quoted + struct.pack("!HHHH", 40000 + seq, _CLOSED_PORT,
                                                                             16, 0))
                else:
                    msg = _icmp_message(t, 0, struct.pack("!HH", 0x6C6B, seq), b"labkit lesson 02 options")
                out[msg] = (o, t)
    return out


def _icmp_with_options(sb: Sandbox) -> dict[tuple[int, int], int]:
    """Send, from a raw socket in the host namespace, each of :func:`_messages` with its IP options; how many of
    each (option set, ICMP type) reached the target's stack (a raw ICMP socket there sees what XDP passed).
    Waits for every port unreachable (at most _MUST_PASS_S), and at least _DROP_WAIT_S."""
    msgs = _messages(sb)
    got = {(o, t): 0 for o in range(len(_IP_OPTIONS)) for t, _ in _KINDS}
    must_pass = _PER_KIND * len(_IP_OPTIONS)
    rx = run_in_netns(sb.target_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    with rx:
        tx = run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
        with tx:
            for o, (_ihl, _what, options, _at34) in enumerate(_IP_OPTIONS):
                tx.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, options)
                for msg, (mo, _t) in msgs.items():
                    if mo == o:
                        tx.sendto(msg, (sb.target_ip, 0))
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            passed = sum(n for (_o, t), n in got.items() if t == 3)
            if elapsed >= _MUST_PASS_S or (passed >= must_pass and elapsed >= _DROP_WAIT_S):
                break
            ready, _, _ = select.select([rx], [], [], min(0.05, _MUST_PASS_S - elapsed))
            if ready:
                packet = rx.recv(2048)
                key = msgs.get(packet[(packet[0] & 0x0F) * 4:])
                if key is not None:
                    got[key] += 1
    return got


def _options_parts(c: Checklist, got: dict[tuple[int, int], int], plain_echo_dropped: bool,
                   plain_other_passed: bool) -> None:
    """The two parts the ICMP with IP options decides: echo dropped, the port unreachable passed."""
    def said(types) -> str:
        """How many of ``types`` arrived, per option set, where the verdict was wrong."""
        per_set = []
        for o, (ihl, opts, _b, _at34) in enumerate(_IP_OPTIONS):
            wrong = [f"{got[o, t]} of {_PER_KIND} {what}" for t, what in _KINDS
                     if t in types and (got[o, t] if t != 3 else got[o, t] < _PER_KIND)]
            if wrong:
                per_set.append(f"with IHL {ihl} ({opts}): {' and '.join(wrong)}")
        return "; ".join(per_set)

    where = ("The ICMP header starts ip->ihl * 4 bytes into the IP header (IHL 6: offset 38 in the frame; IHL 15: "
             "offset 74): use (void *)ip + ip->ihl * 4")

    def at34(sets) -> str:
        return "; ".join(f"with IHL {_IP_OPTIONS[o][0]} the byte there is {_IP_OPTIONS[o][3]}"
                         for o in sorted(set(sets)))

    leaked = [(o, t) for o, t in got if t != 3 and got[o, t]]
    if not leaked:
        why = ""
    elif plain_echo_dropped:
        why = (f"ICMP echo whose IP header carries options reached the target ({said((8, 0))}) though echo without "
               "options was dropped: a ping with IP options is a ping too, and its ICMP header is not at offset 34 "
               f"(where the options are: {at34(o for o, _ in leaked)}). {where}")
    else:
        why = f"ICMP echo whose IP header carries options reached the target too ({said((8, 0))})"
    c.part("ICMP echo with IP options is dropped (IHL 6 and 15)", not leaked, why)

    stopped = [o for o, t in got if t == 3 and got[o, t] < _PER_KIND]
    if not stopped:
        why = ""
    elif plain_other_passed:
        why = (f"ICMP port unreachables whose IP header carries options were dropped ({said((3,))} arrived) though "
               "one without options passed: at offset 34, where the ICMP type is only after a 20-byte IP header, are "
               f"the options ({at34(stopped)}). {where}")
    else:
        why = f"ICMP port unreachables whose IP header carries options were dropped too ({said((3,))} arrived)"
    c.part("other ICMP with IP options passes (port unreachable, IHL 6 and 15)", not stopped, why)


def _observe_arp_safe(answer) -> dict:
    """The answer on a fresh sandbox's target, and every kind of traffic's fate (:func:`_observe_in`)."""
    with Lab() as lab:
        prog = load_answer(lab, answer, name="your answer", need="xdp", defines={"LK_SAMPLE_EVERY": 1})
        with Sandbox() as sb:
            return _observe_in(lab, prog, sb)


def _observe_in(lab: Lab, prog, sb: Sandbox) -> dict:
    """With the answer attached: pings both ways (sent, answered), the port unreachable, UDP, TCP, ICMP with IP
    options ([option set, ICMP type, arrived]), then after a neighbour flush ARP, IPv6 and UDP over both."""
    ula = "fd6c:6b%s:%s::" % (sb.id[:2], sb.id[2:6])
    host6, target6 = ula + "1", ula + "2"
    # the IPv4 parts do not depend on ARP: permanent neighbour entries, both ways
    _ip(sb, "host", "neigh", "replace", sb.target_ip, "lladdr", sb.target_mac, "dev", sb.host_iface,
        "nud", "permanent")
    _ip(sb, "target", "neigh", "replace", sb.host_ip, "lladdr", sb.host_mac, "dev", sb.target_iface,
        "nud", "permanent")
    # IPv6: unique local addresses, usable at once (no duplicate address detection)
    _ip(sb, "host", "-6", "addr", "add", f"{host6}/64", "dev", sb.host_iface, "nodad")
    _ip(sb, "target", "-6", "addr", "add", f"{target6}/64", "dev", sb.target_iface, "nodad")

    seen: dict = {"mode": _attach(lab, prog, sb).mode}
    # -- IPv4, neighbours known: ping both ways (in the background), ICMP, UDP, TCP
    # (all at once: the traffic that must be dropped costs a timeout to prove)
    ping_in = _start_ping(sb, "host", sb.target_ip)       # requests enter the target
    ping_out = _start_ping(sb, "target", sb.host_ip)      # replies enter the target
    unreach = _spawn(sb, "target", _python(_UNREACHABLE, sb.host_ip, _CLOSED_PORT, _MUST_PASS_S))
    try:
        tcp_run = _Exchange(sb, 4, "tcp", sb.target_ip, sb.target_ip)
        udp = sb.send_udp(count=5, timeout=_MUST_PASS_S)
        tcp = tcp_run.result()
    finally:
        unreachable = _output(unreach)
        in_sent, in_got = _ping_result(ping_in)
        out_sent, out_got = _ping_result(ping_out)
    seen.update(ping_sent=in_sent, ping_received=in_got, ping_from_target_sent=out_sent,
                ping_from_target_received=out_got, port_unreachable=unreachable, udp_sent=udp.sent,
                udp_received=udp.received, tcp=tcp)

    # -- IPv4 with options: the ICMP header is ip->ihl * 4 bytes in
    seen["icmp_with_options"] = [[o, t, n] for (o, t), n in _icmp_with_options(sb).items()]
    # -- forget the neighbours: ARP and IPv6 neighbour discovery must pass
    _ip(sb, "host", "neigh", "del", sb.target_ip, "dev", sb.host_iface)
    _ip(sb, "target", "neigh", "del", sb.host_ip, "dev", sb.target_iface)
    seen["neighbours_flushed"] = sb.flush_neighbors()
    if _neighbour(sb, "host", sb.target_ip) or _neighbour(sb, "host", target6):
        raise SandboxError("the checker could not flush the sandbox's neighbour caches")
    udp6_run = _Exchange(sb, 6, "udp", "::", target6)
    try:
        after = sb.send_udp(count=5, timeout=_MUST_PASS_S)
    finally:
        udp6 = udp6_run.result()
    # by now the address was resolved long ago, or the request went unanswered for seconds
    seen.update(udp_after_flush_sent=after.sent, udp_after_flush_received=after.received,
                arp_resolved=_resolved(sb, sb.target_ip, timeout=0.2),
                ndp_resolved=_resolved(sb, target6, timeout=0.2), udp6=udp6)
    return seen


def _diagnose_arp_safe(obs: dict) -> tuple[str, dict]:
    """The verdict on what :func:`_observe_in` saw."""
    in_sent, in_got, out_sent, out_got = (obs[k] for k in ("ping_sent", "ping_received", "ping_from_target_sent",
                                                           "ping_from_target_received"))
    unreachable, tcp, udp_sent, udp_received = (obs[k] for k in ("port_unreachable", "tcp", "udp_sent", "udp_received"))
    c = Checklist()
    c.part("IPv4 ping to the target is dropped", in_got == 0,
           f"pings to the target were answered ({in_got} of {in_sent}): the echo requests (ICMP type 8) "
           "entering the interface must be dropped")
    c.part("ICMP echo replies are dropped (pings from the target fail)", out_got == 0,
           f"pings from the target got {out_got} of {out_sent} replies: the echo replies (ICMP type 0) entering "
           "the interface are ICMP echo too, and must be dropped")
    c.part("other ICMP passes (port unreachable)", unreachable == "refused",
           "an ICMP port unreachable (type 3) sent to the target was dropped: only echo (types 8 and 0) is ping, "
           "look at the ICMP type and pass every other ICMP message")
    c.part("UDP passes", udp_sent > 0 and udp_received == udp_sent,
           f"{udp_received} of {udp_sent} UDP datagrams reached the target: UDP must pass")
    c.part("TCP passes", tcp == "ok",
           f"a TCP connection from the host to the target failed ({tcp}): TCP must pass")

    with_options = {(o, t): n for o, t, n in obs["icmp_with_options"]}
    _options_parts(c, with_options, in_got == 0 and out_got == 0, unreachable == "refused")

    after_sent, after_received, arp, ndp, udp6 = (obs[k] for k in ("udp_after_flush_sent", "udp_after_flush_received",
                                                                  "arp_resolved", "ndp_resolved", "udp6"))
    c.part("ARP passes after the neighbour caches are flushed", arp,
           "after the neighbour caches were flushed the host could not find the target's MAC address: the ARP "
           f"request was dropped (then {after_received} of {after_sent} UDP datagrams arrived). A frame that is "
           "not IPv4 is not yours to judge: return XDP_PASS for it")
    if not ndp:
        why6 = ("the host could not find the target's IPv6 neighbour (neighbour discovery, ICMPv6, was dropped), "
                f"so UDP over IPv6 failed ({udp6}): pass IPv6")
    else:
        why6 = f"UDP over IPv6 did not reach the target ({udp6}): IPv6 must pass"
    c.part("IPv6 passes (neighbour discovery and UDP)", ndp and udp6 == "ok", why6)

    details = {k: v for k, v in obs.items() if k not in ("ping_sent", "ping_from_target_sent", "icmp_with_options")}
    details["icmp_with_options_arrived"] = {f"IHL {_IP_OPTIONS[o][0]} type {t}": n for (o, t), n in with_options.items()}
    return c.done("yes: in a fresh sandbox pings were dropped both ways, with IP options too; ICMP port "
                  "unreachable (with and without IP options), UDP and TCP passed; after the neighbour caches were "
                  "flushed ARP and IPv6 neighbour discovery went through "
                  f"and UDP arrived over IPv4 ({after_received}/{after_sent}) and IPv6", **details)


def build() -> Lesson:
    """The exercises of lesson 02."""
    return Lesson("02", "XDP ping drop", [
        Exercise(
            "q1",
            "Make the classic program ARP-safe: drop ICMP echo (ping's requests and replies, so pings fail "
            "both ways) and pass everything else: ARP, even after the neighbour caches are flushed; other "
            "ICMP messages (a port unreachable); UDP; TCP; and IPv6 (its neighbour discovery and UDP; "
            "whether IPv6's own ping passes is up to you).",
            Check(_observe_arp_safe, _diagnose_arp_safe),
            "The bug is `if (ethertype != ETH_P_IP) return XDP_DROP`: a frame that is not IPv4 is not "
            "yours to judge. And not every ICMP message is a ping: look at the ICMP type (8 is an echo "
            "request, 0 an echo reply), after checking that the ICMP header is inside the packet. It starts "
            "ip->ihl * 4 bytes into the IP header: IP options make that header longer than 20 bytes.",
            lambda: snippet_text("solution_02_arp_safe"),
            lambda: "solution_02_arp_safe",
            "c",
        ),
    ])
