"""The measurements on the event pipeline, one function per phase.

Each phase takes the running load generator and the mode's settings and
returns plain data (dicts of numbers) for the JSON; :func:`step` is one run of
the load generator at one rate under one tracer, with every event accounted for.
The XDP phase is in :mod:`labkit.commands.bench.xdp`.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from labkit import lab as _lab
from labkit.commands.bench.config import SYSCALL, MiB
from labkit.commands.bench.fmt import log, rate_label
from labkit.commands.bench.loadgen import LoadGen
from labkit.commands.bench.sysinfo import cpu_pressure_us, cpu_seconds, rss_bytes, schedstat
from labkit.commands.bench.tracers import BccTracer, LabkitTracer, PrintkTracer, Tracer
from labkit.events.stream import DEFAULT_WINDOW
from labkit.lab import Lab
from labkit.views.tables import trace_pipe_readers

__all__ = ["phase_capacity", "phase_first_event", "phase_import_times", "phase_memory", "phase_method",
           "phase_untraced", "step", "timed_compile_and_load"]


def step(lg: LoadGen, tracer: Tracer, rate: float, seconds: float, limit: int = 0,
         idle_s: float = 0.3) -> dict[str, Any]:
    """One run of the load generator at ``rate`` under ``tracer``; counts what arrived."""
    r0, l0 = tracer.counts()
    c0 = cpu_seconds()
    tid = tracer.consumer_tid()
    s0 = schedstat(tid)
    p0 = cpu_pressure_us()
    gaps = getattr(tracer, "gaps", None)
    if gaps is not None:
        gaps.clear()
    t0 = time.perf_counter()
    lg.start(rate, seconds, limit)
    tracer.pump(lg)
    generated, gen_s = lg.result()
    t_gen = time.perf_counter()
    # drain: until everything is accounted for, or nothing has arrived for idle_s
    last = tracer.counts()[0]
    t_last = time.perf_counter()
    deadline = t_gen + max(5.0, 3 * seconds)
    while True:
        tracer.drain()
        rec, lost = tracer.counts()
        now = time.perf_counter()
        if rec != last:
            last, t_last = rec, now
        if rec - r0 + ((lost or 0) - (l0 or 0)) >= generated:
            break
        if now - t_last > idle_s or now > deadline:
            break
        time.sleep(0.002)
    rec, lost = tracer.counts()
    received = rec - r0
    lost_n = None if lost is None else lost - (l0 or 0)
    span = max(gen_s, t_last - t0) if received else gen_s
    cpu = cpu_seconds() - c0
    s1 = schedstat(tid)
    p1 = cpu_pressure_us()
    wall = time.perf_counter() - t0
    return {
        "target_eps": rate, "generated": generated, "gen_seconds": round(gen_s, 4),
        "gen_eps": generated / gen_s if gen_s > 0 else 0.0,
        "received": received, "recv_eps": received / span if span > 0 else 0.0,
        "lost": lost_n, "missing": generated - received - (lost_n or 0),
        "loss_fraction": (generated - received) / generated if generated else 0.0,
        "drain_s": round(max(0.0, t_last - t_gen), 4),
        "cpu_ns_per_event": (cpu / received * 1e9) if received else None,
        "consumer_cpu_s": round(s1[0] - s0[0], 4) if s0 and s1 else None,
        "consumer_runqueue_wait_s": round(s1[1] - s0[1], 4) if s0 and s1 else None,
        "max_gap_between_batches_s": round(max(gaps), 4) if gaps else None,
        # share of the step's wall time in which some task on this machine waited for a CPU
        "machine_cpu_pressure": round((p1 - p0) / 1e6 / wall, 3) if p0 is not None and p1 is not None else None,
    }


def phase_untraced(lg: LoadGen, cfg: dict) -> dict[str, Any]:
    """The load generator's loop rate, flat out, with nothing tracing it."""
    n, s = lg.run(0, cfg["step_s"])
    return {"calls": n, "seconds": s, "eps": n / s}


def phase_method(name: str, lg: LoadGen, cfg: dict, rates: list[float] | None = None,
                 **kw) -> tuple[list[dict], dict[str, Any]]:
    """One method (labkit, bcc or printk) at every target rate: (one :func:`step` row per rate, notes).
    ``kw`` goes to the tracer (labkit: ``trace_syscall`` options such as ``ring_pages``)."""
    cls = {"labkit": LabkitTracer, "bcc": BccTracer, "printk": PrintkTracer}[name]
    extra: dict[str, Any] = {}
    if name == "printk":
        others = trace_pipe_readers(exclude=os.getpid())
        deadline = time.monotonic() + cfg["trace_pipe_wait_s"]
        if others:
            log(f"trace_pipe is open in pid(s) {others}: waiting up to {cfg['trace_pipe_wait_s']:g} s for them")
        while others and time.monotonic() < deadline:     # give someone else's reader time to finish
            time.sleep(0.5)
            others = trace_pipe_readers(exclude=os.getpid())
        extra["other_trace_pipe_readers"] = others
        if others:
            log(f"warning: trace_pipe is also open in pid(s) {others}: they and this benchmark "
                "take lines from each other, so printk figures are unreliable")
        kw.setdefault("wait_s", cfg["trace_pipe_wait_s"])   # where the kernel allows one reader: wait for it
    tracer = cls(lg, **kw)
    rows = []
    try:
        for rate in rates or cfg["rates"]:
            log(f"{name}: {rate_label(rate)} calls/s for {cfg['step_s']:g} s")
            row = step(lg, tracer, rate, cfg["step_s"], idle_s=0.5 if name == "printk" else 0.3)
            rows.append(row)
    finally:
        tracer.close()
    if name == "printk":
        extra["foreign_lines_read"] = tracer.foreign
        extra["reader_thread_stuck"] = tracer.stuck
    return rows, extra


def phase_capacity(lg: LoadGen, cfg: dict) -> dict[str, Any]:
    """Decode throughput on a full ring buffer: the consumer alone, CPU-bound."""
    n_fill, reps = cfg["fill_events"], cfg["fill_repeats"]
    out: dict[str, Any] = {"events_per_fill": n_fill}
    lab = Lab()
    try:
        s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-fill", poll_interval=3600.0)
        s.poll()
        best, df_s = 0.0, None
        for _ in range(reps):
            lg.run(0, 0, n_fill)
            t = time.perf_counter()
            got = s.poll()
            dt = time.perf_counter() - t
            if got:
                best = max(best, got / dt)
        t = time.perf_counter()
        df = s.to_dataframe()
        df_s = time.perf_counter() - t
        out["labkit_eps"] = best
        out["labkit_lost"] = s.lost
        out["dataframe_rows"] = len(df)
        out["dataframe_s"] = df_s
        del df
    finally:
        lab.close()
    tr = BccTracer(lg)
    try:
        for mode in ("decode", "count"):
            tr.decode = mode == "decode"
            best = 0.0
            for _ in range(reps):
                lg.run(0, 0, n_fill)
                n0 = tr.n
                t = time.perf_counter()
                tr.b.ring_buffer_consume()
                dt = time.perf_counter() - t
                if tr.n > n0:
                    best = max(best, (tr.n - n0) / dt)
            out[f"bcc_{mode}_eps"] = best
        out["bcc_lost"] = tr.counts()[1]
    finally:
        tr.close()
    return out


@contextmanager
def timed_compile_and_load(timings: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in labkit's compile step and in Program.load_function (verify + load)
    to ``timings["compile"]`` and ``timings["verify_load"]`` while inside the block."""
    real_compile, real_load = _lab.compile_c, _lab.Program.load_function

    def timed(key, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - t
        return wrapper

    # labkit.lab calls compile_c by the name it imported; Program.load_function is a method of the class
    _lab.compile_c = timed("compile", real_compile)
    _lab.Program.load_function = timed("verify_load", real_load)
    try:
        yield
    finally:
        _lab.compile_c, _lab.Program.load_function = real_compile, real_load


def phase_first_event(lg: LoadGen) -> dict[str, Any]:
    """Time from lab.trace_syscall() to the first row of its table, twice in this process."""
    timings: dict[str, float] = {}
    lab = Lab()
    out: dict[str, Any] = {}
    lg.start(20_000, 60.0)
    try:
        with timed_compile_and_load(timings):
            for label in ("first", "rerun"):
                timings.clear()
                t0 = time.perf_counter()
                s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-first")
                t_attached = time.perf_counter()
                while True:
                    s.poll()
                    if len(s.to_dataframe(last=1)):
                        break
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError("no event within 30 s")
                    time.sleep(0.0005)
                t1 = time.perf_counter()
                comp, ld = timings.get("compile", 0.0), timings.get("verify_load", 0.0)
                out[label] = {"total_s": t1 - t0, "compile_s": comp, "verify_load_s": ld,
                              "attach_other_s": (t_attached - t0) - comp - ld, "to_first_row_s": t1 - t_attached}
    finally:
        try:
            lg.interrupt()
            lg.result(timeout=10)
        finally:
            lab.close()
    return out


def phase_import_times() -> dict[str, float]:
    """Seconds to import bcc and labkit, each in a fresh interpreter."""
    out = {}
    for mod in ("bcc", "labkit"):
        r = subprocess.run([sys.executable, "-c",
                            f"import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"],
                           capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[3]))
        try:
            out[f"import_{mod}_s"] = float(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[f"import_{mod}_s"] = None
    return out


def phase_memory(lg: LoadGen, n_events: int) -> dict[str, Any]:
    """RSS growth of this process over ``n_events`` events with the default window."""
    gc.collect()
    lab = Lab()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_bytes())

    try:
        rss0 = rss_bytes()
        s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-mem")
        rss_attached = rss_bytes()
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        generated, gen_s = lg.run(0, 0, n_events)
        deadline = time.perf_counter() + 10
        while s.received + s.lost < generated and time.perf_counter() < deadline:
            s.poll()
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        stop.set()
        th.join()
        rss1 = rss_bytes()
        df = s.to_dataframe()
        rss_df = rss_bytes()
        out = {"events_generated": generated, "received": s.received, "lost": s.lost,
               "window": s.window, "default_window": DEFAULT_WINDOW, "seconds": elapsed,
               "rss_before_mb": rss0 / MiB, "rss_after_mb": rss1 / MiB,
               "growth_mb": (rss1 - rss0) / MiB, "attach_growth_mb": (rss_attached - rss0) / MiB,
               "peak_growth_mb": (max(peak[0], rss1) - rss0) / MiB,
               "with_dataframe_growth_mb": (rss_df - rss0) / MiB, "dataframe_rows": len(df)}
        del df
        return out
    finally:
        stop.set()
        lab.close()
