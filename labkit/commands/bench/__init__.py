"""``labkit bench``: where labkit's event pipeline stands, measured side by side.

One run, one load generator, three ways of getting its events to Python:

* **labkit**  ``lab.trace_syscall("getppid", pid=...)``: the ring buffer is
  mmapped and decoded in batches into numpy columns (``labkit/events/ringbuf.py``);
* **bcc**     what a user writes with BCC: the same ring buffer and event
  struct, ``b.ring_buffer_poll()`` and a Python callback that decodes every
  event with ``b["events"].event(data)``;
* **printk**  the classic ``bpf_trace_printk`` + ``b.trace_fields()``.

Every program is filtered (in the kernel) to the load generator's pid, and
the load generator is a small C loop compiled here with the system's C
compiler (a Python loop, at lower rates, when there is none): it calls
``getppid()`` at a set rate and reports exactly how many calls it made, so
for every method ``generated = received + lost (reported) + missing (silent)``.

Also measured: the traced process's loop rate with and without each tracer,
decode capacity on a full ring buffer, time to first event (first call and a
re-run in the same process, with where the time went), RSS growth over many
events with the default window, and XDP counters under a UDP and a ping flood
inside a :class:`labkit.Sandbox` (traffic never leaves the sandbox's
namespaces), and the soak: the cells of lessons 01-03 re-run 100 times in this
process, with open fds, threads, attachments, live panels and RSS after each
round (they must stay where the first round left them).

``labkit bench [--quick | --smoke] [--soak-only] [--json FILE] [--plot PNG] [--readme README.md]``

The JSON holds the headline figures as flat keys -- labkit_decode_eps,
bcc_decode_eps, printk_eps (events received per second, flat out),
flat_out_generator_bound (labkit received everything the traced load generator
produced, flat out: its rate is the generator's), labkit_ns_per_event and
bcc_ns_per_event (consumer CPU per event, flat out), labkit_capacity_eps and
bcc_capacity_eps (decode rate on a full ring buffer),
labkit_loss_at_500k (fraction of generated events not received),
traced_slowdown (untraced loop rate / rate under labkit), first_event_s,
rerun_first_event_s, rss_growth_mb, xdp_sent, xdp_counted, xdp_pps,
soak_rounds, soak_flat, soak_rss_growth_mb, targets (labkit against raw BCC
is judged on CPU per event and on capacity; the flat-out rate only when the
generator is not its bound) -- and the detail:
rates[method] (one row per target rate: generated, received, lost, missing,
rates, consumer CPU and run-queue wait), capacity, first_event, memory, xdp,
soak (a sample per round), machine, loadgen.

The package, one job per file::

    config.py     the traced syscall, ring buffer sizes, the modes (full, quick, smoke)
    loadgen.py    the load generator process: loadgen.c compiled here, or the fallback
    loadgen_fallback.py  the load generator in Python, for a machine without a C compiler
    tracers.py    labkit, raw BCC (raw_bcc.c) and trace_printk (printk.c) as event consumers
    sysinfo.py    CPU time, scheduler waits, CPU pressure, RSS, machine description
    phases.py     the measurements on the event pipeline, one function per phase
    xdp.py        the XDP phase, inside a labkit.Sandbox
    soak.py       the soak: the lessons' cells re-run, what the process holds after each round
    run.py        one whole run: every phase in order (or the soak alone)
    summary.py    headline figures and targets from the phases' results
    fmt.py        how numbers are written; progress lines
    output.py     the text report, plot, README section and JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from labkit.commands.bench.config import MODES
from labkit.commands.bench.loadgen import LoadGen, LoadGenError, build_loadgen
from labkit.commands.bench.output import (
    SOAK_END,
    SOAK_START,
    plot,
    readme_block,
    render,
    soak_block,
    to_json,
    update_readme,
)
from labkit.commands.bench.run import run_bench, run_soak
from labkit.commands.bench.summary import summarize, targets

__all__ = ["MODES", "LoadGen", "LoadGenError", "build_loadgen", "main", "plot", "readme_block", "render",
           "run_bench", "run_soak", "soak_block", "summarize", "targets", "to_json", "update_readme"]


def main(argv: list[str] | None = None) -> int:
    """``labkit bench [options]``; returns the exit status (1 if a phase failed or left something attached)."""
    p = argparse.ArgumentParser(prog="labkit bench",
                                description="Benchmark labkit's event stream against raw BCC and trace_printk, "
                                            "plus slowdown, time to first event, memory and XDP counters.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="about a minute: 1 s per rate, 2M events for memory")
    g.add_argument("--smoke", action="store_true", help="a few seconds of everything (used by the tests)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--plot", metavar="PNG", help="write the received-vs-generated plot to PNG")
    p.add_argument("--readme", metavar="README", help="rewrite the bench section of README (between the markers)")
    p.add_argument("--plot-ref", default="docs/bench.png", help="the plot path written into the README section")
    p.add_argument("--loadgen", choices=("auto", "c", "python"), default="auto",
                   help="load generator: a C loop (compiled now) or a Python loop; auto: C if a compiler exists")
    p.add_argument("--skip", action="append", default=[], metavar="PHASE",
                   choices=("first_event", "imports", "labkit", "bcc", "printk", "capacity", "memory", "xdp", "soak"),
                   help="leave out a phase (repeatable)")
    p.add_argument("--soak-only", action="store_true",
                   help="only the soak: the lessons' cells re-run (100 times; --quick: 10) in one process, "
                        "fds/threads/attachments/panels/RSS after each round; --readme rewrites only its paragraph")
    p.add_argument("--from-json", metavar="FILE", help="do not measure: render/plot/readme from a saved run")
    a = p.parse_args(argv)
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
        summarize(res)
    else:
        if os.geteuid() != 0:
            print("labkit bench loads BPF programs and builds a network sandbox: run it as root (sudo)",
                  file=sys.stderr)
            return 1
        mode = "smoke" if a.smoke else "quick" if a.quick else "full"
        res = run_soak(mode) if a.soak_only else run_bench(mode, loadgen=a.loadgen, skip=set(a.skip))
    print(render(res))
    if a.json and not a.from_json:
        Path(a.json).write_text(to_json(res))
    if res.get("soak_only"):
        if a.readme:
            update_readme(a.readme, soak_block(res), SOAK_START, SOAK_END)
        return 1 if res.get("errors") or res.get("leftover_attachments") else 0
    if a.plot:
        plot(res, a.plot)
    if a.readme:
        update_readme(a.readme, readme_block(res, a.plot_ref))
    return 1 if res.get("errors") or res.get("leftover_attachments") else 0

