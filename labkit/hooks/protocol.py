"""The protocol every hook kind implements, and the registry of kinds.

A hook kind is one module in labkit.hooks that makes one :class:`Hook` and
registers it (``HOOK = register(XdpHook())``). What a kind says and does:

    name        what attachments and errors call it ("tracepoint", "xdp")
    call        the Lab method that attaches it ("attach_xdp"); None when only
                Lab.load attaches it (a BCC-named function: RAW_TRACEPOINT_PROBE, ...)
    fits        the program kinds (labkit.programs.kinds) that may go to it
    wants       what it takes, in words: the error that refuses another kind says it
    home        the program kinds it is the place for, and how to attach one here
                (said to such a program when it went to another call)
    needs       its privileges (a key of labkit.programs.privileges.NEEDS)
    validate()  the call's arguments checked before anything touches the kernel
                (ArgumentError for a bad one); returns them as ``make`` takes them
    supported() NotSupportedError when this kernel or machine lacks the kind
    make()      the kernel side: load, attach, register -> an Attachment
    records     for a kind the kernel does not give back by itself (a netlink
                attach outlives its process): a :class:`Recorder`

:meth:`Hook.attach` runs them in that order (program, arguments, fit,
privileges, support, kernel), so a wrong call never touches the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from labkit._errors import ArgumentError, ClosedError, ProgramKindError
from labkit.programs import pins, privileges
from labkit.programs.compile import Program, resolve_source
from labkit.programs.kinds import Kind, article, defined_functions, kind_of

if TYPE_CHECKING:  # the Lab sits on the floor above, the Attachment below: types here only
    from labkit.attach import Attachment
    from labkit.lab import Lab

__all__ = ["Hook", "Recorder", "by_call", "check_choice", "check_program", "hooks", "mismatch_message", "recorders", "register"]


class Recorder(Protocol):
    """What a kind the kernel does not give back by itself writes down, and how
    labkit.net.leftovers finds and removes what a dead owner left of it.

    Each found thing is a dict with at least ``netns`` and ``iface``, and
    ``record`` when it was found from a record."""

    name: str          # the kind's name ("xdp")
    state_dir: Path    # one JSON record per attach, each with the owner's pid and start time

    def records(self) -> list[dict]:
        """Every record, each with its file as ``path``."""

    def still_there(self, records: list[dict]) -> list[dict]:
        """What of these records is still in the kernel, running the recorded program."""

    def everywhere(self) -> list[dict]:
        """What of this kind labkit left anywhere on the machine (``labkit cleanup``), recorded or not."""

    def slot(self, found_or_record: dict) -> tuple:
        """Where a record and what it found sit: the same tuple for both."""

    def describe(self, found: dict) -> tuple[str, str]:
        """(what ``labkit cleanup`` says about it, the short name a reap line uses)."""

    def remove(self, found: dict) -> None:
        """Take it off the kernel; raises when it cannot."""

    def not_removed(self, description: str, error: Exception) -> str:
        """The line that says it could not be removed, and why."""


_HOOKS: dict[str, "Hook"] = {}


def register(hook: "Hook") -> "Hook":
    """Register a kind under its name (each kind module does this once for its HOOK)."""
    if hook.name in _HOOKS and type(_HOOKS[hook.name]) is not type(hook):
        raise RuntimeError(f"two hook kinds are called {hook.name!r}")
    _HOOKS[hook.name] = hook
    return hook


def hooks() -> list["Hook"]:
    """Every registered kind, by name."""
    return [_HOOKS[n] for n in sorted(_HOOKS)]


def by_call(call: str) -> "Hook":
    """The kind the Lab method ``call`` ("attach_xdp") attaches."""
    for h in _HOOKS.values():
        if h.call == call:
            return h
    raise KeyError(call)


def recorders() -> list[Recorder]:
    """The records of every kind the kernel does not give back by itself, and of the lab's pin
    directories in the BPF filesystem (labkit.programs.pins: a pin outlives its process too)."""
    return [h.records for h in hooks() if h.records is not None] + [pins.RECORDS]


def check_choice(what: str, value: object, choices: tuple[str, ...], means: str = "") -> str:
    """``value`` if it is one of ``choices``, else ArgumentError (``means``: what the choices are, in words)."""
    if value not in choices:
        raise ArgumentError(f"{what} must be one of {', '.join(map(repr, choices))}{means}, got {value!r}")
    return value  # type: ignore[return-value]


def check_program(program: object) -> None:
    """A Program that is still loaded (else ClosedError), or a snippet name or C text (else ArgumentError)."""
    if isinstance(program, Program):
        if program.closed:
            raise ClosedError(f"program {program.name} is closed (its attachment was detached or its Lab "
                                "closed); load it again with lab.load()")
    elif not isinstance(program, str):
        raise ArgumentError(f"the program must be a snippet name, C text or a Program from lab.load(), "
                            f"got {type(program).__name__} {program!r}")


def mismatch_message(program: str, kind: Kind, hook: "Hook") -> str:
    """``count_getppid.c is a tracepoint program (its header says: ...); attach_xdp needs an XDP program (...)``,
    and where a program of that kind goes instead."""
    what = article(kind.kind)
    home = [h.home[kind.kind] for h in hooks() if kind.kind in h.home]
    instead = home[0] if home else f"labkit has no attach call for {what} program."
    return f"{program} is {what} program ({kind.because}); {hook.call} needs {hook.wants}. {instead}"


class Hook:
    """One hook kind: see this module's docstring. Subclasses set the class
    attributes and implement :meth:`make` (and :meth:`validate`, :meth:`supported`
    where the kind has arguments or can be missing)."""

    name: ClassVar[str] = ""
    call: ClassVar[str | None] = None
    fits: ClassVar[tuple[str, ...]] = ()
    wants: ClassVar[str] = ""
    home: ClassVar[Mapping[str, str]] = {}
    needs: ClassVar[str] = "tracing"
    records: Recorder | None = None

    def attach(self, lab: "Lab", program: Program | str, **options: Any) -> "Attachment":
        """Attach ``program`` with the call's ``options``: every check first, then the kernel."""
        check_program(program)
        checked = self.validate(program, **options)
        self.check_fits(program, checked.get("fn"))
        self.check_privileges()
        self.supported(checked)
        return self.make(lab, program, **checked)

    def validate(self, program: Program | str, **options: Any) -> dict:
        """The options, checked (ArgumentError); nothing here touches the kernel."""
        return options

    def check_privileges(self) -> None:
        """PrivilegeError, naming what is missing, unless this process may attach this kind."""
        privileges.require(self.needs)

    def supported(self, options: dict) -> None:
        """Raise NotSupportedError when this kernel or machine lacks the kind."""

    def make(self, lab: "Lab", program: Program | str, **options: Any) -> "Attachment":
        raise NotImplementedError(f"{self.name} is attached by Lab.load only")

    def fits_kind(self, kind: Kind | None) -> bool:
        """Whether a function of ``kind`` may go here (an unknown kind fits anywhere)."""
        return kind is None or kind.kind in self.fits

    def check_fits(self, program: Program | str, fn: str | None = None) -> None:
        """ProgramKindError unless ``program`` (a Program, or a snippet name or C
        text, read here but not compiled) fits this kind. Nothing is loaded."""
        if isinstance(program, Program):
            name, source = program.name, program.source
            functions = program.functions if not program.closed else []
        else:
            name, source, _path = resolve_source(program)
            functions = defined_functions(source)
        if fn is not None and not isinstance(fn, str):
            raise ArgumentError(f"fn= names a function of {name} (a string like 'lk_main'), got {fn!r}")
        kind = kind_of(source, fn, functions)
        if not self.fits_kind(kind):
            raise ProgramKindError(mismatch_message(name, kind, self), target=name, kind=kind.kind, call=self.call)

    def __repr__(self) -> str:
        return f"<labkit hook {self.name}{' (' + self.call + ')' if self.call else ''}>"
