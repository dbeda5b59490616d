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


# ------------------------------------------------------------------ a positive return: refused on every kernel
POSITIVE = {
    "return EPERM, the minus forgotten": ("file_open", "struct file *file",
                                          "if (bpf_get_current_cgroup_id() == LK12_CGROUP &&\n"
                                          "        file->f_inode->i_ino == LK12_INO)\n        return EPERM;\n"
                                          "    return 0;", [1]),
    "a comparison's truth returned": ("bprm_check_security", "struct linux_binprm *bprm",
                                      "return bpf_get_current_cgroup_id() == LK12_CGROUP &&\n"
                                      "        bprm->file->f_inode->i_ino == LK12_INO;", [1]),
    "EACCES through a variable": ("file_open", "struct file *file",
                                  "int verdict = 0;\n    if (bpf_get_current_cgroup_id() == LK12_CGROUP)\n"
                                  "        verdict = EACCES;\n    return verdict;", [13]),
}


def _lsm_text(hook: str, args: str, body: str) -> str:
    return ("#include <linux/fs.h>\n#include <linux/binfmts.h>\n#include <linux/errno.h>\n"
            f"LSM_PROBE({hook}, {args})\n{{\n    {body}\n}}\n")


@pytest.mark.parametrize("case", list(POSITIVE))
def test_a_positive_return_is_refused_before_anything_is_attached(lab, case):
    """On every kernel (checked before the kernel is asked whether it runs BPF LSM): the error names the
    function, the values and the fix, and nothing is loaded or attached."""
    hook, args, body, values = POSITIVE[case]
    with pytest.raises(lsm.LsmReturnError) as e:
        lab.load(_lsm_text(hook, args, body), name="lk_positive", defines={"LK12_CGROUP": 1, "LK12_INO": 1})
    assert e.value.values == tuple(values) and isinstance(e.value, labkit.AttachError)
    msg = str(e.value)
    assert f"lsm__{hook}" in msg and f"returns {', '.join(map(str, values))}" in msg and "-EPERM" in msg, msg
    assert labkit.live_attachments() == [] and not [p for p in lab._programs if not p.closed]


def test_the_exercises_judge_a_positive_return_incorrect_and_say_why():
    from labkit.exercises.lessons import lesson12
    ex = lesson12.build()
    for q, key in ((ex.q1, "a comparison's truth returned"), (ex.q2, "return EPERM, the minus forgotten")):
        hook, args, body, values = POSITIVE[key]
        res = q.check(_lsm_text(hook, args, body))
        assert res.status == "incorrect", (q.id, res.message)
        assert "LsmReturnError" in res.message and "-EPERM" in res.message, res.message
    assert labkit.live_attachments() == []


def test_zero_and_negative_returns_pass_the_return_check(lab):
    """What labkit's check lets through: 0, a negative errno, and a value it cannot know (read from a map). A
    kernel whose verifier checks the value itself (6.12 and later: lsm.return_check()) refuses the map's
    value, and labkit says so as an LsmRangeError (the range, what to return instead), attaching nothing."""
    text = ("#include <linux/fs.h>\n#include <linux/errno.h>\nBPF_ARRAY(verdicts, int, 1);\n"
            "LSM_PROBE(file_open, struct file *file)\n{\n    int k = 0;\n    int *v = verdicts.lookup(&k);\n"
            "    if (bpf_get_current_cgroup_id() == NO_CGROUP)\n        return -EACCES;\n    return v ? *v : 0;\n}\n")
    checks = lsm.return_check()
    try:
        # no cgroup has that id (1 is the root cgroup's, where a guest's test process may well run)
        lab.load(text, name="lk_negative", defines={"NO_CGROUP": "0xfffffffffffffffeULL"})
    except labkit.NotSupportedError as e:          # no BPF LSM here: the return check passed, the kernel cannot
        assert "BPF LSM" in str(e) and not lsm.available()[0] and checks is None
        assert labkit.live_attachments() == []
    except lsm.LsmRangeError as e:                 # the kernel's own check refused the map's value
        assert checks is not None and checks["range"], checks
        assert isinstance(e, labkit.VerifierError) and not e.negation and "[-4095, 0]" in str(e)
        assert "lk_negative" in str(e) and "Return constants only" in str(e) and "At program exit" in e.log
        assert labkit.live_attachments() == []
    else:
        assert lsm.available()[0] and checks is not None and not checks["range"], checks
        assert len(labkit.live_attachments()) == 1
