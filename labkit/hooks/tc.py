"""TC: a program on what enters (ingress) or leaves (egress) an interface (``Lab.attach_tc``).

XDP sees a frame only as it arrives, before the kernel has made an skb of it.
TC (the traffic-control layer) runs with the skb, on both sides: ingress
after XDP, egress as a packet leaves, which XDP never sees. The program runs
in direct-action mode (it returns TC_ACT_OK, TC_ACT_SHOT, ...).

The rules of an attach, in order:

1. refuse bad arguments before touching the kernel (direction, via, iface),
   and a program of another kind;
2. find the interface and refuse one the lab stands on unless ``force=True``
   (labkit.net.guards, exactly as for XDP: a TC program that drops can cut the
   default route, JupyterLab's lo or an SSH session off just as well);
3. give back what this process holds on the same (namespace, interface,
   direction): re-running a cell replaces;
4. load the program as SCHED_CLS and attach it: a **tcx link** (kernel >= 6.6,
   labkit.hooks.link; the kernel takes it off when this process dies) in
   "auto", else the **clsact qdisc + cls_bpf filter** through netlink
   (Debian 12's 6.1; labkit.net.tc.netlink), recorded so a dead owner's
   filter is reaped (the records below, labkit.net.leftovers);
5. register the TcAttachment process-wide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit._errors import AttachError, NotSupportedError
from labkit.owners import claim
from labkit.hooks.interface import InterfaceAttachment, InterfaceRecords, check_iface, owned_program, take_slot
from labkit.hooks.link import link_create, means_unsupported
from labkit.hooks.protocol import Hook, check_choice, register
from labkit.net.counters import TC_ACTIONS
from labkit.net.tc.netlink import (
    TC_RECORDS,
    forget_tc_attach,
    netlink_add_filter,
    netlink_remove_filter,
    prog_id_of_fd,
    record_tc_attach,
    recorded_filter,
    tc_records,
)
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["DIRECTIONS", "HOOK", "TCX_ATTACH_TYPES", "TC_VIAS", "TcAttachment", "TcHook", "TcRecords"]

#: Where a TC program sits on an interface.
DIRECTIONS = ("ingress", "egress")
#: enum bpf_attach_type: BPF_TCX_INGRESS, BPF_TCX_EGRESS (uapi/linux/bpf.h, kernel 6.6)
TCX_ATTACH_TYPES = {"ingress": 46, "egress": 47}
TC_VIAS = ("auto", "tcx", "netlink")


class TcAttachment(InterfaceAttachment):
    """A TC program on one side ("ingress" or "egress") of one interface.
    ``via`` says how: "tcx" (a bpf_link: the kernel takes it off when this
    process dies) or "netlink" (a cls_bpf filter under the clsact qdisc,
    recorded; removed on detach, and by the next labkit process if this one dies)."""

    kind = "tc"
    link_via = "tcx"
    actions = TC_ACTIONS
    hook_name = "TC"
    snippets = "labkit's tc_* snippets"

    def __init__(self, *, direction: str, prio: int | None, made_qdisc: bool, **kw):
        super().__init__(**kw)
        self.direction = direction
        self.prio = prio
        self._made_qdisc = made_qdisc

    def remove_netlink(self) -> None:
        try:
            netlink_remove_filter(self.ifindex, self.iface, self.netns, self.direction, self.prio or 0,
                                  self._made_qdisc)
        except Exception as e:
            if "No such" not in str(e) and not isinstance(e, (AttachError, FileNotFoundError)):
                raise
        forget_tc_attach(self.netns, self.iface, self.direction)

    def __repr__(self) -> str:
        return (f"<labkit.TcAttachment {self.program.name} on {self.target} {self.direction} (via {self.via}): "
                f"{self.state}>")


class TcRecords(InterfaceRecords):
    """cls_bpf filters under clsact: recorded under /run/labkit/tc (labkit.net.tc.netlink),
    found by their priority and program, removed with the qdisc labkit made."""

    label = "TC"

    def still_there(self, records: list[dict]) -> list[dict]:
        """The filters of these records that are still there, running the recorded program."""
        found = []
        for rec in records:
            f = recorded_filter(rec)
            if f is not None:
                found.append({**f, "record": rec})
        return found

    def everywhere(self) -> list[dict]:
        """Every recorded filter still there (labkit makes no unrecorded filter; tcx links die with their process)."""
        return self.still_there(self.records())

    def after_place(self, found: dict) -> str:
        return f" {found['direction']}"

    def bracket(self, found: dict) -> str:
        return f"cls_bpf prio {found['prio']}"

    def remove(self, found: dict) -> None:
        netlink_remove_filter(found["ifindex"], found["iface"], found["netns"], found["direction"], found["prio"],
                              found["made_qdisc"])


class TcHook(Hook):
    name = "tc"
    call = "attach_tc"
    fits = ("skb",)
    wants = "a TC program (a function taking struct __sk_buff *, loaded as SCHED_CLS)"
    home = {"skb": "Attach it with lab.attach_tc(program, iface=..., direction='ingress' or 'egress') instead."}
    needs = "tc"

    def __init__(self) -> None:
        self.records = TcRecords("tc", TC_RECORDS)

    def validate(self, program: Program | str, *, iface: Any = None, direction: Any = "ingress",
                 netns: str | None = None, fn: str | None = None, via: Any = "auto", force: bool = False) -> dict:
        check_choice("direction", direction, DIRECTIONS, " (ingress: what arrives, egress: what leaves)")
        check_choice("via", via, TC_VIAS, " (auto: a tcx link where the kernel has tcx, else the clsact qdisc "
                                          "through netlink)")
        check_iface("attach_tc", iface, netns, "sb.host_iface, netns=sb.host_ns")
        return {"iface": iface, "direction": direction, "netns": netns, "fn": fn, "via": via, "force": force}

    def make(self, lab: "Lab", program: Program | str, *, iface: str, direction: str, netns: str | None,
             fn: str | None, via: str, force: bool) -> TcAttachment:
        """Attach ``program`` (a Program, or a snippet name or C text that ``lab``
        loads and the attachment then owns) to ``direction`` of ``iface`` in
        namespace ``netns``, following the rules in this module's docstring."""
        key = ("tc", netns or "", iface, direction)
        where, ifindex = take_slot("a TC program", iface, netns, force, key)
        with owned_program(lab, program, "tc") as (prog, owns_program):
            att = _attach(lab, prog, fn, iface, netns, ifindex, where, direction, via, key, owns_program)
        claim(att, att.detach)
        return att


def _attach(lab: "Lab", prog: Program, fn: str | None, iface: str, netns: str | None, ifindex: int, where: str,
            direction: str, via: str, key: tuple, owns_program: bool) -> TcAttachment:
    # lazy: bcc is heavy; only its program-type constant is needed here
    import bcc

    fname = prog.function_name(fn)
    f = prog.load_function(fname, bcc.BPF.SCHED_CLS)
    common = dict(iface=iface, netns=netns, ifindex=ifindex, direction=direction, key=key, target=where,
                  program=prog, lab=lab, hook=f"tc:{where}:{direction}", owns_program=owns_program)
    errors: list[str] = []
    if via in ("auto", "tcx"):
        try:
            fd = link_create(f.fd, ifindex, TCX_ATTACH_TYPES[direction], netns=netns, feature="tcx")
            att = TcAttachment(via="tcx", link_fd=fd, prio=None, made_qdisc=False, **common)
            att.mode_note = f"{direction} via tcx"
            return att
        except OSError as e:
            if via == "tcx" or not means_unsupported(e.errno):
                raise AttachError(f"attaching {fname} to {where} {direction} through a tcx link failed: "
                                  f"{e.strerror}" + (" (tcx needs kernel 6.6 or later; via='netlink' uses the "
                                                     "clsact qdisc)" if means_unsupported(e.errno)
                                                    else ""), target=where) from None
            errors.append(f"tcx: {e.strerror}")
        except NotSupportedError as e:
            if via == "tcx":
                raise
            errors.append(str(e))
    try:
        prio, made = netlink_add_filter(ifindex, iface, netns, direction, f.fd, fname)
    except Exception as e:
        raise AttachError(f"attaching {fname} to {where} {direction} failed: {'; '.join([*errors, f'netlink: {e}'])}",
                          target=where) from None
    # a clsact qdisc labkit made for the other direction goes with whichever filter is removed last
    made = made or any(r.get("made_qdisc") for r in tc_records()
                       if r.get("netns") == netns and r.get("iface") == iface and r.get("direction") != direction)
    record_tc_attach(netns, iface, direction, prio, prog_id_of_fd(f.fd), made)
    att = TcAttachment(via="netlink", link_fd=None, prio=prio, made_qdisc=made, **common)
    att.mode_note = f"{direction} via netlink (clsact, cls_bpf prio {prio})" + (
        f" (after: {'; '.join(errors)})" if errors else "")
    return att


HOOK = register(TcHook())
