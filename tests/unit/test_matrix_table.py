"""The kernel matrix's table (tests/stock_kernel/matrix_table.py), from junit
files written here: which lesson a test belongs to, what a cell says, and the
README's table replaced between its markers only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "stock_kernel"
spec = importlib.util.spec_from_file_location("matrix_table", HERE / "matrix_table.py")
mt = importlib.util.module_from_spec(spec)
sys.modules["matrix_table"] = mt      # dataclasses look their module up there
spec.loader.exec_module(mt)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_notebooks" name="test_lesson_runs_twice_and_gives_everything_back[04-verifier-mistakes]"/>
<testcase classname="tests.test_notebooks" name="test_04_verifier_errors_and_their_logs">
  <failure message="AssertionError: 'The sequence of 8193 jumps' not in log">trace</failure></testcase>
<testcase classname="tests.test_exercises_04" name="test_catalogue[q1-right]"/>
<testcase classname="tests.test_notebooks" name="test_lesson_runs_twice_and_gives_everything_back[08-tc]"/>
<testcase classname="tests.test_tc" name="test_tcx_link">
  <skipped type="pytest.skip" message="tcx needs kernel 6.6 (this is 6.1): netlink instead">skip</skipped></testcase>
<testcase classname="tests.test_trace" name="test_clone_kinds"/>
</testsuite></testsuites>
"""


@pytest.mark.parametrize("name, lesson", [
    ("tests/test_exercises_07.py::test_wrong[blocks all]", "07"),
    ("tests/test_notebooks.py::test_lesson_outline[09-modern-toolchain]", "09"),
    ("tests/test_notebooks.py::test_02_pings_dropped_and_the_arp_lesson", "02"),
    ("tests/test_notebooks.py::test_navigation_is_generated_and_up_to_date", ""),
    ("tests/test_trace.py::test_clone_kinds[10]", ""),
])
def test_lesson_of(name, lesson):
    assert mt.lesson_of(name) == lesson


def _run(tmp_path, kernel, junit=JUNIT, summary="kprobes    ok        0s  kprobe PMU present on 6.1.0-41-amd64\n"):
    d = tmp_path / kernel
    d.mkdir()
    (d / "junit.xml").write_text(junit)
    (d / "summary.txt").write_text(summary)
    return f"{kernel}={d}"


def test_table_says_failed_passed_skipped_and_not_run(tmp_path):
    out = tmp_path / "m.md"
    rc = mt.main([str(out), _run(tmp_path, "6.1"), f"5.10={tmp_path / 'missing'}"])
    text = out.read_text()
    assert rc == 1                                   # a failure and a kernel that never reported
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert "Debian 6.1 (6.1.0-41-amd64)" in text.splitlines()[0]
    assert "**FAILED** 1 of 3: test_04_verifier_errors_and_their_logs" in rows["04"]
    assert "passed (1 tests)" in rows["08"] and "not run" in rows["08"]
    assert "skipped: tcx needs kernel 6.6 (this is 6.1): netlink instead" in rows["kernel tests"]
    assert "no tests" in rows["03"]


def test_all_passed_is_exit_0_and_readme_table_is_replaced_between_markers(tmp_path):
    junit = JUNIT.replace('<failure message="AssertionError: \'The sequence of 8193 jumps\' not in log">trace</failure>', "")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- matrix:start -->\nold table\n<!-- matrix:end -->\nafter\n")
    rc = mt.main([str(tmp_path / "m.md"), _run(tmp_path, "6.12", junit), "--readme", str(readme)])
    body = readme.read_text()
    assert rc == 0
    assert body.startswith("intro\n<!-- matrix:start -->\n| lesson | Debian 6.12") and body.endswith("<!-- matrix:end -->\nafter\n")
    assert "old table" not in body and "passed (3 tests)" in body


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- matrix:start -->"):
        mt.main([str(tmp_path / "m.md"), _run(tmp_path, "6.1"), "--readme", str(readme)])
    assert readme.read_text() == "no markers\n"


def test_runs_of_one_kernel_are_merged_the_last_outcome_counts(tmp_path):
    first = _run(tmp_path, "a")                 # 04 failed here ...
    fixed = JUNIT.replace('<failure message="AssertionError: \'The sequence of 8193 jumps\' not in log">trace</failure>',
                          "")
    d = tmp_path / "b"
    d.mkdir()
    (d / "junit.xml").write_text(fixed.replace('<testcase classname="tests.test_trace" name="test_clone_kinds"/>', ""))
    out = tmp_path / "m.md"
    rc = mt.main([str(out), f"6.12={first.split('=')[1]},{d}"])
    rows = {ln.split("|")[1].strip(): ln for ln in out.read_text().splitlines() if ln.startswith("| ")}
    assert rc == 0 and "passed (3 tests)" in rows["04"]          # ... and passed in the later run
    assert "passed (1 tests)" in rows["kernel tests"]            # a test only the first run had still counts


def test_a_run_cut_short_is_read_from_its_console(tmp_path):
    d = tmp_path / "cut"
    d.mkdir()
    (d / "console.log").write_text(
        "tests/test_notebooks.py::test_04_verifier_errors_and_their_logs \n"
        "[gw0] [ 67%] FAILED tests/test_notebooks.py::test_04_verifier_errors_and_their_logs \n"
        "tests/test_tc.py::test_rerun_replaces[netlink] PASSED         [ 72%]\n"
        "[gw1] [ 20%] SKIPPED tests/test_tc.py::test_rerun_replaces[tcx] \n")
    out = tmp_path / "m.md"
    assert mt.main([str(out), f"5.10={d}"]) == 1
    rows = {ln.split("|")[1].strip(): ln for ln in out.read_text().splitlines() if ln.startswith("| ")}
    assert "**FAILED** 1 of 1: test_04_verifier_errors_and_their_logs" in rows["04"]
    assert rows["kernel tests"].split("|")[2].strip().startswith("passed (1 tests); skipped:")   # both formats read
    assert "no tests" in rows["00"]
