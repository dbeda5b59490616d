"""``%%bpf``: C in a notebook cell, compiled into a named program; errors point
into the cell with the cell's own line numbers (the %%bpf line is line 1) and
show without labkit's traceback; a cell that fails leaves no program under its
name, and a check given that name says the cell did not compile; re-running
the cell replaces the program (real kernel, in an in-process IPython shell,
and once through a real kernel with nbclient)."""

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
    # JupyterLab numbers the cell's lines from the %%bpf line: `int a = 1` is line 3
    broken = "%%bpf broken\nint lk_x(void *ctx) {\n    int a = 1\n    return a;\n}\n"
    err = run(shell, broken)
    assert isinstance(err, labkit.CompileError)
    assert "broken:3:" in str(err) and "expected ';'" in str(err)
    assert err.diagnostics.startswith("broken:3:") and "broken:2:" not in err.diagnostics
    failed = shell.user_ns["broken"]
    assert not isinstance(failed, labkit.Program) and not failed
    assert repr(failed).startswith("%%bpf broken did not compile: broken:3:")


def test_verifier_error_points_at_the_cell_line(shell):
    cell = ("%%bpf unchecked\n#include <uapi/linux/bpf.h>\nint lk_xdp(struct xdp_md *ctx)\n{\n"
            "    unsigned char *p = (void *)(long)ctx->data;\n    return p[20] ? XDP_PASS : XDP_DROP;\n}\n")
    assert run(shell, cell) is None
    prog = shell.user_ns["unchecked"]
    import bcc  # the program type to load it as

    with pytest.raises(labkit.VerifierError) as ei:
        prog.load_function("lk_xdp", bcc.BPF.XDP)
    log = ei.value.log
    assert "; return p[20] ? XDP_PASS : XDP_DROP;" in log       # the cell's own line, quoted by the verifier
    if " @ " in log:                  # kernels that annotate lines (6.2+): the cell's line number, %%bpf is 1
        assert "XDP_DROP; @ unchecked:6" in log and "ctx->data; @ unchecked:5" in log


BROKEN = CELL.replace("int k = 0;", "int k = 0")   # line 7 of the cell
UNCHECKED = """%%bpf count_calls
BPF_HASH(calls, int, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    int k = 0;
    u64 *v = calls.lookup(&k);
    return *v;
}
"""


def test_a_failed_cell_leaves_no_program_and_a_check_says_so(shell):
    assert run(shell, CELL) is None
    old = shell.user_ns["count_calls"]
    err = run(shell, BROKEN)
    assert isinstance(err, labkit.CompileError) and "count_calls:7:" in str(err)
    failed = shell.user_ns["count_calls"]
    assert failed is not old and not isinstance(failed, labkit.Program)
    assert old.closed and perf_attachments(ME) == []          # the old program is given back, as before
    assert "count_calls" not in shell._labkit_bpf_magic.programs
    assert repr(failed).startswith("%%bpf count_calls did not compile: count_calls:7:")
    with pytest.raises(AttributeError, match="did not compile"):
        failed.functions
    with pytest.raises(labkit.LabkitError, match="did not compile"):
        failed["calls"]
    with pytest.raises(labkit.ArgumentError, match="did not compile"):
        shell.user_ns["lab"].attach_tracepoint(failed, "syscalls:sys_enter_getppid")

    graded = []
    from labkit.exercises import Exercise, lesson

    always = Exercise("q9", "anything", lambda a: graded.append(a) or ("fine", {}), "", "", lambda: None)
    for ex in (always, lesson("01").q2):
        r = ex.check(failed)
        assert r.status == "incorrect" and r.score == 0.0, r
        assert "%%bpf count_calls cell did not compile" in r.message and "run it again" in r.message
        assert "count_calls:7:" in r.message
    assert graded == []                                       # nothing was graded, least of all the old program

    # fixed and run again: a program again, counted as before
    assert run(shell, CELL) is None
    assert isinstance(shell.user_ns["count_calls"], labkit.Program)
    os.getppid()
    assert shell.user_ns["count_calls"]["calls"][0].value == 1


def test_a_cell_the_verifier_refuses_leaves_no_program(shell):
    assert run(shell, CELL) is None
    old = shell.user_ns["count_calls"]
    err = run(shell, UNCHECKED)
    assert isinstance(err, labkit.VerifierError)
    if " @ " in err.log:
        assert "return *v; @ count_calls:7" in err.log       # counting the %%bpf line
    failed = shell.user_ns["count_calls"]
    assert repr(failed).startswith("%%bpf count_calls did not load: the verifier rejected")
    assert old.closed and perf_attachments(ME) == []
    from labkit.exercises import Exercise

    r = Exercise("q9", "anything", lambda a: ("fine", {}), "", "", lambda: None).check(failed)
    assert r.status == "incorrect" and "%%bpf count_calls cell did not load" in r.message


LABKIT = os.path.dirname(labkit.__file__)


def shown_error(shell, monkeypatch, text: str) -> tuple[BaseException, str]:
    """What IPython shows for a cell that raises (the traceback ipykernel sends as the error output)."""
    shown = []
    real = shell._showtraceback
    monkeypatch.setattr(shell, "_showtraceback", lambda etype, value, stb: (shown.append(stb), real(etype, value, stb)))
    err = run(shell, text)
    assert len(shown) == 1
    return err, "\n".join(shown[0])


@pytest.mark.parametrize("cell,kind,says", [
    ("%%bpf broken\nint lk_x(void *ctx) {\n    int a = 1\n    return a;\n}\n", "CompileError", "broken:3:"),
    (UNCHECKED, "VerifierError", "the verifier rejected"),
    ("%%bpf 2fast\nint lk_x(void *ctx) { return 0; }\n", "ArgumentError", "identifier"),
])
def test_the_error_shows_without_labkits_traceback(shell, monkeypatch, capsys, cell, kind, says):
    err, text = shown_error(shell, monkeypatch, cell)
    assert type(err).__name__ == kind
    assert text.startswith(f"{kind}: ") and says in text
    assert "Traceback" not in text and "File " not in text and LABKIT not in text and ".py" not in text
    printed = capsys.readouterr()
    assert LABKIT not in printed.out + printed.err and says in printed.out


def test_a_failed_cell_is_an_error_output_and_stops_run_all(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import labkit"),
                nbformat.v4.new_code_cell("%%bpf broken\nint lk_x(void *ctx) {\n    int a = 1\n    return a;\n}"),
                nbformat.v4.new_code_cell("print('after')")]
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, kernel_name="labkit", timeout=120, allow_errors=False,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    [out] = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    text = "\n".join(out.traceback)
    assert out.ename == "CompileError" and text.startswith("CompileError: broken does not compile: broken:3:")
    assert "Traceback" not in text and "File " not in text and "labkit/" not in text
    assert nb.cells[2].outputs == []                          # Run All stopped at the failed cell


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
