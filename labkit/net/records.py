"""Every labkit sandbox on this machine: names, ownership records, and removal.

Ownership is recorded in ``/run/labkit/sandboxes/<id>.json`` *before* anything
is built, so a process killed half-way still leaves a record behind:

.. code-block:: json

    {"version": 1, "id": "3fa9c1",
     "host_ns": "lksb-3fa9c1-host", "target_ns": "lksb-3fa9c1-tgt",
     "host_iface": "lk3fa9c1h", "target_iface": "lk3fa9c1t",
     "subnet": "198.19.37.120/30", "host_ip": "198.19.37.121", "target_ip": "198.19.37.122",
     "owner_pid": 4242, "owner_start_time": 1234567,
     "persistent": false, "built": true, "created": "2025-01-01T12:00:00+00:00"}

``owner_pid`` and ``owner_start_time`` identify the owner even when pids are
reused (labkit.owners). ``built`` turns true once namespaces, veth and addresses
are all in place (:func:`mark_built`); a record without it comes from an older
labkit and counts as built. A sandbox is a *leftover* when its owner is gone
(for a ``persistent`` one, made by ``labkit sandbox up``: when its owner is gone
and it is half gone or was never finished), or when ``lksb-*`` namespaces exist
without a state file. :func:`list_sandboxes` lists every sandbox, :func:`find_leftovers`
the leftovers, :func:`remove_sandbox` removes one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import owners
from labkit._errors import ArgumentError, SandboxError
from labkit.net.netns import list_netns, netns_exists, off_event_loop

__all__ = [
    "NS_PREFIX",
    "STATE_DIR",
    "SandboxRecord",
    "destroy_sandbox",
    "far_names",
    "find_leftovers",
    "find_record",
    "list_sandboxes",
    "load_record",
    "mark_built",
    "new_sandbox_id",
    "remove_sandbox",
    "sandbox_names",
    "state_lock",
    "state_path",
    "write_record",
]

#: Where ownership records live (one JSON file per sandbox).
STATE_DIR = Path("/run/labkit/sandboxes")
#: Every labkit sandbox namespace starts with this.
NS_PREFIX = "lksb-"

_STATE_VERSION = 1
_ID_RE = re.compile(r"^[0-9a-f]{4,12}$")
_NS_RE = re.compile(r"^lksb-([0-9a-f]{4,12})-(host|tgt|far)$")


# --------------------------------------------------------------------------- names


def sandbox_names(sandbox_id: str) -> dict[str, str]:
    """The namespace and interface names that belong to ``sandbox_id``."""
    return {
        "host_ns": f"{NS_PREFIX}{sandbox_id}-host",
        "target_ns": f"{NS_PREFIX}{sandbox_id}-tgt",
        "host_iface": f"lk{sandbox_id}h",
        "target_iface": f"lk{sandbox_id}t",
    }


def far_names(sandbox_id: str) -> dict[str, str]:
    """The names of a sandbox's optional far side (``Sandbox(far=True)``): the
    far namespace, the target's second interface ("middle") and its peer there."""
    return {
        "far_ns": f"{NS_PREFIX}{sandbox_id}-far",
        "middle_iface": f"lk{sandbox_id}m",
        "far_iface": f"lk{sandbox_id}f",
    }


def new_sandbox_id() -> str:
    """Six random hex digits (interface names stay at 9 of 15 characters)."""
    return secrets.token_hex(3)


def state_path(sandbox_id: str) -> Path:
    """The state file of ``sandbox_id``."""
    return STATE_DIR / f"{sandbox_id}.json"


# --------------------------------------------------------------------------- state files


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Serialise subnet choice and state-file creation between processes."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_record(sandbox_id: str, *, subnet: str, host_ip: str, target_ip: str, persistent: bool,
                 far_subnet: str | None = None) -> Path:
    """Record that this process owns sandbox ``sandbox_id``, not built yet (call
    under :func:`state_lock`); returns the state file. Written atomically, so
    readers never see half a file. ``far_subnet``: the sandbox has a far side
    too (its names: :func:`far_names`)."""
    pid = os.getpid()
    data = {
        "version": _STATE_VERSION,
        "id": sandbox_id,
        **sandbox_names(sandbox_id),
        "subnet": subnet,
        "host_ip": host_ip,
        "target_ip": target_ip,
        "owner_pid": pid,
        "owner_start_time": owners.start_time(pid),
        "persistent": persistent,
        "built": False,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if far_subnet is not None:
        data.update(far_names(sandbox_id), far_subnet=far_subnet)
    path = state_path(sandbox_id)
    _write_atomically(path, data)
    return path


def mark_built(path: Path) -> None:
    """Note in a state file that its sandbox is complete (namespaces, veth and
    addresses all in place): an owner killed before this left a half-built one."""
    data = json.loads(path.read_text())
    data["built"] = True
    _write_atomically(path, data)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
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
    built: bool = True
    created: str | None = None
    state_file: Path | None = None
    host_ns_present: bool = False
    target_ns_present: bool = False
    alive: bool = False
    problem: str = ""
    far_ns: str | None = None          # the optional far side (Sandbox(far=True)) and its links
    far_iface: str | None = None
    middle_iface: str | None = None
    far_subnet: str | None = None
    far_ns_present: bool = False

    @property
    def namespaces(self) -> tuple[str, ...]:
        """(host namespace, target namespace[, far namespace])."""
        return (self.host_ns, self.target_ns) + ((self.far_ns,) if self.far_ns else ())

    @property
    def extra_links(self) -> tuple[tuple[str, str], ...]:
        """(namespace, interface) of the far side's veth pair, if the sandbox has one."""
        if not self.far_ns:
            return ()
        return ((self.target_ns, self.middle_iface or ""), (self.far_ns, self.far_iface or ""))

    @property
    def complete(self) -> bool:
        """Every namespace exists."""
        return self.host_ns_present and self.target_ns_present and (self.far_ns is None or self.far_ns_present)

    @property
    def leftover(self) -> bool:
        """Nothing owns this sandbox: namespaces without a state file, an owner
        that is gone, or a persistent sandbox whose owner is gone and that is
        half gone or was never finished."""
        if self.state_file is None:
            return True
        if self.alive:
            return False
        return not (self.persistent and self.complete and self.built)

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
            "built": self.built,
            "leftover": self.leftover,
            "created": self.created,
            "state_file": str(self.state_file) if self.state_file else None,
            "host_ns_present": self.host_ns_present,
            "target_ns_present": self.target_ns_present,
            **({"far_ns": self.far_ns, "far_iface": self.far_iface, "middle_iface": self.middle_iface,
                "far_subnet": self.far_subnet, "far_ns_present": self.far_ns_present} if self.far_ns else {}),
        }


def load_record(path: Path) -> SandboxRecord:
    """Read a state file; an unreadable one still yields a record (a leftover).
    Only the file is read: presence of namespaces and owner are left unset."""
    sandbox_id = path.stem
    names = sandbox_names(sandbox_id)
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
        built=bool(data.get("built", True)),
        created=data.get("created"),
        state_file=path,
        **({**far_names(sandbox_id), "far_subnet": data.get("far_subnet")} if data.get("far_subnet") else {}),
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
                records[path.stem] = load_record(path)
    for ns in seen_ns:
        m = _NS_RE.match(ns)
        sandbox_id = m.group(1) if m else ns[len(NS_PREFIX) :]
        if sandbox_id in records:
            continue
        if m:
            far = far_names(sandbox_id) if netns_exists(far_names(sandbox_id)["far_ns"]) else {}
            records[sandbox_id] = SandboxRecord(id=sandbox_id, **sandbox_names(sandbox_id), **far)
        else:  # an lksb-* namespace labkit did not name this way: report it as is
            records[sandbox_id] = SandboxRecord(
                id=sandbox_id, host_ns=ns, target_ns=ns, host_iface="", target_iface="",
                problem="namespace name not in labkit's format",
            )
    for record in records.values():
        record.host_ns_present = netns_exists(record.host_ns)
        record.target_ns_present = netns_exists(record.target_ns)
        record.far_ns_present = bool(record.far_ns) and netns_exists(record.far_ns)
        record.alive = owners.alive(record.owner_pid, record.owner_start_time)
    return sorted(records.values(), key=lambda r: (r.created or "", r.id))


def find_leftovers() -> list[SandboxRecord]:
    """Sandboxes nothing owns any more (see :attr:`SandboxRecord.leftover`)."""
    return [r for r in list_sandboxes() if r.leftover]


def find_record(sandbox_id: str) -> SandboxRecord:
    """The record of ``sandbox_id``; ArgumentError when there is no such sandbox."""
    for record in list_sandboxes():
        if record.id == sandbox_id:
            return record
    raise ArgumentError(
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
        record.alive = owners.alive(record.owner_pid, record.owner_start_time)
    else:
        sandbox_id = id_or_record.strip().lower()
        if not _ID_RE.match(sandbox_id):
            raise ArgumentError(f"{id_or_record!r} is not a sandbox id (4-12 hex digits, e.g. 3fa9c1)")
        record = find_record(sandbox_id)
    if record.alive and not record.persistent and record.state_file is not None and not force:
        raise SandboxError(
            f"sandbox {record.id} belongs to running process {record.owner_pid}; close it "
            "there (sandbox.close()), or remove it anyway with force=True / --force"
        )
    destroy_sandbox(
        record.host_ns,
        record.target_ns,
        record.host_iface,
        record.target_iface,
        record.state_file or state_path(record.id),
        extra=record.extra_links,
    )
    return record


@off_event_loop
def destroy_sandbox(host_ns: str, target_ns: str, host_iface: str, target_iface: str, state_file: Path, *,
                    extra: Sequence[tuple[str, str]] = ()) -> None:
    """Delete the veth, both namespaces and the state file; ``extra``: more
    (namespace, interface) pairs, a far side's, to delete the same way. Whatever is missing is
    skipped. The state file stays when something could not be removed, so
    ``labkit cleanup`` can retry; then :class:`SandboxError` lists what remains."""
    # lazy: pyroute2 is only needed when namespaces are changed
    from pyroute2 import IPRoute, netns
    from pyroute2.netlink.exceptions import NetlinkError

    problems: list[str] = []
    # Delete the veth explicitly: a namespace that some process still holds
    # outlives its name, and its interface would live on with it.
    for ns, iface in ((host_ns, host_iface), (target_ns, target_iface), *extra):
        if not iface or not netns_exists(ns):
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
    for ns in dict.fromkeys((host_ns, target_ns, *(ns for ns, _ in extra))):
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
