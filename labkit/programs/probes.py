"""Attaching a loaded program's function to a perf-event hook, and taking it off.

The hooks BCC attaches through perf events and file descriptors it keeps:
tracepoints, raw tracepoints, kprobes and kretprobes, fentry/fexit (BCC calls
them kfunc/kretfunc) and BPF LSM. XDP is not here: it attaches to an interface
(labkit.net.xdp).

BCC's own convention — a function named ``tracepoint__<category>__<event>``
(what ``TRACEPOINT_PROBE(category, event)`` expands to), ``kprobe__<function>``,
``kretprobe__<function>``, ``raw_tracepoint__<event>``, ``kfunc__``,
``kretfunc__``, ``lsm__`` — names its hook. BCC attaches such functions by itself
the moment a program is compiled; labkit compiles with that turned off
(:func:`labkit.programs.compile.compile_c`) and attaches them instead, through
:func:`attach_probe`, as attachments a Lab owns: detached on close, replaced on
re-run, never attached twice.
"""

from __future__ import annotations

from typing import Callable

from labkit._errors import AttachError, NotSupportedError
from labkit.programs import hooks as _hooks
from labkit.programs.compile import Program, capture_fd2

__all__ = ["AUTOLOAD_PREFIXES", "KINDS", "Probe", "attach_probe", "autoload_probes", "detach_probe"]

Probe = tuple[str, str, str]  # (kind, target, function)

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
KINDS = tuple(kind for _, kind in AUTOLOAD_PREFIXES)


def autoload_probes(functions: list[str], syscall_fnname: Callable[[str], str] = lambda n: n) -> list[Probe]:
    """The (kind, target, function) BCC would attach by itself for these
    function names. ``syscall_fnname`` maps ``sys_clone`` to the kernel's
    symbol (``__x64_sys_clone``), as BCC does for kprobes."""
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


def _prog_type(bcc, kind: str) -> int | None:
    return {"tracepoint": bcc.BPF.TRACEPOINT, "raw_tracepoint": bcc.BPF.RAW_TRACEPOINT,
            "kprobe": bcc.BPF.KPROBE, "kretprobe": bcc.BPF.KPROBE}.get(kind)


def attach_probe(prog: Program, kind: str, target: str, fn: str) -> None:
    """Load ``fn`` (VerifierError if refused) and attach it to ``kind`` ``target``.
    Raises NotSupportedError where this kernel lacks the hook, AttachError otherwise."""
    import bcc  # lazy: BCC comes from the distro; labkit imports without it (doctor says why)

    if kind not in KINDS:
        raise AttachError(f"unknown hook kind {kind!r} (one of {', '.join(KINDS)})", target=target)
    if kind in ("kprobe", "kretprobe"):
        ok, why = _hooks.kprobes_available()
        if not ok:
            raise NotSupportedError(
                f"{fn} is a {kind} ({target}), and kprobes are not available on this kernel ({why}): "
                "write it as a tracepoint instead (TRACEPOINT_PROBE, lab.attach_tracepoint)", feature="kprobe")
    ptype = _prog_type(bcc, kind)
    if ptype is not None:
        prog.load(fn, ptype)
    bt, bf = target.encode(), fn.encode()
    with capture_fd2() as cap:
        try:
            if kind == "tracepoint":
                prog.bpf.attach_tracepoint(tp=bt, fn_name=bf)
            elif kind == "raw_tracepoint":
                prog.bpf.attach_raw_tracepoint(tp=bt, fn_name=bf)
            elif kind == "kprobe":
                prog.bpf.attach_kprobe(event=bt, fn_name=bf)
            elif kind == "kretprobe":
                prog.bpf.attach_kretprobe(event=bt, fn_name=bf)
            elif kind == "kfunc":
                prog.bpf.attach_kfunc(fn_name=bf)
            elif kind == "kretfunc":
                prog.bpf.attach_kretfunc(fn_name=bf)
            else:
                prog.bpf.attach_lsm(fn_name=bf)
            err = None
        except Exception as e:  # BCC raises a bare Exception
            err = e
    if err is None:
        return
    said = (cap[0].strip() if cap else "") or str(err)
    if kind in ("kfunc", "kretfunc", "lsm"):
        raise NotSupportedError(
            f"{fn} is a {kind} program ({target}) and this kernel would not attach it: {said}. "
            "Use a tracepoint or a kprobe instead (lesson 00's doctor lists the hooks that work here).",
            feature=kind) from None
    raise AttachError(f"attaching {fn} ({prog.name}) to {kind} {target} failed: {said}",
                      target=f"{kind}:{target}") from None


def detach_probe(prog: Program, kind: str, target: str, fn: str) -> None:
    """Take ``fn`` off its hook, leaving the program loaded (idempotent)."""
    if prog.closed:
        return  # closing the program took every probe off
    bt, bf = target.encode(), fn.encode()
    with capture_fd2():
        try:
            if kind == "tracepoint":
                prog.bpf.detach_tracepoint(tp=bt)
            elif kind == "raw_tracepoint":
                prog.bpf.detach_raw_tracepoint(tp=bt)
            elif kind == "kprobe":
                prog.bpf.detach_kprobe(event=bt, fn_name=bf)
            elif kind == "kretprobe":
                prog.bpf.detach_kretprobe(event=bt, fn_name=bf)
            elif kind == "kfunc":
                prog.bpf.detach_kfunc(fn_name=bf)
            elif kind == "kretfunc":
                prog.bpf.detach_kretfunc(fn_name=bf)
            elif kind == "lsm":
                prog.bpf.detach_lsm(fn_name=bf)
        except Exception:  # BCC says "not attached": already off
            pass
