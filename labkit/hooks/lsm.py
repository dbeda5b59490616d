"""BPF LSM: a function on a Linux Security Module hook (``LSM_PROBE(hook, ...)``), and the guard that keeps
one from refusing things to the whole machine.

An LSM program runs at its hook (``file_open``, ``bprm_check_security``, ...) for every process of the
machine, and what it returns is the hook's verdict: 0 lets the act go on, a negative errno refuses it (the
process sees that errno). It needs ``bpf`` in the kernel's active LSM list (:func:`active_lsms`): a kernel
built with CONFIG_BPF_LSM but booted without it loads and attaches the program, which then never runs;
such a kernel needs ``lsm=<its list>,bpf`` on its command line. Some kernels refuse the load itself (EPERM
before the verifier, as they refuse fentry: both run through the BPF trampoline). :func:`available` says
which, and labkit refuses an LSM program with a NotSupportedError that says why before it loads anything.

BCC names such a function ``lsm__<hook>``; ``Lab.load`` attaches it. **The guard**: right after each LSM
function is attached, labkit tries, from the calling process (outside the lab's cgroups: the notebook's
own), what the caller names (``Lab.load(..., outside={"exec": [...], "open": [...]})``: the things the
lesson or exercise refuses inside its cgroup), then to open Python itself and run ``/bin/true``. When one
of them is refused, the program reaches beyond the lab's cgroups (a missing or inverted cgroup test would
refuse it to JupyterLab, SSH, everyone): labkit stops trying, detaches it at once, and raises
:class:`MachineWideError` naming what was refused and how long the program was attached.
"""

from __future__ import annotations

import errno as _errno
import functools
import gzip
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labkit._errors import ArgumentError, AttachError, LabkitError, NotSupportedError, VerifierError
from labkit.hooks.cgroup import cgroup_of
from labkit.hooks.probe import ProbeHook
from labkit.hooks.protocol import register
from labkit.programs.compile import Program, capture_fd2, compile_c, map_verifier_log
from labkit.programs.returns import constant_returns

__all__ = ["HOOK", "LsmHook", "LsmRangeError", "LsmReturnError", "MachineWideError", "active_lsms", "available",
           "guard_acts", "outside_check", "positive_returns", "range_refusal", "return_check"]

_SECURITYFS_LSM = Path("/sys/kernel/security/lsm")
#: what the guard always tries from outside: run a program, open the Python that runs the lab
_TRUE = shutil.which("true") or "/bin/true"


class MachineWideError(AttachError):
    """An LSM program refused, to a process outside the lab's cgroups, something the guard tried right after
    attaching it: labkit detached it at once. ``refused``: [{"act": "exec" | "open", "path", "errno",
    "error"}], ``attached_ms``: how long it was attached."""

    def __init__(self, message: str, *, target: str = "", refused: list[dict] | None = None,
                 attached_ms: float = 0.0):
        super().__init__(message, target=target, errno=(refused or [{}])[0].get("errno"))
        self.refused = list(refused or [])
        self.attached_ms = attached_ms


class LsmReturnError(AttachError):
    """An LSM function returns a positive constant on some path (``return EPERM;`` for ``return -EPERM;``):
    labkit refuses to attach it. ``values``: the positive values."""

    def __init__(self, message: str, *, target: str = "", values: tuple[int, ...] = ()):
        super().__init__(message, target=target)
        self.values = tuple(values)


class LsmRangeError(VerifierError):
    """The kernel's verifier refused an LSM function because it could not prove the value returned in the
    range a verdict must have (``low``..``high``: [-4095, 0]); kernels since 6.12 check it (commit 5d99e198be27,
    "bpf, lsm: Add check for BPF LSM return value"), older ones do not. ``negation``: the value was the compiler's
    ``r0 = -r0`` (clang writes ``cond ? -EPERM : 0`` as minus the condition, EPERM being 1), which such a
    verifier does not follow. ``log``: the whole verifier log."""

    def __init__(self, message: str, *, log: str = "", program: str = "", low: int = -4095, high: int = 0,
                 negation: bool = False):
        super().__init__(message, log=log, program=program)
        self.low, self.high, self.negation = low, high, negation


#: the verifier's words for a return value it cannot prove to be a verdict (6.12 and later)
_RANGE_RE = re.compile(r"At program exit the register R0 (?:has )?(.*?)\s*should have been in \[(-?\d+), (-?\d+)\]")
#: a negation in a verifier log's listing ("44: (87) r6 = -r6"; 32-bit: (84) w6 = -w6)
_NEG_RE = re.compile(r"^\s*\d+: \((?:87|84)\) ([rw]\d+) = -\1\b", re.M)
#: how to keep a verdict a constant the verifier sees on its own path
_DENY_FIX = ('int deny = -EPERM; asm volatile("" : "+r"(deny)); then return refuse ? deny : 0; (the compiler no '
             "longer knows deny's value, so it keeps two paths, and on each the verifier sees a constant: -1 or 0)")


def range_refusal(fn: str, name: str, log: str, source: str = "") -> LsmRangeError | None:
    """The LsmRangeError for a verifier log that refused ``fn`` (of program ``name``) for its return value;
    None when the log says something else. Pure: the log is what the kernel printed."""
    m = _RANGE_RE.search(log)
    if not m:
        return None
    seen, low, high = (m.group(1).strip() or "a value it could not bound"), int(m.group(2)), int(m.group(3))
    before = log[:m.start()]
    negs = list(_NEG_RE.finditer(before))
    # the negation is the cause when the listing's last instructions (a move and the exit) follow it
    negation = bool(negs) and len(before[negs[-1].end():].strip().splitlines()) <= 3
    # ... and it negated a condition (0 or 1: "rN &= 1" just before), not a value of the program's own
    negation = negation and bool(re.search(rf"\((?:57|54)\) {negs[-1].group(1)} &= 1\b[^\n]*\n[^\n]*\Z",
                                           before[:negs[-1].start()]))
    if negation:
        why = ("your C returns -EPERM or 0, which is right, but clang computed the choice as r0 = -(condition) (EPERM "
               "is 1, so 'refuse ? -EPERM : 0' is minus the condition) and this verifier does not follow a negation. "
               f"Keep -EPERM out of the compiler's reach: {_DENY_FIX}")
    else:
        why = ("a value read from a map, or computed, is not a verdict the verifier can bound. Return constants only: "
               f"0 to let the act go on, -EPERM to refuse; to choose between them by a value, {_DENY_FIX}")
    shown = map_verifier_log(log.strip(), source, name) if source else log.strip()
    return LsmRangeError(
        f"{fn} ({name}): this kernel's verifier checks what an LSM program returns, and it must be provably in "
        f"[{low}, {high}] at every exit (0, or a negative errno); here the verifier knew r0 only as {seen}: {why}. "
        "Kernels before 6.12 do not check this, so the same program may load elsewhere\n"
        "--- last lines of the verifier log (full log in .log) ---\n" + "\n".join(shown.splitlines()[-6:]),
        log=shown, program=fn, low=low, high=high, negation=negation)


def positive_returns(prog: Program, fn: str) -> list[int]:
    """The positive constants LSM function ``fn`` of ``prog`` may return (read from its instructions before
    the kernel sees them: labkit.programs.returns); [] when none is certain."""
    return sorted(v for v in constant_returns(prog.bpf.dump_func(fn.encode())) if v > 0)


# ------------------------------------------------------------------ is BPF LSM on?
def _kernel_config() -> str:
    for p in (Path(f"/boot/config-{os.uname().release}"), Path("/proc/config.gz")):
        try:
            return gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
        except OSError:
            continue
    return ""


def active_lsms(securityfs: Path = _SECURITYFS_LSM, cmdline: str | None = None,
                config: str | None = None) -> tuple[list[str] | None, str]:
    """(the kernel's active LSMs in order, where that was read), or (None, why not known).

    /sys/kernel/security/lsm when securityfs is mounted; else the ``lsm=`` of the kernel's command line; else
    the list the kernel was built with (CONFIG_LSM in /boot/config-$(uname -r) or /proc/config.gz)."""
    try:
        return [x for x in securityfs.read_text().strip().split(",") if x], str(securityfs)
    except OSError:
        pass
    if cmdline is None:
        try:
            cmdline = Path("/proc/cmdline").read_text()
        except OSError:
            cmdline = ""
    m = re.search(r"(?:^|\s)lsm=(\S+)", cmdline.split(" -- ")[0])
    if m:
        return [x for x in m.group(1).split(",") if x], "lsm= on the kernel command line"
    config = _kernel_config() if config is None else config
    m = re.search(r'^CONFIG_LSM="([^"]*)"', config, re.M)
    if m:
        return [x for x in m.group(1).split(",") if x], "CONFIG_LSM, the list the kernel was built with"
    return None, "securityfs is not mounted, the command line has no lsm= and the kernel's config is not readable"


#: a program that refuses nothing and counts the opens of one process (LK_PID): proof that LSM programs run
_PROBE_C = """
BPF_ARRAY(seen, u64, 1);
LSM_PROBE(file_open, struct file *file)
{
    if ((bpf_get_current_pid_tgid() >> 32) == LK_PID) {
        int k = 0;
        u64 *n = seen.lookup(&k);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    return 0;
}
"""


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(whether BPF LSM programs load, attach and run here, why or why not): ``bpf`` in the LSM list, then a
    program that refuses nothing loaded and attached to ``file_open``, this process opens a file, and the
    program must have seen it (a kernel whose bpf LSM is not active attaches such a program and never runs it)."""
    lsms, where = active_lsms()
    listed = f"{','.join(lsms)} (from {where})" if lsms is not None else f"not known ({where})"
    if lsms is not None and "bpf" not in lsms:
        return False, (f"bpf is not among this kernel's LSMs, {listed}: an LSM program would attach and never run. "
                       f"Boot with lsm={','.join(lsms)},bpf on the kernel command line (Debian: GRUB_CMDLINE_LINUX "
                       "in /etc/default/grub, update-grub, reboot)")
    try:
        import bcc  # noqa: F401  # lazy: BCC comes from the distro
    except ImportError as e:
        return False, f"BCC is not importable: {e}"
    try:
        compiled = compile_c(_PROBE_C, "labkit lsm probe", [f"-DLK_PID={os.getpid()}"], need="tracing")
    except LabkitError as e:
        return False, f"a probe LSM program did not compile: {str(e).splitlines()[0]}"
    b = compiled.bpf
    seen = 0
    try:
        with capture_fd2() as cap:
            try:
                b.attach_lsm(fn_name=b"lsm__file_open")
                err = None
            except Exception as e:  # BCC raises a bare Exception (and says "Need super-user privileges" to EPERM)
                err = e
        if err is None:
            with open(sys.executable, "rb") as f:
                f.read(1)
            seen = sum(int(v.value) for v in b["seen"].values())
            b.detach_lsm(fn_name=b"lsm__file_open")
    finally:
        b.cleanup()
    if err is not None:
        said = " ".join((cap[0] if cap else "").split()) or str(err)
        return False, (f"this kernel refuses BPF LSM programs ({said}); its LSMs: {listed}. The load fails before "
                       "the verifier, as fentry's does on such kernels (both are attached through BTF and the BPF "
                       "trampoline)")
    if not seen:
        return False, (f"an LSM program attached but never ran (this process opened a file and it saw nothing): bpf "
                       f"is not an active LSM here. Its LSMs: {listed}; boot with bpf added to lsm= on the kernel "
                       "command line")
    return True, f"an LSM program loaded, attached and ran (it saw this process open a file); LSMs: {listed}"


#: two programs the return-value probe loads (never attaches): one returns a value read from a map, one the
#: negation clang makes of "refuse ? -EPERM : 0" when the condition is computed without a branch (0 or 1,
#: negated); its instructions are checked to hold that negation (tests/unit/test_hooks_lsm.py)
_RANGE_PROBE_C = {
    "range": """
BPF_ARRAY(verdict, int, 1);
LSM_PROBE(file_open, struct file *file)
{
    int k = 0;
    int *v = verdict.lookup(&k);
    return v ? *v : 0;
}
""",
    "negation": """
LSM_PROBE(file_open, struct file *file)
{
    return -(int)(bpf_get_prandom_u32() & 1);      /* r0 &= 1; r0 = -r0: what clang makes of a condition */
}
""",
}


@functools.lru_cache(maxsize=1)
def return_check() -> dict | None:
    """What this kernel's verifier asks of an LSM program's return value, found by loading two programs (never
    attaching them): {"range": whether it refuses a return value it cannot prove in [-4095, 0] (a value read
    from a map; kernels since 6.12), "negation": whether it accepts r0 = -(a condition) (clang's form of
    "refuse ? -EPERM : 0")}. None when BPF LSM programs do not run here (:func:`available`) or a probe failed
    for another reason."""
    if not available()[0]:
        return None
    import bcc  # lazy: BCC comes from the distro

    out: dict = {}
    for what, text in _RANGE_PROBE_C.items():
        try:
            compiled = compile_c(text, f"labkit lsm {what} probe", [], need="tracing")
        except LabkitError:
            return None
        try:
            with capture_fd2() as cap:
                try:
                    compiled.bpf.load_func(b"lsm__file_open", bcc.BPF.LSM)
                    ok = True
                except Exception:  # BCC raises a bare Exception
                    ok = False
        finally:
            compiled.bpf.cleanup()
        if not ok and range_refusal("lsm__file_open", what, cap[0] if cap else "") is None:
            return None                     # refused for something else: not known
        out[what] = ok
    return {"range": not out["range"], "negation": out["negation"]}


# ------------------------------------------------------------------ the guard
def guard_acts(outside: Any = None) -> list[tuple[str, str]]:
    """The acts the guard tries, in order: the opens of ``outside`` ({"exec": [paths], "open": [paths]}), its
    execs, then opening Python itself and running /bin/true (what the caller names is what its program is
    likeliest to refuse; opens cost less than execs). ArgumentError for anything else."""
    defaults = [("open", sys.executable), ("exec", _TRUE)]
    if outside is None:
        return defaults
    if not isinstance(outside, dict) or not set(outside) <= {"exec", "open"}:
        raise ArgumentError("outside must be a dict {'exec': [programs], 'open': [files]}: what a process outside "
                            f"the lab's cgroups must still be able to do while an LSM program is attached, got "
                            f"{outside!r}")
    acts: list[tuple[str, str]] = []
    for act in ("open", "exec"):
        paths = outside.get(act, [])
        if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, (list, tuple)):
            raise ArgumentError(f"outside[{act!r}] must be a list of paths, got {paths!r}")
        for p in paths:
            if not isinstance(p, (str, os.PathLike)) or not os.path.exists(p):
                raise ArgumentError(f"outside[{act!r}] names {p!r}, which is not a file: give the path of a "
                                    + ("program to run" if act == "exec" else "file to open"))
            if act == "exec" and not os.access(p, os.X_OK):
                raise ArgumentError(f"outside['exec'] names {p!r}, which is not executable")
            if (act, os.fspath(p)) not in acts:
                acts.append((act, os.fspath(p)))
    return acts + [a for a in defaults if a not in acts]


def outside_check(acts: list[tuple[str, str]]) -> list[dict]:
    """Try each act from this process (open: open and read a byte; exec: run the program, without
    redirecting anything: opening /dev/null is an open too), up to the first one refused (the program is
    still attached meanwhile). What was refused, with the errno: [] when everything worked."""
    refused: list[dict] = []
    for act, path in acts:
        try:
            if act == "open":
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.read(fd, 1)
                finally:
                    os.close(fd)
            else:
                rc = subprocess.run([path], timeout=10).returncode
                if rc != 0:
                    refused.append({"act": act, "path": path, "errno": None, "error": f"it ran and exited {rc}"})
        except OSError as e:
            refused.append({"act": act, "path": path, "errno": e.errno,
                            "error": f"{_errno.errorcode.get(e.errno, e.errno)}: {e.strerror}"})
        except subprocess.TimeoutExpired:
            refused.append({"act": act, "path": path, "errno": None, "error": "it did not end within 10 s"})
        if refused:
            break
    return refused


def _said(refused: list[dict]) -> str:
    return "; ".join(f"{'running' if r['act'] == 'exec' else 'opening'} {r['path']} ({r['error']})"
                     for r in refused)


class LsmHook(ProbeHook):
    name = "lsm"
    fits = ("lsm",)
    home = {"lsm": "lab.load(program) attaches an LSM_PROBE function by itself."}
    probe_kinds = ("lsm",)
    refused_means_unsupported = True

    def check_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        # An LSM hook's callers take 0 (go on) or a negative errno (refuse, and the process sees it). A positive
        # value is neither: some kernels' verifiers refuse it, older ones let it through, and a caller that
        # turns a nonzero "error" into a pointer then crashes the kernel. Checked first, on every kernel.
        bad = positive_returns(prog, fn)
        if bad:
            shown = ", ".join(map(str, bad))
            raise LsmReturnError(
                f"{fn} ({prog.name}) returns {shown} on some path: an LSM program returns 0 to let the act go on or "
                f"a negative errno to refuse it (return -EPERM;, the minus included). A positive value is no "
                "verdict the kernel knows (where the verifier lets it through, a hook's caller can take it for a "
                "pointer and crash the kernel): labkit did not attach it", target=f"lsm:{target}", values=bad)
        ok, why = available()
        if not ok:
            raise NotSupportedError(f"{fn} is a BPF LSM program ({target}) and this kernel cannot run it: {why}. "
                                    "`labkit doctor` says the same (its 'hook: lsm' row)", feature="lsm")

    def attach_probe(self, prog: Program, kind: str, target: str, fn: str) -> None:
        super().attach_probe(prog, kind, target, fn)
        t0 = time.monotonic()
        refused = outside_check(getattr(prog, "guard_acts", None) or guard_acts())
        if not refused:
            return
        self.bcc_detach(prog, kind, target, fn)        # first: every act of the machine goes through it
        ms = (time.monotonic() - t0) * 1000
        raise MachineWideError(
            f"{fn} ({prog.name}) refused, to a process outside the lab's cgroups (this one, pid {os.getpid()} in "
            f"cgroup {cgroup_of()}), {_said(refused)}: it would refuse that to the whole machine, JupyterLab and "
            f"SSH included. labkit detached it {ms:.0f} ms after attaching it. An LSM program runs for every "
            "process: refuse only when bpf_get_current_cgroup_id() is the sandbox's cgroup id",
            target=f"lsm:{target}", refused=refused, attached_ms=ms)

    def refused(self, prog: Program, kind: str, target: str, fn: str, said: str) -> LabkitError:
        ranged = range_refusal(fn, prog.name, said, prog.source)
        if ranged is not None:
            return ranged
        return NotSupportedError(f"{fn} is a BPF LSM program ({target}) and this kernel would not attach it: "
                                 f"{said}. `labkit doctor` says whether this kernel runs BPF LSM programs "
                                 "(its 'hook: lsm' row)", feature="lsm")

    def bcc_attach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.attach_lsm(fn_name=fn.encode())

    def bcc_detach(self, prog: Program, kind: str, target: str, fn: str) -> None:
        prog.bpf.detach_lsm(fn_name=fn.encode())


HOOK = register(LsmHook())
