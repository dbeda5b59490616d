"""uprobes, uretprobes and USDT probes on the real kernel (Lab.attach_uprobe,
Lab.attach_usdt): exact counts in child processes the tests start (filtered by
pid), re-run replaces, close detaches, bad inputs are LabkitErrors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import labkit
from kstate import bpf_fds

PYTHON = "/usr/bin/python3.11"  # Debian's interpreter: built with USDT probes (readelf -n)
N = 7

COUNT = r"""
BPF_ARRAY(calls, u64, 1);
int lk_count(struct pt_regs *ctx) { calls.increment(0); return 0; }
"""

LATENCY = r"""
BPF_HASH(start, u32, u64);
BPF_HISTOGRAM(lat_us);
int lk_entry(struct pt_regs *ctx) {
    u32 tid = bpf_get_current_pid_tgid();
    u64 now = bpf_ktime_get_ns();
    start.update(&tid, &now);
    return 0;
}
int lk_return(struct pt_regs *ctx) {
    u32 tid = bpf_get_current_pid_tgid();
    u64 *t0 = start.lookup(&tid);
    if (!t0) return 0;
    lat_us.increment(bpf_log2l((bpf_ktime_get_ns() - *t0) / 1000));
    start.delete(&tid);
    return 0;
}
"""

LINES = r"""
BPF_ARRAY(lines, u64, 1);
int lk_line(struct pt_regs *ctx) { lines.increment(0); return 0; }
"""

ENTRY = r"""
BPF_HASH(calls, u64, u64);
int lk_entry(struct pt_regs *ctx) {
    u64 addr = 0;
    char name[16] = {};
    bpf_usdt_readarg(2, ctx, &addr);            /* function__entry(file, function, line) */
    bpf_probe_read_user_str(name, sizeof(name), (void *)addr);
    u64 is_target = name[0] == 'l' && name[1] == 'k' && name[2] == '_' && name[3] == 'w' && name[4] == 0;
    calls.increment(is_target);
    return 0;
}
"""

GC = r"""
BPF_HASH(collections, u32, u64);
int lk_gc(struct pt_regs *ctx) {
    u32 generation = 0;
    bpf_usdt_readarg(1, ctx, &generation);      /* gc__start(generation) */
    collections.increment(generation);
    return 0;
}
"""


class Child:
    """A /usr/bin/python3.11 process that runs ``body`` once told to (a line on stdin)."""

    def __init__(self, body: str):
        code = "import sys\n" + "def lk_w(x=0):\n    return x\n" + "print('ready', flush=True)\n" + \
               "sys.stdin.readline()\n" + body + \
               "\nprint('done', flush=True)\nsys.stdin.readline()\n"
        self.p = subprocess.Popen([PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        assert self.p.stdout.readline().strip() == "ready"   # exec'd: its maps are the interpreter's

    def run(self) -> None:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "done"

    def close(self) -> None:
        try:
            self.p.stdin.write("end\n")
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=10)
        self.p.stdout.close()


@pytest.fixture
def child(request):
    made: list[Child] = []

    def make(body: str) -> Child:
        c = Child(body)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


LIBC_CALLS = f"import ctypes\nlibc = ctypes.CDLL('libc.so.6')\nfor i in range({N}): libc.usleep(200)"


def test_uprobe_counts_exactly_the_childs_calls(lab, child):
    c, other = child(LIBC_CALLS), child(LIBC_CALLS)
    att = lab.attach_uprobe(COUNT, "c", "usleep", pid=c.pid)
    assert att.attached and "usleep" in att.hook and f"pid {c.pid}" in att.hook
    c.run()
    other.run()  # the same calls in another process: filtered out by pid
    assert att.program["calls"][0].value == N


def test_uretprobe_latency_histogram_has_n_entries(lab, child):
    c = child(LIBC_CALLS)
    prog = lab.load(LATENCY, name="lk_lat")
    lab.attach_uprobe(prog, "libc.so.6", "usleep", "lk_entry", pid=c.pid, name="lat entry")
    lab.attach_uprobe(prog, "c", "usleep", "lk_return", ret=True, pid=c.pid, name="lat return")
    c.run()
    hist = {k.value: v.value for k, v in prog["lat_us"].items() if v.value}
    assert sum(hist.values()) == N
    assert min(hist) >= 7  # usleep(200) takes at least 200 us: log2 bucket 7 (128..255) or above


def test_usdt_function_entry_counts_a_python_function(lab, child):
    c = child(f"for i in range({N}): lk_w(i)")
    # CPython 3.11 runs function__entry only while its line probe is enabled too
    # (the interpreter's tracing path): enable both, in this process only.
    lines = lab.attach_usdt(LINES, "python:line", "lk_line", pid=c.pid)
    att = lab.attach_usdt(ENTRY, "python:function__entry", "lk_entry", pid=c.pid)
    assert att.kind == "trace" and att.hook == f"usdt python:function__entry[pid {c.pid}]"
    c.run()
    calls = {k.value: v.value for k, v in att.program["calls"].items()}
    assert calls.get(1) == N, calls
    assert lines.program["lines"][0].value > N


def test_usdt_program_made_without_its_context_is_compiled_again(lab, child):
    c = child(f"for i in range({N}): lk_w(i)")
    plain = lab.load(ENTRY, name="lk_cell")          # what a %%bpf cell makes: no USDT context
    lab.attach_usdt("usdt_python_lines", "python:line", "lk_py_line", pid=c.pid)
    att = lab.attach_usdt(plain, "python:function__entry", pid=c.pid)
    assert att.program is not plain and att.program.name == "lk_cell" and att.program.usdt is not None
    c.run()
    assert {k.value: v.value for k, v in att.program["calls"].items()}.get(1) == N


def test_usdt_program_loaded_with_its_context_is_attached_as_it_is(lab, child):
    c = child("import gc\ngc.disable()\nfor g in (0, 1, 1, 2, 2, 2): gc.collect(g)")
    prog = lab.load(GC, usdt=(c.pid, "gc__start", "lk_gc"))   # a short name: python is the only provider
    assert (prog.usdt.where, prog.usdt.probe, prog.usdt.fn) == (c.pid, "python:gc__start", "lk_gc")
    att = lab.attach_usdt(prog, "python:gc__start", pid=c.pid)
    assert att.program is prog
    c.run()
    assert {k.value: v.value for k, v in prog["collections"].items()} == {0: 1, 1: 2, 2: 3}


def test_rerun_replaces_and_close_detaches(child):
    before = bpf_fds()
    c = child(LIBC_CALLS)
    with labkit.Lab() as lab:
        first = lab.attach_uprobe(COUNT, "c", "usleep", pid=c.pid, name="rerun")
        second = lab.attach_uprobe(COUNT, "c", "usleep", pid=c.pid, name="rerun")
        assert first.state == "replaced" and second.attached
        assert labkit.live_attachments() == [second]
        c.run()
        assert second.program["calls"][0].value == N
    assert not second.attached and labkit.live_attachments() == []
    after = bpf_fds()
    for kind in ("prog", "perf_event"):
        assert not set(after[kind]) - set(before[kind]), kind


def test_detach_takes_the_uprobe_off(lab, child):
    c = child(LIBC_CALLS)
    prog = lab.load(LATENCY, name="lk_lat_off")
    entry = lab.attach_uprobe(prog, "c", "usleep", "lk_entry", pid=c.pid)
    ret = lab.attach_uprobe(prog, "c", "usleep", "lk_return", ret=True, pid=c.pid)
    ret.detach()
    entry.detach()
    assert ret.state == entry.state == "detached" and prog.closed
    assert labkit.live_attachments() == []
    c.run()  # the child's calls now meet no probe


@pytest.mark.parametrize("binary, symbol, match", [
    ("c", "usleeep", r"no function 'usleeep'.*usleep"),
    ("libcc", "usleep", r"no library 'libcc'"),
    ("/etc/hostname", "usleep", r"not an ELF"),
    ("/no/such/file", "usleep", r"cannot read /no/such/file"),
    ("c", "not a name", r"function name"),
])
def test_bad_uprobe_targets_are_labkit_errors(lab, binary, symbol, match):
    with pytest.raises(labkit.LabkitError, match=match):
        lab.attach_uprobe(COUNT, binary, symbol)
    assert lab.attachments == []


def test_bad_usdt_probes_are_labkit_errors(lab, child):
    c = child("pass")
    with pytest.raises(labkit.LabkitError, match=r"no USDT probe 'python:function_entry'.*function__entry"):
        lab.attach_usdt(ENTRY, "python:function_entry", "lk_entry", pid=c.pid)
    with pytest.raises(labkit.LabkitError, match="pid= .* or path="):
        lab.attach_usdt(ENTRY, "python:function__entry", "lk_entry")
    with pytest.raises(labkit.LabkitError, match="needs fn="):
        lab.attach_usdt(ENTRY, "python:function__entry", pid=c.pid)
    plain = lab.load(COUNT, name="lk_plain")
    with pytest.raises(labkit.LabkitError, match=r"no USDT probe 'python:nope'"):
        lab.attach_usdt(plain, "python:nope", pid=c.pid)
    with pytest.raises(labkit.LabkitError, match="no USDT probes can be read"):
        lab.attach_usdt(ENTRY, "python:function__entry", "lk_entry", path="/etc/hostname")
    assert lab.attachments == []
