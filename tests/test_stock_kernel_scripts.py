"""The stock-kernel runs' own commands, checked without booting anything: the
arm64 run is the same script with --arch=arm64, bad choices are refused before
anything is installed or built, and every script parses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "stock_kernel"


@pytest.mark.parametrize("script", ["run", "run-arm64", "build-image.sh", "guest-run.sh", "matrix"])
def test_scripts_parse(script):
    r = subprocess.run(["bash", "-n", str(HERE / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_run_arm64_is_run_with_its_arch():
    assert (HERE / "run-arm64").stat().st_mode & 0o111
    text = (HERE / "run-arm64").read_text()
    assert 'run" --arch=arm64 "$@"' in text
    r = subprocess.run([str(HERE / "run-arm64"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "--arch=amd64|arm64" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("args, says", [
    (["--arch=sparc"], "--arch must be amd64 or arm64, not 'sparc'"),
    (["--arch=arm64", "--accel=fast"], "--accel must be auto, kvm or tcg"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
    (["--kernel=4.19"], "--kernel must be 5.10, 6.1 or 6.12, not '4.19'"),
    (["--jobs=many"], "--jobs must be a number of workers (1-99), not 'many'"),
])
def test_bad_choices_are_refused_before_anything_happens(args, says):
    r = subprocess.run([str(HERE / "run"), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and says in r.stderr, r.stdout + r.stderr
    assert "building" not in r.stdout and "installing" not in r.stdout


@pytest.mark.parametrize("args, says", [
    (["--kernels=6.1,4.19"], "--kernels takes 5.10, 6.1 and 6.12, not '4.19'"),
    (["--parallel=0"], "--parallel must be 1-9, not '0'"),
    (["--frobnicate"], "unknown option '--frobnicate'"),
])
def test_matrix_refuses_bad_choices_before_anything_happens(args, says):
    r = subprocess.run([str(HERE / "matrix"), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and says in r.stderr, r.stdout + r.stderr
    assert "image" not in r.stdout


def test_build_image_refuses_an_unknown_kernel(tmp_path):
    r = subprocess.run([str(HERE / "build-image.sh"), str(tmp_path / "out"), str(HERE.parent.parent), "amd64", "4.19"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "KERNEL must be 5.10, 6.1 or 6.12, not '4.19'" in r.stderr, r.stderr
    assert not (tmp_path / "out.build").exists()


def test_build_image_refuses_an_unknown_arch(tmp_path):
    r = subprocess.run([str(HERE / "build-image.sh"), str(tmp_path / "out"), str(HERE.parent.parent), "mips"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "ARCH must be amd64 or arm64, not 'mips'" in r.stderr, r.stderr
    assert not (tmp_path / "out.build").exists()


def test_kvm_on_a_foreign_arch_is_refused():
    import platform

    other = "arm64" if platform.machine() == "x86_64" else "amd64"
    r = subprocess.run([str(HERE / "run"), f"--arch={other}", "--accel=kvm"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "--accel=kvm needs" in r.stderr, r.stdout + r.stderr
