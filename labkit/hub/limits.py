"""Memory and CPU limits per student VM, enforced by the host's cgroups.

qemu's ``-m`` bounds what the guest sees; the cgroup bounds what the qemu
process may take from the host (guest RAM plus qemu's own overhead), and its
CPU time. Both cgroup layouts are handled: the unified one (cgroup v2, a
fresh Debian 12 or Ubuntu) and the legacy one (v1 controllers mounted one per
directory). Each VM gets ``labkit-hub/<name>`` under the controllers' roots;
:func:`remove` removes it once the VM has ended.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labkit._renamed import renamed_function

__all__ = ["Limits", "apply", "held", "release", "remove", "usage_bytes"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "labkit-hub"
QEMU_OVERHEAD_MB = 512     # qemu's own memory beside the guest's RAM (under TCG: its 256 MiB translation cache and more)
PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    mem_mb: int          # the guest's RAM (-m)
    cpus: float          # CPU time, in CPUs

    @property
    def mem_bytes(self) -> int:
        return (self.mem_mb + QEMU_OVERHEAD_MB) * 1024 * 1024

    @property
    def quota_us(self) -> int:
        return int(self.cpus * PERIOD_US)


def _unified(root: Path) -> bool:
    return (root / "cgroup.controllers").exists()


def _dirs(name: str, root: Path) -> list[tuple[str, Path]]:
    if _unified(root):
        return [("v2", root / GROUP / name)]
    return [("memory", root / "memory" / GROUP / name), ("cpu", root / "cpu" / GROUP / name)]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def apply(name: str, pid: int, limits: Limits, root: Path = CGROUP_ROOT) -> list[Path]:
    """Put ``pid`` (a VM's qemu) into its own cgroup with ``limits``; the cgroup
    directories made. Raises OSError when the host's cgroups cannot hold them."""
    made = []
    if _unified(root):
        parent = root / GROUP
        parent.mkdir(exist_ok=True)
        # the controllers must be handed down from the root to labkit-hub to the VM's group
        for where in (root, parent):
            enabled = (where / "cgroup.subtree_control").read_text().split()
            missing = [c for c in ("memory", "cpu") if c not in enabled]
            if missing:
                _write(where / "cgroup.subtree_control", " ".join("+" + c for c in missing))
    for kind, d in _dirs(name, root):
        d.mkdir(parents=True, exist_ok=True)
        made.append(d)
        if kind == "v2":
            _write(d / "memory.max", str(limits.mem_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "cpu.max", f"{limits.quota_us} {PERIOD_US}")
        elif kind == "memory":
            _write(d / "memory.limit_in_bytes", str(limits.mem_bytes))
        else:
            _write(d / "cpu.cfs_period_us", str(PERIOD_US))
            _write(d / "cpu.cfs_quota_us", str(limits.quota_us))
        _write(d / "cgroup.procs", str(pid))
    return made


def usage_bytes(name: str, root: Path = CGROUP_ROOT) -> int | None:
    """What the VM's cgroup holds in memory now (None: no such group)."""
    for kind, d in _dirs(name, root):
        for f in ("memory.current", "memory.usage_in_bytes"):
            if kind in ("v2", "memory") and (d / f).exists():
                return int((d / f).read_text())
    return None


def held(name: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The VM's cgroup directories that exist (none once :func:`remove` took them)."""
    return [d for _, d in _dirs(name, root) if d.exists()]


def remove(name: str, root: Path = CGROUP_ROOT) -> None:
    """Remove the VM's cgroup directories (once its processes are gone)."""
    for _, d in _dirs(name, root):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            pass   # still has a process (the VM is still ending): the next remove takes it
        try:
            os.rmdir(d.parent)     # labkit-hub itself, once no VM is left in it
        except OSError:
            pass


#: the old name, for one release (labkit._renamed)
release = renamed_function("release", remove)
