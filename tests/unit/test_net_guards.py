"""labkit.net.guards: reading /proc/net/tcp{,6} and deciding what an interface
carries that the lab stands on. Pure logic on made-up namespaces (the real
thing, inside sandboxes only: tests/test_guards.py)."""

from __future__ import annotations

import ipaddress
import sys

import pytest

from labkit.net.guards import Socket, Surroundings, lifelines, parse_tcp_table

LITTLE = sys.byteorder == "little"
pytestmark = pytest.mark.skipif(not LITTLE, reason="the /proc/net/tcp lines below are from a little-endian machine")

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:22B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0F02000A:0016 0202000A:D431 01 00000000:00000000 02:0000039A 00000000     0        0 4343 4 0 20 4 29 10 -1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:22B8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000F02000A:22B8 0000000000000000FFFF00000202000A:C000 01 00000000:00000000 00:00000000 00000000     0        0 78 1 0 100 0 0 10 0
"""

ip = ipaddress.ip_address


def test_parse_tcp_table_reads_addresses_ports_states_and_inodes() -> None:
    assert parse_tcp_table(TCP) == [
        Socket(ip("127.0.0.1"), 8888, ip("0.0.0.0"), 0, 0x0A, 4242),
        Socket(ip("10.0.2.15"), 22, ip("10.0.2.2"), 54321, 0x01, 4343),
    ]
    v6 = parse_tcp_table(TCP6)
    assert v6[0] == Socket(ip("::"), 8888, ip("::"), 0, 0x0A, 77)
    # an IPv4 connection to a dual-stack listener reads as IPv4
    assert (v6[1].local, v6[1].remote, v6[1].remote_port) == (ip("10.0.2.15"), ip("10.0.2.2"), 0xC000)


LO, ETH, VETH = 1, 2, 3


def place(*, sockets=(), jupyter=(), sshd=(), defaults=(), root=False) -> Surroundings:
    return Surroundings(
        links={LO: ("lo", True), ETH: ("eth0", False), VETH: ("veth0", False)},
        addresses=[(LO, ip("127.0.0.1")), (ETH, ip("10.0.2.15")), (VETH, ip("198.18.0.2"))],
        default_routes=set(defaults), sockets=list(sockets), jupyter_inodes=set(jupyter),
        sshd_inodes=set(sshd), root=root)


def listen(addr: str, port: int, inode: int) -> Socket:
    return Socket(ip(addr), port, ip("0.0.0.0"), 0, 0x0A, inode)


def conn(local: str, lport: int, remote: str, rport: int, inode: int = 0) -> Socket:
    return Socket(ip(local), lport, ip(remote), rport, 0x01, inode)


def test_nothing_the_lab_stands_on() -> None:
    s = place(sockets=[listen("198.18.0.2", 8888, 5)])  # a listener, but not Jupyter's
    assert [lifelines(i, s) for i in (LO, ETH, VETH)] == [[], [], []]


def test_default_route() -> None:
    assert lifelines(ETH, place(defaults=[ETH])) == [
        "the default route (on a VM: the way in, your SSH session included)"]


def test_jupyter_listening_on_loopback_is_carried_by_lo_only() -> None:
    s = place(sockets=[listen("127.0.0.1", 8888, 9)], jupyter=[9])
    assert lifelines(LO, s) == ["JupyterLab's address 127.0.0.1:8888"]
    assert lifelines(ETH, s) == [] and lifelines(VETH, s) == []


def test_jupyter_on_an_interface_address_and_the_browser_connection() -> None:
    s = place(sockets=[listen("198.18.0.2", 8888, 9), conn("198.18.0.2", 8888, "198.18.0.1", 40000)], jupyter=[9])
    assert lifelines(VETH, s) == ["JupyterLab's address 198.18.0.2:8888",
                                  "the browser's connection to JupyterLab 198.18.0.2:8888 <- 198.18.0.1:40000"]


def test_wildcard_listener_means_loopback_and_where_browsers_come_from() -> None:
    s = place(sockets=[listen("0.0.0.0", 8888, 9), conn("10.0.2.15", 8888, "10.0.2.2", 50000),
                       conn("198.18.0.2", 8889, "198.18.0.1", 50001)], jupyter=[9])
    assert lifelines(LO, s) == ["JupyterLab's address 0.0.0.0:8888"]
    assert lifelines(ETH, s) == ["the browser's connection to JupyterLab 10.0.2.15:8888 <- 10.0.2.2:50000"]
    assert lifelines(VETH, s) == []  # another port: not Jupyter's


def test_ssh_sessions_by_port_22_or_by_sshd() -> None:
    s = place(sockets=[conn("10.0.2.15", 22, "10.0.2.2", 50000), conn("198.18.0.2", 2222, "198.18.0.1", 1, 77),
                       conn("198.18.0.2", 2223, "198.18.0.1", 2, 78)], sshd=[77])
    assert lifelines(ETH, s) == ["the SSH session 10.0.2.15:22 <- 10.0.2.2:50000"]
    assert lifelines(VETH, s) == ["the SSH session 198.18.0.2:2222 <- 198.18.0.1:1"]


def test_many_sessions_are_summed_up() -> None:
    s = place(sockets=[conn("10.0.2.15", 22, "10.0.2.2", 50000 + n) for n in range(5)])
    assert lifelines(ETH, s)[-1] == "2 more like it" and len(lifelines(ETH, s)) == 4


def test_root_loopback_is_always_guarded() -> None:
    assert lifelines(LO, place(root=True)) == [
        "the loopback address JupyterLab listens on by default (127.0.0.1)"]
    assert lifelines(LO, place(root=True, sockets=[listen("127.0.0.1", 8888, 9)], jupyter=[9])) == [
        "JupyterLab's address 127.0.0.1:8888"]
    assert lifelines(LO, place(root=False)) == []
