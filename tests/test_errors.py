"""Each failure has its own error type, with the kernel's or clang's words in it,
and leaves nothing attached."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import uuid

import pytest

import labkit

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

BAD_C = """\
#include "labkit.h"

int lk_bad(void *ctx)
{
    int a = 1
    return a;
}
"""

VERIFIER_REJECTS = """\
#include "labkit.h"
BPF_ARRAY(table, u64, 4);

int lk_unbounded(void *ctx)
{
    u64 values[4] = {};
    u32 i = bpf_get_prandom_u32();   /* no bounds check on i */
    return values[i];
}
"""


def test_bad_c_raises_compile_error_with_snippet_lines(lab):
    with pytest.raises(labkit.CompileError) as ei:
        lab.load(BAD_C)
    e = ei.value
    assert "<text>.c:5:" in e.diagnostics  # line 5 of the text as written
    assert "expected ';'" in str(e)
    assert "/virtual/main.c" not in str(e)
    assert "modprobe" not in str(e)
    assert not lab.attachments


def test_bad_snippet_file_names_the_file(lab, tmp_path):
    f = tmp_path / "broken_snippet.c"
    f.write_text(BAD_C)
    with pytest.raises(labkit.CompileError) as ei:
        lab.load(str(f))
    assert "broken_snippet.c:5:" in str(ei.value)


def test_verifier_rejection_raises_verifier_error_with_log(lab):
    prog = lab.load(VERIFIER_REJECTS)
    with pytest.raises(labkit.VerifierError) as ei:
        lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid")
    e = ei.value
    assert "lk_unbounded" in str(e)
    assert "processed" in e.log or "R0" in e.log or "invalid" in e.log.lower()
    assert len(e.log.splitlines()) > 3  # the whole log, not one line
    assert "unbounded min value" in str(e) or "invalid" in str(e).lower()
    assert not lab.attachments


def _silence_libbcc_logs(prog, monkeypatch):
    """Make libbcc print nothing for loads without BCC's DEBUG_BPF, as it does
    on kernels whose verifier answers E2BIG ("Program too large (N insns), at
    most 4096 insns" and no log): the kernel's refusal is real, only libbcc's
    text is thrown away."""
    real = prog.bpf.load_func

    def quiet_load(name, prog_type, *args, **kwargs):
        if prog.bpf.debug & 0x2:  # bcc.DEBUG_BPF: the load that asks for the log up front
            return real(name, prog_type, *args, **kwargs)
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(2)
        os.dup2(devnull, 2)
        try:
            return real(name, prog_type, *args, **kwargs)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)

    monkeypatch.setattr(prog.bpf, "load_func", quiet_load)


def test_verifier_error_holds_the_kernels_log_when_libbcc_printed_none(lab, monkeypatch):
    """The E2BIG path, forced on any kernel: libbcc printed nothing, and labkit
    asked the kernel for its log itself."""
    prog = lab.load(VERIFIER_REJECTS)
    _silence_libbcc_logs(prog, monkeypatch)
    with pytest.raises(labkit.VerifierError) as ei:
        lab.attach_tracepoint(prog, "syscalls:sys_enter_getppid")
    e = ei.value
    assert re.search(r"^processed \d+ insns", e.log, re.M), e.log   # the verifier's own summary line
    assert re.search(r"^\d+: \(", e.log, re.M), e.log              # and its walk, instruction by instruction
    assert "unbounded min value" in str(e) or "invalid" in str(e).lower()
    assert "4096 insns" not in str(e) + e.log
    assert not lab.attachments


def test_unbounded_loop_log_names_the_limit_it_met(lab):
    """verifier_unbounded_loop.c meets the jump-sequence limit; some kernels
    (6.18's fc-v1252 build) answer it with E2BIG, where libbcc prints no log."""
    with pytest.raises(labkit.VerifierError) as ei:
        lab.attach_tracepoint("verifier_unbounded_loop", "syscalls:sys_enter_write")
    e = ei.value
    assert "The sequence of 8193 jumps is too complex." in str(e)
    assert re.search(r"^processed \d+ insns", e.log, re.M)
    assert "at most 4096 insns" not in str(e) + e.log
    assert not lab.attachments


def test_unknown_tracepoint_names_it(lab):
    with pytest.raises(labkit.AttachError, match="no_such_event") as ei:
        lab.attach_tracepoint("trace_clone", "sched:no_such_event", fn="lk_clone_tp")
    assert ei.value.target == "sched:no_such_event"


def test_unknown_snippet_names_it(lab):
    with pytest.raises(labkit.LabkitError, match="no BPF snippet named 'nope_nothing'"):
        lab.load("nope_nothing")


@pytest.fixture
def throwaway_user():
    name = f"lkt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def test_unprivileged_user_gets_privilege_error(throwaway_user):
    code = (
        "import labkit\n"
        "try:\n"
        "    labkit.Lab().trace_clone()\n"
        "except labkit.PrivilegeError as e:\n"
        "    print('PrivilegeError:', e, '|', ','.join(e.missing))\n"
    )
    u = throwaway_user
    r = subprocess.run(
        ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, cwd="/", env={**os.environ, "HOME": "/tmp"},
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("PrivilegeError:"), out + r.stderr
    assert f"uid {u.pw_uid} ({u.pw_name})" in out
    assert "CAP_BPF" in out and "CAP_PERFMON" in out


def test_bad_arguments_are_labkit_errors_and_value_errors(lab):
    """ArgumentError is a LabkitError and, for code that caught the bare ValueError before, a ValueError."""
    with pytest.raises(labkit.LabkitError) as ei:
        labkit.Sandbox(prefixlen=33)
    assert isinstance(ei.value, ValueError) and type(ei.value).__name__ == "ArgumentError"
    with pytest.raises(ValueError, match="pid"):
        lab.trace_clone(pid=-1)


def test_a_program_of_the_wrong_kind_is_an_attach_error(lab):
    with pytest.raises(labkit.AttachError) as ei:
        lab.attach_tracepoint("xdp_icmp_drop", "syscalls:sys_enter_getppid")
    e = ei.value
    assert type(e).__name__ == "ProgramKindError"
    assert (e.kind, e.call, e.target) == ("xdp", "attach_tracepoint", "xdp_icmp_drop.c")
    assert not lab.attachments
