"""One module per lesson with exercises (``lesson01.py`` for
``notebooks/01-hello-clone.ipynb``): its checkers and a ``build()`` that makes
its :class:`~labkit.exercises.framework.Lesson`. A lesson is found by its
module's name (``lessonNN``): a new lesson is a new module, nothing to register.

They live in this subpackage, not next to the framework, because
``labkit.exercises.lesson01`` is the *Lesson* a notebook imports
(``from labkit.exercises import lesson01 as ex``); a module of that name in
``labkit/exercises/`` would take its place.
"""

from __future__ import annotations

import pkgutil
import re

__all__ = ["lesson_numbers"]

_MODULE = re.compile(r"lesson(\d\d)")


def lesson_numbers() -> list[str]:
    """The lessons with exercises ("00", "01", ...): the ``lessonNN`` modules of this package, found
    without importing them."""
    return sorted(m.group(1) for info in pkgutil.iter_modules(__path__) if (m := _MODULE.fullmatch(info.name)))
