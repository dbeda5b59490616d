"""labkit.net.leftovers: what `labkit cleanup` keeps, removes and says, with
the kernel calls replaced by fakes (the real thing: tests/test_xdp.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.net import leftovers
from labkit.net.leftovers import Leftovers
from labkit.net.records import SandboxRecord, sandbox_names


def xdp(netns: str | None, iface: str, prog_id: int, mode: str = "generic") -> dict:
    return {"netns": netns, "iface": iface, "ifindex": 7, "mode": mode, "prog_id": prog_id,
            "name": "lk_xdp_icmp_dr"}


def found(tmp_path: Path) -> Leftovers:
    dead = SandboxRecord(id="abcdef", state_file=tmp_path / "abcdef.json", owner_pid=99999999,
                         host_ns_present=True, target_ns_present=True, **sandbox_names("abcdef"))
    records = [
        {"netns": None, "iface": "veth9", "pid": 1, "path": str(tmp_path / "-root-__veth9.json")},
        {"netns": "lksb-abcdef-tgt", "iface": "lkabcdeft", "pid": 99999999,
         "path": str(tmp_path / "lksb-abcdef-tgt__lkabcdeft.json")},
    ]
    for rec in records:
        Path(rec["path"]).write_text("{}")
    return Leftovers(
        xdp=[xdp(None, "veth9", 11),                   # recorded by pid 1, which runs: kept
             xdp("lksb-abcdef-tgt", "lkabcdeft", 12),  # goes with its leftover sandbox
             xdp("lksb-other-tgt", "lkothert", 13, "native")],
        sandboxes=[dead], records=records)


def test_empty_is_false() -> None:
    assert not Leftovers() and Leftovers(records=[{"path": "x"}])


def test_dry_run_says_what_would_go_and_touches_nothing(tmp_path: Path, monkeypatch) -> None:
    def kernel(*a, **k):
        raise AssertionError("a dry run must not touch the kernel")

    for name in ("netlink_set", "remove_sandbox", "find_labkit_xdp", "interface"):
        monkeypatch.setattr(leftovers, name, kernel)
    lines: list[str] = []
    assert found(tmp_path).remove(dry_run=True, out=lines.append) == 2
    assert lines == [
        "kept XDP lk_xdp_icmp_dr (id 11) on veth9 [generic]: attached by running process 1",
        "would remove XDP lk_xdp_icmp_dr (id 12) on lksb-abcdef-tgt:lkabcdeft [generic] (with its leftover sandbox)",
        "would remove XDP lk_xdp_icmp_dr (id 13) on lksb-other-tgt:lkothert [native]",
        "would remove sandbox abcdef (lksb-abcdef-host, lksb-abcdef-tgt; owner pid 99999999, leftover)",
        f"would forget record {tmp_path / '-root-__veth9.json'}",
        f"would forget record {tmp_path / 'lksb-abcdef-tgt__lkabcdeft.json'}",
    ]
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_removal_reports_each_outcome(tmp_path: Path, monkeypatch) -> None:
    detached, removed = [], []

    def netlink_set(ifindex, netns, fd, mode):
        if mode == "native":
            raise OSError(16, "Device or resource busy")  # a bpf_link holds it
        detached.append((ifindex, netns, fd, mode))

    monkeypatch.setattr(leftovers, "netlink_set", netlink_set)
    monkeypatch.setattr(leftovers, "remove_sandbox", removed.append)
    monkeypatch.setattr(leftovers, "find_labkit_xdp", lambda: [xdp(None, "veth9", 11)])
    lines: list[str] = []
    assert found(tmp_path).remove(out=lines.append) == 1
    assert lines == [
        "kept XDP lk_xdp_icmp_dr (id 11) on veth9 [generic]: attached by running process 1",
        "removing XDP lk_xdp_icmp_dr (id 12) on lksb-abcdef-tgt:lkabcdeft [generic] (with its leftover sandbox)",
        "kept XDP lk_xdp_icmp_dr (id 13) on lksb-other-tgt:lkothert [native]: held by a bpf_link of a running "
        "process ([Errno 16] Device or resource busy); it goes when that process ends",
        "removed sandbox abcdef (lksb-abcdef-host, lksb-abcdef-tgt; owner pid 99999999, leftover)",
    ]
    assert detached == [] and [r.id for r in removed] == ["abcdef"]
    # the record of a program still attached stays; the other one is forgotten
    assert [p.name for p in tmp_path.glob("*.json")] == ["-root-__veth9.json"]


def test_this_process_records_are_not_kept_for_it(tmp_path: Path, monkeypatch) -> None:
    detached = []
    monkeypatch.setattr(leftovers, "netlink_set", lambda *a: detached.append(a))
    monkeypatch.setattr(leftovers, "find_labkit_xdp", lambda: [])
    mine = Leftovers(xdp=[xdp(None, "veth9", 11)],
                     records=[{"netns": None, "iface": "veth9", "pid": os.getpid(), "path": str(tmp_path / "r")}])
    lines: list[str] = []
    assert mine.remove(out=lines.append) == 0
    assert lines == ["removed XDP lk_xdp_icmp_dr (id 11) on veth9 [generic]"] and detached == [(7, None, -1, "generic")]


def test_scoped_to_an_owner_only_its_recorded_programs(monkeypatch) -> None:
    slots = {"index": 7, "ifname": "veth9", "native": 0, "generic": 11}
    monkeypatch.setattr(leftovers, "netlink_records", lambda: [
        {"netns": None, "iface": "veth9", "mode": "generic", "prog_id": 11, "pid": 4242, "path": "a"},
        {"netns": None, "iface": "veth8", "mode": "generic", "prog_id": 12, "pid": 4343, "path": "b"},
        {"netns": "gone", "iface": "x", "mode": "generic", "prog_id": 13, "pid": 4242, "path": "c"},
    ])

    def interface(iface, netns):
        if netns == "gone":
            raise leftovers.AttachError("no network namespace named 'gone'", target="gone")
        return slots

    monkeypatch.setattr(leftovers, "interface", interface)
    monkeypatch.setattr(leftovers, "prog_name", lambda prog_id: "xdp_student")  # no lk_ prefix needed
    monkeypatch.setattr(leftovers, "list_sandboxes", lambda: [])
    found = Leftovers.find(owner_pid=4242)
    assert found.owner_pid == 4242 and [r["path"] for r in found.records] == ["a", "c"]
    assert found.xdp == [{"netns": None, "iface": "veth9", "ifindex": 7, "mode": "generic", "prog_id": 11,
                          "name": "xdp_student"}]
    slots["generic"] = 99  # replaced since: not the owner's program any more
    assert Leftovers.find(owner_pid=4242).xdp == []


@pytest.mark.parametrize("owner", [None, 4242])
def test_nothing_found(monkeypatch, owner) -> None:
    monkeypatch.setattr(leftovers, "netlink_records", lambda: [])
    monkeypatch.setattr(leftovers, "find_labkit_xdp", lambda: [])
    monkeypatch.setattr(leftovers, "find_leftovers", lambda: [])
    monkeypatch.setattr(leftovers, "list_sandboxes", lambda: [])
    assert not Leftovers.find(owner)
