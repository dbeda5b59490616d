"""TC attachments on the real kernel, only inside the test's own sandbox
namespaces: both ways in (a tcx link, and the clsact qdisc + cls_bpf filter
through netlink that Debian 12's 6.1 uses, forced here with via="netlink"),
re-run replaces, detach and process death give back, a killed owner's netlink
filter is reaped, an egress filter proved with real traffic, and where TC sits
beside XDP."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import labkit
from labkit.net.leftovers import REAP_LOCK, Leftovers, reap_dead_owners
from labkit.hooks import tc as _tc_attach
from labkit.net.tc import filters, tc_records

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

# drops UDP to port 4444 on its way out; everything else goes on
DROP_4444 = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>
int lk_drop_4444(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5) return TC_ACT_OK;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end) return TC_ACT_OK;
    return udp->dest == bpf_htons(4444) ? TC_ACT_SHOT : TC_ACT_OK;
}
"""

_REL = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
TCX = _REL >= (6, 6)
# netlink: the path of kernels without tcx (5.10, 6.1), forced here; tcx only where the kernel has it
VIAS = [pytest.param("tcx", marks=pytest.mark.skipif(not TCX, reason=f"tcx needs kernel 6.6 (this is "
                                                                     f"{_REL[0]}.{_REL[1]}): netlink instead")),
        "netlink"]


@pytest.mark.skipif(TCX, reason="this kernel has tcx")
def test_tcx_asked_for_on_a_kernel_without_it_is_refused_and_says_why(lab, sb):
    with pytest.raises(labkit.AttachError, match="tcx needs kernel 6.6 or later; via='netlink' uses the clsact"):
        lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns, via="tcx")
    assert not lab.attachments
    auto = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns)   # the default falls back
    assert auto.via == "netlink"
    auto.detach()


@pytest.fixture(scope="module")
def sb():
    with labkit.Sandbox() as sb:
        yield sb
    assert not os.path.exists(f"/run/netns/{sb.target_ns}")


def mine(sb) -> list[dict]:
    return [r for r in tc_records() if r.get("netns") in (sb.host_ns, sb.target_ns)]


def qdiscs(sb, side: str) -> str:
    iface = sb.host_iface if side == "host" else sb.target_iface
    return sb.run(["tc", "qdisc", "show", "dev", iface], side=side).stdout


def nothing_on(sb) -> None:
    for side, iface, ns in (("host", sb.host_iface, sb.host_ns), ("target", sb.target_iface, sb.target_ns)):
        for d in ("ingress", "egress"):
            assert filters(iface, ns, d) == [], f"{side} {d} still has a filter"
        assert "clsact" not in qdiscs(sb, side)
    assert mine(sb) == []


@pytest.mark.parametrize("via", VIAS)
def test_counts_what_leaves_and_what_arrives_then_gives_back(lab, sb, via):
    out = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns, via=via)
    into = lab.attach_tc("tc_count", sb.target_iface, "ingress", netns=sb.target_ns, via=via)
    assert out.via == into.via == via and out.direction == "egress" and into.direction == "ingress"
    if via == "netlink":
        f = filters(sb.host_iface, sb.host_ns, "egress")
        assert len(f) == 1 and f[0]["prog_name"] == "lk_tc_count" and f[0]["direct_action"]
        assert "clsact" in qdiscs(sb, "host")
        assert {(r["netns"], r["direction"]) for r in mine(sb)} == {(sb.host_ns, "egress"), (sb.target_ns, "ingress")}
    else:
        assert filters(sb.host_iface, sb.host_ns, "egress") == [] and mine(sb) == []
    u = sb.send_udp(count=5)
    assert u.received == u.sent == 5
    assert out.packets("ok", "udp") == 5 and into.packets("ok", "udp") == 5  # exact, both sides
    assert list(out.counters().columns) == ["action", "protocol", "packets", "bytes"]
    out.detach()
    into.detach()
    assert out.state == into.state == "detached"
    assert out.packets("ok", "udp") == 5  # the last values, kept
    nothing_on(sb)


@pytest.mark.parametrize("via", VIAS)
def test_rerun_replaces(lab, sb, via):
    first = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns, via=via)
    second = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns, via=via)
    assert first.state == "replaced" and second.attached
    assert lab.attachments == [second]
    if via == "netlink":
        assert len(filters(sb.host_iface, sb.host_ns, "egress")) == 1 and len(mine(sb)) == 1
    u = sb.send_udp(count=3)
    assert u.received == 3 and second.packets("ok", "udp") == 3
    lab.close()
    nothing_on(sb)


def test_both_directions_of_one_interface_share_the_qdisc_and_give_it_back(lab, sb):
    into = lab.attach_tc("tc_count", sb.host_iface, "ingress", netns=sb.host_ns, via="netlink")
    out = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns, via="netlink")
    assert qdiscs(sb, "host").count("clsact") == 1
    into.detach()
    assert "clsact" in qdiscs(sb, "host")          # the egress filter still needs it
    out.detach()
    nothing_on(sb)


def test_egress_filter_drops_only_what_it_should(lab, sb):
    t = lab.attach_tc(DROP_4444, sb.host_iface, "egress", netns=sb.host_ns)
    assert sb.send_udp(count=3, port=4444, timeout=0.5).received == 0
    assert sb.send_udp(count=3, port=4445, timeout=10).received == 3
    assert sb.ping(count=2, interval=0.05).received == 2
    t.detach()
    assert sb.send_udp(count=3, port=4444, timeout=10).received == 3


def test_xdp_runs_before_tc_ingress_and_never_sees_egress(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    into = lab.attach_tc("tc_count", sb.target_iface, "ingress", netns=sb.target_ns)
    out = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns)
    r = sb.ping(count=3, interval=0.05, timeout=0.5)
    u = sb.send_udp(count=4)
    assert r.received == 0 and u.received == 4
    assert out.packets(protocol="icmp") == 3                    # left the host
    assert x.packets("drop", "icmp") == 3                       # XDP dropped them on arrival...
    assert into.packets(protocol="icmp") == 0                   # ...so TC ingress never saw them
    assert x.packets("pass", "udp") == into.packets("ok", "udp") == out.packets("ok", "udp") == 4
    lab.close()


def test_a_program_that_is_not_tc_is_refused_before_anything_is_attached(lab, sb):
    with pytest.raises(labkit.ProgramKindError, match="attach_tc needs a TC program"):
        lab.attach_tc("xdp_icmp_drop", sb.host_iface, "egress", netns=sb.host_ns)
    nothing_on(sb)


def test_the_default_route_interface_is_refused(lab, sb):
    sb.run(["ip", "route", "add", "default", "via", sb.host_ip], side="target", check=True)
    try:
        with pytest.raises(labkit.AttachError, match="carries the default route"):
            lab.attach_tc("tc_count", sb.target_iface, "egress", netns=sb.target_ns)
        nothing_on(sb)
    finally:
        sb.run(["ip", "route", "del", "default"], side="target", check=True)


def test_the_root_namespace_loopback_is_refused_before_anything_is_attached(lab, monkeypatch):
    """Only asked about, never touched: everything that would load or attach fails the test if reached."""
    def never(*a, **k):
        raise AssertionError("the guard must refuse before anything is loaded or attached")

    monkeypatch.setattr(_tc_attach, "link_create", never)
    monkeypatch.setattr(_tc_attach, "netlink_add_filter", never)
    monkeypatch.setattr(lab, "load", never)
    before = filters("lo", None, "egress")
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_tc("tc_count", "lo", "egress")
    msg = str(ei.value)
    assert msg.startswith("lo carries ") and "force=True" in msg and "a TC program there" in msg
    assert filters("lo", None, "egress") == before and not lab.attachments


@pytest.mark.parametrize("via", VIAS)
def test_a_killed_owner_gives_back(sb, via):
    """tcx: the kernel takes the link off with its process. netlink: the filter
    stays (as on 6.1) until the next labkit entry point reaps the dead owner's record."""
    code = textwrap.dedent(f"""
        import sys, labkit
        lab = labkit.Lab()
        t = lab.attach_tc({DROP_4444!r}, {sb.host_iface!r}, "egress", netns={sb.host_ns!r}, via={via!r})
        print(t.via, flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == via
        assert sb.send_udp(count=2, port=4444, timeout=0.5).received == 0
        lock = None
        if via == "netlink":
            # hold the machine's reap lock from before the kill: another process's Lab() (a test running
            # beside this one) would otherwise reap the dead owner's filter before it is looked at
            lock = os.open(REAP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(lock, fcntl.LOCK_EX)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        if lock is not None:
            try:
                assert len(filters(sb.host_iface, sb.host_ns, "egress")) == 1   # a netlink filter outlives its owner
                assert sb.send_udp(count=2, port=4444, timeout=0.5).received == 0
                found = Leftovers.find(owner_pid=p.pid)
                assert [(t["iface"], t["direction"], t["name"]) for t in found.attached["tc"]] == [
                    (sb.host_iface, "egress", "lk_drop_4444")]
                said: list[str] = []
                assert found.remove(dry_run=True, out=said.append) == 1
                assert said[0].startswith(f"would remove TC lk_drop_4444 (id {found.attached['tc'][0]['prog_id']}) on "
                                          f"{sb.host_ns}:{sb.host_iface} egress [cls_bpf prio "), said
                assert [r for r in Leftovers.find_dead().attached["tc"] if r["record"]["pid"] == p.pid]
            finally:
                os.close(lock)
            line = ""
            deadline = time.monotonic() + 30  # another process's reap may get there first: either is fine
            while filters(sb.host_iface, sb.host_ns, "egress") and time.monotonic() < deadline:
                line = reap_dead_owners(out=lambda s: None) or line
                time.sleep(0.1)
            assert not line or f"TC lk_drop_4444 on {sb.host_ns}:{sb.host_iface} egress of pid {p.pid}" in line
        deadline = time.monotonic() + 10
        got = 0
        while time.monotonic() < deadline:
            got = sb.send_udp(count=2, port=4444, timeout=0.5).received
            if got == 2:
                break
        assert got == 2, "the dead owner's program still drops"
        nothing_on(sb)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
