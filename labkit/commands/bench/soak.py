"""The soak: the lessons' cells re-run many times in one process, as a student
re-runs them over a term, with what the process holds counted after each round.

A round runs, in one namespace as a notebook would, the code of the cells of
lesson 01 (a snippet loaded, a map read, trace_clone with a live panel and its
snapshot, the syscall picker retargeted), lesson 02 (XDP on a sandbox with a
live panel of its counters, pings and UDP across, its events, the XDP control
attaching and detaching, the classic and the good program) and lesson 03 (an
event stream and a map counting the same calls, a race counted plain and
atomic, a histogram map). Traffic stays inside one :class:`labkit.Sandbox`,
made once (re-running the cell that makes a sandbox makes another one).

After every round: open file descriptors, threads, labkit's live attachments
and panels, and RSS. Re-running must leave them flat: the same fds, threads,
attachments and panels as after the first round, and RSS within a few MB.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import threading
import time
from typing import Any, Callable

from labkit.attach import live_attachments
from labkit.commands.bench.config import MiB
from labkit.commands.bench.sysinfo import rss_bytes
from labkit.lab import Lab
from labkit.net.sandbox import Sandbox
from labkit.views.controls import SyscallPicker, XdpControl
from labkit.views.panel import close_panels, live, live_panels
from labkit.views.tables import map_dataframe

__all__ = ["LessonCells", "phase_soak", "sample", "soak_summary"]


def sample() -> dict[str, Any]:
    """What this process holds now, once it has settled: after a garbage collection
    (as a kernel's idle time would do) and once every panel whose source stopped
    has ended its refresh thread (it does so at its next refresh)."""
    deadline = time.monotonic() + 5
    while not _panel_threads_settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()
    return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
            "attachments": len(live_attachments()), "panels": len(live_panels()),
            "rss_mb": round(rss_bytes() / MiB, 2)}


def _panel_threads_settled() -> bool:
    running = {f"labkit-panel-{p.name}" for p in live_panels() if p.running}
    return all(t.name in running for t in threading.enumerate() if t.name.startswith("labkit-panel-"))


def _tasks(n: int = 1) -> None:
    """Lesson 01's make_some_tasks: a vfork, a thread and a fork each time."""
    for _ in range(n):
        subprocess.run(["true"])
        t = threading.Thread(target=time.sleep, args=(0.001,))
        t.start()
        t.join()
        if (pid := os.fork()) == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def _calls(n: int) -> None:
    for _ in range(n):
        os.getppid()


class LessonCells:
    """The lessons' cells as one round of code, run in one namespace (``ns``)
    with one Lab and one Sandbox, as a notebook kernel would run them."""

    def __init__(self, *, xdp: bool = True):
        self.me = os.getpid()
        self.lab = Lab()
        self.sandbox = Sandbox() if xdp else None
        self.ns: dict[str, Any] = {}

    @property
    def cells(self) -> list[Callable[[], None]]:
        cells = [self.lesson01_load, self.lesson01_printk_vs_map, self.lesson01_trace_clone,
                 self.lesson01_count_by_comm, self.lesson01_picker]
        if self.sandbox is not None:
            cells += [self.lesson02_xdp_panel, self.lesson02_control, self.lesson02_classic_and_good]
        return cells + [self.lesson03_events_and_map, self.lesson03_race, self.lesson03_histogram]

    def run_round(self) -> None:
        """Every cell once, its printed output thrown away (a notebook would show it)."""
        with contextlib.redirect_stdout(io.StringIO()):
            for cell in self.cells:
                cell()

    # ------------------------------------------------------------ lesson 01
    def lesson01_load(self) -> None:
        ns, lab = self.ns, self.lab
        ns["classic"] = lab.load("hello_clone_classic")
        ns["comm_source"] = lab.load("count_by_comm").source

    def lesson01_printk_vs_map(self) -> None:
        ns, lab = self.ns, self.lab
        ns["printer"] = lab.attach_tracepoint(lab.load("printk_vs_map", defines={"LK_FILTER_PID": self.me}),
                                              "syscalls:sys_enter_getppid")
        _calls(100)
        ns["counted"] = ns["printer"].program["calls"][0].value
        ns["printer"].detach()

    def lesson01_trace_clone(self) -> None:
        ns, lab = self.ns, self.lab
        ns["clones"] = clones = lab.trace_clone()
        ns["panel"] = live(clones, rows=8, interval=0.25)
        _tasks()
        clones.wait(lambda df: (df.pid == self.me).sum() >= 3, timeout=3)
        df = clones.to_dataframe()
        ns["per_kind"] = df.query("pid == @self.me").kind.value_counts()
        ns["panel"].snapshot()

    def lesson01_count_by_comm(self) -> None:
        ns, lab = self.ns, self.lab
        ns["counter"] = lab.attach_tracepoint("count_by_comm", "task:task_newtask")
        _tasks()
        ns["counts"] = map_dataframe(ns["counter"].program, "counts").sort_values("value", ascending=False)

    def lesson01_picker(self) -> None:
        ns = self.ns
        ns["picker"] = picker = SyscallPicker(self.lab, "openat", rows=6)
        picker.select("execve")
        subprocess.run(["true"])
        picker.stream.wait(timeout=3)
        picker.panel.snapshot()

    # ------------------------------------------------------------ lesson 02
    def lesson02_xdp_panel(self) -> None:
        ns, lab, sb = self.ns, self.lab, self.sandbox
        ns["x"] = x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        ns["counters"] = live(x, name="ping drop", interval=0.25)
        ns["r"] = sb.ping(count=3, interval=0.05, timeout=0.3)
        ns["dropped"] = x.packets("drop", "icmp")
        ns["udp"] = sb.send_udp(count=5)
        ns["counters"].snapshot()
        ns["tail"] = x.events.to_dataframe().tail(6)

    def lesson02_control(self) -> None:
        ns, sb = self.ns, self.sandbox
        ns["ctl"] = ctl = XdpControl(self.lab, "xdp_icmp_drop")
        ctl.select(sb.target_iface, sb.target_ns)
        ctl.attach(mode="generic")
        sb.ping(count=2, interval=0.05, timeout=0.3)
        ctl.interfaces()
        ctl.detach()

    def lesson02_classic_and_good(self) -> None:
        ns, lab, sb = self.ns, self.lab, self.sandbox
        ns["classic"] = lab.attach_xdp("xdp_icmp_drop_classic", iface=sb.target_iface, netns=sb.target_ns)
        sb.send_udp(count=3, timeout=0.3)
        ns["good"] = good = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        sb.flush_neighbors()
        ns["udp_good"] = sb.send_udp(count=3, timeout=0.3)
        good.counters()

    # ------------------------------------------------------------ lesson 03
    def lesson03_events_and_map(self) -> None:
        ns, lab, me = self.ns, self.lab, self.me
        ns["events"] = events = lab.trace_syscall("getppid", pid=me, ring_pages=1, name="events demo")
        ns["counter"] = lab.attach_tracepoint(lab.load("count_getppid", defines={"LK_FILTER_PID": me}),
                                              "syscalls:sys_enter_getppid")
        _calls(2_000)
        events.poll()
        ns["counted"] = int(map_dataframe(ns["counter"].program, "calls").value.sum())
        events.stop()
        ns["counter"].detach()
        ns["e"] = e = lab.trace_syscall("getppid", pid=me, name="cost demo")
        _calls(100)
        e.stop()

    def lesson03_race(self) -> None:
        ns, lab = self.ns, self.lab
        ns["race"] = race = lab.attach_tracepoint(lab.load("race_plain_vs_atomic", defines={"LK_PARENT_PID": self.me}),
                                                  "syscalls:sys_exit_getppid")
        _calls(100)
        ns["plain"], ns["atomic"] = race.program["plain"][0].value, race.program["atomic"][0].value
        race.detach()

    def lesson03_histogram(self) -> None:
        ns, lab = self.ns, self.lab
        ns["hist"] = hist = lab.attach_tracepoint(lab.load("write_sizes", defines={"LK_FILTER_PID": self.me}),
                                                  "syscalls:sys_enter_write")
        with open(os.devnull, "wb", buffering=0) as f:
            for size in (1, 10, 100, 1000):
                f.write(b"x" * size)
        ns["sizes"] = map_dataframe(hist.program, "sizes").query("value > 0")

    # -------------------------------------------------------------- the end
    def close(self) -> None:
        """The lessons' last cells: close the panels and the Lab, remove the sandbox."""
        try:
            close_panels()
            self.lab.close()
        finally:
            if self.sandbox is not None:
                self.sandbox.close()
        self.ns.clear()


def soak_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """First round against the last: what stayed flat and how RSS moved."""
    first, last = samples[0], samples[-1]
    rss = [s["rss_mb"] for s in samples]
    tail = rss[len(rss) // 10:]   # past the first tenth of the rounds
    return {"rounds": len(samples), "first": first, "last": last,
            "flat": {k: last[k] == first[k] for k in ("fds", "threads", "attachments", "panels")},
            "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 2),
            "rss_max_growth_mb": round(max(rss) - first["rss_mb"], 2),
            "rss_tail_growth_per_round_kb": round((tail[-1] - tail[0]) / max(1, len(tail) - 1) * 1024, 1)}


def phase_soak(rounds: int, *, xdp: bool = True, progress: Callable[[int, dict], None] | None = None
               ) -> dict[str, Any]:
    """Re-run the lessons' cells ``rounds`` times in this process; a sample after each round."""
    cells = LessonCells(xdp=xdp)
    samples: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for i in range(1, rounds + 1):
            cells.run_round()
            samples.append(sample())
            if progress is not None:
                progress(i, samples[-1])
    finally:
        cells.close()
    out = soak_summary(samples)
    out.update(lessons="01-03" if xdp else "01 and 03", samples=samples, seconds=round(time.perf_counter() - t0, 1), after_close=sample())
    return out
