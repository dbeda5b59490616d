"""XDP attachments that the kernel takes off when their process dies.

BCC's ``attach_xdp`` uses netlink: the program stays on the interface after
exit, ``kill -9`` or a Jupyter kernel restart, and keeps dropping. labkit
attaches through a **bpf_link** (``bpf_link_create`` from libbpf.so.1, kernel
>= 5.9): the link lives as long as its file descriptor, so the kernel detaches
the program when the owning process dies. Netlink attach is only a fallback
(or asked for with ``via="netlink"``), and then it is recorded under
/run/labkit/xdp so ``labkit cleanup`` finds it.

Generic (skb) and native (driver) mode are separate slots on an interface; a
program is always detached with the mode it was attached with.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from labkit._errors import AttachError, LabkitError, NotSupportedError
from labkit.attach import Attachment
from labkit.events.schemas import N_PROTO, PROTOCOLS, XDP_ACTIONS
from labkit.net import netns as _netns

if TYPE_CHECKING:
    from labkit.events.stream import EventStream

BPF_XDP = 37                      # enum bpf_attach_type
XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_SKB_MODE = 2
XDP_FLAGS_DRV_MODE = 4
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE}
MODES = ("auto", "native", "generic")
VIAS = ("auto", "link", "netlink")
XDP_STATE_DIR = Path("/run/labkit/xdp")
PREFIX = "lk_"

# ------------------------------------------------------------------ libbpf
class _LinkCreateOpts(ctypes.Structure):
    # struct bpf_link_create_opts: only sz and flags are used; libbpf reads
    # fields up to `sz` and treats the rest as zero
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


_libbpf: Any = None


def libbpf():
    global _libbpf
    if _libbpf is None:
        try:
            lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError:
            lib = False
        else:
            lib.bpf_link_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(_LinkCreateOpts)]
            lib.bpf_link_create.restype = ctypes.c_int
            lib.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
            lib.bpf_prog_get_fd_by_id.restype = ctypes.c_int
            lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
            lib.bpf_obj_get_info_by_fd.restype = ctypes.c_int
        _libbpf = lib
    return _libbpf or None


def link_create(prog_fd: int, ifindex: int, flags: int) -> int:
    """bpf_link_create(prog, ifindex, BPF_XDP) in the calling thread's netns; returns the link fd."""
    lib = libbpf()
    if lib is None:
        raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature="bpf_link")
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=flags)
    fd = lib.bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts))
    if fd < 0:
        err = -fd if fd != -1 else ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def prog_name(prog_id: int) -> str:
    """The name (kernel keeps 15 characters) of a loaded BPF program, by id."""
    lib = libbpf()
    if lib is None or not prog_id:
        return ""
    fd = lib.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return ""
    try:
        info = (ctypes.c_uint8 * 256)()
        size = ctypes.c_uint32(256)
        if lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)) != 0:
            return ""
        raw = bytes(info[64:80])  # struct bpf_prog_info.name
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")
    finally:
        os.close(fd)


# ---------------------------------------------------------------- netlink
def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


def _link_attrs(msg) -> dict:
    xdp = msg.get_attr("IFLA_XDP")
    out = {"index": msg["index"], "ifname": msg.get_attr("IFLA_IFNAME"), "native": 0, "generic": 0}
    if xdp is not None:
        out["native"] = xdp.get_attr("IFLA_XDP_DRV_PROG_ID") or 0
        out["generic"] = xdp.get_attr("IFLA_XDP_SKB_PROG_ID") or 0
        mode = xdp.get_attr("IFLA_XDP_ATTACHED")
        pid = xdp.get_attr("IFLA_XDP_PROG_ID") or 0
        if pid and not (out["native"] or out["generic"]):
            out["native" if mode in (1, "xdp") else "generic"] = pid
    return out


def interfaces(netns: str | None) -> list[dict]:
    """Every interface of a namespace with the XDP program ids in each slot."""
    def work():
        with _ipr() as ipr:
            return [_link_attrs(m) for m in ipr.get_links()]
    return _netns.run_in_netns(netns, work)


def interface(iface: str, netns: str | None) -> dict:
    if not isinstance(iface, str) or not iface:
        raise AttachError(f"an interface name is needed, got {iface!r}", target=str(iface))
    links = interfaces(netns)
    for link in links:
        if link["ifname"] == iface:
            return link
    where = f"network namespace {netns!r}" if netns else "the root network namespace"
    raise AttachError(
        f"no interface {iface!r} in {where} (it has: {', '.join(sorted(l['ifname'] for l in links))}); "
        "for a sandbox pass iface=sb.target_iface, netns=sb.target_ns",
        target=f"{netns + ':' if netns else ''}{iface}")


def default_route_ifindexes(netns: str | None) -> set[int]:
    def work():
        with _ipr() as ipr:
            out = set()
            for fam in (2, 10):
                for r in ipr.get_default_routes(family=fam):
                    oif = r.get_attr("RTA_OIF")
                    if oif:
                        out.add(oif)
                    mp = r.get_attr("RTA_MULTIPATH") or []
                    for hop in mp:
                        out.add(hop["oif"])
            return out
    return _netns.run_in_netns(netns, work)


def netlink_set(ifindex: int, netns: str | None, fd: int, mode: str) -> None:
    """Attach (fd >= 0) or remove (fd == -1) through netlink in ``mode``'s slot."""
    def work():
        with _ipr() as ipr:
            ipr.link("set", index=ifindex,
                     IFLA_XDP={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", MODE_FLAGS[mode])]})
    _netns.run_in_netns(netns, work)


# ---------------------------------------------------------- netlink records
def _record_path(netns: str | None, iface: str) -> Path:
    return XDP_STATE_DIR / f"{netns or '-root-'}__{iface}.json"


def record_netlink_attach(netns: str | None, iface: str, mode: str, prog_id: int) -> None:
    XDP_STATE_DIR.mkdir(parents=True, exist_ok=True)
    _record_path(netns, iface).write_text(json.dumps(
        {"netns": netns, "iface": iface, "mode": mode, "prog_id": prog_id, "pid": os.getpid(),
         "created": time.time()}))


def forget_netlink_attach(netns: str | None, iface: str) -> None:
    try:
        _record_path(netns, iface).unlink()
    except FileNotFoundError:
        pass


def netlink_records() -> list[dict]:
    out = []
    if XDP_STATE_DIR.is_dir():
        for p in sorted(XDP_STATE_DIR.glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            rec["path"] = str(p)
            out.append(rec)
    return out


# ------------------------------------------------------------------ finding
def find_labkit_xdp() -> list[dict]:
    """Every labkit XDP program (name starts with lk_) on every interface of
    every namespace, in both slots: dicts netns, iface, ifindex, mode, prog_id, name."""
    found = []
    for ns in [None, *_netns.list_netns()]:
        try:
            links = interfaces(ns)
        except (OSError, AttachError):
            continue
        for link in links:
            for mode in ("native", "generic"):
                pid = link[mode]
                if pid:
                    name = prog_name(pid)
                    if name.startswith(PREFIX):
                        found.append({"netns": ns, "iface": link["ifname"], "ifindex": link["index"],
                                      "mode": mode, "prog_id": pid, "name": name})
    return found


def read_counters(program) -> pd.DataFrame:
    """Sum the per-CPU (action, protocol) counters: exact packets and bytes."""
    table = program["counters"]
    rows = []
    n = int(table.max_entries)
    for idx in range(n):
        vals = table[idx]
        packets = sum(int(v.packets) for v in vals)
        nbytes = sum(int(v.bytes) for v in vals)
        if packets:
            action, proto = divmod(idx, N_PROTO)
            rows.append({"action": XDP_ACTIONS.get(action, str(action)),
                         "protocol": PROTOCOLS[proto] if proto < N_PROTO else str(proto),
                         "packets": packets, "bytes": nbytes})
    return pd.DataFrame(rows, columns=["action", "protocol", "packets", "bytes"]).astype(
        {"packets": "int64", "bytes": "int64"})


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise LabkitError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def check_via(via: str) -> str:
    if via not in VIAS:
        raise LabkitError(f"via must be one of {', '.join(VIAS)}, got {via!r}")
    return via


def link_error_means_unsupported(err: int) -> bool:
    return err in (_errno.EINVAL, _errno.ENOSYS, _errno.EOPNOTSUPP, _errno.ENOTSUP)


# -------------------------------------------------------------- attachment
class XdpAttachment(Attachment):
    """An XDP program on one interface. ``mode`` is the slot it got ("native"
    or "generic"), ``via`` how ("bpf_link": the kernel detaches it when this
    process dies; "netlink": it stays until detached or `labkit cleanup`)."""

    kind = "xdp"

    def __init__(self, *, iface: str, netns: str | None, ifindex: int, mode: str, via: str, link_fd: int | None,
                 **kw):
        super().__init__(**kw)
        self.iface = iface
        self.netns = netns
        self.ifindex = ifindex
        self.mode = mode
        self.via = via
        self._link_fd = link_fd
        self._final_counters: pd.DataFrame | None = None

    @property
    def events(self) -> EventStream | None:
        """Sampled packet events (src, dst, protocol, action, length), if the program emits them."""
        return self.stream

    def counters(self) -> pd.DataFrame:
        """Exact packets and bytes per (action, protocol), from the per-CPU maps.
        After detach: the last values read."""
        if self.state != "attached" or self.program.closed:
            if self._final_counters is not None:
                return self._final_counters.copy()
            raise LabkitError(f"XDP on {self.iface} is {self.state} and its program has no counters map")
        if not self.program.has_table("counters"):
            raise LabkitError(f"{self.program.name} has no 'counters' map (labkit's XDP snippets have one)")
        return read_counters(self.program)

    def packets(self, action: str | None = None, protocol: str | None = None) -> int:
        """Sum of counted packets, e.g. ``x.packets("drop", "icmp")``."""
        df = self.counters()
        if action is not None:
            df = df[df.action == action]
        if protocol is not None:
            df = df[df.protocol == protocol]
        return int(df.packets.sum())

    def unhook(self) -> None:
        try:
            if self.program.has_table("counters") and not self.program.closed:
                self._final_counters = read_counters(self.program)
        except Exception:
            pass
        if self.via == "bpf_link":
            if self._link_fd is not None:
                os.close(self._link_fd)
                self._link_fd = None
        else:
            try:
                netlink_set(self.ifindex, self.netns, -1, self.mode)
            except Exception as e:
                if "No such device" not in str(e) and not isinstance(e, AttachError):
                    raise
            forget_netlink_attach(self.netns, self.iface)

    def __repr__(self) -> str:
        where = f"{self.netns}:{self.iface}" if self.netns else self.iface
        return f"<labkit.XdpAttachment {self.program.name} on {where} ({self.mode}, via {self.via}): {self.state}>"


