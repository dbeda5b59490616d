"""Lesson 04's exercise checkers, tried with the half-fixes students write (each
judged incorrect, with a message that names the mistake) and with right answers
written in other ways (BCC macros, per-CPU maps, a %%bpf Program): real kernel.
q1 runs on test frames (BPF_PROG_TEST_RUN), q2 on writes to /dev/null."""

from __future__ import annotations

import re

import pytest

import labkit
from labkit.exercises.lessons import lesson04

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root", "tracefs")]

# ============================================================== q1: the bounds check
XDP_HEAD = """#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>

BPF_ARRAY(counts, u64, 3);           // 0: IPv4, 1: ARP, 2: anything else
"""


def xdp(check: str, body: str | None = None) -> str:
    body = body or """
    u16 proto = bpf_ntohs(eth->h_proto);
    int idx = proto == ETH_P_IP ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;"""
    return XDP_HEAD + """
int lk_count_ethertypes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
""" + check + body + "\n}\n"


Q1_WRONG = [
    ("check with >= (a 14-byte frame refused)",
     xdp("    if ((void *)(eth + 1) >= data_end)\n        return XDP_PASS;"),
     r"14-byte frame .* was not counted.*not >="),
    ("check 12 bytes only (h_proto unproven)",
     xdp("    if (data + 12 > data_end)\n        return XDP_PASS;"),
     r"verifier refused the program: .*packet"),
    ("check Ethernet + IPv4 header sizes",
     xdp("    if (data + sizeof(struct ethhdr) + sizeof(struct iphdr) > data_end)\n        return XDP_PASS;"),
     r"14-byte frame \(just the Ethernet header\), EtherType IPv4 was not counted"),
    ("check 60 bytes, the minimum Ethernet frame",
     xdp("    if (data + 60 > data_end)\n        return XDP_PASS;"),
     r"an ARP request of 42 bytes was not counted"),
    ("drops short frames",
     xdp("    if ((void *)(eth + 1) > data_end)\n        return XDP_DROP;"),
     r"returns XDP_DROP on some path.*pass every frame"),
    ("drops short frames, by falling through",
     xdp("    if ((void *)(eth + 1) <= data_end) {\n        u16 p = bpf_ntohs(eth->h_proto);\n"
         "        int i = p == ETH_P_IP ? 0 : p == ETH_P_ARP ? 1 : 2;\n        counts.atomic_increment(i);\n"
         "        return XDP_PASS;\n    }", "\n    return XDP_DROP;"),
     r"returns XDP_DROP on some path"),
    ("counts before the check",
     xdp("", """
    u16 proto = bpf_ntohs(eth->h_proto);
    int idx = proto == ETH_P_IP ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    if ((void *)(eth + 1) > data_end)        // too late: the header was read above
        return XDP_PASS;
    return XDP_PASS;"""),
     r"verifier refused the program: .*packet"),
    ("second read past the checked bound",
     xdp("    if ((void *)(eth + 1) > data_end)\n        return XDP_PASS;", """
    u16 proto = bpf_ntohs(eth->h_proto);
    struct iphdr *ip = (void *)(eth + 1);
    int idx = proto == ETH_P_IP && ip->version == 4 ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;"""),
     r"verifier refused the program: .*packet"),
    ("no byte-order conversion",
     xdp("    if ((void *)(eth + 1) > data_end)\n        return XDP_PASS;", """
    int idx = eth->h_proto == ETH_P_IP ? 0 : eth->h_proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;"""),
     r"IPv4 \(ping\) frame of 42 bytes was counted in counts\[2\].*bpf_ntohs"),
    ("stops counting: returns before the count",
     xdp("    if ((void *)(eth + 1) > data_end)\n        return XDP_PASS;", """
    u16 proto = bpf_ntohs(eth->h_proto);
    if (proto != ETH_P_IP && proto != ETH_P_ARP)
        return XDP_PASS;                     // "other" is never counted
    int idx = proto == ETH_P_IP ? 0 : 1;
    u64 *n = counts.lookup(&idx);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;"""),
     r"an IPv6 frame was not counted"),
]

Q1_RIGHT = [
    ("sizeof(*eth), switch, atomic_increment",
     XDP_HEAD.replace("BPF_ARRAY(counts, u64, 3);", "BPF_ARRAY(counts, u64, 3);\n") + """
int count_types(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)eth + sizeof(*eth) > data_end)
        return XDP_PASS;
    int idx;
    switch (bpf_ntohs(eth->h_proto)) {
    case ETH_P_IP:  idx = 0; break;
    case ETH_P_ARP: idx = 1; break;
    default:        idx = 2;
    }
    counts.atomic_increment(idx);
    return XDP_PASS;
}
"""),
    ("data + 14, htons constants, per-CPU array",
     """#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
BPF_PERCPU_ARRAY(counts, u64, 3);
int count_types(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *data_end = (void *)(long)ctx->data_end;
    int idx = 2;
    if (data + 14 <= data_end) {
        u16 type = *(u16 *)(data + 12);
        if (type == bpf_htons(ETH_P_IP))
            idx = 0;
        else if (type == bpf_htons(ETH_P_ARP))
            idx = 1;
    } else {
        return XDP_PASS;
    }
    u64 *n = counts.lookup(&idx);
    if (n)
        *n += 1;
    return XDP_PASS;
}
"""),
    ("aborts when the lookup fails (a path no frame takes)",
     xdp("    if ((void *)(eth + 1) > data_end)\n        return XDP_PASS;", """
    u16 proto = bpf_ntohs(eth->h_proto);
    u32 idx = proto == ETH_P_IP ? 0 : proto == ETH_P_ARP ? 1 : 2;
    u64 *n = counts.lookup(&idx);
    if (!n)
        return XDP_ABORTED;
    __sync_fetch_and_add(n, 1);
    return XDP_PASS;""")),
    ("short frames counted as other (allowed)",
     xdp("    int idx = 2;\n    if ((void *)(eth + 1) <= data_end) {\n"
         "        u16 p = bpf_ntohs(eth->h_proto);\n        idx = p == ETH_P_IP ? 0 : p == ETH_P_ARP ? 1 : 2;\n    }",
         "\n    counts.increment(idx);\n    return XDP_PASS;")),
]

# ============================================================== q2: the bounded loop
ARGS = """#include "labkit.h"
struct sys_enter_write_args {
    u64 common;
    s32 syscall_nr;
    u32 pad;
    u64 fd;
    u64 buf;
    u64 count;
};
BPF_HASH(newlines, u32, u64);
"""


def loop(cond: str, test: str = "c == '\\n'", tail: str | None = None) -> str:
    tail = tail or """    u32 fd = args->fd;
    u64 zero = 0;
    u64 *total = newlines.lookup_or_try_init(&fd, &zero);
    if (total)
        __sync_fetch_and_add(total, n);"""
    return ARGS + """
int lk_count_newlines(struct sys_enter_write_args *args)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!lk_wanted(tgid))
        return 0;
    const char *buf = (const char *)args->buf;
    u64 n = 0;
    for (u64 i = 0; %s; i++) {
        char c = 0;
        bpf_probe_read_user(&c, 1, buf + i);
        if (%s)
            n++;
    }
%s
    return 0;
}
""" % (cond, test, tail)


Q2_WRONG = [
    ("no i < count (reads past the write)", loop("i < 64"),
     r"5-byte write with 2 newlines was counted as \d+.*stop at `i < args->count`"),
    ("i <= count", loop("i <= args->count && i < 64"),
     r"1-byte write with 1 newline was counted as 2.*i < args->count"),
    ("bound 63", loop("i < args->count && i < 63"),
     r"exactly 64 bytes .* was counted as 1.*last one included"),
    ("bound 65", loop("i < args->count && i <= 64"),
     r"65-byte write .* counted as 2.*only the first 64 bytes"),
    ("counts bytes, not newlines", loop("i < args->count && i < 64", "c"),
     r"counts bytes, not newlines"),
    ("keyed by the process id", loop("i < args->count && i < 64", tail="""    u64 zero = 0;
    u64 *total = newlines.lookup_or_try_init(&tgid, &zero);
    if (total)
        __sync_fetch_and_add(total, n);"""),
     r"one under the process id \d+: key the map by args->fd"),
    ("replaces instead of adding", loop("i < args->count && i < 64", tail="""    u32 fd = args->fd;
    newlines.update(&fd, &n);"""),
     r"two writes with 2 and 1 newlines to one file descriptor left 1.*do not replace"),
    ("reads 64 bytes once, tests only the first", ARGS + """
int lk_count_newlines(struct sys_enter_write_args *args)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    char data[64] = {};
    bpf_probe_read_user(data, sizeof(data), (void *)args->buf);
    u64 n = 0;
    for (int i = 0; i < 64 && i < args->count; i++)
        if (data[0] == '\\n')                 // data[0], not data[i]
            n++;
    u32 fd = args->fd;
    newlines.increment(fd, n);
    return 0;
}
""", r"5-byte write with 2 newlines was counted as 0"),
]

Q2_RIGHT = [
    ("TRACEPOINT_PROBE, #pragma unroll, break at count", """#include "labkit.h"
BPF_HASH(newlines, int, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_write)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    const char *buf = args->buf;
    u64 n = 0, count = args->count;       // read once: an unrolled loop may not re-read the context
    #pragma unroll
    for (int i = 0; i < 64; i++) {
        if (i >= count)
            break;
        char c;
        if (bpf_probe_read_user(&c, 1, buf + i) == 0 && c == '\\n')
            n++;
    }
    int fd = args->fd;
    newlines.increment(fd, n);
    return 0;
}
"""),
    ("one 64-byte read, then the loop; per-CPU map", ARGS.replace("BPF_HASH(newlines, u32, u64);",
                                                                  "BPF_PERCPU_HASH(newlines, u64, u64);") + """
int count_nl(struct sys_enter_write_args *args)
{
    if (!lk_wanted(bpf_get_current_pid_tgid() >> 32))
        return 0;
    char data[64] = {};
    bpf_probe_read_user(data, sizeof(data), (const void *)args->buf);
    u64 len = args->count < 64 ? args->count : 64;
    u64 n = 0;
    for (int i = 0; i < 64; i++)
        if (i < len && data[i] == '\\n')
            n++;
    u64 fd = args->fd;
    u64 zero = 0, *total = newlines.lookup_or_try_init(&fd, &zero);
    if (total)
        *total += n;
    return 0;
}
"""),
]


# partial credit: the parts some wrong answers pass (checked with the wrong answers, no extra runs)
PARTS = {
    "check with >= (a 14-byte frame refused)": ({
        "passes every frame": True, "counts IPv4 frames in counts[0]": True, "counts ARP frames in counts[1]": True,
        "counts other frames in counts[2]": True,
        "counts a frame of exactly 14 bytes (a whole Ethernet header)": False}, 0.8),
    "no i < count (reads past the write)": ({
        "per file descriptor": True, "counts newlines, not bytes": True, "stops at the write's count": False,
        "looks at the first 64 bytes": True, "adds up every write to a descriptor": False}, 0.6),
    "replaces instead of adding": ({
        "per file descriptor": True, "counts newlines, not bytes": True, "stops at the write's count": True,
        "looks at the first 64 bytes": True, "adds up every write to a descriptor": False}, 0.8),
}


def assert_parts(res, case: str) -> None:
    if case in PARTS:
        parts, score = PARTS[case]
        assert {p.name: p.passed for p in res.parts} == parts
        assert res.score == score


@pytest.fixture
def ex():
    return lesson04.build()


def check(exercise, answer):
    res = exercise.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.mark.parametrize("case,answer,expected", [pytest.param(i, a, m, id=i) for i, a, m in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    res = check(ex.q1, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    assert_parts(res, case)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q1_RIGHT])
def test_q1_right_answers_written_other_ways_are_correct(ex, answer):
    res = check(ex.q1, answer)
    assert res.status == "correct", res.message


@pytest.mark.parametrize("case,answer,expected", [pytest.param(i, a, m, id=i) for i, a, m in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    res = check(ex.q2, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    assert_parts(res, case)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q2_RIGHT])
def test_q2_right_answers_written_other_ways_are_correct(ex, answer):
    res = check(ex.q2, answer)
    assert res.status == "correct", res.message


def test_the_unfixed_snippet_is_refused_by_the_verifier(ex):
    # (the unfixed loop takes the verifier ~8 s to refuse: the notebook test shows that one)
    res = check(ex.q1, "verifier_missing_bounds")
    assert res.status == "incorrect" and "verifier refused" in res.message, res.message


def test_the_references_are_correct_as_the_checker_runs_them(ex):
    for q in (ex.q1, ex.q2):
        res = q.check_solution()
        assert res.correct, res.message
        assert q.status == "not attempted"


def test_bpf_cell_programs_are_correct(ex):
    with labkit.Lab() as lab:     # the student's %%bpf programs: the checker loads its own copies
        p1 = lab.load(Q1_RIGHT[0][1], name="my_bounds_fix", need="xdp")
        p2 = lab.load(Q2_RIGHT[1][1], name="my_loop_fix", defines={"LK_FILTER_PID": 1})
        assert check(ex.q1, p1).correct and check(ex.q2, p2).correct
