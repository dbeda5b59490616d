"""Attaching a loaded program's function to a perf-event hook, and taking it off.

The hooks BCC attaches through perf events and file descriptors it keeps:
tracepoints, raw tracepoints, kprobes and kretprobes, fentry/fexit (BCC calls
them kfunc/kretfunc), BPF LSM, and in user space uprobes, uretprobes and USDT
probes. XDP is not here: it attaches to an interface (labkit.net.xdp).

A user-space hook's target is one string, made by :func:`uprobe_target`
(``/path/to/lib.so:symbol`` or ``...:symbol[pid N]``) or, for USDT,
``provider:probe`` of the USDT context the program was compiled with
(``Program.usdt``, see :func:`labkit.programs.compile.compile_c`).

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

import difflib
import re
from typing import Callable

from labkit._errors import ArgumentError, AttachError, NotSupportedError
from labkit.programs import hooks as _hooks
from labkit.programs.compile import Program, capture_fd2

__all__ = [
    "AUTOLOAD_PREFIXES",
    "KINDS",
    "Probe",
    "USER_KINDS",
    "attach_probe",
    "autoload_probes",
    "detach_probe",
    "parse_uprobe_target",
    "resolve_binary",
    "uprobe_target",
]

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
USER_KINDS = ("uprobe", "uretprobe", "usdt")  # user-space hooks: attached by name, never autoloaded
KINDS = tuple(kind for _, kind in AUTOLOAD_PREFIXES) + USER_KINDS
_UPROBE_TARGET = re.compile(r"^(?P<path>.+):(?P<symbol>[^:\[\]]+?)(?:\[pid (?P<pid>\d+)\])?$")


def uprobe_target(path: str, symbol: str, pid: int | None = None) -> str:
    """The one-string target of a uprobe: ``path:symbol``, with ``[pid N]`` when
    it fires only in process N."""
    return f"{path}:{symbol}" + (f"[pid {pid}]" if pid else "")


def parse_uprobe_target(target: str) -> tuple[str, str, int]:
    """(path, symbol, pid) of a :func:`uprobe_target` string; pid -1 means every process (BCC's way)."""
    m = _UPROBE_TARGET.match(target)
    if not m:
        raise AttachError(f"a uprobe target is 'path:symbol', got {target!r}", target=target)
    return m.group("path"), m.group("symbol"), int(m.group("pid") or -1)


def resolve_binary(binary_or_library: str, symbol: str) -> str:
    """The file a uprobe goes into: a path as given, or a library found the way
    the dynamic linker finds it ("c" or "libc.so.6" -> /lib/.../libc.so.6), and
    check that it defines ``symbol``. An ArgumentError names close matches."""
    import bcc  # lazy: BCC comes from the distro; labkit imports without it (doctor says why)

    if not isinstance(binary_or_library, str) or not binary_or_library:
        raise ArgumentError(f"attach_uprobe needs a binary path or a library name (like 'c'), got {binary_or_library!r}")
    if not isinstance(symbol, str) or not symbol.isidentifier():
        raise ArgumentError(f"attach_uprobe needs a function name (a C identifier), got {symbol!r}")
    name = binary_or_library
    if "/" in name:
        path = name
    else:
        short = name[3:] if name.startswith("lib") else name
        short = short.split(".so", 1)[0]
        found = bcc.BPF.find_library(short.encode()) or bcc.BPF.find_library(name.encode())
        if not found:
            raise ArgumentError(f"no library {name!r} known to the dynamic linker (ldconfig -p lists them; "
                              "a library name is like 'c' or 'libc.so.6', a binary is a full path)")
        path = found.decode()
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                raise ArgumentError(f"{path} is not an ELF binary or library: a uprobe goes into compiled code")
    except OSError as e:
        raise ArgumentError(f"cannot read {path}: {e.strerror}") from None
    names = {n.decode(errors="replace") for n, _ in bcc.BPF.get_user_functions_and_addresses(path.encode(), b".*")}
    if symbol not in names:
        close = difflib.get_close_matches(symbol, sorted(names), n=5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ArgumentError(f"{path} has no function {symbol!r}.{hint}")
    return path


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
    if kind in USER_KINDS:
        _attach_user(prog, kind, target, fn)
        return
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


def _usdt_locations(prog: Program, target: str, fn: str) -> list[tuple[bytes, int, int]]:
    """(binary, address, pid) of every place the USDT probe ``target`` of the program's context calls ``fn``."""
    if prog.usdt is None:
        raise AttachError(f"{prog.name} was not compiled with a USDT context: load it with "
                          "lab.load(..., usdt=(pid_or_path, probe, fn))", target=f"usdt:{target}")
    return [(path, addr, pid) for path, name, addr, pid in prog.usdt.enumerate_active_probes()
            if name.decode() == fn]


def _attach_user(prog: Program, kind: str, target: str, fn: str) -> None:
    """uprobe, uretprobe (one ``path:symbol`` target) or USDT (every location of the probe)."""
    import bcc  # lazy: see attach_probe

    prog.load(fn, bcc.BPF.KPROBE)  # uprobes run KPROBE-type programs; a VerifierError says why not
    if kind == "usdt":
        spots = _usdt_locations(prog, target, fn)
        if not spots:
            raise AttachError(f"the USDT probe {target} of {prog.name} has no location calling {fn}",
                              target=f"usdt:{target}")
    else:
        path, symbol, pid = parse_uprobe_target(target)
    done: list[tuple[bytes, int, int]] = []
    with capture_fd2() as cap:
        try:
            if kind == "usdt":
                for path_b, addr, pid in spots:
                    prog.bpf.attach_uprobe(name=path_b, addr=addr, fn_name=fn.encode(), pid=pid)
                    done.append((path_b, addr, pid))
            elif kind == "uprobe":
                prog.bpf.attach_uprobe(name=path.encode(), sym=symbol.encode(), fn_name=fn.encode(), pid=pid)
            else:
                prog.bpf.attach_uretprobe(name=path.encode(), sym=symbol.encode(), fn_name=fn.encode(), pid=pid)
            err = None
        except Exception as e:  # BCC raises a bare Exception
            err = e
            for path_b, addr, pid in done:
                prog.bpf.detach_uprobe(name=path_b, addr=addr, pid=pid)
    if err is not None:
        said = (cap[0].strip() if cap else "") or str(err)
        raise AttachError(f"attaching {fn} ({prog.name}) to {kind} {target} failed: {said}",
                          target=f"{kind}:{target}") from None


def _detach_user(prog: Program, kind: str, target: str, fn: str) -> None:
    if kind == "usdt":
        for path_b, addr, pid in _usdt_locations(prog, target, fn):
            try:
                prog.bpf.detach_uprobe(name=path_b, addr=addr, pid=pid)
            except Exception:  # BCC says "not attached": already off
                pass
        return
    path, symbol, pid = parse_uprobe_target(target)
    if kind == "uprobe":
        prog.bpf.detach_uprobe(name=path.encode(), sym=symbol.encode(), pid=pid)
    else:
        prog.bpf.detach_uretprobe(name=path.encode(), sym=symbol.encode(), pid=pid)


def detach_probe(prog: Program, kind: str, target: str, fn: str) -> None:
    """Take ``fn`` off its hook, leaving the program loaded (idempotent)."""
    if prog.closed:
        return  # closing the program took every probe off
    bt, bf = target.encode(), fn.encode()
    with capture_fd2():
        try:
            if kind in USER_KINDS:
                _detach_user(prog, kind, target, fn)
            elif kind == "tracepoint":
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
