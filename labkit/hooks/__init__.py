"""Hook kinds: one module per place a BPF program can be attached, behind one protocol.

What a kind says and does (validate, fits, privileges, attach, record and
reap) is :class:`labkit.hooks.protocol.Hook`; every module of this package that
registers a ``HOOK`` is a kind, found here by looking (a new kind is a new
module and its tests, nothing else to edit but the Lab method that opens it).
``Lab.attach_<kind>`` hands its arguments to its kind's ``attach``;
labkit.net.leftovers asks the kinds that record (:func:`recorders`) what dead
owners left.
"""

from __future__ import annotations

import importlib
import pkgutil

from labkit.hooks.protocol import Hook, Recorder, by_call, hooks, mismatch_message, recorders
from labkit.programs.compile import Program
from labkit.programs.kinds import Kind

__all__ = ["Hook", "Recorder", "by_call", "check_fits", "fits", "hooks", "kind_modules", "mismatch", "recorders"]


for _module in pkgutil.iter_modules(__path__):  # importing a kind's module registers its HOOK
    importlib.import_module(f"{__name__}.{_module.name}")


def kind_modules() -> list[str]:
    """The modules of this package that are a kind (the others are what kinds share)."""
    return sorted(type(h).__module__.rsplit(".", 1)[1] for h in hooks())


def fits(kind: Kind | None, call: str) -> bool:
    """Whether a function of ``kind`` may go to the Lab method ``call`` (an unknown kind fits anywhere)."""
    return by_call(call).fits_kind(kind)


def mismatch(program: str, kind: Kind, call: str) -> str:
    """The message that refuses a ``kind`` program at ``call``: both kinds, and where it goes instead."""
    return mismatch_message(program, kind, by_call(call))


def check_fits(call: str, program: Program | str, fn: str | None = None) -> None:
    """Raise ProgramKindError unless ``program`` (a Program, or a snippet name or
    C text, read here but not compiled) fits the Lab method ``call``
    ("attach_xdp", "attach_tracepoint", ...). Nothing is loaded or attached."""
    by_call(call).check_fits(program, fn)
