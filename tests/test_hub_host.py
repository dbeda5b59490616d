"""The class server's host side, on this machine: the VM's command line (the
isolation rules), the students' disks and the cgroup limits (real cgroups,
real ext4). Booting VMs through the hub is tests/hub/run (minutes under TCG)."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit._errors import ArgumentError
from labkit.hub import limits, vm

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _vm(tmp_path, **kw) -> vm.VM:
    base = dict(name="alice", image=tmp_path / "img", home=tmp_path / "home.img", spawn=tmp_path / "spawn",
                console=tmp_path / "console.log", port=41234, hub_api_port=8081)
    base.update(kw)
    return vm.VM(**base)


def test_vm_network_is_closed_but_for_the_two_forwards(tmp_path):
    argv = vm.qemu_argv(_vm(tmp_path))
    net = argv[argv.index("-netdev") + 1]
    opts = net.split(",")
    assert "restrict=on" in opts                      # no connection out of the guest but the forwards
    fwd = [o for o in opts if o.startswith(("hostfwd=", "guestfwd="))]
    assert fwd == ["hostfwd=tcp:127.0.0.1:41234-198.18.200.15:8888",
                   "guestfwd=tcp:198.18.200.100:8081-cmd:/usr/bin/socat - TCP:127.0.0.1:8081"]
    # every address on the command line is loopback or in the lab's 198.18.0.0/15
    lab = ipaddress.ip_network("198.18.0.0/15")
    addrs = re.findall(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?:/\d+)?", " ".join(argv))
    assert addrs, "the command line names the guest's addresses"
    for a in addrs:
        ip = ipaddress.ip_address(a)
        assert not any(ip in n for n in PRIVATE), a
        assert ip.is_loopback or ip in lab, a
    assert "-nic" not in argv and argv.count("-netdev") == 1


def test_vm_disks_and_end(tmp_path):
    m = _vm(tmp_path, mem_mb=1024, cpus=2)
    argv = vm.qemu_argv(m)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives[0].startswith(f"file={tmp_path / 'img' / 'rootfs.ext4'},") and "snapshot=on" in drives[0]
    assert drives[1] == f"file={tmp_path / 'home.img'},format=raw,if=virtio"   # the student's disk is written
    assert "-no-reboot" in argv and "panic=1" in argv[argv.index("-append") + 1]   # a panic ends the VM
    assert argv[argv.index("-m") + 1] == "1024" and argv[argv.index("-smp") + 1] == "2"
    assert argv[argv.index("-name") + 1] == "labkit-hub-vm:alice"
    virtfs = argv[argv.index("-virtfs") + 1]
    assert "readonly=on" in virtfs and f"path={tmp_path / 'spawn'}" in virtfs


@pytest.mark.parametrize("name", ["", "Alice", "a/b", "..", "a..b", "-x", "a,b", "a b", "x" * 65])
def test_vm_refuses_names_that_are_not_safe(name):
    with pytest.raises(ArgumentError, match="cannot name a VM"):
        vm.check_name(name)


@pytest.mark.parametrize("kw, match", [
    (dict(port=80), "not a port above 1023"), (dict(mem_mb=256), "at least 512 MiB"),
    (dict(cpus=0), "cpus must be"), (dict(accel="hvf"), "accel must be"),
])
def test_vm_refuses_bad_sizes(tmp_path, kw, match):
    with pytest.raises(ArgumentError, match=match):
        _vm(tmp_path, **kw)


def test_vm_refuses_a_path_qemu_would_split(tmp_path):
    with pytest.raises(ArgumentError, match="comma"):
        vm.qemu_argv(_vm(tmp_path, home=tmp_path / "a,b.img"))


def test_guest_env_passes_only_the_hubs_variables_and_rewrites_its_api():
    env = {"JUPYTERHUB_API_TOKEN": "t0k'en", "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
           "JUPYTERHUB_ACTIVITY_URL": "http://127.0.0.1:8081/hub/api/users/alice/activity",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/", "PATH": "/usr/bin", "HOME": "/root",
           "JPY_API_TOKEN": "t0k'en", "SECRET_OF_THE_HOST": "x"}
    text = vm.guest_env(env, "http://127.0.0.1:8081/hub/api")
    assert "PATH" not in text and "HOME" not in text and "SECRET" not in text
    assert "export JUPYTERHUB_API_URL=http://198.18.200.100:8081/hub/api\n" in text
    assert "export JUPYTERHUB_ACTIVITY_URL=http://198.18.200.100:8081/hub/api/users/alice/activity\n" in text
    out = subprocess.run(["bash", "-c", text + 'printf %s "$JUPYTERHUB_API_TOKEN"'], capture_output=True, text=True)
    assert out.stdout == "t0k'en"                     # quoted for the shell that reads it


@pytest.mark.requires("root")
def test_home_disk_is_ext4_sparse_and_never_overwritten(tmp_path):
    disk = tmp_path / "home.img"
    vm.make_home_disk(disk, 128)
    assert disk.stat().st_size == 128 * 1024 * 1024
    assert disk.stat().st_blocks * 512 < 16 * 1024 * 1024          # sparse: the student's quota, not the host's
    label = subprocess.run(["/sbin/e2label", str(disk)], capture_output=True, text=True)
    assert label.stdout.strip() == "labkit-home"
    before = disk.read_bytes()[:4096]
    with open(disk, "r+b") as f:                                    # "the student's work"
        f.seek(64 * 1024 * 1024)
        f.write(b"mine")
    vm.make_home_disk(disk, 256)                                   # a second start: the disk is kept
    assert disk.stat().st_size == 128 * 1024 * 1024
    with open(disk, "rb") as f:
        f.seek(64 * 1024 * 1024)
        assert f.read(4) == b"mine"
    assert disk.read_bytes()[:4096] == before
    with pytest.raises(ArgumentError, match="at least 64 MiB"):
        vm.make_home_disk(tmp_path / "tiny.img", 8)


@pytest.mark.requires("root")
def test_cgroup_limits_hold_a_real_process_and_are_given_back():
    name = f"test-{os.getpid()}-{int(time.time() * 1000) % 100000}"
    # memory it takes after the move is charged to its group (v1 does not move old charges)
    child = "import sys, time; sys.stdin.readline(); b = bytearray(48 << 20); print('ok', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    made = []
    try:
        made = limits.apply(name, proc.pid, limits.Limits(mem_mb=600, cpus=0.5))
        assert made and all(d.is_dir() for d in made)
        want = (600 + limits.QEMU_OVERHEAD_MB) * 1024 * 1024
        for d in made:
            assert str(proc.pid) in (d / "cgroup.procs").read_text().split()
            if (d / "memory.max").exists():
                assert int((d / "memory.max").read_text()) == want
                assert (d / "cpu.max").read_text().split() == ["50000", "100000"]
            elif (d / "memory.limit_in_bytes").exists():
                assert int((d / "memory.limit_in_bytes").read_text()) == want
            else:
                assert int((d / "cpu.cfs_quota_us").read_text()) == 50000
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "ok\n"
        assert limits.usage_bytes(name) > 40 << 20
    finally:
        proc.kill()
        proc.wait()
        for _ in range(50):                    # the cgroup empties when the kernel has reaped the task
            limits.remove(name)
            if not any(d.exists() for d in made):
                break
            time.sleep(0.1)
    assert made and not any(d.exists() for d in made)
    assert limits.usage_bytes(name) is None


def test_a_grading_jobs_vm_has_no_network_and_only_its_job(tmp_path):
    argv = vm.job_argv("alice-lesson01", tmp_path / "img", tmp_path / "job", tmp_path / "console.log", mem_mb=1024)
    assert argv[argv.index("-nic") + 1] == "none" and "-netdev" not in argv
    assert argv[argv.index("-virtfs") + 1] == f"local,path={tmp_path / 'job'},mount_tag=labkit_job,security_model=none"
    assert "labkit.mode=job" in argv[argv.index("-append") + 1]
    assert argv[argv.index("-name") + 1] == "labkit-job:alice-lesson01"
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert len(drives) == 1 and "snapshot=on" in drives[0]            # the image, never written
    with pytest.raises(ArgumentError, match="comma"):
        vm.job_argv("x", tmp_path / "img", tmp_path / "a,b", tmp_path / "c.log")


def test_a_courses_release_and_the_students_feedback_are_shared_read_only(tmp_path):
    argv = vm.qemu_argv(_vm(tmp_path, release=tmp_path / "course" / "release", feedback=tmp_path / "fb"))
    shares = [argv[i + 1] for i, a in enumerate(argv) if a == "-virtfs"]
    assert f"local,path={tmp_path / 'course' / 'release'},mount_tag=labkit_release,security_model=none,readonly=on" \
        in shares
    assert f"local,path={tmp_path / 'fb'},mount_tag=labkit_feedback,security_model=none,readonly=on" in shares
    assert len(shares) == 3 and all("readonly=on" in v for v in shares)
    assert not [v for v in vm.qemu_argv(_vm(tmp_path)) if "labkit_release" in v or "labkit_feedback" in v]
    with pytest.raises(ArgumentError, match="comma"):
        vm.qemu_argv(_vm(tmp_path, feedback=tmp_path / "a,b"))
