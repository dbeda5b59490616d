"""One whole benchmark run: build the load generator, run every phase, summarize."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from labkit.attach import live_attachments
from labkit.commands.bench.config import MODES, SYSCALL, VARIANT, VARIANT_PAGES
from labkit.commands.bench.fmt import log
from labkit.commands.bench.loadgen import LoadGen, build_loadgen
from labkit.commands.bench.phases import (
    phase_capacity,
    phase_first_event,
    phase_import_times,
    phase_memory,
    phase_method,
    phase_untraced,
)
from labkit.commands.bench.soak import phase_soak
from labkit.commands.bench.summary import summarize
from labkit.commands.bench.sysinfo import machine_info
from labkit.commands.bench.xdp import phase_xdp

__all__ = ["run_bench", "run_soak"]


def run_bench(mode: str = "quick", loadgen: str = "auto", skip: set[str] | None = None) -> dict[str, Any]:
    """Every phase in order (``skip``: phases to leave out) on one load generator; a phase that
    fails is recorded in ``errors`` and the rest still run. Returns the results, summarized."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    skip = skip or set()
    cfg = MODES[mode]
    res: dict[str, Any] = {"mode": mode, "config": dict(cfg), "syscall": SYSCALL, "errors": {}}
    res["machine"] = machine_info()
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    lg = None
    try:
        kind, exe, desc = build_loadgen(work, loadgen)
        res["loadgen"] = {"kind": kind, "description": desc}
        log(f"load generator: {desc}")
        lg = LoadGen(kind, exe)

        def phase(name: str, fn: Callable[[], Any]) -> Any:
            if name in skip:
                return None
            log(f"phase {name}")
            try:
                return fn()
            except Exception as e:  # recorded, and the rest still runs
                res["errors"][name] = f"{type(e).__name__}: {e}"
                log(f"phase {name} failed: {e}")
                if lg is not None and lg.running:
                    try:
                        lg.interrupt()
                        lg.result(timeout=10)
                    except Exception:
                        pass
                return None

        res["first_event"] = phase("first_event", lambda: phase_first_event(lg))
        res["imports"] = phase("imports", phase_import_times)
        untraced = [phase("untraced", lambda: phase_untraced(lg, cfg))]
        rates: dict[str, list] = {}
        extras: dict[str, Any] = {}
        for m in ("labkit", "bcc", "printk"):
            got = phase(m, lambda m=m: phase_method(m, lg, cfg))
            if got is not None:
                rates[m], extras[m] = got
            if m == "labkit" and cfg["variant_rates"]:
                # the same stream with a 4x larger ring buffer: how much of the loss is
                # time the consumer spent waiting for a CPU (more room = more slack)
                got = phase(VARIANT, lambda: phase_method("labkit", lg, cfg, cfg["variant_rates"],
                                                           ring_pages=VARIANT_PAGES))
                if got is not None:
                    rates[VARIANT], extras[VARIANT] = got
        untraced.append(phase("untraced", lambda: phase_untraced(lg, cfg)))
        res["rates"] = rates
        res["method_notes"] = extras
        res["untraced_runs"] = [u for u in untraced if u]
        res["capacity"] = phase("capacity", lambda: phase_capacity(lg, cfg))
        res["memory"] = phase("memory", lambda: phase_memory(lg, cfg["mem_events"]))
        lg.close()
        lg = None
        res["xdp"] = phase("xdp", lambda: phase_xdp(kind, exe, cfg))
        res["soak"] = phase("soak", lambda: soak(cfg["soak_rounds"], xdp=cfg.get("soak_xdp", True)))
    finally:
        if lg is not None:
            lg.close()
        shutil.rmtree(work, ignore_errors=True)
    res["leftover_attachments"] = [repr(a) for a in live_attachments()]
    res["machine"]["loadavg_end"] = os.getloadavg()[0]
    res["seconds"] = time.perf_counter() - t_start
    summarize(res)
    return res


def run_soak(mode: str = "full") -> dict[str, Any]:
    """Only the soak phase (``labkit bench --soak-only``): the mode's rounds of the lessons' cells."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    cfg = MODES[mode]
    res: dict[str, Any] = {"mode": mode, "config": dict(cfg), "soak_only": True, "errors": {}}
    res["machine"] = machine_info()
    t_start = time.perf_counter()
    log("phase soak")
    try:
        res["soak"] = soak(cfg["soak_rounds"], xdp=cfg.get("soak_xdp", True))
    except Exception as e:
        res["errors"]["soak"] = f"{type(e).__name__}: {e}"
        log(f"phase soak failed: {e}")
    res["leftover_attachments"] = [repr(a) for a in live_attachments()]
    res["machine"]["loadavg_end"] = os.getloadavg()[0]
    res["seconds"] = time.perf_counter() - t_start
    summarize(res)
    return res


def soak(rounds: int, *, xdp: bool = True) -> dict[str, Any]:
    """The soak phase, with a progress line every tenth of the rounds (``xdp``: lesson 02's cells too)."""
    every = max(1, rounds // 10)

    def progress(i: int, s: dict[str, Any]) -> None:
        if i == 1 or i % every == 0:
            log(f"soak: round {i}/{rounds}: {s['fds']} fds, {s['threads']} threads, {s['attachments']} attached, "
                f"{s['panels']} panels, RSS {s['rss_mb']:.1f} MB")

    return phase_soak(rounds, xdp=xdp, progress=progress)
