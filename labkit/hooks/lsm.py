"""BPF LSM: a function on a Linux Security Module hook (``LSM_PROBE(hook, ...)``).

Needs ``bpf`` in the kernel's active LSM list (Debian's stock kernel needs
``lsm=...,bpf`` on its command line). BCC names such a function ``lsm__<hook>``;
``Lab.load`` attaches it, and a refusal is a NotSupportedError.
"""

from __future__ import annotations

from labkit.hooks.probe import ProbeHook
from labkit.hooks.protocol import register
from labkit.programs.compile import Program

__all__ = ["HOOK", "LsmHook"]


class LsmHook(ProbeHook):
    name = "lsm"
    fits = ("lsm",)
    home = {"lsm": "lab.load(program) attaches an LSM_PROBE function by itself."}
    probe_kinds = ("lsm",)
    refused_means_unsupported = True

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.attach_lsm(fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.detach_lsm(fn_name=fn.encode())


HOOK = register(LsmHook())
