"""The XDP ping-drop engine on the real kernel, only inside the test's own
network namespaces (labkit.Sandbox, 198.18.0.0/15)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import labkit
from labkit.net import xdp as _xdp
from labkit.net.leftovers import REAP_LOCK
from labkit.net.records import find_leftovers, list_sandboxes, remove_sandbox

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

EXPECT_HOOK = os.environ.get("LABKIT_EXPECT_HOOK")


@pytest.fixture
def sb():
    with labkit.Sandbox() as sb:
        yield sb
    assert not os.path.exists(f"/run/netns/{sb.target_ns}")


def on_iface(sb) -> dict:
    return _xdp.interface(sb.target_iface, sb.target_ns)


def test_drop_program_drops_ping_counts_exactly_and_passes_udp_and_arp(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    print(f"xdp: {x.mode} via {x.via}")
    assert x.via == "bpf_link" and x.mode in ("native", "generic")
    assert on_iface(sb)[x.mode] != 0
    r = sb.ping(count=10, interval=0.05, timeout=1)
    assert r.transmitted == 10 and r.received == 0
    assert x.packets("drop", "icmp") == r.transmitted  # exact, not sampled
    assert x.packets("pass", "icmp") == 0
    # ARP must pass: forget the neighbour, then UDP still gets there
    sb.flush_neighbors()
    u = sb.send_udp(count=5)
    assert u.received == u.sent == 5
    c = x.counters()
    assert list(c.columns) == ["action", "protocol", "packets", "bytes"]
    assert x.packets("pass", "arp") >= 1
    assert x.packets("pass", "udp") == 5
    assert (c[c.protocol == "icmp"].bytes >= 10 * 84).all()
    # the sampled event stream saw the same decisions
    ev = x.events
    assert ev.wait(lambda df: (df.protocol == "udp").sum() >= 5, timeout=1)
    df = ev.to_dataframe()
    icmp = df[df.protocol == "icmp"]
    assert len(icmp) == 10 and set(icmp.action) == {"drop"}
    assert set(icmp.src) == {sb.host_ip} and set(icmp.dst) == {sb.target_ip}
    assert ev.lost == 0


def test_classic_program_breaks_arp(lab, sb):
    assert sb.send_udp(count=3, timeout=10).received == 3   # the first datagrams wait for ARP: on a busy machine, more than 1 s
    x = lab.attach_xdp("xdp_icmp_drop_classic", iface=sb.target_iface, netns=sb.target_ns)
    assert x.events is None  # the classic program has counters only
    sb.flush_neighbors()
    u = sb.send_udp(count=5, timeout=1.0)
    assert u.received == 0, "with ARP dropped, UDP cannot reach the target"
    assert x.packets("drop", "arp") >= 1


def test_detach_lets_pings_through_again(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    assert sb.ping(count=2, interval=0.05, timeout=1).received == 0
    x.detach()
    x.detach()  # twice is fine
    assert on_iface(sb)["native"] == 0 and on_iface(sb)["generic"] == 0
    assert sb.ping(count=3, interval=0.05).received == 3
    assert x.packets("drop", "icmp") == 2  # the counters read at detach stay readable


def test_reattach_replaces_in_any_mode(lab, sb):
    a = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="native")
    b = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="generic")
    assert a.state == "replaced" and b.mode == "generic"
    slots = on_iface(sb)
    assert slots["native"] == 0 and slots["generic"] != 0
    c = lab.attach_xdp("xdp_icmp_drop_classic", iface=sb.target_iface, netns=sb.target_ns, mode="auto")
    slots = on_iface(sb)
    assert b.state == "replaced" and slots[c.mode] != 0
    assert [m for m in ("native", "generic") if slots[m]] == [c.mode]
    assert len(lab.attachments) == 1


def test_auto_mode_says_which_mode_it_got(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    assert x.mode == "native"  # veth has native XDP
    assert "native" in x.mode_note and "bpf_link" in x.mode_note


def test_sigkill_takes_the_program_off_within_a_second(sb):
    code = textwrap.dedent(f"""
        import sys, labkit
        lab = labkit.Lab()
        x = lab.attach_xdp("xdp_icmp_drop", iface={sb.target_iface!r}, netns={sb.target_ns!r})
        print(x.via, flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "bpf_link"
        slots = on_iface(sb)
        assert slots["native"] or slots["generic"]
        assert sb.ping(count=1, timeout=1).received == 0
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            slots = on_iface(sb)
            if not (slots["native"] or slots["generic"]):
                break
            time.sleep(0.02)
        assert not (slots["native"] or slots["generic"]), f"still attached after SIGKILL: {slots}"
        assert sb.ping(count=2, interval=0.05).received == 2
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cleanup_removes_netlink_leftover_and_dead_sandbox():
    code = textwrap.dedent("""
        import json, sys, labkit
        sb = labkit.Sandbox()
        lab = labkit.Lab()
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="generic",
                           via="netlink")
        print(json.dumps({"ns": sb.target_ns, "host_ns": sb.host_ns, "iface": sb.target_iface,
                          "via": x.via, "mode": x.mode, "id": sb.id}), flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = reap_lock = None
    try:
        info = json.loads(p.stdout.readline())
        assert info["via"] == "netlink" and info["mode"] == "generic"
        # hold the machine's reap lock: another test run's Lab() (runs may overlap) would
        # otherwise reap this dead owner's leftovers before `labkit cleanup` gets to them
        reap_lock = os.open(REAP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(reap_lock, fcntl.LOCK_EX)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
        # netlink attach survives its process: the program is still there, and the namespaces too
        slots = _xdp.interface(info["iface"], info["ns"])
        assert slots["generic"] != 0 and _xdp.prog_name(slots["generic"]).startswith("lk_")
        found = [f for f in _xdp.find_labkit_xdp() if f["netns"] == info["ns"]]
        assert found and found[0]["mode"] == "generic"
        assert info["id"] in {r.id for r in find_leftovers()}
        dry = subprocess.run([sys.executable, "-m", "labkit", "cleanup", "--dry-run"],
                             capture_output=True, text=True, timeout=60)
        assert info["ns"] in dry.stdout and "would remove" in dry.stdout
        assert os.path.exists(f"/run/netns/{info['ns']}")  # a dry run removes nothing
        r = subprocess.run([sys.executable, "-m", "labkit", "cleanup"], capture_output=True, text=True,
                           timeout=60)
        # what other runs (tests beside this one) hold is kept, never ours; exit 1 only for what
        # could not be removed, and nothing of ours is among it
        kept = [ln for ln in r.stdout.splitlines() if ln.startswith(("kept ", "could not"))]
        stuck = [ln for ln in kept if "held by a bpf_link" in ln or ln.startswith("could not")]
        assert r.returncode == (1 if stuck else 0) and not [k for k in kept if info["ns"] in k], r.stdout + r.stderr
        prog = f"XDP {found[0]['name']} (id {found[0]['prog_id']}) on {info['ns']}:{info['iface']} [generic]"
        sandbox = f"sandbox {info['id']} ({info['host_ns']}, {info['ns']}; owner pid {p.pid}, leftover)"
        assert f"would remove {prog} (with its leftover sandbox)" in dry.stdout.splitlines()
        assert f"would remove {sandbox}" in dry.stdout.splitlines()
        assert f"removing {prog} (with its leftover sandbox)" in r.stdout.splitlines()
        assert f"removed {sandbox}" in r.stdout.splitlines()
        assert not os.path.exists(f"/run/netns/{info['ns']}")
        assert not os.path.exists(f"/run/netns/{info['host_ns']}")
        assert not [f for f in _xdp.find_labkit_xdp() if f["netns"] == info["ns"]]
        assert not [rec for rec in _xdp.netlink_records() if rec.get("netns") == info["ns"]]
    finally:
        if reap_lock is not None:
            os.close(reap_lock)
        if p.poll() is None:
            p.kill()
            p.wait()
        if info:
            for rec in list_sandboxes():
                if rec.id == info["id"]:
                    remove_sandbox(rec, force=True)


def test_cleanup_on_a_clean_machine_exits_zero():
    r = subprocess.run([sys.executable, "-m", "labkit", "cleanup", "--dry-run"], capture_output=True,
                       text=True, timeout=60)
    # other runs (and tests beside this one) may hold live sandboxes and programs, which are kept,
    # not leftovers; a dead owner's would be listed, and then the exit code is 1
    assert r.returncode in (0, 1)
    would = [ln for ln in r.stdout.splitlines() if ln.startswith("would ")]
    assert (r.returncode == 1) == bool([ln for ln in would if not ln.startswith("would forget record")]), r.stdout
    if "clean" in r.stdout:
        assert r.returncode == 0 and not would, r.stdout


FOREIGN_XDP = """\
#include <uapi/linux/bpf.h>

int xdp_foreign(struct xdp_md *ctx)
{
    return XDP_PASS;
}
"""


def netlink_attach(lab, sb, source: str) -> None:
    """Put a program into the generic slot by netlink, outside any attachment
    (as a killed process, or another tool, leaves one behind)."""
    import bcc

    prog = lab.load(source, need="xdp")
    fd = prog.load_function(prog.function_name(), bcc.BPF.XDP).fd
    _xdp.netlink_set(on_iface(sb)["index"], sb.target_ns, fd, "generic")


def test_slot_rules_a_labkit_leftover_goes_a_foreign_program_stays(lab, sb):
    netlink_attach(lab, sb, "xdp_icmp_drop")
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="native")
    slots = on_iface(sb)
    assert slots["generic"] == 0 and slots["native"] != 0, "the leftover lk_ program must go"
    x.detach()
    netlink_attach(lab, sb, FOREIGN_XDP)
    foreign = on_iface(sb)["generic"]
    try:
        with pytest.raises(labkit.AttachError, match="non-labkit XDP program xdp_foreign in generic mode"):
            lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        assert on_iface(sb)["generic"] == foreign and not lab.attachments
        y = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, replace_foreign=True)
        slots = on_iface(sb)
        assert y.mode == "native" and slots["native"] != 0 and slots["generic"] == 0
    finally:
        if on_iface(sb)["generic"] == foreign:
            _xdp.netlink_set(on_iface(sb)["index"], sb.target_ns, -1, "generic")


def test_netlink_attach_is_recorded_until_detached(lab, sb):
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="generic",
                       via="netlink")
    assert (x.via, x.mode) == ("netlink", "generic")
    mine = [r for r in _xdp.netlink_records() if r.get("netns") == sb.target_ns]
    assert len(mine) == 1 and mine[0]["pid"] == os.getpid() and mine[0]["iface"] == sb.target_iface
    assert mine[0]["prog_id"] == on_iface(sb)["generic"] != 0 and mine[0]["mode"] == "generic"
    assert sb.ping(count=1, timeout=0.5).received == 0
    x.detach()
    assert on_iface(sb)["generic"] == 0
    assert not [r for r in _xdp.netlink_records() if r.get("netns") == sb.target_ns]


def test_missing_interface_is_named(lab, sb):
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_xdp("xdp_icmp_drop", iface="lk-nothing0", netns=sb.target_ns)
    assert "lk-nothing0" in str(ei.value) and sb.target_iface in str(ei.value)
    assert not lab.attachments


def test_missing_namespace_is_named(lab):
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_xdp("xdp_icmp_drop", iface="eth0", netns="lksb-does-not-exist")
    assert "lksb-does-not-exist" in str(ei.value)
    assert not os.path.exists("/run/netns/lksb-does-not-exist")  # and it was not created


BAD_XDP = """\
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>

int lk_xdp_unchecked(struct xdp_md *ctx)
{
    struct ethhdr *eth = (void *)(long)ctx->data;
    if (eth->h_proto == 0)          /* read without checking data_end */
        return XDP_DROP;
    return XDP_PASS;
}
"""


def test_verifier_rejected_xdp_program_is_named(lab, sb):
    with pytest.raises(labkit.VerifierError) as ei:
        lab.attach_xdp(BAD_XDP, iface=sb.target_iface, netns=sb.target_ns)
    assert "lk_xdp_unchecked" in str(ei.value)
    assert "invalid access to packet" in ei.value.log
    slots = on_iface(sb)
    assert slots["native"] == 0 and slots["generic"] == 0
    assert not lab.attachments


def test_default_route_interface_needs_force(lab, sb):
    # give the target namespace a default route (inside it only) and check the guard there
    sb.run(["ip", "route", "add", "default", "via", sb.host_ip], side="target", check=True)
    with pytest.raises(labkit.AttachError, match="default route") as ei:
        lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    assert "force=True" in str(ei.value)
    assert on_iface(sb)["native"] == 0 and on_iface(sb)["generic"] == 0
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, force=True)
    assert x.attached


def test_bad_arguments_are_refused_before_the_kernel(lab, sb):
    with pytest.raises(labkit.ArgumentError, match="mode"):
        lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, mode="offload")
    with pytest.raises(labkit.ArgumentError, match="iface"):
        lab.attach_xdp("xdp_icmp_drop")
    with pytest.raises(labkit.ArgumentError, match="sample_every"):
        lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, sample_every=0)
    assert not lab.attachments
