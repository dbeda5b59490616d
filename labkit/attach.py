"""Attachment, the handle every hook kind returns, and the one process-wide registry that owns them.

Everything labkit hands out that holds kernel or display state — a program on
a hook, a live panel — is registered here under a key. Claiming a key that is
already held gives the old holder back first ("replaced"), so re-running a
notebook cell never leaves two copies firing, whichever Lab or view made the
first. At interpreter exit everything still registered is given back, newest
first (a panel before the stream it shows).

Holders implement ``give_back(state)``: take the state off the kernel (or the
screen), idempotently, and call :func:`release`.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from labkit._errors import ClosedError

if TYPE_CHECKING:  # import cycles only at type-check time
    from labkit.events.stream import EventStream
    from labkit.lab import Lab
    from labkit.programs.compile import Program

__all__ = ["Attachment", "claim", "close_all", "holders", "live_attachments", "release"]


class Holder(Protocol):
    key: tuple

    def give_back(self, state: str) -> None: ...


_lock = threading.RLock()
_held: dict[tuple, Holder] = {}


def claim(holder: Holder) -> None:
    """Register ``holder`` under ``holder.key``; whatever held the key before is given back ("replaced")."""
    with _lock:
        old = _held.get(holder.key)
        _held[holder.key] = holder
    if old is not None and old is not holder:
        old.give_back("replaced")
        with _lock:  # the old holder's release must not take the key back
            _held[holder.key] = holder


def release(holder: Holder) -> None:
    """Forget ``holder`` if it still holds its key."""
    with _lock:
        if _held.get(holder.key) is holder:
            del _held[holder.key]


def holders(kind: type | None = None) -> list[Any]:
    """Everything registered in this process (of one type, if given), oldest first."""
    with _lock:
        found = list(_held.values())
    return [h for h in found if kind is None or isinstance(h, kind)]


def held(key: tuple) -> Any | None:
    with _lock:
        return _held.get(key)


def live_attachments() -> list["Attachment"]:
    """Every attachment alive in this process, whichever Lab made it."""
    return holders(Attachment)


def close_all() -> None:
    """Detach every labkit attachment in this process."""
    for att in reversed(live_attachments()):
        try:
            att.detach()
        except Exception:
            pass


@atexit.register
def _give_back_all_at_exit() -> None:
    for h in reversed(holders()):
        try:
            h.give_back("closed")
        except Exception:
            pass


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
        self.stream: EventStream | None = None

    @property
    def attached(self) -> bool:
        return self.state == "attached"

    def detach(self) -> None:
        """Take the program off its hook and free what it held (idempotent)."""
        self.give_back("detached")

    def give_back(self, state: str) -> None:
        """Detach, ending in ``state`` ("detached", "replaced", "closed"); idempotent."""
        if self.state != "attached":
            return
        if self.stream is not None:
            self.stream.halt("stopped" if state == "detached" else state)
        try:
            self.unhook()
        finally:
            self.state = state
            release(self)
            lab = self._lab()
            if lab is not None:
                lab.forget(self)     # a given-back attachment is not kept: re-run cells do not pile up
            if self._owns_program:
                self.program.close()

    def unhook(self) -> None:
        """Take the program off its hook. Here: nothing, BCC's cleanup (program.close) removes its probes."""

    def check_attached(self) -> None:
        if self.state != "attached":
            raise ClosedError(f"{self.kind} attachment {self.target} is {self.state}; attach it again")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def __repr__(self) -> str:
        return f"<labkit.{type(self).__name__} {self.program.name} on {self.hook}: {self.state}>"
