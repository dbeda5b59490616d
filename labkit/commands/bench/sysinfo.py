"""What the bench reads from /proc and the machine: CPU time, scheduler waits,
CPU pressure, RSS, and a description of the machine it ran on."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

from labkit.programs.hooks import tracefs

__all__ = ["cpu_pressure_us", "cpu_seconds", "machine_info", "rss_bytes", "schedstat"]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def schedstat(tid: int | None) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds waiting for one) of a thread of this process."""
    if tid is None:
        return None
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            run, wait, _ = f.read().split()
        return int(run) / 1e9, int(wait) / 1e9
    except (OSError, ValueError):
        return None


def cpu_pressure_us() -> int | None:
    """Total microseconds in which some runnable task waited for a CPU (PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def machine_info() -> dict[str, Any]:
    """CPU, memory, kernel, OS, virtualisation, BCC and Python versions, trace buffer size, load."""
    info: dict[str, Any] = {"kernel": platform.release(), "cpus": os.cpu_count(),
                            "python": platform.python_version()}
    info["cpu"] = platform.machine()    # arm64's /proc/cpuinfo has no "model name": the architecture stays
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = f'{line.split(":", 1)[1].strip()} ({platform.machine()})'
                break
    except OSError:
        pass
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if shutil.which("systemd-detect-virt"):
        r = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True)
        info["virt"] = r.stdout.strip() or "none"
    try:
        import bcc  # lazy: bcc is optional here (reported as None without it)

        info["bcc"] = getattr(bcc, "__version__", "?")
    except Exception:
        info["bcc"] = None
    try:
        tf = tracefs()
        if tf is not None:
            info["trace_buffer_kb"] = (Path(tf) / "buffer_size_kb").read_text().strip()
    except Exception:
        pass
    info["loadavg_start"] = os.getloadavg()[0]
    return info
