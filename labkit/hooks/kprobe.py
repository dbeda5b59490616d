"""kprobes and kretprobes: a function on a kernel function's entry or return (``Lab.attach_kprobe``).

Any kernel function, or a syscall's entry (``syscall="clone"``: the kernel's
symbol for it, ``__x64_sys_clone`` on x86-64); ``ret=True`` for the return.
Kernels built without CONFIG_KPROBES (the project's) have none: that is a
NotSupportedError before anything is loaded, which says to use a tracepoint.
BCC attaches ``kprobe__<fn>`` and ``kretprobe__<fn>`` by itself: ``Lab.load`` does it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, NotSupportedError
from labkit.hooks.probe import ProbeHook, TraceAttachment, attach_probes, load_for
from labkit.hooks.protocol import register
from labkit.programs import hooks as kernel_hooks
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["HOOK", "KprobeHook"]


class KprobeHook(ProbeHook):
    name = "kprobe"
    call = "attach_kprobe"
    fits = ("kprobe", "kretprobe")   # a kretprobe is a kprobe program: attach_kprobe(ret=True)
    wants = "a kprobe program (kprobe__<function>, or a function taking struct pt_regs *)"
    home = {"kprobe": "Attach it with lab.attach_kprobe(program, event=...) instead.",
            "kretprobe": "Attach it with lab.attach_kprobe(program, event=..., ret=True) instead."}
    probe_kinds = ("kprobe", "kretprobe")
    prog_type = "KPROBE"

    def validate(self, program: Program | str, *, event: Any = None, syscall: Any = None, fn: str | None = None,
                 ret: bool = False, name: str | None = None) -> dict:
        if (event is None) == (syscall is None):
            raise ArgumentError("attach_kprobe needs event= (a kernel function) or syscall= (a syscall name)")
        which, target = ("event", event) if syscall is None else ("syscall", syscall)
        if not isinstance(target, str) or not target.strip():
            raise ArgumentError(f"attach_kprobe's {which}= must be a name like 'kernel_clone' or 'clone', "
                                f"got {target!r}")
        return {"event": event, "syscall": syscall, "fn": fn, "ret": bool(ret), "name": name}

    def supported(self, options: dict) -> None:
        ok, why = kernel_hooks.kprobes_available()
        if not ok:
            raise NotSupportedError(
                f"kprobes are not available on this kernel ({why}); attach to a tracepoint instead "
                "(lab.attach_tracepoint, lab.trace_clone, lab.trace_syscall)", feature="kprobe")

    def make(self, lab: "Lab", program: Program | str, *, event: str | None, syscall: str | None, fn: str | None,
             ret: bool, name: str | None) -> TraceAttachment:
        prog, fn = load_for(lab, program, fn)
        if syscall is not None:
            event = prog.bpf.get_syscall_fnname(syscall.encode()).decode()
        kind = "kretprobe" if ret else "kprobe"
        key = (kind, event, name or f"{prog.name}:{fn}")
        return attach_probes(lab, prog, key, [(kind, event, fn)], hook=f"{kind} {event}")

    def check_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        ok, why = kernel_hooks.kprobes_available()
        if not ok:
            raise NotSupportedError(
                f"{fn} is a {kind} ({target}), and kprobes are not available on this kernel ({why}): "
                "write it as a tracepoint instead (TRACEPOINT_PROBE, lab.attach_tracepoint)", feature="kprobe")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        if kind == "kprobe":
            prog.bpf.attach_kprobe(event=target.encode(), fn_name=fn.encode())
        else:
            prog.bpf.attach_kretprobe(event=target.encode(), fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        if kind == "kprobe":
            prog.bpf.detach_kprobe(event=target.encode(), fn_name=fn.encode())
        else:
            prog.bpf.detach_kretprobe(event=target.encode(), fn_name=fn.encode())


HOOK = register(KprobeHook())
