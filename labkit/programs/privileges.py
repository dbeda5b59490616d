"""Which privileges BPF needs, and a precise error when they are missing.

BCC answers every EPERM with "Need super-user privileges", even as root. labkit
checks the effective capabilities first and names what is missing.
"""

from __future__ import annotations

import os
import pwd

from labkit._errors import PrivilegeError

__all__ = [
    "CAP_BPF",
    "CAP_DAC_READ_SEARCH",
    "CAP_NAMES",
    "CAP_NET_ADMIN",
    "CAP_PERFMON",
    "CAP_SYS_ADMIN",
    "NEEDS",
    "effective_caps",
    "eperm_error",
    "has_cap",
    "missing",
    "require",
]

CAP_DAC_READ_SEARCH = 2
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

CAP_NAMES = {
    CAP_DAC_READ_SEARCH: "CAP_DAC_READ_SEARCH",
    CAP_NET_ADMIN: "CAP_NET_ADMIN",
    CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
    CAP_PERFMON: "CAP_PERFMON",
    CAP_BPF: "CAP_BPF",
}

# what each kind of work needs (CAP_SYS_ADMIN stands in for BPF and PERFMON)
NEEDS = {
    "tracing": (CAP_BPF, CAP_PERFMON),
    "xdp": (CAP_BPF, CAP_NET_ADMIN),
    "tc": (CAP_BPF, CAP_NET_ADMIN),
    "cgroup": (CAP_BPF, CAP_NET_ADMIN),
    "netns": (CAP_SYS_ADMIN, CAP_NET_ADMIN),
}


def effective_caps() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has_cap(cap: int, caps: int | None = None) -> bool:
    caps = effective_caps() if caps is None else caps
    if caps & (1 << cap):
        return True
    # before CAP_BPF/CAP_PERFMON (kernel < 5.8) CAP_SYS_ADMIN covers both
    return cap in (CAP_BPF, CAP_PERFMON) and bool(caps & (1 << CAP_SYS_ADMIN))


def missing(need: str, caps: int | None = None) -> tuple[str, ...]:
    return tuple(CAP_NAMES[c] for c in NEEDS[need] if not has_cap(c, caps))


def _who() -> str:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "?"
    return f"uid {uid} ({name})"


def require(need: str) -> None:
    """Raise PrivilegeError when this process lacks what ``need`` requires."""
    gone = missing(need)
    if gone:
        raise PrivilegeError(
            f"{need} with BPF needs root or the capabilities {' + '.join(CAP_NAMES[c] for c in NEEDS[need])}; "
            f"this process ({_who()}) lacks {', '.join(gone)}. Start the lab with ./lab start (it runs as root), "
            f"or run Python as root (sudo).",
            missing=gone,
        )


def eperm_error(what: str, kernel_text: str = "") -> PrivilegeError:
    """The kernel said EPERM although the capability check passed."""
    gone = missing("tracing")
    if gone:
        return PrivilegeError(f"{what}: permission denied; this process ({_who()}) lacks {', '.join(gone)}",
                              missing=gone)
    extra = f"\nkernel said: {kernel_text.strip()}" if kernel_text.strip() else ""
    return PrivilegeError(
        f"{what}: the kernel refused with EPERM although this process ({_who()}) has CAP_BPF and CAP_PERFMON. "
        "Likely causes: kernel lockdown (cat /sys/kernel/security/lockdown), a locked memlock rlimit, or a "
        "program type this kernel does not permit (fentry is refused on some kernels). "
        "Run `labkit doctor` to see which hooks work." + extra,
        missing=(),
    )
