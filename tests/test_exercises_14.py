"""Lesson 14's exercise checkers, tried with the mistakes students make (each judged incorrect, with a
message that names the mistake) and with right answers written other ways, on the real kernel: q1's
dispatcher test-run on the checker's packets (BPF_PROG_TEST_RUN), q2's counter loaded twice with the
checker's own pin directory while two CPUs race."""

from __future__ import annotations

import os
import re

import pytest

from labkit.exercises.lessons import lesson14
from labkit.programs.pins import RECORDS

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

HEAD = '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_endian.h>\n'
SEEN = ("struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64); }"
        " udp_seen SEC(\".maps\");\n")
ICMP = 'SEC("{sec}")\nint lk_on_icmp(struct xdp_md *ctx)\n{{\n    return XDP_DROP;\n}}\n'
UDP = ('SEC("xdp")\nint lk_on_udp(struct xdp_md *ctx)\n{{\n    u32 zero = 0;\n'
       '    u64 *n = bpf_map_lookup_elem(&udp_seen, &zero);\n    if (n)\n        __sync_fetch_and_add(n, 1);\n'
       '    return {udp_ret};\n}}\n')
ARRAY = ("struct {{ __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, {size}); __type(key, u32);\n"
         "    __array(values, int (struct xdp_md *)); }} handlers SEC(\".maps\"){init};\n")
FILL = " = { .values = { [{icmp}] = (void *)&lk_on_icmp, [{udp}] = (void *)&lk_on_udp } }"
DISPATCH = ('SEC("xdp")\nint lk_dispatch(struct xdp_md *ctx)\n{{\n'
            '    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;\n'
            '    struct ethhdr *eth = data;\n    struct iphdr *ip = data + sizeof(*eth);\n'
            '    if ((void *)(ip + 1) > end{check})\n        return XDP_PASS;\n'
            '    bpf_tail_call(ctx, &handlers, {index});\n    return {after};\n}}\n')
LICENSE = 'char LICENSE[] SEC("license") = "GPL";\n'


def q1(*, fill: bool = True, icmp: int = 1, udp: int = 17, index: str = "ip->protocol", after: str = "XDP_PASS",
       check: str = " || eth->h_proto != bpf_htons(0x0800)", sec: str = "xdp", udp_ret: str = "XDP_PASS",
       size: int = 256) -> str:
    init = FILL.replace("{icmp}", str(icmp)).replace("{udp}", str(udp)) if fill else ""
    return (HEAD + SEEN + ICMP.format(sec=sec) + UDP.format(udp_ret=udp_ret) + ARRAY.format(size=size, init=init)
            + DISPATCH.format(check=check, index=index, after=after) + LICENSE)


Q1_WRONG = [
    ("prog array not filled", q1(fill=False), r"handlers is empty: a tail call to an empty slot does not jump"),
    ("wrong index: the TTL", q1(index="ip->ttl"), r"the ICMP packet passed: the dispatcher did not jump to slot 1"),
    ("no fall-through: drops after the tail call", q1(after="XDP_DROP"),
     r"TCP and GRE, whose slots are empty: XDP_DROP.*must pass the packet there"),
    ("aborts after the tail call", q1(after="XDP_ABORTED"), r"TCP and GRE.*XDP_ABORTED.*return XDP_PASS"),
    ("no ethertype check", q1(check=""), r"an ARP request \(not IPv4\): XDP_DROP.*an IPv6 packet: XDP_PASS and "
     r"counted it.*eth->h_proto == bpf_htons\(ETH_P_IP\)"),
    ("handlers swapped", q1(icmp=17, udp=1), r"the handlers are swapped \(slot 1 holds lk_on_udp"),
    ("a handler of another program type", q1(sec="tc"),
     r"refused to put program lk_on_icmp.*in slot 1 of the prog array handlers.*one type only.*SEC\(\"xdp\"\)"),
    ("UDP handler drops", q1(udp_ret="XDP_DROP"), r"the UDP datagram: XDP_DROP and counted it"),
    ("BCC's BPF_PROG_ARRAY", "#include <uapi/linux/bpf.h>\nBPF_PROG_ARRAY(handlers, 256);\n"
     "int lk_dispatch(struct xdp_md *ctx) { handlers.call(ctx, 1); return XDP_PASS; }\n", r"that is BCC C"),
]
Q1_RIGHT = [
    ("only known protocols jump, prog array of 18",
     q1(size=18).replace("    bpf_tail_call(ctx, &handlers, ip->protocol);\n",
                         "    u32 p = ip->protocol;\n    if (p == IPPROTO_ICMP || p == IPPROTO_UDP)\n"
                         "        bpf_tail_call(ctx, &handlers, p);\n")),
    ("bpf_ntohs and an else", q1(check="").replace(
        "    bpf_tail_call(ctx, &handlers, ip->protocol);\n    return XDP_PASS;\n",
        "    if (bpf_ntohs(eth->h_proto) == 0x0800)\n        bpf_tail_call(ctx, &handlers, ip->protocol);\n"
        "    else\n        return XDP_PASS;\n    return XDP_PASS;\n")),
]

HEAD2 = '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
GLOBAL = "const volatile u32 parent_pid = 0;\n"
CALLS = ("struct {{ __uint(type, BPF_MAP_TYPE_{kind}); __uint(max_entries, 1); __type(key, u32); "
         "__type(value, {value});{pin} }} calls SEC(\".maps\");\n")
PIN = " __uint(pinning, LIBBPF_PIN_BY_NAME);"
COUNTER = ('SEC("tracepoint/syscalls/sys_exit_getppid")\nint lk_count(struct trace_event_raw_sys_exit *ctx)\n{{\n'
           '    {filt}\n    u32 zero = 0;\n    {value} *n = bpf_map_lookup_elem(&calls, &zero);\n    if (n)\n'
           '        {add};\n    return 0;\n}}\n')


def q2(*, glob: str = GLOBAL, kind: str = "ARRAY", value: str = "u64", pin: str = PIN,
       filt: str = "if (ctx->ret != parent_pid) return 0;", add: str = "__sync_fetch_and_add(n, 1)",
       extra: str = "") -> str:
    return (HEAD2 + glob + CALLS.format(kind=kind, value=value, pin=pin) + extra
            + COUNTER.format(filt=filt, value=value, add=add) + LICENSE)


Q2_WRONG = [
    ("not pinned", q2(pin=""), r"nothing was pinned.*LIBBPF_PIN_BY_NAME.*the second run made a new map"),
    ("another map pinned", q2(pin="", extra="struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); "
     "__type(key, u32); __type(value, u64);" + PIN + " } total SEC(\".maps\");\n"),
     r"the pin directory holds total, not calls"),
    ("-D instead of a read-only global",
     q2(glob="#ifndef PARENT_PID\n#define PARENT_PID 0\n#endif\n", filt="if (ctx->ret != PARENT_PID) return 0;"),
     r"no read-only global 'parent_pid'.*const volatile u32 parent_pid"),
    ("a global the program can write", q2(glob="volatile u32 parent_pid = 0;\n"),
     r"no read-only global 'parent_pid'.*const volatile"),
    ("counts non-atomically", q2(add="*n += 1"), r"lost while two CPUs counted at once.*__sync_fetch_and_add"),
    ("counts every process", q2(filt=""), r"counted calls that returned another process's id too"),
    ("a hash map: the reader's definition differs", q2(kind="HASH").replace(
        "    if (n)\n        __sync_fetch_and_add(n, 1);\n",
        "    if (n)\n        __sync_fetch_and_add(n, 1);\n    else {\n        u64 one = 1;\n"
        "        bpf_map_update_elem(&calls, &zero, &one, BPF_NOEXIST);\n    }\n"),
     r"a second program declaring calls as the task does .* could not use the pin.*does not match its definition"),
]
Q2_RIGHT = [
    ("the tracepoint's own struct and a (u32) cast",
     HEAD2 + GLOBAL + CALLS.format(kind="ARRAY", value="__u64", pin=PIN)
     + "struct exit_args { u64 common; s32 nr; u32 pad; s64 ret; };\n"
       'SEC("tracepoint/syscalls/sys_exit_getppid")\nint lk_count(struct exit_args *a)\n{\n'
       "    u32 zero = 0;\n    if ((u32)a->ret == parent_pid) {\n        __u64 *n = bpf_map_lookup_elem(&calls, &zero);\n"
       "        if (n) __sync_fetch_and_add(n, 1);\n    }\n    return 0;\n}\n" + LICENSE),
]


@pytest.fixture(autouse=True)
def nothing_left():
    """Each check gives its pin directory back (the records of this process: other runs may check at once)."""
    yield
    mine = [r["dir"] for r in RECORDS.records() if r.get("pid") == os.getpid()]
    assert not mine and not [d for d in mine if os.path.exists(d)], f"pin directories left: {mine}"


@pytest.mark.parametrize("name,answer,message", Q1_WRONG, ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong(name, answer, message):
    res = lesson14.build().q1.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q1_RIGHT, ids=[r[0] for r in Q1_RIGHT])
def test_q1_right(name, answer):
    res = lesson14.build().q1.check(answer)
    assert res.status == "correct", res.message


@pytest.mark.parametrize("name,answer,message", Q2_WRONG, ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong(name, answer, message):
    res = lesson14.build().q2.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q2_RIGHT, ids=[r[0] for r in Q2_RIGHT])
def test_q2_right(name, answer):
    res = lesson14.build().q2.check(answer)
    assert res.status == "correct", res.message


def test_partial_credit():
    res = lesson14.build().q1.check(Q1_WRONG[2][1])        # drops after the tail call: 4 of 5 parts
    assert [p.passed for p in res.parts] == [True, True, True, False, True] and res.score == pytest.approx(0.8)


def test_references_pass_and_are_not_answers():
    lesson = lesson14.build()
    assert lesson.q1.check_solution().status == "correct"
    assert lesson.q2.check_solution().status == "correct"
    res = lesson.q2.check("solution_14_pinned_counter")
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message
