"""Lesson 14's machinery on the real kernel: the lab's pin directories in the BPF filesystem (made,
recorded, given back, a killed owner's reaped with the map it held), maps pinned by name and reused by a
second object, read-only globals set before load, a libbpf application built and run, and a program
test-run through its prog array."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import labkit
from labkit import owners
from labkit.net.leftovers import REAP_LOCK, Leftovers
from labkit.programs.pins import RECORDS, labkit_pin_dirs

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]


def _map_ids() -> set[int]:
    import json
    r = subprocess.run(["bpftool", "map", "show", "-j"], capture_output=True, text=True, check=True)
    return {m["id"] for m in json.loads(r.stdout or "[]")}


def _freed(map_id: int, seconds: float = 10) -> bool:
    """Whether the kernel freed map ``map_id`` within ``seconds`` (it frees a map shortly after its last holder)."""
    deadline = time.monotonic() + seconds
    while map_id in _map_ids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_pin_dir_is_recorded_reused_and_given_back(lab):
    me = os.getpid()
    with labkit.PinDir("lk14-test") as pins:
        assert pins.path.parent == labkit.programs.pins.BPFFS and pins.path.name.endswith("-lk14-test")
        assert [r["dir"] for r in RECORDS.records() if r["pid"] == me] == [str(pins.path)]
        first = lab.load_object("solution_14_pinned_counter", name="pins_first", rodata={"parent_pid": me},
                                pin_root=pins)
        assert pins.names() == ["calls"] and first.maps["calls"].pin_path == str(pins.path / "calls")
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                os.getppid()
                os._exit(0)
            os.waitpid(pid, 0)
        map_id = first.maps["calls"].id
        first.close()
        assert map_id in _map_ids(), "the pin keeps the map after its object is closed"
        second = lab.load_object("solution_14_pinned_counter", name="pins_second", rodata={"parent_pid": me},
                                 pin_root=pins)
        assert second.maps["calls"].id == map_id            # reused, not made again
        with pins.map("calls") as m:
            assert (m.id, m.name, m.key_size, m.value_size) == (map_id, "calls", 4, 8)
            assert m.dataframe().to_dict("list") == {"key": [0], "value": [3]}
        second.close()
        # a re-run cell: the same name gives the old directory back first
        again = labkit.PinDir("lk14-test")
        assert pins.closed and not pins.path.exists() and again.path != pins.path
        again.close()
    assert _freed(map_id), "the map went with its pin"
    assert not [r for r in RECORDS.records() if r["pid"] == me] and not [
        p for p in labkit_pin_dirs() if p.name.endswith("-lk14-test")]


def test_a_killed_owner_leaves_pins_that_are_reaped():
    code = textwrap.dedent("""
        import os, sys, labkit
        lab = labkit.Lab()
        pins = labkit.PinDir("lk14-killed")
        obj = lab.load_object("solution_14_pinned_counter", name="killed", rodata={"parent_pid": 1}, pin_root=pins)
        print(pins.path, obj.maps["calls"].id, flush=True)
        sys.stdin.read()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lock = os.open(REAP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        path, map_id = p.stdout.readline().split()
        fcntl.flock(lock, fcntl.LOCK_EX)     # no other process's Lab() reaps it before it is looked at
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert owners.wait_gone(p.pid, 10)
        assert int(map_id) in _map_ids(), "a pin outlives its process"
        everywhere = Leftovers.find()         # what `labkit cleanup` looks at
        assert path in [x["dir"] for x in everywhere.attached["pin"]]
        found = Leftovers.find(owner_pid=p.pid)
        assert [(x["dir"], x["pins"]) for x in found.attached["pin"]] == [(path, ["calls"])]
        out: list[str] = []
        assert found.remove(out=out.append) == 0
        assert not os.path.exists(path) and any(f"pin directory {path} (calls)" in line for line in out), out
        assert not [r for r in RECORDS.records() if r.get("pid") == p.pid]
        assert _freed(int(map_id))
    finally:
        os.close(lock)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_application_builds_runs_and_shares_its_count(tmp_path):
    app = labkit.build_app("app_opens")
    assert labkit.build_app("app_opens") == app               # the second time: from the cache
    assert "struct app_opens_bpf__rodata" in app.skeleton.read_text()
    target = tmp_path / "a" / "b"
    target.parent.mkdir()
    opener = subprocess.Popen([sys.executable, "-c", "import os, sys\nprint('ready', flush=True)\n"
                               "sys.stdin.readline()\n"
                               f"os.close(os.open({str(target)!r}, os.O_CREAT | os.O_WRONLY))\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert opener.stdout.readline() == "ready\n"      # its own start-up's opens are over
    with labkit.PinDir("lk14-app") as pins:
        tool = app.start("--pid", opener.pid, "--pin-dir", pins.path, "--seconds", 60)
        try:
            ready = tool.stdout.readline()
            assert ready.startswith(f"ready\tpid {opener.pid}\t") and f"pinned {pins.path}/opens" in ready
            opener.communicate("go\n", timeout=30)
            out, err = tool.communicate("", timeout=60)
        finally:
            if tool.poll() is None:
                tool.kill()
                tool.wait()
        assert tool.returncode == 0, err
        events = [line.split("\t") for line in out.splitlines() if line.startswith("event\t")]
        assert [(int(e[1]), e[6]) for e in events] == [(opener.pid, str(target))]
        assert int(events[0][3]) == (str(target).count("/") if labkit.programs.core.has_helper(181) else -1)
        assert out.splitlines()[-2:] == ["opens\t1", "done"]
        with pins.map("opens") as m:
            assert int(m.dataframe().value.sum()) == 1


def test_the_bad_usage_of_the_application_is_said():
    r = subprocess.run([str(labkit.build_app("app_opens").exe), "--pid", "1"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "usage: app_opens --pid PID --pin-dir DIR" in r.stderr


def test_a_dispatcher_test_run_jumps_through_its_slots(lab):
    from labkit.exercises.lessons import lesson04
    from labkit.exercises.lessons.lesson14 import frame

    # lesson 04's checker test-runs BCC programs first, in the same process (the suite's order once set a
    # prototype of its own on libbpf's function, and this test-run then failed): one prototype for both
    bcc = lab.load("#include <uapi/linux/bpf.h>\nint lk_pass(struct xdp_md *ctx) { return XDP_PASS; }\n",
                   name="pins_bcc_pass")
    assert lesson04._test_run(bcc.bpf.load_func(b"lk_pass", 6).fd, frame("icmp")) == 2
    obj = lab.load_object("solution_14_dispatcher", name="pins_dispatch", attach=False)
    ids = {p.id: n for n, p in obj.programs.items()}
    assert {i: ids[p] for i, p in obj.maps["handlers"].slots().items()} == {1: "lk_on_icmp", 17: "lk_on_udp"}
    run = obj.programs["lk_dispatch"].test_run
    assert [run(frame(k)) for k in ("icmp", "udp", "tcp", "arp")] == [1, 2, 2, 2]
    assert obj.map_dataframe("udp_seen").value.tolist() == [1]
    obj.close()
    with pytest.raises(labkit.ClosedError):
        run(frame("icmp"))


def test_a_pinned_program_is_not_read_as_a_map(lab):
    obj = lab.load_object("solution_14_dispatcher", name="pins_prog", attach=False)
    with labkit.PinDir("lk14-prog") as pins:
        path = pins.path / "dispatch"
        assert labkit.programs.libbpf.libbpf().bpf_obj_pin(obj.programs["lk_dispatch"].fd, str(path).encode()) == 0
        with pytest.raises(labkit.ArgumentError, match="pinned, but it is not a map"):
            labkit.pinned_map(path)
        assert pins.names() == ["dispatch"]
    assert not path.exists()


def test_making_a_pin_dir_without_root_says_how():
    code = "import labkit\ntry:\n    labkit.PinDir('lk14-noroot')\nexcept labkit.LabkitError as e:\n    print(type(e).__name__, e)\n"
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                        sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                       env={**os.environ, "HOME": "/tmp"})
    assert "PrivilegeError pinning needs root" in r.stdout and "./lab start" in r.stdout, r.stdout + r.stderr
    assert not [p for p in labkit_pin_dirs() if p.name.endswith("-lk14-noroot")]


def test_without_a_pin_root_nothing_is_pinned(lab):
    """libbpf's default pin root is the top of /sys/fs/bpf, the machine's: labkit pins only where it is told."""
    before = set(os.listdir("/sys/fs/bpf"))
    obj = lab.load_object("solution_14_pinned_counter", name="pins_nowhere", rodata={"parent_pid": 1})
    assert obj.maps["calls"].pin_path == "" and set(os.listdir("/sys/fs/bpf")) == before
    obj.close()
