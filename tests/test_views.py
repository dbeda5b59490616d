"""Live views and pickers, on the real kernel (filtered by this process's pid):
a panel refreshes in place, stops, is replaced with its program when a panel
of the same name is made, keeps its memory bounded; the pickers list real
syscalls and interfaces; snapshots are static HTML with the plot inline;
read_trace_pipe waits for the pipe's one reader, then names it."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest

import labkit
from kstate import perf_attachments
from labkit.programs.hooks import require_tracefs

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

ME = os.getpid()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def no_panels_left():
    yield
    labkit.close_panels()
    assert labkit.live_panels() == []


def n_widgets() -> int:
    from ipywidgets.widgets import widget

    return len(widget._instances)


def calls(n: int) -> None:
    for _ in range(n):
        os.getppid()


def until(pred, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def panel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("labkit-panel-")]


def test_panel_refreshes_in_place(lab):
    s = lab.trace_syscall("getppid", pid=ME)
    p = labkit.live(s, rows=5, interval=0.05)
    assert p.running and p.name == s.name
    children = list(p.widget.children)
    widgets_before = n_widgets()
    table_w, image_w = p._table_w, p._image
    calls(25)
    assert until(lambda: len(p.table()) == 5), p.table()
    first = table_w.value
    assert "getppid" in first and p.refreshes > 1
    assert until(lambda: image_w.value[:8] == PNG)
    calls(3)
    assert until(lambda: table_w.value != first)
    # the same widgets got new values: nothing was added, nothing piled up
    assert list(p.widget.children) == children and p._table_w is table_w and p._image is image_w
    assert n_widgets() == widgets_before
    # the plot counts every event (a listener), the table shows the newest rows only
    assert until(lambda: p.series().sum().sum() >= 28)
    assert list(p.table().columns)[:3] == ["time", "pid", "tid"] and (p.table().pid == ME).all()
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "LivePanel" in bundle["text/plain"]


def test_stop_start_and_close(lab):
    s = lab.trace_syscall("getppid", pid=ME)
    p = labkit.live(s, interval=0.05)
    assert until(lambda: p.refreshes >= 3)
    p.stop()
    assert p.state == "stopped" and not panel_threads()
    n = p.refreshes
    calls(10)
    time.sleep(0.3)
    assert p.refreshes == n, "a stopped panel does not refresh"
    assert s.running, "stopping the panel leaves its program attached"
    p.start()
    assert until(lambda: p.refreshes > n) and len(panel_threads()) == 1
    p.close()
    assert p.state == "closed" and not s.running and not panel_threads()
    assert labkit.live_attachments() == [] and perf_attachments(ME) == []
    with pytest.raises(labkit.LabkitError):
        p.start()


def test_panel_stops_when_its_source_goes(lab):
    s = lab.trace_syscall("getppid", pid=ME)
    p = labkit.live(s, interval=0.05)
    s.stop()
    assert until(lambda: p.state == "source stopped" and not panel_threads())   # the thread ends after its last refresh


def test_rerun_replaces_panel_and_its_program(lab):
    first = lab.trace_syscall("getppid", pid=ME, name="a")
    p1 = labkit.live(first, name="same cell")
    second = lab.trace_syscall("getpid", pid=ME, name="b")
    p2 = labkit.live(second, name="same cell")
    assert p1.state == "replaced" and not first.running, "the old panel's program was detached"
    assert p2.running and labkit.live_panels() == [p2]
    assert [a.target for a in labkit.live_attachments()] == ["tracepoint:syscalls:sys_enter_getpid"]
    assert len(perf_attachments(ME)) == 1, perf_attachments(ME)
    assert len(panel_threads()) == 1
    # a re-run cell: same stream name and panel name, twice
    for _ in range(2):
        s = lab.trace_syscall("getppid", pid=ME, name="rerun")
        p = labkit.live(s)
    assert [x.name for x in labkit.live_panels()] == ["same cell", s.name]
    assert len(labkit.live_attachments()) == 2 and len(panel_threads()) == 2


def test_memory_is_bounded(lab):
    s = lab.trace_syscall("getppid", pid=ME, window=100)
    p = labkit.live(s, rows=7, interval=0.02, history=5, bin_seconds=1.0)
    shapes = (p._bins.counts.shape, p._bins.ids.shape)
    for _ in range(5):
        calls(4000)
        time.sleep(0.05)
    s.poll()
    assert until(lambda: s.received >= 20_000 - 10)
    assert len(s) == 100 and len(p.table()) == 7
    assert (p._bins.counts.shape, p._bins.ids.shape) == shapes and len(p.series()) == 5
    # many series (only max_series lines and "other"): tests/unit/test_views_bins.py


def test_snapshot_is_static_html_with_the_plot(lab):
    s = lab.trace_syscall("getppid", pid=ME)
    p = labkit.live(s, rows=3, interval=0.05)
    calls(5)
    assert until(lambda: len(p.table()) == 3)
    snap = p.snapshot()
    assert isinstance(snap, labkit.PanelSnapshot) and snap.png[:8] == PNG
    html = snap._repr_html_()
    assert "data:image/png;base64," in html and "getppid" in html and "<table" in html
    assert len(snap.table) == 3


def test_syscall_picker_lists_real_syscalls_and_retargets(lab):
    picker = labkit.SyscallPicker(lab, "getppid", pid=ME, rows=4)
    names = list(picker.dropdown.options)
    assert names == labkit.syscalls() and {"openat", "getppid", "execve", "clone3"} <= set(names)
    root = labkit.programs.hooks.tracefs() / "events" / "syscalls"
    assert all((root / f"sys_enter_{n}").is_dir() for n in names[:: max(1, len(names) // 40)])
    calls(3)
    assert picker.stream.wait(min_events=3)
    old = picker.stream
    picker.dropdown.value = "getpid"            # what choosing in the Dropdown does
    assert picker.syscall == "getpid" and picker.stream is not old and not old.running
    os.getpid()
    assert picker.stream.wait(min_events=1)
    assert [a.target for a in labkit.live_attachments()] == ["tracepoint:syscalls:sys_enter_getpid"]
    picker.panel.refresh()
    assert until(lambda: (picker.panel.table().syscall == "getpid").all() and len(picker.panel.table()) >= 1)
    with pytest.raises(labkit.LabkitError):
        picker.select("no_such_syscall")
    picker.stream.stop()                        # as a lesson's last cell does: the panel sees its source end
    assert until(lambda: picker.panel.state == "source stopped")
    picker.select("getppid")                    # choosing again resumes the panel by itself
    assert picker.panel.state == "running"
    picker.close()
    assert labkit.live_attachments() == []


def test_xdp_control_lists_real_interfaces_and_attaches_only_in_the_sandbox(lab):
    with labkit.Sandbox() as sb:
        ctl = labkit.XdpControl(lab, "xdp_icmp_drop", interval=0.1)
        values = [v for _, v in ctl.dropdown.options]
        labels = [label for label, _ in ctl.dropdown.options]
        assert (sb.target_ns, sb.target_iface) in values and (sb.host_ns, sb.host_iface) in values
        assert (None, "lo") in values, "the root namespace's interfaces are listed"
        assert all("view only" in lab_ for lab_, (ns, _i) in zip(labels, values) if ns is None)
        assert ctl.dropdown.value == (sb.target_ns, sb.target_iface), "the sandbox is the default"
        ctl.dropdown.value = (None, "lo")
        with pytest.raises(labkit.LabkitError, match="root namespace"):
            ctl.attach()                               # refused before touching the kernel
        assert labkit.live_attachments() == []
        x = ctl.attach(sb.target_iface, sb.target_ns, mode="generic")
        assert x.mode == "generic" and ctl.panel.source is x
        row = ctl.interfaces().set_index(["namespace", "iface"]).loc[(sb.target_ns, sb.target_iface)]
        assert row.generic > 0 and row.native == 0 and row.labkit and "generic" in row.xdp
        assert any("XDP: lk_xdp_icmp_dr" in label for label, _ in ctl.dropdown.options)
        r = sb.ping(count=4, interval=0.1, timeout=0.3)
        assert r.received == 0 and x.packets("drop", "icmp") == 4
        # the live XDP view: packets per second by action and protocol, exact counters in the table
        assert until(lambda: "drop icmp" in ctl.panel.series().columns and ctl.panel.series()["drop icmp"].sum() == 4)
        table = ctl.panel.table()
        assert int(table[(table.action == "drop") & (table.protocol == "icmp")].packets.iloc[0]) == 4
        ctl.detach()
        assert not x.attached
        row = ctl.interfaces().set_index(["namespace", "iface"]).loc[(sb.target_ns, sb.target_iface)]
        assert row.generic == 0 and row.native == 0
        # as after Run All: the panel saw its attachment go; attaching again resumes it by itself
        assert until(lambda: ctl.panel.state == "source stopped")
        y = ctl.attach(sb.target_iface, sb.target_ns, mode="generic")
        assert ctl.panel.state == "running" and ctl.panel.source is y
        sb.ping(count=2, interval=0.1, timeout=0.3)
        assert until(lambda: "drop icmp" in ctl.panel.series().columns and ctl.panel.series()["drop icmp"].sum() == 2)
        # a panel the student stopped stays stopped when the control attaches again
        ctl.panel.stop()
        ctl.attach(sb.target_iface, sb.target_ns, mode="generic")
        assert ctl.panel.state == "stopped"
        ctl.close()
    assert labkit.live_attachments() == []


def test_live_xdp_counters_view(lab):
    with labkit.Sandbox() as sb:
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        p = labkit.live(x, interval=0.05)
        assert p.name == f"xdp({sb.target_ns}:{sb.target_iface})"
        sb.ping(count=3, interval=0.05, timeout=0.3)
        sb.send_udp(count=7)
        assert until(lambda: {"drop icmp", "pass udp"} <= set(p.series().columns))
        assert until(lambda: p.series()["pass udp"].sum() == 7 and p.series()["drop icmp"].sum() == 3)
        html = p.snapshot()._repr_html_()
        assert "udp" in html and "data:image/png;base64," in html
        p.close()
        assert not x.attached, "the panel owned the attachment"


def test_xdp_interfaces_table():
    df = labkit.xdp_interfaces(namespaces=[])
    assert list(df.columns) == ["namespace", "iface", "ifindex", "native", "generic", "xdp", "labkit",
                                "default_route"]
    assert "lo" in set(df.iface) and (df.namespace == "").all()


def test_map_dataframe_decodes_struct_keys(lab):
    counter = lab.attach_tracepoint("count_by_comm", "task:task_newtask")
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    df = labkit.map_dataframe(counter.program, "counts")
    assert {"uid", "comm", "value"} <= set(df.columns)
    assert df.comm.map(type).eq(str).all() and (df.value > 0).all()


# ------------------------------------------------------------------ trace_pipe, one reader at a time
_HOLDER = """
import errno, os, sys, time
deadline = time.monotonic() + 60
while True:
    try:
        fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
        break
    except OSError as e:     # another test's reader holds it: wait for it, as labkit would
        if e.errno != errno.EBUSY or time.monotonic() > deadline:
            raise
        time.sleep(0.1)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_trace_pipe(seconds: float):
    """A child process that opens trace_pipe (never reads it) and keeps it for ``seconds``;
    returns (the child, whether this kernel then refuses a second reader)."""
    path = require_tracefs() / "trace_pipe"
    child = subprocess.Popen(["/usr/bin/python3", "-c", _HOLDER, str(path), str(seconds)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # it may itself wait for another test's reader to let go (the pipe is machine-wide)
    line = child.stdout.readline()
    if line.strip() != "held":
        child.wait(timeout=70)
        pytest.fail(f"the holder did not open trace_pipe: {child.stderr.read()}")
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        exclusive = False
    except OSError as e:
        assert e.errno == errno.EBUSY, e
        exclusive = True
    print(f"trace_pipe: this kernel {'refuses' if exclusive else 'lets in'} a second reader")   # -rP shows it
    return child, exclusive


def test_read_trace_pipe_waits_for_another_reader_to_let_go():
    child, exclusive = _hold_trace_pipe(1.5)
    try:
        t0 = time.monotonic()
        df = labkit.read_trace_pipe(timeout=0.3, idle=0.1, wait=60)
        took = time.monotonic() - t0
    finally:
        child.kill()
        child.wait()
    assert list(df.columns) == ["task", "pid", "cpu", "ts", "event", "message"]
    if exclusive:       # newer kernels (Debian's 5.10 and 6.1 too): it waited for the holder's 1.5 s
        assert took >= 0.8, took
    else:               # older kernels let two readers share the pipe: no wait
        assert took < 5, took


def test_read_trace_pipe_names_the_process_that_keeps_it():
    child, exclusive = _hold_trace_pipe(60)
    try:
        if not exclusive:    # older kernels share the pipe: it reads at once
            df = labkit.read_trace_pipe(timeout=0.3, idle=0.1, wait=0.5)
            assert list(df.columns) == ["task", "pid", "cpu", "ts", "event", "message"]
            return
        t0 = time.monotonic()
        with pytest.raises(labkit.BusyError) as e:
            labkit.read_trace_pipe(timeout=0.3, idle=0.1, wait=0.5)
        assert 0.4 <= time.monotonic() - t0 < 10
        pids = [pid for pid, _ in e.value.holders]
        assert child.pid in pids, e.value.holders
        msg = str(e.value)
        assert f"pid {child.pid} (/usr/bin/python3 -c" in msg and "one process at a time" in msg, msg
        assert "waited 0.5 s" in msg and "run this again" in msg, msg
    finally:
        child.kill()
        child.wait()
    # let go: it reads again
    labkit.read_trace_pipe(timeout=0.2, idle=0.1, wait=60)
