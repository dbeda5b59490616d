"""uprobes and uretprobes: a function on a user-space function's entry or return (``Lab.attach_uprobe``).

The function is named by a binary (a full path) or a library the dynamic
linker finds (``"c"``, ``"libc.so.6"``) and a symbol in it, checked before
anything is loaded (a missing one is an ArgumentError naming close matches).
``pid``: only in that process, else in every process that runs that code.
A uprobe runs a kprobe-type program (``struct pt_regs *``).

A uprobe's target is one string, :func:`uprobe_target`: ``/path/to/lib.so:symbol``,
or ``...:symbol[pid N]`` when it fires only in process N.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from labkit._errors import ArgumentError, AttachError
from labkit.hooks.probe import ProbeHook, TraceAttachment, attach_probes, load_for
from labkit.hooks.protocol import register
from labkit.programs.compile import Program

if TYPE_CHECKING:  # the Lab sits on the floor above: a type here, never an import
    from labkit.lab import Lab

__all__ = ["HOOK", "UprobeHook", "check_pid", "parse_uprobe_target", "resolve_binary", "uprobe_target"]

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


def check_pid(pid: Any) -> int:
    """``pid`` as a positive process id, 0 for None (every process); else ArgumentError."""
    if pid is None:
        return 0
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ArgumentError(f"pid must be a positive process id (or None for all processes), got {pid!r}")
    return pid


def resolve_binary(binary_or_library: Any, symbol: Any) -> str:
    """The file a uprobe goes into: a path as given, or a library found the way
    the dynamic linker finds it ("c" or "libc.so.6" -> /lib/.../libc.so.6), and
    check that it defines ``symbol``. An ArgumentError names close matches."""
    # lazy: BCC comes from the distro; labkit imports without it (doctor says why)
    import bcc

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


class UprobeHook(ProbeHook):
    name = "uprobe"
    call = "attach_uprobe"
    # a uprobe program is a kprobe-type program (struct pt_regs *): a kprobe-shaped function fits too
    fits = ("uprobe", "kprobe")
    wants = "a uprobe program (a function taking struct pt_regs *)"
    home = {"uprobe": "Attach it with lab.attach_uprobe(program, library, symbol) instead."}
    probe_kinds = ("uprobe", "uretprobe")
    prog_type = "KPROBE"   # uprobes run KPROBE-type programs

    def validate(self, program: Program | str, *, binary_or_library: Any, symbol: Any, fn: str | None = None,
                 ret: bool = False, pid: Any = None, name: str | None = None) -> dict:
        fpid = check_pid(pid)
        path = resolve_binary(binary_or_library, symbol)
        return {"path": path, "symbol": symbol, "fn": fn, "ret": bool(ret), "pid": fpid or None, "name": name}

    def make(self, lab: "Lab", program: Program | str, *, path: str, symbol: str, fn: str | None, ret: bool,
             pid: int | None, name: str | None) -> TraceAttachment:
        prog, fn = load_for(lab, program, fn)
        kind = "uretprobe" if ret else "uprobe"
        target = uprobe_target(path, symbol, pid)
        key = (kind, target, name or f"{prog.name}:{fn}")
        return attach_probes(lab, prog, key, [(kind, target, fn)], hook=f"{kind} {target}")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        path, symbol, pid = parse_uprobe_target(target)
        attach = prog.bpf.attach_uprobe if kind == "uprobe" else prog.bpf.attach_uretprobe
        attach(name=path.encode(), sym=symbol.encode(), fn_name=fn.encode(), pid=pid)

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        path, symbol, pid = parse_uprobe_target(target)
        detach = prog.bpf.detach_uprobe if kind == "uprobe" else prog.bpf.detach_uretprobe
        detach(name=path.encode(), sym=symbol.encode(), pid=pid)


HOOK = register(UprobeHook())
