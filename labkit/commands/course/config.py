"""The nbgrader configuration of a labkit course: nbgrader's own pipeline with
labkit's two preprocessors swapped in. One function, used by ``labkit course``
and by the course's ``nbgrader_config.py`` (so ``nbgrader ...`` run by hand in
the course directory behaves the same)."""

from __future__ import annotations

from pathlib import Path

from nbgrader.converters import Autograde, GenerateAssignment
from nbgrader.preprocessors import ClearSolutions, Execute
from traitlets.config import Config

from labkit.commands.course.preprocessors import ClearToStarter, GradeExecute

__all__ = ["CONFIG_FILE", "DEFAULT_CELL_TIMEOUT", "apply", "course_config"]

DEFAULT_CELL_TIMEOUT = 120   # seconds per cell while autograding (a loop that never ends is cut there)
CONFIG_FILE = '''\
# nbgrader configuration of a labkit course (written by `labkit course create`).
# labkit's preprocessors: solution regions cleared to the lesson's starter, and a
# real-kernel Execute that grades a dead kernel on what ran and gives back what
# each submission left. Run `nbgrader ...` here as root, or `labkit course ...`.
# Grading settings (weights, gates, rounding, the integrity rule, due dates): labkit.toml, beside this file.
from labkit.commands.course.config import apply

c = get_config()  # noqa: F821 (traitlets defines it)
apply(c, timeout={timeout})
'''


def _default(cls, name: str) -> list:
    return list(cls.class_traits()[name].default())


def apply(c: Config, *, timeout: int = DEFAULT_CELL_TIMEOUT, root: Path | None = None) -> Config:
    """Set labkit's course configuration on ``c`` (and return it)."""
    if root is not None:
        c.CourseDirectory.root = str(Path(root).resolve())
        c.GradeExecute.course_root = str(Path(root).resolve())   # its labkit.toml (else: the gradebook's directory)
    c.GenerateAssignment.preprocessors = [ClearToStarter if p is ClearSolutions else p
                                          for p in _default(GenerateAssignment, "preprocessors")]
    c.Autograde.autograde_preprocessors = [GradeExecute if p is Execute else p
                                           for p in _default(Autograde, "autograde_preprocessors")]
    c.Execute.timeout = int(timeout)
    c.Execute.interrupt_on_timeout = True
    c.Execute.startup_timeout = 120
    return c


def course_config(root: Path, *, timeout: int = DEFAULT_CELL_TIMEOUT) -> Config:
    """A fresh nbgrader Config for the course at ``root``."""
    return apply(Config(), timeout=timeout, root=root)
