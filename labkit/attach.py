"""Attachment: the handle every hook kind returns.

An attachment is a program on a hook, and its one verb is ``detach()``: take
the program off the hook and free what it owns (its program, its stream),
idempotently; a detached handle refuses reuse. Each attachment is claimed in
the one registry (:mod:`labkit.owners`) under its key (kind, target, program),
with ``detach`` as the verb that gives it back: attaching under a held key
detaches the old one ("replaced"), and interpreter exit detaches what is left
("closed"). A kind fills in :meth:`Attachment.detach_hook`, its part of detach.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from labkit._errors import ClosedError
from labkit._renamed import renamed_function, renamed_method
from labkit.owners import claim, forget, held, holders  # the registry lives in owners; claim, held: re-exported

if TYPE_CHECKING:  # import cycles only at type-check time
    from labkit.events.stream import EventStream
    from labkit.lab import Lab
    from labkit.programs.compile import Program

__all__ = ["Attachment", "claim", "close_all", "detach_all", "held", "holders", "live_attachments", "release"]


def live_attachments() -> list["Attachment"]:
    """Every attachment alive in this process, whichever Lab made it."""
    return holders(Attachment)


def detach_all() -> None:
    """Detach every labkit attachment in this process, newest first."""
    for att in reversed(live_attachments()):
        try:
            att.detach()
        except Exception:
            pass


#: the old names, for one release (labkit._renamed)
close_all = renamed_function("close_all", detach_all)
release = renamed_function("release", forget)


class Attachment:
    """A program attached to a hook. ``detach()`` is safe to call twice; a
    detached handle refuses reuse."""

    kind = "attachment"

    def __init__(self, *, key: tuple, target: str, program: "Program", lab: "Lab | None", hook: str,
                 owns_program: bool = True):
        self.key = key
        self.target = target
        self.program = program
        self.hook = hook
        self._lab = weakref.ref(lab) if lab is not None else (lambda: None)
        self._owns_program = owns_program
        self.state = "attached"
        self._detaching = False
        self.stream: EventStream | None = None

    @property
    def attached(self) -> bool:
        return self.state == "attached"

    def detach(self, state: str = "detached") -> None:
        """Take the program off its hook and free what it owns (idempotent).
        ``state``: what it is afterwards ("detached"; the registry says
        "replaced" or "closed"). Its stream stops first."""
        if self.state != "attached" or self._detaching:
            return
        self._detaching = True      # the stream's stop calls detach again: nothing more to do there
        try:
            if self.stream is not None:
                self.stream.stop("stopped" if state == "detached" else state)
            self.detach_hook()
        finally:
            self.state = state
            forget(self)
            lab = self._lab()
            if lab is not None:
                lab.forget(self)     # a detached attachment is not kept: re-run cells do not pile up
            if self._owns_program:
                self.program.close()

    def detach_hook(self) -> None:
        """The kind's part of :meth:`detach`: take the program off its hook.
        Here: nothing, BCC's cleanup (program.close) removes its probes."""

    #: the old names, for one release (labkit._renamed)
    give_back = renamed_method("give_back", "detach")
    unhook = renamed_method("unhook", "detach_hook")

    def check_attached(self) -> None:
        if self.state != "attached":
            raise ClosedError(f"{self.kind} attachment {self.target} is {self.state}; attach it again")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def __repr__(self) -> str:
        return f"<labkit.{type(self).__name__} {self.program.name} on {self.hook}: {self.state}>"
