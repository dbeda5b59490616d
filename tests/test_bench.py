"""`labkit bench`: it runs, writes every figure, accounts for every event, and
gives back everything it took. No speed assertions here: targets belong to the
benchmark's own output (see README, "Benchmark")."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import labkit
from kstate import bpf_fds, perf_attachments
from labkit.commands import bench as _bench
from labkit.commands import cli as cli

HEADLINE = {
    # key: accepted types
    "labkit_decode_eps": (float,),
    "bcc_decode_eps": (float,),
    "printk_eps": (float,),
    "labkit_loss_at_500k": (float,),
    "traced_slowdown": (float,),
    "first_event_s": (float,),
    "rerun_first_event_s": (float,),
    "rss_growth_mb": (float,),
    "xdp_sent": (int,),
    "xdp_counted": (int,),
}
ROW = {"target_eps": (int, float), "generated": (int,), "gen_eps": (float,), "received": (int,),
       "recv_eps": (float,), "missing": (int,), "loss_fraction": (float,)}


def _programs_of(pid: int) -> list[dict]:
    r = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    return [p for p in json.loads(r.stdout or "[]")
            if str(p.get("name", "")).startswith("lk_") and any(h.get("pid") == pid for h in p.get("pids", []))]


@pytest.fixture(scope="module")
def smoke():
    """One `labkit bench --smoke --json FILE`, run in this process so that
    anything it left attached would still be visible afterwards."""
    before = bpf_fds()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.json"
        rc = cli.main(["bench", "--smoke", "--json", str(out)])
        res = json.loads(out.read_text())
    return {"rc": rc, "res": res, "fds_before": before}


@pytest.mark.kernel
@pytest.mark.requires("root", "tracefs")
def test_smoke_run_writes_every_figure(smoke):
    res = smoke["res"]
    assert res["errors"] == {}, res["errors"]
    assert smoke["rc"] == 0
    for key, types in HEADLINE.items():
        assert key in res, key
        assert isinstance(res[key], types) and not isinstance(res[key], bool), (key, res[key])
        assert res[key] >= 0, (key, res[key])
    for key in ("labkit_decode_eps", "bcc_decode_eps", "printk_eps", "traced_slowdown",
                "first_event_s", "rerun_first_event_s"):
        assert res[key] > 0, (key, res[key])
    assert 0.0 <= res["labkit_loss_at_500k"] <= 1.0
    assert res["xdp_sent"] > 0
    assert res["loadgen"]["kind"] in ("c", "python")
    # per-rate tables for the three methods, same rates for each
    rates = res["rates"]
    assert set(rates) >= {"labkit", "bcc", "printk"}
    targets = [r["target_eps"] for r in rates["labkit"]]
    assert targets == _bench.MODES["smoke"]["rates"]
    for meth in ("labkit", "bcc", "printk"):
        assert [r["target_eps"] for r in rates[meth]] == targets
        for row in rates[meth]:
            for k, types in ROW.items():
                assert isinstance(row[k], types), (meth, k, row[k])
            assert row["generated"] > 0 and 0 <= row["received"] <= row["generated"]
    assert all(r["lost"] is None for r in rates["printk"])        # printk reports no loss at all
    assert all(isinstance(r["lost"], int) for r in rates["labkit"] + rates["bcc"])
    assert {t["target"] for t in res["targets"]} and all("met" in t for t in res["targets"])


@pytest.mark.kernel
@pytest.mark.requires("root", "tracefs")
def test_loss_accounting_is_exact_for_labkit(smoke):
    """Every generated event is either received or counted as lost by the kernel."""
    rows = smoke["res"]["rates"]["labkit"]
    low = [r for r in rows if r["target_eps"] and r["target_eps"] <= 50_000]
    assert low, rows
    for r in low:
        assert r["received"] + r["lost"] == r["generated"], r
    for r in rows:                                    # at any rate, nothing goes unreported
        assert r["missing"] == 0, r
    mem = smoke["res"]["memory"]
    assert mem["received"] + mem["lost"] == mem["events_generated"], mem
    # the raw BCC program counts its failed reservations the same way
    for r in smoke["res"]["rates"]["bcc"]:
        assert r["received"] + r["lost"] == r["generated"], r


@pytest.mark.kernel
@pytest.mark.requires("root", "tracefs")
def test_xdp_counts_inside_the_sandbox(smoke):
    x = smoke["res"]["xdp"]
    assert x["udp_sent"] > 0 and x["ping_sent"] > 0
    assert x["sent"] == x["udp_sent"] + x["ping_sent"]
    assert x["counted"] == x["udp_counted"] + x["ping_counted_dropped"]
    assert x["ping_received"] == 0                     # every echo request was dropped
    if "events_received" in x:
        assert x["events_received"] + x["events_lost"] >= x["packets_counted_all"]


@pytest.mark.kernel
@pytest.mark.requires("root", "tracefs")
def test_bench_leaves_nothing_attached(smoke):
    res = smoke["res"]
    assert res["leftover_attachments"] == []
    assert labkit.live_attachments() == []
    after = bpf_fds()
    for kind in ("prog", "link", "perf_event"):
        leaked = set(after[kind]) - set(smoke["fds_before"][kind])
        assert not leaked, f"bench left {kind} fds open: {leaked}"
    assert perf_attachments(os.getpid()) == []
    assert _programs_of(os.getpid()) == []
    # no sandbox: its namespaces and state record are gone
    x = res["xdp"]
    assert x["sandbox_left"] is False
    for ns in x["namespaces"]:
        assert not os.path.exists(f"/run/netns/{ns}"), ns
    from labkit.net.sandbox import list_sandboxes

    assert [s.id for s in list_sandboxes() if s.owner_pid == os.getpid()] == []
    # trace_pipe was read only during the benchmark
    mine = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [m for m in mine if m.endswith("trace_pipe")]
    assert res["method_notes"]["printk"]["reader_thread_stuck"] is False


def test_python_load_generator_counts_exactly(tmp_path):
    kind, exe, desc = _bench.build_loadgen(tmp_path, prefer="python")
    assert kind == "python" and "Python" in desc
    lg = _bench.LoadGen(kind, exe)
    try:
        n, secs = lg.run(0, 0, 12_345)
        assert n == 12_345 and secs > 0
        n, secs = lg.run(20_000, 0.2)
        assert 0 < n <= 20_000 * secs + 2
    finally:
        lg.close()
    assert lg.proc.poll() is not None


def test_c_load_generator_counts_exactly(tmp_path):
    kind, exe, desc = _bench.build_loadgen(tmp_path)
    if kind != "c":
        pytest.skip("no C compiler on this machine")
    lg = _bench.LoadGen(kind, exe)
    try:
        assert lg.run(0, 0, 54_321)[0] == 54_321
        lg.start(1_000, 30)
        lg.interrupt()                                   # SIGUSR1 ends a run early
        n, secs = lg.result(timeout=5)
        assert secs < 5
    finally:
        lg.close()


def test_render_plot_and_readme_from_saved_run(tmp_path):
    """Output paths work offline from a saved JSON; README changes only between the markers."""
    res = {
        "mode": "quick", "config": _bench.MODES["quick"], "errors": {}, "seconds": 1.0,
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
    _bench.summarize(res)
    assert res["labkit_decode_eps"] == 3e6 and round(res["labkit_over_bcc"], 3) == round(1 / 0.3, 3)
    src = tmp_path / "run.json"
    src.write_text(json.dumps(res))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench:start -->\nSTALE-SECTION\n<!-- bench:end -->\nafter\n")
    png = tmp_path / "bench.png"
    assert _bench.main(["--from-json", str(src), "--plot", str(png), "--readme", str(readme)]) == 0
    assert png.stat().st_size > 1000
    text = readme.read_text()
    assert text.startswith("before\n<!-- bench:start -->") and text.endswith("<!-- bench:end -->\nafter\n")
    assert "STALE-SECTION" not in text and "| figure |" in text and "docs/bench.png" in text
