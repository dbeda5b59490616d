"""labkit's exceptions.

    LabkitError                      base of everything labkit raises
    ├── CompileError                 clang rejected the C (.diagnostics, .source)
    ├── VerifierError                the kernel verifier rejected a program (.log)
    ├── PrivilegeError               a capability is missing (.missing); also PermissionError
    ├── AttachError                  a hook or interface refused (.target, .errno)
    │   └── ProgramKindError         the program's kind does not fit the attach call (.kind, .call)
    ├── ArgumentError                a bad argument (type, range, unknown name); also ValueError
    ├── NotSupportedError            this kernel or machine lacks a feature (.feature)
    ├── ClosedError                  a handle used after it was closed, detached or replaced
    ├── BusyError                    a machine-wide file only one process may hold is held (.holders)
    └── SandboxError                 building or using a network sandbox failed

One class per kind of mistake, whatever part of labkit finds it:

* the call is wrong on any machine (a wrong type, a number out of range, an
  unknown choice, a missing or contradictory argument, a name labkit looks up
  and cannot find: a snippet, a program's function or map, a library, a
  symbol, a sandbox id) — ArgumentError, raised before the kernel is touched;
* the call is right but this kernel or machine lacks what it asks for (kprobes,
  tcx, perf events, libbpf, tracefs, a syscall it has no tracepoint for, a tool
  like tc or ping) — NotSupportedError, naming the feature;
* the call is right and supported, but the target of an attach is not there (a
  tracepoint, an interface, a namespace), is taken (a slot, a foreign
  program), is refused by the guard of an interface the lab stands on, or the
  kernel refused the attach — AttachError, naming the target;
* a Lab, a Program, an attachment, a panel, a Sandbox or a CO-RE object used
  after it was given back — ClosedError, which says how to get a new one;
* a machine-wide file that one process at a time may read (the trace_pipe,
  on newer kernels) stayed held by another process — BusyError, naming it;
* missing root or capabilities — PrivilegeError; what clang and the verifier
  say — CompileError and VerifierError; a sandbox that cannot be built or used
  — SandboxError.

Every message names the thing that failed and says what to do. In a notebook the
exceptions render with their detail (``_repr_html_``), because the useful part
(clang's text, the verifier log) never reaches the cell through BCC alone.
"""

from __future__ import annotations

import html

__all__ = [
    "ArgumentError",
    "AttachError",
    "BusyError",
    "ClosedError",
    "CompileError",
    "LabkitError",
    "NotSupportedError",
    "PrivilegeError",
    "ProgramKindError",
    "SandboxError",
    "VerifierError",
]


class LabkitError(Exception):
    """Base class of every error labkit raises."""

    detail: str = ""

    def _repr_html_(self) -> str:  # pragma: no cover - rendering only
        head = html.escape(f"{type(self).__name__}: {self.args[0] if self.args else ''}")
        body = html.escape(self.detail) if self.detail else ""
        pre = f"<pre style='white-space:pre-wrap'>{body}</pre>" if body else ""
        return f"<div style='border-left:4px solid #c33;padding:4px 8px'><b>{head}</b>{pre}</div>"


class CompileError(LabkitError):
    """clang refused the program. ``diagnostics`` holds clang's text with line
    numbers that point into the snippet as written."""

    def __init__(self, message: str, *, diagnostics: str = "", source: str = "", name: str = ""):
        full = message if not diagnostics else f"{message}\n{diagnostics}"
        super().__init__(full)
        self.diagnostics = diagnostics
        self.source = source
        self.name = name
        self.detail = ""


class VerifierError(LabkitError):
    """The kernel's verifier rejected a program. ``log`` holds the whole verifier
    log; the message holds the program name, the cause and the log's last lines."""

    def __init__(self, message: str, *, log: str = "", program: str = ""):
        super().__init__(message)
        self.log = log
        self.program = program
        self.detail = log


class PrivilegeError(LabkitError, PermissionError):
    """The process lacks a privilege (root or a capability) that BPF needs."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()):
        super().__init__(message)
        self.missing = tuple(missing)


class AttachError(LabkitError):
    """Attaching to a hook or an interface failed."""

    def __init__(self, message: str, *, target: str = "", errno: int | None = None):
        super().__init__(message)
        self.target = target
        self.errno = errno


class ProgramKindError(AttachError):
    """A program of one kind was given to an attach call for another (a
    tracepoint program to ``attach_xdp``). ``kind`` is the program's kind,
    ``call`` the attach call; the message says how each was decided."""

    def __init__(self, message: str, *, target: str = "", kind: str = "", call: str = ""):
        super().__init__(message, target=target)
        self.kind = kind
        self.call = call


class ArgumentError(LabkitError, ValueError):
    """An argument labkit refuses before touching the kernel: the wrong type, a
    number out of range, a name that does not exist.
    Also a ValueError, so ``except ValueError`` keeps working."""


class NotSupportedError(LabkitError):
    """This kernel (or machine) lacks a feature labkit needs for the request."""

    def __init__(self, message: str, *, feature: str = ""):
        super().__init__(message)
        self.feature = feature


class ClosedError(LabkitError):
    """A handle used after it was given back: a closed Lab, Program, Sandbox,
    panel or CO-RE object, a detached or replaced attachment. The message says
    how to get a new one."""


class BusyError(LabkitError):
    """A machine-wide file that only one process may hold open at a time (the
    kernel's trace_pipe, on newer kernels) stayed held by another process for
    as long as labkit waited. ``holders`` lists ``(pid, command line)`` of the
    processes that held it when labkit gave up; the message says what to do."""

    def __init__(self, message: str, *, holders: tuple[tuple[int, str], ...] = ()):
        super().__init__(message)
        self.holders = tuple(holders)


class SandboxError(LabkitError):
    """Building, using or removing a network sandbox failed."""
