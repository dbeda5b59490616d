"""Guarding what the lab stands on, on the real kernel (needs root): every case
is mimicked inside the test's own sandbox namespaces (a default route, a
JupyterLab listener, a browser's connection, an SSH session), never on this
machine's own interfaces. The root namespace's lo is only asked about: the
refusal is checked with every way to attach replaced by a failure."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import labkit
from labkit.net import xdp as _xdp
from labkit.net.guards import what_would_be_cut
from labkit.net.netns import run_in_netns
from labkit.hooks import xdp as _attach

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]


@pytest.fixture
def sb():
    with labkit.Sandbox() as sb:
        yield sb


def slots(iface: str, netns: str | None) -> tuple[int, int]:
    link = _xdp.interface(iface, netns)
    return link["native"], link["generic"]


def listener(netns: str, addr: str, port: int) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen()
        return s
    return run_in_netns(netns, make)


def connect(netns: str, addr: str, port: int) -> socket.socket:
    s = run_in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.settimeout(5)
    s.connect((addr, port))
    return s


@contextmanager
def jupyter(netns: str, addr: str, port: int = 8888) -> Iterator[subprocess.Popen]:
    """A process that looks like JupyterLab (its command is jupyter-lab) and
    holds a listening socket on addr:port inside ``netns``."""
    sock = listener(netns, addr, port)
    p = subprocess.Popen(["jupyter-lab", "-c", "import sys; sys.stdin.read()"], executable=sys.executable,
                         stdin=subprocess.PIPE, pass_fds=[sock.fileno()])
    sock.close()
    try:
        yield p
    finally:
        p.stdin.close()
        p.wait(timeout=10)


def refused(lab, iface: str, netns: str | None) -> str:
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_xdp("xdp_icmp_drop", iface=iface, netns=netns)
    assert "force=True" in str(ei.value) and not lab.attachments
    assert slots(iface, netns) == (0, 0)
    return str(ei.value)


def test_default_route(lab, sb):
    sb.run(["ip", "route", "add", "default", "via", sb.host_ip], side="target", check=True)
    msg = refused(lab, sb.target_iface, sb.target_ns)
    assert msg.startswith(f"{sb.target_ns}:{sb.target_iface} carries the default route")


def test_jupyter_listening_on_the_interface_address(lab, sb):
    assert what_would_be_cut(sb.target_ifindex, sb.target_ns) == []
    with jupyter(sb.target_ns, sb.target_ip):
        msg = refused(lab, sb.target_iface, sb.target_ns)
    assert msg.startswith(f"{sb.target_ns}:{sb.target_iface} carries JupyterLab's address {sb.target_ip}:8888: "
                          "an XDP program there can cut it off")
    assert what_would_be_cut(sb.target_ifindex, sb.target_ns) == []  # the server ended: nothing to guard


def test_jupyter_on_a_namespace_loopback(lab, sb):
    sb.run(["ip", "link", "set", "lo", "up"], side="target", check=True)
    with jupyter(sb.target_ns, "127.0.0.1"):
        msg = refused(lab, "lo", sb.target_ns)
        assert msg.startswith(f"{sb.target_ns}:lo carries JupyterLab's address 127.0.0.1:8888: ")
        assert what_would_be_cut(sb.target_ifindex, sb.target_ns) == []  # the veth does not carry it
    x = lab.attach_xdp("xdp_icmp_drop", iface="lo", netns=sb.target_ns, mode="generic")  # a lo nothing stands on
    assert x.attached
    x.detach()


def test_a_browser_connected_to_a_wildcard_listener(lab, sb):
    with jupyter(sb.target_ns, "0.0.0.0"):
        assert f"{sb.target_iface} carries" not in refused(lab, "lo", sb.target_ns)  # wildcard: loopback
        assert what_would_be_cut(sb.target_ifindex, sb.target_ns) == []
        browser = connect(sb.host_ns, sb.target_ip, 8888)
        try:
            port = browser.getsockname()[1]
            msg = refused(lab, sb.target_iface, sb.target_ns)
        finally:
            browser.close()
    assert (f"carries the browser's connection to JupyterLab {sb.target_ip}:8888 <- {sb.host_ip}:{port}: "
            in msg)


def test_an_ssh_session(lab, sb):
    server = listener(sb.target_ns, sb.target_ip, 22)
    client = connect(sb.host_ns, sb.target_ip, 22)
    session, _ = server.accept()
    try:
        port = client.getsockname()[1]
        msg = refused(lab, sb.target_iface, sb.target_ns)
        assert msg.startswith(f"{sb.target_ns}:{sb.target_iface} carries the SSH session "
                              f"{sb.target_ip}:22 <- {sb.host_ip}:{port}: ")
        assert what_would_be_cut(sb.host_ifindex, sb.host_ns) == []  # the client's end is not a server's session
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns, force=True)
        assert x.attached
        x.detach()
    finally:
        for s in (session, client, server):
            s.close()


def test_the_root_namespace_loopback_is_refused_before_anything_is_attached(lab, monkeypatch):
    def never(*a, **k):
        raise AssertionError("the guard must refuse before anything is loaded or attached")

    monkeypatch.setattr(_attach, "link_create", never)
    monkeypatch.setattr(_attach, "netlink_set", never)
    monkeypatch.setattr(lab, "load", never)
    before = slots("lo", None)
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_xdp("xdp_icmp_drop", iface="lo")
    msg = str(ei.value)
    assert msg.startswith("lo carries ") and "force=True" in msg
    assert "JupyterLab's address" in msg or "the loopback address JupyterLab listens on" in msg
    assert slots("lo", None) == before and not lab.attachments
