"""BPF LSM on the real kernel (labkit.hooks.lsm): a program scoped to a cgroup of the lab's own refuses
there only, and the guard detaches at once a program that refuses outside the lab's cgroups (a deliberately
machine-wide one that refuses the open of one temporary file, for everyone). Where the kernel runs no BPF
LSM program, loading one is a NotSupportedError that says why; the rest skip (tests/stock_kernel/run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import labkit
from labkit.hooks import lsm

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

DENY = """
#include <linux/fs.h>
#include <linux/errno.h>
LSM_PROBE(file_open, struct file *file)
{
    if (file->f_inode->i_ino != LK_INO)
        return 0;
    return LK_CGROUP == 0 || bpf_get_current_cgroup_id() == LK_CGROUP ? -EPERM : 0;
}
"""
OPEN = "import os, sys\ntry:\n    os.close(os.open(sys.argv[1], os.O_RDONLY)); print(0)\nexcept OSError as e:\n    print(e.errno)"


def test_without_bpf_lsm_a_load_says_why(tmp_path, lab):
    ok, why = lsm.available()
    if ok:
        pytest.skip("this kernel runs BPF LSM programs")
    with pytest.raises(labkit.NotSupportedError, match="BPF LSM") as e:
        lab.load(DENY, defines={"LK_INO": 1, "LK_CGROUP": 1})
    assert why in str(e.value) and "labkit doctor" in str(e.value)
    assert labkit.live_attachments() == []


@pytest.mark.requires("bpf_lsm")
def test_the_guard_detaches_a_machine_wide_program_at_once(tmp_path, lab):
    secret = tmp_path / "secret"
    secret.write_text("x")
    with pytest.raises(lsm.MachineWideError) as e:
        lab.load(DENY, name="lk_machine_wide", defines={"LK_INO": secret.stat().st_ino, "LK_CGROUP": 0},
                 outside={"open": [str(secret)]})
    err = e.value
    assert isinstance(err, labkit.AttachError)
    assert err.refused == [{"act": "open", "path": str(secret), "errno": 1,
                            "error": "EPERM: Operation not permitted"}]
    assert 0 < err.attached_ms < 10_000 and "detached it" in str(err) and "bpf_get_current_cgroup_id()" in str(err)
    # nothing of it is left: the file opens again, for this process and for any other
    assert labkit.live_attachments() == []
    assert secret.read_text() == "x"
    assert subprocess.run([sys.executable, "-c", OPEN, str(secret)], capture_output=True, text=True).stdout == "0\n"


@pytest.mark.requires("bpf_lsm")
def test_a_program_scoped_to_a_lab_cgroup_passes_the_guard_and_refuses_there_only(tmp_path, lab):
    secret = tmp_path / "secret"
    secret.write_text("x")
    with labkit.Cgroup("lk12-test") as cg:
        prog = lab.load(DENY, name="lk_scoped", defines={"LK_INO": secret.stat().st_ino, "LK_CGROUP": cg.id},
                        outside={"open": [str(secret)]})
        assert [p for a in prog.auto_attachments for p in a.probes] == [("lsm", "file_open", "lsm__file_open")]
        inside = cg.run([sys.executable, "-c", OPEN, str(secret)], capture_output=True, text=True, timeout=60)
        outside = subprocess.run([sys.executable, "-c", OPEN, str(secret)], capture_output=True, text=True, timeout=60)
        assert (inside.stdout, outside.stdout) == ("1\n", "0\n")
        for a in prog.auto_attachments:
            a.detach()
    assert labkit.live_attachments() == []
    assert cg.closed and not os.path.exists(cg.path)
