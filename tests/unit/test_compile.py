"""Compile diagnostics and verifier logs mapped back to the snippet (labkit.programs.compile)."""

from __future__ import annotations

import pytest

import labkit
from labkit.programs.compile import map_diagnostics, map_verifier_log, resolve_source


SRC = """#include "labkit.h"
// a comment
int lk_x(void *ctx) {
    int a = 1
    return a;
}
"""


def test_diagnostic_on_the_right_line_is_kept():
    text = "/virtual/main.c:4:14: error: expected ';' at end of declaration\n    int a = 1\n             ^\n"
    out = map_diagnostics(text, SRC, "mine.c")
    assert out.startswith("mine.c:4:14: error: expected ';'")


def test_diagnostic_shifted_by_rewrite_is_mapped_back():
    # BCC's rewrite added lines above: clang says 9, the snippet has it on 4
    text = "/virtual/main.c:9:14: error: expected ';' at end of declaration\n    int a = 1\n             ^\n"
    assert map_diagnostics(text, SRC, "mine.c").startswith("mine.c:4:14: error")


def test_diagnostic_noise_is_dropped():
    text = "sh: 1: modprobe: not found\n/virtual/main.c:4:3: warning: w\n    int a = 1\n"
    out = map_diagnostics(text, SRC, "s.c")
    assert "modprobe" not in out and out.startswith("s.c:4:3: warning: w")


def test_verifier_log_lines_point_into_the_snippet():
    log = "0: R1=ctx()\n; int a = 1 @ main.c:40\n1: (b7) r0 = 1\n; unknown() @ main.c:7"
    out = map_verifier_log(log, SRC, "mine.c").splitlines()
    assert out[1] == "; int a = 1 @ mine.c:4"       # rewritten file's line 40 is the snippet's line 4
    assert out[3] == "; unknown() @ main.c:7"       # no such text in the snippet: left alone
    assert out[0] == "0: R1=ctx()" and out[2] == "1: (b7) r0 = 1"


def test_unknown_snippet_names_close_matches():
    with pytest.raises(labkit.LabkitError, match="trace_clone"):
        resolve_source("trace_clon")
