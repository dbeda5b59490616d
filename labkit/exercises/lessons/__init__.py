"""One module per lesson with exercises (``lesson01.py`` for
``notebooks/01-hello-clone.ipynb``): its checkers and a ``build()`` that makes
its :class:`~labkit.exercises.framework.Lesson`.

They live in this subpackage, not next to the framework, because
``labkit.exercises.lesson01`` is the *Lesson* a notebook imports
(``from labkit.exercises import lesson01 as ex``); a module of that name in
``labkit/exercises/`` would take its place.
"""

__all__ = ["lesson00", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07", "lesson08",
           "lesson09", "lesson10"]
