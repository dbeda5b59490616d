"""What the lab stands on: the connections a program on an interface would cut.

A program that sits in an interface's receive path (XDP today, TC the same
way) can drop every packet there. :func:`what_would_be_cut` says, for one
interface (ifindex in a namespace), which of the lab's own lifelines it carries:

* the default route (IPv4 or IPv6): on a VM the way in and out
  (:func:`default_route_ifindexes`, also a column of the interfaces table);
* JupyterLab: every address a local Jupyter server (a process running
  ``jupyter*``, or the parent of this IPython kernel) listens on (a wildcard
  address: loopback), and the local end of every connection made to such a
  port (a browser's); in the root namespace loopback always, JupyterLab's
  default address (127.0.0.1);
* SSH sessions: the local end of every established TCP connection to port 22,
  and of every connection sshd holds.

Sockets are read from the namespace's own ``/proc/thread-self/net/tcp{,6}``
(read from inside it) and matched to processes by inode through
``/proc/<pid>/fd``. An address is carried by the interface that holds it, a
loopback address by lo. :func:`refuse_cutting` turns the answer into an
AttachError unless the caller passed ``force=True``.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit._errors import AttachError
from labkit.net.netns import run_in_netns

__all__ = [
    "JUPYTER_DEFAULT",
    "SSH_PORT",
    "Socket",
    "Surroundings",
    "default_route_ifindexes",
    "lifelines",
    "parse_tcp_table",
    "refuse_cutting",
    "what_would_be_cut",
]

#: Where JupyterLab listens unless told otherwise (scripts/start-jupyter.sh too).
JUPYTER_DEFAULT = "127.0.0.1"
SSH_PORT = 22

_LISTEN, _ESTABLISHED = 0x0A, 0x01  # TCP states in /proc/net/tcp
_IFF_LOOPBACK = 0x8
_MAX_SHOWN = 3

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Socket:
    """One line of /proc/net/tcp{,6}."""

    local: Address
    local_port: int
    remote: Address
    remote_port: int
    state: int
    inode: int


def _address(hexed: str) -> Address:
    """An address as /proc/net/tcp prints it: 32-bit words in host byte order."""
    raw = b"".join(
        bytes.fromhex(hexed[i:i + 8])[:: -1 if sys.byteorder == "little" else 1] for i in range(0, len(hexed), 8)
    )
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_tcp_table(text: str) -> list[Socket]:
    """The sockets of a /proc/net/tcp or /proc/net/tcp6 text."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local, remote = fields[1].split(":"), fields[2].split(":")
        out.append(Socket(local=_address(local[0]), local_port=int(local[1], 16), remote=_address(remote[0]),
                          remote_port=int(remote[1], 16), state=int(fields[3], 16), inode=int(fields[9])))
    return out


@dataclass
class Surroundings:
    """What one namespace looks like from the guard's side: links (index ->
    (name, is loopback)), addresses (index, address), the default-route
    interfaces, its TCP sockets, and the socket inodes of Jupyter and sshd."""

    links: dict[int, tuple[str, bool]]
    addresses: list[tuple[int, Address]]
    default_routes: set[int]
    sockets: list[Socket]
    jupyter_inodes: set[int]
    sshd_inodes: set[int]
    root: bool


def _endpoint(ip: Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _holder(ip: Address, s: Surroundings) -> set[int]:
    """The interfaces that carry address ``ip`` (a wildcard: loopback only;
    the connections made to it name the others)."""
    loopbacks = {i for i, (_, is_lo) in s.links.items() if is_lo}
    if ip.is_loopback or ip.is_unspecified:
        return loopbacks
    return {i for i, a in s.addresses if a == ip}


def lifelines(ifindex: int, s: Surroundings) -> list[str]:
    """What interface ``ifindex`` carries that the lab stands on, as phrases
    ("the default route", "JupyterLab's address 127.0.0.1:8888", ...); [] for nothing."""
    found: list[str] = []
    if ifindex in s.default_routes:
        found.append("the default route (on a VM: the way in, your SSH session included)")
    listeners = set()  # (address, port) of Jupyter's listening sockets
    for sock in s.sockets:
        if sock.state == _LISTEN and sock.inode in s.jupyter_inodes:
            listeners.add((sock.local, sock.local_port))
            if ifindex in _holder(sock.local, s):
                found.append(f"JupyterLab's address {_endpoint(sock.local, sock.local_port)}")
    browsers, sessions = [], []
    for sock in s.sockets:
        if sock.state != _ESTABLISHED or ifindex not in _holder(sock.local, s):
            continue
        pair = f"{_endpoint(sock.local, sock.local_port)} <- {_endpoint(sock.remote, sock.remote_port)}"
        if any(port == sock.local_port and (ip == sock.local or ip.is_unspecified) for ip, port in listeners):
            browsers.append(f"the browser's connection to JupyterLab {pair}")
        elif sock.local_port == SSH_PORT or sock.inode in s.sshd_inodes:
            sessions.append(f"the SSH session {pair}")
    for group in (browsers, sessions):
        found += group[:_MAX_SHOWN]
        if len(group) > _MAX_SHOWN:
            found.append(f"{len(group) - _MAX_SHOWN} more like it")
    name, is_lo = s.links.get(ifindex, ("", False))
    if s.root and is_lo and not any(f.startswith("JupyterLab's address") for f in found):
        found.append(f"the loopback address JupyterLab listens on by default ({JUPYTER_DEFAULT})")
    return list(dict.fromkeys(found))


# ----------------------------------------------------------------- looking around


def _cmdline(pid: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _is_jupyter(args: list[str]) -> bool:
    """``jupyter-lab``, ``python /venv/bin/jupyter-lab``, ``python -m jupyterlab``, ..."""
    return any(os.path.basename(a).startswith("jupyter") for a in args[:3])


def _socket_inodes(pids: Iterable[str]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    return out


def _processes() -> tuple[set[str], set[str]]:
    """(pids of Jupyter servers, pids of sshd)."""
    jupyter, sshd = set(), set()
    if "ipykernel" in sys.modules:  # this is a notebook's kernel: its parent is the server
        jupyter.add(str(os.getppid()))
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        if _comm(pid).startswith("sshd"):
            sshd.add(pid)
        elif _is_jupyter(_cmdline(pid)):
            jupyter.add(pid)
    return jupyter, sshd


def _ipr() -> Any:
    # lazy: pyroute2 is only needed when an interface is looked at
    from pyroute2 import IPRoute

    return IPRoute()


def _default_routes(ipr: Any) -> set[int]:
    out = set()
    for family in (2, 10):  # AF_INET, AF_INET6
        for route in ipr.get_default_routes(family=family):
            if route.get_attr("RTA_OIF"):
                out.add(route.get_attr("RTA_OIF"))
            out.update(hop["oif"] for hop in route.get_attr("RTA_MULTIPATH") or [])
    return out


def default_route_ifindexes(netns: str | None) -> set[int]:
    """The interfaces that carry a default route (IPv4 or IPv6) in a namespace."""
    def work() -> set[int]:
        with _ipr() as ipr:
            return _default_routes(ipr)
    return run_in_netns(netns, work)


def _look_inside() -> tuple[dict[int, tuple[str, bool]], list[tuple[int, Any]], set[int], list[Socket]]:
    """Links, addresses, default-route interfaces and TCP sockets of the calling thread's namespace."""
    with _ipr() as ipr:
        defaults = _default_routes(ipr)
        links = {m["index"]: (m.get_attr("IFLA_IFNAME"), bool(m["flags"] & _IFF_LOOPBACK)) for m in ipr.get_links()}
        addresses = []
        for m in ipr.get_addr():
            value = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
            if value:
                addresses.append((m["index"], ipaddress.ip_address(value.split("%")[0])))
    sockets: list[Socket] = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/thread-self/net/{table}") as f:
                sockets += parse_tcp_table(f.read())
        except FileNotFoundError:  # no IPv6
            continue
    return links, addresses, defaults, sockets


def what_would_be_cut(ifindex: int, netns: str | None) -> list[str]:
    """What interface ``ifindex`` of namespace ``netns`` (None: the root one)
    carries that the lab stands on (see :func:`lifelines`); [] for nothing.
    Only reads: the namespace's links, addresses, routes, sockets and /proc."""
    links, addresses, defaults, sockets = run_in_netns(netns, _look_inside)
    jupyter, sshd = _processes()
    return lifelines(ifindex, Surroundings(
        links=links, addresses=addresses, default_routes=defaults, sockets=sockets,
        jupyter_inodes=_socket_inodes(jupyter), sshd_inodes=_socket_inodes(sshd), root=netns is None))


def refuse_cutting(where: str, ifindex: int, netns: str | None, *, what: str = "an XDP program",
                   force: bool = False) -> None:
    """AttachError naming what would be cut off when ``what`` went onto
    interface ``ifindex`` (called ``where``) of ``netns``, unless ``force``."""
    if force:
        return
    cut = what_would_be_cut(ifindex, netns)
    if cut:
        raise AttachError(
            f"{where} carries {'; and '.join(cut)}: {what} there can cut {'it' if len(cut) == 1 else 'them'} off "
            "(one that drops or aborts takes every packet with it). Use the sandbox (labkit.Sandbox()), or pass "
            "force=True if you really mean this interface.", target=where)
