"""Traffic between a sandbox's namespaces and what it reports: ping and UDP results."""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass, field

from labkit._errors import SandboxError
from labkit.net.netns import run_in_netns

__all__ = ["PingResult", "UdpResult", "exchange_udp", "inet_checksum", "parse_ping"]


@dataclass(frozen=True)
class PingResult:
    """What ``ping`` reported. ``loss`` is a fraction (0.0 … 1.0); ``rtts`` are
    the round-trip times of the replies, in milliseconds; ``raw`` is ping's output."""

    transmitted: int
    received: int
    rtts: list[float] = field(default_factory=list)
    errors: int = 0
    duplicates: int = 0
    raw: str = ""
    returncode: int = 0

    @property
    def loss(self) -> float:
        if self.transmitted == 0:
            return 0.0
        return max(0.0, (self.transmitted - self.received) / self.transmitted)

    @property
    def ok(self) -> bool:
        """Every probe was answered."""
        return self.transmitted > 0 and self.received >= self.transmitted

    def __str__(self) -> str:
        avg = f", avg rtt {sum(self.rtts) / len(self.rtts):.3f} ms" if self.rtts else ""
        return f"{self.transmitted} sent, {self.received} received, {self.loss:.0%} loss{avg}"


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_REPLY = re.compile(r"bytes from .*?time[=<]\s*([0-9.]+)\s*ms")


def parse_ping(output: str, returncode: int = 0) -> PingResult:
    """Parse iputils (or busybox) ``ping`` output; raises :class:`SandboxError`
    when it has no statistics line (ping could not run)."""
    summary = _PING_SUMMARY.search(output)
    if summary is None:
        raise SandboxError(
            f"ping printed no statistics (exit status {returncode}); its output was:\n{output.strip()}"
        )
    rtts = [
        float(m.group(1))
        for line in output.splitlines()
        if "DUP!" not in line and (m := _PING_REPLY.search(line))
    ]
    errors = re.search(r"\+(\d+) errors?", output)
    dups = re.search(r"\+(\d+) duplicates?", output)
    return PingResult(
        transmitted=int(summary.group(1)),
        received=int(summary.group(2)),
        rtts=rtts,
        errors=int(errors.group(1)) if errors else 0,
        duplicates=int(dups.group(1)) if dups else 0,
        raw=output,
        returncode=returncode,
    )


@dataclass(frozen=True)
class UdpResult:
    """How many UDP datagrams were handed to the kernel in the host namespace
    (``sent``) and how many a socket in the target namespace received."""

    sent: int
    received: int
    port: int
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    @property
    def loss(self) -> float:
        return self.lost / self.sent if self.sent else 0.0

    def __str__(self) -> str:
        return f"{self.sent} UDP datagrams sent to port {self.port}, {self.received} received"


def exchange_udp(
    src_ns: str, src_ip: str, dst_ns: str, dst_ip: str, *, count: int, port: int | None, payload: bytes,
    timeout: float,
) -> UdpResult:
    """Send ``count`` UDP datagrams from namespace ``src_ns`` to ``dst_ip`` and
    count how many reach a socket bound there in namespace ``dst_ns`` (from
    ``src_ip``, with ``payload``) within ``timeout`` seconds after the last
    send. ``port`` None: a free one. Sockets are opened inside the namespaces
    and keep them, so sending and receiving happen right here."""

    def udp_socket() -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    rx = run_in_netns(dst_ns, udp_socket)
    with rx:
        tx = run_in_netns(src_ns, udp_socket)
        with tx:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            rx.bind((dst_ip, port or 0))
            port = rx.getsockname()[1]
            sent, errors = 0, []
            for _ in range(count):
                try:
                    tx.sendto(payload, (dst_ip, port))
                    sent += 1
                except OSError as exc:
                    errors.append(exc.strerror or str(exc))
            received = 0
            deadline = time.monotonic() + timeout
            while received < sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                rx.settimeout(left)
                try:
                    data, (src, _) = rx.recvfrom(65535)
                except (socket.timeout, TimeoutError):
                    break
                if data == payload and src == src_ip:
                    received += 1
    return UdpResult(sent=sent, received=received, port=port, errors=errors)


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the complement of the one's complement sum of
    16-bit words (0 over a message whose checksum is right)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
