"""``labkit.Sandbox``: a private two-namespace network to point XDP programs at.

::

    root namespace  (never touched: no link, address or route is added)

    lksb-<id>-host                         lksb-<id>-tgt
    ┌──────────────────────┐               ┌──────────────────────┐
    │ lo                   │   veth pair   │ lo                   │
    │ lk<id>h 198.18.x.1/30├───────────────┤lk<id>t 198.18.x.2/30 │ ← XDP goes here
    └──────────────────────┘               └──────────────────────┘

The "host" namespace sends traffic; the "target" namespace's interface is where
a lesson attaches its XDP program.

``Sandbox(far=True)`` adds a third namespace behind the target, for programs
that move packets between two links (XDP_REDIRECT)::

    lksb-<id>-host          lksb-<id>-tgt ("middle")              lksb-<id>-far
    lk<id>h host_ip ─── lk<id>t target_ip   lk<id>m middle_ip ─── lk<id>f far_ip
                                  (IPv4 forwarding off)

The host reaches the far subnet through target_ip and the far side the host's
subnet through middle_ip, but the middle namespace does not forward: a packet
gets across only if a program on the middle's links carries it. The veth is created *inside* the host
namespace with its peer placed directly into the target namespace, so the root
namespace never sees a link. The subnet comes from labkit.net.subnets; the
ownership record, written before anything is built, and the removal of
sandboxes (also other processes' leftovers) from labkit.net.records.

Building uses pyroute2 only; running traffic uses ``ip netns exec … ping`` and
sockets opened inside the namespaces (``setns`` in a short-lived thread).

Why this file is long: one class, the sandbox, with its building (two or three
namespaces), lifecycle, traffic and display; splitting it would scatter one
object's invariants (what exists, what close() removes) over several files.
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

from labkit._errors import ArgumentError, ClosedError, NotSupportedError, PrivilegeError, SandboxError
from labkit.net.leftovers import reap_dead_owners
from labkit.net.netns import create_netns, list_netns, off_event_loop, run_in_netns
from labkit.net.records import (
    STATE_DIR,
    SandboxRecord,
    destroy_sandbox,
    far_names,
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
from labkit.programs.privileges import missing

__all__ = ["Sandbox", "configure_interface", "read_snmp"]

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
    far: bool
    #: with ``far=True`` only (else None): the far namespace, the middle's second link and its peer
    far_ns: str | None = None
    far_iface: str | None = None
    middle_iface: str | None = None
    far_subnet: ipaddress.IPv4Network | None = None
    far_ip: str | None = None
    middle_ip: str | None = None
    far_mac: str | None = None
    middle_mac: str | None = None
    far_ifindex: int | None = None
    middle_ifindex: int | None = None

    def __init__(self, *, persistent: bool = False, prefixlen: int = 30, far: bool = False) -> None:
        if not isinstance(persistent, bool):
            raise ArgumentError(f"persistent must be True or False, got {persistent!r}")
        if not isinstance(far, bool):
            raise ArgumentError(f"far must be True or False (True adds a third namespace behind the target), "
                                f"got {far!r}")
        self.far = far
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
                self._extra_links(),
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
                if self.far:
                    far_subnet = pick_subnet([*taken, subnet], prefixlen=30)
                    self.far_subnet = far_subnet
                    self.middle_ip, self.far_ip = (str(a) for a in itertools.islice(far_subnet.hosts(), 2))
                    fn = far_names(sandbox_id)
                    self.far_ns, self.middle_iface, self.far_iface = fn["far_ns"], fn["middle_iface"], fn["far_iface"]
                self.id = sandbox_id
                self.host_ns, self.target_ns = names["host_ns"], names["target_ns"]
                self.host_iface, self.target_iface = names["host_iface"], names["target_iface"]
                assert max(len(self.host_iface), len(self.target_iface)) <= _IFNAMSIZ
                self.subnet = subnet
                self.host_ip, self.target_ip = str(host_ip), str(target_ip)
                self.state_file = write_record(
                    sandbox_id, subnet=str(subnet), host_ip=self.host_ip, target_ip=self.target_ip,
                    persistent=self.persistent, far_subnet=str(self.far_subnet) if self.far else None,
                )
        except PermissionError as exc:
            raise PrivilegeError(
                f"cannot write sandbox state under {STATE_DIR} ({exc.strerror}); "
                "a sandbox needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run as root or via sudo",
                missing=missing("netns"),
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
            if self.far:
                self._build_far(IPRoute)
            step = f"recording sandbox {self.id} as built"
            mark_built(self.state_file)
        except Exception as exc:
            undo = "everything built so far was removed"
            step = getattr(self, "_far_step", step)
            try:
                destroy_sandbox(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file,
                                extra=self._extra_links())
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

    def _build_far(self, IPRoute) -> None:  # noqa: N803 - pyroute2's class, imported lazily by _build
        """The far namespace, the middle <-> far veth, addresses, the routes
        across, and IPv4 forwarding off in the middle (a new namespace inherits
        the root namespace's setting, which may be on)."""
        self._far_step = f"creating namespace {self.far_ns}"
        create_netns(self.far_ns)
        self._far_step = f"creating veth {self.middle_iface} <-> {self.far_iface}"
        with IPRoute(netns=self.target_ns, flags=0) as mid:
            mid.link("add", ifname=self.middle_iface, kind="veth",
                     peer={"ifname": self.far_iface, "net_ns_fd": self.far_ns})
            self.middle_ifindex, self.middle_mac = configure_interface(
                mid, self.middle_iface, self.middle_ip, self.far_subnet.prefixlen)
        with IPRoute(netns=self.far_ns, flags=0) as far:
            self.far_ifindex, self.far_mac = configure_interface(
                far, self.far_iface, self.far_ip, self.far_subnet.prefixlen)
            self._far_step = f"adding the route to {self.subnet} in {self.far_ns}"
            far.route("add", dst=str(self.subnet), gateway=self.middle_ip)
        with IPRoute(netns=self.host_ns, flags=0) as host:
            self._far_step = f"adding the route to {self.far_subnet} in {self.host_ns}"
            host.route("add", dst=str(self.far_subnet), gateway=self.target_ip)
        self._far_step = f"turning IPv4 forwarding off in {self.target_ns}"
        run_in_netns(self.target_ns, _forwarding_off)

    def _extra_links(self) -> tuple[tuple[str, str], ...]:
        if not self.far:
            return ()
        return ((self.target_ns, self.middle_iface), (self.far_ns, self.far_iface))

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
        self.far = bool(record.far_ns and record.far_subnet)
        if self.far:
            self.far_ns, self.far_iface, self.middle_iface = record.far_ns, record.far_iface, record.middle_iface
            self.far_subnet = ipaddress.IPv4Network(record.far_subnet)
            self.middle_ip, self.far_ip = (str(a) for a in itertools.islice(self.far_subnet.hosts(), 2))
        # lazy: pyroute2 is only needed when a sandbox is built or changed
        from pyroute2 import IPRoute

        for side in ("host", "target"):
            ns, iface = getattr(self, f"{side}_ns"), getattr(self, f"{side}_iface")
            with IPRoute(netns=ns, flags=0) as ipr:
                links = ipr.link("get", ifname=iface)
                setattr(self, f"{side}_ifindex", links[0]["index"])
                setattr(self, f"{side}_mac", links[0].get("address"))
        if self.far:
            for attr, ns, iface in (("middle", self.target_ns, self.middle_iface), ("far", self.far_ns, self.far_iface)):
                with IPRoute(netns=ns, flags=0) as ipr:
                    links = ipr.link("get", ifname=iface)
                    setattr(self, f"{attr}_ifindex", links[0]["index"])
                    setattr(self, f"{attr}_mac", links[0].get("address"))
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
        destroy_sandbox(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file,
                        extra=self._extra_links())

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"sandbox {self.id} is closed; make a new one with labkit.Sandbox()")

    def _ns(self, side: Literal["host", "target", "far"]) -> str:
        if side == "host":
            return self.host_ns
        if side == "target":
            return self.target_ns
        if side == "far":
            if not self.far:
                raise ArgumentError(f"sandbox {self.id} has no far side: make it with labkit.Sandbox(far=True)")
            return self.far_ns
        raise ArgumentError(f"side must be 'host', 'target' or 'far', not {side!r}")

    # -- traffic ----------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        side: Literal["host", "target", "far"] = "host",
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
            raise NotSupportedError(
                f"cannot run {cmd[0]!r}: {exc.strerror}; install iproute2 (apt-get install iproute2)",
                feature="iproute2",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{' '.join(argv)} in {self._ns(side)} took longer than {timeout} s") from exc

    def ping(
        self,
        count: int = 5,
        interval: float = 0.2,
        timeout: float = 1.0,
        size: int | None = None,
        to: str | None = None,
    ) -> PingResult:
        """Ping ``target_ip`` (or ``to``, e.g. ``sb.far_ip``) from the host namespace ``count`` times, ``interval``
        seconds apart, waiting up to ``timeout`` seconds for the last reply;
        ``size`` is the ICMP payload in bytes (ping's ``-s``)."""
        self._check_open()
        if to is not None and to not in self._addresses():
            raise ArgumentError(f"ping's to must be one of this sandbox's addresses ({', '.join(self._addresses())}), "
                                f"got {to!r}")
        if not (_is_int(count) and count >= 1):
            raise ArgumentError(f"ping's count must be a whole number of pings, at least 1, got {count!r}")
        for what, value in (("interval", interval), ("timeout", timeout)):
            if not (_is_number(value) and value > 0):
                raise ArgumentError(f"ping's {what} must be a positive number of seconds, got {value!r}")
        if size is not None and not (_is_int(size) and 0 <= size <= _MAX_ICMP_PAYLOAD):
            raise ArgumentError(f"ping's size must be an ICMP payload of 0 to {_MAX_ICMP_PAYLOAD} bytes "
                                f"(or None for ping's default), got {size!r}")
        if shutil.which("ping") is None:
            raise NotSupportedError("ping is not installed; apt-get install iputils-ping", feature="ping")
        argv = ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", f"{timeout:g}"]
        if size is not None:
            argv += ["-s", str(int(size))]
        argv.append(to or self.target_ip)
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

    def _addresses(self) -> list[str]:
        return [a for a in (self.host_ip, self.target_ip, self.middle_ip, self.far_ip) if a]

    def snmp(self, side: Literal["host", "target", "far"] = "target") -> dict[str, dict[str, int]]:
        """The IP/ICMP/UDP/TCP counters of one namespace's stack (its
        /proc/net/snmp), e.g. ``sb.snmp()["Icmp"]["InEchos"]``: what that
        namespace's kernel stack itself received and sent."""
        self._check_open()
        return read_snmp(self._ns(side))

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
            **({"far_subnet": str(self.far_subnet), "middle_iface": self.middle_iface, "middle_ip": self.middle_ip,
                "far_ns": self.far_ns, "far_iface": self.far_iface, "far_ip": self.far_ip} if self.far else {}),
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


def _forwarding_off() -> None:
    """(Inside a namespace's thread) turn IPv4 forwarding off there."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("0")


def read_snmp(netns: str) -> dict[str, dict[str, int]]:
    """The counters of network namespace ``netns``'s /proc/net/snmp, as
    {"Ip": {"InReceives": ..., ...}, "Icmp": {...}, ...}."""
    def read() -> str:
        # /proc/net is the process's namespace; thread-self's is this thread's (the one that entered netns)
        with open("/proc/thread-self/net/snmp") as f:
            return f.read()

    out: dict[str, dict[str, int]] = {}
    lines = run_in_netns(netns, read).splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        group, _, keys = names.partition(":")
        out[group] = {k: int(v) for k, v in zip(keys.split(), values.partition(":")[2].split())}
    return out


def _finalize(owner_pid: int, names: tuple[str, str, str, str], state_file: Path,
              extra: tuple[tuple[str, str], ...] = ()) -> None:
    """Garbage-collection / interpreter-exit teardown of an owned sandbox."""
    if os.getpid() != owner_pid:  # a forked child must not tear down its parent's sandbox
        return
    try:
        destroy_sandbox(*names, state_file, extra=extra)
    except Exception as exc:  # noqa: BLE001 - at exit, report and move on
        print(f"labkit: sandbox teardown failed: {exc}", file=sys.stderr)
