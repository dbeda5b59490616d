"""Shared fixtures. Real-kernel tests need root; every test gives back what it took."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import labkit  # noqa: E402
from fixtures.observations.record import record_checks, write_records  # noqa: E402
from kstate import bpf_fds  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(feature): skip unless the kernel/machine has the feature")


#: the files that take longest on this 2-core host (seconds of wall time, slowest first), started first: xdist
#: gives a whole file to one worker (--dist loadfile), and a long file started last is the suite's tail
#: (pyproject passes --no-loadscope-reorder, which would otherwise order files by their number of tests)
SLOWEST_FILES = [
    "test_notebooks.py", "test_soak.py", "test_course.py", "test_exercises_02.py", "test_exercises_04.py",
    "test_snippets.py", "test_exercises_10.py", "test_exercises_11.py", "test_exercises_07.py",
    "test_exercises_08.py", "test_exercises_06.py", "test_reaping.py", "test_bench.py", "test_exercises_05.py",
    "test_hub_exchange.py", "test_report.py", "test_exercises_01.py", "test_course_catalogue.py",
    "test_bad_inputs.py", "test_xdp.py", "test_exercises_00.py", "test_tc.py", "test_demo.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {f"tests/{name}": i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))    # stable: a file stays whole


def _feature(name: str) -> tuple[bool, str]:
    from labkit.programs import hooks as _hooks

    if name == "root":
        return os.geteuid() == 0, "needs root"
    if name == "kprobes":
        ok, why = _hooks.kprobes_available()
        return ok, f"kernel has no kprobes ({why}): run tests/stock_kernel/run"
    if name == "tracefs":
        return _hooks.tracefs() is not None, "tracefs not mounted: run ./lab setup"
    if name == "bpf_lsm":
        from labkit.hooks import lsm

        ok, why = lsm.available()
        return ok, f"{why}. Run it where BPF LSM works: tests/stock_kernel/run --kernel=6.1"
    if name == "chromium":
        return os.path.exists("/usr/bin/chromium"), "Debian's chromium is not installed (./lab test installs it)"
    return False, f"unknown feature {name!r}"


def pytest_runtest_setup(item):
    for m in item.iter_markers("requires"):
        for feat in m.args:
            ok, why = _feature(feat)
            if not ok:
                pytest.skip(f"requires {feat}: {why}")


@pytest.fixture(autouse=True)
def _record_observations(request, monkeypatch):
    """LABKIT_RECORD_OBSERVATIONS=1: keep each exercise check's observation (tests/fixtures/observations)."""
    record_checks(request, monkeypatch)


def pytest_sessionfinish(session):
    write_records()


@pytest.fixture
def lab():
    """A Lab that is closed after the test, which must leave nothing behind."""
    before = bpf_fds()
    with labkit.Lab() as lab:
        yield lab
    assert not labkit.live_attachments(), labkit.live_attachments()
    after = bpf_fds()
    for kind in ("prog", "link", "perf_event"):
        leaked = set(after[kind]) - set(before[kind])
        assert not leaked, f"test left {kind} fds open: {leaked}"


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole suite: nothing of this run stays in the kernel."""
    yield
    if os.geteuid() != 0:
        return
    from kstate import perf_attachments
    from labkit.net.records import list_sandboxes
    from labkit.net.xdp.netlink import find_labkit_xdp

    problems = []
    if labkit.live_attachments():
        problems.append(f"live attachments: {labkit.live_attachments()}")
    mine = [r for r in list_sandboxes() if r.owner_pid == os.getpid()]
    if mine:
        problems.append(f"sandboxes still up: {[r.id for r in mine]}")
    root_xdp = [x for x in find_labkit_xdp() if x["netns"] is None]
    if root_xdp:
        problems.append(f"labkit XDP programs in the root namespace: {root_xdp}")
    if perf_attachments(os.getpid()):
        problems.append(f"perf attachments of the test process: {perf_attachments(os.getpid())}")
    assert not problems, "; ".join(problems)
