"""The bench's load generator (C and Python): it makes exactly the calls it is asked for
and reports them. No BPF, no root: a child process and, if there is one, a C compiler."""

from __future__ import annotations

import ast

import pytest

from labkit.commands.bench.loadgen import LOADGEN_FALLBACK, LOADGEN_SOURCE, LoadGen, build_loadgen
from labkit.commands.bench.tracers import PRINTK_SOURCE, RAW_BCC_SOURCE


def test_python_load_generator_counts_exactly(tmp_path):
    kind, exe, desc = build_loadgen(tmp_path, prefer="python")
    assert kind == "python" and "Python" in desc
    lg = LoadGen(kind, exe)
    try:
        n, secs = lg.run(0, 0, 12_345)
        assert n == 12_345 and secs > 0
        n, secs = lg.run(20_000, 0.2)
        assert 0 < n <= 20_000 * secs + 2
    finally:
        lg.close()
    assert lg.proc.poll() is not None


def test_c_load_generator_counts_exactly(tmp_path):
    kind, exe, desc = build_loadgen(tmp_path)
    if kind != "c":
        pytest.skip("no C compiler on this machine")
    lg = LoadGen(kind, exe)
    try:
        assert lg.run(0, 0, 54_321)[0] == 54_321
        lg.start(1_000, 30)
        lg.interrupt()                                   # SIGUSR1 ends a run early
        n, secs = lg.result(timeout=5)
        assert secs < 5
    finally:
        lg.close()


def test_program_sources_ship_with_the_package():
    """The C and Python the bench runs are files next to its modules, read at run time."""
    for src in (LOADGEN_SOURCE, LOADGEN_FALLBACK, RAW_BCC_SOURCE, PRINTK_SOURCE):
        assert src.is_file() and src.parent == LOADGEN_SOURCE.parent, src
    assert "struct event" in RAW_BCC_SOURCE.read_text()
    tree = ast.parse(LOADGEN_FALLBACK.read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert imported == {"os", "signal", "sys", "time"}       # a script that starts fast, without labkit
