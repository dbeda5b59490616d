"""Lesson 07's kernel-facing parts on the real kernel: the three-namespace
sandbox (``Sandbox(far=True)``: built, given back, reaped when its owner dies),
``devmap_set`` and XDP_REDIRECT through a devmap between the middle's links,
XDP_TX in native and generic mode on a veth, the xdp:xdp_exception tracepoint
filtered to one program, and the LPM-trie firewall control. Traffic flows only
inside the sandboxes these tests build."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute

import labkit
from labkit._errors import ArgumentError
from labkit.net.leftovers import reap_dead_owners
from labkit.net.netns import netns_exists
from labkit.net.records import list_sandboxes, state_path
from labkit.net.sandbox import Sandbox
from labkit.net.xdp import devmap_set, interface

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

REPO = Path(labkit.__file__).resolve().parent.parent


def root_snapshot() -> dict[str, set]:
    with IPRoute() as ipr:
        return {"links": {(m["index"], m.get("ifname")) for m in ipr.link("dump")},
                "addrs": {(m["index"], m.get("address"), m["prefixlen"]) for m in ipr.addr("dump")},
                "routes": {(m.get("dst"), m["dst_len"], m.get("gateway"), m.get("oif"))
                           for m in ipr.route("dump", family=socket.AF_INET)}}


@pytest.fixture(scope="module")
def far():
    before = root_snapshot()
    with Sandbox(far=True) as sb:
        yield sb
    assert root_snapshot() == before, "the root namespace changed"


def gone(sb_id: str) -> bool:
    return not any(netns_exists(f"lksb-{sb_id}-{s}") for s in ("host", "tgt", "far"))


def test_the_far_side_is_built_and_the_middle_does_not_forward(far):
    assert far.far and far.far_ns == f"lksb-{far.id}-far" and far.far_iface and far.middle_iface
    assert not far.far_subnet.overlaps(far.subnet)
    rec = next(r for r in list_sandboxes() if r.id == far.id)
    assert rec.namespaces == (far.host_ns, far.target_ns, far.far_ns) and rec.complete and not rec.leftover
    assert far.snmp("target")["Ip"]["Forwarding"] == 2          # 2: not forwarding
    assert far.ping(count=1, to=far.middle_ip).received == 1   # the middle's own address answers
    before = far.snmp("target")["Ip"]
    assert far.ping(count=2, interval=0.05, timeout=0.5, to=far.far_ip).received == 0
    after = far.snmp("target")["Ip"]
    assert after["InAddrErrors"] - before["InAddrErrors"] >= 2    # the middle's stack refused to route them
    assert after["ForwDatagrams"] == before["ForwDatagrams"]
    assert far.run(["ping", "-c1", "-W1", far.middle_ip], side="far").returncode == 0
    with pytest.raises(ArgumentError, match="must be one of this sandbox's addresses"):
        far.ping(to="8.8.8.8")


def _fill_router(prog, sb: Sandbox) -> None:
    ports = prog["ports"]
    legs = [(sb.target_ifindex, sb.target_ip, sb.middle_ifindex, sb.middle_mac, sb.far_mac),
            (sb.middle_ifindex, sb.middle_ip, sb.target_ifindex, sb.target_mac, sb.host_mac)]
    for i, (inside, own, out, src, dst) in enumerate(legs):
        p = ports.Leaf()
        p.out_index = i
        p.own_ip = int.from_bytes(socket.inet_aton(own), "little")
        p.src_mac = (ctypes.c_ubyte * 6)(*bytes.fromhex(src.replace(":", "")))
        p.dst_mac = (ctypes.c_ubyte * 6)(*bytes.fromhex(dst.replace(":", "")))
        ports[ports.Key(inside)] = p
        devmap_set(prog["out"], i, out, sb.target_ns)


def test_redirect_through_a_devmap_carries_what_the_stack_will_not(far, lab):
    prog = lab.load("xdp_redirect_router")
    with pytest.raises(ArgumentError, match="needs netns"):
        devmap_set(prog["out"], 0, far.middle_ifindex, None)
    with pytest.raises(ArgumentError, match="no device with ifindex 999"):
        devmap_set(prog["out"], 0, 999, far.target_ns)
    with pytest.raises(ArgumentError, match="writes a devmap"):
        devmap_set(prog["ports"], 0, far.middle_ifindex, far.target_ns)
    _fill_router(prog, far)
    assert {k.value: v.value for k, v in prog["out"].items()} == {0: far.middle_ifindex, 1: far.target_ifindex}
    far.ping(count=1, to=far.middle_ip)                    # the host knows the middle's MAC (ARP passes)
    far.run(["ping", "-c1", "-W1", far.middle_ip], side="far")
    xs = [lab.attach_xdp(prog, iface=i, netns=far.target_ns, mode="generic")
          for i in (far.target_iface, far.middle_iface)]
    before = far.snmp("target")["Ip"]
    got = far.ping(count=4, interval=0.05, timeout=2, to=far.far_ip)
    after = far.snmp("target")["Ip"]
    assert got.received == 4, got.raw
    assert after["InReceives"] == before["InReceives"] and after["ForwDatagrams"] == before["ForwDatagrams"]
    assert sum(prog["redirected"][0]) >= 8                 # 4 requests one way, 4 replies the other
    for x in xs:
        x.detach()
    assert far.ping(count=1, timeout=0.5, to=far.far_ip).received == 0


def test_xdp_tx_on_a_veth_native_needs_a_program_on_the_peer_generic_does_not(lab):
    with Sandbox() as sb:
        prog = lab.load("solution_07_ping_responder")
        x = lab.attach_xdp(prog, iface=sb.target_iface, netns=sb.target_ns, mode="native")
        assert sb.ping(count=3, interval=0.05, timeout=0.5).received == 0        # no queue on the peer: lost
        peer = lab.attach_xdp("xdp_tx_peer_pass", iface=sb.host_iface, netns=sb.host_ns, mode="native")
        before = sb.snmp()["Icmp"]
        assert sb.ping(count=3, interval=0.05).received == 3
        assert sb.snmp()["Icmp"]["InEchos"] == before["InEchos"]
        peer.detach()
        x = lab.attach_xdp(prog, iface=sb.target_iface, netns=sb.target_ns, mode="generic")
        assert x.mode == "generic" and sb.ping(count=3, interval=0.05).received == 3
        x.detach()


def test_xdp_exception_counts_only_our_programs_aborts(far, lab):
    x = lab.attach_xdp("xdp_abort_demo", iface=far.target_iface, netns=far.target_ns)
    prog_id = interface(far.target_iface, far.target_ns)[x.mode]
    watch = lab.load("xdp_abort_exceptions", defines={"LK_PROG_ID": prog_id})
    lab.attach_tracepoint(watch, "xdp:xdp_exception")
    aborted = far.send_udp(count=4, port=4242, timeout=0.3)
    passed = far.send_udp(count=4, timeout=2)
    assert aborted.received == 0 and passed.received == 4
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counts = {k.value: v.value for k, v in watch["exceptions"].items()}
        if counts.get(0, 0) >= 4:
            break
        time.sleep(0.05)
    assert counts == {0: 4}                                 # XDP_ABORTED, exactly our four
    assert watch["last_ifindex"][0].value == far.target_ifindex
    x.detach()


def test_the_firewall_control_edits_the_trie_while_traffic_runs(far, lab):
    x = lab.attach_xdp("xdp_fw_lpm", iface=far.target_iface, netns=far.target_ns)
    fw = labkit.FirewallControl(x, name="test firewall")
    try:
        # the trie keeps a value 4 bytes past an 8-byte boundary: the program's atomic add must be 4 bytes
        # wide, which arm64 can do there (an 8-byte one made Debian 12's arm64 kernel panic)
        assert ctypes.sizeof(fw.table.Leaf) == 4
        assert fw.blocked().empty
        assert far.send_udp(count=3, timeout=2).received == 3
        net = fw.block(f"{far.host_ip}/24")                  # host bits are dropped: the /24 itself
        assert str(net) == str(far.subnet.supernet(new_prefix=24))
        fw.block(f"{far.host_ip}/32")
        assert far.send_udp(count=3, timeout=0.3).received == 0
        table = fw.blocked()
        assert list(table.prefixlen) == [32, 24] and list(table.drops) == [3, 0]   # the longest prefix counts
        # what the student sees: the blocklist shown beside the panel follows the drops without a click
        shown = fw.panel.refreshes
        deadline = time.monotonic() + 30
        while not ("<td>3</td>" in fw._list.value and fw.panel.refreshes > shown) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "<td>3</td>" in fw._list.value, fw._list.value
        fw.unblock(f"{far.host_ip}/32")
        assert far.send_udp(count=2, timeout=0.3).received == 0
        assert list(fw.refresh().drops) == [2]
        fw.unblock(str(net))
        assert far.send_udp(count=2, timeout=2).received == 2
        assert x.packets("drop", "udp") == 5 and x.packets("pass", "udp") >= 5
        with pytest.raises(ArgumentError, match="not an IPv4 prefix"):
            fw.block("198.18.0.0/33")
        with pytest.raises(labkit.LabkitError, match="is not blocked"):
            fw.unblock("198.18.0.0/16")
    finally:
        fw.close()


def test_firewall_control_refuses_what_is_not_an_lpm_blocklist(far, lab):
    with pytest.raises(ArgumentError, match="needs what lab.attach_xdp"):
        labkit.FirewallControl("xdp_fw_lpm")
    x = lab.attach_xdp("xdp_tx_peer_pass", iface=far.target_iface, netns=far.target_ns, mode="generic")
    with pytest.raises(ArgumentError, match="has no map named 'blocked'"):
        labkit.FirewallControl(x)
    x.detach()


def test_a_dead_owners_far_sandbox_is_reaped():
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import time
        from labkit.net.sandbox import Sandbox
        sb = Sandbox(far=True)
        print(sb.id, flush=True)
        time.sleep(60)
        """)], cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    sb_id = ""
    try:
        sb_id = child.stdout.readline().strip()
        assert sb_id and netns_exists(f"lksb-{sb_id}-far")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert not gone(sb_id)
        reap_dead_owners()
        assert gone(sb_id) and not state_path(sb_id).exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()


def test_far_must_be_a_bool():
    with pytest.raises(ArgumentError, match="far must be True or False"):
        Sandbox(far="yes")
