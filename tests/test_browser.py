"""The lab in a real browser: JupyterLab (scripts/start-jupyter.sh, loopback,
token) driven by headless Debian chromium; lesson 02 (XDP ping drop) is run with
Run > Run All Cells and the page must show its widgets, a plot and a drop
counter above zero. Afterwards the notebook's kernel is shut down and nothing
of it stays in the kernel: no sandbox, no XDP program.

The browser reaches nothing but 127.0.0.1 (see tests/fixtures/chromium.py), and
JupyterLab gets its own settings and workspaces directories (windowing off, so
every cell is in the DOM; autosave off, so the lesson file is never rewritten).
Until notebooks/02-xdp-ping-drop.ipynb exists, the test runs on
tests/fixtures/notebooks/report-fixture.ipynb, uploaded for the duration of the
test through the server's contents API.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fixtures.chromium import ARTIFACTS, chromium, external_requests, require_chromium
from labkit.net import netns as _netns
from labkit.net import records
from labkit.net import xdp as _xdp

REPO = Path(__file__).resolve().parent.parent
LESSON = REPO / "notebooks" / "02-xdp-ping-drop.ipynb"
FIXTURE = REPO / "tests" / "fixtures" / "notebooks" / "report-fixture.ipynb"
START = REPO / "scripts" / "start-jupyter.sh"

# What the page must show once every cell ran. For the lesson, the drop counter
# is the text the notebook prints / shows in its live panel: "...dropped...: N".
DROP_RE = re.compile(r"\bdrop(?:ped|s)?\b[^0-9\n]{0,40}?(\d[\d,]*)", re.I)

pytestmark = [pytest.mark.browser, pytest.mark.kernel, pytest.mark.slow,
              pytest.mark.requires("root", "tracefs"), pytest.mark.timeout(180)]


# ----------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *args: str):
        self.args = list(args)      # more options for start-jupyter.sh (e.g. --instructor)
        self.port = free_port()
        self.token = secrets.token_hex(20)
        self.base = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        self.log = tmp / "jupyter.log"
        self.proc: subprocess.Popen | None = None

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10):
        req = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        # never through a proxy from the environment: loopback only
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=timeout) as r:
            data = r.read()
            return json.loads(data) if data else None

    def wait_session(self, name: str, timeout: float, page=None) -> dict:
        """The notebook's session once its kernel is idle; on the way, accept
        JupyterLab's kernel dialog if it asks (its default choice is the notebook's kernel)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.api("GET", "/api/sessions") if s.get("path", "").endswith(name)]
            if len(found) == 1 and (found[0].get("kernel") or {}).get("execution_state") == "idle":
                return found[0]
            if page is not None:
                dialog = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
                if dialog.count():
                    dialog.first.click()
            if time.monotonic() > deadline:
                raise AssertionError(f"no idle kernel for {name} within {timeout} s: {found}")
            time.sleep(0.25)

    def start(self) -> None:
        settings = self.tmp / "settings"
        for plugin, values in {
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
            "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        }.items():
            f = settings / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(LABKIT_TOKEN=self.token, JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"))
        self.proc = subprocess.Popen([str(START), "--port", str(self.port), *self.args], cwd=REPO, env=env,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"start-jupyter.sh exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                self.api("GET", "/api/status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not answer within 60 s:\n{self.log.read_text()}")
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def kernel_pid(kernel_id: str) -> int | None:
    """The pid of the kernel process with this id (its connection file is in its argv)."""
    needle = f"kernel-{kernel_id}.json".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    return int(d)
        except OSError:
            continue
    return None


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (OSError, IndexError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Watcher(threading.Thread):
    """Records, while the notebook runs, the sandboxes a kernel process owns and
    the labkit XDP programs in their namespaces."""

    def __init__(self, pid: int, interval: float = 0.3):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.sandboxes: dict[str, object] = {}
        self.xdp: dict[int, dict] = {}
        self.halt = threading.Event()

    def poll(self) -> None:
        mine = [s for s in records.list_sandboxes() if s.owner_pid == self.pid]
        for s in mine:
            self.sandboxes[s.id] = s
        spaces = {ns for s in mine for ns in s.namespaces}
        if spaces:
            for x in _xdp.find_labkit_xdp():
                if x["netns"] in spaces:
                    self.xdp[x["prog_id"]] = x

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a namespace vanishing mid-listing: try again
                pass

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def file_digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ----------------------------------------------------------------- the test
def run_all_and_check(page, server: Server, name: str, lesson: bool, st: dict) -> None:
    """Open ``name``, Run > Run All Cells, assert on the page; then shut the
    notebook's kernel down. Fills ``st`` (timings, kernel pid, what it held)."""
    t0 = st["t0"]
    page.set_default_timeout(30_000)
    page.goto(f"{server.base}/lab/tree/{name}?token={server.token}", wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=45_000)
    # the notebook's kernel is up and idle (asked from the server, not the page)
    session = server.wait_session(name, timeout=60, page=page)
    st["timings"]["kernel idle"] = time.monotonic() - t0
    kid = session["kernel"]["id"]
    st["kpid"] = kpid = kernel_pid(kid)
    assert kpid, f"no process for kernel {kid}"
    watcher = st["watcher"] = Watcher(kpid)
    watcher.start()
    # Run > Run All Cells, through the menu bar
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-content .lm-Menu-item[data-command='runmenu:run-all']").click()
    n_code = page.locator(".jp-NotebookPanel .jp-CodeCell").count()
    # until every code cell has an execution count (none queued or running: [*])
    page.wait_for_function(
        """n => { const p = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
                      .map(e => e.textContent.trim());
                  const done = p.length === n && p.every(t => /^\\[\\d+\\]:$/.test(t));
                  // or Run All stopped at an error: nothing queued or running any more
                  const stopped = !p.some(t => t.includes('*'))
                      && document.querySelector('.jp-NotebookPanel .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
                  return done || !!stopped; }""",
        arg=n_code, timeout=90_000)
    server.wait_session(name, timeout=30)
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), f"not every cell ran: {prompts}"
    st["timings"]["ran"] = time.monotonic() - t0

    area = ".jp-NotebookPanel .jp-OutputArea"
    # widgets, rendered by the real widget manager
    assert page.locator(f"{area} .jupyter-widgets").count() > 0, "no widget in any output area"
    # the lab's own settings keep JupyterLab from asking to fetch news (nothing phones home)
    assert page.get_by_text("official Jupyter news").count() == 0, "JupyterLab asked about fetching news"
    page.locator(f"{area} .widget-dropdown").first.wait_for(state="visible")
    # a plot: an image with pixels
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{area} img')].some(i => i.complete && i.naturalWidth > 0)""")
    # the drop counter, above zero: in the lesson, the "drop"/"icmp" row of a counters
    # table (x.counters() and the live panel); in the fixture, the label "fixture drops: N"
    if lesson:
        drops = page.evaluate(f"""() => {{
            const out = [];
            for (const t of document.querySelectorAll('{area} table')) {{
                const head = [...t.querySelectorAll('thead th, tr:first-child th')].map(e => e.textContent.trim());
                const a = head.indexOf('action'), p = head.indexOf('protocol'), n = head.indexOf('packets');
                if (a < 0 || p < 0 || n < 0) continue;
                for (const r of t.querySelectorAll('tbody tr')) {{
                    const c = [...r.children].map(e => e.textContent.trim());   // th (index) + td cells
                    const off = c.length - head.length;
                    if (c[a + off] === 'drop' && c[p + off] === 'icmp') out.push(Number(c[n + off].replace(/,/g, '')));
                }}
            }}
            return out; }}""")
    else:
        text = page.locator(".jp-NotebookPanel .jp-Notebook").inner_text()
        drops = [int(m.group(1).replace(",", "")) for m in DROP_RE.finditer(text)]
    assert drops and max(drops) > 0, f"no drop counter above zero on the page: {drops}"
    st["drops"] = drops
    if lesson:  # a lesson runs clean (errors only in cells that expect them)
        errors = page.locator(f"{area} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [e for e in errors.all_inner_texts() if "Traceback" in e]
        assert not tracebacks, tracebacks
    ARTIFACTS.mkdir(exist_ok=True)
    # the screenshot shows the first widget (02: the live counters panel) and what follows it
    page.locator(f"{area} .jupyter-widgets").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    page.screenshot(path=str(st["shot"]))

    # what the kernel held while it ran (the lesson gives it back in its last cell; a
    # student who never runs that cell relies on the kernel's shutdown)
    watcher.poll()
    watcher.stop()
    st["sandboxes"], st["xdp"] = list(watcher.sandboxes.values()), list(watcher.xdp.values())
    if lesson:
        assert st["sandboxes"] and st["xdp"], "lesson 02 should have made a sandbox with an XDP program on it"
    # shut the notebook's kernel down, as a user closing the notebook would
    server.api("DELETE", f"/api/sessions/{session['id']}")
    assert wait_gone(kpid, 20), f"kernel {kpid} still running after its session was deleted"
    st["timings"]["kernel shut down"] = time.monotonic() - t0


def test_lesson_runs_in_jupyterlab(tmp_path):
    require_chromium()
    t0 = time.monotonic()
    lesson = LESSON.is_file()
    name = LESSON.name if lesson else f"zz-labkit-browser-test-{os.getpid()}.ipynb"
    shot = ARTIFACTS / ("browser-02.png" if lesson else "browser-fixture.png")
    digest = file_digest(LESSON) if lesson else None
    server = Server(tmp_path)
    uploaded = False
    st: dict = {"t0": t0, "timings": {}, "kpid": None, "sandboxes": [], "xdp": [], "shot": shot}
    checkpoints = REPO / "notebooks" / ".ipynb_checkpoints"
    had_checkpoints = set(os.listdir(checkpoints)) if checkpoints.is_dir() else None
    try:
        server.start()
        st["timings"]["server up"] = time.monotonic() - t0
        if not lesson:
            nb = json.loads(FIXTURE.read_text())
            server.api("PUT", f"/api/contents/{name}", {"type": "notebook", "format": "json", "content": nb})
            uploaded = True
        with chromium(tmp_path / "profile", allow_hosts=("127.0.0.1",)) as b:
            page = b.page()
            try:
                run_all_and_check(page, server, name, lesson, st)
            except BaseException:
                ARTIFACTS.mkdir(exist_ok=True)
                failed = shot.with_name(shot.stem + "-failure.png")
                try:
                    page.screenshot(path=str(failed), full_page=True)
                    print(f"failure screenshot: {failed}")
                except Exception:
                    pass
                raise
            # the browser reached nothing but the server
            assert external_requests(b) == [], external_requests(b)
            assert b.blocked == [], b.blocked

        # nothing of that kernel stays: sandboxes, their namespaces, XDP programs, netlink records
        kpid = st["kpid"]
        assert not [s for s in records.list_sandboxes() if s.owner_pid == kpid]
        ids = {s.id for s in st["sandboxes"]}
        assert not [n for n in _netns.list_netns() if any(i in n for i in ids)]
        progs = {x["prog_id"] for x in st["xdp"]}
        assert not [x for x in _xdp.find_labkit_xdp() if x["prog_id"] in progs]
        assert not [r for r in _xdp.netlink_records() if r.get("pid") == kpid]
    finally:
        if uploaded:
            try:
                server.api("DELETE", f"/api/contents/{name}")
            except Exception:
                (REPO / "notebooks" / name).unlink(missing_ok=True)
        server.stop()
        # JupyterLab's checkpoints of this test's notebook go too (never anyone else's)
        if checkpoints.is_dir():
            stem = name.rsplit(".", 1)[0]
            for f in set(os.listdir(checkpoints)) - (had_checkpoints or set()):
                if f.startswith(stem + "-checkpoint"):
                    (checkpoints / f).unlink(missing_ok=True)
            if had_checkpoints is None and not os.listdir(checkpoints):
                checkpoints.rmdir()
        if st.get("watcher"):
            st["watcher"].stop()
        if st["kpid"]:
            wait_gone(st["kpid"], 10)
        print(f"browser test: {st['timings']} (s since start); drops {st.get('drops')}; "
              f"held {len(st['sandboxes'])} sandbox(es), {len(st['xdp'])} XDP program(s); screenshot {shot}")
    if lesson:
        assert file_digest(LESSON) == digest, "the test rewrote the lesson notebook"
