"""Raw tracepoints: a function on a tracepoint's raw arguments (``RAW_TRACEPOINT_PROBE(event)``).

No argument struct and no copying: the function reads the tracepoint's
arguments as they are (``struct bpf_raw_tracepoint_args *``). BCC names such a
function ``raw_tracepoint__<event>``; ``Lab.load`` attaches it, there is no
attach call of its own.
"""

from __future__ import annotations

from labkit.hooks.probe import ProbeHook
from labkit.hooks.protocol import register
from labkit.programs.compile import Program

__all__ = ["HOOK", "RawTracepointHook"]


class RawTracepointHook(ProbeHook):
    name = "raw_tracepoint"
    fits = ("raw_tracepoint",)
    home = {"raw_tracepoint": "lab.load(program) attaches a RAW_TRACEPOINT_PROBE function by itself."}
    probe_kinds = ("raw_tracepoint",)
    prog_type = "RAW_TRACEPOINT"

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.attach_raw_tracepoint(tp=target.encode(), fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.detach_raw_tracepoint(tp=target.encode())


HOOK = register(RawTracepointHook())
