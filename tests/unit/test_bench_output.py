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
