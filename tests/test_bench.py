"""`labkit bench`: it runs, writes every figure, accounts for every event, and
gives back everything it took. No speed assertions here: targets belong to the
benchmark's own output (see README, "Benchmark"); how it judges them is checked
at the end on made-up results (pure logic, no kernel)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import labkit
from kstate import bpf_fds, perf_attachments
from labkit.commands import cli as cli
from labkit.commands.bench.config import MODES
from labkit.commands.bench.output import render
from labkit.commands.bench.summary import (
    CAPACITY_RATIO_MIN,
    CPU_SHARE_MAX,
    GENERATOR_BOUND_LOSS,
    GENERATOR_BOUND_SHARE,
    generator_bound,
    summarize,
)
from labkit.net.records import list_sandboxes

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
        if key != "rss_growth_mb":  # a growth: memory given back makes it negative
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
    assert targets == MODES["smoke"]["rates"]
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
    assert [s.id for s in list_sandboxes() if s.owner_pid == os.getpid()] == []
    # trace_pipe was read only during the benchmark
    mine = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [m for m in mine if m.endswith("trace_pipe")]
    assert res["method_notes"]["printk"]["reader_thread_stuck"] is False


# ---- how the targets are judged: made-up results, no kernel ------------------------------------

COST, CAPACITY, FLAT_OUT = "consumer CPU per event", "on a full ring buffer", "rate (flat out)"


def _row(target_eps: float, gen_eps: float, recv_eps: float, ns_per_event: float, seconds: float = 1.0) -> dict:
    """One per-rate row as :func:`labkit.commands.bench.phases.step` writes it; what was not
    received was counted as lost by the kernel."""
    generated, received = round(gen_eps * seconds), round(recv_eps * seconds)
    return {"target_eps": target_eps, "generated": generated, "gen_seconds": seconds, "gen_eps": gen_eps,
            "received": received, "recv_eps": recv_eps, "lost": generated - received, "missing": 0,
            "loss_fraction": (generated - received) / generated, "drain_s": 0.0,
            "cpu_ns_per_event": ns_per_event, "consumer_cpu_s": ns_per_event * received / 1e9 * 0.8,
            "consumer_runqueue_wait_s": 0.01, "max_gap_between_batches_s": 0.002, "machine_cpu_pressure": 0.1}


def _run(lk_flat: dict, bc_flat: dict, capacity: tuple[float, float] | None) -> dict:
    """A summarized run with labkit's and raw BCC's flat-out rows and decode capacity (labkit, BCC)."""
    res = {"mode": "quick", "config": MODES["quick"], "errors": {}, "seconds": 60.0,
           "machine": {"cpu": "AMD EPYC", "cpus": 2, "kernel": "6.18"}, "loadgen": {"description": "C loop"},
           "rates": {"labkit": [_row(500_000, 5e5, 5e5, 150.0), lk_flat],
                     "bcc": [_row(500_000, 5e5, 5e5, 950.0), bc_flat]}}
    if capacity:
        res["capacity"] = {"events_per_fill": 30_000, "labkit_eps": capacity[0], "bcc_decode_eps": capacity[1],
                           "bcc_count_eps": capacity[1] * 1.5, "dataframe_rows": 0, "dataframe_s": 0.0}
    summarize(res)
    return res


def _target(res: dict, part: str) -> dict:
    (t,) = [t for t in res["targets"] if part in t["target"]]
    return t


#: the issue's AMD EPYC run: labkit kept up with the traced generator, BCC lost half
EPYC = dict(lk_flat=_row(0, 1.95e6, 1.95e6, 64.0), bc_flat=_row(0, 2.05e6, 1.09e6, 922.0), capacity=(33e6, 1.1e6))


def test_a_generator_bound_run_is_judged_on_what_the_consumer_costs():
    res = _run(**EPYC)
    assert res["flat_out_generator_bound"] is True
    assert round(res["labkit_over_bcc"], 2) == 1.79             # below 2x, yet no MISS: the generator's rate
    cost, cap, flat = (_target(res, k) for k in (COST, CAPACITY, FLAT_OUT))
    assert cost["met"] is True and cost["value"].startswith("64 ns vs 922 ns")
    assert cap["met"] is True and cap["value"].startswith("30.0x")
    assert flat["met"] is None and flat["note"] == "bounded by the generator" and flat["why"] is None
    assert "bounded by the generator: 1.95M/s produced, 1.95M/s received" in flat["value"]
    assert not [t for t in res["targets"] if t["met"] is False]
    text = render(res)
    assert "MISS" not in text
    assert "[  --  ] labkit receives >= 2x the raw BCC rate (flat out): 1.79x" in text


def test_consumer_cost_not_below_half_of_bcc_is_a_miss():
    at_half = _run(**dict(EPYC, lk_flat=_row(0, 1.95e6, 1.95e6, 922.0 * CPU_SHARE_MAX)))
    assert _target(at_half, COST)["met"] is True
    res = _run(**dict(EPYC, lk_flat=_row(0, 1.95e6, 1.95e6, 600.0)))
    cost = _target(res, COST)
    assert cost["met"] is False and cost["value"].startswith("600 ns vs 922 ns")
    assert "480 ns of it on the consumer thread" in cost["why"]      # where labkit's time went
    assert "[ MISS ] labkit's consumer CPU per event" in render(res)
    assert _target(res, FLAT_OUT)["met"] is None                   # still the generator's rate


def test_decode_capacity_below_2x_of_bcc_is_a_miss():
    res = _run(**dict(EPYC, capacity=(1.9e6, 1e6)))
    assert CAPACITY_RATIO_MIN == 2
    assert _target(res, CAPACITY)["met"] is False and _target(res, COST)["met"] is True
    assert _target(_run(**dict(EPYC, capacity=(2e6, 1e6))), CAPACITY)["met"] is True
    missing = _run(**dict(EPYC, capacity=None))                    # capacity phase skipped: not measured
    assert _target(missing, CAPACITY)["met"] is None and _target(missing, CAPACITY)["note"] is None


def test_flat_out_rate_is_judged_when_labkit_lost_what_the_generator_produced():
    # the generator ran faster than labkit took events in: labkit's rate is its own, and judged
    res = _run(lk_flat=_row(0, 4e6, 1.5e6, 300.0), bc_flat=_row(0, 4e6, 1e6, 922.0), capacity=(33e6, 1.1e6))
    flat = _target(res, FLAT_OUT)
    assert res["flat_out_generator_bound"] is False
    assert flat["met"] is False and flat["note"] is None and "bounded" not in flat["value"]
    assert "labkit lost events" in flat["why"]
    ok = _run(lk_flat=_row(0, 4e6, 3e6, 100.0), bc_flat=_row(0, 4e6, 1e6, 922.0), capacity=(33e6, 1.1e6))
    assert _target(ok, FLAT_OUT)["met"] is True


def test_generator_bound_means_everything_produced_was_received():
    assert generator_bound(None) is None
    assert generator_bound(_row(0, 2e6, 2e6, 64.0)) is True
    # received over a slightly longer span than the generator ran (drain), nothing lost
    assert generator_bound(dict(_row(0, 2e6, 2e6, 64.0), recv_eps=2e6 * GENERATOR_BOUND_SHARE)) is True
    assert generator_bound(dict(_row(0, 2e6, 2e6, 64.0), recv_eps=2e6 * GENERATOR_BOUND_SHARE * 0.99)) is False
    # within the rate's tolerance but losing more than a negligible share: labkit's own rate
    assert generator_bound(_row(0, 2e6, 2e6 * (1 - 2 * GENERATOR_BOUND_LOSS), 64.0)) is False
