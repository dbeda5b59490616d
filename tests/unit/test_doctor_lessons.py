"""`labkit doctor`'s per-lesson verdicts, from its checks and the kernel's
version (pure logic: the checks themselves run on the real kernel in
tests/test_setup_and_cli.py)."""

from __future__ import annotations

import pytest

from labkit.commands.doctor import Check, kernel_release, lesson_fits

NAMES = ("privileges", "BCC", "tracefs", "debugfs", "kernel headers", "BTF", "libbpf", "hook: tracepoint",
         "hook: kprobe", "hook: fentry", "hook: XDP", "map types", "hook: uprobe", "USDT", "hook: tc", "CO-RE toolchain",
         "hook: perf_event", "cgroup v2", "hook: cgroup", "libbpf application", "hook: lsm")


def _checks(**status):
    return [Check(n, status.get(n.replace(" ", "_").replace(":", "").replace("-", "_"), "ok"), f"{n} detail")
            for n in NAMES]


def _fits(checks, release, arch="x86_64"):
    return {f.lesson: f for f in lesson_fits(checks, release, arch)}


@pytest.mark.parametrize("release, want", [("6.1.0-41-amd64", (6, 1)), ("5.10.0-32-amd64", (5, 10)),
                                           ("6.18.44-fc-v1252", (6, 18)), ("garbage", (0, 0))])
def test_kernel_release(release, want):
    assert kernel_release(release) == want


def test_every_lesson_ok_on_a_kernel_with_everything():
    fits = _fits(_checks(), "6.12.57+deb13-amd64")
    assert sorted(fits) == [f"{n:02d}" for n in range(15)]
    assert {f.status for f in fits.values()} == {"ok"}


def test_old_kernels_say_what_changes_in_which_lesson():
    fits = _fits(_checks(), "5.10.0-32-amd64")
    assert fits["08"].status == "ok" and "tcx links need 6.6 (this is 5.10)" in fits["08"].detail
    assert fits["04"].status == "ok" and "bpf_loop()" in fits["04"].detail and "5.17" in fits["04"].detail
    assert "tcx" not in _fits(_checks(), "6.6.0")["08"].detail
    old = _fits(_checks(), "5.4.0-150-generic")
    assert old["03"].status == "cannot" and "ring buffers need kernel 5.8" in old["03"].detail
    assert old["02"].status == "ok" and "netlink" in old["02"].detail


def test_arm64_before_6_4_cannot_attach_fentry():
    assert _fits(_checks(), "6.1.0-41-arm64", "aarch64")["09"].status == "partial"
    assert _fits(_checks(), "6.1.0-41-amd64", "x86_64")["09"].status == "ok"


def test_a_failed_check_makes_its_lessons_cannot_and_a_part_partial():
    fits = _fits(_checks(hook_XDP="FAIL", USDT="warn"), "6.1.0-41-amd64")
    assert {l for l, f in fits.items() if f.status == "cannot"} == {"02", "07", "08"}
    assert "hook: XDP: hook: XDP detail" in fits["02"].detail
    assert fits["05"].status == "partial" and "USDT" in fits["05"].detail


def test_lesson_10_needs_the_perf_event_check():
    fits = _fits(_checks(hook_perf_event="warn"), "6.1.0-41-amd64")
    assert fits["10"].status == "partial" and "hook: perf_event: hook: perf_event detail" in fits["10"].detail
    assert {l for l, f in fits.items() if f.status != "ok"} == {"10"}
    assert _fits(_checks(hook_perf_event="FAIL"), "6.1.0")["10"].status == "cannot"


def test_checks_that_never_ran_are_not_ok():
    only = [Check("privileges", "ok", ""), Check("BCC", "FAIL", "import bcc failed")]
    fits = _fits(only, "6.1.0")
    assert {f.status for f in fits.values()} == {"cannot"}
    assert "not checked" in fits["05"].detail


def test_latency_without_fentry_or_kprobes_is_partial_and_says_both():
    fits = _fits(_checks(hook_fentry="warn", hook_kprobe="warn"), "6.18.44-fc-v1252")
    assert fits["11"].status == "partial"
    assert "hook: fentry" in fits["11"].detail and "hook: kprobe" in fits["11"].detail
    assert _fits(_checks(hook_fentry="warn"), "6.1.0-41-amd64")["11"].status == "partial"
    assert _fits(_checks(hook_tracepoint="FAIL"), "6.1.0-41-amd64")["11"].status == "cannot"


def test_lesson_13_needs_cgroup_v2_and_cgroup_links():
    assert _fits(_checks(cgroup_v2="FAIL"), "6.1.0-41-amd64")["13"].status == "cannot"
    old = _fits(_checks(), "5.4.0-150-generic")["13"]
    assert old.status == "cannot" and "bpf_links, which need kernel 5.7 (this is 5.4)" in old.detail
    assert _fits(_checks(), "5.10.0-32-amd64")["13"].status == "ok"


def test_lesson_14_needs_the_toolchain_and_says_what_an_old_kernel_leaves_out():
    assert _fits(_checks(libbpf_application="warn"), "6.1.0-41-amd64")["14"].status != "ok"
    assert _fits(_checks(CO_RE_toolchain="FAIL"), "6.1.0-41-amd64")["14"].status == "cannot"
    old = _fits(_checks(), "5.10.0-32-amd64")["14"]
    assert old.status == "ok" and "bpf_loop() needs 5.17 (this is 5.10)" in old.detail and "loop stage" in old.detail
    assert "bpf_loop" not in _fits(_checks(), "6.1.0-41-amd64")["14"].detail
    assert _fits(_checks(), "5.4.0-150-generic")["14"].status == "cannot"


def test_lesson_12_needs_bpf_lsm_and_cgroup_v2():
    fits = _fits(_checks(hook_lsm="warn"), "6.18.44-fc-v1252")
    assert fits["12"].status == "partial" and "hook: lsm: hook: lsm detail" in fits["12"].detail
    assert {l for l, f in fits.items() if f.status != "ok"} == {"12"}
    assert _fits(_checks(cgroup_v2="FAIL"), "6.1.0-41-amd64")["12"].status == "cannot"
    assert _fits(_checks(), "5.4.0-150-generic")["12"].status == "cannot"
    assert _fits(_checks(), "6.1.0-41-amd64")["12"].status == "ok"
