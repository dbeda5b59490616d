"""fentry and fexit (BCC: kfunc, kretfunc): a function on a kernel function's entry or return, through BTF.

Cheaper than a kprobe and typed (the arguments come as the function's own
types), but not every kernel allows it: on the project's kernel the load fails
with EPERM even as root. BCC names such functions ``kfunc__<fn>`` and
``kretfunc__<fn>`` (``KFUNC_PROBE``, ``KRETFUNC_PROBE``); ``Lab.load`` attaches
them, and a refusal is a NotSupportedError that says what to use instead.
"""

from __future__ import annotations

from labkit.hooks.probe import ProbeHook
from labkit.hooks.protocol import register
from labkit.programs.compile import Program

__all__ = ["FentryHook", "HOOK"]


class FentryHook(ProbeHook):
    name = "fentry"
    fits = ("kfunc", "kretfunc")
    home = {"kfunc": "lab.load(program) attaches a KFUNC_PROBE function by itself.",
            "kretfunc": "lab.load(program) attaches a KRETFUNC_PROBE function by itself."}
    probe_kinds = ("kfunc", "kretfunc")
    refused_means_unsupported = True

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        if kind == "kfunc":
            prog.bpf.attach_kfunc(fn_name=fn.encode())
        else:
            prog.bpf.attach_kretfunc(fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        if kind == "kfunc":
            prog.bpf.detach_kfunc(fn_name=fn.encode())
        else:
            prog.bpf.detach_kretfunc(fn_name=fn.encode())


HOOK = register(FentryHook())
