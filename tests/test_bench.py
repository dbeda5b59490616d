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
from labkit.commands import cli as cli
from labkit.commands.bench.config import MODES
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
