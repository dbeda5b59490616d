"""From the phases' results to the headline figures and the targets they are held to."""

from __future__ import annotations

from typing import Any

from labkit.commands.bench.config import RECORD_BYTES, RING_PAGES, VARIANT, MiB
from labkit.commands.bench.fmt import fmt_rate, rate_label

__all__ = ["SOAK_RSS_MB", "flat_out_row", "row_at", "soak_line", "summarize", "targets"]

#: how far RSS may move above the first round's over the soak's re-runs
SOAK_RSS_MB = 20


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
            + (f" (longest gap between batches {gap * 1e3:.0f} ms" if gap else " (")
            + f"; the ring holds {hold:.0f} ms of events at this rate"
            + (f"; some task on this machine waited for a CPU {psi:.0%} of the time" if psi is not None else "")
            + ")")


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's targets, each met (True/False) or not measured (None), with the value and,
    when missed, where the time went."""
    def t(name, ok, value, why=None):
        return {"target": name, "met": None if ok is None else bool(ok), "value": value,
                "why": why if ok is False else None}

    rates = res.get("rates") or {}
    ratio = res.get("labkit_over_bcc")
    l500 = res.get("labkit_lost_at_500k")
    rate500 = res.get("labkit_loss_rate_eps") or 500_000
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
        t("labkit decodes >= 2x the raw BCC rate (flat out)", None if ratio is None else ratio >= 2,
          None if ratio is None else f"{ratio:.2f}x ({fmt_rate(res['labkit_decode_eps'])}/s vs "
                                     f"{fmt_rate(res['bcc_decode_eps'])}/s)", why_ratio),
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
