"""``labkit.Sandbox``: a private two-namespace network to point XDP programs at.

::

    root namespace  (never touched: no link, address or route is added)

    lksb-<id>-host                         lksb-<id>-tgt
    ┌──────────────────────┐               ┌──────────────────────┐
    │ lo                   │   veth pair   │ lo                   │
    │ lk<id>h 198.18.x.1/30├───────────────┤lk<id>t 198.18.x.2/30 │ ← XDP goes here
    └──────────────────────┘               └──────────────────────┘

The "host" namespace sends traffic; the "target" namespace's interface is where
a lesson attaches its XDP program. The veth is created *inside* the host
namespace with its peer placed directly into the target namespace, so the root
namespace never sees a link. The subnet comes from labkit.net.subnets; the
ownership record, written before anything is built, and the removal of
sandboxes (also other processes' leftovers) from labkit.net.records.

Building uses pyroute2 only; running traffic uses ``ip netns exec … ping`` and
sockets opened inside the namespaces (``setns`` in a short-lived thread).
"""

from __future__ import annotations

import errno
import html
import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from labkit._errors import ArgumentError, SandboxError
from labkit.net.leftovers import reap_dead_owners
from labkit.net.netns import create_netns, list_netns, off_event_loop
from labkit.net.records import (
    STATE_DIR,
    SandboxRecord,
    destroy_sandbox,
    find_record,
    mark_built,
    new_sandbox_id,
    sandbox_names,
    state_lock,
    state_path,
    write_record,
)
from labkit.net.subnets import POOL, pick_subnet, taken_networks
from labkit.net.traffic import PingResult, UdpResult, exchange_udp, parse_ping

__all__ = ["Sandbox", "configure_interface"]

_IFNAMSIZ = 15
_MAX_ICMP_PAYLOAD = 65507  # 65535 - 20 (IPv4 header) - 8 (ICMP header)
_MAX_UDP_PAYLOAD = 65507   # 65535 - 20 (IPv4 header) - 8 (UDP header)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class Sandbox:
    """Two network namespaces joined by a veth pair; nothing outside them changes.

    ::

        with labkit.Sandbox() as sb:
            sb.ping(count=3)             # host -> target, through the veth
            sb.target_iface, sb.target_ns  # where an XDP program goes

    The sandbox is removed by :meth:`close`, at the end of a ``with`` block, when
    the object is garbage-collected, and at interpreter exit. A ``persistent``
    sandbox (``labkit sandbox up``) outlives its process and is removed only by
    :meth:`close`, ``labkit sandbox down`` or :func:`labkit.net.records.remove_sandbox`.

    Raises :class:`SandboxError` (after removing whatever was already built) when
    building fails. Before building, what dead owners left is removed and said
    in one line (labkit.net.leftovers.reap_dead_owners).
    """

    id: str
    host_ns: str
    target_ns: str
    host_iface: str
    target_iface: str
    subnet: ipaddress.IPv4Network
    host_ip: str
    target_ip: str
    host_mac: str
    target_mac: str
    host_ifindex: int
    target_ifindex: int
    persistent: bool
    state_file: Path

    def __init__(self, *, persistent: bool = False, prefixlen: int = 30) -> None:
        if not isinstance(persistent, bool):
            raise ArgumentError(f"persistent must be True or False, got {persistent!r}")
        if not (_is_int(prefixlen) and POOL.prefixlen <= prefixlen <= 30):
            raise ArgumentError(f"prefixlen must be a whole number from {POOL.prefixlen} to 30 (the sandbox's "
                                f"subnet inside {POOL}; 30 is two addresses, the default), got {prefixlen!r}")
        self.persistent = persistent
        self._owned = True
        self._closed = False
        self._finalizer: weakref.finalize | None = None
        reap_dead_owners()
        self._reserve(prefixlen)
        self._build()
        if not persistent:
            self._finalizer = weakref.finalize(
                self,
                _finalize,
                os.getpid(),
                (self.host_ns, self.target_ns, self.host_iface, self.target_iface),
                self.state_file,
            )

    # -- building ---------------------------------------------------------------

    def _reserve(self, prefixlen: int) -> None:
        """Choose id and subnet and write the state file, under a lock, so two
        processes never pick the same ones."""
        try:
            with state_lock():
                taken = taken_networks()
                existing = set(list_netns())
                while True:
                    sandbox_id = new_sandbox_id()
                    names = sandbox_names(sandbox_id)
                    if not state_path(sandbox_id).exists() and not (
                        {names["host_ns"], names["target_ns"]} & existing
                    ):
                        break
                subnet = pick_subnet(taken, prefixlen=prefixlen)
                host_ip, target_ip = itertools.islice(subnet.hosts(), 2)
                self.id = sandbox_id
                self.host_ns, self.target_ns = names["host_ns"], names["target_ns"]
                self.host_iface, self.target_iface = names["host_iface"], names["target_iface"]
                assert max(len(self.host_iface), len(self.target_iface)) <= _IFNAMSIZ
                self.subnet = subnet
                self.host_ip, self.target_ip = str(host_ip), str(target_ip)
                self.state_file = write_record(
                    sandbox_id, subnet=str(subnet), host_ip=self.host_ip, target_ip=self.target_ip,
                    persistent=self.persistent,
                )
        except PermissionError as exc:
            raise SandboxError(
                f"cannot write sandbox state under {STATE_DIR} ({exc.strerror}); "
                "a sandbox needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run as root or via sudo"
            ) from exc

    @off_event_loop
    def _build(self) -> None:
        """Create namespaces, the veth pair and addresses; on any failure remove
        what was built and raise SandboxError naming the step."""
        # lazy: pyroute2 is only needed when a sandbox is built or changed
        from pyroute2 import IPRoute

        step = f"creating namespace {self.host_ns}"
        try:
            create_netns(self.host_ns)
            step = f"creating namespace {self.target_ns}"
            create_netns(self.target_ns)
            step = f"creating veth {self.host_iface} <-> {self.target_iface}"
            with IPRoute(netns=self.host_ns, flags=0) as host:
                host.link(
                    "add",
                    ifname=self.host_iface,
                    kind="veth",
                    peer={"ifname": self.target_iface, "net_ns_fd": self.target_ns},
                )
                step = f"configuring {self.host_iface} in {self.host_ns}"
                self.host_ifindex, self.host_mac = configure_interface(
                    host, self.host_iface, self.host_ip, self.subnet.prefixlen
                )
            step = f"configuring {self.target_iface} in {self.target_ns}"
            with IPRoute(netns=self.target_ns, flags=0) as target:
                self.target_ifindex, self.target_mac = configure_interface(
                    target, self.target_iface, self.target_ip, self.subnet.prefixlen
                )
            step = f"recording sandbox {self.id} as built"
            mark_built(self.state_file)
        except Exception as exc:
            undo = "everything built so far was removed"
            try:
                destroy_sandbox(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file)
            except SandboxError as cleanup_exc:
                undo = f"and removing the half-built sandbox failed too: {cleanup_exc}"
            hint = (
                "a sandbox needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run as root or via sudo"
                if isinstance(exc, PermissionError)
                else "check `labkit doctor`, then retry"
            )
            raise SandboxError(
                f"building sandbox {self.id} failed while {step}: {exc}; {undo}. {hint}"
            ) from exc

    # -- lifecycle --------------------------------------------------------------

    @classmethod
    @off_event_loop
    def existing(cls, id_or_record: str | SandboxRecord) -> Sandbox:
        """A handle on a sandbox that already exists (e.g. from ``labkit sandbox
        up``), to ping and send through it. Closing the handle does not remove
        the sandbox; ``labkit sandbox down`` or :func:`labkit.net.records.remove_sandbox` does."""
        record = (
            id_or_record if isinstance(id_or_record, SandboxRecord) else find_record(str(id_or_record))
        )
        if not (record.complete and record.built and record.subnet and record.host_ip and record.target_ip):
            raise SandboxError(
                f"sandbox {record.id} is incomplete ({record.status}); remove it with "
                f"`labkit sandbox down {record.id}` and make a new one"
            )
        self = cls.__new__(cls)
        self.persistent = record.persistent
        self._owned = False
        self._closed = False
        self._finalizer = None
        self.id = record.id
        self.host_ns, self.target_ns = record.host_ns, record.target_ns
        self.host_iface, self.target_iface = record.host_iface, record.target_iface
        self.subnet = ipaddress.IPv4Network(record.subnet)
        self.host_ip, self.target_ip = record.host_ip, record.target_ip
        self.state_file = record.state_file or state_path(record.id)
        # lazy: pyroute2 is only needed when a sandbox is built or changed
        from pyroute2 import IPRoute

        for side in ("host", "target"):
            ns, iface = getattr(self, f"{side}_ns"), getattr(self, f"{side}_iface")
            with IPRoute(netns=ns, flags=0) as ipr:
                links = ipr.link("get", ifname=iface)
                setattr(self, f"{side}_ifindex", links[0]["index"])
                setattr(self, f"{side}_mac", links[0].get("address"))
        return self

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Remove the namespaces, the veth pair and the state file. Safe to call
        twice. On a handle from :meth:`existing` this only releases the handle."""
        if self._closed:
            return
        self._closed = True
        if not self._owned:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        destroy_sandbox(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"sandbox {self.id} is closed; make a new one with labkit.Sandbox()")

    def _ns(self, side: Literal["host", "target"]) -> str:
        if side == "host":
            return self.host_ns
        if side == "target":
            return self.target_ns
        raise ValueError(f"side must be 'host' or 'target', not {side!r}")

    # -- traffic ----------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        side: Literal["host", "target"] = "host",
        timeout: float = 30.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside one of the namespaces (``ip netns exec``), with
        output captured as text, e.g. ``sb.run(["ip", "-br", "addr"])``."""
        self._check_open()
        cmd = ["ip", "netns", "exec", self._ns(side), *argv]
        env = {**os.environ, "LC_ALL": "C"}
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=check, env=env
            )
        except FileNotFoundError as exc:
            raise SandboxError(
                f"cannot run {cmd[0]!r}: {exc.strerror}; install iproute2 (apt-get install iproute2)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{' '.join(argv)} in {self._ns(side)} took longer than {timeout} s") from exc

    def ping(
        self,
        count: int = 5,
        interval: float = 0.2,
        timeout: float = 1.0,
        size: int | None = None,
    ) -> PingResult:
        """Ping ``target_ip`` from the host namespace ``count`` times, ``interval``
        seconds apart, waiting up to ``timeout`` seconds for the last reply;
        ``size`` is the ICMP payload in bytes (ping's ``-s``)."""
        self._check_open()
        if not (_is_int(count) and count >= 1):
            raise ArgumentError(f"ping's count must be a whole number of pings, at least 1, got {count!r}")
        for what, value in (("interval", interval), ("timeout", timeout)):
            if not (_is_number(value) and value > 0):
                raise ArgumentError(f"ping's {what} must be a positive number of seconds, got {value!r}")
        if size is not None and not (_is_int(size) and 0 <= size <= _MAX_ICMP_PAYLOAD):
            raise ArgumentError(f"ping's size must be an ICMP payload of 0 to {_MAX_ICMP_PAYLOAD} bytes "
                                f"(or None for ping's default), got {size!r}")
        if shutil.which("ping") is None:
            raise SandboxError("ping is not installed; apt-get install iputils-ping")
        argv = ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", f"{timeout:g}"]
        if size is not None:
            argv += ["-s", str(int(size))]
        argv.append(self.target_ip)
        budget = count * interval + timeout + 10.0
        proc = self.run(argv, side="host", timeout=budget)
        return parse_ping(proc.stdout + proc.stderr, proc.returncode)

    def send_udp(
        self,
        count: int = 10,
        port: int | None = None,
        payload: bytes = b"labkit sandbox datagram",
        timeout: float = 1.0,
    ) -> UdpResult:
        """Send ``count`` UDP datagrams from the host namespace to ``target_ip``
        and count how many reach a socket bound in the target namespace within
        ``timeout`` seconds after the last send. ``port`` defaults to a free one."""
        self._check_open()
        if not (_is_int(count) and count >= 0):
            raise ArgumentError(f"send_udp's count must be a whole number of datagrams (0 or more), got {count!r}")
        if port is not None and not (_is_int(port) and 1 <= port <= 65535):
            raise ArgumentError(f"send_udp's port must be 1 to 65535 (or None for a free one), got {port!r}")
        if not isinstance(payload, (bytes, bytearray)) or len(payload) > _MAX_UDP_PAYLOAD:
            raise ArgumentError(f"send_udp's payload must be bytes (like b'hello'; text: 'hello'.encode()), at most "
                                f"{_MAX_UDP_PAYLOAD} of them, got {type(payload).__name__} {payload!r:.60}")
        if not (_is_number(timeout) and timeout >= 0):
            raise ArgumentError(f"send_udp's timeout must be a number of seconds (0 or more), got {timeout!r}")
        return exchange_udp(
            self.host_ns, self.host_ip, self.target_ns, self.target_ip,
            count=count, port=port, payload=payload, timeout=timeout,
        )

    @off_event_loop
    def flush_neighbors(self) -> int:
        """Forget every learned neighbour (ARP and NDP entries) on the veth in
        both namespaces, so the next packet must resolve again; returns how many
        entries were removed."""
        self._check_open()
        # lazy: pyroute2 is only needed when a sandbox is built or changed
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.rtnl import ndmsg

        keep = ndmsg.states["permanent"] | ndmsg.states["noarp"]
        removed = 0
        for ns, index in ((self.host_ns, self.host_ifindex), (self.target_ns, self.target_ifindex)):
            with IPRoute(netns=ns, flags=0) as ipr:
                for entry in ipr.neigh("dump"):
                    if entry["ifindex"] != index or entry["state"] & keep or not entry.get("dst"):
                        continue
                    try:
                        ipr.neigh("del", dst=entry.get("dst"), ifindex=index, family=entry["family"])
                        removed += 1
                    except NetlinkError as exc:
                        if exc.code != errno.ENOENT:
                            raise SandboxError(f"flushing neighbours in {ns}: {exc}") from exc
        return removed

    # -- display ----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Names and addresses, as a dict (what ``labkit sandbox up`` prints)."""
        return {
            "id": self.id,
            "subnet": str(self.subnet),
            "host_ns": self.host_ns,
            "host_iface": self.host_iface,
            "host_ip": self.host_ip,
            "host_mac": self.host_mac,
            "target_ns": self.target_ns,
            "target_iface": self.target_iface,
            "target_ip": self.target_ip,
            "target_mac": self.target_mac,
            "target_ifindex": self.target_ifindex,
            "persistent": self.persistent,
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("persistent" if self.persistent else "open")
        return (
            f"<labkit.Sandbox {self.id} {state}: {self.host_ns}/{self.host_iface} {self.host_ip}"
            f" -> {self.target_ns}/{self.target_iface} {self.target_ip}>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.describe().items()
        )
        title = "closed " if self._closed else ""
        return f"<b>labkit {title}Sandbox</b><table>{rows}</table>"


def configure_interface(ipr: Any, iface: str, address: str, prefixlen: int) -> tuple[int, str]:
    """Bring lo and ``iface`` up and give ``iface`` its address; return
    (ifindex, MAC address)."""
    (lo,) = ipr.link_lookup(ifname="lo")
    ipr.link("set", index=lo, state="up")
    (index,) = ipr.link_lookup(ifname=iface)
    ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")
    mac = ipr.link("get", index=index)[0].get("address")
    return index, str(mac)


def _finalize(owner_pid: int, names: tuple[str, str, str, str], state_file: Path) -> None:
    """Garbage-collection / interpreter-exit teardown of an owned sandbox."""
    if os.getpid() != owner_pid:  # a forked child must not tear down its parent's sandbox
        return
    try:
        destroy_sandbox(*names, state_file)
    except Exception as exc:  # noqa: BLE001 - at exit, report and move on
        print(f"labkit: sandbox teardown failed: {exc}", file=sys.stderr)
