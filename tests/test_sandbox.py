"""labkit.Sandbox and ``labkit sandbox`` against the real kernel (needs root).
Their pure logic is tested in tests/unit/test_net_*.py.

Every test that builds something removes it again in a ``finally`` or a fixture,
and traffic only ever flows between the namespaces the test itself created.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from labkit._errors import ClosedError, SandboxError
from labkit.commands.sandbox import main as sandbox_main
from labkit.net import records as _records
from labkit.net import sandbox as _sandbox
from labkit.net.records import find_leftovers, list_sandboxes, remove_sandbox
from labkit.net.sandbox import Sandbox
from labkit.net.subnets import POOL
from labkit.owners import start_time

# Children import the very labkit this test imported.
REPO = Path(_sandbox.__file__).resolve().parent.parent
PYTHON = sys.executable

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


# --------------------------------------------------------------------------- helpers


def root_snapshot() -> dict[str, set[tuple]]:
    """The root namespace's links, addresses and IPv4 routes, for before/after checks."""
    with IPRoute() as ipr:
        links = {(m["index"], m.get("ifname")) for m in ipr.link("dump")}
        addrs = {(m["index"], m.get("address"), m["prefixlen"]) for m in ipr.addr("dump")}
        routes = {
            (m.get("table"), m.get("dst"), m["dst_len"], m.get("gateway"), m.get("oif"))
            for m in ipr.route("dump", family=socket.AF_INET)
        }
    return {"links": links, "addrs": addrs, "routes": routes}


def links_in(ns: str) -> dict[str, int]:
    with IPRoute(netns=ns, flags=0) as ipr:
        return {m.get("ifname"): m["index"] for m in ipr.link("dump")}


def addrs_in(ns: str) -> dict[str, str]:
    with IPRoute(netns=ns, flags=0) as ipr:
        names = {m["index"]: m.get("ifname") for m in ipr.link("dump")}
        return {
            names[m["index"]]: f"{m.get('address')}/{m['prefixlen']}"
            for m in ipr.addr("dump", family=socket.AF_INET)
        }


def gone(sandbox_id: str) -> bool:
    names = _records.sandbox_names(sandbox_id)
    existing = netns.listnetns()
    return (
        names["host_ns"] not in existing
        and names["target_ns"] not in existing
        and not _records.state_path(sandbox_id).exists()
    )


def force_remove(sandbox_id: str) -> None:
    """Last-resort cleanup for a test that failed half-way."""
    if not gone(sandbox_id):
        remove_sandbox(sandbox_id, force=True)


def leftover_ids() -> set[str]:
    return {r.id for r in find_leftovers()}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox()
    try:
        yield sb
    finally:
        sb.close()
        assert gone(sb.id)


# --------------------------------------------------------------------------- real kernel


@needs_root
def test_ping_and_udp_cross_the_veth(sandbox: Sandbox) -> None:
    result = sandbox.ping(count=3, interval=0.05)
    assert (result.transmitted, result.received, result.loss) == (3, 3, 0.0)
    assert len(result.rtts) == 3 and all(r > 0 for r in result.rtts)
    assert sandbox.target_ip in result.raw
    udp = sandbox.send_udp(count=7)
    assert (udp.sent, udp.received, udp.lost) == (7, 7, 0)


@needs_root
def test_flush_neighbors_forgets_arp(sandbox: Sandbox) -> None:
    assert sandbox.ping(count=1).received == 1
    assert sandbox.host_ip in sandbox.run(["ip", "-4", "neigh"], side="target").stdout
    assert sandbox.flush_neighbors() >= 2  # one IPv4 entry on each side at least
    assert sandbox.run(["ip", "-4", "neigh"], side="host").stdout.strip() == ""
    assert sandbox.run(["ip", "-4", "neigh"], side="target").stdout.strip() == ""
    assert sandbox.ping(count=1).received == 1  # ARP resolves again


@needs_root
def test_attributes_and_root_namespace_untouched() -> None:
    before = root_snapshot()
    sb = Sandbox()
    try:
        assert root_snapshot() == before, "the root namespace must never see the sandbox"
        assert sb.host_ns == f"lksb-{sb.id}-host" and sb.target_ns == f"lksb-{sb.id}-tgt"
        assert {sb.host_ns, sb.target_ns} <= set(netns.listnetns())
        assert len(sb.host_iface) <= 15 and len(sb.target_iface) <= 15
        host_links, target_links = links_in(sb.host_ns), links_in(sb.target_ns)
        assert set(host_links) == {"lo", sb.host_iface}
        assert set(target_links) == {"lo", sb.target_iface}
        assert target_links[sb.target_iface] == sb.target_ifindex
        assert host_links[sb.host_iface] == sb.host_ifindex
        assert sb.subnet.subnet_of(POOL)
        for ip in (sb.host_ip, sb.target_ip):
            assert ipaddress.IPv4Address(ip) in sb.subnet
        assert addrs_in(sb.host_ns)[sb.host_iface] == f"{sb.host_ip}/{sb.subnet.prefixlen}"
        assert addrs_in(sb.target_ns)[sb.target_iface] == f"{sb.target_ip}/{sb.subnet.prefixlen}"
        assert sb.host_mac != sb.target_mac and len(sb.target_mac) == 17
        state = json.loads(sb.state_file.read_text())
        assert state["owner_pid"] == os.getpid()
        assert state["owner_start_time"] == start_time(os.getpid())
        assert state["subnet"] == str(sb.subnet) and state["persistent"] is False
        assert (state["host_ns"], state["target_iface"]) == (sb.host_ns, sb.target_iface)
        record = next(r for r in list_sandboxes() if r.id == sb.id)
        assert record.alive and record.complete and not record.leftover
    finally:
        sb.close()
    assert root_snapshot() == before


@needs_root
def test_close_removes_everything_and_is_idempotent() -> None:
    sb = Sandbox()
    try:
        assert not gone(sb.id)
    finally:
        sb.close()
    assert gone(sb.id) and sb.closed
    sb.close()
    with Sandbox() as sb2:
        assert not gone(sb2.id)
    assert gone(sb2.id)
    with pytest.raises(ClosedError, match="closed"):
        sb2.ping(count=1)


@needs_root
def test_garbage_collection_removes_an_owned_sandbox() -> None:
    sb = Sandbox()
    sandbox_id = sb.id
    try:
        del sb
        gc.collect()
        assert gone(sandbox_id)
    finally:
        force_remove(sandbox_id)


@needs_root
def test_two_sandboxes_get_different_names_and_subnets() -> None:
    with Sandbox() as a, Sandbox() as b:
        assert a.id != b.id
        assert not a.subnet.overlaps(b.subnet)
        assert {a.host_ns, a.target_ns}.isdisjoint({b.host_ns, b.target_ns})
        assert a.ping(count=1).received == 1 and b.ping(count=1).received == 1


@needs_root
def test_remove_refuses_a_sandbox_a_running_process_owns(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="belongs to running process"):
        remove_sandbox(sandbox.id)
    assert sandbox.id not in leftover_ids()
    assert sandbox.ping(count=1).received == 1


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


@needs_root
def test_sigkilled_owner_leaves_a_leftover_that_cleanup_removes() -> None:
    child = _child(
        """
        import sys, time
        from labkit.net.sandbox import Sandbox
        sb = Sandbox()
        print(sb.id, flush=True)
        time.sleep(60)
        """
    )
    sandbox_id = ""
    try:
        sandbox_id = (child.stdout.readline() if child.stdout else "").strip()
        assert sandbox_id, "the child did not build a sandbox"
        assert sandbox_id not in leftover_ids(), "a live owner's sandbox is not a leftover"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert not gone(sandbox_id), "SIGKILL leaves the namespaces behind"
        found = {r.id: r for r in find_leftovers()}
        assert sandbox_id in found and not found[sandbox_id].alive
        removed = remove_sandbox(sandbox_id)
        assert removed.id == sandbox_id
        assert gone(sandbox_id)
        assert sandbox_id not in {r.id for r in list_sandboxes()}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
        if sandbox_id:
            force_remove(sandbox_id)


@needs_root
def test_a_normal_exit_without_close_removes_the_sandbox() -> None:
    child = _child(
        """
        from labkit.net.sandbox import Sandbox
        sb = Sandbox()
        print(sb.id, flush=True)
        """
    )
    out, _ = child.communicate(timeout=20)
    sandbox_id = out.strip()
    try:
        assert child.returncode == 0 and sandbox_id
        assert gone(sandbox_id)
    finally:
        if sandbox_id:
            force_remove(sandbox_id)


@needs_root
def test_namespaces_without_a_state_file_are_orphans() -> None:
    sandbox_id = "feed" + os.urandom(1).hex()
    names = _records.sandbox_names(sandbox_id)
    netns.create(names["host_ns"])
    try:
        records = {r.id: r for r in find_leftovers()}
        assert sandbox_id in records and records[sandbox_id].status == "orphan"
        assert records[sandbox_id].host_ns_present and not records[sandbox_id].target_ns_present
        remove_sandbox(records[sandbox_id])
        assert gone(sandbox_id)
    finally:
        if names["host_ns"] in netns.listnetns():
            netns.remove(names["host_ns"])


@needs_root
@pytest.mark.parametrize("failure", ["second namespace", "target configuration"])
def test_half_built_sandbox_is_torn_down(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    before_root = root_snapshot()
    ids: list[str] = []
    real_new_id = _sandbox.new_sandbox_id

    def new_id() -> str:  # remember which sandbox this test builds (others may run in parallel)
        ids.append(real_new_id())
        return ids[-1]

    monkeypatch.setattr(_sandbox, "new_sandbox_id", new_id)
    built: list[str] = []
    if failure == "second namespace":
        real_create = _sandbox.create_netns

        def create(name: str) -> None:
            if built:
                raise OSError(28, "No space left on device (injected)")
            real_create(name)
            built.append(name)

        monkeypatch.setattr(_sandbox, "create_netns", create)
        expected = r"while creating namespace lksb-[0-9a-f]+-tgt: .*injected"
    else:
        real_configure = _sandbox.configure_interface

        def configure(ipr, iface, address, prefixlen):  # type: ignore[no-untyped-def]
            if iface.endswith("t"):
                built.append(iface)
                raise RuntimeError("address rejected (injected)")
            return real_configure(ipr, iface, address, prefixlen)

        monkeypatch.setattr(_sandbox, "configure_interface", configure)
        expected = r"while configuring lk[0-9a-f]+t in lksb-[0-9a-f]+-tgt: .*injected"
    try:
        with pytest.raises(SandboxError, match=expected) as info:
            Sandbox()
        assert built, "the injected failure must happen after something was built"
        assert f"sandbox {ids[-1]} failed" in str(info.value) and "removed" in str(info.value)
        assert gone(ids[-1]), "namespaces and state file of the half-built sandbox must be gone"
        assert root_snapshot() == before_root
    finally:
        for sandbox_id in ids:
            force_remove(sandbox_id)


@needs_root
def test_cli_up_status_down_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    up = subprocess.run(
        [PYTHON, "-m", "labkit", "sandbox", "up", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    info = json.loads(up.stdout) if up.returncode == 0 else {}
    sandbox_id = info.get("id", "")
    try:
        assert up.returncode == 0, up.stderr
        assert info["persistent"] is True
        assert {info["host_ns"], info["target_ns"]} <= set(netns.listnetns()), "up must outlive the CLI"
        assert sandbox_id not in leftover_ids(), "a persistent sandbox is not a leftover"

        assert sandbox_main(["status"]) == 0
        table = capsys.readouterr().out
        row = next(line for line in table.splitlines() if line.startswith(sandbox_id))
        assert "persistent" in row and info["target_ip"] in row
        assert sandbox_main(["status", "--json"]) == 0
        listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
        assert listed[sandbox_id]["status"] == "persistent" and not listed[sandbox_id]["alive"]

        handle = Sandbox.existing(sandbox_id)
        assert handle.ping(count=1).received == 1
        handle.close()
        assert not gone(sandbox_id), "closing a handle from existing() keeps the sandbox"

        assert sandbox_main(["down", sandbox_id]) == 0
        assert f"removed sandbox {sandbox_id}" in capsys.readouterr().out
        assert gone(sandbox_id)
        assert sandbox_main(["down", sandbox_id]) == 1
        assert "no labkit sandbox" in capsys.readouterr().err
    finally:
        if sandbox_id:
            force_remove(sandbox_id)


def test_cli_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_main(["sideways"]) == 2
    assert sandbox_main(["down", "../../etc"]) == 1
    assert "not a sandbox id" in capsys.readouterr().err
