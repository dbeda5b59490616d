"""From the phases' results to the headline figures and the targets they are held to."""

from __future__ import annotations

from typing import Any

from labkit.commands.bench.config import RECORD_BYTES, RING_PAGES, VARIANT, MiB
from labkit.commands.bench.fmt import fmt_rate, rate_label

__all__ = ["CAPACITY_RATIO_MIN", "CPU_SHARE_MAX", "FLAT_OUT_RATIO_MIN", "GENERATOR_BOUND_LOSS",
           "GENERATOR_BOUND_SHARE", "SOAK_RSS_MB", "flat_out_row", "generator_bound", "row_at", "soak_line",
           "summarize", "targets"]

#: how far RSS may move above the first round's over the soak's re-runs
SOAK_RSS_MB = 20
#: labkit's consumer CPU per event (flat out) is at most this share of the raw BCC callback's
CPU_SHARE_MAX = 0.5
#: labkit decodes at least this many times the raw BCC callback's rate on a full ring buffer
CAPACITY_RATIO_MIN = 2.0
#: labkit receives at least this many times raw BCC's rate flat out, judged only when the
#: load generator is not what bounds labkit's rate (see :func:`generator_bound`)
FLAT_OUT_RATIO_MIN = 2.0
#: flat out, labkit's rate is the generator's when it received at least this share of the rate
#: the generator produced events at ...
GENERATOR_BOUND_SHARE = 0.9
#: ... and at most this fraction of the generated events went unreceived
GENERATOR_BOUND_LOSS = 0.01


def flat_out_row(rows: list[dict] | None) -> dict | None:
    """The flat-out row of one method's per-rate rows (the last one if none is flat out)."""
    if not rows:
        return None
    for r in rows:
        if not r["target_eps"]:
            return r
    return rows[-1]


def row_at(rows: list[dict] | None, rate: float) -> dict | None:
    """The row measured at target ``rate`` (0: flat out), or None."""
    for r in rows or []:
        if r["target_eps"] == rate:
            return r
    return None


def generator_bound(row: dict | None) -> bool | None:
    """Whether a flat-out row's received rate is the traced load generator's own rate: the consumer
    kept up with everything produced (received at :data:`GENERATOR_BOUND_SHARE` of the rate or
    more, at most :data:`GENERATOR_BOUND_LOSS` of the events not received), so the rate says how
    fast the generator ran, not how fast the consumer can go. None when there is no such row."""
    if not row or not row.get("gen_eps") or not row.get("generated"):
        return None
    return (row["recv_eps"] >= GENERATOR_BOUND_SHARE * row["gen_eps"]
            and row["loss_fraction"] <= GENERATOR_BOUND_LOSS)


def soak_line(soak: dict[str, Any]) -> str:
    """The soak's first round against its last, in one line."""
    a, b = soak["first"], soak["last"]
    return (f"after round 1 → {soak['rounds']}: {a['fds']} → {b['fds']} fds, {a['threads']} → {b['threads']} threads, "
            f"{a['attachments']} → {b['attachments']} attached, {a['panels']} → {b['panels']} panels, "
            f"RSS {a['rss_mb']:.0f} → {b['rss_mb']:.0f} MB (at most {soak['rss_max_growth_mb']:+.1f} MB)")


def summarize(res: dict[str, Any]) -> None:
    """The headline figures (flat keys) from the phase results."""
    rates = res.get("rates") or {}
    lk, bc, pk = (flat_out_row(rates.get(m)) for m in ("labkit", "bcc", "printk"))
    res["labkit_decode_eps"] = lk["recv_eps"] if lk else None
    res["bcc_decode_eps"] = bc["recv_eps"] if bc else None
    res["printk_eps"] = pk["recv_eps"] if pk else None
    at500 = row_at(rates.get("labkit"), 500_000)
    if at500 is None and rates.get("labkit"):
        at500 = min(rates["labkit"], key=lambda r: abs((r["target_eps"] or 1e12) - 500_000))
    res["labkit_loss_at_500k"] = at500["loss_fraction"] if at500 else None
    res["labkit_lost_at_500k"] = at500["lost"] if at500 else None
    res["labkit_loss_rate_eps"] = at500["target_eps"] if at500 else None
    un = [u["eps"] for u in res.get("untraced_runs") or []]
    res["untraced_eps"] = max(un) if un else None
    for m, r in (("labkit", lk), ("bcc", bc), ("printk", pk)):
        res[f"{m}_traced_eps"] = r["gen_eps"] if r else None
        res[f"{m}_slowdown"] = (res["untraced_eps"] / r["gen_eps"]) if (r and un and r["gen_eps"]) else None
    res["traced_slowdown"] = res["labkit_slowdown"]
    fe = res.get("first_event") or {}
    res["first_event_s"] = fe.get("first", {}).get("total_s")
    res["rerun_first_event_s"] = fe.get("rerun", {}).get("total_s")
    mem = res.get("memory") or {}
    res["rss_growth_mb"] = mem.get("growth_mb")
    res["rss_events"] = mem.get("events_generated")
    xdp = res.get("xdp") or {}
    res["xdp_sent"] = xdp.get("sent")
    res["xdp_counted"] = xdp.get("counted")
    res["xdp_pps"] = xdp.get("udp_pps")
    res["labkit_over_bcc"] = (res["labkit_decode_eps"] / res["bcc_decode_eps"]
                              if res["labkit_decode_eps"] and res["bcc_decode_eps"] else None)
    res["flat_out_generator_bound"] = generator_bound(lk)
    # what the consumer costs: CPU per event flat out, decode rate on a full ring buffer
    res["labkit_ns_per_event"] = lk.get("cpu_ns_per_event") if lk else None
    res["bcc_ns_per_event"] = bc.get("cpu_ns_per_event") if bc else None
    res["labkit_cost_over_bcc"] = (res["labkit_ns_per_event"] / res["bcc_ns_per_event"]
                                   if res["labkit_ns_per_event"] and res["bcc_ns_per_event"] else None)
    cap = res.get("capacity") or {}
    res["labkit_capacity_eps"] = cap.get("labkit_eps")
    res["bcc_capacity_eps"] = cap.get("bcc_decode_eps")
    res["labkit_capacity_over_bcc"] = (res["labkit_capacity_eps"] / res["bcc_capacity_eps"]
                                       if res["labkit_capacity_eps"] and res["bcc_capacity_eps"] else None)
    soak = res.get("soak") or {}
    res["soak_rounds"] = soak.get("rounds")
    res["soak_flat"] = all(soak["flat"].values()) if soak else None
    res["soak_rss_growth_mb"] = soak.get("rss_max_growth_mb")
    unreported = 0
    for r in rates.get("labkit") or []:
        unreported += abs(r["missing"])
    res["labkit_unreported_loss"] = unreported if rates.get("labkit") else None
    res["targets"] = targets(res)


def _why_loss(row: dict | None, pages: int) -> str | None:
    """Where the time went when events were lost: the consumer's CPU and waits."""
    if not row or not row.get("lost") or row.get("consumer_runqueue_wait_s") is None:
        return None
    hold = pages * 4096 // RECORD_BYTES / row["gen_eps"] * 1e3 if row["gen_eps"] else 0
    gap = row.get("max_gap_between_batches_s")
    psi = row.get("machine_cpu_pressure")
    return (f"the consumer thread was on a CPU {row['consumer_cpu_s']:.3f} s and waited for one "
            f"{row['consumer_runqueue_wait_s']:.3f} s"
            + (f" (longest gap between batches {gap * 1e3:.0f} ms; " if gap else " (")
            + f"the ring holds {hold:.0f} ms of events at this rate"
            + (f"; some task on this machine waited for a CPU {psi:.0%} of the time" if psi is not None else "")
            + ")")


def _why_cost(rows: list[tuple[str, dict | None]]) -> str | None:
    """Of each method's CPU per event (the whole process), how much its consumer thread spent."""
    parts = []
    for name, r in rows:
        if r and r.get("received") and r.get("cpu_ns_per_event") and r.get("consumer_cpu_s") is not None:
            parts.append(f"{name} {r['cpu_ns_per_event']:.0f} ns per event, "
                         f"{r['consumer_cpu_s'] / r['received'] * 1e9:.0f} ns of it on the consumer thread")
    return "; ".join(parts) or None


def _flat_out(res: dict[str, Any], lk: dict | None) -> tuple[bool | None, str | None, str | None]:
    """The flat-out comparison with raw BCC: (met, value, note). Informational (met None, note
    "bounded by the generator") when labkit received everything the generator produced."""
    ratio = res.get("labkit_over_bcc")
    if ratio is None:
        return None, None, None
    value = f"{ratio:.2f}x ({fmt_rate(res['labkit_decode_eps'])}/s vs {fmt_rate(res['bcc_decode_eps'])}/s)"
    if not generator_bound(lk):
        return ratio >= FLAT_OUT_RATIO_MIN, value, None
    lost = lk["generated"] - lk["received"]
    value += (f"; bounded by the generator: {fmt_rate(lk['gen_eps'])}/s produced, {fmt_rate(lk['recv_eps'])}/s "
              f"received" + (f" ({lost:,} of {lk['generated']:,} not received)" if lost else ""))
    return None, value, "bounded by the generator"


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's targets, each met (True/False) or not measured or informational (None, with
    a ``note`` saying why when it was measured), with the value and, when missed, where the time went.

    labkit against raw BCC is judged on what the consumer costs: CPU per event flat out and decode
    rate on a full ring buffer. The flat-out received rate is judged too, unless labkit kept up with
    everything the load generator produced: then it is the generator's rate, reported as such."""
    def t(name, ok, value, why=None, note=None):
        return {"target": name, "met": None if ok is None else bool(ok), "value": value,
                "why": why if ok is False else None, "note": note if ok is None else None}

    rates = res.get("rates") or {}
    l500 = res.get("labkit_lost_at_500k")
    rate500 = res.get("labkit_loss_rate_eps")
    rate500 = 500_000 if rate500 is None else rate500
    rss = res.get("rss_growth_mb")
    rr = res.get("rerun_first_event_s")
    xs, xc = res.get("xdp_sent"), res.get("xdp_counted")
    unrep = res.get("labkit_unreported_loss")
    n_rss = res.get("rss_events") or 0
    row500 = row_at(rates.get("labkit"), rate500)
    why500 = _why_loss(row500, RING_PAGES)
    var500 = row_at(rates.get(VARIANT), rate500)
    if why500 and var500 is not None:
        why500 += f"; with a 16 MiB ring (ring_pages=4096): {var500['lost']:,} lost of {var500['generated']:,}"
    lk, bc = flat_out_row(rates.get("labkit")), flat_out_row(rates.get("bcc"))
    why_ratio = None
    if lk and bc and lk.get("cpu_ns_per_event") and bc.get("cpu_ns_per_event"):
        why_ratio = (f"consumer CPU per event: labkit {lk['cpu_ns_per_event']:.0f} ns, BCC {bc['cpu_ns_per_event']:.0f} ns; "
                     f"generator rates {fmt_rate(lk['gen_eps'])}/s and {fmt_rate(bc['gen_eps'])}/s")
        why_lk = _why_loss(lk, RING_PAGES)
        if why_lk:
            why_ratio += f"; labkit lost events: {why_lk}"
    flat_ok, flat_value, flat_note = _flat_out(res, lk)
    cost = res.get("labkit_cost_over_bcc")
    cap_ratio = res.get("labkit_capacity_over_bcc")
    cap = res.get("capacity") or {}
    why_cap = (f"raw BCC's callback counting only, no decode: {fmt_rate(cap['bcc_count_eps'])}/s"
               if cap.get("bcc_count_eps") else None)
    fe = (res.get("first_event") or {}).get("rerun") or {}
    why_rr = (f"compile {fe['compile_s']:.2f} s, verify+load {fe['verify_load_s']:.2f} s, attach+stream "
              f"{fe['attach_other_s']:.2f} s, first row {fe['to_first_row_s']:.3f} s") if fe else None
    x = res.get("xdp") or {}
    why_x = (f"dropped before XDP: sender veth {x.get('host_tx_dropped')}, qdisc {x.get('qdisc_dropped')}, "
             f"target rx {x.get('target_rx_dropped')}") if x else None
    soak_rss = res.get("soak_rss_growth_mb")
    moved = [k for k, ok in ((res.get("soak") or {}).get("flat") or {}).items() if not ok]
    why_soak = f"grew: {', '.join(moved)}" if moved else None
    mem = res.get("memory") or {}
    why_rss = (f"peak {mem.get('peak_growth_mb', 0):+.1f} MB; the ring buffer mapping alone is "
               f"{RING_PAGES * 4096 * 2 // MiB} MiB of address space") if mem else None
    return [
        t(f"labkit's consumer CPU per event <= {CPU_SHARE_MAX:g}x raw BCC's (flat out)",
          None if cost is None else cost <= CPU_SHARE_MAX,
          None if cost is None else f"{res['labkit_ns_per_event']:.0f} ns vs {res['bcc_ns_per_event']:.0f} ns "
                                    f"({cost:.2f}x)", _why_cost([("labkit", lk), ("BCC", bc)])),
        t(f"labkit decodes >= {CAPACITY_RATIO_MIN:g}x the raw BCC rate on a full ring buffer (consumer alone)",
          None if cap_ratio is None else cap_ratio >= CAPACITY_RATIO_MIN,
          None if cap_ratio is None else f"{cap_ratio:.1f}x ({fmt_rate(res['labkit_capacity_eps'])}/s vs "
                                         f"{fmt_rate(res['bcc_capacity_eps'])}/s)", why_cap),
        t(f"labkit receives >= {FLAT_OUT_RATIO_MIN:g}x the raw BCC rate (flat out)", flat_ok, flat_value,
          why_ratio, flat_note),
        t(f"zero loss at {rate_label(rate500)} events/s",
          None if l500 is None else l500 == 0 and res["labkit_loss_at_500k"] == 0,
          None if l500 is None else f"{l500:,} lost of {row500['generated']:,} ({res['labkit_loss_at_500k']:.4%})",
          why500),
        t("loss always reported (labkit: received + lost == generated at every rate)",
          None if unrep is None else unrep == 0, None if unrep is None else f"{unrep:,} unaccounted"),
        t(f"RSS growth < 100 MB over {n_rss:,} events (target: 10M)",
          None if rss is None else rss < 100, None if rss is None else f"{rss:+.1f} MB", why_rss),
        t("time to first event < 1 s on a re-run", None if rr is None else rr < 1.0,
          None if rr is None else f"{rr:.2f} s (first {res['first_event_s']:.2f} s)", why_rr),
        t("XDP counted == sent", None if xs is None else xs == xc,
          None if xs is None else f"{xc:,} counted of {xs:,} sent", why_x),
        t(f"flat over {res.get('soak_rounds') or 100} re-runs of the lessons' cells (fds, threads, attachments, "
          f"panels as after the first; RSS within {SOAK_RSS_MB} MB)",
          None if soak_rss is None else res["soak_flat"] and soak_rss < SOAK_RSS_MB,
          None if soak_rss is None else soak_line(res["soak"]), why_soak),
    ]
