"""labkit.net.traffic: parsing ping's output, UDP results. Pure logic, no kernel."""

from __future__ import annotations

import pytest

from labkit._errors import SandboxError
from labkit.net.traffic import PingResult, UdpResult, parse_ping

IPUTILS_OK = """\
PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.
64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.211 ms
64 bytes from 198.18.0.2: icmp_seq=2 ttl=64 time=0.044 ms
64 bytes from 198.18.0.2: icmp_seq=2 ttl=64 time=0.050 ms (DUP!)
64 bytes from 198.18.0.2: icmp_seq=3 ttl=64 time=0.047 ms

--- 198.18.0.2 ping statistics ---
3 packets transmitted, 3 received, +1 duplicates, 0% packet loss, time 407ms
rtt min/avg/max/mdev = 0.044/0.100/0.211/0.078 ms
"""

IPUTILS_LOST = """\
PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.
From 198.18.0.1 icmp_seq=1 Destination Host Unreachable

--- 198.18.0.2 ping statistics ---
4 packets transmitted, 0 received, +1 errors, 100% packet loss, time 3060ms
"""

BUSYBOX = """\
PING 198.18.0.2 (198.18.0.2): 56 data bytes
64 bytes from 198.18.0.2: seq=0 ttl=64 time=0.061 ms
64 bytes from 198.18.0.2: seq=1 ttl=64 time=0.070 ms

--- 198.18.0.2 ping statistics ---
2 packets transmitted, 1 packets received, 50% packet loss
"""


def test_parse_ping_variants() -> None:
    ok = parse_ping(IPUTILS_OK)
    assert (ok.transmitted, ok.received, ok.duplicates, ok.loss) == (3, 3, 1, 0.0)
    assert ok.rtts == [0.211, 0.044, 0.047] and ok.ok
    lost = parse_ping(IPUTILS_LOST, 1)
    assert (lost.transmitted, lost.received, lost.errors, lost.loss) == (4, 0, 1, 1.0)
    assert lost.rtts == [] and not lost.ok
    busy = parse_ping(BUSYBOX)
    assert (busy.transmitted, busy.received, busy.loss) == (2, 1, 0.5)
    assert busy.rtts == [0.061, 0.070]
    with pytest.raises(SandboxError, match="no statistics"):
        parse_ping("ping: connect: Network is unreachable\n", 2)


def test_results_say_what_was_lost() -> None:
    assert PingResult(transmitted=0, received=0).loss == 0.0
    assert str(PingResult(transmitted=4, received=3, rtts=[1.0, 2.0, 3.0])) == (
        "4 sent, 3 received, 25% loss, avg rtt 2.000 ms")
    udp = UdpResult(sent=8, received=6, port=4242)
    assert (udp.lost, udp.loss) == (2, 0.25)
    assert str(udp) == "8 UDP datagrams sent to port 4242, 6 received"
    assert UdpResult(sent=0, received=0, port=1).loss == 0.0


def test_inet_checksum_is_rfc1071_and_zero_over_a_right_message():
    from labkit.net.traffic import inet_checksum

    # RFC 1071's example words 0001 f203 f4f5 f6f7: sum 0x2ddf0 -> folded 0xddf2 -> complement 0x220d
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    msg = bytes.fromhex("0800") + b"\0\0" + b"\x12\x34\x00\x01" + b"abc"          # odd length: padded
    c = inet_checksum(msg)
    assert inet_checksum(msg[:2] + c.to_bytes(2, "big") + msg[4:]) == 0
