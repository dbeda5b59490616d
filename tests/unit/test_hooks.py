"""labkit.hooks: every attach kind is one module behind one protocol (no kernel)."""

from __future__ import annotations

import inspect
import re

import pytest

import labkit
from labkit import hooks
from labkit.hooks.probe import ProbeHook, probe_hook
from labkit.hooks.protocol import Hook
from labkit.programs import kinds, privileges
from labkit.programs.probes import AUTOLOAD_PREFIXES

MODULES = hooks.kind_modules()


def test_the_kinds_there_are():
    assert MODULES == ["cgroup", "fentry", "kprobe", "lsm", "perf_event", "raw_tracepoint", "tc", "tracepoint", "uprobe",
                       "usdt", "xdp"]


@pytest.mark.parametrize("module", MODULES)
def test_each_module_is_one_registered_kind_named_after_it(module):
    mod = getattr(hooks, module)
    assert isinstance(mod.HOOK, Hook) and mod.HOOK.name == module
    assert [h for h in hooks.hooks() if h.name == module] == [mod.HOOK]
    assert mod.HOOK.needs in privileges.NEEDS
    assert mod.HOOK.fits, "a kind takes programs of some kind"


def test_every_attach_method_of_the_lab_is_a_kind_and_thin():
    methods = {n for n, _ in inspect.getmembers(labkit.Lab, inspect.isfunction) if n.startswith("attach_")}
    calls = {h.call for h in hooks.hooks() if h.call}
    assert methods == calls
    for call in calls:
        body = inspect.getsource(getattr(labkit.Lab, call)).split('"""')[-1]
        assert f'self._attach("{call}"' in body and body.count("\n") <= 4, f"Lab.{call} is more than a door"


def test_every_program_kind_has_one_home():
    program_kinds = ({k for _, k in AUTOLOAD_PREFIXES} | {k for _, k in kinds._HEADER_KINDS}
                     | {k for _, k in kinds._CONTEXTS})
    homes = [k for h in hooks.hooks() for k in h.home]
    assert sorted(homes) == sorted(set(homes)), "one home per program kind"
    assert set(homes) == program_kinds
    for h in hooks.hooks():
        assert set(h.home) <= set(h.fits), f"{h.name} is home to what it does not take"


def test_every_probe_kind_has_one_module():
    kinds_attached = [k for h in hooks.hooks() if isinstance(h, ProbeHook) for k in h.probe_kinds]
    assert len(kinds_attached) == len(set(kinds_attached))
    for _, kind in AUTOLOAD_PREFIXES:      # every function BCC would attach by itself, labkit attaches
        assert probe_hook(kind).name in MODULES
    assert probe_hook("kretprobe") is hooks.kprobe.HOOK and probe_hook("uretprobe") is hooks.uprobe.HOOK
    with pytest.raises(labkit.AttachError, match="unknown hook kind 'nope'"):
        probe_hook("nope")


def test_the_kinds_that_record_are_the_ones_netlink_can_leave_behind():
    # and the lab's own cgroups (made by labkit.Cgroup, reaped like sandboxes when their owner is gone), and
    # last its pin directories in the BPF filesystem (labkit.PinDir: no hook kind, but a pin outlives its process)
    assert [r.name for r in hooks.recorders()] == ["cgroup", "tc", "xdp", "pin"]
    for r in hooks.recorders():
        assert r.state_dir.parent.name == "labkit" and callable(r.still_there)


def test_one_bpf_link_helper():
    src = {m: inspect.getsource(getattr(hooks, m)) for m in MODULES}
    users = sorted(m for m, text in src.items() if "link_create(" in text)
    assert users == ["cgroup", "tc", "xdp"]
    assert all("bpf_link_create" not in text for text in src.values()), "libbpf is called in link.py only"


@pytest.mark.parametrize("call, options, says", [
    ("attach_perf_event", {"frequency": 0}, ("frequency", "0", "99")),
    ("attach_perf_event", {"frequency": 99.5}, ("frequency", "99.5")),
    ("attach_perf_event", {"frequency": 10**9}, ("perf_event_max_sample_rate",)),
    ("attach_perf_event", {"cpu": -1}, ("cpu", "-1", "online CPU")),
    ("attach_tc", {"iface": "x", "direction": "both"}, ("direction", "'both'")),
    ("attach_tc", {"iface": "x", "via": "bpf_link"}, ("via", "'bpf_link'")),
    ("attach_kprobe", {}, ("event=", "syscall=")),
    ("attach_cgroup", {"cgroup": "x", "attach_type": "connect6"}, ("attach_type", "'connect6'", "connect4")),
    ("attach_cgroup", {}, ("needs a cgroup", "labkit.Cgroup")),
    ("attach_cgroup", {"cgroup": 42}, ("cgroup must be", "int 42")),
    ("attach_kprobe", {"syscall": 7}, ("syscall=", "7")),
])
def test_validate_refuses_bad_arguments_without_the_kernel(call, options, says):
    with pytest.raises(labkit.ArgumentError) as ei:
        hooks.by_call(call).validate("a_snippet", **options)
    for text in says:
        assert text in str(ei.value)


def test_a_mismatch_says_where_the_program_goes():
    msg = hooks.mismatch("perf_cpu_samples.c", kinds.Kind("perf_event", "its header says: hook: perf_event"),
                         "attach_tracepoint")
    assert msg.startswith("perf_cpu_samples.c is a perf-event program (its header says: hook: perf_event); "
                          "attach_tracepoint needs a tracepoint program")
    assert msg.endswith("Attach it with lab.attach_perf_event(program, frequency=...) instead.")
    assert re.search(r"lab\.load\(program\) attaches a KFUNC_PROBE", hooks.mismatch(
        "x.c", kinds.Kind("kfunc", "its name says so"), "attach_kprobe"))
