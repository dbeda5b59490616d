"""Tracepoints: a function on a kernel tracepoint, ``category:event`` (``Lab.attach_tracepoint``).

Stable, documented hooks the kernel defines (``/sys/kernel/tracing/events``);
syscall entries and exits are tracepoints too (``syscalls:sys_enter_<name>``).
BCC attaches a ``TRACEPOINT_PROBE(category, event)`` by itself: ``Lab.load``
does it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, AttachError
from labkit.hooks.probe import ProbeHook, TraceAttachment, attach_probes, load_for
from labkit.hooks.protocol import register
from labkit.programs import hooks as kernel_hooks
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["HOOK", "TracepointHook"]


class TracepointHook(ProbeHook):
    name = "tracepoint"
    call = "attach_tracepoint"
    fits = ("tracepoint",)
    wants = ("a tracepoint program (TRACEPOINT_PROBE(category, event), or a function taking the tracepoint's "
             "argument struct or void *)")
    home = {"tracepoint": "Attach it with lab.attach_tracepoint(program, 'category:event') instead."}
    probe_kinds = ("tracepoint",)
    prog_type = "TRACEPOINT"

    def validate(self, program: Program | str, *, tracepoint: Any, fn: str | None = None,
                 name: str | None = None) -> dict:
        if not isinstance(tracepoint, str) or ":" not in tracepoint:
            raise ArgumentError(f"tracepoint must be 'category:event' (like 'sched:sched_process_exec'), "
                                f"got {tracepoint!r}")
        return {"tracepoint": tracepoint, "fn": fn, "name": name}

    def supported(self, options: dict) -> None:
        kernel_hooks.require_tracefs()
        cat, ev = options["tracepoint"].split(":", 1)
        if not kernel_hooks.tracepoint_exists(cat, ev):
            raise AttachError(f"no tracepoint {options['tracepoint']} on this kernel (see "
                              f"/sys/kernel/tracing/events/{cat}/)", target=options["tracepoint"])

    def make(self, lab: "Lab", program: Program | str, *, tracepoint: str, fn: str | None,
             name: str | None) -> TraceAttachment:
        prog, fn = load_for(lab, program, fn)
        key = ("tracepoint", tracepoint, name or f"{prog.name}:{fn}")
        return attach_probes(lab, prog, key, [("tracepoint", tracepoint, fn)], hook=f"tracepoint {tracepoint}")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.attach_tracepoint(tp=target.encode(), fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.detach_tracepoint(tp=target.encode())


HOOK = register(TracepointHook())
