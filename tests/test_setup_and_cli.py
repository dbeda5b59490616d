"""The front door: README's two commands, idempotent setup, labkit doctor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_commands_are_the_ones_ci_and_users_run():
    readme = (ROOT / "README.md").read_text()
    assert "./lab start" in readme and "./lab test" in readme
    ci = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1] == "exec ./lab test"
    assert all(ln.startswith("cd ") for ln in ci[:-1]), ci  # nothing but getting to the repo root


@pytest.mark.requires("root")
def test_second_setup_run_installs_nothing():
    r = subprocess.run([str(ROOT / "scripts/setup.sh"), "--test"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    said = r.stdout + r.stderr
    assert "installing" not in said and "apt-get update" not in said and "creating" not in said, said
    assert said.strip().endswith("ready")
    # what it promised is there
    rel = os.uname().release
    assert Path(f"/lib/modules/{rel}/build/include/generated/autoconf.h").exists()
    assert Path("/sys/kernel/tracing/events").is_dir()
    spec = ROOT / ".venv/share/jupyter/kernels/labkit/kernel.json"
    assert str(ROOT / ".venv/bin/python") in spec.read_text()
    assert (ROOT / ".venv/bin/labkit").exists()


def test_dependencies_are_pinned():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"] + sum(meta["project"]["optional-dependencies"].values(), [])
    loose = [d for d in deps if not re.match(r"^[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*$", d)]
    assert not loose, f"unpinned: {loose}"


@pytest.mark.kernel
@pytest.mark.requires("root")
def test_doctor_passes_here_and_names_hooks():
    r = subprocess.run([sys.executable, "-m", "labkit", "doctor"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for check in ("privileges", "BCC", "tracefs", "kernel headers", "hook: tracepoint", "hook: kprobe", "hook: XDP",
                  "map types", "hook: uprobe", "USDT", "hook: tc", "CO-RE toolchain", "hook: perf_event", "cgroup v2",
                  "hook: cgroup", "hook: lsm"):
        assert re.search(rf"^\s*(ok|warn)\s+{re.escape(check)}\s", out, re.M), (check, out)
    assert "the lab can run" in out
    # the features of lessons 05-09 are tried for real on this kernel, not only looked for
    assert re.search(r"^\s*ok\s+hook: uprobe\s+a uprobe on libc's getpid\(\) fired [3-9]", out, re.M), out
    assert re.search(r"^\s*ok\s+hook: tc\s+egress attached in a sandbox via .*counted [1-9]", out, re.M), out
    assert re.search(r"^\s*ok\s+CO-RE toolchain\s+clang compiled", out, re.M), out
    # lesson 13: where the cgroup v2 hierarchy is, and a connect4 program that refused a child's connect
    assert re.search(r"^\s*ok\s+cgroup v2\s+cgroup2 at /", out, re.M), out
    assert re.search(r"^\s*ok\s+hook: cgroup\s+a connect4 program .* refused a child's connect with EPERM", out,
                     re.M), out
    # lesson 12: BPF LSM tried for real (it ran where the kernel runs it), or why not, with the fix
    from labkit.hooks import lsm

    ok, why = lsm.available()
    if ok:
        assert re.search(r"^\s*ok\s+hook: lsm\s+an LSM program loaded, attached and ran", out, re.M), out
    else:
        assert re.search(rf"^\s*warn\s+hook: lsm\s+{re.escape(why)}\n\s+fix: ", out, re.M), out
    assert re.search(r"^\s*ok\s+hook: perf_event\s+the CPU clock at 99 Hz sampled this process [3-9]\d* times, "
                     r"[1-9]\d* with a user stack", out, re.M), out
    # lesson 14: its application built (clang, bpftool gen skeleton, libbpf) and a pin directory made
    assert re.search(r"^\s*ok\s+libbpf application\s+built app_opens \(clang, bpftool gen skeleton, libbpf\) and made a "
                     r"pin directory", out, re.M), out


@pytest.mark.requires("root")
def test_doctor_fails_without_privileges_and_says_how_to_fix():
    name = f"lkd{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        import pwd

        u = pwd.getpwnam(name)
        r = subprocess.run(["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--clear-groups",
                            "--inh-caps=-all", sys.executable, "-m", "labkit", "doctor"],
                           capture_output=True, text=True, timeout=120, cwd="/", env={**os.environ, "HOME": "/tmp"})
    finally:
        subprocess.run(["userdel", name], check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"FAIL\s+privileges\s+uid \d+ lacks CAP_BPF", r.stdout), r.stdout
    assert "fix: run as root" in r.stdout
    assert "the lab cannot run" in r.stdout


def test_cli_help_and_unknown_command():
    r = subprocess.run([sys.executable, "-m", "labkit", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "doctor" in r.stdout and "cleanup" in r.stdout
    r = subprocess.run([sys.executable, "-m", "labkit", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "frobnicate" in r.stderr
