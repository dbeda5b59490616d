"""``labkit report``: notebooks executed headless become self-contained HTML that
works offline (checked in a headless chromium that cannot reach any host), and
no kernel state stays behind.

The fixtures (tests/fixtures/notebooks, made by tests/fixtures/make_fixtures.py):
report-fixture (BPF events, a DataFrame, a plot, a widget panel, a cell tagged
raises-exception), report-leaves-state (a sandbox and an XDP program left
attached on purpose), report-fails (an untagged error), report-external (a
markdown image on the internet). The contents page and lesson 02 are reported
with the whole command too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from fixtures.chromium import ARTIFACTS, assert_report_renders, chromium, external_requests, require_chromium
from labkit.net import netns as _netns
from labkit.commands import report as _report
from labkit.net import records
from labkit.net import xdp as _xdp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIXTURES = HERE / "fixtures" / "notebooks"
# The whole command on the contents page and on the lesson an instructor demos (its
# counters table must show the drops); tests/test_notebooks.py exports every
# executed lesson through the same export, without running each a third time.
LESSONS = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if p.stem in ("index", "02-xdp-ping-drop")]

def _new_xdp_outside_live_sandboxes(before: set) -> list[dict]:
    """labkit XDP programs not in ``before`` whose namespace is no live sandbox's, found twice a second
    apart: other tests run meanwhile, and a sandbox built between the two reads (or torn down, its record
    gone first and its namespace a moment later) is theirs, not a leftover."""
    def stray() -> dict[int, dict]:
        found = _xdp.find_labkit_xdp()
        live_ns = {ns for s in records.list_sandboxes() if s.alive for ns in s.namespaces}
        return {x["prog_id"]: x for x in found if x["prog_id"] not in before and x["netns"] not in live_ns}

    first = stray()
    if not first:
        return []
    time.sleep(1)
    again = stray()
    return [x for pid, x in first.items() if pid in again]


def run_report(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", "report", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------ real execution
@pytest.fixture(scope="module")
def fixture_reports(tmp_path_factory):
    """One `labkit report` run over every fixture (one kernel per notebook)."""
    out = tmp_path_factory.mktemp("reports")
    names = ["report-fixture", "report-fails", "report-external", "report-leaves-state"]
    t0 = time.monotonic()
    r = run_report("--out", str(out), "--timeout", "60", *[str(FIXTURES / f"{n}.ipynb") for n in names])
    return {"proc": r, "out": out, "seconds": time.monotonic() - t0}


@pytest.mark.requires("root", "tracefs")
@pytest.mark.kernel
@pytest.mark.slow
def test_report_runs_everything_and_fails_loudly(fixture_reports):
    r, out = fixture_reports["proc"], fixture_reports["out"]
    log = r.stdout + r.stderr
    assert r.returncode == 1, log
    # every notebook was done, the failures after the good ones did not stop the rest
    for n in ("report-fixture", "report-fails", "report-external", "report-leaves-state"):
        assert (out / f"{n}.html").is_file(), log
    assert re.search(r"report-fixture\.ipynb \.\.\.\n  ok ", r.stdout), log
    assert re.search(r"report-leaves-state\.ipynb \.\.\.\n  ok ", r.stdout), log
    assert "FAILED" in r.stderr and "code cell 2 raised ZeroDivisionError: division by zero" in r.stderr, log
    assert "raises-exception" in r.stderr
    assert "report-external" in r.stderr and "http://example.invalid/remote.png" in r.stderr, log
    assert "2 of 4 notebook(s) failed: report-fails.ipynb, report-external.ipynb" in r.stderr, log
    # the failed reports say so at the top; the good one does not
    assert 'id="labkit-report-failed"' in (out / "report-fails.html").read_text()
    failed = (out / "report-fails.html").read_text()
    assert "<pre>before the error\n</pre>" in failed and "<pre>never runs" not in failed
    assert 'id="labkit-report-failed"' not in (out / "report-fixture.html").read_text()
    # the raises-exception cell's error is in the report, and the cells after it ran
    good = (out / "report-fixture.html").read_text()
    assert "fixture: this cell is meant to fail" in good and "fixture done" in good


@pytest.mark.requires("root", "tracefs")
@pytest.mark.kernel
@pytest.mark.slow
def test_report_html_is_self_contained(fixture_reports):
    html = (fixture_reports["out"] / "report-fixture.html").read_text()
    assert _report.external_references(html) == []
    low = html.lower()
    assert "<script" not in low                       # no require.js, MathJax, widget manager
    assert not re.search(r"<link[^>]+href=", low)
    assert _report.WIDGET_STATE not in html and _report.WIDGET_VIEW not in html
    assert "unpkg" not in low and "cdnjs" not in low and "jsdelivr" not in low


@pytest.mark.requires("root", "tracefs", "chromium")
@pytest.mark.kernel
@pytest.mark.browser
@pytest.mark.slow
def test_report_shows_plot_table_and_widgets_offline(fixture_reports, tmp_path):
    require_chromium()
    html = fixture_reports["out"] / "report-fixture.html"
    with chromium(tmp_path / "profile") as b:
        page = b.page()
        page.goto(html.as_uri(), wait_until="load")
        imgs = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
            .map(i => ({src: i.src.slice(0, 22), w: i.naturalWidth, h: i.naturalHeight, done: i.complete}))""")
        plots = [i for i in imgs if i["src"].startswith("data:image/png")]
        assert len(plots) >= 2, imgs            # the matplotlib plot and the Image widget
        assert all(i["w"] > 0 and i["h"] > 0 for i in plots), imgs
        rows = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output table')]
            .map(t => t.querySelectorAll('tbody tr').length)""")
        assert rows and rows[0] == 3, rows      # the DataFrame
        panel = page.locator(".lk-widget-snapshot").first
        assert panel.is_visible()
        assert "fixture drops: 42" in panel.inner_text()
        assert page.locator(".lk-widget-snapshot select option:checked").inner_text() == "clone3"
        assert "fixture output widget text" in panel.inner_text()
        assert page.locator(".lk-widget-snapshot .widget-output table tbody tr").count() == 2
        assert page.locator(".lk-widget-snapshot button", has_text="Refresh").count() == 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-fixture.png"), full_page=True)
        assert external_requests(b) == [], external_requests(b)
        assert b.blocked == []
        assert all(u.startswith(("file:", "data:")) for u in b.requests), b.requests


@pytest.mark.requires("root", "tracefs")
@pytest.mark.kernel
@pytest.mark.slow
def test_report_leaves_no_kernel_state(fixture_reports):
    """The fixture left a sandbox with an XDP program on it; after the report the
    kernel is gone and so are both, without anything having to be cleaned up."""
    r, out = fixture_reports["proc"], fixture_reports["out"]
    text = (out / "report-leaves-state.html").read_text()
    m = re.search(r"sandbox ([0-9a-f]+) kernel pid (\d+) received (\d+)", text)
    assert m, text[-2000:]
    sb_id, pid, received = m.group(1), int(m.group(2)), int(m.group(3))
    assert received == 0                                    # the XDP program did drop the pings
    assert not os.path.exists(f"/proc/{pid}"), "the notebook's kernel is still running"
    assert not [s for s in records.list_sandboxes() if s.id == sb_id or s.owner_pid == pid]
    assert not [x for x in _xdp.find_labkit_xdp() if sb_id in (x["netns"] or "")]
    assert not [n for n in _netns.list_netns() if sb_id in n]
    assert not [x for x in _xdp.netlink_records() if x.get("pid") == pid]
    # labkit gave everything back at the kernel's exit: the report had nothing to remove
    assert "gave back" not in r.stderr, r.stderr


@pytest.mark.requires("root")
@pytest.mark.kernel
def test_reap_kernel_removes_what_a_killed_kernel_owned():
    """A kernel killed with SIGKILL runs no exit handler: its sandbox stays until
    the report gives it back."""
    code = "import labkit, time; sb = labkit.Sandbox(); print(sb.id, flush=True); time.sleep(120)"
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        sb_id = child.stdout.readline().strip()
        assert sb_id, "the child made no sandbox"
        assert _report.reap_kernel(child.pid, wait=0.2) == [f"kernel process {child.pid} is still running "
                                                          "after shutdown; left alone"]
        child.kill()
        child.wait(timeout=10)
        done = _report.reap_kernel(child.pid)
        assert len(done) == 1 and f"removed sandbox {sb_id}" in done[0], done
        assert not [n for n in _netns.list_netns() if sb_id in n]
        assert not [r for r in records.list_sandboxes() if r.id == sb_id]
        assert _report.reap_kernel(child.pid) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        for r in records.list_sandboxes():
            if r.owner_pid == child.pid:
                records.remove_sandbox(r, force=True)


# ------------------------------------------------------------- real lessons
@pytest.mark.requires("root", "tracefs", "chromium")
@pytest.mark.kernel
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("nb_path", LESSONS or [pytest.param(None, marks=pytest.mark.skip("no lessons in notebooks/ yet"))],
                         ids=[p.stem for p in LESSONS] or ["none"])
def test_report_of_a_lesson_works_offline(nb_path, tmp_path):
    out = tmp_path / "reports"
    before = {x["prog_id"] for x in _xdp.find_labkit_xdp()}
    t0 = time.monotonic()
    r = run_report("--out", str(out), str(nb_path), timeout=600)
    seconds = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gave back" not in r.stderr, r.stderr
    # the kernel talks over private Unix sockets: no TCP warning, no noise from its shutdown
    for noise in ("without encryption", "KeyboardInterrupt", "Parent appears to have exited", "WARNING"):
        assert noise not in r.stdout + r.stderr, r.stdout + r.stderr
    html = out / f"{nb_path.stem}.html"
    text = html.read_text()
    assert _report.external_references(text) == []
    assert "<script" not in text.lower()
    nb = nbformat.read(nb_path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    with chromium(tmp_path / "profile") as b:
        page = b.page()
        page.goto(html.as_uri(), wait_until="load")
        assert_report_renders(page, code)
        if nb_path.stem.startswith("02-"):
            # the counters table says the pings were dropped
            drops = page.evaluate("""() => [...document.querySelectorAll('table')].flatMap(t => {
                const head = [...t.querySelectorAll('tr:first-child th')].map(e => e.textContent.trim());
                const a = head.indexOf('action'), p = head.indexOf('protocol'), n = head.indexOf('packets');
                if (a < 0 || p < 0 || n < 0) return [];
                return [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(e => e.textContent.trim()))
                    .map(c => { const o = c.length - head.length;
                                return c[a + o] === 'drop' && c[p + o] === 'icmp' ? Number(c[n + o]) : null; })
                    .filter(x => x !== null); })""")
            assert drops and max(drops) > 0, drops
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{nb_path.stem}.png"), full_page=True)
        assert external_requests(b) == [] and b.blocked == []
    # nothing of the lesson stays: its kernel is gone, so are its sandboxes, and no new
    # labkit XDP program is left outside the sandboxes of live processes (other tests may run)
    kpid = int(re.search(r"kernel pid (\d+)", r.stdout).group(1))
    assert not os.path.exists(f"/proc/{kpid}")
    assert not [s for s in records.list_sandboxes() if s.owner_pid == kpid]
    assert not _new_xdp_outside_live_sandboxes(before)
    print(f"{nb_path.name}: report in {seconds:.1f} s")
