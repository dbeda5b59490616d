"""``%%bpf``: write a BPF program as a notebook cell, not as a Python string.

    %%bpf count_calls
    BPF_ARRAY(calls, u64, 1);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { ... }

compiles the cell's C into a :class:`labkit.Program` named ``count_calls`` and
binds it to the variable ``count_calls``. Compile errors and verifier logs
name the cell (``count_calls:4:14: error: ...``) with line numbers counted in
the cell. Running the cell again first gives back the program it made last
time (and whatever that program had attached), so a re-run never leaves two
copies. BCC-style functions (``TRACEPOINT_PROBE``, ``kprobe__*``) are attached
on load, as :meth:`labkit.Lab.load` does.

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

from labkit._errors import LabkitError
from labkit.attach import live_attachments
from labkit.lab import Lab
from labkit.programs.compile import Program
from labkit.programs.core import CoreObject

__all__ = ["BpfCellMagic", "load_ipython_extension", "register"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%%bpf", add_help=False, exit_on_error=False)
    p.add_argument("name")
    p.add_argument("--lab", default=None)
    p.add_argument("-D", dest="defines", action="append", default=[])
    p.add_argument("--core", action="store_true")
    return p


class BpfCellMagic:
    """The state behind ``%%bpf``: the program each cell name made last."""

    def __init__(self, shell: Any):
        self.shell = shell
        self.programs: dict[str, Program | CoreObject] = {}
        self._own_lab: Lab | None = None

    def _lab(self, name: str | None) -> Lab:
        ns = self.shell.user_ns
        if name is not None:
            lab = ns.get(name)
            if not isinstance(lab, Lab):
                raise LabkitError(f"%%bpf --lab {name}: there is no labkit.Lab called {name!r} in this notebook")
            if lab.closed:
                raise LabkitError(f"%%bpf --lab {name}: that Lab is closed; make a new one with labkit.Lab()")
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
        except (argparse.ArgumentError, SystemExit):
            raise LabkitError("usage: %%bpf NAME [--core] [--lab LAB] [-D NAME=VALUE ...] — NAME becomes the program's "
                              "variable, e.g. %%bpf count_calls") from None
        if not args.name.isidentifier():
            raise LabkitError(f"%%bpf {args.name}: the name must be a Python identifier (it becomes a variable)")
        defines = {}
        for d in args.defines:
            key, sep, value = d.partition("=")
            defines[key] = value if sep else 1
        if not cell.strip():
            raise LabkitError(f"%%bpf {args.name}: the cell has no C in it")
        if args.core and defines:
            raise LabkitError(f"%%bpf --core {args.name}: -D is for BCC programs; write #define lines in the cell")
        old = self.programs.pop(args.name, None)
        if isinstance(old, CoreObject):
            old.give_back("replaced")
        elif old is not None:
            for att in live_attachments():
                if att.program is old:
                    att.detach()
            old.close()
        if args.core:
            prog: Program | CoreObject = self._lab(args.lab).load_object(cell, name=args.name)
        else:
            prog = self._lab(args.lab).load(cell, defines=defines, name=args.name)
        self.programs[args.name] = prog
        self.shell.user_ns[args.name] = prog
        return prog


def register(shell: Any) -> BpfCellMagic:
    """Register ``%%bpf`` with an IPython shell (idempotent)."""
    existing = getattr(shell, "_labkit_bpf_magic", None)
    if existing is not None:
        return existing
    magic = BpfCellMagic(shell)

    def bpf(line: str, cell: str) -> None:
        prog = magic(line, cell)
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
