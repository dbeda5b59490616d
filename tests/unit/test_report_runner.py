"""Pure parts of ``labkit report`` (no kernel): the banners a report carries,
a notebook's result before it ran, and the command line's own refusals."""

from __future__ import annotations

import re
from pathlib import Path

from labkit.commands.report import main
from labkit.commands.report.export import failed_banner, info_banner
from labkit.commands.report.runner import Result, reap_kernel


def test_banners_escape_what_they_quote():
    b = failed_banner("code cell 2 raised ValueError: <bad> & 'worse'")
    assert b.startswith('<div class="lk-report-banner lk-report-failed" id="labkit-report-failed">')
    assert "incomplete: labkit report failed.</b> code cell 2 raised ValueError: &lt;bad&gt; &amp; &#x27;worse&#x27;" in b
    i = info_banner("01-<x>.ipynb", "lab\"kit", 12.345)
    assert re.fullmatch(r'<div class="lk-report-banner lk-report-info">01-&lt;x&gt;\.ipynb: executed by '
                        r"<code>labkit report</code> on \d{4}-\d\d-\d\d \d\d:\d\d "
                        r"\(kernel <code>lab&quot;kit</code>, 12\.3 s\)\. "
                        r"Widgets are static snapshots of their final state\.</div>", i), i


def test_a_result_starts_as_not_done():
    r = Result(notebook=Path("x.ipynb"))
    assert (r.ok, r.html, r.error, r.seconds, r.kernel_pid, r.widgets, r.gave_back) == \
        (False, None, "", 0.0, None, 0, [])


def test_reap_kernel_without_a_kernel_has_nothing_to_do():
    assert reap_kernel(None) == [] and reap_kernel(0) == []


def test_the_command_refuses_missing_notebooks(tmp_path, capsys):
    assert main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "out"), "99", "nope.ipynb"]) == 2
    assert capsys.readouterr().err == (f"labkit report: no such notebook: 99, nope.ipynb (looked in . and "
                                       f"{tmp_path})\n")
    assert main(["--notebooks", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"labkit report: no notebooks in {tmp_path / 'none'}\n"
    assert not (tmp_path / "out").exists()


def test_a_students_kept_copy_is_not_reported(tmp_path, capsys):
    """`labkit lessons reset` keeps a student's copy beside the lesson: `labkit report 02`
    still means the lesson, and a kept copy alone is no notebook to report."""
    (tmp_path / "02-xdp-ping-drop.mine-20261130-120000.ipynb").write_text("{}")
    assert main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "out"), "02"]) == 2
    assert "no such notebook: 02" in capsys.readouterr().err
    assert main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"labkit report: no notebooks in {tmp_path}\n"
