"""What ``labkit bench`` writes: the text report, the plot, the README section and the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from labkit.commands.bench.config import RECORD_BYTES, RING_PAGES, SYSCALL, VARIANT, VARIANT_PAGES
from labkit.commands.bench.fmt import fmt_int, fmt_rate, rate_label
from labkit.commands.bench.summary import flat_out_row, generator_bound, row_at

__all__ = ["README_END", "README_START", "SHORT", "SOAK_END", "SOAK_START", "describe_machine", "plot",
           "readme_block", "render", "soak_block", "to_json", "update_readme"]

#: Short method names for the table columns.
SHORT = {VARIANT: "lk16M"}

README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
SOAK_START, SOAK_END = "<!-- soak:start -->", "<!-- soak:end -->"    # inside the bench section


def describe_machine(m: dict[str, Any]) -> str:
    """One line from :func:`labkit.commands.bench.sysinfo.machine_info`."""
    parts = [m.get("cpu", "?cpu"), f"{m.get('cpus')} CPUs", f"{m.get('mem_gib', '?')} GiB",
             f"Linux {m.get('kernel')}", m.get("os", "")]
    if m.get("virt") and m["virt"] != "none":
        parts.append(f"VM ({m['virt']})")
    parts.append(f"BCC {m.get('bcc')}, Python {m.get('python')}")
    return ", ".join(p for p in parts if p)


def render(res: dict[str, Any]) -> str:
    """The full report the command prints: per-rate table, where the time went, every phase, targets
    (for ``--soak-only``: the soak and its target)."""
    if res.get("soak_only"):
        m = res["machine"]
        lines = [f"labkit bench --soak-only ({res['mode']})", f"machine: {describe_machine(m)}; load average "
                 f"{m.get('loadavg_start', 0):.2f} at start, {m.get('loadavg_end', 0):.2f} at end"]
        return _tail(res, lines + _soak_lines(res))
    m = res["machine"]
    lg = res.get("loadgen", {})
    cfg = res["config"]
    lines = [
        f"labkit bench ({res['mode']}): {SYSCALL}() from a load generator, every program filtered to its pid; "
        f"{cfg['step_s']:g} s per rate",
        f"load generator: {lg.get('description', '?')}",
        f"machine: {describe_machine(m)}; load average {m.get('loadavg_start', 0):.2f} at start, "
        f"{m.get('loadavg_end', 0):.2f} at end",
        "",
        "Events received against generated (one method at a time, same load generator)",
        f"{'target/s':>9} {'method':<7} {'generated/s':>11} {'received/s':>10} {'generated':>11} {'received':>11} "
        f"{'lost*':>9} {'missing+':>9} {'CPU ns/ev':>9}",
    ]
    rates = res.get("rates") or {}
    targets_ = [r["target_eps"] for r in next(iter(rates.values()), [])]
    for tgt in targets_:
        first = True
        for meth in ("labkit", VARIANT, "bcc", "printk"):
            r = row_at(rates.get(meth), tgt)
            if r is None:
                continue
            cpu = r["cpu_ns_per_event"]
            lines.append(
                f"{rate_label(tgt) if first else '':>9} {SHORT.get(meth, meth):<7} {fmt_rate(r['gen_eps']):>11} {fmt_rate(r['recv_eps']):>10} "
                f"{r['generated']:>11,} {r['received']:>11,} {fmt_int(r['lost']) if r['lost'] is not None else 'n/a':>9} "
                f"{r['missing']:>9,} {'-' if cpu is None else f'{cpu:,.0f}':>9}")
            first = False
    lines += [
        "  * lost: the kernel-side counter of failed ring-buffer reservations (the method reports it);"
        " printk has none" + (f" (its trace buffer, buffer_size_kb: {m['trace_buffer_kb']} per CPU, is "
                              "overwritten when full)" if m.get("trace_buffer_kb") else ""),
        "  + missing: generated - received - lost, i.e. events that vanished with nothing reporting them",
        "  CPU ns/ev: this process's CPU time (all threads) per received event; "
        "lk16M: labkit with ring_pages=4096 (16 MiB) instead of the default 1024",
        "",
        "Where the consumer's time went (thread that takes events in; run-queue wait = runnable but no CPU free):",
    ]
    for meth in ("labkit", VARIANT, "bcc", "printk"):
        for r in rates.get(meth) or []:
            if r.get("consumer_cpu_s") is None:
                continue
            gap = r.get("max_gap_between_batches_s")
            ring = ""
            if meth in ("labkit", VARIANT, "bcc") and r["gen_eps"]:
                pages = VARIANT_PAGES if meth == VARIANT else RING_PAGES
                ring = f"; ring holds {pages * 4096 // RECORD_BYTES / r['gen_eps'] * 1e3:.0f} ms of events"
            psi = r.get("machine_cpu_pressure")
            lines.append(f"  {SHORT.get(meth, meth):<7} {rate_label(r['target_eps']):>5}: on CPU {r['consumer_cpu_s']:.3f} s, "
                         f"waiting for a CPU {r['consumer_runqueue_wait_s']:.3f} s"
                         + (f", longest gap between batches {gap * 1e3:.0f} ms" if gap else "")
                         + f" (over {r['gen_seconds'] + r['drain_s']:.2f} s{ring}"
                         + (f"; machine CPU pressure {psi:.0%}" if psi is not None else "") + ")")
    cap = res.get("capacity")
    if cap:
        lines += ["", f"Decode capacity on a full ring buffer ({cap['events_per_fill']:,} events, consumer alone): "
                      f"labkit {fmt_rate(cap.get('labkit_eps'))}/s, BCC callback with decode "
                      f"{fmt_rate(cap.get('bcc_decode_eps'))}/s, BCC callback counting only "
                      f"{fmt_rate(cap.get('bcc_count_eps'))}/s; "
                      f"to_dataframe() of {cap.get('dataframe_rows', 0):,} rows: {cap.get('dataframe_s', 0) * 1e3:.0f} ms"]
    if res.get("untraced_eps"):
        parts = []
        for meth in ("labkit", "bcc", "printk"):
            if res.get(f"{meth}_traced_eps"):
                parts.append(f"{meth} {fmt_rate(res[f'{meth}_traced_eps'])}/s "
                             f"({res[f'{meth}_slowdown']:.1f}x slower)")
        lines += ["", f"Traced process, flat out: untraced {fmt_rate(res['untraced_eps'])} calls/s; "
                  + ", ".join(parts)]
    fe = res.get("first_event")
    if fe:
        def one(d):
            return (f"{d['total_s']:.2f} s (compile {d['compile_s']:.2f}, verify+load {d['verify_load_s']:.2f}, "
                    f"attach+stream {d['attach_other_s']:.2f}, to first row {d['to_first_row_s']:.3f})")
        imp = res.get("imports") or {}
        lines += ["", f"Time to first event: first call {one(fe['first'])}",
                  f"                     re-run     {one(fe['rerun'])}"]
        if imp.get("import_labkit_s") is not None:
            lines.append(f"  (before that, in a fresh interpreter: import labkit {imp['import_labkit_s']:.2f} s, "
                         f"import bcc {imp.get('import_bcc_s') or 0:.2f} s)")
    mem = res.get("memory")
    if mem:
        note = "" if mem["events_generated"] >= 10_000_000 else " (fewer than the 10M of a full run)"
        lines += ["", f"Memory: RSS {mem['growth_mb']:+.1f} MB over {mem['events_generated']:,} events{note} "
                      f"with the default window ({mem['window']:,} events); peak {mem['peak_growth_mb']:+.1f} MB, "
                      f"{mem['with_dataframe_growth_mb']:+.1f} MB with the window as a DataFrame; "
                      f"received {mem['received']:,}, lost {mem['lost']:,}"]
    x = res.get("xdp")
    if x:
        lines += ["", f"XDP (labkit.Sandbox, {x['mode']} mode via {x['via']}; {x['sender']}):",
                  f"  UDP flood: {x['udp_sent']:,} sent, {x['udp_counted']:,} counted (pass/udp) at "
                  f"{fmt_rate(x['udp_pps'])} packets/s; dropped before XDP: sender veth {x['host_tx_dropped']}, "
                  f"sender qdisc {x.get('qdisc_dropped')} ({x.get('sender_qdisc')}), target rx {x['target_rx_dropped']}",
                  f"  ping -f:   {x['ping_sent']:,} sent, {x['ping_counted_dropped']:,} counted (drop/icmp), "
                  f"{x['ping_received']} replies"]
        if "events_received" in x:
            lines.append(f"  sampled events: {x['events_received']:,} received + {x['events_lost']:,} lost "
                         f"(reported) of {x['packets_counted_all']:,} packets counted")
    return _tail(res, lines + _soak_lines(res))


def _soak_lines(res: dict[str, Any]) -> list[str]:
    soak = res.get("soak")
    if not soak:
        return []
    lines = ["", f"Soak: the cells of lessons {soak.get('lessons', '01-03')} re-run {soak['rounds']} times in one process "
                 f"({soak['seconds']:.0f} s); after each round:",
             f"  {'round':>5} {'fds':>5} {'threads':>7} {'attached':>8} {'panels':>6} {'RSS MB':>7}"]
    for i, smp in _soak_rows(soak):
        lines.append(f"  {i:>5} {smp['fds']:>5} {smp['threads']:>7} {smp['attachments']:>8} {smp['panels']:>6} "
                     f"{smp['rss_mb']:>7.1f}")
    lines.append(f"  RSS at most {soak['rss_max_growth_mb']:+.1f} MB above round 1; "
                 f"{soak['rss_tail_growth_per_round_kb']:+.0f} kB per round after the first tenth")
    return lines


def _soak_rows(soak: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Round 1, 2, a few between and the last: (round, sample)."""
    n = len(soak["samples"])
    picks = sorted({1, 2, *(max(1, n * k // 4) for k in (1, 2, 3)), n})
    return [(i, soak["samples"][i - 1]) for i in picks]


def _tail(res: dict[str, Any], lines: list[str]) -> str:
    lines += ["", "Targets"]
    for t in res.get("targets", []):
        if res.get("soak_only") and t["met"] is None:
            continue
        mark = {True: "  ok  ", False: " MISS ", None: "  --  "}[t["met"]]
        lines.append(f"[{mark}] {t['target']}: {t['value'] if t['value'] is not None else 'not measured'}")
        if t.get("why"):
            lines.append(f"         where the time went: {t['why']}")
    if res.get("errors"):
        lines += ["", "Phases that failed:"] + [f"  {k}: {v}" for k, v in res["errors"].items()]
    if res.get("leftover_attachments"):
        lines += ["", f"LEFT ATTACHED: {res['leftover_attachments']}"]
    lines.append(f"\n({res['seconds']:.0f} s)")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: str) -> None:
    """The received-vs-generated plot, one line per method, as a PNG at ``path``."""
    import matplotlib  # lazy: matplotlib is only needed for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend

    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=110)
    styles = {"labkit": ("o-", "labkit stream (batch decode)"),
              "bcc": ("s-", "raw BCC ring buffer + Python callback"),
              "printk": ("^-", "bpf_trace_printk + trace_fields")}
    hi, lo = 1.0, 3e4
    for meth, (st, label) in styles.items():
        rows = (res.get("rates") or {}).get(meth)
        if not rows:
            continue
        rows = sorted(rows, key=lambda r: r["target_eps"] or math.inf)     # in the order they were run
        xs = [r["gen_eps"] for r in rows]
        ys = [max(r["recv_eps"], 1.0) for r in rows]
        hi = max(hi, *xs, *ys)
        lo = min(lo, *xs, *ys)
        ax.plot(xs, ys, st, label=label)
    lo /= 1.5
    ax.plot([lo, hi * 1.5], [lo, hi * 1.5], ":", color="grey", label="received = generated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi * 1.5)
    ax.set_ylim(lo, hi * 1.5)
    ax.set_xlabel("events generated per second (traced process)")
    ax.set_ylabel("events received per second (in Python)")
    m = res["machine"]
    ax.set_title(f"labkit bench ({res['mode']}): {m.get('cpus')} CPUs, Linux {m.get('kernel')}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def readme_block(res: dict[str, Any], plot_path: str | None) -> str:
    """The README's "Benchmark" section (markers included) for this run."""
    m = res["machine"]

    def ratio(a, b):
        return f"{a / b:.1f}x" if a and b else "-"

    mem = res.get("memory") or {}
    psi = [r["machine_cpu_pressure"] for rows_ in (res.get("rates") or {}).values() for r in rows_
           if r.get("machine_cpu_pressure") is not None]
    busy = (f"Other work shared the machine: load average {m.get('loadavg_start', 0):.1f} to "
            f"{m.get('loadavg_end', 0):.1f}" + (f", some task waiting for a CPU {sum(psi) / len(psi):.0%} of the "
                                                 "time on average" if psi else "") + ".")
    lk = flat_out_row((res.get("rates") or {}).get("labkit"))
    bound = (f"; bounded by the generator ({fmt_rate(lk['gen_eps'])}/s produced)"
             if generator_bound(lk) else "")
    rows = [
        ("labkit stream vs raw BCC callback, events received per second (flat out)",
         ratio(res.get("labkit_decode_eps"), res.get("bcc_decode_eps")),
         f"{fmt_rate(res.get('labkit_decode_eps'))}/s vs {fmt_rate(res.get('bcc_decode_eps'))}/s{bound}"),
        ("labkit stream vs trace_printk lines per second (flat out)",
         ratio(res.get("labkit_decode_eps"), res.get("printk_eps")),
         f"{fmt_rate(res.get('labkit_decode_eps'))}/s vs {fmt_rate(res.get('printk_eps'))}/s"),
    ]
    if res.get("labkit_ns_per_event") and res.get("bcc_ns_per_event"):
        rows.append(("consumer CPU per event, raw BCC callback over labkit stream (flat out)",
                     ratio(res["bcc_ns_per_event"], res["labkit_ns_per_event"]),
                     f"{res['bcc_ns_per_event']:,.0f} ns vs {res['labkit_ns_per_event']:,.0f} ns"))
    cap = res.get("capacity") or {}
    if cap:
        rows.append(("decode capacity on a full ring buffer, labkit vs BCC callback",
                     ratio(cap.get("labkit_eps"), cap.get("bcc_decode_eps")),
                     f"{fmt_rate(cap.get('labkit_eps'))}/s vs {fmt_rate(cap.get('bcc_decode_eps'))}/s"))
    if res.get("labkit_loss_at_500k") is not None:
        lost = res["labkit_lost_at_500k"]
        row = row_at(res["rates"].get("labkit"), res.get("labkit_loss_rate_eps"))
        var = row_at(res["rates"].get(VARIANT), res.get("labkit_loss_rate_eps"))
        rows.append((f"labkit events lost at {rate_label(res.get('labkit_loss_rate_eps') or 500_000)}/s",
                     "0" if not lost else f"{res['labkit_loss_at_500k']:.4%}",
                     f"{lost:,} of {row['generated']:,} (kernel counter)"
                     + (f"; 16 MiB ring: {var['lost']:,}" if var is not None else "")))
    for meth in ("labkit", "bcc", "printk"):
        if res.get(f"{meth}_slowdown"):
            rows.append((f"traced process slowdown under {meth}", f"{res[f'{meth}_slowdown']:.1f}x",
                         f"{fmt_rate(res['untraced_eps'])}/s untraced → {fmt_rate(res[f'{meth}_traced_eps'])}/s"))
    if res.get("rerun_first_event_s") is not None:
        fe = res["first_event"]
        rows.append(("time to first event, first call / re-run",
                     f"{res['first_event_s']:.2f} s / {res['rerun_first_event_s']:.2f} s",
                     f"of which BCC compile {fe['first']['compile_s']:.2f} s / {fe['rerun']['compile_s']:.2f} s"))
    if mem:
        rows.append((f"RSS growth over {mem['events_generated']:,} events (default window)",
                     f"{mem['growth_mb']:+.1f} MB", f"peak {mem['peak_growth_mb']:+.1f} MB"))
    if res.get("xdp_sent") is not None:
        rows.append(("XDP packets counted / sent (UDP + ping flood in a sandbox)",
                     ratio(res["xdp_counted"], res["xdp_sent"]).replace("x", ""),
                     f"{res['xdp_counted']:,} / {res['xdp_sent']:,} at {fmt_rate(res.get('xdp_pps'))} packets/s"))
    out = [README_START, "## Benchmark", "",
           "`labkit bench` measures, in one run and on one load generator (a C loop of `getppid()` at 50k, 200k, 500k, 1M "
           "calls/s and flat out, every program filtered to its pid), labkit's event stream against the "
           "raw BCC ring buffer with a per-event Python callback and against `bpf_trace_printk`. "
           "`--quick` takes about a minute, `--json FILE` writes every figure; "
           f"the figures below are from `labkit bench{'' if res['mode'] == 'full' else ' --' + res['mode']}`.", "",
           f"Machine: {describe_machine(m)}. {busy} "
           "Absolute rates move between runs; the ratios within one run are the point.", "",
           "| figure | ratio / value | measured |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", "Events are lost when the consumer does not get a CPU back before the ring buffer fills: "
            "per rate, the run's output shows how long the consumer waited for a CPU against how many "
            "milliseconds of events the ring buffer holds (4 MiB by default: ~90 ms at 500k events/s), "
            "and every lost event is counted by the kernel and reported as `stream.lost`."]
    out += ["", "Targets: " + "; ".join(
        f"{'✓' if t['met'] else ('✗' if t['met'] is False else '–' if t.get('note') else '?')} {t['target']}"
        + (f" ({t['note']})" if t.get("note") else "") for t in res.get("targets", []))]
    if plot_path:
        out += ["", f"![received against generated events per second]({plot_path})"]
    out += ["", soak_block(res), README_END]
    return "\n".join(out)


def soak_block(res: dict[str, Any]) -> str:
    """The README's soak paragraph (markers included): what re-running the lessons' cells leaves behind.
    ``labkit bench --soak-only --readme README.md`` rewrites just this part."""
    soak = res.get("soak")
    out = [SOAK_START, "### Re-running cells", ""]
    if not soak:
        out += ["Not measured in this run: `labkit bench --soak-only --readme README.md` measures it.", SOAK_END]
        return "\n".join(out)
    target = next((t for t in res.get("targets", []) if t["target"].startswith("flat over")), None)
    m = res["machine"]
    out += [f"The cells of lessons 01, 02 and 03 (trace_clone and its live panel, the syscall picker, XDP on a "
            f"sandbox with its panel and the XDP control, event streams, maps) re-run {soak['rounds']} times in "
            f"one process, as a student re-runs them over a term (`labkit bench{_mode_flag(res)}`, "
            f"{soak['seconds'] / 60:.0f} min on {m.get('cpus')} CPUs, load average "
            f"{m.get('loadavg_start', 0):.1f}). What the process holds after each round:", "",
            "| after round | open fds | threads | attachments | live panels | RSS |", "|---|---|---|---|---|---|"]
    out += [f"| {i} | {smp['fds']} | {smp['threads']} | {smp['attachments']} | {smp['panels']} | "
            f"{smp['rss_mb']:.0f} MB |" for i, smp in _soak_rows(soak)]
    out += ["", f"RSS at most {soak['rss_max_growth_mb']:+.1f} MB above round 1 "
                f"({soak['rss_tail_growth_per_round_kb']:+.0f} kB per round after the first tenth)"
                + (f"; {'✓' if target['met'] else '✗'} {target['target']}." if target else "."), SOAK_END]
    return "\n".join(out)


def _mode_flag(res: dict[str, Any]) -> str:
    flags = ([] if res["mode"] == "full" else [f"--{res['mode']}"]) + (["--soak-only"] if res.get("soak_only") else [])
    return "".join(f" {f}" for f in flags)


def update_readme(path: str, block: str, start: str = README_START, end: str = README_END) -> None:
    """Replace the README's section between the markers ``start`` and ``end`` (the bench
    section by default) with ``block``, which carries the markers itself."""
    text = Path(path).read_text()
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    Path(path).write_text(text[:i] + block + text[j + len(end):])


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def to_json(res: dict[str, Any]) -> str:
    """The whole run as JSON (what ``--json FILE`` writes)."""
    return json.dumps(res, indent=1, default=_json_default) + "\n"
