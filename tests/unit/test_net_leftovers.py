"""labkit.net.leftovers: what `labkit cleanup` keeps, removes and says, with
the kernel calls replaced by fakes (the real thing: tests/test_xdp.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import labkit
from labkit.commands import cleanup
from labkit.hooks import tc as tc_hook
from labkit.hooks import xdp as xdp_hook
from labkit.net import leftovers
from labkit.net.leftovers import Leftovers
from labkit.net.records import SandboxRecord, sandbox_names


@pytest.fixture(autouse=True)
def no_tc_records(monkeypatch) -> None:
    """Pure logic: never the machine's own TC records (tests running beside these make some)."""
    monkeypatch.setattr(tc_hook.HOOK.records, "records", lambda: [])


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
        attached={"xdp": [xdp(None, "veth9", 11),                   # recorded by pid 1, which runs: kept
                          xdp("lksb-abcdef-tgt", "lkabcdeft", 12),  # goes with its leftover sandbox
                          xdp("lksb-other-tgt", "lkothert", 13, "native")]},
        sandboxes=[dead], records={"xdp": records})


def test_empty_is_false() -> None:
    assert not Leftovers() and not Leftovers(attached={"xdp": [], "tc": []}, records={"xdp": []})
    assert Leftovers(records={"xdp": [{"path": "x"}]})


def test_the_kinds_that_record_are_xdp_tc_and_the_labs_cgroups_and_pins() -> None:
    assert sorted(r.name for r in labkit.hooks.recorders()) == ["cgroup", "pin", "tc", "xdp"]


def test_dry_run_says_what_would_go_and_touches_nothing(tmp_path: Path, monkeypatch) -> None:
    def kernel(*a, **k):
        raise AssertionError("a dry run must not touch the kernel")

    for name in ("netlink_set", "find_labkit_xdp", "interface"):
        monkeypatch.setattr(xdp_hook, name, kernel)
    monkeypatch.setattr(leftovers, "remove_sandbox", kernel)
    lines: list[str] = []
    assert found(tmp_path).remove(dry_run=True, out=lines.append) == 2
    assert lines == [
        "kept XDP lk_xdp_icmp_dr (id 11) on veth9 [generic]: attached by running process 1",
        "would remove XDP lk_xdp_icmp_dr (id 12) on lksb-abcdef-tgt:lkabcdeft [generic] (with its leftover sandbox)",
        "would remove XDP lk_xdp_icmp_dr (id 13) on lksb-other-tgt:lkothert [native]",
        "would remove sandbox abcdef (lksb-abcdef-host, lksb-abcdef-tgt; owner pid 99999999, leftover)",
        # pid 1's record stays with its kept program: a real run would not forget it either
        f"would forget record {tmp_path / 'lksb-abcdef-tgt__lkabcdeft.json'}",
    ]
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_removal_reports_each_outcome(tmp_path: Path, monkeypatch) -> None:
    detached, removed = [], []

    def netlink_set(ifindex, netns, fd, mode):
        if mode == "native":
            raise OSError(16, "Device or resource busy")  # a bpf_link holds it
        detached.append((ifindex, netns, fd, mode))

    monkeypatch.setattr(xdp_hook, "netlink_set", netlink_set)
    monkeypatch.setattr(leftovers, "remove_sandbox", removed.append)
    monkeypatch.setattr(xdp_hook, "find_labkit_xdp", lambda: [xdp(None, "veth9", 11)])
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
    monkeypatch.setattr(xdp_hook, "netlink_set", lambda *a: detached.append(a))
    monkeypatch.setattr(xdp_hook, "find_labkit_xdp", lambda: [])
    mine = Leftovers(attached={"xdp": [xdp(None, "veth9", 11)]},
                     records={"xdp": [{"netns": None, "iface": "veth9", "pid": os.getpid(),
                                       "path": str(tmp_path / "r")}]})
    lines: list[str] = []
    assert mine.remove(out=lines.append) == 0
    assert lines == ["removed XDP lk_xdp_icmp_dr (id 11) on veth9 [generic]"] and detached == [(7, None, -1, "generic")]


def test_scoped_to_an_owner_only_its_recorded_programs(monkeypatch) -> None:
    slots = {"index": 7, "ifname": "veth9", "native": 0, "generic": 11}
    monkeypatch.setattr(xdp_hook.HOOK.records, "records", lambda: [
        {"netns": None, "iface": "veth9", "mode": "generic", "prog_id": 11, "pid": 4242, "path": "a"},
        {"netns": None, "iface": "veth8", "mode": "generic", "prog_id": 12, "pid": 4343, "path": "b"},
        {"netns": "gone", "iface": "x", "mode": "generic", "prog_id": 13, "pid": 4242, "path": "c"},
    ])

    def interface(iface, netns):
        if netns == "gone":
            raise labkit.AttachError("no network namespace named 'gone'", target="gone")
        return slots

    monkeypatch.setattr(xdp_hook, "interface", interface)
    monkeypatch.setattr(xdp_hook, "prog_name", lambda prog_id: "xdp_student")  # no lk_ prefix needed
    monkeypatch.setattr(leftovers, "list_sandboxes", lambda: [])
    found = Leftovers.find(owner_pid=4242)
    assert found.owner_pid == 4242 and [r["path"] for r in found.records["xdp"]] == ["a", "c"]
    assert found.attached["xdp"] == [{"netns": None, "iface": "veth9", "ifindex": 7, "mode": "generic",
                                      "prog_id": 11, "name": "xdp_student"}]
    slots["generic"] = 99  # replaced since: not the owner's program any more
    assert Leftovers.find(owner_pid=4242).attached["xdp"] == []


@pytest.mark.parametrize("owner", [None, 4242])
def test_nothing_found(monkeypatch, owner) -> None:
    for r in leftovers.recorders():     # every kind's records and scan (cgroups, pins: tests beside this one make some)
        monkeypatch.setattr(r, "records", lambda: [])
        monkeypatch.setattr(r, "everywhere", lambda: [])
    monkeypatch.setattr(xdp_hook, "find_labkit_xdp", lambda: [])
    monkeypatch.setattr(leftovers, "find_leftovers", lambda: [])
    monkeypatch.setattr(leftovers, "list_sandboxes", lambda: [])
    assert not Leftovers.find(owner)


# ------------------------------------------------------------------ reaping what dead owners left


@pytest.fixture
def no_records(tmp_path: Path, monkeypatch) -> Path:
    """Empty record folders (sandboxes and every recorded kind: xdp, tc, cgroups, pins), and a reap lock,
    under tmp_path: the machine's own may hold records of tests running beside this one."""
    (tmp_path / "sandboxes").mkdir()
    monkeypatch.setattr(leftovers, "STATE_DIR", tmp_path / "sandboxes")
    for r in leftovers.recorders():
        (tmp_path / r.name).mkdir()
        monkeypatch.setattr(r, "state_dir", tmp_path / r.name)
    monkeypatch.setattr(leftovers, "REAP_LOCK", tmp_path / "reap.lock")
    monkeypatch.setattr(leftovers, "REAP_JOURNAL", tmp_path / "reaped.log")
    return tmp_path


def test_reap_with_no_record_reads_the_record_folders_and_says_nothing(no_records: Path, monkeypatch) -> None:
    def scan():
        raise AssertionError("no record: no scan")

    monkeypatch.setattr(Leftovers, "find_dead", classmethod(lambda cls: scan()))
    (no_records / "sandboxes" / ".lock").write_text("")  # the subnet lock is not a record
    said: list[str] = []
    assert leftovers.reap_dead_owners(out=said.append) == "" and said == []
    assert not (no_records / "reap.lock").exists()


def test_find_dead_keeps_live_owners_and_what_has_no_record(monkeypatch) -> None:
    me = os.getpid()
    live = SandboxRecord(id="aaaa", state_file=Path("a.json"), owner_pid=me, alive=True, **sandbox_names("aaaa"))
    dead = SandboxRecord(id="bbbb", state_file=Path("b.json"), owner_pid=99999999, **sandbox_names("bbbb"))
    orphan = SandboxRecord(id="cccc", host_ns_present=True, **sandbox_names("cccc"))
    monkeypatch.setattr(leftovers, "list_sandboxes", lambda: [live, dead, orphan])
    monkeypatch.setattr(xdp_hook.HOOK.records, "records", lambda: [
        {"netns": None, "iface": "veth9", "pid": me, "start_time": leftovers.owners.start_time(me), "path": "a"},
        {"netns": None, "iface": "veth8", "pid": me, "start_time": 1, "path": "b"},  # a reused pid: gone
        {"netns": None, "iface": "veth7", "pid": 99999999, "path": "c"},
    ])
    monkeypatch.setattr(xdp_hook.HOOK.records, "still_there", lambda records: [xdp(r["netns"], r["iface"], 5)
                                                                                  for r in records])
    monkeypatch.setattr(xdp_hook, "find_labkit_xdp", lambda: pytest.fail("a reap never scans every interface"))
    found = Leftovers.find_dead()
    assert [r.id for r in found.sandboxes] == ["bbbb"]
    assert [r["path"] for r in found.records["xdp"]] == ["b", "c"]
    assert [x["iface"] for x in found.attached["xdp"]] == ["veth8", "veth7"]
    assert not found.machine_wide


def test_reap_says_what_it_removed_in_one_line_and_a_failure_once(no_records: Path, monkeypatch) -> None:
    (no_records / "xdp" / "r.json").write_text("{}")
    dead = SandboxRecord(id="abcdef", state_file=no_records / "abcdef.json", owner_pid=4242,
                         host_ns_present=True, target_ns_present=True, **sandbox_names("abcdef"))
    stuck = SandboxRecord(id="fedcba", state_file=no_records / "fedcba.json", owner_pid=4343,
                          **sandbox_names("fedcba"))

    def find_dead(cls):
        return cls(attached={"xdp": [xdp("lksb-abcdef-tgt", "lkabcdeft", 12)]}, sandboxes=[dead, stuck],
                   machine_wide=False, records={"xdp": [{"netns": "lksb-abcdef-tgt", "iface": "lkabcdeft",
                                                         "pid": 4242, "path": str(no_records / "xdp" / "r.json")}]})

    def remove_sandbox(record):
        if record is stuck:
            raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(Leftovers, "find_dead", classmethod(find_dead))
    monkeypatch.setattr(leftovers, "remove_sandbox", remove_sandbox)
    monkeypatch.setattr(xdp_hook.HOOK.records, "still_there", lambda records: [])
    monkeypatch.setattr(leftovers, "_reported_failures", set())
    said: list[str] = []
    line = leftovers.reap_dead_owners(out=said.append)
    assert said == [line] == [
        "labkit: removed 2 leftovers of dead processes (sandbox abcdef of pid 4242, XDP lk_xdp_icmp_dr on "
        "lksb-abcdef-tgt:lkabcdeft of pid 4242); could not remove sandbox fedcba of pid 4343: [Errno 1] "
        "Operation not permitted (run `labkit cleanup` as root)"]
    said.clear()
    monkeypatch.setattr(Leftovers, "find_dead", classmethod(lambda cls: cls(sandboxes=[stuck], machine_wide=False)))
    assert leftovers.reap_dead_owners(out=said.append) == "" and said == []  # the same failure is not said again
    # the journal keeps the reap that removed something, and `labkit cleanup --reaped` says it
    assert [e["line"] for e in leftovers.reap_journal()] == [line]
    shown: list[str] = []
    assert cleanup.reaped(out=shown.append) == 1
    assert len(shown) == 1 and shown[0].endswith(f"by pid {os.getpid()}: {line}")


def test_cleanup_reaped_says_when_nothing_was(no_records: Path, capsys) -> None:
    assert cleanup.main(["--reaped"]) == 0
    assert capsys.readouterr().out == (f"nothing removed without a command lately ({no_records / 'reaped.log'} "
                                       "is empty or absent)\n")


def test_reap_summary_counts() -> None:
    assert leftovers.reap_summary([], []) == ""
    assert leftovers.reap_summary(["sandbox 3fa2c1 of pid 7"], []) == (
        "labkit: removed 1 leftover of dead processes (sandbox 3fa2c1 of pid 7)")


def test_reap_never_raises(no_records: Path, monkeypatch) -> None:
    (no_records / "sandboxes" / "abcdef.json").write_text("{}")
    monkeypatch.setattr(Leftovers, "find_dead", classmethod(lambda cls: (_ for _ in ()).throw(OSError("boom"))))
    assert leftovers.reap_dead_owners(out=pytest.fail) == ""
