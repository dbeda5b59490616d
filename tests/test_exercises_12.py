"""Lesson 12's exercise checkers, tried with the mistakes students make (each judged incorrect, with a
message that names the mistake) and with right answers written other ways: real kernel, BPF LSM programs
scoped to a cgroup of the lab's own (the sandbox, a) and judged by what processes in it, beside it (b) and
outside it (the checker's own, through labkit's guard) could do. Where the kernel runs no BPF LSM program
(the lab VM's 6.18 refuses the load) these skip, saying why: tests/stock_kernel/run proves them."""

from __future__ import annotations

import re

import pytest

from labkit.exercises.lessons import lesson12
from labkit.hooks import lsm as lsm_hook
from labkit.programs.compile import compile_c

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "bpf_lsm")]

HEAD = "#include <linux/fs.h>\n#include <linux/binfmts.h>\n#include <linux/errno.h>\n"
CGROUP = "bpf_get_current_cgroup_id() == LK12_CGROUP"
EXEC_INO = "bprm->file->f_inode->i_ino == LK12_INO"
OPEN_INO = "file->f_inode->i_ino == LK12_INO"


def lsm(hook: str, args: str, *tests: str, ret: str = "-EPERM") -> str:
    cond = " && ".join(tests) or "1"
    return HEAD + f"LSM_PROBE({hook}, {args})\n{{\n    if ({cond})\n        return {ret};\n    return 0;\n}}\n"


def q1(*tests: str, **kw) -> str:
    return lsm("bprm_check_security", "struct linux_binprm *bprm", *tests, **kw)


def q2(*tests: str, **kw) -> str:
    return lsm("file_open", "struct file *file", *tests, **kw)


def refused_for_a_negation(answer: str) -> bool:
    """Whether this kernel's verifier refuses ``answer`` for its return value: it checks the range and does not
    follow a negation (lsm.return_check(), Debian's 6.12), and clang compiled the answer's verdict as one (a
    BPF_NEG among its instructions: "cond ? -EPERM : 0" is minus the condition, EPERM being 1). Read from the
    compiled instructions, not from the checker's verdict."""
    rc = lsm_hook.return_check()
    if not rc or not rc["range"] or rc["negation"]:
        return False
    hooks = re.findall(r"LSM_PROBE\((\w+),", answer)
    if not hooks:
        return False
    c = compile_c(answer, "a test's answer", ["-DLK12_CGROUP=1", "-DLK12_INO=1"], need="tracing")
    try:
        opcodes = b"".join(c.bpf.dump_func(f"lsm__{h}".encode())[::8] for h in hooks)
    finally:
        c.bpf.cleanup()
    return 0x87 in opcodes or 0x84 in opcodes


NEGATION_REFUSED = r"^the verifier refused the program: this kernel's verifier checks .*r0 = -\(condition\).*asm volatile"


def judged(res, answer: str, message: str | None) -> None:
    """``res`` is incorrect with ``message`` (None: correct), or, where this kernel refuses the answer's
    negation, incorrect with the verifier's reason and the way round."""
    if refused_for_a_negation(answer):
        assert res.status == "incorrect" and re.search(NEGATION_REFUSED, res.message, re.S), res.message
    elif message is None:
        assert res.status == "correct", res.message
    else:
        assert res.status == "incorrect", res.message
        assert re.search(message, res.message, re.S), res.message


Q1_WRONG = [
    ("no cgroup test: machine-wide", q1(EXEC_INO),
     r"^machine-wide: your program refused, to the checker's own process.*forbidden.*detached it \d+ ms"),
    ("every exec in the sandbox", q1(CGROUP),
     r"another program .* could not run in the sandbox either.*LK12_INO"),
    ("EACCES, not EPERM", q1(CGROUP, EXEC_INO, ret="-EACCES"), r"refused, but with EACCES \(13\).*-EPERM"),
    ("returns 0: nothing refused", q1(CGROUP, EXEC_INO, ret="0"), r"the program ran in the sandbox.*nothing was refused"),
    ("the pid instead of the cgroup", q1("(bpf_get_current_pid_tgid() >> 32) == LK12_CGROUP", EXEC_INO),
     r"nothing was refused"),
    ("file_open instead of an exec hook",
     lsm("file_open", "struct file *file", CGROUP, OPEN_INO),
     r"reading the program's file in the sandbox was refused too.*bprm_check_security"),
    ("a plain function, not LSM_PROBE", HEAD + "int lk_deny(void *ctx) { return -EPERM; }\n",
     r"no LSM_PROBE function"),
]
Q1_RIGHT = [
    ("bprm_creds_for_exec, early returns", HEAD + "LSM_PROBE(bprm_creds_for_exec, struct linux_binprm *bprm)\n{\n"
     "    u64 cg = bpf_get_current_cgroup_id();\n    if (cg != LK12_CGROUP)\n        return 0;\n"
     "    struct file *f = bprm->file;\n    return f->f_inode->i_ino == LK12_INO ? -EPERM : 0;\n}\n"),
    ("the inode through the dentry", q1(CGROUP, "bprm->file->f_path.dentry->d_inode->i_ino == LK12_INO")),
]

Q2_WRONG = [
    ("no cgroup test: machine-wide", q2(OPEN_INO), r"machine-wide: .*opening secret.*bpf_get_current_cgroup_id"),
    ("every open in the sandbox", q2(CGROUP), r"another file failed too.*every open there is refused"),
    ("EACCES, not EPERM", q2(CGROUP, OPEN_INO, ret="-EACCES"), r"with EACCES \(13\)"),
    ("file_permission: the read, not the open",
     lsm("file_permission", "struct file *file, int mask", CGROUP, OPEN_INO),
     r"the open worked and the read was refused.*file_permission.*file_open"),
    ("refuses reading only", q2(CGROUP, OPEN_INO, "(file->f_mode & FMODE_READ)"),
     r"opened for writing, it was not refused.*f_mode"),
    ("by the file's name", HEAD + "LSM_PROBE(file_open, struct file *file)\n{\n    char name[8] = {};\n"
     "    if (bpf_get_current_cgroup_id() != LK12_CGROUP)\n        return 0;\n"
     "    bpf_probe_read_kernel_str(name, sizeof(name), file->f_path.dentry->d_name.name);\n"
     "    if (name[0] == 's' && name[1] == 'e' && name[2] == 'c' && name[3] == 'r' && name[4] == 'e' &&\n"
     "        name[5] == 't' && name[6] == 0)\n        return -EPERM;\n    return 0;\n}\n",
     r"hard link.*not refused.*Test the inode"),
]
Q2_RIGHT = [
    ("nested ifs, the dentry's inode", HEAD + "LSM_PROBE(file_open, struct file *file)\n{\n"
     "    if (bpf_get_current_cgroup_id() == LK12_CGROUP) {\n"
     "        if (file->f_path.dentry->d_inode->i_ino == LK12_INO)\n            return -EPERM;\n    }\n"
     "    return 0;\n}\n"),
    ("the inode in a variable", HEAD + "LSM_PROBE(file_open, struct file *file)\n{\n"
     "    struct inode *inode = file->f_inode;\n    unsigned long ino = inode->i_ino;\n"
     "    int mine = bpf_get_current_cgroup_id() == LK12_CGROUP;\n    return mine && ino == LK12_INO ? -EPERM : 0;\n}\n"),
    # the same, with -EPERM kept from the compiler (what labkit tells a student whose kernel refuses the above):
    # it loads on every kernel that runs BPF LSM programs
    ("the inode in a variable, -EPERM out of the compiler's reach", HEAD + "LSM_PROBE(file_open, struct file *file)\n{\n"
     "    unsigned long ino = file->f_inode->i_ino;\n    int mine = bpf_get_current_cgroup_id() == LK12_CGROUP;\n"
     "    int deny = -EPERM;\n    asm volatile(\"\" : \"+r\"(deny));\n    return mine && ino == LK12_INO ? deny : 0;\n}\n"),
]


@pytest.mark.parametrize("name,answer,message", Q1_WRONG, ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong(name, answer, message):
    judged(lesson12.build().q1.check(answer), answer, message)


@pytest.mark.parametrize("name,answer", Q1_RIGHT, ids=[r[0] for r in Q1_RIGHT])
def test_q1_right(name, answer):
    judged(lesson12.build().q1.check(answer), answer, None)


@pytest.mark.parametrize("name,answer,message", Q2_WRONG, ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong(name, answer, message):
    judged(lesson12.build().q2.check(answer), answer, message)


@pytest.mark.parametrize("name,answer", Q2_RIGHT, ids=[r[0] for r in Q2_RIGHT])
def test_q2_right(name, answer):
    judged(lesson12.build().q2.check(answer), answer, None)


def test_partial_credit():
    res = lesson12.build().q1.check(Q1_WRONG[5][1])       # file_open: refuses reading the file too: 4 of 5 parts
    assert [p.passed for p in res.parts] == [True, True, True, False, True] and res.score == pytest.approx(0.8)


def test_references_pass_and_are_not_answers():
    lesson = lesson12.build()
    assert lesson.q1.check_solution().status == "correct"
    assert lesson.q2.check_solution().status == "correct"
    res = lesson.q2.check("solution_12_deny_open")
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message
