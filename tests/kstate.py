"""What a process holds in the kernel, read from /proc: BPF programs, links,
maps and perf events (tracepoint/kprobe attachments) by fd."""

from __future__ import annotations

import json
import os
import subprocess


def bpf_fds(pid: int | str = "self") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"prog": [], "link": [], "map": [], "perf_event": []}
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return out
    for fd in names:
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue
        if target == "anon_inode:bpf-prog":
            out["prog"].append(fd)
        elif target == "anon_inode:bpf-link" or target.startswith("anon_inode:bpf_link"):
            out["link"].append(fd)
        elif target == "anon_inode:bpf-map":
            out["map"].append(fd)
        elif target == "anon_inode:[perf_event]":
            out["perf_event"].append(fd)
    return out


def perf_attachments(pid: int) -> list[dict]:
    """bpftool perf list entries (BPF programs on tracepoints/kprobes) of ``pid``."""
    r = subprocess.run(["bpftool", "perf", "list", "-j"], capture_output=True, text=True, check=True)
    entries = json.loads(r.stdout or "[]")
    return [e for e in entries if e.get("pid") == pid]


def labkit_programs() -> list[dict]:
    r = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return [p for p in json.loads(r.stdout or "[]") if str(p.get("name", "")).startswith("lk_")]
