"""labkit.net.records: sandbox names, state files and the leftover rules. Pure
logic (state files in a temporary directory), no kernel."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.net.records import SandboxRecord, load_record, new_sandbox_id, sandbox_names


def test_names_fit_the_kernel_limits() -> None:
    sandbox_id = new_sandbox_id()
    assert len(sandbox_id) == 6 and int(sandbox_id, 16) >= 0
    names = sandbox_names("3fa9c1")
    assert names == {"host_ns": "lksb-3fa9c1-host", "target_ns": "lksb-3fa9c1-tgt",
                     "host_iface": "lk3fa9c1h", "target_iface": "lk3fa9c1t"}
    assert all(len(v) <= 15 for k, v in names.items() if k.endswith("iface"))  # IFNAMSIZ - 1


def test_record_leftover_rules() -> None:
    names = sandbox_names("abcdef")
    path = Path("/nonexistent/abcdef.json")
    owned = SandboxRecord(id="abcdef", state_file=path, alive=True, **names)
    assert not owned.leftover and owned.status == "in-use"
    dead = SandboxRecord(id="abcdef", state_file=path, alive=False, **names)
    assert dead.leftover and dead.status == "leftover"
    kept = SandboxRecord(
        id="abcdef", state_file=path, persistent=True,
        host_ns_present=True, target_ns_present=True, **names,
    )
    assert not kept.leftover and kept.status == "persistent"
    half = SandboxRecord(id="abcdef", state_file=path, persistent=True, host_ns_present=True, **names)
    assert half.leftover
    orphan = SandboxRecord(id="abcdef", host_ns_present=True, **names)
    assert orphan.leftover and orphan.status == "orphan"
    assert orphan.namespaces == ("lksb-abcdef-host", "lksb-abcdef-tgt")
    assert orphan.to_dict()["state_file"] is None and orphan.to_dict()["leftover"] is True


def test_load_record_reads_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "3fa9c1.json"
    path.write_text(json.dumps({
        "version": 1, "id": "3fa9c1", **sandbox_names("3fa9c1"),
        "subnet": "198.19.37.120/30", "host_ip": "198.19.37.121", "target_ip": "198.19.37.122",
        "owner_pid": 4242, "owner_start_time": 1234567, "persistent": True,
        "created": "2025-01-01T12:00:00+00:00",
    }))
    r = load_record(path)
    assert (r.id, r.subnet, r.host_ip, r.target_ip) == ("3fa9c1", "198.19.37.120/30", "198.19.37.121",
                                                         "198.19.37.122")
    assert (r.owner_pid, r.owner_start_time, r.persistent, r.state_file) == (4242, 1234567, True, path)
    assert (r.host_ns, r.target_iface, r.problem) == ("lksb-3fa9c1-host", "lk3fa9c1t", "")
    assert not r.alive and not r.host_ns_present  # only the file is read


def test_load_record_survives_bad_files(tmp_path: Path) -> None:
    garbled = tmp_path / "abcd.json"
    garbled.write_text("{not json")
    r = load_record(garbled)
    assert r.problem.startswith("unreadable state file") and r.host_ns == "lksb-abcd-host"
    assert r.leftover, "an unreadable record has no live owner"
    listed = tmp_path / "beef.json"
    listed.write_text("[1, 2]")
    assert "not a JSON object" in load_record(listed).problem
    odd = tmp_path / "cafe.json"
    odd.write_text(json.dumps({"owner_pid": "4242", "owner_start_time": None, "host_ns": ""}))
    r = load_record(odd)
    assert r.owner_pid is None and r.owner_start_time is None  # only ints are pids
    assert r.host_ns == "lksb-cafe-host"  # missing names fall back to the id's


def test_a_persistent_sandbox_never_finished_is_a_leftover_once_its_owner_is_gone() -> None:
    names = sandbox_names("abcdef")
    path = Path("/nonexistent/abcdef.json")
    half = SandboxRecord(id="abcdef", state_file=path, persistent=True, built=False,
                         host_ns_present=True, target_ns_present=True, **names)
    assert half.leftover and half.status == "leftover" and half.to_dict()["built"] is False
    half.alive = True  # its owner is still building it
    assert not half.leftover


def test_records_start_unbuilt_and_older_ones_count_as_built(tmp_path: Path, monkeypatch) -> None:
    from labkit.net import records

    monkeypatch.setattr(records, "STATE_DIR", tmp_path)
    path = records.write_record("abcdef", subnet="198.18.0.0/30", host_ip="198.18.0.1", target_ip="198.18.0.2",
                                persistent=False)
    assert json.loads(path.read_text())["built"] is False and not load_record(path).built
    records.mark_built(path)
    assert load_record(path).built and load_record(path).owner_pid is not None
    assert [p.name for p in tmp_path.iterdir()] == ["abcdef.json"]  # no temporary file left
    old = tmp_path / "fedcba.json"
    old.write_text(json.dumps({"version": 1, "id": "fedcba", "owner_pid": 1}))
    assert load_record(old).built
