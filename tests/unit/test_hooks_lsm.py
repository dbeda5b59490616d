"""labkit.hooks.lsm's pure parts: where the kernel's LSM list is read from, and what the guard tries (the
kernel side, on a kernel that runs BPF LSM programs: tests/test_exercises_12.py and lesson 12)."""

from __future__ import annotations

import sys

import pytest

import labkit
from labkit.hooks.lsm import _TRUE, active_lsms, guard_acts

NOWHERE = "/nonexistent/lsm"


def test_securityfs_first(tmp_path):
    f = tmp_path / "lsm"
    f.write_text("lockdown,capability,landlock,yama,apparmor,bpf")
    assert active_lsms(f, cmdline="lsm=selinux", config='CONFIG_LSM="x"') == (
        ["lockdown", "capability", "landlock", "yama", "apparmor", "bpf"], str(f))


def test_then_the_command_line_then_the_config():
    from pathlib import Path

    got = active_lsms(Path(NOWHERE), cmdline="console=ttyS0 lsm=landlock,lockdown,yama,bpf quiet", config="")
    assert got == (["landlock", "lockdown", "yama", "bpf"], "lsm= on the kernel command line")
    # what follows " -- " is init's, not the kernel's
    got = active_lsms(Path(NOWHERE), cmdline="quiet -- lsm=bpf", config='CONFIG_LSM="lockdown,yama,apparmor"\n')
    assert got == (["lockdown", "yama", "apparmor"], "CONFIG_LSM, the list the kernel was built with")
    assert active_lsms(Path(NOWHERE), cmdline="", config="")[0] is None


def test_the_guard_tries_the_callers_acts_first_opens_before_execs():
    assert guard_acts() == [("open", sys.executable), ("exec", _TRUE)]
    acts = guard_acts({"exec": [_TRUE], "open": ["/proc/version"]})
    assert acts == [("open", "/proc/version"), ("exec", _TRUE), ("open", sys.executable)]


@pytest.mark.parametrize("bad, says", [
    (["/bin/true"], "outside must be a dict"),
    ({"run": ["/bin/true"]}, "outside must be a dict"),
    ({"open": "/proc/version"}, "must be a list of paths"),
    ({"open": [NOWHERE]}, "which is not a file"),
    ({"exec": ["/proc/version"]}, "which is not executable"),
])
def test_bad_outside_is_an_argument_error(bad, says):
    with pytest.raises(labkit.ArgumentError, match=says):
        guard_acts(bad)
