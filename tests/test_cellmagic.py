"""``%%bpf``: C in a notebook cell, compiled into a named program; errors point
into the cell; re-running the cell replaces the program (real kernel, in an
in-process IPython shell)."""

from __future__ import annotations

import os

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from kstate import perf_attachments

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

ME = os.getpid()
CELL = """%%bpf count_calls
BPF_ARRAY(calls, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if ((bpf_get_current_pid_tgid() >> 32) != PID)
        return 0;
    int k = 0;
    u64 *v = calls.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
""".replace("PID", str(ME))


@pytest.fixture
def shell():
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    yield sh
    lab.close()
    sh.user_ns.clear()
    InteractiveShell.clear_instance()
    assert labkit.live_attachments() == [] and perf_attachments(ME) == []


def run(shell, text: str):
    result = shell.run_cell(text)
    return result.error_in_exec or result.error_before_exec


def test_cell_becomes_a_named_program_that_counts_once(shell, capsys):
    assert run(shell, CELL) is None
    prog = shell.user_ns["count_calls"]
    assert isinstance(prog, labkit.Program) and prog.name == "count_calls"
    assert "attached: tracepoint syscalls:sys_enter_getppid" in capsys.readouterr().out
    for _ in range(77):
        os.getppid()
    assert prog["calls"][0].value == 77 and len(perf_attachments(ME)) == 1
    assert prog in shell.user_ns["lab"]._programs or prog.auto_attachments[0] in shell.user_ns["lab"].attachments


def test_rerunning_the_cell_replaces_the_program(shell):
    assert run(shell, CELL) is None
    first = shell.user_ns["count_calls"]
    assert run(shell, CELL) is None
    second = shell.user_ns["count_calls"]
    assert first is not second and first.closed and not second.closed
    assert len(perf_attachments(ME)) == 1
    os.getppid()
    assert second["calls"][0].value == 1


def test_compile_error_points_at_the_cell_line(shell):
    broken = "%%bpf broken\nint lk_x(void *ctx)\n{\n    int a = 1\n    return a;\n}\n"
    err = run(shell, broken)
    assert isinstance(err, labkit.CompileError)
    # the cell's C starts on the line after %%bpf: `int a = 1` is line 3 of it
    assert "broken:3:" in str(err) and "expected ';'" in str(err)
    assert "broken" not in shell.user_ns


def test_verifier_error_points_at_the_cell_line(shell):
    cell = ("%%bpf unchecked\n#include <uapi/linux/bpf.h>\nint lk_xdp(struct xdp_md *ctx)\n{\n"
            "    unsigned char *p = (void *)(long)ctx->data;\n    return p[20] ? XDP_PASS : XDP_DROP;\n}\n")
    assert run(shell, cell) is None
    prog = shell.user_ns["unchecked"]
    import bcc  # the program type to load it as

    with pytest.raises(labkit.VerifierError) as ei:
        prog.load("lk_xdp", bcc.BPF.XDP)
    log = ei.value.log
    assert "; return p[20] ? XDP_PASS : XDP_DROP;" in log       # the cell's own line, quoted by the verifier
    if " @ " in log:                  # kernels that annotate lines (6.2+): mapped to the cell's line number
        assert "@ unchecked:5" in log


@pytest.mark.parametrize("line,says", [
    ("%%bpf", "usage"),
    ("%%bpf 2fast", "identifier"),
    ("%%bpf x --lab nolab", "no labkit.Lab called 'nolab'"),
])
def test_bad_magic_lines_say_what_to_do(shell, line, says):
    err = run(shell, f"{line}\nint lk_x(void *ctx) {{ return 0; }}\n")
    assert isinstance(err, labkit.LabkitError) and says in str(err)


def test_without_a_lab_variable_the_magic_uses_its_own(shell):
    del shell.user_ns["lab"]
    assert run(shell, CELL) is None
    prog = shell.user_ns["count_calls"]
    os.getppid()
    assert prog["calls"][0].value == 1
    shell._labkit_bpf_magic.programs.pop("count_calls").close()
