"""Lesson 09's exercise checkers, tried with the half-fixes students write (each
judged incorrect, with a message that names the mistake; maps of another kind
than the tasks' hash map among them) and with right answers written in other
ways (BPF_CORE_READ_INTO, bpf_core_read, a hash map without preallocation,
tp_btf, a %%bpf --core object): real kernel, CO-RE objects compiled by clang and
loaded by libbpf, judged on processes the checkers start (q1: a parent forks
from a second thread, another has a child traced by a third process; q2: a
process's main thread ends alone before the process, a thread ends before
sys.exit(3)). When those processes fail, the verdict comes promptly and says so."""

from __future__ import annotations

import os
import re
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises import helpers
from labkit.exercises.lessons import lesson09

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

HEAD = '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_core_read.h>\n#include <bpf/bpf_tracing.h>\n'
TAIL = '\nchar LICENSE[] SEC("license") = "GPL";\n'


def hash_map(name: str, key: str = "u32", value: str = "u64", kind: str = "BPF_MAP_TYPE_HASH") -> str:
    return (f"struct {{ __uint(type, {kind}); __uint(max_entries, 10240); __type(key, {key}); "
            f"__type(value, {value}); }} {name} SEC(\".maps\");\n")


COUNT = """
    u64 one = 1, *n = bpf_map_lookup_elem(&execs, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&execs, &key, &one, BPF_NOEXIST);
    return 0;
}
"""


def q1(key_expr: str, hook: str = "tracepoint/sched/sched_process_exec", maps: str = "") -> str:
    return (HEAD + (maps or hash_map("execs")) + f'SEC("{hook}")\nint lk_count(void *ctx)\n{{\n'
            "    struct task_struct *task = (struct task_struct *)bpf_get_current_task();\n"
            f"    u32 key = {key_expr};\n" + COUNT + TAIL)


# ============================================================ q1: execs per parent
Q1_WRONG = [
    ("own pid as key", q1("bpf_get_current_pid_tgid() >> 32"), r"own pids.*real_parent"),
    ("task's own tgid", q1("BPF_CORE_READ(task, tgid)"), r"own pids"),
    ("parent's thread id", q1("BPF_CORE_READ(task, real_parent, pid)"), r"second thread.*->tgid"),
    ("one key for all", q1("0"), r"nothing under the parents' pids"),
    ("counts failed execs too", q1("BPF_CORE_READ(task, real_parent, tgid)", hook="tracepoint/syscalls/sys_enter_execve"),
     r"failed too.*sched_process_exec"),
    ("guessed offset with bpf_probe_read", HEAD + hash_map("execs") + """
SEC("tracepoint/sched/sched_process_exec")
int lk_count(void *ctx)
{
    char *task = (char *)bpf_get_current_task();
    void *parent = 0;
    u32 key = 0;
    bpf_probe_read_kernel(&parent, sizeof(parent), task + 1432);    /* real_parent, from some old kernel */
    bpf_probe_read_kernel(&key, sizeof(key), (char *)parent + 1420);
""" + COUNT + TAIL, r"nothing under the parents' pids|parent \d+ ran"),
    ("wrong map name", q1("BPF_CORE_READ(task, real_parent, tgid)", maps=hash_map("counts").replace("counts", "execs_by_parent")),
     r"no map called 'execs'"),
    ("key is u64", q1("BPF_CORE_READ(task, real_parent, tgid)", maps=hash_map("execs", key="u64")).replace("u32 key", "u64 key"),
     r"key is 8 bytes"),
    # ->parent is the tracer while the process is traced (a debugger, strace): the checker traces one child
    ("the tracer, not the real parent", q1("BPF_CORE_READ(task, parent, tgid)"),
     r"parent (\d+) ran 4 programs and 3 were counted; the child of parent \1 that another process \(pid \d+\) "
     r"traced with ptrace was counted under that tracer: task->parent is whoever traces a process.*real_parent, tgid"),
]
Q1_WRONG = [(c, a.replace("&execs,", "&execs_by_parent,") if c == "wrong map name" else a, e) for c, a, e in Q1_WRONG]

# the task's words: "a hash map execs". These count right, and passed before the checker held the map's kind
Q1_PERCPU_STEPS = HEAD + hash_map("execs", value="u32", kind="BPF_MAP_TYPE_PERCPU_HASH") + """
SEC("tracepoint/sched/sched_process_exec")
int lk_count(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task(), *parent = 0;
    u32 key = 0, one = 1;
    bpf_core_read(&parent, sizeof(parent), &task->real_parent);
    bpf_core_read(&key, sizeof(key), &parent->tgid);
    u32 *n = bpf_map_lookup_elem(&execs, &key);
    if (n)
        *n += 1;                          /* per-CPU: one writer per slot */
    else
        bpf_map_update_elem(&execs, &key, &one, BPF_NOEXIST);
    return 0;
}
""" + TAIL
Q1_WRONG += [
    ("a per-CPU hash", Q1_PERCPU_STEPS,
     r"^not yet: execs is a per-CPU hash \(BPF_MAP_TYPE_PERCPU_HASH\), and the task asks for a hash map execs \(a "
     r"per-CPU hash keeps one value per CPU.*\): declare __uint\(type, BPF_MAP_TYPE_HASH\) in execs$"),
    ("an LRU hash", q1("BPF_CORE_READ(task, real_parent, tgid)", maps=hash_map("execs", kind="BPF_MAP_TYPE_LRU_HASH")),
     r"^not yet: execs is an LRU hash \(BPF_MAP_TYPE_LRU_HASH\), and the task asks for a hash map execs"),
]
Q1_PARTS = {
    "parent's thread id": ({"execs is a hash map": True,
                            "counts one exec per program each parent started, under the parent's process id": False,
                            "a parent that forks from a second thread is still counted under its process id": False,
                            "a child being traced (ptrace) is still counted under the parent that forked it": True},
                           2 / 4),
    "the tracer, not the real parent": (
        {"execs is a hash map": True,
         "counts one exec per program each parent started, under the parent's process id": False,
         "a parent that forks from a second thread is still counted under its process id": True,
         "a child being traced (ptrace) is still counted under the parent that forked it": False}, 2 / 4),
    **{case: ({"execs is a hash map": False,
               "counts one exec per program each parent started, under the parent's process id": True,
               "a parent that forks from a second thread is still counted under its process id": True,
               "a child being traced (ptrace) is still counted under the parent that forked it": True}, 3 / 4)
       for case in ("a per-CPU hash", "an LRU hash")},
}

Q1_READ_INTO = q1("0").replace("    u32 key = 0;\n", """    u32 key = 0;
    BPF_CORE_READ_INTO(&key, task, real_parent, tgid);
""")
Q1_CORE_READ_STEPS = HEAD + """
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);     /* entries made on demand: still a hash map */
    __uint(max_entries, 4096);
    __uint(key_size, sizeof(u32));
    __uint(value_size, sizeof(u32));
} execs SEC(".maps");
SEC("tracepoint/sched/sched_process_exec")
int lk_count(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task(), *parent = 0;
    u32 key = 0, one = 1;
    bpf_core_read(&parent, sizeof(parent), &task->real_parent);
    bpf_core_read(&key, sizeof(key), &parent->tgid);
    u32 *n = bpf_map_lookup_elem(&execs, &key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        bpf_map_update_elem(&execs, &key, &one, BPF_NOEXIST);
    return 0;
}
""" + TAIL
Q1_TP_BTF = HEAD + hash_map("execs") + """
SEC("tp_btf/sched_process_exec")
int BPF_PROG(lk_count, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    u32 key = p->real_parent->tgid;       /* tp_btf: typed pointers, read directly */
""" + COUNT + TAIL
Q1_TASK_BTF = HEAD + hash_map("execs") + """
SEC("tracepoint/sched/sched_process_exec")
int lk_count(void *ctx)
{
    struct task_struct *task = bpf_get_current_task_btf();    /* a typed pointer: read it directly */
    u32 key = task->real_parent->tgid;
""" + COUNT + TAIL
Q1_RIGHT = [
    ("BPF_CORE_READ_INTO", Q1_READ_INTO),
    ("bpf_get_current_task_btf, direct read", Q1_TASK_BTF),
    ("bpf_core_read step by step, key_size and value_size, no prealloc", Q1_CORE_READ_STEPS),
    ("tp_btf with direct pointer reads", Q1_TP_BTF),
]

# ============================================================ q2: exit codes
def q2(body: str, hook: str = "tracepoint/sched/sched_process_exit", key: str = "bpf_get_current_pid_tgid() >> 32",
       value: str = "u32", first: str = "", flags: str = "BPF_ANY", kind: str = "BPF_MAP_TYPE_HASH") -> str:
    return (HEAD + hash_map("exit_codes", value=value, kind=kind) + f'SEC("{hook}")\nint lk_exit(void *ctx)\n{{\n'
            "    struct task_struct *task = (struct task_struct *)bpf_get_current_task();\n"
            + (f"    {first}\n" if first else "") +
            f"    u32 pid = {key};\n    {value} code = {body};\n"
            f"    bpf_map_update_elem(&exit_codes, &pid, &code, {flags});\n    return 0;\n}}\n" + TAIL)


Q2_EXIT_GROUP = HEAD + hash_map("exit_codes") .replace("u64", "u32") + """
struct exit_group_args { u64 common; long nr; long error_code; };
SEC("tracepoint/syscalls/sys_enter_exit_group")
int lk_exit(struct exit_group_args *args)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 code = args->error_code;
    bpf_map_update_elem(&exit_codes, &pid, &code, BPF_ANY);
    return 0;
}
""" + TAIL
Q2_WRONG = [
    ("status only (shifted)", q2("BPF_CORE_READ(task, exit_code) >> 8"), r"status passed to exit\(\), not task->exit_code"),
    ("exit_group's argument", Q2_EXIT_GROUP, r"killed by SIGTERM\) has no entry.*never calls exit"),
    ("exit_signal instead", q2("BPF_CORE_READ(task, exit_signal)"), r"recorded 17, task->exit_code is"),
    ("parent's exit code", q2("BPF_CORE_READ(task, real_parent, exit_code)"), r"recorded 0, task->exit_code is 768"),
    ("at exec, not exit", q2("BPF_CORE_READ(task, exit_code)", hook="tracepoint/sched/sched_process_exec"),
     r"recorded 0, task->exit_code is 768"),
    # a thread is not a process: the main thread ends first (exit(7)), the process later (os._exit(11))
    ("keyed by the thread id", q2("BPF_CORE_READ(task, exit_code)", key="(u32)bpf_get_current_pid_tgid()"),
     r"under its pid you recorded 1792, the exit code of its main thread alone \(thread \d+\), and the process's 2816 "
     r"went under the thread id \d+ of the thread that ended it: you keyed on the thread id.*>> 32, or task->tgid"),
    ("task->pid as the key", q2("BPF_CORE_READ(task, exit_code)", key="BPF_CORE_READ(task, pid)"),
     r"you keyed on the thread id \(the lower 32 bits of bpf_get_current_pid_tgid\(\), task->pid\)"),
    ("the main thread's end only", q2("BPF_CORE_READ(task, exit_code)", key="BPF_CORE_READ(task, tgid)",
                                      first="if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid)) return 0;"),
     r"recorded 1792, the exit code of its main thread, which ended first; the process ended later, with its last "
     r"thread \(2816\)"),
    ("the first thread's end kept", q2("BPF_CORE_READ(task, exit_code)", flags="BPF_NOEXIST"),
     r"sys\.exit\(3\)\): recorded 0, the exit code of a thread that ended before the process.*BPF_ANY, not BPF_NOEXIST"),
    # the task's own words: the value is a u32
    ("a u64 value", q2("BPF_CORE_READ(task, exit_code)", key="BPF_CORE_READ(task, tgid)", value="u64"),
     r"exit_codes's value is 8 bytes: the task asks for a u32"),
    # the task's words: "a hash map exit_codes" (these record right, and passed before the checker held the kind)
    ("an LRU hash", q2("BPF_CORE_READ(task, exit_code)", key="BPF_CORE_READ(task, tgid)", kind="BPF_MAP_TYPE_LRU_HASH"),
     r"^not yet: exit_codes is an LRU hash \(BPF_MAP_TYPE_LRU_HASH\), and the task asks for a hash map exit_codes \(an "
     r"LRU hash evicts .*\): declare __uint\(type, BPF_MAP_TYPE_HASH\) in exit_codes$"),
]
_ENDS = ["sys.exit(3)", "sys.exit(0)", "os._exit(42) with a second thread alive", "killed by SIGTERM",
         "os._exit(11) from a second thread, after its main thread ended alone with exit(7)"]
Q2_PARTS = {
    "status only (shifted)": ({"exit_codes is a hash map": True,
                               **{f"records task->exit_code of a process that ends with {e}": e == "sys.exit(0)"
                                  for e in _ENDS}}, 2 / 6),
    "keyed by the thread id": ({"exit_codes is a hash map": True,
                                **{f"records task->exit_code of a process that ends with {e}":
                                   not e.startswith("os._exit(11)") for e in _ENDS}}, 5 / 6),
    **{case: ({"exit_codes is a hash map": False,
               **{f"records task->exit_code of a process that ends with {e}": True for e in _ENDS}}, 5 / 6)
       for case in ("an LRU hash",)},
}
Q2_RIGHT = [
    ("tgid from the task, u32 value", q2("BPF_CORE_READ(task, exit_code)", key="BPF_CORE_READ(task, tgid)")),
    ("the group leader's pid, an int value", q2("BPF_CORE_READ(task, exit_code)",
                                                key="BPF_CORE_READ(task, group_leader, pid)", value="int")),
    ("tp_btf, direct read", HEAD + hash_map("exit_codes", value="u32") + """
SEC("tp_btf/sched_process_exit")
int BPF_PROG(lk_exit, struct task_struct *p)
{
    u32 pid = p->tgid, code = p->exit_code;
    bpf_map_update_elem(&exit_codes, &pid, &code, BPF_ANY);
    return 0;
}
""" + TAIL),
]


def run(q, answer):
    res = q.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.fixture(scope="module")
def ex():
    return lesson09.build()


def judged_wrong(q, case, answer, expected, parts):
    res = run(q, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    if case in parts:
        want, score = parts[case]
        assert {p.name: p.passed for p in res.parts} == want
        assert res.score == pytest.approx(score, abs=1e-3)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q1, case, answer, expected, Q1_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q1_RIGHT])
def test_q1_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q1, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q2, case, answer, expected, Q2_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q2_RIGHT])
def test_q2_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q2, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


def test_the_references_are_correct_as_the_checkers_run_them(ex):
    for q in (ex.q1, ex.q2):
        res = q.check_solution()
        assert res.correct, res.message


def test_core_cell_objects_are_correct_and_references_are_refused(ex):
    """The student's %%bpf --core cells; the checkers load their own copies. A cell
    holding the reference text is not an answer."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        sh.run_cell_magic("bpf", "my_execs --core", Q1_READ_INTO)
        sh.run_cell_magic("bpf", "my_exits --core", Q2_RIGHT[0][1])
        assert isinstance(sh.user_ns["my_execs"], labkit.lab.CoreObject)
        assert ex.q1.check(sh.user_ns["my_execs"]).status == "correct"
        assert ex.q2.check(sh.user_ns["my_exits"]).status == "correct"
        assert sh.user_ns["my_execs"].attached_programs(), "the student's own object stays attached"
        ref = labkit.exercises.framework.snippet_text("solution_09_exit_codes.bpf")
        sh.run_cell_magic("bpf", "my_copy --core", ref)
        res = ex.q2.check(sh.user_ns["my_copy"])
        assert res.status == "incorrect" and "reference solution, not your answer" in res.message
        res = ex.q1.check("solution_09_execs_by_parent")
        assert res.status == "incorrect" and "reference solution" in res.message
    finally:
        lab.close()
    assert labkit.live_attachments() == []


def test_a_bcc_answer_is_refused_saying_so_with_clangs_lines(ex):
    res = run(ex.q1, "BPF_HASH(execs, u32, u64);\nint lk_x(void *ctx) { return 0; }\n")
    assert res.status == "incorrect" and re.search(r"that is BCC C.*ex09_q1:1:10: error", res.message, re.S), res.message


def test_a_compile_error_points_at_the_answers_line(ex):
    res = run(ex.q2, q2("BPF_CORE_READ(task, exit_cod)"))
    line = next(i for i, ln in enumerate(q2("BPF_CORE_READ(task, exit_cod)").splitlines(), 1) if "exit_cod)" in ln)
    assert res.status == "incorrect" and re.search(rf"does not compile.*ex09_q2:{line}:\d+: error: no member named "
                                                   "'exit_cod'", res.message, re.S), res.message


def test_a_bcc_program_is_not_a_core_answer(ex):
    with labkit.Lab() as lab:
        prog = lab.load("BPF_HASH(execs, u32, u64);\nint lk_x(void *ctx) { return 0; }\n", name="bcc_answer")
        res = run(ex.q1, prog)
    assert res.status == "incorrect" and "%%bpf --core" in res.message, res.message


# ------------------------------------------------------------ the checker's own processes failing
from fixtures.timing import within  # noqa: E402


# a parent that, told to go, says something else and waits on its stdin: the old checker read its stderr to
# the end, which a process waiting on its stdin never closes
_SAYS_OTHER = """
import sys
ok, bad, threaded, traced = %r
print("ready", flush=True)
sys.stdin.readline()
sys.stderr.write("fork: this parent was told to fail\\n"); sys.stderr.flush()
print("no programs today", flush=True)
sys.stdin.read()
"""
# processes that never end when told to
_NEVER_ENDS = "import sys, time; print('ready', flush=True); sys.stdin.readline(); time.sleep(600)  # %r"


def test_q1_a_parent_that_fails_gives_a_verdict_promptly_that_says_so(ex, monkeypatch):
    monkeypatch.setattr(lesson09, "_PARENT", _SAYS_OTHER)
    res, took = within(60, lambda: run(ex.q1, Q1_READ_INTO))
    assert took < 30, f"{took:.0f} s"
    m = re.search(
        r"^HelperFailed: the checker's helper process (\d+) \(parent 1, which runs programs\) printed 'no programs "
        r"today' where the checker waited for what it ran \(JSON\), and it exited with status 0.*run the check again.*"
        r"Its last words on stderr:\nfork: this parent was told to fail$", res.message, re.S)
    assert res.status == "incorrect" and m, res.message
    assert not os.path.exists(f"/proc/{m.group(1)}"), "the failed parent was left behind"


def test_q2_processes_that_never_end_give_a_verdict_promptly_that_says_so(ex, monkeypatch):
    monkeypatch.setattr(lesson09, "_ENDER", _NEVER_ENDS)
    monkeypatch.setattr(helpers, "HELPER_TIMEOUT_S", 3.0)
    res, took = within(60, lambda: run(ex.q2, Q2_RIGHT[0][1]))
    assert took < 30, f"{took:.0f} s"
    m = re.search(
        r"^HelperFailed: the checker's helper process (\d+) \(a process that ends with sys\.exit\(3\)\) did not end "
        r"within 3 s, and the checker killed it", res.message)
    assert res.status == "incorrect" and m, res.message
    assert not os.path.exists(f"/proc/{m.group(1)}"), "the process was left behind"
