"""What the kinds on an interface share (XDP, TC): checks, the slot, the program, the records.

Both attach a program to an interface of a namespace: the same argument
checks, the same opening (the interface looked up, refused when the lab stands
on it unless ``force=True``, what this process held there given back), the
same rule for the program (one the attach loaded itself is its own, closed
again if the attach fails) and, for a netlink attach that outlives its
process, the same bookkeeping of records (labkit.net.attach_records); each
kind module says only what is its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from labkit._errors import ArgumentError
from labkit.attach import Attachment
from labkit.owners import held
from labkit.net.attach_records import AttachRecords
from labkit.net.counters import PacketCounters
from labkit.net.guards import refuse_cutting
from labkit.net.netns import place
from labkit.net.xdp.netlink import interface
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["InterfaceAttachment", "InterfaceRecords", "check_iface", "owned_program", "take_slot"]


def check_iface(call: str, iface: object, netns: object, sandbox_hint: str) -> str:
    """``iface`` if it is an interface name and ``netns`` a namespace name or None, else ArgumentError."""
    if iface is None:
        raise ArgumentError(f"{call} needs iface= (for a sandbox: iface={sandbox_hint})")
    if not isinstance(iface, str) or not iface:
        raise ArgumentError(f"iface must be an interface name (like 'eth0'), got {iface!r}")
    if netns is not None and not (isinstance(netns, str) and netns):
        raise ArgumentError(f"netns must be a network namespace name, or None for the root one, got {netns!r}")
    return iface


def take_slot(what: str, iface: str, netns: str | None, force: bool, key: tuple) -> tuple[str, int]:
    """(where, ifindex) of ``iface`` in ``netns``, once it is found (AttachError names the
    namespace's interfaces), not one the lab stands on (unless ``force``: labkit.net.guards
    says what ``what`` would cut off), and what this process held under ``key`` is given back."""
    where = place(iface, netns)
    ifindex = interface(iface, netns)["index"]          # raises for a missing netns or interface
    refuse_cutting(where, ifindex, netns, what=what, force=force)
    old = held(key)
    if old is not None:
        old.detach("replaced")
    return where, ifindex


@contextlib.contextmanager
def owned_program(lab: "Lab", program: Program | str, need: str,
                  defines: dict | None = None) -> Iterator[tuple[Program, bool]]:
    """(the program, whether the attachment owns it): a snippet name or C text is loaded
    here (with ``defines``) and closed again if the block fails; a Program stays the caller's."""
    owns = isinstance(program, str)
    prog = lab.load(program, need=need, defines=defines) if owns else program
    try:
        yield prog, owns
    except BaseException:
        if owns:
            prog.close()
        raise


class InterfaceAttachment(PacketCounters, Attachment):
    """A program on one interface (``iface`` of namespace ``netns``): through a
    bpf_link, when ``via`` is the kind's ``link_via`` (closing ``link_fd`` takes
    it off, and the kernel does when this process dies), or through netlink,
    which :meth:`remove_netlink` undoes (a kind removes its record there too)."""

    link_via = "bpf_link"

    def __init__(self, *, iface: str, netns: str | None, ifindex: int, via: str, link_fd: int | None, **kw):
        super().__init__(**kw)
        self.iface = iface
        self.netns = netns
        self.ifindex = ifindex
        self.via = via
        self._link_fd = link_fd

    def detach_hook(self) -> None:
        self.keep_final_counters()
        if self.via != self.link_via:
            self.remove_netlink()
        elif self._link_fd is not None:
            os.close(self._link_fd)
            self._link_fd = None

    def remove_netlink(self) -> None:
        raise NotImplementedError


class InterfaceRecords:
    """The bookkeeping half of a Recorder (labkit.hooks.protocol) for a kind on an
    interface: its records and where each sits. A kind fills in the kernel's half
    (still_there, everywhere, remove) and how it is said: ``label``, ``after_place``
    (what follows the interface) and ``bracket`` (how it sits there)."""

    label = ""

    def __init__(self, name: str, records: AttachRecords):
        self.name = name
        self.store = records
        self.state_dir = records.state_dir

    def records(self) -> list[dict]:
        return self.store.read()

    def slot(self, found_or_record: dict) -> tuple:
        return self.store.slot(found_or_record)

    def after_place(self, found: dict) -> str:
        return ""

    def bracket(self, found: dict) -> str:
        return ""

    def describe(self, found: dict) -> tuple[str, str]:
        at = place(found["iface"], found["netns"]) + self.after_place(found)
        return (f"{self.label} {found['name']} (id {found['prog_id']}) on {at} [{self.bracket(found)}]",
                f"{self.label} {found['name']} on {at}")

    def still_there(self, records: list[dict]) -> list[dict]:
        raise NotImplementedError

    def everywhere(self) -> list[dict]:
        raise NotImplementedError

    def remove(self, found: dict) -> None:
        raise NotImplementedError

    def not_removed(self, description: str, error: Exception) -> str:
        return f"could not remove {description}: {error}"
