"""USDT: a function on a static probe compiled into a user-space program (``Lab.attach_usdt``).

``provider:probe`` (``python:function__entry``) of the running process
``pid``, or of the binary ``path``. BCC must know the probe when it compiles
the program (``bpf_usdt_readarg`` is generated for it), so the program is
compiled with that USDT context (``Lab.load(..., usdt=...)``); one compiled
without it is compiled again, with it. Probes guarded by a semaphore (Python's)
fire only for a pid: the semaphore is set in that process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, AttachError
from labkit.hooks.probe import ProbeHook, TraceAttachment, attach_probes
from labkit.hooks.protocol import register
from labkit.hooks.uprobe import check_pid
from labkit.programs.compile import Program, capture_fd2

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["HOOK", "UsdtHook"]


def _locations(prog: Program, target: str, fn: str) -> list[tuple[bytes, int, int]]:
    """(binary, address, pid) of every place the USDT probe ``target`` of the program's context calls ``fn``."""
    if prog.usdt is None:
        raise AttachError(f"{prog.name} was not compiled with a USDT context: load it with "
                          "lab.load(..., usdt=(pid_or_path, probe, fn))", target=f"usdt:{target}")
    return [(path, addr, pid) for path, name, addr, pid in prog.usdt.enumerate_active_probes()
            if name.decode() == fn]


class UsdtHook(ProbeHook):
    name = "usdt"
    call = "attach_usdt"
    fits = ("usdt", "uprobe", "kprobe")   # a kprobe-type program (struct pt_regs *)
    wants = "a USDT program (a function taking struct pt_regs *)"
    home = {"usdt": "Attach it with lab.attach_usdt(program, 'provider:probe', pid=...) instead."}
    probe_kinds = ("usdt",)
    prog_type = "KPROBE"   # USDT probes are uprobes: KPROBE-type programs

    def validate(self, program: Program | str, *, provider_probe: Any, fn: str | None = None, pid: Any = None,
                 path: Any = None, name: str | None = None) -> dict:
        if (pid is None) == (path is None):
            raise ArgumentError("attach_usdt needs pid= (a running process) or path= (a binary), one of them")
        if pid is not None:
            check_pid(pid)
        if isinstance(program, str) and not fn:
            raise ArgumentError("attach_usdt with C text or a snippet needs fn= (the function the probe calls)")
        return {"provider_probe": provider_probe, "fn": fn, "pid": pid, "path": path, "name": name}

    def make(self, lab: "Lab", program: Program | str, *, provider_probe: str, fn: str | None, pid: int | None,
             path: str | None, name: str | None) -> TraceAttachment:
        where = pid if pid is not None else path
        if isinstance(program, str):
            prog = lab.load(program, usdt=(where, provider_probe, fn))
        else:
            fn = program.function_name(fn)
            ctx = program.usdt
            if ctx is not None and (ctx.where, ctx.fn) == (where, fn) and \
                    provider_probe in (ctx.probe, ctx.probe.split(":", 1)[1]):
                prog = program
            else:  # made without this probe's context (a %%bpf cell, another pid): compiled again, with it
                prog = lab.load(program.source, cflags=program.cflags, name=program.name,
                                usdt=(where, provider_probe, fn))
        target = provider_probe + (f"[pid {where}]" if pid is not None else f"[{where}]")
        key = ("usdt", target, name or f"{prog.name}:{fn}")
        return attach_probes(lab, prog, key, [("usdt", target, fn)], hook=f"usdt {target}")

    def attach_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        """Load ``fn`` and attach it at every location of the probe (all or none)."""
        # lazy: BCC comes from the distro; labkit imports without it (doctor says why)
        import bcc

        prog.load_function(fn, bcc.BPF.KPROBE)
        spots = _locations(prog, target, fn)
        if not spots:
            raise AttachError(f"the USDT probe {target} of {prog.name} has no location calling {fn}",
                              target=f"usdt:{target}")
        done: list[tuple[bytes, int, int]] = []
        with capture_fd2() as cap:
            try:
                for path_b, addr, pid in spots:
                    prog.bpf.attach_uprobe(name=path_b, addr=addr, fn_name=fn.encode(), pid=pid)
                    done.append((path_b, addr, pid))
                err = None
            except Exception as e:  # BCC raises a bare Exception
                err = e
                for path_b, addr, pid in done:
                    prog.bpf.detach_uprobe(name=path_b, addr=addr, pid=pid)
        if err is not None:
            said = (cap[0].strip() if cap else "") or str(err)
            raise self.refused(prog, kind, target, fn, said) from None

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        for path_b, addr, pid in _locations(prog, target, fn):
            try:
                prog.bpf.detach_uprobe(name=path_b, addr=addr, pid=pid)
            except Exception:  # BCC says "not attached": already off
                pass


HOOK = register(UsdtHook())
