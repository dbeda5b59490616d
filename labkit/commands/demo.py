"""``labkit demo xdp --iface IFACE [--netns NS] [--mode native|generic]``: drop pings in front of a room.

Lesson 02's ``xdp_icmp_drop`` goes onto a real interface through
``Lab.attach_xdp``, so every rule of the lab holds: the guards
(labkit.net.guards) refuse the interface that carries the default route, an
SSH session or JupyterLab, and the demo never forces; a bpf_link that the
kernel takes off when this process dies, however it dies. ``--mode native``
(the default) falls back to generic when the driver has no native XDP, and
says so on the screen.

On a terminal the screen shows a big counter of the pings dropped (block
digits a back row can read) and a bar plot of pings dropped per second over
the last seconds (as many as the terminal's width holds, two columns each: 47
to 48 on 100 columns; the plot's title says how many), redrawn twice a second. When
the demo ends, the last screen stays in the terminal above the closing line.
Elsewhere (``--plain``, a pipe, a
log) it prints one line a second::

    dropped 12 pings, 1/s (xdp_icmp_drop on eth1, native mode via bpf_link)

Ctrl-C, SIGTERM, SIGHUP or ``--seconds`` end it: the program is taken off and
the last line says so. In a notebook (instructor/demo-xdp.ipynb), :func:`room_view`
shows the same with labkit's live panel: a counter in 120-pixel digits and a
full-width plot. The pieces (:class:`DropMeter`, :func:`big_text`,
:func:`bar_plot`, :func:`screen`) are plain functions the tests call.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import math
import shutil
import signal
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit._errors import LabkitError
from labkit.lab import Lab
from labkit.net.netns import run_in_netns
from labkit.hooks.xdp import XdpAttachment
from labkit.views.display import widget_bundle
from labkit.views.panel import LivePanel
from labkit.views.plot import Plot

__all__ = ["DropMeter", "RoomView", "addresses", "bar_plot", "big_text", "main", "room_view", "run_xdp_demo",
           "screen"]

PROGRAM = "xdp_icmp_drop"

# 5 x 5 block glyphs: digits, the thousands separator and a space
_FONT = {
    "0": ["#####", "#   #", "#   #", "#   #", "#####"],
    "1": ["  #  ", " ##  ", "  #  ", "  #  ", " ### "],
    "2": ["#####", "    #", "#####", "#    ", "#####"],
    "3": ["#####", "    #", " ####", "    #", "#####"],
    "4": ["#   #", "#   #", "#####", "    #", "    #"],
    "5": ["#####", "#    ", "#####", "    #", "#####"],
    "6": ["#####", "#    ", "#####", "#   #", "#####"],
    "7": ["#####", "    #", "   # ", "  #  ", "  #  "],
    "8": ["#####", "#   #", "#####", "#   #", "#####"],
    "9": ["#####", "#   #", "#####", "    #", "#####"],
    ",": ["  ", "  ", "  ", " #", "# "],
    " ": ["  ", "  ", "  ", "  ", "  "],
}


def big_text(text: str, scale: int = 1) -> list[str]:
    """``text`` (digits, commas, spaces) in block letters: 5*scale rows, each glyph 2*scale columns a dot."""
    rows = []
    for r in range(5):
        line = " ".join("".join("█" * (2 * scale) if c == "#" else " " * (2 * scale) for c in _FONT[ch][r])
                        for ch in text if ch in _FONT)
        rows += [line.rstrip()] * scale
    return rows


def _nice_top(v: float) -> int:
    """The plot's top: v rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if v <= 1:
        return 1
    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * p:
            return int(m * p)
    return int(10 * p)


def bar_plot(rates: list[int], width: int, height: int, label: str = "pings dropped per second") -> list[str]:
    """A bar plot of ``rates`` (oldest first, one bar per second) in ``width`` x ``height``
    characters, the y axis on the left and "now" on the right."""
    height = max(3, height)
    top = _nice_top(max(rates, default=0))
    axis_w = len(str(top)) + 1
    cols = max(1, (width - axis_w - 2) // 2)     # two characters a second
    shown = list(rates)[-cols:]
    shown = [0] * (cols - len(shown)) + shown
    out = [f"{label}, the last {cols} s"]       # as many seconds as the width holds: say which
    plot_h = height - 3
    for row in range(plot_h, 0, -1):
        level = top * row / plot_h
        tick = str(top) if row == plot_h else (str(top // 2) if row == (plot_h + 1) // 2 and top > 1 else "")
        cells = "".join("██" if v >= level - top / plot_h / 2 and v > 0 else "  " for v in shown)
        out.append(f"{tick.rjust(axis_w - 1)} |{cells}".rstrip())
    out.append(f"{'0'.rjust(axis_w - 1)} +{'--' * cols}")
    left = f"-{cols}s"
    out.append(" " * (axis_w + 1) + left + "now".rjust(2 * cols - len(left)))
    return out


class DropMeter:
    """Pings dropped by an XDP attachment: ``total`` (exact, the per-CPU counters)
    and ``rates``: drops in each whole second since the meter started, oldest first
    (the newest ``history`` seconds). ``tick()`` reads the counters."""

    def __init__(self, read: Callable[[], int], history: int = 120, clock: Callable[[], float] = time.monotonic):
        self._read = read
        self._clock = clock
        self.start_total = read()
        self.total = 0
        self.rates: deque[int] = deque(maxlen=history)
        self._t0 = clock()
        self._second = 0
        self._at_second = 0       # the total when the current second began

    def tick(self) -> None:
        self.total = self._read() - self.start_total
        second = int(self._clock() - self._t0)
        while self._second < second:              # close the seconds that ended
            self.rates.append(self.total - self._at_second)
            self._at_second = self.total
            self._second += 1

    @property
    def now(self) -> int:
        """Drops in the last whole second (0 before the first one ends)."""
        return self.rates[-1] if self.rates else 0

    @property
    def seconds(self) -> int:
        return self._second


def addresses(iface: str, netns: str | None) -> list[str]:
    """The IPv4 addresses of ``iface`` (the ones a room pings), then its global IPv6 ones."""
    def look() -> list[str]:
        # lazy: pyroute2 is only needed here
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=iface)
            if not idx:
                return []
            found = [m.get_attr("IFA_ADDRESS") for m in ipr.get_addr(index=idx[0])]
        ips = [ipaddress.ip_address(a.split("%")[0]) for a in found if a]
        return [str(a) for a in ips if a.version == 4] + \
            [str(a) for a in ips if a.version == 6 and not a.is_link_local]
    try:
        return run_in_netns(netns, look)
    except Exception:
        return []


def _describe(att: XdpAttachment) -> str:
    return f"{att.program.name} on {att.target}, {att.mode} mode via {att.via}"


def screen(meter: DropMeter, title: str, notes: list[str], width: int, height: int) -> str:
    """The whole terminal screen: a title line, notes, the big counter, the plot."""
    scale = 2 if width >= 100 and height >= 34 else 1
    counter = big_text(f"{meter.total:,}", scale)
    if max(map(len, counter)) > width:
        counter = big_text(f"{meter.total:,}", 1)
    lines = [title[:width], *[part for n in notes for part in textwrap.wrap(n, width) or [""]], ""]
    lines += counter
    lines += [f"pings dropped ({meter.now}/s now, {meter.seconds} s running)", ""]
    lines += bar_plot(list(meter.rates), width, max(6, height - len(lines) - 1))
    return "\n".join(line[:width] for line in lines[:height])


class RoomView:
    """The notebook's demo (instructor/demo-xdp.ipynb): a counter in 120-pixel digits,
    a full-width plot of pings dropped per second, and labkit's live panel of the
    attachment (exact counters by action and protocol) under them. It refreshes
    every ``interval`` seconds until the attachment is detached or :meth:`close`;
    :meth:`close` detaches the attachment; a re-run of the view's cell replaces the view
    (labkit's panel registry) and keeps the attachment."""

    def __init__(self, att: XdpAttachment, *, history: int = 60, interval: float = 0.5):
        import ipywidgets as w  # lazy: ipywidgets is only needed in a notebook

        self.att = att
        self.interval = float(interval)
        self.meter = DropMeter(lambda: att.packets("drop"), history=history)
        # the panel does not own the attachment: re-running the view's cell alone keeps the program on
        self.panel = LivePanel(att, name=f"room demo {att.target}", rows=6, interval=interval, history=history,
                               own=False)
        self.note = ""
        if att.mode != "native":
            self.note = (f"{att.target} runs the program in GENERIC mode ({att.mode_note}): the same drops, "
                         "counted the same")
        self._counter = w.HTML()
        self._plot = Plot("pings dropped / s", figsize=(12.0, 4.0), dpi=80)
        self._image = w.Image(format="png", layout=w.Layout(width="100%"))
        self.widget = w.VBox([self._counter, self._image, self.panel.widget])
        self.panel.shown_in(self.widget)
        self._halt = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="labkit-room-demo", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Read the counters and redraw the counter and the plot now."""
        if self.att.attached:
            self.meter.tick()
        rates = np.array(list(self.meter.rates) or [0], dtype=float)
        x = np.arange(-len(rates) + 1, 1, dtype=float)
        self._image.value = self._plot.render(x, {"pings dropped": rates})
        note = f"<div style='font-size:18px;color:#b35900'>{html.escape(self.note)}</div>" if self.note else ""
        state = "" if self.att.attached else " (detached: pings answer again)"
        self._counter.value = (
            f"<div style='font-family:sans-serif'><div style='font-size:20px'>{html.escape(_describe(self.att))}"
            f"{state}</div>{note}<div style='font-size:120px;font-weight:bold;line-height:1.1'>"
            f"{self.meter.total:,}</div><div style='font-size:28px'>pings dropped &middot; {self.meter.now}/s "
            f"now</div></div>")

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.refresh()
            except Exception:   # a view must never take the notebook down
                pass
            if not self.att.attached or self.panel.state == "replaced":
                return

    def close(self) -> None:
        """Stop refreshing and give the attachment back (idempotent)."""
        self._halt.set()
        self.panel.close()
        self.att.detach()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.refresh()

    def _repr_mimebundle_(self, **kw):
        return widget_bundle(self, **kw)

    def __repr__(self) -> str:
        return f"<labkit RoomView {_describe(self.att)}: {self.meter.total} pings dropped>"


def room_view(att: XdpAttachment, **kw: Any) -> RoomView:
    """A :class:`RoomView` of ``att`` (what ``lab.attach_xdp`` returned)."""
    return RoomView(att, **kw)


class _Stop(BaseException):
    """SIGTERM or SIGHUP: end the demo as Ctrl-C does (a BaseException, like
    KeyboardInterrupt: no ``except Exception`` on the way may swallow it)."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def run_xdp_demo(iface: str, *, netns: str | None = None, mode: str = "native", seconds: float | None = None,
                 plain: bool | None = None, interval: float = 0.5, out=None, err=None) -> int:
    """The demo (see the module's docstring); returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    plain = (not out.isatty()) if plain is None else plain
    where = f"{netns}:{iface}" if netns else iface
    caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in caught}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    # Ctrl-C is KeyboardInterrupt only where Python installed its handler: a process that started with SIGINT
    # ignored (its parent ignored it: nohup, a job started with & by a script, an IPython kernel's children)
    # keeps ignoring it, and "Ctrl-C gives it back" would be untrue
    signal.signal(signal.SIGINT, signal.default_int_handler)
    lab: Lab | None = None
    att = None
    meter: DropMeter | None = None
    title, notes = "", []
    why = "stopped"
    try:
        lab = Lab()        # first reaps what dead owners left: a signal may come meanwhile
        try:
            att = lab.attach_xdp(PROGRAM, iface=iface, netns=netns, mode="auto" if mode == "native" else mode)
        except LabkitError as e:
            text = str(e).replace(", or pass force=True if you really mean this interface",
                                  "; the demo never forces: choose an interface that carries none of these "
                                  "(in the VM: eth1, the host-only network, or the bridged one)")
            print(f"labkit demo: {text}", file=err)
            return 2
        notes = []
        if mode == "native" and att.mode != "native":
            why_not = att.mode_note.split("(after: ", 1)[-1].rstrip(")") if "(after: " in att.mode_note else ""
            notes.append(f"NOTE: {iface} has no native XDP here ({why_not or 'the driver refused it'}): "
                         "fell back to GENERIC mode. Same drops, counted the same; the kernel runs the "
                         "program after building its packet buffer, a little later than native.")
        ips = addresses(iface, netns)
        ping_hint = f"ping {ips[0]}" if ips else f"ping the address of {iface}"
        print(f"labkit demo: {_describe(att)}. Ask the room: {ping_hint}. Ctrl-C gives it back.", file=err)
        for n in notes:
            print(f"labkit demo: {n}", file=err)
        err.flush()
        meter = DropMeter(lambda: att.packets("drop"))   # ping: ICMP and ICMPv6 echo
        title = f"labkit demo · {_describe(att)}"
        notes.insert(0, f"Ask the room: {ping_hint}    (Ctrl-C gives it back)")
        if not plain:
            out.write("\x1b[?1049h\x1b[?25l")      # the alternate screen, no cursor
        start = time.monotonic()
        last_line = -1
        while True:
            meter.tick()
            if not att.attached:
                why = f"the program was taken off {where} from outside (labkit cleanup?)"
                break
            if plain:
                if meter.seconds != last_line:
                    last_line = meter.seconds
                    print(f"dropped {meter.total} pings, {meter.now}/s ({_describe(att)})", file=out, flush=True)
            else:
                size = _terminal_size(out)
                out.write("\x1b[H\x1b[2J" + screen(meter, title, notes, *size))
                out.flush()
            if seconds is not None and time.monotonic() - start >= seconds:
                why = f"{seconds:g} s are up"
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        why = "Ctrl-C"
    except _Stop as e:
        why = str(e)
    finally:
        for sig in caught:              # a second signal must not cut the giving back short
            signal.signal(sig, signal.SIG_IGN)
        if att is not None and not plain:
            out.write("\x1b[?25h\x1b[?1049l")
            if meter is not None:       # the alternate screen is gone: leave its last frame on the terminal
                out.write(screen(meter, title, notes, *_terminal_size(out)) + "\n")
            out.flush()
        total = None
        if att is not None:
            try:
                total = att.packets("drop") if att.attached else None
            except LabkitError:
                total = None
        if lab is not None:
            lab.close()
        if att is not None:
            dropped = f"dropped {total - meter.start_total} pings; " if total is not None and meter else ""
            print(f"labkit demo: {why}: {dropped}{PROGRAM} taken off {where} (XDP {att.state}); pings answer again",
                  file=out, flush=True)
        for sig, handler in before.items():
            if handler is not None:     # None: a handler Python did not install, which it cannot put back
                signal.signal(sig, handler)
    return 0


def _terminal_size(out) -> tuple[int, int]:
    size = shutil.get_terminal_size((100, 30))
    return size.columns, size.lines


def main(argv: list[str]) -> int:
    """``labkit demo xdp --iface IFACE [--netns NS] [--mode native|generic] [--seconds S] [--plain]``."""
    p = argparse.ArgumentParser(prog="labkit demo", description="Demos for a room of students.")
    sub = p.add_subparsers(dest="demo", required=True, metavar="{xdp}")
    x = sub.add_parser("xdp", help="drop pings on IFACE: a big counter and pings dropped per second",
                       description="Attach lesson 02's xdp_icmp_drop to IFACE and show the pings it drops, "
                                   "big. Refuses the interface of the default route, SSH or JupyterLab. "
                                   "Ctrl-C (or SIGTERM) takes it off.")
    x.add_argument("--iface", required=True, help="the interface the room pings (in the VM: eth1, or the bridged one)")
    x.add_argument("--netns", default=None, help="its network namespace (default: the root one)")
    x.add_argument("--mode", choices=("native", "generic"), default="native",
                   help="native (default; falls back to generic, and says so) or generic")
    x.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    x.add_argument("--plain", action="store_true", help="one line a second instead of the big screen")
    x.add_argument("--interval", type=float, default=0.5, help="seconds between redraws (default 0.5)")
    a = p.parse_args(argv)
    if a.interval <= 0 or (a.seconds is not None and a.seconds <= 0):
        p.error("--interval and --seconds must be positive")
    return run_xdp_demo(a.iface, netns=a.netns, mode=a.mode, seconds=a.seconds, plain=a.plain or None,
                        interval=a.interval)
