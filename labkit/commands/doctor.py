"""``labkit doctor``: can this machine run the lab? One row per check, and for
each failed check the command that fixes it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from labkit.lab import Lab
from labkit.net.xdp import libbpf
from labkit.programs import hooks as _hooks
from labkit.programs import privileges as _privileges

__all__ = ["Check", "doctor", "main", "run_checks"]

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _privs() -> Check:
    caps = _privileges.effective_caps()
    gone = sorted(set(_privileges.missing("tracing", caps)) | set(_privileges.missing("xdp", caps)))
    if os.geteuid() == 0 and not gone:
        return Check("privileges", OK, "root with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN")
    if not gone:
        return Check("privileges", OK, f"uid {os.geteuid()} with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN")
    return Check("privileges", FAIL, f"uid {os.geteuid()} lacks {', '.join(gone)}",
                 "run as root: sudo ./lab start (or sudo .venv/bin/labkit doctor)")


def _btf() -> Check:
    if Path("/sys/kernel/btf/vmlinux").exists():
        return Check("BTF", OK, "/sys/kernel/btf/vmlinux present")
    return Check("BTF", WARN, "no /sys/kernel/btf/vmlinux: CO-RE tools will not work; BCC compiles against headers",
                 "optional: use a kernel built with CONFIG_DEBUG_INFO_BTF=y")


def _tracefs() -> Check:
    p = _hooks.tracefs()
    if p is None:
        return Check("tracefs", FAIL, "not mounted", "mount -t tracefs tracefs /sys/kernel/tracing  (or ./lab setup)")
    return Check("tracefs", OK, f"mounted at {p}")


def _debugfs() -> Check:
    if os.path.ismount("/sys/kernel/debug"):
        return Check("debugfs", OK, "mounted at /sys/kernel/debug")
    return Check("debugfs", WARN, "not mounted (bpf_trace_printk output lives under it on old kernels)",
                 "mount -t debugfs debugfs /sys/kernel/debug  (or ./lab setup)")


def _headers() -> Check:
    rel = os.uname().release
    build = Path(f"/lib/modules/{rel}/build")
    if not (build / "include" / "generated" / "autoconf.h").exists():
        return Check("kernel headers", FAIL, f"{build} missing or incomplete",
                     "./lab setup  (installs linux-headers-$(uname -r), or links the distro's generic headers)")
    target = os.path.realpath(build)
    if rel in os.path.basename(target) or rel in target:
        return Check("kernel headers", OK, f"matching headers at {target}")
    return Check("kernel headers", WARN,
                 f"kernel {rel} has no header package; using the distro's generic headers {target} "
                 "(fine for labkit's snippets, which avoid kernel-internal structs)",
                 "for exact headers use a distro kernel (linux-image-amd64 + linux-headers-amd64)")


def _bcc() -> Check:
    try:
        import bcc  # noqa: F401  # lazy: importing it is the check

        ver = getattr(bcc, "__version__", "?")
        return Check("BCC", OK, f"bcc {ver} imports ({bcc.__file__})")
    except Exception as e:
        return Check("BCC", FAIL, f"import bcc failed: {e}",
                     "apt-get install python3-bpfcc; use .venv made with --system-site-packages (./lab setup)")


def _libbpf() -> Check:
    if libbpf() is not None:
        return Check("libbpf", OK, "libbpf.so.1 with bpf_link_create (XDP detaches when its process dies)")
    return Check("libbpf", WARN, "libbpf.so.1 not loadable: XDP falls back to netlink attach (survives the process)",
                 "apt-get install libbpf1")


def _tracepoint_hook() -> Check:
    if not _hooks.tracepoint_exists("task", "task_newtask"):
        return Check("hook: tracepoint", FAIL, "tracepoint task:task_newtask not found",
                     "mount tracefs (./lab setup); the kernel needs CONFIG_TRACEPOINTS")
    try:
        with Lab() as lab:
            s = lab.trace_clone(pid=os.getpid(), hook="tracepoint")
            t0 = time.monotonic()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            seen = s.wait(lambda df: (df.child_pid == pid).any(), timeout=3)
            dt = time.monotonic() - t0
        if seen:
            return Check("hook: tracepoint", OK, f"task:task_newtask loaded, attached and saw a fork ({dt:.2f}s)")
        return Check("hook: tracepoint", FAIL, "attached, but no event arrived within 3 s",
                     "check `bpftool prog` and dmesg; report the kernel version")
    except Exception as e:
        return Check("hook: tracepoint", FAIL, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "see the error; ./lab setup fixes headers and mounts")


def _kprobe_hook() -> Check:
    ok, why = _hooks.kprobes_available()
    if not ok:
        return Check("hook: kprobe", WARN, f"{why}; clone tracing uses the tracepoint instead",
                     "optional: a distro kernel (CONFIG_KPROBES=y) to try the classic kprobe examples")
    try:
        with Lab() as lab:
            s = lab.trace_clone(pid=os.getpid(), hook="kprobe")
            src = s.source
        return Check("hook: kprobe", OK, f"{why}; attached {src}")
    except Exception as e:
        return Check("hook: kprobe", WARN, f"kprobe attach failed: {str(e).splitlines()[0]}",
                     "clone tracing falls back to the tracepoint")


def _xdp_hook() -> Check:
    rel = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    link = "bpf_link attach (kernel >= 5.9)" if rel >= (5, 9) else "netlink attach only (kernel < 5.9)"
    try:
        out = subprocess.run(["bpftool", "feature", "probe", "kernel", "-j"], capture_output=True, text=True,
                             timeout=30)
        feats = json.loads(out.stdout)
        have = feats.get("program_types", {}).get("have_xdp_prog_type", False)
        ring = feats.get("map_types", {}).get("have_ringbuf_map_type", False)
    except Exception as e:
        return Check("hook: XDP", WARN, f"could not probe with bpftool: {e}", "apt-get install bpftool")
    if have and ring:
        return Check("hook: XDP", OK, f"XDP program type and ring buffers supported; {link}")
    return Check("hook: XDP", FAIL, f"XDP program type: {have}, ring buffer map: {ring}",
                 "a kernel >= 5.9 with CONFIG_XDP_SOCKETS/BPF_SYSCALL is needed")


CHECKS = (_privs, _bcc, _tracefs, _debugfs, _headers, _btf, _libbpf, _tracepoint_hook, _kprobe_hook, _xdp_hook)


def run_checks() -> list[Check]:
    out = []
    for fn in CHECKS:
        try:
            out.append(fn())
        except Exception as e:  # a broken check is itself a finding
            out.append(Check(fn.__name__.strip("_"), FAIL, f"check crashed: {e}", "report this"))
        if out[-1].name in ("privileges", "BCC") and out[-1].status == FAIL:
            break  # nothing below can run
    return out


def doctor():
    """The doctor's checks as a pandas DataFrame (for notebooks)."""
    return pd.DataFrame([c.__dict__ for c in run_checks()])


def main(argv: list[str] | None = None) -> int:
    checks = run_checks()
    w = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status:>4}  {c.name:<{w}}  {c.detail}")
        if c.status != OK and c.fix:
            print(f"{'':>4}  {'':<{w}}  fix: {c.fix}")
    failed = [c for c in checks if c.status == FAIL]
    print()
    print("the lab cannot run: fix the FAIL lines above" if failed else "the lab can run")
    return 1 if failed else 0
