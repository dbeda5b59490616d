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
namespace never sees a link. Addresses come from 198.18.0.0/15 (the benchmarking
range, RFC 2544), one /30 per sandbox picked at random and checked against every
address and route of the machine and every other labkit sandbox.

Ownership is recorded in ``/run/labkit/sandboxes/<id>.json`` *before* anything
is built, so a process killed half-way still leaves a record behind:

.. code-block:: json

    {"version": 1, "id": "3fa9c1",
     "host_ns": "lksb-3fa9c1-host", "target_ns": "lksb-3fa9c1-tgt",
     "host_iface": "lk3fa9c1h", "target_iface": "lk3fa9c1t",
     "subnet": "198.19.37.120/30", "host_ip": "198.19.37.121", "target_ip": "198.19.37.122",
     "owner_pid": 4242, "owner_start_time": 1234567,
     "persistent": false, "created": "2025-01-01T12:00:00+00:00"}

``owner_start_time`` is field 22 of ``/proc/<pid>/stat`` (clock ticks after
boot): together with the pid it identifies the owner even when pids are reused.
A sandbox is a *leftover* when its owner is gone (for a ``persistent`` one, made
by ``labkit sandbox up``: when its owner is gone and its namespaces are half
gone), or when ``lksb-*`` namespaces exist without a state file.
:func:`find_leftovers` lists them, :func:`remove_sandbox` removes one, and
:func:`sandbox_main` implements ``labkit sandbox up|down|status``.

Building uses pyroute2 only; running traffic uses ``ip netns exec … ping`` and
sockets opened inside the namespaces (``setns`` in a short-lived thread).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import errno
import fcntl
import html
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from labkit._errors import SandboxError
from labkit.net.traffic import PingResult, UdpResult, parse_ping
from labkit.net.netns import list_netns, off_event_loop, run_in_netns

__all__ = [
    "Sandbox",
    "SandboxRecord",
    "find_leftovers",
    "list_sandboxes",
    "pick_subnet",
    "remove_sandbox",
    "sandbox_main",
]

#: Where ownership records live (one JSON file per sandbox).
STATE_DIR = Path("/run/labkit/sandboxes")
#: Where ``ip netns`` (and pyroute2) keep named network namespaces.
NETNS_DIR = Path("/run/netns")
#: The only addresses a sandbox ever uses: the benchmarking range.
POOL = ipaddress.IPv4Network("198.18.0.0/15")
#: Every labkit sandbox namespace starts with this.
NS_PREFIX = "lksb-"

_STATE_VERSION = 1
_ID_RE = re.compile(r"^[0-9a-f]{4,12}$")
_NS_RE = re.compile(r"^lksb-([0-9a-f]{4,12})-(host|tgt)$")
_IFNAMSIZ = 15
_T = TypeVar("_T")


# --------------------------------------------------------------------------- names


def _names(sandbox_id: str) -> dict[str, str]:
    """The namespace and interface names that belong to ``sandbox_id``."""
    return {
        "host_ns": f"{NS_PREFIX}{sandbox_id}-host",
        "target_ns": f"{NS_PREFIX}{sandbox_id}-tgt",
        "host_iface": f"lk{sandbox_id}h",
        "target_iface": f"lk{sandbox_id}t",
    }


def _new_id() -> str:
    """Six random hex digits (interface names stay at 9 of 15 characters)."""
    return secrets.token_hex(3)


def _state_path(sandbox_id: str) -> Path:
    return STATE_DIR / f"{sandbox_id}.json"


def _netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


# --------------------------------------------------------------------------- processes


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks after boot),
    or None when the process does not exist or is a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    state, start = rest[0], rest[19]  # fields 3 and 22
    if state in ("Z", "X", "x"):
        return None
    return int(start)


def _owner_alive(pid: int | None, start_time: int | None) -> bool:
    """Whether the process that recorded (pid, start_time) still runs."""
    if pid is None or pid <= 0:
        return False
    now = _proc_start_time(pid)
    if now is None:
        return False
    return start_time is None or now == start_time


# --------------------------------------------------------------------------- subnets


def pick_subnet(
    taken: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
    *,
    prefixlen: int = 30,
    pool: ipaddress.IPv4Network = POOL,
    rng: random.Random | None = None,
    attempts: int = 64,
) -> ipaddress.IPv4Network:
    """Pick a random ``/prefixlen`` inside ``pool`` that overlaps nothing in ``taken``.

    Pure logic (no kernel access). Random picks spread concurrent sandboxes across
    the pool; after ``attempts`` misses every candidate is scanned from a random
    start, so a free subnet is found whenever one exists. Raises
    :class:`SandboxError` when the pool is exhausted.
    """
    if not pool.prefixlen <= prefixlen <= 30:
        raise ValueError(f"prefixlen must be between {pool.prefixlen} and 30, not {prefixlen}")
    rng = rng or random.SystemRandom()
    blockers = [
        net for net in taken if net.version == 4 and net.overlaps(pool)  # type: ignore[arg-type]
    ]
    slots = 1 << (prefixlen - pool.prefixlen)
    size = 1 << (32 - prefixlen)
    base = int(pool.network_address)

    def candidate(i: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((base + i * size, prefixlen))

    def free(net: ipaddress.IPv4Network) -> bool:
        return not any(net.overlaps(b) for b in blockers)  # type: ignore[arg-type]

    for _ in range(attempts):
        net = candidate(rng.randrange(slots))
        if free(net):
            return net
    if any(pool.subnet_of(b) for b in blockers):  # type: ignore[arg-type]
        covering = next(b for b in blockers if pool.subnet_of(b))  # type: ignore[arg-type]
        raise SandboxError(
            f"no free subnet for a sandbox: {covering} (an address or route on this machine) "
            f"covers the whole sandbox range {pool}; remove that route or address and retry"
        )
    start = rng.randrange(slots)
    for k in range(slots):
        net = candidate((start + k) % slots)
        if free(net):
            return net
    raise SandboxError(
        f"no free /{prefixlen} left in {pool}: every one collides with an address, a route "
        "or another labkit sandbox; run `labkit sandbox status` and `labkit cleanup`"
    )


@off_event_loop
def _taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network already in use: the current (root) namespace's addresses
    and routes (read only), the subnets recorded by other sandboxes, and the
    addresses inside ``lksb-*`` namespaces that have no state file."""
    from pyroute2 import IPRoute

    taken: list[ipaddress.IPv4Network] = []
    with IPRoute() as ipr:
        for msg in ipr.addr("dump", family=socket.AF_INET):
            addr = msg.get("address") or msg.get("IFA_ADDRESS")
            if addr:
                taken.append(ipaddress.IPv4Network(f"{addr}/{msg['prefixlen']}", strict=False))
        for msg in ipr.route("dump", family=socket.AF_INET):
            dst = msg.get("dst")
            if dst and msg["dst_len"] > 0:  # the default route overlaps everything
                taken.append(ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}", strict=False))
    recorded: set[str] = set()
    for path in STATE_DIR.glob("*.json"):
        record = _load_record(path)
        recorded.add(record.id)
        if record.subnet:
            taken.append(ipaddress.IPv4Network(record.subnet, strict=False))
    for ns in list_netns():
        m = _NS_RE.match(ns)
        if m and m.group(1) not in recorded:
            taken.extend(_netns_networks(ns))
    return taken


@off_event_loop
def _netns_networks(ns: str) -> list[ipaddress.IPv4Network]:
    from pyroute2 import IPRoute

    try:
        with IPRoute(netns=ns, flags=0) as ipr:
            return [
                ipaddress.IPv4Network(f"{m.get('address')}/{m['prefixlen']}", strict=False)
                for m in ipr.addr("dump", family=socket.AF_INET)
                if m.get("address")
            ]
    except OSError:  # vanished while we looked
        return []


# --------------------------------------------------------------------------- state files


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    """Serialise subnet choice and state-file creation between processes."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_state(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


@dataclass
class SandboxRecord:
    """What :func:`list_sandboxes` knows about one sandbox on this machine.

    ``alive`` tells whether the owning process still runs (same pid *and* start
    time). ``leftover`` tells whether nothing owns the sandbox any more, so
    ``labkit cleanup`` may remove it.
    """

    id: str
    host_ns: str
    target_ns: str
    host_iface: str
    target_iface: str
    subnet: str | None = None
    host_ip: str | None = None
    target_ip: str | None = None
    owner_pid: int | None = None
    owner_start_time: int | None = None
    persistent: bool = False
    created: str | None = None
    state_file: Path | None = None
    host_ns_present: bool = False
    target_ns_present: bool = False
    alive: bool = False
    problem: str = ""

    @property
    def namespaces(self) -> tuple[str, str]:
        """(host namespace, target namespace)."""
        return (self.host_ns, self.target_ns)

    @property
    def complete(self) -> bool:
        """Both namespaces exist."""
        return self.host_ns_present and self.target_ns_present

    @property
    def leftover(self) -> bool:
        """Nothing owns this sandbox: namespaces without a state file, an owner
        that is gone, or a persistent sandbox whose namespaces are half gone."""
        if self.state_file is None:
            return True
        if self.alive:
            return False
        return not (self.persistent and self.complete)

    @property
    def status(self) -> str:
        """One word for tables: in-use, persistent, leftover or orphan."""
        if self.state_file is None:
            return "orphan"
        if self.leftover:
            return "leftover"
        return "persistent" if self.persistent else "in-use"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``labkit sandbox status --json``)."""
        return {
            "id": self.id,
            "status": self.status,
            "host_ns": self.host_ns,
            "target_ns": self.target_ns,
            "host_iface": self.host_iface,
            "target_iface": self.target_iface,
            "subnet": self.subnet,
            "host_ip": self.host_ip,
            "target_ip": self.target_ip,
            "owner_pid": self.owner_pid,
            "alive": self.alive,
            "persistent": self.persistent,
            "leftover": self.leftover,
            "created": self.created,
            "state_file": str(self.state_file) if self.state_file else None,
            "host_ns_present": self.host_ns_present,
            "target_ns_present": self.target_ns_present,
        }


def _load_record(path: Path) -> SandboxRecord:
    """Read a state file; an unreadable one still yields a record (a leftover)."""
    sandbox_id = path.stem
    names = _names(sandbox_id)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return SandboxRecord(id=sandbox_id, state_file=path, problem=f"unreadable state file: {exc}", **names)

    def get_int(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) else None

    return SandboxRecord(
        id=sandbox_id,
        host_ns=str(data.get("host_ns") or names["host_ns"]),
        target_ns=str(data.get("target_ns") or names["target_ns"]),
        host_iface=str(data.get("host_iface") or names["host_iface"]),
        target_iface=str(data.get("target_iface") or names["target_iface"]),
        subnet=data.get("subnet"),
        host_ip=data.get("host_ip"),
        target_ip=data.get("target_ip"),
        owner_pid=get_int("owner_pid"),
        owner_start_time=get_int("owner_start_time"),
        persistent=bool(data.get("persistent", False)),
        created=data.get("created"),
        state_file=path,
    )


# --------------------------------------------------------------------------- registry


def list_sandboxes() -> list[SandboxRecord]:
    """Every labkit sandbox on this machine: one record per state file, plus one
    per set of ``lksb-*`` namespaces that has no state file (``status == "orphan"``)."""
    # Namespaces first, state files second: a sandbox writes its state file before
    # creating namespaces, so a namespace seen here always has its file by then.
    seen_ns = [ns for ns in list_netns() if ns.startswith(NS_PREFIX)]
    records: dict[str, SandboxRecord] = {}
    if STATE_DIR.is_dir():
        for path in sorted(STATE_DIR.glob("*.json")):
            if _ID_RE.match(path.stem):
                records[path.stem] = _load_record(path)
    for ns in seen_ns:
        m = _NS_RE.match(ns)
        sandbox_id = m.group(1) if m else ns[len(NS_PREFIX) :]
        if sandbox_id in records:
            continue
        if m:
            records[sandbox_id] = SandboxRecord(id=sandbox_id, **_names(sandbox_id))
        else:  # an lksb-* namespace labkit did not name this way: report it as is
            records[sandbox_id] = SandboxRecord(
                id=sandbox_id, host_ns=ns, target_ns=ns, host_iface="", target_iface="",
                problem="namespace name not in labkit's format",
            )
    for record in records.values():
        record.host_ns_present = _netns_exists(record.host_ns)
        record.target_ns_present = _netns_exists(record.target_ns)
        record.alive = _owner_alive(record.owner_pid, record.owner_start_time)
    return sorted(records.values(), key=lambda r: (r.created or "", r.id))


def find_leftovers() -> list[SandboxRecord]:
    """Sandboxes nothing owns any more (see :attr:`SandboxRecord.leftover`)."""
    return [r for r in list_sandboxes() if r.leftover]


def _find_record(sandbox_id: str) -> SandboxRecord:
    for record in list_sandboxes():
        if record.id == sandbox_id:
            return record
    raise SandboxError(
        f"no labkit sandbox with id {sandbox_id!r}; `labkit sandbox status` lists them"
    )


def remove_sandbox(id_or_record: str | SandboxRecord, *, force: bool = False) -> SandboxRecord:
    """Remove a sandbox's interfaces, namespaces and state file; return its record.

    A sandbox whose owner still runs (and that is not persistent) belongs to that
    process: removing it needs ``force=True``. Missing pieces are skipped, so this
    is safe to call on half-built or half-removed sandboxes.
    """
    if isinstance(id_or_record, SandboxRecord):
        record = id_or_record
        record.alive = _owner_alive(record.owner_pid, record.owner_start_time)
    else:
        sandbox_id = id_or_record.strip().lower()
        if not _ID_RE.match(sandbox_id):
            raise SandboxError(f"{id_or_record!r} is not a sandbox id (4-12 hex digits, e.g. 3fa9c1)")
        record = _find_record(sandbox_id)
    if record.alive and not record.persistent and record.state_file is not None and not force:
        raise SandboxError(
            f"sandbox {record.id} belongs to running process {record.owner_pid}; close it "
            "there (sandbox.close()), or remove it anyway with force=True / --force"
        )
    _destroy(
        record.host_ns,
        record.target_ns,
        record.host_iface,
        record.target_iface,
        record.state_file or _state_path(record.id),
    )
    return record


@off_event_loop
def _destroy(host_ns: str, target_ns: str, host_iface: str, target_iface: str, state_file: Path) -> None:
    """Delete the veth, both namespaces and the state file; whatever is missing is
    skipped. The state file stays when something could not be removed, so
    ``labkit cleanup`` can retry; then :class:`SandboxError` lists what remains."""
    from pyroute2 import IPRoute, netns
    from pyroute2.netlink.exceptions import NetlinkError

    problems: list[str] = []
    # Delete the veth explicitly: a namespace that some process still holds
    # outlives its name, and its interface would live on with it.
    for ns, iface in ((host_ns, host_iface), (target_ns, target_iface)):
        if not iface or not _netns_exists(ns):
            continue
        try:
            with IPRoute(netns=ns, flags=0) as ipr:
                for index in ipr.link_lookup(ifname=iface):
                    ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:  # the peer's deletion took it already
                problems.append(f"deleting interface {iface} in {ns}: {exc}")
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"deleting interface {iface} in {ns}: {exc}")
    for ns in dict.fromkeys((host_ns, target_ns)):
        if not ns.startswith(NS_PREFIX):  # never remove anything labkit did not name
            problems.append(f"refusing to remove namespace {ns!r}: not a labkit name")
            continue
        try:
            netns.remove(ns)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"removing namespace {ns}: {exc}")
    if problems:
        raise SandboxError(
            "could not remove everything: " + "; ".join(problems)
            + ". Run `labkit cleanup` as root to retry."
        )
    with contextlib.suppress(FileNotFoundError):
        state_file.unlink()


def _finalize(owner_pid: int, names: tuple[str, str, str, str], state_file: Path) -> None:
    """Garbage-collection / interpreter-exit teardown of an owned sandbox."""
    if os.getpid() != owner_pid:  # a forked child must not tear down its parent's sandbox
        return
    try:
        _destroy(*names, state_file)
    except Exception as exc:  # noqa: BLE001 - at exit, report and move on
        print(f"labkit: sandbox teardown failed: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- namespaces


def _create_namespace(name: str) -> None:
    """Create a named network namespace (/run/netns/<name>) with pyroute2."""
    from pyroute2 import netns

    netns.create(name)


def _in_netns(ns: str, func: Callable[[], _T]) -> _T:
    """Run ``func`` in a short-lived thread that has entered namespace ``ns``
    (sockets made there keep the namespace and work from any thread)."""
    return run_in_netns(ns, func)


# --------------------------------------------------------------------------- Sandbox


class Sandbox:
    """Two network namespaces joined by a veth pair; nothing outside them changes.

    ::

        with labkit.Sandbox() as sb:
            sb.ping(count=3)             # host -> target, through the veth
            sb.target_iface, sb.target_ns  # where an XDP program goes

    The sandbox is removed by :meth:`close`, at the end of a ``with`` block, when
    the object is garbage-collected, and at interpreter exit. A ``persistent``
    sandbox (``labkit sandbox up``) outlives its process and is removed only by
    :meth:`close`, ``labkit sandbox down`` or :func:`remove_sandbox`.

    Raises :class:`SandboxError` (after removing whatever was already built) when
    building fails.
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
        self.persistent = persistent
        self._owned = True
        self._closed = False
        self._finalizer: weakref.finalize | None = None
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
        pid = os.getpid()
        try:
            with _state_lock():
                taken = _taken_networks()
                existing = set(list_netns())
                while True:
                    sandbox_id = _new_id()
                    names = _names(sandbox_id)
                    if not _state_path(sandbox_id).exists() and not (
                        {names["host_ns"], names["target_ns"]} & existing
                    ):
                        break
                subnet = pick_subnet(taken, prefixlen=prefixlen)
                hosts = list(_first_hosts(subnet, 2))
                self.id = sandbox_id
                self.host_ns, self.target_ns = names["host_ns"], names["target_ns"]
                self.host_iface, self.target_iface = names["host_iface"], names["target_iface"]
                assert max(len(self.host_iface), len(self.target_iface)) <= _IFNAMSIZ
                self.subnet = subnet
                self.host_ip, self.target_ip = str(hosts[0]), str(hosts[1])
                self.state_file = _state_path(sandbox_id)
                _write_state(
                    self.state_file,
                    {
                        "version": _STATE_VERSION,
                        "id": sandbox_id,
                        **names,
                        "subnet": str(subnet),
                        "host_ip": self.host_ip,
                        "target_ip": self.target_ip,
                        "owner_pid": pid,
                        "owner_start_time": _proc_start_time(pid),
                        "persistent": self.persistent,
                        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    },
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
        from pyroute2 import IPRoute

        step = f"creating namespace {self.host_ns}"
        try:
            _create_namespace(self.host_ns)
            step = f"creating namespace {self.target_ns}"
            _create_namespace(self.target_ns)
            step = f"creating veth {self.host_iface} <-> {self.target_iface}"
            with IPRoute(netns=self.host_ns, flags=0) as host:
                host.link(
                    "add",
                    ifname=self.host_iface,
                    kind="veth",
                    peer={"ifname": self.target_iface, "net_ns_fd": self.target_ns},
                )
                step = f"configuring {self.host_iface} in {self.host_ns}"
                self.host_ifindex, self.host_mac = _configure(
                    host, self.host_iface, self.host_ip, self.subnet.prefixlen
                )
            step = f"configuring {self.target_iface} in {self.target_ns}"
            with IPRoute(netns=self.target_ns, flags=0) as target:
                self.target_ifindex, self.target_mac = _configure(
                    target, self.target_iface, self.target_ip, self.subnet.prefixlen
                )
        except Exception as exc:
            undo = "everything built so far was removed"
            try:
                _destroy(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file)
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
        the sandbox; ``labkit sandbox down`` or :func:`remove_sandbox` does."""
        record = (
            id_or_record if isinstance(id_or_record, SandboxRecord) else _find_record(str(id_or_record))
        )
        if not record.complete or not (record.subnet and record.host_ip and record.target_ip):
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
        self.state_file = record.state_file or _state_path(record.id)
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
        _destroy(self.host_ns, self.target_ns, self.host_iface, self.target_iface, self.state_file)

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
        if count < 1:
            raise ValueError("count must be at least 1")
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
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
        if count < 0:
            raise ValueError("count must not be negative")

        def udp_socket() -> socket.socket:
            return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        rx = _in_netns(self.target_ns, udp_socket)
        with rx:
            tx = _in_netns(self.host_ns, udp_socket)
            with tx:
                rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                rx.bind((self.target_ip, port or 0))
                port = rx.getsockname()[1]
                sent, errors = 0, []
                for _ in range(count):
                    try:
                        tx.sendto(payload, (self.target_ip, port))
                        sent += 1
                    except OSError as exc:
                        errors.append(exc.strerror or str(exc))
                received = 0
                deadline = time.monotonic() + timeout
                while received < sent:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    rx.settimeout(left)
                    try:
                        data, (src, _) = rx.recvfrom(65535)
                    except (socket.timeout, TimeoutError):
                        break
                    if data == payload and src == self.host_ip:
                        received += 1
        return UdpResult(sent=sent, received=received, port=port, errors=errors)

    @off_event_loop
    def flush_neighbors(self) -> int:
        """Forget every learned neighbour (ARP and NDP entries) on the veth in
        both namespaces, so the next packet must resolve again; returns how many
        entries were removed."""
        self._check_open()
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


def _first_hosts(subnet: ipaddress.IPv4Network, n: int) -> Iterator[ipaddress.IPv4Address]:
    hosts = subnet.hosts()
    for _ in range(n):
        yield next(hosts)


def _configure(ipr: Any, iface: str, address: str, prefixlen: int) -> tuple[int, str]:
    """Bring lo and ``iface`` up and give ``iface`` its address; return
    (ifindex, MAC address)."""
    (lo,) = ipr.link_lookup(ifname="lo")
    ipr.link("set", index=lo, state="up")
    (index,) = ipr.link_lookup(ifname=iface)
    ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    ipr.link("set", index=index, state="up")
    mac = ipr.link("get", index=index)[0].get("address")
    return index, str(mac)


# --------------------------------------------------------------------------- CLI


def _format_table(records: Sequence[SandboxRecord]) -> str:
    headers = ["ID", "STATUS", "SUBNET", "HOST", "TARGET", "OWNER", "CREATED"]
    rows = []
    for r in records:
        def side(ns: str, iface: str, ip: str | None, present: bool) -> str:
            text = f"{ns}/{iface}" + (f" {ip}" if ip else "")
            return text if present else f"{text} (missing)"

        owner = "-" if r.owner_pid is None else f"{r.owner_pid} ({'running' if r.alive else 'gone'})"
        rows.append([
            r.id,
            r.status,
            r.subnet or "-",
            side(r.host_ns, r.host_iface, r.host_ip, r.host_ns_present),
            side(r.target_ns, r.target_iface, r.target_ip, r.target_ns_present),
            owner,
            r.created or "-",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [headers, *rows]
    )


def sandbox_main(argv: list[str]) -> int:
    """``labkit sandbox up|down|status``; returns the exit status.

    * ``up [--json]`` builds a *persistent* sandbox that outlives this process
      and prints its names and addresses.
    * ``down [ID ...] [--all] [--force]`` removes sandboxes; with no ID it removes
      the only persistent one; ``--all`` removes every persistent and leftover
      sandbox (``--force``: also those that running processes own).
    * ``status [--json]`` prints a table of every sandbox.
    """
    parser = argparse.ArgumentParser(
        prog="labkit sandbox",
        description="Private two-namespace networks (veth, 198.18.0.0/15) for XDP lessons.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down,status}")
    up = sub.add_parser("up", help="build a persistent sandbox and print its names")
    up.add_argument("--json", action="store_true", help="print JSON")
    down = sub.add_parser("down", help="remove sandboxes")
    down.add_argument("ids", nargs="*", metavar="ID", help="sandbox id(s), from `labkit sandbox status`")
    down.add_argument("--all", action="store_true", help="every persistent and leftover sandbox")
    down.add_argument("--force", action="store_true", help="also remove sandboxes running processes own")
    status = sub.add_parser("status", help="list sandboxes")
    status.add_argument("--json", action="store_true", help="print JSON")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on errors
        return int(exc.code or 0)

    try:
        if args.command == "up":
            return _cli_up(args.json)
        if args.command == "status":
            records = list_sandboxes()
            if args.json:
                print(json.dumps([r.to_dict() for r in records], indent=2))
            elif records:
                print(_format_table(records))
            else:
                print("no labkit sandboxes")
            return 0
        return _cli_down(args.ids, args.all, args.force)
    except SandboxError as exc:
        print(f"labkit sandbox: {exc}", file=sys.stderr)
        return 1


def _cli_up(as_json: bool) -> int:
    sb = Sandbox(persistent=True)
    info = sb.describe()
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    print(f"sandbox {sb.id} is up (persistent: remove it with `labkit sandbox down {sb.id}`)")
    for key, value in info.items():
        print(f"  {key.ljust(width)}  {value}")
    print(f"  try: ip netns exec {sb.host_ns} ping -c 3 {sb.target_ip}")
    return 0


def _cli_down(ids: list[str], all_: bool, force: bool) -> int:
    if not ids and not all_:
        persistent = [r for r in list_sandboxes() if r.persistent]
        if len(persistent) != 1:
            known = ", ".join(r.id for r in persistent) or "none"
            print(
                "labkit sandbox down: name a sandbox id or pass --all "
                f"(persistent sandboxes: {known})",
                file=sys.stderr,
            )
            return 2
        ids = [persistent[0].id]
    targets: list[str | SandboxRecord] = list(ids)
    skipped: list[SandboxRecord] = []
    if all_:
        for record in list_sandboxes():
            if record.persistent or record.leftover or force:
                targets.append(record)
            else:
                skipped.append(record)
    if not targets and not skipped:
        print("no labkit sandboxes to remove")
    status = 0
    for target in targets:
        try:
            record = remove_sandbox(target, force=force)
            print(f"removed sandbox {record.id} ({record.host_ns}, {record.target_ns})")
        except SandboxError as exc:
            print(f"labkit sandbox down: {exc}", file=sys.stderr)
            status = 1
    for record in skipped:
        print(
            f"kept sandbox {record.id}: process {record.owner_pid} is using it (--force removes it)"
        )
    return status
