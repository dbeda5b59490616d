"""BCC's naming convention for the functions it attaches by itself.

A function named ``tracepoint__<category>__<event>`` (what
``TRACEPOINT_PROBE(category, event)`` expands to), ``kprobe__<function>``,
``kretprobe__<function>``, ``raw_tracepoint__<event>``, ``kfunc__``,
``kretfunc__`` or ``lsm__`` names its hook. BCC attaches such functions the
moment a program is compiled; labkit compiles with that turned off
(:func:`labkit.programs.compile.compile_c`) and ``Lab.load`` attaches them
instead, through their hook kinds (labkit.hooks), as attachments the Lab owns:
detached on close, replaced on re-run, never attached twice.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["AUTOLOAD_PREFIXES", "Probe", "autoload_probes"]

Probe = tuple[str, str, str]  # (kind, target, function): one function on one hook

# BCC's function-name prefixes, in the order BCC's _trace_autoload tests them
AUTOLOAD_PREFIXES = (
    ("kprobe__", "kprobe"),
    ("kretprobe__", "kretprobe"),
    ("tracepoint__", "tracepoint"),
    ("raw_tracepoint__", "raw_tracepoint"),
    ("kfunc__", "kfunc"),
    ("kretfunc__", "kretfunc"),
    ("lsm__", "lsm"),
)


def autoload_probes(functions: list[str], syscall_fnname: Callable[[str], str] = lambda n: n) -> list[Probe]:
    """The (kind, target, function) BCC would attach by itself for these
    function names. ``syscall_fnname`` maps ``sys_clone`` to the kernel's
    symbol (``__x64_sys_clone``, ``__arm64_sys_clone``), as BCC does for kprobes."""
    out: list[Probe] = []
    for fn in functions:
        for prefix, kind in AUTOLOAD_PREFIXES:
            if not fn.startswith(prefix):
                continue
            rest = fn[len(prefix):]
            if kind in ("kprobe", "kretprobe"):
                target = syscall_fnname(rest)
            elif kind == "tracepoint":
                target = rest.replace("__", ":")
            else:
                target = rest
            out.append((kind, target, fn))
            break
    return out
