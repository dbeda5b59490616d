"""Every snippet in bpf_snippets/ has its header, compiles, names its functions
lk_*, and loads (or, for the verifier_* lessons, is rejected by the verifier);
and no snippet counts with BCC's plain increment() in a map the CPUs share."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import labkit
from labkit.hooks import lsm

ALL = sorted((Path(__file__).resolve().parent.parent / "bpf_snippets").glob("*.c"))
#: CO-RE programs (*.bpf.c) are compiled by clang and loaded by libbpf (lab.load_object), not by BCC
CORE = [p for p in ALL if p.name.endswith(".bpf.c")]
SNIPPETS = [p for p in ALL if p not in CORE]

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]


def prog_type(header: str):
    import bcc

    hook = re.search(r"^// hook: (.*)$", header, re.M).group(1).lower()
    if "xdp" in hook:
        return bcc.BPF.XDP, "xdp"
    if hook.startswith("tc"):
        return bcc.BPF.SCHED_CLS, "tc"
    if "kprobe" in hook:
        return bcc.BPF.KPROBE, "tracing"
    if hook.startswith(("perf_event", "perf event")):
        return bcc.BPF.PERF_EVENT, "tracing"
    if "raw tracepoint" in hook or "raw_tracepoint" in hook:
        return bcc.BPF.RAW_TRACEPOINT, "tracing"
    if hook.startswith("cgroup/connect4"):
        return bcc.BPF.CGROUP_SOCK_ADDR, "cgroup"
    if hook.startswith("cgroup_skb"):
        return bcc.BPF.CGROUP_SKB, "cgroup"
    return bcc.BPF.TRACEPOINT, "tracing"


#: the expected attach type a program type must be loaded with (-1: none): BPF_CGROUP_INET4_CONNECT
ATTACH_TYPE = {18: 10}


def test_there_are_snippets():
    names = {p.stem for p in SNIPPETS}
    assert {"trace_clone", "trace_syscall", "xdp_icmp_drop", "xdp_icmp_drop_classic"} <= names


@pytest.mark.parametrize("path", SNIPPETS, ids=[p.stem for p in SNIPPETS])
def test_snippet_header_compiles_and_loads(path, lab):
    text = path.read_text()
    head = "\n".join(text.splitlines()[:8])
    assert head.startswith(f"// labkit snippet: {path.stem}:"), "first line names the snippet"
    assert re.search(r"^// hook: \S", head, re.M), "a '// hook:' line"
    assert re.search(r"^// min kernel: \d", text, re.M), "a '// min kernel:' line"
    ptype, need = prog_type(head)
    if re.search(r"^// hook: lsm/", head, re.M):     # LSM_PROBE: lab.load loads and attaches it (the guard checks it)
        ok, why = lsm.available()
        if not ok:
            pytest.skip(f"this kernel runs no BPF LSM program: {why}")
    prog = lab.load(path.stem, need=need)
    # BCC's own names (TRACEPOINT_PROBE(...): tracepoint__<category>__<event>) say their hook, and Lab.load
    # attached them: every other function is named lk_*
    auto = {fn for att in prog.auto_attachments for _kind, _target, fn in att.probes}
    fns = [f for f in prog.functions if f not in auto]
    assert fns or auto, "no BPF function"
    assert all(f.startswith("lk_") for f in fns), f"function names must start with lk_: {fns}"
    assert all(len(f) <= 15 or f[:15].startswith("lk_") for f in fns)
    for fn in fns:
        if path.stem.startswith("verifier_"):
            with pytest.raises(labkit.VerifierError) as ei:
                prog.load_function(fn, ptype)
            assert ei.value.log
        else:
            prog.load_function(fn, ptype, ATTACH_TYPE.get(ptype, -1))
    prog.close()


@pytest.mark.parametrize("path", CORE, ids=[p.name for p in CORE])
def test_core_snippet_header_compiles_and_loads(path, lab):
    name = path.name[: -len(".bpf.c")]
    head = "\n".join(path.read_text().splitlines()[:8])
    assert head.startswith(f"// labkit snippet: {name}:"), "first line names the snippet"
    assert re.search(r"^// hook: \S", head, re.M) and re.search(r"^// min kernel: \d", head, re.M)
    obj = lab.load_object(name, attach=False)
    assert obj.programs and all(p.startswith("lk_") for p in obj.programs), obj.programs
    obj.close()


# BCC's map.increment(key) is `(*leaf) += 1`: exact only when no two CPUs update the same counter
PLAIN_INCREMENT_OK = {
    "race_plain_vs_atomic": "loses counts on purpose: lesson 03 shows the race",
    "solution_03_count_by_tid": "one writer per key: the thread whose id it is",
}


@pytest.mark.parametrize("path", SNIPPETS, ids=[p.stem for p in SNIPPETS])
def test_shared_counters_are_atomic(path):
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)   # the code, not its comments
    maps = dict((name, kind) for kind, name in re.findall(r"^BPF_(\w+)\((\w+)\s*,", text, re.M))
    plain = {m for m in re.findall(r"\b(\w+)\.increment\(", text)}
    shared = sorted(m for m in plain if not maps.get(m, "").startswith("PERCPU_"))
    if path.stem in PLAIN_INCREMENT_OK:
        assert shared, f"{path.stem} is allowed a plain increment() it no longer has"
    else:
        assert not shared, (f"{path.stem}: {shared} counted with increment() (a plain +=) in a map the CPUs share: "
                            "use atomic_increment(), or lookup_or_try_init() + __sync_fetch_and_add()")
