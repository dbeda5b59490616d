"""The old names of renamed methods and functions, kept for one release.

docs/ARCHITECTURE.md ("One word per act") says which word each act has. A name
that said the same act another way (``give_back``, ``halt``, ``unhook``,
``release``, ``close_all``, ...) still works for one release: it warns with a
DeprecationWarning that names its replacement, then does what it did. The
next release deletes this module and every ``renamed_*`` line.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

__all__ = ["renamed_function", "renamed_method", "warn_renamed"]


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """The DeprecationWarning of a renamed name: ``old`` is now ``new``."""
    warnings.warn(f"{old} is renamed {new} (docs/ARCHITECTURE.md, 'One word per act'); "
                  f"the old name goes in the next release", DeprecationWarning, stacklevel=stacklevel)


def renamed_method(old: str, new: str) -> Any:
    """A method ``old`` that warns and calls the method ``new`` of the same object
    (``give_back = renamed_method("give_back", "detach")``)."""

    def alias(self, *args, **kwargs):
        warn_renamed(f"{type(self).__name__}.{old}()", f"{new}()")
        return getattr(self, new)(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated (one release): the old name of :meth:`{new}`."
    return alias


def renamed_function(old: str, new: Callable) -> Callable:
    """A function ``old`` that warns and calls ``new`` (``close_all = renamed_function("close_all", detach_all)``)."""

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warn_renamed(f"{old}()", f"{new.__name__}()")
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated (one release): the old name of :func:`{new.__name__}`."
    return alias
