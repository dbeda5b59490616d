"""``labkit bench``'s summary and output from a saved run: no kernel, no root."""

from __future__ import annotations

import json

from labkit.commands.bench import main as bench_main
from labkit.commands.bench.config import MODES
from labkit.commands.bench.fmt import fmt_rate, rate_label
from labkit.commands.bench.summary import flat_out_row, row_at, summarize


def test_render_plot_and_readme_from_saved_run(tmp_path):
    """Output paths work offline from a saved JSON; README changes only between the markers."""
    res = {
        "mode": "quick", "config": MODES["quick"], "errors": {}, "seconds": 1.0,
        "machine": {"cpu": "Test CPU", "cpus": 2, "kernel": "6.1", "loadavg_start": 0.1, "loadavg_end": 0.2},
        "loadgen": {"kind": "c", "description": "C loop"},
        "rates": {m: [{"target_eps": t, "generated": 100, "gen_seconds": 1.0, "gen_eps": float(t or 3e6),
                       "received": 90, "recv_eps": float(t or 3e6) * f, "lost": None if m == "printk" else 10,
                       "missing": 10 if m == "printk" else 0, "loss_fraction": 0.1, "drain_s": 0.0,
                       "cpu_ns_per_event": 100.0, "consumer_cpu_s": 0.1, "consumer_runqueue_wait_s": 0.0,
                       "max_gap_between_batches_s": None, "machine_cpu_pressure": 0.0}
                      for t in (50_000, 500_000, 0)]
                  for m, f in (("labkit", 1.0), ("bcc", 0.3), ("printk", 0.05))},
        "untraced_runs": [{"calls": 1, "seconds": 1.0, "eps": 9e6}],
    }
    summarize(res)
    assert res["labkit_decode_eps"] == 3e6 and round(res["labkit_over_bcc"], 3) == round(1 / 0.3, 3)
    src = tmp_path / "run.json"
    src.write_text(json.dumps(res))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench:start -->\nSTALE-SECTION\n<!-- bench:end -->\nafter\n")
    png = tmp_path / "bench.png"
    assert bench_main(["--from-json", str(src), "--plot", str(png), "--readme", str(readme)]) == 0
    assert png.stat().st_size > 1000
    text = readme.read_text()
    assert text.startswith("before\n<!-- bench:start -->") and text.endswith("<!-- bench:end -->\nafter\n")
    assert "STALE-SECTION" not in text and "| figure |" in text and "docs/bench.png" in text


def test_rates_and_rows():
    assert [fmt_rate(x) for x in (None, float("nan"), 950, 12_500, 2_630_000)] == ["-", "-", "950", "12.5k", "2.63M"]
    assert [rate_label(r) for r in (0, 50_000, 1_000_000, 12_500)] == ["max", "50k", "1M", "12.5k"]
    rows = [{"target_eps": 50_000}, {"target_eps": 0}, {"target_eps": 500_000}]
    assert flat_out_row(rows) is rows[1] and flat_out_row(rows[::2]) is rows[2] and flat_out_row(None) is None
    assert row_at(rows, 500_000) is rows[2] and row_at(rows, 1) is None and row_at(None, 0) is None


def test_soak_summary_target_and_readme_paragraph(tmp_path):
    """The soak's first-vs-last figures, its target, and `--soak-only --readme` rewriting only its paragraph."""
    from labkit.commands.bench.soak import soak_summary

    flat = [{"fds": 40, "threads": 6, "attachments": 5, "panels": 4, "rss_mb": 300.0 + (i % 3) * 0.5}
            for i in range(100)]
    soak = soak_summary(flat)
    assert soak["rounds"] == 100 and all(soak["flat"].values()) and soak["rss_max_growth_mb"] == 1.0
    grown = soak_summary(flat[:-1] + [dict(flat[-1], fds=41, rss_mb=330.0)])
    assert grown["flat"]["fds"] is False and grown["rss_growth_mb"] == 30.0
    soak.update(samples=flat, seconds=600.0)
    res = {"mode": "full", "config": MODES["full"], "errors": {}, "seconds": 600.0, "soak_only": True,
           "machine": {"cpu": "Test CPU", "cpus": 2, "kernel": "6.1", "loadavg_start": 0.1, "loadavg_end": 0.2},
           "soak": soak}
    summarize(res)
    (target,) = [t for t in res["targets"] if t["target"].startswith("flat over 100 re-runs")]
    assert target["met"] is True and "40 → 40 fds" in target["value"]
    src = tmp_path / "soak.json"
    src.write_text(json.dumps(res))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:start -->\nKEEP\n<!-- soak:start -->\nSTALE\n<!-- soak:end -->\n<!-- bench:end -->\n")
    assert bench_main(["--from-json", str(src), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "KEEP" in text and "STALE" not in text and "| after round |" in text and "| 100 | 40 |" in text
    res["soak"] = grown | {"samples": flat[:-1] + [dict(flat[-1], fds=41)], "seconds": 600.0}
    summarize(res)
    (target,) = [t for t in res["targets"] if t["target"].startswith("flat over")]
    assert target["met"] is False and target["why"] == "grew: fds"
