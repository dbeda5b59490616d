"""Lesson 06's exercise checkers, tried with the half-fixes students write (each
judged incorrect, with a message that names the mistake) and with right answers
written in other ways: real kernel, two children pinned to two CPUs hammering
getppid() (q1; forked by a second thread of the checker, one more by its main
thread), getpgid() asked about pids no process has (q2; by the checker's main
thread and a second one)."""

from __future__ import annotations

import re
import subprocess

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises.lessons import lesson06

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

HEAD = '#include "labkit.h"\nstruct sys_exit_args { u64 common; s32 nr; u32 pad; s64 ret; };\n'


def q1(decl: str, body: str, filt: str = "if (args->ret != LK_PARENT_PID) return 0;") -> str:
    return HEAD + decl + "\nint on_exit(struct sys_exit_args *args)\n{\n    " + filt + "\n    u32 zero = 0;\n    " \
        + body + "\n    return 0;\n}\n"


Q1_WRONG = [
    ("plain +=", q1("BPF_ARRAY(count, u64, 1);", "u64 *v = count.lookup(&zero); if (v) *v += 1;"),
     r"lost while two CPUs counted at once.*atomic add"),
    ("bcc increment()", q1("BPF_ARRAY(count, u64, 1);", "count.increment(0);"), r"lost while two CPUs"),
    ("hash lookup without init", q1("BPF_HASH(count, u32, u64);",
                                    "u64 *v = count.lookup(&zero); if (v) __sync_fetch_and_add(v, 1);"),
     r"nothing at key 0.*starts empty"),
    ("no filter", q1("BPF_ARRAY(count, u64, 1);", "count.atomic_increment(0);", filt=""),
     r"other processes were counted"),
    ("filter inverted", q1("BPF_ARRAY(count, u64, 1);", "count.atomic_increment(0);",
                           filt="if (args->ret == LK_PARENT_PID) return 0;"), r"filter inverted"),
    ("one CPU only", q1("BPF_ARRAY(count, u64, 1);",
                        "if (bpf_get_smp_processor_id() == 0) count.atomic_increment(0);"), r"far more than two CPUs racing lose"),
]
# The parent read from the task instead of getppid()'s answer. BCC reads task_struct at the offsets of the
# kernel headers it compiles with, which are not this kernel's where its own headers are missing (a
# stand-in's offsets are wrong); so these answers read task->real_parent->pid / ->tgid at the offsets the
# running kernel's BTF gives: what `task->real_parent->pid` compiles to where the headers match.
def parent_field(field: str, offsets: dict[str, int]) -> str:
    read = ("char *task = (char *)bpf_get_current_task(), *parent = 0;\n    u32 id = 0;\n"
            f"    bpf_probe_read_kernel(&parent, sizeof(parent), task + {offsets['real_parent']});   // task->real_parent\n"
            f"    bpf_probe_read_kernel(&id, sizeof(id), parent + {offsets[field]});   // ->{field}\n"
            "    if (id != LK_PARENT_PID) return 0;")
    return q1("BPF_ARRAY(count, u64, 1);", "count.atomic_increment(0);", filt=read)


Q1_TASK = [
    # the parent's thread id: the children a second thread of the checker forked are lost
    ("wrong", "the parent's thread id (real_parent->pid)", "pid",
     r"counted 1000 calls: those of the one child forked by the checker's main thread \(its thread id is the process "
     r"id\), not the \d+ of the children its second thread \(thread \d+\) forked.*task->real_parent->pid.*"
     r"real_parent->tgid holds"),
    ("right", "the parent's process id (real_parent->tgid)", "tgid", None),
]


@pytest.fixture(scope="module")
def task_offsets() -> dict[str, int]:
    """task_struct's member offsets (bytes) in the running kernel's BTF."""
    try:
        raw = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                             capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("bpftool cannot dump the kernel's BTF")
    body = raw.split("STRUCT 'task_struct' size=", 1)[1].split("\n[", 1)[0]
    offsets = {m.group(1): int(m.group(2)) // 8 for m in re.finditer(r"'(\w+)' type_id=\d+ bits_offset=(\d+)", body)}
    if not {"real_parent", "pid", "tgid"} <= set(offsets):
        pytest.skip("the kernel's BTF has no task_struct offsets for real_parent, pid and tgid")
    return offsets


Q1_RIGHT = [
    ("atomic_increment", q1("BPF_ARRAY(count, u64, 1);", "count.atomic_increment(0);")),
    ("per-CPU increment", q1("BPF_PERCPU_ARRAY(count, u64, 1);", "count.increment(0);")),
    ("hash, lookup_or_try_init + lock_xadd", q1("BPF_HASH(count, u32, u64, 4);",
        "u64 init = 0; u64 *v = count.lookup_or_try_init(&zero, &init); if (v) lock_xadd(v, 1);")),
    ("TRACEPOINT_PROBE", '#include "labkit.h"\nBPF_ARRAY(count, u64, 1);\n'
     "TRACEPOINT_PROBE(syscalls, sys_exit_getppid)\n{\n    if (args->ret == LK_PARENT_PID)\n"
     "        count.atomic_increment(0);\n    return 0;\n}\n"),
]

HEAD2 = '#include "labkit.h"\nstruct a { u64 common; s32 nr; u32 pad; u64 pid; };\n'


def q2(decl: str, body: str, filt: str = "if (!lk_wanted(bpf_get_current_pid_tgid() >> 32)) return 0;") -> str:
    return HEAD2 + decl + "\nint on_ask(struct a *args)\n{\n    " + filt + "\n    u32 pid = args->pid;\n    " \
        + body + "\n    return 0;\n}\n"


INIT = "u64 zero = 0; u64 *n = recent.lookup_or_try_init(&pid, &zero); if (n) __sync_fetch_and_add(n, 1);"
Q2_WRONG = [
    ("plain hash of 8", q2("BPF_HASH(recent, u32, u64, 8);", "recent.atomic_increment(pid);"),
     r"newest pid .* missing.*refuses new keys"),
    ("LRU too big", q2('BPF_TABLE("lru_hash", u32, u64, recent, 1024);', INIT), r"holds 3\d entries.*newest 8"),
    ("LRU with increment()", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);', "recent.increment(pid);"),
     r"stayed empty.*only in a BPF_HASH"),
    ("LRU, value always 1", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);',
                               "u64 one = 1; recent.update(&pid, &one);"), r"asked about 3 times and the map says 1"),
    ("no filter", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);', INIT, filt=""),
     r"another process asked about were kept|holds at most|newest"),
    ("array ring of 8", q2("BPF_ARRAY(recent, u64, 8);", "u32 i = pid % 8; recent.atomic_increment(i);"),
     r"keys are|is an array"),
    # the thread id is the process id only in the main thread: the pids a second thread asked about are lost
    ("filter on the thread id", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);', INIT,
                                   filt="if (!lk_wanted((u32)bpf_get_current_pid_tgid())) return 0;"),
     r"holds only pids the checker's main thread asked about \(0x40000000 \+ 0\.\.3\), none of the 26 a second "
     r"thread of the same process \(thread \d+\) asked about.*pid_tgid & 0xffffffff.*lk_wanted\(bpf_get_current_pid_tgid\(\) >> 32\)"),
    # the task's own words: a u32 key
    ("a u64 key", q2('BPF_TABLE("lru_hash", u64, u64, recent, 8);',
                     "u64 key = args->pid, zero = 0; u64 *n = recent.lookup_or_try_init(&key, &zero); "
                     "if (n) __sync_fetch_and_add(n, 1);"),
     r"key is 8 bytes: the task asks for the pid asked about as a u32 key"),
]
Q2_RIGHT = [
    ("lookup_or_try_init + sync add", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);', INIT)),
    ("lookup, else update", q2('BPF_TABLE("lru_hash", u32, u64, recent, 8);',
        "u64 *n = recent.lookup(&pid); if (n) { lock_xadd(n, 1); } else { u64 one = 1; recent.update(&pid, &one); }")),
    ("a smaller LRU", q2('BPF_TABLE("lru_hash", u32, u64, recent, 4);', INIT)),
    ("the process id spelled out, an int key", q2('BPF_TABLE("lru_hash", int, u64, recent, 8);',
        "int key = pid; u64 zero = 0, *n = recent.lookup_or_try_init(&key, &zero); if (n) lock_xadd(n, 1);",
        filt="u64 id = bpf_get_current_pid_tgid(); if (LK_FILTER_PID && (id >> 32) != LK_FILTER_PID) return 0;")),
]


@pytest.mark.parametrize("name,answer,message", Q1_WRONG, ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong(name, answer, message):
    res = lesson06.build().q1.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q1_RIGHT, ids=[r[0] for r in Q1_RIGHT])
def test_q1_right(name, answer):
    res = lesson06.build().q1.check(answer)
    assert res.status == "correct", res.message


@pytest.mark.parametrize("verdict,name,field,message", Q1_TASK, ids=[t[1] for t in Q1_TASK])
def test_q1_parent_read_from_the_task(task_offsets, verdict, name, field, message):
    res = lesson06.build().q1.check(parent_field(field, task_offsets))
    assert res.status == ("correct" if verdict == "right" else "incorrect"), res.message
    if message:
        assert re.search(message, res.message, re.S), res.message
        assert [p.passed for p in res.parts] == [False, True, False]


@pytest.mark.parametrize("name,answer,message", Q2_WRONG, ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong(name, answer, message):
    res = lesson06.build().q2.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q2_RIGHT, ids=[r[0] for r in Q2_RIGHT])
def test_q2_right(name, answer):
    res = lesson06.build().q2.check(answer)
    assert res.status == "correct", res.message


def test_partial_credit():
    res = lesson06.build().q2.check(Q2_WRONG[3][1])     # LRU, value always 1: 4 of 5 parts
    assert [p.passed for p in res.parts] == [True, False, True, True, True]
    assert res.score == pytest.approx(0.8)


def test_references_pass():
    lesson = lesson06.build()
    assert lesson.q1.check_solution().status == "correct"
    assert lesson.q2.check_solution().status == "correct"


def test_bpf_cell_programs_are_correct():
    """The student's %%bpf cells (compiled in the notebook without the checker's -D flags): the checkers
    load their own copies with them."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    guard = "#ifndef LK_PARENT_PID\n#define LK_PARENT_PID 0\n#endif\n"
    try:
        sh.run_cell_magic("bpf", "my_counter", guard + q1("BPF_PERCPU_ARRAY(count, u64, 1);", "count.increment(0);"))
        sh.run_cell_magic("bpf", "my_recent", Q2_RIGHT[1][1])
        lesson = lesson06.build()
        assert lesson.q1.check(sh.user_ns["my_counter"]).status == "correct"
        assert lesson.q2.check(sh.user_ns["my_recent"]).status == "correct"
    finally:
        lab.close()


def test_a_reference_is_not_an_answer():
    res = lesson06.build().q1.check("solution_06_exact_counter")
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message
