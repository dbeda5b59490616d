"""``labkit doctor``: can this machine run the lab? One row per check, and for
each failed check the command that fixes it.

Why this file is long: every hook kind a lesson needs is tried for real here
(a program loaded and attached, its event seen), one short function per kind,
beside the table of what each lesson needs; split across files they would be
read together anyway."""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from labkit.hooks import lsm as _lsm
from labkit.hooks.cgroup import OWN_MOUNT, Cgroup, cgroup2_root
from labkit.lab import Lab
from labkit.net.sandbox import Sandbox
from labkit.net.xdp import libbpf
from labkit.programs import core as _core
from labkit.programs import hooks as _hooks
from labkit.programs import privileges as _privileges
from labkit.programs.app import build_app
from labkit.programs.core import has_helper
from labkit.programs.pins import PinDir

__all__ = ["Check", "LessonFit", "doctor", "kernel_release", "lesson_fits", "main", "run_checks"]

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
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)   # Debian's name
    return Check("kernel headers", WARN,
                 f"kernel {rel} has no header package; using the distro's generic headers {target} "
                 "(fine for labkit's snippets, which avoid kernel-internal structs)",
                 f"for exact headers use a distro kernel (linux-image-{arch} + linux-headers-{arch})")


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


#: a fentry/fexit pair on the kernel function under nanosleep() (lesson 11 times it)
_FENTRY_PROBE = """
KFUNC_PROBE(do_nanosleep) { return 0; }
KRETFUNC_PROBE(do_nanosleep) { return 0; }
"""


def _fentry_hook() -> Check:
    """fentry/fexit (BTF, the BPF trampoline): loaded and attached, or what refused it."""
    if not _hooks.kernel_symbol("do_nanosleep"):
        return Check("hook: fentry", WARN, "no kernel function do_nanosleep to try fentry on",
                     "lesson 11 times the syscall's tracepoints instead")
    try:
        with Lab() as lab:
            prog = lab.load(_FENTRY_PROBE, name="doctor fentry")
            hooks = [f"{kind} {target}" for att in prog.auto_attachments for kind, target, _fn in att.probes]
        return Check("hook: fentry", OK, f"fentry and fexit on do_nanosleep loaded and attached ({', '.join(hooks)})")
    except Exception as e:
        return Check("hook: fentry", WARN, f"this kernel refuses fentry: {type(e).__name__}: {str(e).splitlines()[0]}",
                     "optional: lesson 11 takes a kprobe, or the syscall's tracepoints, instead")


@functools.lru_cache(maxsize=1)
def _features() -> dict:
    """``bpftool feature probe kernel``: the program and map types this kernel
    accepts (probed by loading tiny programs and creating tiny maps)."""
    out = subprocess.run(["bpftool", "feature", "probe", "kernel", "-j"], capture_output=True, text=True,
                         timeout=30)
    return json.loads(out.stdout)


def _xdp_hook() -> Check:
    rel = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    link = "bpf_link attach (kernel >= 5.9)" if rel >= (5, 9) else "netlink attach only (kernel < 5.9)"
    try:
        feats = _features()
        have = feats.get("program_types", {}).get("have_xdp_prog_type", False)
        ring = feats.get("map_types", {}).get("have_ringbuf_map_type", False)
    except Exception as e:
        return Check("hook: XDP", WARN, f"could not probe with bpftool: {e}", "apt-get install bpftool")
    if have and ring:
        return Check("hook: XDP", OK, f"XDP program type and ring buffers supported; {link}")
    return Check("hook: XDP", FAIL, f"XDP program type: {have}, ring buffer map: {ring}",
                 "a kernel >= 5.9 with CONFIG_XDP_SOCKETS/BPF_SYSCALL is needed")


# the map types the lessons use, and where
_MAP_TYPES = {"hash": "01-08", "array": "02-08", "percpu_array": "02, 06", "lru_hash": "06",
              "perf_event_array": "03, 06", "ringbuf": "every stream", "lpm_trie": "07", "devmap": "07"}


def _maps() -> Check:
    try:
        have = _features().get("map_types", {})
    except Exception as e:
        return Check("map types", WARN, f"could not probe with bpftool: {e}", "apt-get install bpftool")
    missing = [m for m in _MAP_TYPES if not have.get(f"have_{m}_map_type", False)]
    if not missing:
        return Check("map types", OK, f"{', '.join(_MAP_TYPES)}: all created")
    return Check("map types", FAIL if "ringbuf" in missing or "hash" in missing else WARN,
                 "the kernel refuses " + ", ".join(f"{m} (lesson {_MAP_TYPES[m]})" for m in missing),
                 "a kernel >= 5.8 with CONFIG_BPF_SYSCALL (Debian 12's own kernel has every one)")


_UPROBE_C = """
BPF_ARRAY(hits, u64, 1);
int lk_doctor_uprobe(struct pt_regs *ctx)
{
    int k = 0;
    u64 *v = hits.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
"""


def _uprobe_hook() -> Check:
    if not Path("/sys/bus/event_source/devices/uprobe/type").exists():
        return Check("hook: uprobe", WARN, "no uprobe PMU (/sys/bus/event_source/devices/uprobe): "
                     "lesson 05's uprobes and USDT will not attach",
                     "a kernel built with CONFIG_UPROBE_EVENTS=y (Debian's own kernels are)")
    try:
        with Lab() as lab:
            prog = lab.load(_UPROBE_C, name="doctor_uprobe")
            lab.attach_uprobe(prog, "c", "getpid", "lk_doctor_uprobe", pid=os.getpid())
            libc = ctypes.CDLL("libc.so.6")
            for _ in range(3):
                libc.getpid()
            hits = int(next(iter(prog.bpf["hits"].values())).value)
        if hits >= 3:
            return Check("hook: uprobe", OK, f"a uprobe on libc's getpid() fired {hits} times in this process")
        return Check("hook: uprobe", WARN, f"attached to libc's getpid(), but it fired {hits} times for 3 calls",
                     "check dmesg; report the kernel version")
    except Exception as e:
        return Check("hook: uprobe", WARN, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "lesson 05 needs uprobes: a kernel with CONFIG_UPROBE_EVENTS=y, run as root")


PYTHON_WITH_USDT = "/usr/bin/python3.11"


def _usdt() -> Check:
    try:
        from bcc import USDT  # lazy: BCC's USDT reader, only for this check

        names = {p.name.decode() if isinstance(p.name, bytes) else p.name
                 for p in USDT(path=PYTHON_WITH_USDT).enumerate_probes()}
    except Exception as e:
        return Check("USDT", WARN, f"cannot read {PYTHON_WITH_USDT}'s probes: {str(e).splitlines()[0]}",
                     "lesson 05's USDT part needs Debian's python3.11 (built with its probes): "
                     "apt-get install python3.11")
    if "function__entry" in names:
        return Check("USDT", OK, f"{PYTHON_WITH_USDT} has {len(names)} probes (function__entry, gc__start, ...); "
                     "it reports every call only while python:line is enabled too (lesson 05)")
    return Check("USDT", WARN, f"{PYTHON_WITH_USDT} has no python:function__entry probe",
                 "lesson 05's USDT part needs Debian's python3.11: apt-get install python3.11")


def _tc_hook() -> Check:
    try:
        with Lab() as lab, Sandbox() as sb:
            att = lab.attach_tc("tc_count", sb.host_iface, "egress", netns=sb.host_ns)
            via = att.via
            sb.ping(count=1, timeout=1)
            seen = att.packets()
        how = "a tcx link" if via == "tcx" else "netlink: clsact qdisc + cls_bpf filter (no tcx before 6.6)"
        if seen:
            return Check("hook: tc", OK, f"egress attached in a sandbox via {how}; counted {seen} packet(s)")
        return Check("hook: tc", WARN, f"attached via {how}, but no packet was counted",
                     "check dmesg; report the kernel version")
    except Exception as e:
        return Check("hook: tc", WARN, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "lesson 08 needs the clsact qdisc and cls_bpf (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF), "
                     "tc from iproute2 (apt-get install iproute2), and libbpf1 for tcx links on 6.6+")


def _cgroup_v2() -> Check:
    root = cgroup2_root()
    if root is None:
        return Check("cgroup v2", FAIL, "no cgroup v2 hierarchy is mounted (cgroup v1 only): cgroup BPF programs "
                     "need v2 (lesson 13)", f"./lab setup (scripts/setup.sh mounts one at {OWN_MOUNT})")
    how = {Path("/sys/fs/cgroup"): "the unified hierarchy", Path("/sys/fs/cgroup/unified"):
           "a hybrid host: v1 controllers at /sys/fs/cgroup, v2 beside them",
           OWN_MOUNT: "mounted by scripts/setup.sh on a v1-only host"}.get(root, "mounted there")
    return Check("cgroup v2", OK, f"cgroup2 at {root} ({how})")


_CONNECT = ("import socket, sys\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', int(sys.argv[1])))\n"
            "    print(0)\nexcept OSError as e:\n    print(e.errno)\n")


def _cgroup_hook() -> Check:
    """A connect4 program on a cgroup of the lab's own refuses a child's connect to a port on 127.0.0.1."""
    if cgroup2_root() is None:
        return Check("hook: cgroup", FAIL, "no cgroup v2 hierarchy", f"./lab setup (mounts one at {OWN_MOUNT})")
    try:
        with socket.socket() as ls, Lab() as lab, Cgroup("doctor") as cg:
            ls.bind(("127.0.0.1", 0))
            ls.listen(4)
            port = ls.getsockname()[1]
            lab.attach_cgroup(lab.load("cgroup_connect_block", defines={"LK_PORT": port}), cg, "connect4")
            out = cg.run([sys.executable, "-c", _CONNECT, str(port)], capture_output=True, text=True, timeout=30)
    except Exception as e:
        return Check("hook: cgroup", FAIL, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "lesson 13 needs cgroup v2, CONFIG_CGROUP_BPF and kernel 5.7+ (cgroup bpf_links), libbpf1")
    if out.stdout.strip() == "1":
        return Check("hook: cgroup", OK, "a connect4 program on a cgroup of the lab's own (bpf_link) refused a "
                     "child's connect with EPERM")
    return Check("hook: cgroup", WARN, f"attached, but the child's connect gave {out.stdout.strip() or out.stderr}",
                 "report the kernel version")


def _lsm_hook() -> Check:
    """BPF LSM: bpf in the active LSM list, and an LSM program that refuses nothing loaded and attached."""
    ok, why = _lsm.available()
    if ok:
        rc = _lsm.return_check()
        if rc is not None and rc["range"]:
            why += ("; its verifier checks that an LSM program returns a value provably in [-4095, 0] (a value read "
                    "from a map is refused" + ("" if rc["negation"] else ", and so is clang's -(condition) form of "
                                               "'refuse ? -EPERM : 0': lesson 12 shows the way round") + ")")
        elif rc is not None:
            why += "; its verifier does not check the value an LSM program returns (kernels before 6.12)"
        return Check("hook: lsm", OK, why)
    lsms, _where = _lsm.active_lsms()
    fix = (f"boot with lsm={','.join(lsms)},bpf on the kernel command line (Debian: add it to GRUB_CMDLINE_LINUX "
           "in /etc/default/grub, update-grub, reboot); tests/stock_kernel/run --bpf-lsm does it for the guest"
           if lsms is not None and "bpf" not in lsms else
           "lesson 12 needs a kernel that runs BPF LSM programs: Debian's own 6.1 and 6.12 do (the lab VM)")
    return Check("hook: lsm", WARN, why, fix)


_CORE_C = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, u32); __type(value, u32); } seen SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getppid")
int lk_doctor_core(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 tgid = BPF_CORE_READ(task, tgid), one = 1;
    bpf_map_update_elem(&seen, &tgid, &one, BPF_ANY);     // every process that called getppid()
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _core_toolchain() -> Check:
    problems = _core.toolchain_problems()
    if problems:
        return Check("CO-RE toolchain", WARN, "; ".join(p for p, _ in problems) + " (lesson 09)",
                     "; ".join(f for _, f in problems))
    try:
        with Lab() as lab:
            obj = lab.load_object(_CORE_C, name="doctor_core")
            os.getppid()
            callers = {int(k) for k in obj.map_dataframe("seen")["key"]}
    except Exception as e:
        return Check("CO-RE toolchain", WARN, f"{type(e).__name__}: {str(e).splitlines()[0]}",
                     "lesson 09 needs clang, libbpf-dev, bpftool, libbpf1 and a kernel with BTF (./lab setup)")
    if os.getpid() in callers:
        return Check("CO-RE toolchain", OK, "clang compiled a CO-RE object, libbpf relocated it with this "
                     "kernel's BTF and it read this process's tgid through BPF_CORE_READ")
    return Check("CO-RE toolchain", WARN, f"the CO-RE object did not see this process ({os.getpid()}) call "
                 f"getppid(); it saw {sorted(callers)[:5]}", "report the kernel version")


def _libbpf_app() -> Check:
    """Lesson 14: its application builds (clang, bpftool gen skeleton, libbpf's headers) and the BPF
    filesystem takes a pin directory of the lab's own."""
    fix = "./lab setup (installs clang, bpftool and libbpf-dev, and mounts the BPF filesystem at /sys/fs/bpf)"
    try:
        app = build_app("app_opens")
        with PinDir("doctor"):
            pass
    except Exception as e:
        return Check("libbpf application", WARN, f"{type(e).__name__}: {str(e).splitlines()[0]} (lesson 14)", fix)
    loop = "" if has_helper(181) else ("; this kernel has no bpf_loop() (5.17): the application leaves its loop "
                                      "stage out")
    return Check("libbpf application", OK, f"built {app.name} (clang, bpftool gen skeleton, libbpf) and made a pin "
                 f"directory in the BPF filesystem{loop}")


_PERF_C = """
struct bpf_perf_event_data;   /* ctx is only passed on: no need for the header's register layout (1 s to compile) */
BPF_STACK_TRACE(stacks, 64);
BPF_ARRAY(seen, u64, 2);      // 0: samples of this process; 1: those with a user stack
int lk_doctor_sample(struct bpf_perf_event_data *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != LK_DOCTOR_PID)
        return 0;
    int k = 0;
    u64 *v = seen.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    if (stacks.get_stackid(ctx, BPF_F_USER_STACK) >= 0) {
        k = 1;
        v = seen.lookup(&k);
        if (v)
            __sync_fetch_and_add(v, 1);
    }
    return 0;
}
"""


def _perf_event_hook() -> Check:
    fix = ("lesson 10 needs perf events (CONFIG_PERF_EVENTS=y, Debian's kernels have it) and BPF stack maps, "
           "run as root")
    if not Path("/proc/sys/kernel/perf_event_paranoid").exists():
        return Check("hook: perf_event", WARN, "this kernel has no perf events: lesson 10 cannot sample", fix)
    try:
        with Lab() as lab:
            prog = lab.load(_PERF_C, name="doctor_perf", defines={"LK_DOCTOR_PID": os.getpid()})
            lab.attach_perf_event(prog, frequency=99)
            seen = prog["seen"]
            deadline = time.monotonic() + 3
            while int(seen[ctypes.c_int(0)].value) < 3 and time.monotonic() < deadline:
                end = time.monotonic() + 0.05
                while time.monotonic() < end:      # on a CPU, where the clock can catch this process
                    pass
            samples, stacked = int(seen[ctypes.c_int(0)].value), int(seen[ctypes.c_int(1)].value)
    except Exception as e:
        return Check("hook: perf_event", WARN, f"{type(e).__name__}: {str(e).splitlines()[0]}", fix)
    if samples and stacked:
        clang = "" if shutil.which("clang") else "; clang is missing, and lesson 10 builds its workloads with it"
        return Check("hook: perf_event", WARN if clang else OK,
                     f"the CPU clock at 99 Hz sampled this process {samples} times, {stacked} with a user stack"
                     + clang, "./lab setup (installs clang)" if clang else "")
    return Check("hook: perf_event", WARN, f"attached the CPU clock at 99 Hz, but it sampled this process {samples} "
                 f"times ({stacked} with a user stack) in 3 s on a CPU", "check dmesg; report the kernel version")


CHECKS = (_privs, _bcc, _tracefs, _debugfs, _headers, _btf, _libbpf, _tracepoint_hook, _kprobe_hook, _fentry_hook,
          _xdp_hook, _maps, _uprobe_hook, _usdt, _tc_hook, _core_toolchain, _perf_event_hook, _cgroup_v2, _cgroup_hook,
          _libbpf_app, _lsm_hook)


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


@dataclass
class LessonFit:
    lesson: str
    title: str
    status: str      # ok | partial | cannot
    detail: str


# each lesson: the checks it cannot do without, and those only one part of it needs
_LESSON_NEEDS = (
    ("00", "check your lab", ("BCC", "hook: tracepoint"), ()),
    ("01", "hello clone", ("hook: tracepoint",), ("hook: kprobe",)),
    ("02", "XDP ping drop", ("hook: XDP",), ("libbpf",)),
    ("03", "maps vs events", ("hook: tracepoint", "map types"), ()),
    ("04", "verifier mistakes", ("BCC",), ()),
    ("05", "tracing user space", ("hook: uprobe",), ("USDT",)),
    ("06", "maps in depth", ("map types",), ()),
    ("07", "XDP beyond drop", ("hook: XDP", "map types"), ()),
    ("08", "TC", ("hook: tc", "hook: XDP"), ()),
    ("09", "modern toolchain", ("CO-RE toolchain", "BTF"), ()),
    ("10", "profiling", ("hook: perf_event",), ()),
    ("11", "latency", ("hook: tracepoint",), ("hook: fentry", "hook: kprobe")),
    ("12", "security (BPF LSM)", ("cgroup v2", "hook: lsm"), ()),
    ("13", "cgroup programs", ("cgroup v2", "hook: cgroup"), ()),
    ("14", "libbpf application", ("CO-RE toolchain", "libbpf application"), ()),
)


def kernel_release(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a kernel release string ("6.1.0-41-amd64" -> (6, 1))."""
    head = (release or os.uname().release).split("-")[0].split(".")
    try:
        return int(head[0]), int(head[1]) if len(head) > 1 else 0
    except ValueError:
        return (0, 0)


def _kernel_notes(lesson: str, rel: tuple[int, int], arch: str) -> list[tuple[str, str]]:
    """What this kernel version changes in a lesson: (status, words for a student)."""
    v = f"{rel[0]}.{rel[1]}"
    notes: list[tuple[str, str]] = []
    if lesson in ("01", "03", "06") and rel < (5, 8):
        notes.append((FAIL, f"BPF ring buffers need kernel 5.8 (this is {v})"))
    if lesson in ("02", "07") and rel < (5, 9):
        notes.append((OK, f"XDP attaches through netlink and stays after the process ends: bpf_link needs 5.9 "
                          f"(this is {v}); labkit removes it"))
    if lesson == "04":
        if rel < (5, 3):
            notes.append((FAIL, f"loops need kernel 5.3 (this is {v}): even the fixed loop is refused"))
        elif rel < (5, 17):
            notes.append((OK, f"bpf_loop(), which the lesson mentions, needs 5.17 (this is {v})"))
    if lesson == "08" and rel < (6, 6):
        notes.append((OK, f"TC programs attach as cls_bpf filters under the clsact qdisc (netlink): "
                          f"tcx links need 6.6 (this is {v})"))
    if lesson == "12" and rel < (5, 7):
        notes.append((FAIL, f"BPF LSM programs need kernel 5.7 (this is {v})"))
    if lesson == "13" and rel < (5, 7):
        notes.append((FAIL, f"cgroup programs attach through bpf_links, which need kernel 5.7 (this is {v})"))
    if lesson == "14":
        if rel < (5, 8):
            notes.append((FAIL, f"the application reads a BPF ring buffer, which needs kernel 5.8 (this is {v})"))
        elif rel < (5, 17):
            notes.append((OK, f"bpf_loop() needs 5.17 (this is {v}): the application leaves its loop stage out "
                              "(the lesson says so)"))
    if lesson == "09" and arch == "aarch64" and rel < (6, 4):
        notes.append((WARN, f"fentry programs load but cannot attach on arm64 before 6.4 (this is {v})"))
    return notes


def lesson_fits(checks: list[Check], release: str | None = None, arch: str | None = None) -> list[LessonFit]:
    """Each lesson on this kernel, from the doctor's checks and the kernel's
    version: ok, partial (a part of it will not work, and which), or cannot."""
    by = {c.name: c for c in checks}
    rel = kernel_release(release)
    arch = arch or os.uname().machine
    out = []
    for lesson, title, needs, parts in _LESSON_NEEDS:
        status, words = OK, []
        for name in needs:
            c = by.get(name)
            if c is None:
                status, words = "cannot", words + [f"{name}: not checked (an earlier check failed)"]
            elif c.status == FAIL:
                status, words = "cannot", words + [f"{name}: {c.detail}"]
            elif c.status == WARN:
                status = "partial" if status == OK else status
                words.append(f"{name}: {c.detail}")
        for name in parts:
            c = by.get(name)
            if c is not None and c.status != OK:
                status = "partial" if status == OK else status
                words.append(f"{name}: {c.detail}")
        for sev, text in _kernel_notes(lesson, rel, arch):
            if sev == FAIL:
                status = "cannot"
            elif sev == WARN and status == OK:
                status = "partial"
            words.append(text)
        out.append(LessonFit(lesson, title, status, "; ".join(words) or "everything it uses works here"))
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
    print(f"\nthe lessons on this kernel ({os.uname().release}, {os.uname().machine}):")
    for f in lesson_fits(checks):
        print(f"{f.status:>7}  {f.lesson} {f.title:<19} {f.detail}")
    print()
    print("the lab cannot run: fix the FAIL lines above" if failed else "the lab can run")
    return 1 if failed else 0
