"""`labkit demo xdp`: the room demo, for real, on a sandbox's target interface
(in the sandbox's own namespace: never a root-namespace interface).

Pings from the sandbox's host side are dropped and counted, the counter and the
per-second data show them, Ctrl-C / SIGTERM / SIGKILL give the interface back,
an interface that carries a default route is refused, and native falls back to
generic (a dummy or bridge interface, in the sandbox's namespace, has no native XDP) and says so.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import labkit
from labkit.commands.demo import DropMeter, bar_plot, big_text, screen
from labkit.net import xdp as _xdp

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sb():
    with labkit.Sandbox() as sb:
        yield sb
    assert not os.path.exists(f"/run/netns/{sb.target_ns}")


def xdp_on(iface: str, netns: str) -> int:
    link = _xdp.interface(iface, netns)
    return link["native"] or link["generic"]


class Demo:
    """`python -m labkit demo xdp ...` in its own process; stdout and stderr read by threads."""

    def __init__(self, *args: str, sigint_ignored: bool = False):
        # PYTHONFAULTHANDLER: a demo that will not end prints every thread's stack on SIGABRT (finish())
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONFAULTHANDLER="1")
        # sigint_ignored: started as by a parent that ignores SIGINT (a child inherits that, and Python then
        # installs no KeyboardInterrupt of its own)
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.proc = subprocess.Popen([sys.executable, "-m", "labkit", "demo", "xdp", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     preexec_fn=ignore)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for line in stream:
            buf.append(line)

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                time.sleep(0.2)     # the last lines
                m = re.search(pattern, self.text())
                if m:
                    return m
                raise AssertionError(f"demo exited {self.proc.returncode} before {pattern!r}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text()}")

    def finish(self, timeout: float = 180) -> int:   # sized for two suites on 2 cores (60 s was not)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)      # faulthandler: where each of its threads is
            self.proc.wait(timeout=30)
            for t in self._threads:
                t.join(timeout=10)
            raise AssertionError(f"the demo was still running {timeout} s after it was told to stop; "
                                 f"its output and its threads' stacks:\n{self.text()}") from None
        for t in self._threads:
            t.join(timeout=10)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _started(d: Demo) -> None:
    d.wait_for(r"Ask the room: ping ")


@pytest.mark.parametrize("stop,sigint_ignored", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["ctrl-c", "sigterm", "ctrl-c, started with SIGINT ignored"])
def test_demo_drops_counts_and_gives_back_on_ctrl_c_and_sigterm(sb, stop, sigint_ignored):
    d = Demo("--iface", sb.target_iface, "--netns", sb.target_ns, "--plain", "--interval", "0.1",
             sigint_ignored=sigint_ignored)
    try:
        _started(d)
        assert xdp_on(sb.target_iface, sb.target_ns), "the demo attached nothing"
        # the hint names the address the room pings: the interface's own
        assert f"ping {sb.target_ip}" in d.text()
        r = sb.ping(count=6, interval=0.1, timeout=0.5)
        assert r.transmitted == 6 and r.received == 0, r
        # the counter shows exactly those pings (one line a second)
        d.wait_for(r"dropped 6 pings, \d+/s \(xdp_icmp_drop\S* on ")
        os.kill(d.proc.pid, stop)
        assert d.finish() == 0, d.text()
    finally:
        d.kill()
    last = d.out[-1]
    why = "Ctrl-C" if stop == signal.SIGINT else "SIGTERM"
    assert re.match(rf"labkit demo: {why}: dropped 6 pings; xdp_icmp_drop taken off {re.escape(sb.target_ns)}:"
                    rf"{sb.target_iface} \(XDP detached\)", last), last
    # the per-second data add up to the pings (each second's line says that second's drops)
    per_s = [int(m.group(2)) for m in re.finditer(r"dropped (\d+) pings, (\d+)/s", "".join(d.out))]
    assert per_s and sum(per_s) <= 6      # (a second skipped under load is not printed: not ==)
    assert not xdp_on(sb.target_iface, sb.target_ns), "XDP left on the sandbox's interface"
    assert sb.ping(count=2, interval=0.1, timeout=2).received == 2


def test_demo_killed_gives_back_too(sb):
    d = Demo("--iface", sb.target_iface, "--netns", sb.target_ns, "--plain")
    try:
        _started(d)
        assert xdp_on(sb.target_iface, sb.target_ns)
        d.proc.kill()
        d.finish()
    finally:
        d.kill()
    # a bpf_link: the kernel takes the program off when its process dies
    deadline = time.monotonic() + 30
    while xdp_on(sb.target_iface, sb.target_ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not xdp_on(sb.target_iface, sb.target_ns)


def test_demo_stops_by_itself_after_seconds(sb):
    d = Demo("--iface", sb.target_iface, "--netns", sb.target_ns, "--plain", "--seconds", "1")
    try:
        assert d.finish() == 0, d.text()
    finally:
        d.kill()
    assert re.search(r"labkit demo: 1 s are up: dropped 0 pings; xdp_icmp_drop taken off", d.out[-1]), d.text()
    assert not xdp_on(sb.target_iface, sb.target_ns)


def test_demo_refuses_a_guarded_interface(sb):
    """A default route on the target interface (inside the sandbox's namespace)
    makes it one the lab stands on: refused with the guard's reason, nothing attached."""
    sb.run(["ip", "route", "add", "default", "via", sb.host_ip], side="target", check=True)
    try:
        d = Demo("--iface", sb.target_iface, "--netns", sb.target_ns, "--plain")
        try:
            rc = d.finish()
        finally:
            d.kill()
        assert rc == 2, d.text()
        err = "".join(d.err)
        assert "carries the default route" in err, err
        assert "the demo never forces" in err and "force=True" not in err, err
        assert not xdp_on(sb.target_iface, sb.target_ns)
    finally:
        sb.run(["ip", "route", "del", "default"], side="target")


def test_demo_falls_back_to_generic_and_says_so(sb):
    """A dummy, bridge or ifb interface (made in the sandbox's target namespace) has no native XDP."""
    dummy = f"lkd{uuid.uuid4().hex[:8]}"
    for kind in ("dummy", "bridge", "ifb"):     # whichever this kernel has built in or as a module
        if sb.run(["ip", "link", "add", dummy, "type", kind], side="target").returncode == 0:
            break
    else:
        pytest.skip("this kernel can make none of dummy, bridge, ifb interfaces")
    try:
        sb.run(["ip", "link", "set", dummy, "up"], side="target", check=True)
        d = Demo("--iface", dummy, "--netns", sb.target_ns, "--plain", "--mode", "native")
        try:
            _started(d)
            note = d.wait_for(r"NOTE: \S+ has no native XDP here \((.*)\): fell back to GENERIC mode")
            assert "native" in note.group(1), note.group(0)
            d.wait_for(r"generic mode via bpf_link")
            assert _xdp.interface(dummy, sb.target_ns)["generic"]
            os.kill(d.proc.pid, signal.SIGTERM)
            assert d.finish() == 0, d.text()
        finally:
            d.kill()
        assert not xdp_on(dummy, sb.target_ns)
    finally:
        sb.run(["ip", "link", "del", dummy], side="target")


def test_meter_and_screen_show_the_dropped_pings(lab, sb):
    """The counter and the plot's data, from a real attachment, one whole second at a time
    (a clock the test moves, so nothing depends on timing)."""
    x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
    now = [0.0]
    meter = DropMeter(lambda: x.packets("drop"), clock=lambda: now[0])
    assert meter.total == 0 and list(meter.rates) == []
    sb.ping(count=3, interval=0.05, timeout=0.5)
    now[0] = 1.0
    meter.tick()
    sb.ping(count=4, interval=0.05, timeout=0.5)
    now[0] = 2.5
    meter.tick()
    assert meter.total == 7 and list(meter.rates) == [3, 4] and meter.now == 4
    now[0] = 3.0
    meter.tick()
    assert list(meter.rates) == [3, 4, 0]
    page = screen(meter, "title", ["a note"], 100, 30)
    for line in big_text("7"):
        assert line in page
    assert "pings dropped (0/s now, 3 s running)" in page and "a note" in page
    x.detach()


def test_big_text_and_plot_shapes():
    assert len(big_text("1,234")) == 5 and len(big_text("0", 3)) == 15
    assert max(len(line) for line in big_text("8", 2)) == 20
    plot = bar_plot([0, 5, 10], 40, 10)
    # the title says the window the width holds (40 columns, a 3-column axis: 17 s), not a minute it does
    # not show; the x axis starts at the same second
    assert plot[0] == "pings dropped per second, the last 17 s" and len(plot) == 10
    assert plot[-1].lstrip().startswith("-17s")
    assert bar_plot([500], 100, 10)[0].endswith("the last 47 s")      # 100 columns, "1000" on the axis
    assert plot[1].startswith("10 |") and plot[-2].startswith(" 0 +")
    assert plot[1].endswith("██")         # the newest second, 10, reaches the top
    assert plot[-1].rstrip().endswith("now")
    assert all("█" not in line for line in bar_plot([], 40, 10))


def test_instructor_notebook_counts_the_pings_and_gives_back(sb, monkeypatch):
    """instructor/demo-xdp.ipynb, cell by cell in a real kernel, on the sandbox's target interface."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("LABKIT_DEMO_IFACE", sb.target_iface)
    monkeypatch.setenv("LABKIT_DEMO_NETNS", sb.target_ns)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(ROOT / "instructor" / "demo-xdp.ipynb", as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert len(code) == 3
    client = NotebookClient(nb, kernel_name="labkit", timeout=120, allow_errors=False,
                            resources={"metadata": {"path": str(ROOT / "instructor")}})

    def run(source: str) -> str:
        cell = nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)           # only in this copy
        client.execute_cell(cell, len(nb.cells) - 1)
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    with client.setup_kernel():
        client.execute_cell(nb.cells[code[0]], code[0])
        said = "".join(o.get("text", "") for o in nb.cells[code[0]].outputs)
        assert f"the room pings: {sb.target_ip}" in said, said
        client.execute_cell(nb.cells[code[1]], code[1])
        shown = nb.cells[code[1]].outputs
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown), shown
        assert xdp_on(sb.target_iface, sb.target_ns)
        r = sb.ping(count=5, interval=0.1, timeout=0.5)
        assert r.transmitted == 5 and r.received == 0
        out = run("import time\n"
                  "t = time.monotonic() + 60\n"
                  "while room.meter.total < 5 and time.monotonic() < t:\n"
                  "    time.sleep(0.1)\n"
                  "time.sleep(1.2)\n"       # the second that holds the pings closes
                  "room.refresh(); room.panel.refresh()\n"
                  "png = room.widget.children[1].value\n"
                  "print('TOTAL', room.meter.total, 'RATES', sum(room.meter.rates), 'PNG', png[:4] == b'\\x89PNG')\n"
                  "print('COUNTER', '>5<' in room.widget.children[0].value)\n"
                  "print('PANEL', room.panel.state, int(room.panel.table().query('action == \"drop\"').packets.sum()))")
        assert "TOTAL 5 RATES 5 PNG True" in out, out
        assert "COUNTER True" in out and "PANEL running 5" in out, out
        client.execute_cell(nb.cells[code[2]], code[2])
        said = "".join(o.get("text", "") for o in nb.cells[code[2]].outputs)
        assert "5 pings dropped; detached: pings answer again" in said, said
        assert not xdp_on(sb.target_iface, sb.target_ns)
    assert sb.ping(count=2, interval=0.1, timeout=2).received == 2


def test_the_last_screen_stays_on_the_terminal_after_the_demo(sb):
    """The demo draws on the alternate screen; when it ends, the terminal switches back, and the
    counter and plot of the last frame are written there, above the closing line."""
    import io

    from labkit.commands.demo import run_xdp_demo

    out, err = io.StringIO(), io.StringIO()
    assert run_xdp_demo(sb.target_iface, netns=sb.target_ns, seconds=1, plain=False, interval=0.1,
                        out=out, err=err) == 0, err.getvalue()
    text = out.getvalue()
    assert "\x1b[?1049h" in text and "\x1b[?1049l" in text
    after = text.rsplit("\x1b[?1049l", 1)[1]            # what stays once the alternate screen is gone
    assert "\x1b[2J" not in after
    for line in big_text("0"):
        assert line in after
    assert "pings dropped per second, the last" in after and "Ask the room: ping" in after
    assert after.rstrip().splitlines()[-1].startswith("labkit demo: 1 s are up: dropped 0 pings")
    assert not xdp_on(sb.target_iface, sb.target_ns)
