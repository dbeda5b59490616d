"""XDP: a program on an interface, run on each frame as it arrives (``Lab.attach_xdp``).

BCC's ``attach_xdp`` uses netlink, and a netlink attach stays on the interface
after its process dies. labkit attaches through a **bpf_link**
(labkit.hooks.link): the kernel takes the program off when this process dies.
Netlink is the fallback (or asked for with ``via="netlink"``), and then it is
recorded, so the next labkit process reaps it when its owner is gone (the
records below, labkit.net.leftovers). Generic (skb) and native (driver) mode
are separate slots; a program is always removed from the slot it went into.

The rules of an attach, in order:

1. refuse bad arguments before touching the kernel (mode, via, iface,
   sample_every, window), and a program of another kind;
2. find the interface (AttachError names the namespace's interfaces) and refuse
   one the lab stands on unless ``force=True``: the default route, JupyterLab's
   address (the root namespace's lo), an SSH session (labkit.net.guards says
   what it would cut off);
3. clear the slot: the attachment this process holds under the same key is
   given back ("replaced"), a labkit leftover in either slot is removed, a
   foreign program stays unless ``replace_foreign=True``;
4. load the program (through the Lab, which owns it) and attach it through a
   bpf_link, native slot first in "auto" mode; netlink is the fallback, recorded;
5. register the XdpAttachment process-wide and, when the program has an
   ``events`` ring buffer, give it its event stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, AttachError, NotSupportedError
from labkit.owners import claim
from labkit.events.schemas import XDP_EVENT_DTYPE, xdp_frame
from labkit.events.stream import DEFAULT_POLL_INTERVAL, DEFAULT_WINDOW, EventStream, check_window
from labkit.hooks.interface import InterfaceAttachment, InterfaceRecords, check_iface, owned_program, take_slot
from labkit.hooks.link import link_create, means_unsupported
from labkit.hooks.protocol import Hook, check_choice, register
from labkit.net.netns import place
from labkit.net.xdp.netlink import (
    MODE_FLAGS,
    PREFIX,
    XDP_RECORDS,
    find_labkit_xdp,
    forget_netlink_attach,
    interface,
    netlink_set,
    prog_name,
    record_netlink_attach,
)
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["BPF_XDP", "HOOK", "MODES", "VIAS", "XdpAttachment", "XdpHook", "XdpRecords"]

BPF_XDP = 37                      # enum bpf_attach_type
MODES = ("auto", "native", "generic")
VIAS = ("auto", "link", "netlink")


class XdpAttachment(InterfaceAttachment):
    """An XDP program on one interface. ``mode`` is the slot it got ("native"
    or "generic"), ``via`` how ("bpf_link": the kernel detaches it when this
    process dies; "netlink": it stays until detached or `labkit cleanup`)."""

    kind = "xdp"

    def __init__(self, *, mode: str, **kw):
        super().__init__(**kw)
        self.mode = mode

    @property
    def events(self) -> EventStream | None:
        """Sampled packet events (src, dst, protocol, action, length), if the program emits them."""
        return self.stream

    def remove_netlink(self) -> None:
        try:
            netlink_set(self.ifindex, self.netns, -1, self.mode)
        except Exception as e:
            if "No such device" not in str(e) and not isinstance(e, AttachError):
                raise
        forget_netlink_attach(self.netns, self.iface)

    def __repr__(self) -> str:
        return (f"<labkit.XdpAttachment {self.program.name} on {place(self.iface, self.netns)} ({self.mode}, "
                f"via {self.via}): {self.state}>")


class XdpRecords(InterfaceRecords):
    """Netlink XDP attaches: recorded under /run/labkit/xdp (labkit.net.xdp.netlink),
    found in their slot, removed by netlink."""

    label = "XDP"

    def still_there(self, records: list[dict]) -> list[dict]:
        """The programs of netlink attach records that are still in their slot."""
        found = []
        for rec in records:
            netns, iface, mode = rec.get("netns"), rec.get("iface"), rec.get("mode") or "generic"
            try:
                link = interface(iface, netns)
            except (AttachError, OSError):  # interface or namespace gone: nothing attached any more
                continue
            prog_id = link.get(mode)
            if prog_id and prog_id == rec.get("prog_id"):
                found.append({"netns": netns, "iface": iface, "ifindex": link["index"], "mode": mode,
                              "prog_id": prog_id, "name": prog_name(prog_id)})
        return found

    def everywhere(self) -> list[dict]:
        """Every program named lk_* in either slot of every interface of every namespace."""
        return find_labkit_xdp()

    def bracket(self, found: dict) -> str:
        return found["mode"]

    def remove(self, found: dict) -> None:
        netlink_set(found["ifindex"], found["netns"], -1, found["mode"])

    def not_removed(self, description: str, error: Exception) -> str:
        return (f"kept {description}: held by a bpf_link of a running process ({error}); it goes when that "
                "process ends")


class XdpHook(Hook):
    name = "xdp"
    call = "attach_xdp"
    fits = ("xdp",)
    wants = "an XDP program (a function taking struct xdp_md *)"
    home = {"xdp": "Attach it with lab.attach_xdp(program, iface=...) instead."}
    needs = "xdp"

    def __init__(self) -> None:
        self.records = XdpRecords("xdp", XDP_RECORDS)

    def validate(self, program: Program | str, *, iface: Any = None, netns: str | None = None, mode: Any = "auto",
                 force: bool = False, via: Any = "auto", fn: str | None = None, sample_every: Any = 1,
                 window: int = DEFAULT_WINDOW, poll_interval: float = DEFAULT_POLL_INTERVAL,
                 replace_foreign: bool = False) -> dict:
        check_choice("mode", mode, MODES, " (native: the driver's slot, generic: the kernel's; auto: native, else "
                                          "generic)")
        check_choice("via", via, VIAS, " (link: a bpf_link, taken off when this process dies; netlink: stays)")
        check_iface("attach_xdp", iface, netns, "sb.target_iface, netns=sb.target_ns")
        if not (isinstance(sample_every, int) and not isinstance(sample_every, bool) and sample_every >= 1):
            raise ArgumentError(f"sample_every must be a positive integer, got {sample_every!r}")
        check_window(window, poll_interval)
        return {"iface": iface, "netns": netns, "mode": mode, "force": force, "via": via, "fn": fn,
                "sample_every": sample_every, "window": window, "poll_interval": poll_interval,
                "replace_foreign": replace_foreign}

    def make(self, lab: "Lab", program: Program | str, *, iface: str, netns: str | None, mode: str, force: bool,
             via: str, fn: str | None, sample_every: int, window: int, poll_interval: float,
             replace_foreign: bool) -> XdpAttachment:
        """Attach ``program`` (a Program, or a snippet name or C text that ``lab``
        loads and the attachment then owns) to ``iface`` in namespace ``netns``,
        following the rules in this module's docstring."""
        key = ("xdp", netns or "", iface)
        where, ifindex = take_slot("an XDP program", iface, netns, force, key)
        _clear_slots(iface, netns, ifindex, where, replace_foreign)
        with owned_program(lab, program, "xdp", {"LK_SAMPLE_EVERY": sample_every}) as (prog, owns_program):
            link_fd, got, how, errors = _attach(prog, fn, iface, netns, ifindex, where, mode, via)
        att = XdpAttachment(iface=iface, netns=netns, ifindex=ifindex, mode=got, via=how, link_fd=link_fd,
                            key=key, target=where, program=prog, lab=lab, hook=f"xdp:{where}:{got}",
                            owns_program=owns_program)
        att.mode_note = f"{got} mode via {how}" + (f" (after: {'; '.join(errors)})" if errors else "")
        claim(att, att.detach)
        if prog.has_table("events"):
            try:
                att.stream = EventStream(name=f"xdp({where})", program=prog, payload=XDP_EVENT_DTYPE,
                                         frame=xdp_frame, source=att.hook, hook_note=att.mode_note,
                                         window=window, poll_interval=poll_interval, owner=None)
            except BaseException:
                att.detach()
                raise
        return att


def _clear_slots(iface: str, netns: str | None, ifindex: int, where: str, replace_foreign: bool) -> None:
    """Whatever is left in either slot: a labkit leftover goes, a foreign program
    stays (AttachError) unless ``replace_foreign``."""
    link = interface(iface, netns)
    for slot in ("native", "generic"):
        pid = link[slot]
        if not pid:
            continue
        name = prog_name(pid)
        if name.startswith(PREFIX) or replace_foreign:
            try:
                netlink_set(ifindex, netns, -1, slot)
            except Exception as e:
                raise AttachError(
                    f"{where} already has XDP program {name or pid} ({slot}), held by a bpf_link of "
                    f"another process ({e}); detach it there or end that process", target=where) from None
            forget_netlink_attach(netns, iface)
        else:
            raise AttachError(
                f"{where} already has a non-labkit XDP program {name or pid} in {slot} mode; remove it "
                f"(ip link set dev {iface} xdp{'generic' if slot == 'generic' else ''} off) or pass "
                "replace_foreign=True", target=where)


def _attach(prog: Program, fn: str | None, iface: str, netns: str | None, ifindex: int, where: str, mode: str,
            via: str) -> tuple[int | None, str, str, list[str]]:
    """Load ``fn`` as XDP and attach it: bpf_link first, netlink as the fallback.
    Returns (link fd or None, the mode it got, "bpf_link" or "netlink", what failed on the way)."""
    # lazy: bcc is heavy; only its program-type constant is needed here
    import bcc

    fname = prog.function_name(fn)
    f = prog.load_function(fname, bcc.BPF.XDP)
    modes = ["native", "generic"] if mode == "auto" else [mode]
    errors: list[str] = []
    if via in ("auto", "link"):
        for m in modes:
            try:
                return link_create(f.fd, ifindex, BPF_XDP, flags=MODE_FLAGS[m], netns=netns), m, "bpf_link", errors
            except OSError as e:
                errors.append(f"{m}: {e.strerror}")
                if via == "link" and not means_unsupported(e.errno) and m == modes[-1]:
                    break
            except NotSupportedError as e:
                errors.append(str(e))
                break
    if via in ("auto", "netlink"):
        for m in modes:
            try:
                netlink_set(ifindex, netns, f.fd, m)
                record_netlink_attach(netns, iface, m, interface(iface, netns)[m])
                return None, m, "netlink", errors
            except Exception as e:
                errors.append(f"netlink {m}: {e}")
    raise AttachError(f"attaching {fname} to {where} failed: {'; '.join(errors)}", target=where)


HOOK = register(XdpHook())
