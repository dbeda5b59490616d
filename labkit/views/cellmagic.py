"""``%%bpf``: write a BPF program as a notebook cell, not as a Python string.

    %%bpf count_calls
    BPF_ARRAY(calls, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { ... }

compiles the cell's C into a :class:`labkit.Program` named ``count_calls`` and
binds it to the variable ``count_calls``. Compile errors and verifier logs
name the cell (``count_calls:4:14: error: ...``) with the cell's own line
numbers, as JupyterLab counts them: line 1 is the ``%%bpf`` line, the first C
line is line 2. In the notebook such an error shows the compiler's or the
verifier's words only, without a Python traceback through labkit; it is still
an error (Run All stops there). Running the cell again first gives back the
program it made last time (and whatever that program had attached), so a
re-run never leaves two copies. BCC-style functions (``TRACEPOINT_PROBE``,
``kprobe__*``) are attached on load, as :meth:`labkit.Lab.load` does.

A cell that fails (it does not compile, the verifier refuses it, ...) leaves
no program under its name: ``count_calls`` is then a :class:`FailedCell` that
says so (``%%bpf count_calls did not compile: count_calls:4:14: error: ...``),
and an exercise's ``check(count_calls)`` answers that the cell did not
compile instead of grading the program an earlier run of the cell made.

``%%bpf --core NAME`` takes CO-RE C instead (``#include "vmlinux.h"``,
``SEC("tracepoint/...")``, ``BPF_CORE_READ``): clang compiles it and libbpf
loads it (:meth:`labkit.Lab.load_object`); ``NAME`` is then a
:class:`labkit.CoreObject` whose programs are attached where their ``SEC()``
says. Errors count lines in the cell the same way.

Options: ``--lab NAME`` (the Lab to load into; default: the notebook's ``lab``
variable if it is an open Lab, else a Lab of its own), ``-D NAME=VALUE``
(a define, repeatable).

The magic is registered when labkit is imported inside IPython (and by
``%load_ext labkit``).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from labkit._errors import ArgumentError, ClosedError, CompileError, LabkitError, VerifierError
from labkit.attach import live_attachments
from labkit.lab import Lab
from labkit.programs.compile import Program, first_error
from labkit.programs.core import CoreObject

__all__ = ["BpfCellMagic", "FailedCell", "cell_error_lines", "load_ipython_extension", "register"]

# The C goes to the compiler after one empty line that stands for the ``%%bpf``
# line, so clang's and the verifier's line numbers are the cell's own.
_MAGIC_LINE = "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%bpf", add_help=False, exit_on_error=False)
    p.add_argument("name")
    p.add_argument("--lab", default=None)
    p.add_argument("-D", dest="defines", action="append", default=[])
    p.add_argument("--core", action="store_true")
    return p


class FailedCell:
    """What ``NAME`` holds after a ``%%bpf NAME`` cell failed: no program, only
    why. Its repr says so (``%%bpf NAME did not compile: NAME:3:5: error: ...``);
    ``error`` is the exception the cell raised. Used as a program it raises
    with the same words, and an exercise's ``check()`` answers "incorrect:
    the cell did not compile" without grading anything."""

    def __init__(self, name: str, error: BaseException):
        self.name = name
        self.error = error

    @property
    def failure(self) -> str:
        """What became of the cell: "did not compile", "did not load" (the verifier refused it), "failed"."""
        if isinstance(self.error, CompileError):
            return "did not compile"
        if isinstance(self.error, VerifierError):
            return "did not load"
        return "failed"

    @property
    def first_line(self) -> str:
        """The error's first line (clang's first error, the verifier's cause, ...)."""
        e = self.error
        if isinstance(e, CompileError) and e.diagnostics:
            return first_error(e.diagnostics)
        text = str(e).strip()
        line = text.splitlines()[0] if text else ""
        if isinstance(e, (CompileError, VerifierError)):
            return line
        return f"{type(e).__name__}: {line}" if line else type(e).__name__

    def verdict(self) -> str:
        """What a check says about it."""
        return (f"the %%bpf {self.name} cell {self.failure}, so there is no program {self.name} to check "
                f"({self.first_line}). Fix the cell and run it again, then run this check again.")

    def __repr__(self) -> str:
        return f"%%bpf {self.name} {self.failure}: {self.first_line}"

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise AttributeError(f"{self!r} — there is no program {self.name} (.{attr}): fix the cell and run it again")

    def __getitem__(self, key):
        raise LabkitError(f"{self!r} — there is no program {self.name} to read {key!r} from: "
                          "fix the cell and run it again")


def cell_error_lines(error: BaseException, name: str | None = None) -> list[str]:
    """How a failed ``%%bpf NAME`` cell shows ``error`` in the notebook: the
    error's type and its own words (clang's diagnostics, the verifier's cause
    and the log's last lines), no Python traceback."""
    text = str(error).rstrip()
    if isinstance(error, CompileError) and error.diagnostics and text.endswith(error.diagnostics.rstrip()):
        head = text.splitlines()[0]
        diags = error.diagnostics.rstrip().splitlines()
        if diags and head.endswith(diags[0]):   # the message quotes clang's first line: once is enough
            diags = diags[1:]
        lines = [f"{type(error).__name__}: {head}", *diags]
    else:
        lines = f"{type(error).__name__}: {text}".splitlines()
    if isinstance(error, VerifierError) and error.log:
        lines.append(f"(the whole verifier log: {name + '.error.log' if name else 'sys.last_value.log'})")
    return lines


class BpfCellMagic:
    """The state behind ``%%bpf``: the program each cell name made last."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.programs: dict[str, Program | CoreObject] = {}
        self.failure: FailedCell | None = None  # what the last cell left when it failed (else None)
        self._own_lab: Lab | None = None

    def _lab(self, name: str | None) -> Lab:
        ns = self.shell.user_ns
        if name is not None:
            lab = ns.get(name)
            if not isinstance(lab, Lab):
                raise ArgumentError(f"%%bpf --lab {name}: there is no labkit.Lab called {name!r} in this notebook")
            if lab.closed:
                raise ClosedError(f"%%bpf --lab {name}: that Lab is closed; make a new one with labkit.Lab()")
            return lab
        lab = ns.get("lab")
        if isinstance(lab, Lab) and not lab.closed:
            return lab
        if self._own_lab is None or self._own_lab.closed:
            self._own_lab = Lab()
        return self._own_lab

    def __call__(self, line: str, cell: str) -> Program | CoreObject:
        try:
            args = _parser().parse_args(shlex.split(line))
        except (argparse.ArgumentError, SystemExit, ValueError):
            raise ArgumentError("usage: %%bpf NAME [--core] [--lab LAB] [-D NAME=VALUE ...] — NAME becomes the "
                                "program's variable, e.g. %%bpf count_calls") from None
        if not args.name.isidentifier():
            raise ArgumentError(f"%%bpf {args.name}: the name must be a Python identifier (it becomes a variable)")
        self.failure = None
        try:
            prog = self._make(args, cell)
        except BaseException as e:
            # whatever the name held before is gone: never leave an older program under it
            self.failure = self.shell.user_ns[args.name] = FailedCell(args.name, e)
            raise
        self.programs[args.name] = prog
        self.shell.user_ns[args.name] = prog
        return prog

    def _close_old(self, name: str) -> None:
        old = self.programs.pop(name, None)
        if isinstance(old, CoreObject):
            old.close("replaced")
        elif old is not None:
            for att in live_attachments():
                if att.program is old:
                    att.detach()
            old.close()

    def _make(self, args: argparse.Namespace, cell: str) -> Program | CoreObject:
        self._close_old(args.name)
        defines = {}
        for d in args.defines:
            key, sep, value = d.partition("=")
            defines[key] = value if sep else 1
        if not cell.strip():
            raise ArgumentError(f"%%bpf {args.name}: the cell has no C in it")
        if args.core and defines:
            raise ArgumentError(f"%%bpf --core {args.name}: -D is for BCC programs; write #define lines in the cell")
        lab = self._lab(args.lab)
        if args.core:
            return lab.load_object(_MAGIC_LINE + cell, name=args.name)
        return lab.load(_MAGIC_LINE + cell, defines=defines, name=args.name)


def register(shell: Any) -> BpfCellMagic:
    """Register ``%%bpf`` with an IPython shell (idempotent)."""
    existing = getattr(shell, "_labkit_bpf_magic", None)
    if existing is not None:
        return existing
    magic = BpfCellMagic(shell)

    def bpf(line: str, cell: str) -> None:
        try:
            prog = magic(line, cell)
        except LabkitError as e:
            # IPython shows an exception that renders its own traceback as just that
            # (and the cell still fails: the kernel replies "error", Run All stops):
            # the compiler's words, not ~40 lines of labkit's frames above them
            failed = magic.failure
            name = failed.name if failed is not None and failed.error is e else None
            e._render_traceback_ = lambda err=e, name=name: cell_error_lines(err, name)
            raise
        if isinstance(prog, CoreObject):
            progs = [f"{p.name} on {p.section}" if p.attached else p.name for p in prog.programs.values()]
            print(f"{prog.name}: compiled by clang, loaded by libbpf (CO-RE); programs: {', '.join(progs) or 'none'}; "
                  f"maps: {', '.join(prog.maps) or 'none'}")
            return
        hooks = [a.hook for a in prog.auto_attachments]
        print(f"{prog.name}: compiled; functions: {', '.join(prog.functions) or 'none'}"
              + (f"; attached: {', '.join(hooks)}" if hooks else ""))

    bpf.__doc__ = __doc__
    shell.register_magic_function(bpf, magic_kind="cell", magic_name="bpf")
    shell._labkit_bpf_magic = magic
    return magic


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext labkit``."""
    register(shell)
