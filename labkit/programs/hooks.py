"""What this kernel can hook, probed at run time rather than assumed.

One place decides between kprobes and tracepoints (the fallback is recorded on
the handle and said out loud), so no snippet is ever string-edited to switch.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labkit._errors import ArgumentError, NotSupportedError

__all__ = [
    "HookChoice",
    "TRACEFS_CANDIDATES",
    "check_syscall",
    "clone_hooks",
    "kernel_symbol",
    "kprobes_available",
    "require_tracefs",
    "strip_syscall_prefix",
    "syscall_arg_count",
    "syscall_tracepoints",
    "tracefs",
    "tracepoint_exists",
]

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def tracefs() -> Path | None:
    for p in TRACEFS_CANDIDATES:
        try:
            if (p / "events").is_dir():
                return p
        except OSError:  # PermissionError for an unprivileged user
            continue
    return None


def require_tracefs() -> Path:
    p = tracefs()
    if p is None:
        raise NotSupportedError(
            "tracefs is not mounted, so tracepoints cannot be found: run ./lab setup "
            "(or: mount -t tracefs tracefs /sys/kernel/tracing)",
            feature="tracefs",
        )
    return p


def tracepoint_exists(category: str, event: str) -> bool:
    p = tracefs()
    return p is not None and (p / "events" / category / event / "id").exists()


def syscall_tracepoints() -> list[str]:
    """Names of the syscalls this kernel has enter tracepoints for, sorted."""
    p = require_tracefs() / "events" / "syscalls"
    if not p.is_dir():
        return []
    return sorted(d.name[len("sys_enter_"):] for d in p.iterdir() if d.name.startswith("sys_enter_"))


def kprobes_available() -> tuple[bool, str]:
    """(available, why) for kprobes: perf's kprobe PMU or tracefs kprobe_events."""
    if Path("/sys/bus/event_source/devices/kprobe/type").exists():
        return True, "kprobe PMU present"
    t = tracefs()
    if t is not None and (t / "kprobe_events").exists():
        return True, "tracefs kprobe_events present"
    return False, "kernel built without CONFIG_KPROBES (no kprobe PMU, no kprobe_events)"


@lru_cache(maxsize=None)
def _kallsyms() -> frozenset[str]:
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    names.add(parts[2])
    except OSError:
        pass
    return frozenset(names)


def kernel_symbol(*candidates: str) -> str | None:
    syms = _kallsyms()
    for c in candidates:
        if c in syms:
            return c
    return None


@dataclass(frozen=True)
class HookChoice:
    kind: str          # "kprobe" or "tracepoint"
    target: str        # e.g. "kernel_clone" or "task:task_newtask"
    reason: str        # why this one was taken

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


def clone_hooks(prefer: str = "auto") -> list[HookChoice]:
    """Candidate hooks for process creation, best first, for ``prefer``."""
    if prefer not in ("auto", "kprobe", "tracepoint"):
        raise ArgumentError(f"hook must be 'auto', 'kprobe' or 'tracepoint', got {prefer!r}")
    out: list[HookChoice] = []
    ok, why = kprobes_available()
    sym = kernel_symbol("kernel_clone", "_do_fork")
    if prefer in ("auto", "kprobe"):
        if ok and sym:
            out.append(HookChoice("kprobe", sym, f"kprobes available ({why})"))
        elif prefer == "kprobe":
            raise NotSupportedError(f"kprobe on kernel_clone is not possible here: {why if not ok else 'no kernel_clone symbol'}",
                                    feature="kprobe")
    if prefer in ("auto", "tracepoint"):
        if tracepoint_exists("task", "task_newtask"):
            reason = "tracepoint requested" if prefer == "tracepoint" else f"no kprobes: {why}" if not ok else "fallback"
            out.append(HookChoice("tracepoint", "task:task_newtask", reason))
        elif prefer == "tracepoint":
            raise NotSupportedError("tracepoint task:task_newtask does not exist on this kernel", feature="tracepoint")
    if not out:
        raise NotSupportedError(
            f"no hook for process creation works here: kprobes: {why}; tracepoint task:task_newtask missing "
            "(is tracefs mounted? run ./lab setup)", feature="clone hook")
    return out


# what a syscall's name may carry in front: the tracepoint's, and the kernel
# symbol's per architecture (__x64_sys_clone on x86-64, __arm64_sys_clone on
# arm64, __ia32_sys_, __s390x_sys_, __riscv_sys_, __se_sys_, ...), or plain sys_
_SYSCALL_PREFIX = re.compile(r"^(?:sys_enter_|sys_exit_|__[a-z0-9]+_sys_|sys_)")


def strip_syscall_prefix(name: str) -> str:
    """``clone`` from ``clone``, ``sys_enter_clone``, ``__x64_sys_clone``, ``__arm64_sys_clone``, ``sys_clone``."""
    return _SYSCALL_PREFIX.sub("", name, count=1)


def check_syscall(name: str) -> str:
    """The normalised syscall name; ArgumentError for what is not a name, NotSupportedError (naming close
    matches) when this kernel has no tracepoint for it."""
    if not isinstance(name, str) or not name.strip():
        raise ArgumentError(f"a syscall name is needed (like 'openat'), got {name!r}")
    n = strip_syscall_prefix(name.strip())
    known = syscall_tracepoints()
    if not known:
        raise NotSupportedError("this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS is off)",
                                feature="syscall tracepoints")
    if n not in known:
        close = difflib.get_close_matches(n, known, n=5, cutoff=0.6)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise NotSupportedError(
            f"this kernel has no syscall tracepoint for {name!r} (no syscalls:sys_enter_{n}).{hint} "
            f"labkit.syscalls() lists all {len(known)}.",
            feature=f"syscalls:sys_enter_{n}",
        )
    return n


def syscall_arg_count(name: str) -> int:
    """How many arguments syscalls:sys_enter_<name> records (from its format file)."""
    fmt = require_tracefs() / "events" / "syscalls" / f"sys_enter_{name}" / "format"
    n = 0
    seen_nr = False
    for line in fmt.read_text().splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        if "__syscall_nr" in line:
            seen_nr = True
        elif seen_nr:
            n += 1
    return min(n, 6)

