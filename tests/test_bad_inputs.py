"""Every bad input to the public API is a labkit error that names the thing and
says what to do, and leaves nothing behind.

One row per bad input: wrong types, numbers out of range, names that do not
exist, objects used again after they were closed or detached. Each row runs in
a fresh Lab; what the process holds (BPF fds, perf events, threads, network
namespaces, sandbox records, attachments, live panels) is read right before the
bad call and must be the same right after it.
"""

from __future__ import annotations

import os
import time
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd
import pytest

import labkit
from kstate import bpf_fds, perf_attachments
from labkit.hooks.cgroup import HOOK as CGROUP_HOOK
from labkit.hooks.cgroup import cgroup2_root
from labkit.programs.pins import RECORDS as PIN_RECORDS
from labkit.net.netns import list_netns
from labkit.net.records import list_sandboxes

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

TP = "syscalls:sys_enter_getppid"


class Env:
    """What a row works with: ``lab`` (fresh), ``sb`` (a live sandbox), ``closed_sb``,
    and whatever the row's setup makes; ``closers`` are called after the row."""

    def __init__(self, lab: labkit.Lab, sb: labkit.Sandbox, closed_sb: labkit.Sandbox):
        self.lab, self.sb, self.closed_sb = lab, sb, closed_sb
        self.closers: list[Callable[[], None]] = []

    def xdp(self, program: Any = "xdp_icmp_drop", **kw):
        kw.setdefault("iface", self.sb.target_iface)
        kw.setdefault("netns", self.sb.target_ns)
        return self.lab.attach_xdp(program, **kw)


@dataclass
class Row:
    id: str
    call: Callable[[Env], Any]
    error: str                        # the class raised: exactly this one (all are LabkitErrors)
    says: tuple[str, ...]             # text the message must hold: the thing, and what to do
    setup: Callable[[Env], None] | None = field(default=None)


def perf_vs_ring(env: Env) -> None:
    env.prog = env.lab.load("maps_perf_vs_ring")


def profiler(env: Env) -> None:
    env.prog = env.lab.load("profile_stacks")


def detached_tracepoint(env: Env) -> None:
    env.att = env.lab.attach_tracepoint("count_getppid", TP)
    env.att.detach()


CORE_BROKEN = '#include "vmlinux.h"\nint lk_x(void *ctx) { return nope; }\n'
CORE_NO_TP = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\nSEC("tracepoint/lk_nosuch/event")\n'
              'int lk_nowhere(void *ctx) { return 0; }\nchar LICENSE[] SEC("license") = "GPL";\n')


def core_objects(env: Env) -> None:
    env.obj = env.lab.load_object("core_exec_parents", name="bad_inputs_obj", attach=False)
    env.closed_obj = env.lab.load_object("core_exec_parents", name="bad_inputs_closed", attach=False)
    env.closed_obj.close()


def loaded(env: Env) -> None:
    env.prog = env.lab.load("count_getppid")


def stream(env: Env) -> None:
    env.stream = env.lab.trace_syscall("getppid", pid=os.getpid())


def closed_lab(env: Env) -> None:
    env.closed_lab = labkit.Lab()
    env.closed_lab.close()


def xdp_control(env: Env) -> None:
    env.ctl = labkit.XdpControl(env.lab, namespaces=[env.sb.target_ns])
    env.closers.append(env.ctl.close)


def router(env: Env) -> None:
    env.router = env.lab.load("xdp_redirect_router")


def cgroup(env: Env) -> None:
    env.cg = labkit.Cgroup("lk13-bad-inputs")
    env.closed_cg = labkit.Cgroup("lk13-bad-inputs-closed")
    env.closed_cg.close()
    env.closers.append(env.cg.close)


def pins(env: Env) -> None:
    env.pins = labkit.PinDir("lk14-bad-inputs")
    env.closed_pins = labkit.PinDir("lk14-bad-inputs-closed")
    env.closed_pins.close()
    env.closers.append(env.pins.close)
    env.dispatcher = env.lab.load_object("solution_14_dispatcher", name="bad_inputs_dispatcher", attach=False)


def firewall(env: Env) -> None:
    env.fw = labkit.FirewallControl(env.xdp("xdp_fw_lpm"), name="bad-input firewall")
    env.closers.append(env.fw.close)


ROWS = [
    # Lab.load
    Row("load: not text", lambda e: e.lab.load(42), "ArgumentError", ("42", "snippet name")),
    Row("load: unknown snippet", lambda e: e.lab.load("count_getpid"), "ArgumentError",
        ("'count_getpid'", "Did you mean count_getppid")),
    Row("load: define not an identifier", lambda e: e.lab.load("count_getppid", defines={"LK FILTER": 1}),
        "ArgumentError", ("'LK FILTER'", "LK_FILTER_PID")),
    Row("load: defines not a dict", lambda e: e.lab.load("count_getppid", defines=["LK_FILTER_PID"]),
        "ArgumentError", ("defines", "['LK_FILTER_PID']", "dict")),
    Row("load: cflags a string", lambda e: e.lab.load("count_getppid", cflags="-DX=1"), "ArgumentError",
        ("cflags", "'-DX=1'", "list of strings")),
    Row("load: outside not a dict", lambda e: e.lab.load("count_getppid", outside=["/bin/true"]), "ArgumentError",
        ("outside must be a dict", "'exec'", "'open'")),
    Row("load: outside a string of paths", lambda e: e.lab.load("count_getppid", outside={"open": "/etc/hostname"}),
        "ArgumentError", ("outside['open'] must be a list of paths",)),
    Row("load: outside names no file", lambda e: e.lab.load("count_getppid", outside={"exec": ["/nonexistent/lk12"]}),
        "ArgumentError", ("/nonexistent/lk12", "not a file", "program to run")),
    Row("load: outside runs what cannot run", lambda e: e.lab.load("count_getppid", outside={"exec": ["/proc/version"]}),
        "ArgumentError", ("/proc/version", "not executable")),
    Row("load: unknown need", lambda e: e.lab.load("count_getppid", need="root"), "ArgumentError",
        ("need", "'root'", "tracing")),
    # Lab.attach_tracepoint
    Row("attach_tracepoint: no category", lambda e: e.lab.attach_tracepoint("count_getppid", "getppid"),
        "ArgumentError", ("'getppid'", "category:event")),
    Row("attach_tracepoint: no such event", lambda e: e.lab.attach_tracepoint("count_getppid", "sched:no_such_event"),
        "AttachError", ("sched:no_such_event", "/sys/kernel/tracing/events/sched/")),
    Row("attach_tracepoint: program a float", lambda e: e.lab.attach_tracepoint(3.5, TP), "ArgumentError",
        ("float", "lab.load()")),
    Row("attach_tracepoint: an XDP program", lambda e: e.lab.attach_tracepoint("xdp_icmp_drop", TP),
        "ProgramKindError", ("xdp_icmp_drop.c is an XDP program", "attach_tracepoint needs", "lab.attach_xdp")),
    Row("attach_tracepoint: no such function", lambda e: e.lab.attach_tracepoint("count_getppid", TP, fn="lk_nope"),
        "ArgumentError", ("'lk_nope'", "lk_count_getppid", "fn=")),
    Row("attach_tracepoint: detached attachment's program reused",
        lambda e: e.lab.attach_tracepoint(e.att.program, TP), "ClosedError",
        ("count_getppid.c is closed", "lab.load()"), setup=detached_tracepoint),
    # Lab.attach_kprobe
    Row("attach_kprobe: no event nor syscall", lambda e: e.lab.attach_kprobe("hello_clone_classic"),
        "ArgumentError", ("event=", "syscall=")),
    Row("attach_kprobe: syscall a number", lambda e: e.lab.attach_kprobe("hello_clone_classic", syscall=7),
        "ArgumentError", ("syscall=", "7", "'clone'")),
    Row("attach_kprobe: a tracepoint program", lambda e: e.lab.attach_kprobe("trace_clone", event="kernel_clone"),
        "ProgramKindError", ("trace_clone.c is a tracepoint program", "attach_kprobe needs", "attach_tracepoint")),
    # Lab.trace_clone / trace_syscall
    Row("trace_clone: negative pid", lambda e: e.lab.trace_clone(pid=-3), "ArgumentError", ("pid", "-3", "None")),
    Row("trace_clone: pid a string", lambda e: e.lab.trace_clone(pid="me"), "ArgumentError",
        ("pid", "'me'", "positive process id")),
    Row("trace_clone: unknown hook", lambda e: e.lab.trace_clone(hook="fentry"), "ArgumentError",
        ("'fentry'", "'tracepoint'")),
    Row("trace_clone: window 0", lambda e: e.lab.trace_clone(window=0), "ArgumentError", ("window", "0", "positive")),
    Row("trace_clone: negative poll_interval", lambda e: e.lab.trace_clone(poll_interval=-1), "ArgumentError",
        ("poll_interval", "-1", "positive")),
    Row("trace_clone: ring_pages not a power of two", lambda e: e.lab.trace_clone(ring_pages=3), "ArgumentError",
        ("ring_pages", "3", "power of two")),
    Row("trace_syscall: misspelt", lambda e: e.lab.trace_syscall("opneat"), "NotSupportedError",
        ("opneat", "openat")),
    Row("trace_syscall: a number", lambda e: e.lab.trace_syscall(123), "ArgumentError", ("123", "'openat'")),
    Row("trace_syscall: window a float", lambda e: e.lab.trace_syscall("getppid", window=2.5), "ArgumentError",
        ("window", "2.5")),
    # Lab.attach_perf_event
    Row("attach_perf_event: frequency 0", lambda e: e.lab.attach_perf_event("perf_cpu_samples", frequency=0),
        "ArgumentError", ("frequency", "0", "99 is usual")),
    Row("attach_perf_event: frequency a float", lambda e: e.lab.attach_perf_event("perf_cpu_samples", frequency=9.5),
        "ArgumentError", ("frequency", "9.5")),
    Row("attach_perf_event: frequency above the kernel's most",
        lambda e: e.lab.attach_perf_event("perf_cpu_samples", frequency=10**9), "ArgumentError",
        ("1000000000", "perf_event_max_sample_rate")),
    Row("attach_perf_event: no such cpu", lambda e: e.lab.attach_perf_event("perf_cpu_samples", cpu=4096),
        "ArgumentError", ("cpu", "4096", "online CPU")),
    Row("attach_perf_event: no such function", lambda e: e.lab.attach_perf_event("perf_cpu_samples", fn="lk_nope"),
        "ArgumentError", ("'lk_nope'", "lk_sample", "fn=")),
    Row("attach_perf_event: a tracepoint program", lambda e: e.lab.attach_perf_event("count_getppid"),
        "ProgramKindError", ("count_getppid.c is a tracepoint program", "attach_perf_event needs a perf-event program",
                             "lab.attach_tracepoint")),
    Row("attach_tracepoint: a perf-event program", lambda e: e.lab.attach_tracepoint("perf_cpu_samples", TP),
        "ProgramKindError", ("perf_cpu_samples.c is a perf-event program", "lab.attach_perf_event")),
    # Lab.attach_xdp
    Row("attach_xdp: a tracepoint program", lambda e: e.xdp("count_getppid"), "ProgramKindError",
        ("count_getppid.c is a tracepoint program (its header says: hook: tracepoint syscalls:sys_enter_getppid); "
         "attach_xdp needs an XDP program (a function taking struct xdp_md *)", "lab.attach_tracepoint")),
    Row("attach_xdp: unknown mode", lambda e: e.xdp(mode="offload"), "ArgumentError", ("mode", "'offload'", "native")),
    Row("attach_xdp: unknown via", lambda e: e.xdp(via="tcx"), "ArgumentError", ("via", "'tcx'", "netlink")),
    Row("attach_xdp: no iface", lambda e: e.lab.attach_xdp("xdp_icmp_drop"), "ArgumentError",
        ("iface=", "sb.target_iface")),
    Row("attach_xdp: iface a number", lambda e: e.xdp(iface=2), "ArgumentError", ("iface", "2", "interface name")),
    Row("attach_xdp: no such interface", lambda e: e.xdp(iface="lk-nothing0"), "AttachError", ("lk-nothing0",)),
    Row("attach_xdp: no such namespace", lambda e: e.xdp(netns="lksb-does-not-exist"), "AttachError",
        ("lksb-does-not-exist",)),
    Row("attach_xdp: sample_every 0", lambda e: e.xdp(sample_every=0), "ArgumentError", ("sample_every", "0")),
    Row("attach_xdp: program None", lambda e: e.xdp(None), "ArgumentError", ("NoneType", "snippet name")),
    # closed Lab used again
    Row("closed Lab: trace_clone", lambda e: e.closed_lab.trace_clone(), "ClosedError",
        ("Lab is closed", "labkit.Lab()"), setup=closed_lab),
    Row("closed Lab: load", lambda e: e.closed_lab.load("count_getppid"), "ClosedError",
        ("Lab is closed", "labkit.Lab()"), setup=closed_lab),
    Row("closed Lab: attach_perf_event", lambda e: e.closed_lab.attach_perf_event("perf_cpu_samples"), "ClosedError",
        ("Lab is closed", "labkit.Lab()"), setup=closed_lab),
    Row("closed Lab: attach_xdp", lambda e: e.closed_lab.attach_xdp("xdp_icmp_drop", iface=e.sb.target_iface,
                                                                  netns=e.sb.target_ns),
        "ClosedError", ("Lab is closed", "labkit.Lab()"), setup=closed_lab),
    # Sandbox(...), ping, send_udp; a closed Sandbox used again
    Row("Sandbox: prefixlen 33", lambda e: labkit.Sandbox(prefixlen=33), "ArgumentError",
        ("prefixlen", "33", "15 to 30")),
    Row("Sandbox: prefixlen a string", lambda e: labkit.Sandbox(prefixlen="30"), "ArgumentError",
        ("prefixlen", "'30'")),
    Row("Sandbox: persistent a string", lambda e: labkit.Sandbox(persistent="yes"), "ArgumentError",
        ("persistent", "'yes'", "True or False")),
    Row("ping: count 0", lambda e: e.sb.ping(count=0), "ArgumentError", ("count", "0", "at least 1")),
    Row("ping: count a string", lambda e: e.sb.ping(count="5"), "ArgumentError", ("count", "'5'")),
    Row("ping: interval 0", lambda e: e.sb.ping(interval=0), "ArgumentError", ("interval", "0", "positive")),
    Row("ping: negative size", lambda e: e.sb.ping(size=-1), "ArgumentError", ("size", "-1", "65507")),
    Row("send_udp: negative count", lambda e: e.sb.send_udp(count=-1), "ArgumentError", ("count", "-1")),
    Row("send_udp: port 70000", lambda e: e.sb.send_udp(port=70000), "ArgumentError", ("port", "70000", "65535")),
    Row("send_udp: payload text", lambda e: e.sb.send_udp(payload="hello"), "ArgumentError",
        ("payload", "'hello'", ".encode()")),
    Row("send_udp: negative timeout", lambda e: e.sb.send_udp(timeout=-1), "ArgumentError", ("timeout", "-1")),
    Row("closed Sandbox: ping", lambda e: e.closed_sb.ping(), "ClosedError", ("closed", "labkit.Sandbox()")),
    Row("closed Sandbox: send_udp", lambda e: e.closed_sb.send_udp(), "ClosedError", ("closed", "labkit.Sandbox()")),
    # live(...), SyscallPicker, XdpControl
    Row("live: not a source", lambda e: labkit.live(42), "ArgumentError", ("int", "EventStream", "lab.trace_clone()")),
    Row("live: rows 0", lambda e: labkit.live(e.stream, rows=0), "ArgumentError", ("rows", "0"), setup=stream),
    Row("live: interval a string", lambda e: labkit.live(e.stream, interval="fast"), "ArgumentError",
        ("interval", "'fast'"), setup=stream),
    Row("live: by an unknown field", lambda e: labkit.live(e.stream, by="colour"), "ArgumentError",
        ("'colour'", "comm"), setup=stream),
    Row("SyscallPicker: misspelt", lambda e: labkit.SyscallPicker(e.lab, "opneat"), "NotSupportedError",
        ("'opneat'", "labkit.syscalls()")),
    Row("SyscallPicker: not a Lab", lambda e: labkit.SyscallPicker("lab"), "ArgumentError",
        ("str", "labkit.Lab()")),
    Row("XdpControl: a tracepoint program", lambda e: labkit.XdpControl(e.lab, "count_getppid"), "ProgramKindError",
        ("count_getppid.c is a tracepoint program", "attach_xdp needs")),
    Row("XdpControl: no such interface", lambda e: e.ctl.select("lk-nothing0", e.sb.target_ns), "ArgumentError",
        ("'lk-nothing0'",), setup=xdp_control),
    # map_dataframe, read_trace_pipe
    Row("map_dataframe: no such map", lambda e: labkit.map_dataframe(e.prog, "counts"), "ArgumentError",
        ("'counts'", "count_getppid.c", "BPF_HASH"), setup=loaded),
    Row("map_dataframe: a name, not a Program", lambda e: labkit.map_dataframe("count_getppid", "calls"),
        "ArgumentError", ("str", "lab.load(")),
    Row("map_dataframe: detached attachment's program", lambda e: labkit.map_dataframe(e.att.program, "calls"),
        "ClosedError", ("count_getppid.c is closed", "lab.load()"), setup=detached_tracepoint),
    # stack_frames, stack_dataframe, fold, flame_graph (lesson 10)
    Row("stack_frames: a name, not a Program", lambda e: labkit.stack_frames("profile_stacks", "stacks", 1),
        "ArgumentError", ("str", "lab.load(")),
    Row("stack_frames: no such stack map", lambda e: labkit.stack_frames(e.prog, "stacks", 1), "ArgumentError",
        ("count_getppid.c", "'stacks'", "BPF_STACK_TRACE"), setup=loaded),
    Row("stack_frames: a stack id that is no int", lambda e: labkit.stack_frames(e.prog, "stacks", "7"),
        "ArgumentError", ("stack_id", "'7'", "get_stackid()"), setup=profiler),
    Row("stack_dataframe: no such map", lambda e: labkit.stack_dataframe(e.prog, "samples"), "ArgumentError",
        ("'samples'", "profile_stacks.c"), setup=profiler),
    Row("fold: not a table", lambda e: labkit.fold([["main", "lk_mix"]]), "ArgumentError",
        ("list", "labkit.stack_dataframe(")),
    Row("fold: no column of frames", lambda e: labkit.fold(pd.DataFrame({"user_stack_id": [3], "value": [5]})),
        "ArgumentError", ("column of frames", "user_stack_id", "labkit.stack_dataframe()")),
    Row("flame_graph: not folded stacks", lambda e: labkit.flame_graph({"main;lk_mix": 3}), "ArgumentError",
        ("dict", "labkit.fold(df)")),
    Row("read_trace_pipe: negative timeout", lambda e: labkit.read_trace_pipe(timeout=-1), "ArgumentError",
        ("timeout", "-1", "positive")),
    Row("read_trace_pipe: contains a number", lambda e: labkit.read_trace_pipe(contains=5), "ArgumentError",
        ("contains", "5")),
    Row("read_trace_pipe: wait zero", lambda e: labkit.read_trace_pipe(wait=0), "ArgumentError",
        ("wait", "0", "positive")),
    # EventStream.wait / to_dataframe
    Row("EventStream.wait: timeout a string", lambda e: e.stream.wait(timeout="2"), "ArgumentError",
        ("timeout", "'2'"), setup=stream),
    Row("EventStream.wait: predicate not callable", lambda e: e.stream.wait(42), "ArgumentError",
        ("predicate", "42", "lambda df"), setup=stream),
    Row("EventStream.to_dataframe: negative last", lambda e: e.stream.to_dataframe(last=-1), "ArgumentError",
        ("last", "-1"), setup=stream),
    Row("EventStream.to_dataframe: last a string", lambda e: e.stream.to_dataframe(last="all"), "ArgumentError",
        ("last", "'all'", "None"), setup=stream),
    # Lab.open_perf_buffer, Lab.open_ring_buffer (lesson 06)
    Row("open_perf_buffer: not a Program", lambda e: e.lab.open_perf_buffer("maps_perf_vs_ring", "perf_events"),
        "ArgumentError", ("needs a Program",)),
    Row("open_perf_buffer: no such map", lambda e: e.lab.open_perf_buffer(e.prog, "events"),
        "ArgumentError", ("no map named 'events'", "BPF_PERF_OUTPUT(events)"), setup=perf_vs_ring),
    Row("open_perf_buffer: a ring buffer map", lambda e: e.lab.open_perf_buffer(e.prog, "ring"),
        "ArgumentError", ("not a perf buffer",), setup=perf_vs_ring),
    Row("open_perf_buffer: pages not a power of two",
        lambda e: e.lab.open_perf_buffer(e.prog, "perf_events", pages=3),
        "ArgumentError", ("power of two",), setup=perf_vs_ring),
    Row("open_ring_buffer: a perf buffer map",
        lambda e: e.lab.open_ring_buffer(e.prog, "perf_events"),
        "ArgumentError", ("not a ring buffer", "BPF_RINGBUF_OUTPUT"), setup=perf_vs_ring),
    # Lab.load_object (CO-RE, lesson 09)
    Row("load_object: no such snippet", lambda e: e.lab.load_object("core_nope"), "ArgumentError",
        ("'core_nope'", ".bpf.c", "core_exec_parents")),
    Row("load_object: a number", lambda e: e.lab.load_object(42), "ArgumentError", ("load_object", "42")),
    Row("load_object: empty name", lambda e: e.lab.load_object("core_exec_parents", name=""), "ArgumentError",
        ("name", "''")),
    Row("load_object: C that does not compile", lambda e: e.lab.load_object(CORE_BROKEN, name="broken"),
        "CompileError", ("broken:2:", "error")),
    Row("load_object: a tracepoint that does not exist", lambda e: e.lab.load_object(CORE_NO_TP, name="notp"),
        "AttachError", ("notp", "lk_nowhere", "tracepoint/lk_nosuch/event")),
    Row("CoreObject.map_dataframe: no such map", lambda e: e.obj.map_dataframe("counts"), "ArgumentError",
        ("'counts'", "parents"), setup=core_objects),
    Row("CoreObject.map_dataframe: closed", lambda e: e.closed_obj.map_dataframe("parents"), "ClosedError",
        ("closed", "load it again"), setup=core_objects),
    # lesson 07: Sandbox(far=...), ping(to=...), snmp(side), devmap_set, FirewallControl
    Row("Sandbox: far not a bool", lambda e: labkit.Sandbox(far="yes"), "ArgumentError",
        ("far must be True or False", "'yes'")),
    Row("Sandbox.ping: to an address outside the sandbox", lambda e: e.sb.ping(to="8.8.8.8"), "ArgumentError",
        ("'8.8.8.8'", "one of this sandbox's addresses")),
    Row("Sandbox.snmp: far side of a two-namespace sandbox", lambda e: e.sb.snmp("far"), "ArgumentError",
        ("has no far side", "Sandbox(far=True)")),
    Row("Sandbox.run: unknown side", lambda e: e.sb.run(["true"], side="middle"), "ArgumentError",
        ("'middle'", "'host', 'target' or 'far'")),
    Row("devmap_set: the root namespace", lambda e: labkit.devmap_set(e.router["out"], 0, 1, None), "ArgumentError",
        ("needs netns=", "writer's namespace"), setup=lambda e: router(e)),
    Row("devmap_set: no such device", lambda e: labkit.devmap_set(e.router["out"], 0, 99, e.sb.target_ns),
        "ArgumentError", ("no device with ifindex 99", "lo 1"), setup=lambda e: router(e)),
    Row("devmap_set: not a devmap", lambda e: labkit.devmap_set(e.router["ports"], 0, 1, e.sb.target_ns),
        "ArgumentError", ("writes a devmap", "BPF_DEVMAP"), setup=lambda e: router(e)),
    Row("FirewallControl: not an attachment", lambda e: labkit.FirewallControl("xdp_fw_lpm"), "ArgumentError",
        ("lab.attach_xdp()", "'xdp_fw_lpm'")),
    Row("FirewallControl: no LPM trie", lambda e: labkit.FirewallControl(e.plain), "ArgumentError",
        ("no map named 'blocked'", "BPF_LPM_TRIE"), setup=lambda e: setattr(e, "plain", e.xdp("xdp_icmp_drop"))),
    Row("FirewallControl.block: not a prefix", lambda e: e.fw.block("198.18.0.0/40"), "ArgumentError",
        ("'198.18.0.0/40'", "198.18.7.64/26"), setup=lambda e: firewall(e)),
    Row("FirewallControl.unblock: not blocked", lambda e: e.fw.unblock("198.18.0.0/16"), "ArgumentError",
        ("198.18.0.0/16 is not blocked",), setup=lambda e: firewall(e)),
    # Lab.attach_tc
    Row("attach_tc: an XDP program", lambda e: e.lab.attach_tc("xdp_icmp_drop", e.sb.host_iface, "egress",
                                                              netns=e.sb.host_ns), "ProgramKindError",
        ("xdp_icmp_drop.c is an XDP program", "attach_tc needs a TC program", "lab.attach_xdp")),
    Row("attach_xdp: a TC program", lambda e: e.xdp("tc_count"), "ProgramKindError",
        ("tc_count.c is a TC or socket-filter program", "attach_xdp needs", "lab.attach_tc")),
    Row("attach_tc: direction both", lambda e: e.lab.attach_tc("tc_count", e.sb.host_iface, "both",
                                                              netns=e.sb.host_ns), "ArgumentError",
        ("direction", "'both'", "'egress'")),
    Row("attach_tc: via bpf_link", lambda e: e.lab.attach_tc("tc_count", e.sb.host_iface, netns=e.sb.host_ns,
                                                            via="bpf_link"), "ArgumentError",
        ("via", "'bpf_link'", "netlink")),
    Row("attach_tc: no iface", lambda e: e.lab.attach_tc("tc_count"), "ArgumentError", ("attach_tc needs iface=",)),
    Row("attach_tc: no such interface", lambda e: e.lab.attach_tc("tc_count", "lk-nothing0", netns=e.sb.host_ns),
        "AttachError", ("lk-nothing0",)),
    Row("attach_tc: fn not a string", lambda e: e.lab.attach_tc("tc_count", e.sb.host_iface, netns=e.sb.host_ns,
                                                               fn=3), "ArgumentError", ("fn=", "3")),
    # Lab.attach_cgroup and the lab's cgroups
    Row("attach_cgroup: an XDP program", lambda e: e.lab.attach_cgroup("xdp_icmp_drop", e.cg, "egress"),
        "ProgramKindError", ("xdp_icmp_drop.c is an XDP program", "attach_cgroup needs a cgroup program",
                             "lab.attach_xdp"), setup=lambda e: cgroup(e)),
    Row("attach_cgroup: connect4 on egress", lambda e: e.lab.attach_cgroup("cgroup_connect_block", e.cg, "egress"),
        "ProgramKindError", ("cgroup_connect_block.c is a connect4 program", "attach_type='egress' needs a "
                             "cgroup_skb program"), setup=lambda e: cgroup(e)),
    Row("attach_tc: a cgroup_skb program", lambda e: e.lab.attach_tc("cgroup_skb_bytes", e.sb.host_iface,
                                                                     netns=e.sb.host_ns, fn="lk_cgroup_egress"),
        "ProgramKindError", ("cgroup_skb_bytes.c is a cgroup_skb program", "lab.attach_cgroup(program, cgroup, "
                             "'ingress' or 'egress')")),
    Row("attach_cgroup: attach type connect6", lambda e: e.lab.attach_cgroup("cgroup_connect_block", e.cg,
                                                                             "connect6"), "ArgumentError",
        ("attach_type", "'connect6'", "'connect4'"), setup=lambda e: cgroup(e)),
    Row("attach_cgroup: no cgroup", lambda e: e.lab.attach_cgroup("cgroup_connect_block"), "ArgumentError",
        ("attach_cgroup needs a cgroup", "labkit.Cgroup('web')")),
    Row("attach_cgroup: the root cgroup", lambda e: e.lab.attach_cgroup("cgroup_connect_block", cgroup2_root(),
                                                                        "connect4"), "AttachError",
        ("root of the cgroup v2 hierarchy", "every process", "force=True")),
    Row("attach_cgroup: not a cgroup", lambda e: e.lab.attach_cgroup("cgroup_connect_block", "/tmp", "connect4"),
        "AttachError", ("/tmp is not a cgroup v2 directory", "labkit.Cgroup('name')")),
    Row("attach_cgroup: a closed Cgroup", lambda e: e.lab.attach_cgroup("cgroup_connect_block", e.closed_cg,
                                                                        "connect4"), "ClosedError",
        ("is closed", "labkit.Cgroup()"), setup=lambda e: cgroup(e)),
    Row("Cgroup: a name with a slash", lambda e: labkit.Cgroup("a/b"), "ArgumentError", ("'a/b'", "like 'web'")),
    Row("Cgroup.add: not a pid", lambda e: e.cg.add(-3), "ArgumentError", ("pid", "-3"), setup=lambda e: cgroup(e)),
    # lesson 14: libbpf applications, pins, read-only globals, test runs
    Row("build_app: no such application", lambda e: labkit.build_app("app_nope"), "ArgumentError",
        ("'app_nope'", "bpf_snippets/app_nope.bpf.c", "bpf_snippets/apps/app_nope.c", "app_opens")),
    Row("build_app: a path", lambda e: labkit.build_app("../etc/passwd"), "ArgumentError",
        ("'../etc/passwd'", "app_opens")),
    Row("PinDir: a name with a slash", lambda e: labkit.PinDir("a/b"), "ArgumentError", ("'a/b'", "like 'lesson14'")),
    Row("PinDir.map: nothing pinned there", lambda e: e.pins.map("opens"), "ArgumentError",
        ("nothing is pinned at", "opens", "pinned in"), setup=pins),
    Row("PinDir.map: out of the directory", lambda e: e.pins.map("../x"), "ArgumentError", ("'../x'",), setup=pins),
    Row("PinDir: closed", lambda e: e.closed_pins.names(), "ClosedError", ("is closed", "labkit.PinDir()"),
        setup=pins),
    Row("pinned_map: not in bpffs", lambda e: labkit.pinned_map("/etc/hostname"), "ArgumentError",
        ("/etc/hostname", "not a pinned BPF object")),
    Row("load_object: a pin root outside bpffs", lambda e: e.lab.load_object("solution_14_pinned_counter",
                                                                            name="bad_pin", pin_root="/tmp"),
        "ArgumentError", ("/tmp", "not on the BPF filesystem", "labkit.PinDir")),
    Row("load_object: a pin root that is not there", lambda e: e.lab.load_object(
        "solution_14_pinned_counter", name="bad_pin", pin_root="/sys/fs/bpf/lk-no-such-dir"), "ArgumentError",
        ("/sys/fs/bpf/lk-no-such-dir", "not a directory", "labkit.PinDir")),
    Row("load_object: an unknown read-only global", lambda e: e.lab.load_object(
        "solution_14_pinned_counter", name="bad_rodata", rodata={"target_pid": 1}), "ArgumentError",
        ("no read-only global 'target_pid'", "parent_pid")),
    Row("load_object: a read-only global that does not fit", lambda e: e.lab.load_object(
        "solution_14_pinned_counter", name="bad_rodata", rodata={"parent_pid": 1 << 40}), "ArgumentError",
        ("parent_pid", "does not fit in its 4 bytes")),
    Row("load_object: rodata not a dict", lambda e: e.lab.load_object(
        "solution_14_pinned_counter", name="bad_rodata", rodata=[1]), "ArgumentError", ("rodata", "target_pid")),
    Row("CoreProgram.test_run: not bytes", lambda e: e.dispatcher.programs["lk_dispatch"].test_run("ping"),
        "ArgumentError", ("test_run", "bytes", "str"), setup=pins),
    Row("CoreMap.slots: not a prog array", lambda e: e.dispatcher.maps["udp_seen"].slots(), "ArgumentError",
        ("udp_seen", "BPF_MAP_TYPE_PROG_ARRAY"), setup=pins),
]


def test_the_table_is_big_enough():
    assert len(ROWS) >= 25
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.fixture(scope="module")
def sb():
    with labkit.Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def closed_sb():
    sb = labkit.Sandbox()
    sb.close()
    return sb


def held() -> dict[str, set]:
    """What this process holds: kernel objects, threads, namespaces and records it made, registered holders."""
    mine = os.getpid()
    others = {ns for r in list_sandboxes() if r.owner_pid != mine for ns in (r.host_ns, r.target_ns)}
    return {
        **{f"bpf {kind} fds": set(fds) for kind, fds in bpf_fds().items()},
        "perf attachments": {(e.get("fd"), e.get("prog_id")) for e in perf_attachments(mine)},
        "threads": {t.ident for t in threading.enumerate()},
        "namespaces": {ns for ns in list_netns() if ns.startswith("lksb-")} - others,  # others come and go
        "sandbox records": {r.id for r in list_sandboxes() if r.owner_pid == mine},
        "cgroups": {r["cgroup"] for r in CGROUP_HOOK.records.records() if r.get("pid") == mine},
        "pin directories": {r["dir"] for r in PIN_RECORDS.records() if r.get("pid") == mine},
        "attachments": {id(a) for a in labkit.live_attachments()},
        "panels": {id(p) for p in labkit.live_panels()},
    }


def new_since(before: dict[str, set], after: dict[str, set]) -> dict[str, set]:
    """What ``after`` holds that ``before`` did not (what went away meanwhile is not a leak)."""
    return {k: after[k] - before[k] for k in after if after[k] - before[k]}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_bad_input_is_a_labkit_error_and_leaves_nothing(row: Row, lab, sb, closed_sb):
    env = Env(lab, sb, closed_sb)
    try:
        if row.setup is not None:
            row.setup(env)
        before, existed = held(), set(list_netns())
        with pytest.raises(labkit.LabkitError) as ei:
            row.call(env)
        after = held()
    finally:
        for close in env.closers:
            close()
    e = ei.value
    assert type(e).__name__ == row.error, f"{row.id}: {type(e).__name__}, not {row.error}: {e}"
    msg = str(e)
    for text in row.says:
        assert text in msg, f"{row.id}: {text!r} not in {msg!r}"
    left = new_since(before, after)
    # another worker's sandbox that was there before the call is not ours: closing, it removes its
    # record before its namespaces, so for a moment they have no owner
    left["namespaces"] = left.get("namespaces", set()) - existed
    if left["namespaces"]:
        # another run's sandbox may be being made right now: its namespaces come a moment before its
        # record. What still has no other owner a second later, and is still there, is ours.
        time.sleep(1.0)
        others = {ns for r in list_sandboxes() if r.owner_pid != os.getpid() for ns in (r.host_ns, r.target_ns)}
        left["namespaces"] = (left["namespaces"] & set(list_netns())) - others
    left = {k: v for k, v in left.items() if v}
    assert not left, f"{row.id} left something behind: {left}"
