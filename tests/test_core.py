"""CO-RE objects on the real kernel (Lab.load_object, %%bpf --core): clang
compiles, libbpf loads and relocates against this kernel's BTF, each program
sits on a bpf_link as a labkit attachment: re-run replaces, close gives back,
a killed owner's links die with it; compile and verifier errors name the
student's lines; a hook the kernel refuses is a clear LabkitError."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from kstate import bpf_fds
from labkit.programs.compile import SNIPPET_DIR
from labkit.programs.core import CoreObject, compile_core, vmlinux_header
from labkit.programs.libbpf import libbpf

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

HEAD = '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_core_read.h>\n#include <bpf/bpf_tracing.h>\n'
TAIL = 'char LICENSE[] SEC("license") = "GPL";\n'
PARENTS_MAP = ("struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, u32); "
               "__type(value, u32); } parents SEC(\".maps\");\n")
TP_BTF = HEAD + PARENTS_MAP + """
SEC("tp_btf/sched_process_exec")
int BPF_PROG(lk_btf_parent, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    u32 pid = p->tgid, ppid = p->real_parent->tgid;
    bpf_map_update_elem(&parents, &pid, &ppid, BPF_ANY);
    return 0;
}
""" + TAIL
FENTRY = HEAD + """
SEC("fentry/do_unlinkat")
int BPF_PROG(lk_fentry_unlink)
{
    return 0;
}
""" + TAIL


def prog_exists(prog_id: int) -> bool:
    fd = libbpf().bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return False
    os.close(fd)
    return True


def wait_until(cond, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def exec_child() -> int:
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid


def test_vmlinux_h_is_this_kernels_types_and_cached():
    h = vmlinux_header()
    assert h.parent.name.startswith("btf-") and "labkit" in str(h)
    assert "struct task_struct {" in h.read_text()
    assert vmlinux_header() == h


def test_compiled_objects_are_cached_by_content():
    text = (SNIPPET_DIR / "core_exec_parents.bpf.c").read_text()
    assert compile_core(text, "a") == compile_core(text, "a")
    assert compile_core(text, "a") != compile_core(text + "\n", "a")


@pytest.mark.skipif(not os.path.ismount("/dev/shm"), reason="needs a tmpfs at /dev/shm")
def test_the_cache_may_be_on_another_filesystem_than_tmp(tmp_path, monkeypatch):
    """Debian's stock image has /tmp on one filesystem and the home directory on
    another: the compiled object must reach the cache anyway (no rename across them)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))     # on disk
    monkeypatch.setattr(tempfile, "tempdir", "/dev/shm")             # clang's scratch on a tmpfs
    assert os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev
    text = (SNIPPET_DIR / "core_exec_parents.bpf.c").read_text() + f"\n// {tmp_path.name}\n"
    obj = compile_core(text, "cross_device")
    assert obj.is_file() and str(obj).startswith(str(tmp_path / "cache")) and obj.read_bytes()[:4] == b"\x7fELF"


def test_load_attach_read_and_bpftool_sees_it(lab):
    obj = lab.load_object("core_exec_parents")
    assert isinstance(obj, CoreObject) and obj.name == "core_exec_parents"
    prog = obj.programs["lk_exec_parent"]
    assert prog.attached and prog.section == "tracepoint/sched/sched_process_exec"
    # a bpf_link for a tracepoint (perf event) since 5.15; before, libbpf holds the perf event itself
    assert bool(prog.link_id) == (tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2]) >= (5, 15))
    assert [a.hook for a in lab.attachments] == ["tracepoint/sched/sched_process_exec"]
    shown = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog.id)], capture_output=True,
                                      text=True, check=True).stdout)
    assert shown["name"] == "lk_exec_parent" and shown["type"] == "tracepoint"
    assert obj.maps["parents"].id in shown["map_ids"]
    pid = exec_child()
    assert wait_until(lambda: pid in set(obj.map_dataframe("parents")["key"]))
    df = obj.map_dataframe("parents")
    assert int(df.loc[df["key"] == pid, "value"].iloc[0]) == os.getpid(), "CO-RE read the right parent"


def test_tp_btf_reads_pointers_directly(lab):
    obj = lab.load_object(TP_BTF, name="core_tp_btf")
    pid = exec_child()
    assert wait_until(lambda: pid in set(obj.map_dataframe("parents")["key"]))
    df = obj.map_dataframe("parents")
    assert int(df.loc[df["key"] == pid, "value"].iloc[0]) == os.getpid()


def test_rerun_replaces_and_close_gives_back(lab):
    before = bpf_fds()
    first = lab.load_object("core_exec_parents", name="core_rerun")
    old_id = first.programs["lk_exec_parent"].id
    second = lab.load_object("core_exec_parents", name="core_rerun")
    assert first.closed and first.state == "replaced" and not first.attached_programs()
    assert wait_until(lambda: not prog_exists(old_id))
    assert [a.program for a in labkit.live_attachments()] == [second.programs["lk_exec_parent"]]
    new_id = second.programs["lk_exec_parent"].id
    lab.close()
    assert second.closed and labkit.live_attachments() == []
    assert wait_until(lambda: not prog_exists(new_id))
    after = bpf_fds()
    for kind in ("prog", "link", "map"):
        assert set(after[kind]) <= set(before[kind]), kind
    with pytest.raises(labkit.ClosedError, match="closed"):
        second.map_dataframe("parents")


def test_a_detached_attachment_takes_the_program_off_its_hook(lab):
    obj = lab.load_object("core_exec_parents", name="core_detach")
    (att,) = lab.attachments
    att.detach()
    assert not obj.programs["lk_exec_parent"].attached and not obj.closed
    pid = exec_child()
    time.sleep(0.2)
    assert pid not in set(obj.map_dataframe("parents")["key"])


KILLED = """
import labkit, sys, time
lab = labkit.Lab()
obj = lab.load_object("core_exec_parents", name="core_killed")
p = obj.programs["lk_exec_parent"]
print(p.id, p.link_id, flush=True)
time.sleep(600)
"""


def test_a_killed_owner_gives_its_links_and_programs_back():
    child = subprocess.Popen([sys.executable, "-c", KILLED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(Path(labkit.__file__).resolve().parents[1])})
    try:
        line = child.stdout.readline().split()
        assert len(line) == 2, child.stderr.read()[-800:]
        prog_id, link_id = map(int, line)
        assert prog_exists(prog_id)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert wait_until(lambda: not prog_exists(prog_id)), f"program {prog_id} outlived its killed owner"
    links = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert link_id not in {x.get("id") for x in json.loads(links or "[]")}


def test_compile_errors_name_the_programs_lines(lab):
    text = HEAD + PARENTS_MAP + textwrap.dedent("""
        SEC("tracepoint/sched/sched_process_exec")
        int lk_bad(void *ctx)
        {
            struct task_struct *task = (struct task_struct *)bpf_get_current_task();
            u32 ppid = BPF_CORE_READ(task, real_parnt, tgid);
            return 0;
        }
        """) + TAIL
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "real_parnt" in ln)
    with pytest.raises(labkit.CompileError) as ei:
        lab.load_object(text, name="typo")
    e = ei.value
    assert f"typo:{line}:" in str(e) and "real_parnt" in e.diagnostics and "/tmp" not in str(e)
    assert labkit.live_attachments() == []


def test_verifier_errors_carry_the_log_and_the_line(lab):
    text = HEAD + PARENTS_MAP + textwrap.dedent("""
        SEC("tracepoint/sched/sched_process_exec")
        int lk_null(void *ctx)
        {
            u32 key = 1;
            u32 *v = bpf_map_lookup_elem(&parents, &key);
            return *v;
        }
        """) + TAIL
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "return *v" in ln)
    with pytest.raises(labkit.VerifierError) as ei:
        lab.load_object(text, name="nullcheck")
    e = ei.value
    assert e.program == "lk_null" and "invalid mem access" in str(e)
    if " @ " in e.log:                 # kernels that annotate lines (6.2+; Debian's 6.1 does not)
        assert f"@ nullcheck:{line}" in e.log
    assert "R0 invalid mem access" in e.log
    assert labkit.live_attachments() == []


def test_the_verifier_log_survives_a_bcc_compile_in_between(lab):
    """BCC shares libbpf.so.1 and silences its print function on every compile:
    a CO-RE load after a BCC compile must still carry the verifier's log."""
    lab.load("count_getppid")
    text = HEAD + PARENTS_MAP + textwrap.dedent("""
        SEC("tracepoint/sched/sched_process_exec")
        int lk_null_again(void *ctx)
        {
            u32 key = 1;
            u32 *v = bpf_map_lookup_elem(&parents, &key);
            return *v;
        }
        """) + TAIL
    with pytest.raises(labkit.VerifierError) as ei:
        lab.load_object(text, name="after_bcc")
    assert ei.value.program == "lk_null_again" and "invalid mem access" in str(ei.value), str(ei.value)


def test_fentry_either_works_or_is_refused_naming_the_way_that_works(lab):
    before = bpf_fds()
    try:
        obj = lab.load_object(FENTRY, name="core_fentry")
    except (labkit.NotSupportedError, labkit.AttachError) as e:
        assert 'SEC("tracepoint/' in str(e)
    else:  # a kernel with BPF trampolines (Debian's 6.1): a labkit attachment like any other
        assert obj.programs["lk_fentry_unlink"].attached
        obj.close()
    after = bpf_fds()
    for kind in ("prog", "link"):
        assert set(after[kind]) <= set(before[kind]), kind


def test_core_cell_magic_names_the_cell_and_replaces_on_rerun():
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        cell = (SNIPPET_DIR / "core_exec_parents.bpf.c").read_text()
        sh.run_cell_magic("bpf", "my_parents --core", cell)
        first = sh.user_ns["my_parents"]
        sh.run_cell_magic("bpf", "my_parents --core", cell)
        assert first.closed and len(labkit.live_attachments()) == 1
        broken = cell.replace("real_parent, tgid", "real_parent, tgidd")
        line = next(i for i, ln in enumerate(broken.splitlines(), 2) if "tgidd" in ln)
        with pytest.raises(labkit.CompileError, match=rf"my_parents:{line}:\d+: error"):
            sh.run_cell_magic("bpf", "my_parents --core", broken)
        with pytest.raises(labkit.LabkitError, match="-D is for BCC"):
            sh.run_cell_magic("bpf", "x --core -D A=1", cell)
    finally:
        lab.close()
    assert labkit.live_attachments() == []


def test_the_libbpf_loader_is_one_and_still_reachable_from_xdp():
    from labkit.net.xdp import libbpf as xdp_libbpf

    assert xdp_libbpf is libbpf and libbpf() is not None


COMMS = HEAD + """
struct comm { char text[16]; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 1024); __type(key, struct comm);
         __type(value, u64); } by_parent SEC(".maps");
SEC("tracepoint/sched/sched_process_exec")
int lk_by_parent(void *ctx)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct comm key = {};
    u64 one = 1, *n;
    BPF_CORE_READ_STR_INTO(&key.text, task, real_parent, comm);
    n = bpf_map_lookup_elem(&by_parent, &key);
    if (n)
        *n += 1;
    else
        bpf_map_update_elem(&by_parent, &key, &one, BPF_NOEXIST);
    return 0;
}
""" + TAIL


def test_map_dataframe_reads_text_keys_and_sums_per_cpu_values(lab):
    obj = lab.load_object(COMMS, name="core_comms")
    me = open("/proc/self/comm").read().strip()
    for _ in range(3):
        exec_child()
    assert wait_until(lambda: me in set(obj.map_dataframe("by_parent")["key"]))
    df = obj.map_dataframe("by_parent").set_index("key")
    assert int(df.loc[me, "value"]) >= 3 and obj.maps["by_parent"].percpu
