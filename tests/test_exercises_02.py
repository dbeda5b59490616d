"""Lesson 02's exercise on the real kernel: the classic XDP program made
ARP-safe. A catalogue of wrong answers (the half-fixes students write), each
judged incorrect with a message that names the mistake and the parts it
failed, and of right answers written in different ways, each judged correct.
Every check builds its own sandbox (198.18.0.0/15 and ULA IPv6 inside its own
namespaces) and sends traffic only there."""

from __future__ import annotations

import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises.framework import CORRECT, INCORRECT, snippet_text
from labkit.exercises.lessons.lesson02 import build

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

PING = "IPv4 ping to the target is dropped"
REPLIES = "ICMP echo replies are dropped (pings from the target fail)"
OTHER_ICMP = "other ICMP passes (port unreachable)"
UDP = "UDP passes"
TCP = "TCP passes"
ECHO_OPTS = "ICMP echo with IP options is dropped (IHL 6 and 15)"
OTHER_OPTS = "other ICMP with IP options passes (port unreachable, IHL 6 and 15)"
ARP = "ARP passes after the neighbour caches are flushed"
IPV6 = "IPv6 passes (neighbour discovery and UDP)"
ALL_PARTS = [PING, REPLIES, OTHER_ICMP, UDP, TCP, ECHO_OPTS, OTHER_OPTS, ARP, IPV6]

HEADERS = """\
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/in.h>
"""

# ------------------------------------------------------------------ wrong answers

# the most common half-fix: the ethertype bug fixed, the ICMP line left as it was
ALL_ICMP = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (bpf_ntohs(eth->h_proto) != ETH_P_IP)
        return XDP_PASS;                 // fixed: ARP and IPv6 pass
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol == IPPROTO_ICMP)
        return XDP_DROP;                 // ping is ICMP
    return XDP_PASS;
}
"""

# lets ARP through by name, still drops every other frame that is not IPv4
ARP_ONLY = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    u16 ethertype = bpf_ntohs(eth->h_proto);
    if (ethertype == ETH_P_ARP)
        return XDP_PASS;                 // ARP must pass
    if (ethertype != ETH_P_IP)
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end)
        return XDP_DROP;
    if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
        return XDP_DROP;
    return XDP_PASS;
}
"""

# "not IPv4? abort": XDP_ABORTED drops the frame too
ABORTED = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_ABORTED;              // not ours
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_ABORTED;
    if (ip->protocol == IPPROTO_ICMP) {
        struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
        if ((void *)(icmp + 1) > data_end)
            return XDP_ABORTED;
        if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
            return XDP_DROP;
    }
    return XDP_PASS;
}
"""

# reads the IP header without checking that it is in the packet
NO_IP_BOUNDS = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    unsigned char *type = (unsigned char *)(ip + 1);
    if ((void *)(type + 1) > data_end)
        return XDP_PASS;
    if (*type == 8 || *type == 0)
        return XDP_DROP;
    return XDP_PASS;
}
"""

# checks the IP header, then reads the ICMP type unchecked
NO_ICMP_BOUNDS = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)(ip + 1);
    if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
        return XDP_DROP;
    return XDP_PASS;
}
"""


def icmp_types(condition: str) -> str:
    """A right-looking program whose echo test is ``condition`` (on ``icmp->type``)."""
    return HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
    if (CONDITION)
        return XDP_DROP;
    return XDP_PASS;
}
""".replace("CONDITION", condition)


# the echo reply is what ping waits for... but it is the request that enters the target
REPLIES_ONLY = icmp_types("icmp->type == ICMP_ECHOREPLY")
# "ping" is the echo request: replies coming in are left alone
REQUESTS_ONLY = icmp_types("icmp->type == ICMP_ECHO")

# a whitelist: UDP and non-echo ICMP pass, "everything else" (TCP!) is dropped like the classic did
DROPS_TCP = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol == IPPROTO_UDP)
        return XDP_PASS;
    if (ip->protocol == IPPROTO_ICMP) {
        struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
        if ((void *)(icmp + 1) > data_end)
            return XDP_PASS;
        if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
            return XDP_DROP;
        return XDP_PASS;
    }
    return XDP_DROP;
}
"""

# compares the ethertype without byte-swapping: nothing is ever IPv4, so nothing is dropped
NO_BYTE_ORDER = HEADERS + """
int xdp_arp_safe(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != ETH_P_IP)
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)(ip + 1);
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
    if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)
        return XDP_DROP;
    return XDP_PASS;
}
"""

# the ICMP header right after a 20-byte IP header (what struct pointer arithmetic gives): with IP options
# the type is read from the options
FIXED_OFFSET = HEADERS + """
BPF_ARRAY(dropped, u64, 2);

int xdp_prog(struct xdp_md *ctx)
{
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = (void *)(long)ctx->data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)(ip + 1);
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
    if (icmp->type == ICMP_ECHO) {
        dropped.atomic_increment(0);
        return XDP_DROP;
    }
    if (icmp->type == ICMP_ECHOREPLY) {
        dropped.atomic_increment(1);
        return XDP_DROP;
    }
    return XDP_PASS;
}
"""

# "options are rare": packets with them are left alone
SKIPS_OPTIONS = icmp_types("ip->ihl == 5 && (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY)")

# (id, answer, message regex, the parts that fail: None when nothing could be tested)
WRONG = [
    ("classic_unchanged", "xdp_icmp_drop_classic", r"the ARP request was dropped.*return XDP_PASS",
     {OTHER_ICMP, OTHER_OPTS, ARP, IPV6}),
    ("drops_all_icmp", ALL_ICMP, r"port unreachable \(type 3\).*was dropped.*look at the ICMP type",
     {OTHER_ICMP, OTHER_OPTS}),
    ("arp_only_ipv6_dropped", ARP_ONLY, r"neighbour discovery, ICMPv6, was dropped.*pass IPv6", {IPV6}),
    ("aborted_for_non_ip", ABORTED, r"the ARP request was dropped.*return XDP_PASS", {ARP, IPV6}),
    ("no_ip_bounds_check", NO_IP_BOUNDS, r"verifier refused.*no bounds check.*\(void \*\)\(ip \+ 1\) > data_end",
     None),
    ("no_icmp_bounds_check", NO_ICMP_BOUNDS, r"verifier refused.*no bounds check.*ICMP header", None),
    ("drops_replies_not_requests", REPLIES_ONLY, r"pings to the target were answered.*echo requests \(ICMP type 8\)",
     {PING, ECHO_OPTS}),
    ("drops_requests_not_replies", REQUESTS_ONLY, r"pings from the target got [1-3] of 3 replies.*echo replies",
     {REPLIES, ECHO_OPTS}),
    ("drops_tcp", DROPS_TCP, r"TCP connection from the host to the target failed.*TCP must pass", {TCP}),
    ("ethertype_not_byte_swapped", NO_BYTE_ORDER,
     r"pings to the target were answered.*pings from the target got [1-3] of 3 replies",
     {PING, REPLIES, ECHO_OPTS}),
    ("icmp_at_fixed_offset_34", FIXED_OFFSET,
     r"echo whose IP header carries options reached the target \(with IHL 15 \(.*\): 2 of 2 echo requests and 2 of 2 "
     r"echo replies\) though echo without options was dropped.*not at offset 34 \(where the options are: with IHL 15 "
     r"the byte there is 1.*ip->ihl \* 4.*port unreachables whose IP header carries options were dropped \(with IHL 6 "
     r"\(.*\): 0 of 2 port unreachables arrived\) though one without options passed.*with IHL 6 the byte there is 0, "
     r"an echo reply's type",
     {ECHO_OPTS, OTHER_OPTS}),
    ("leaves_packets_with_options_alone", SKIPS_OPTIONS,
     r"echo whose IP header carries options reached the target .* though echo without options was dropped: a ping "
     r"with IP options is a ping too.*ip->ihl \* 4", {ECHO_OPTS}),
]

# ------------------------------------------------------------------ right answers

# offsets from data, bpf_ntohs, switch statements, the IP header length honoured
RIGHT_SWITCH = HEADERS + """
int no_ping(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u64 off = sizeof(struct ethhdr);

    if (data + off > data_end)
        return XDP_PASS;
    struct ethhdr *eth = data;
    switch (bpf_ntohs(eth->h_proto)) {
    case ETH_P_IP:
        break;
    default:
        return XDP_PASS;              // ARP, IPv6, VLAN, ...
    }
    struct iphdr *ip = data + off;
    if (data + off + sizeof(*ip) > data_end)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    off += ip->ihl * 4;
    struct icmphdr *icmp = data + off;
    if (data + off + sizeof(*icmp) > data_end)
        return XDP_PASS;
    switch (icmp->type) {
    case ICMP_ECHO:
    case ICMP_ECHOREPLY:
        return XDP_DROP;
    default:
        return XDP_PASS;
    }
}
"""

# BCC's map macros: drops counted per ICMP type with atomic_increment; struct
# pointer arithmetic to the IP header, the ICMP header found by the IHL; htons
RIGHT_BCC_COUNTS = HEADERS + """
BPF_ARRAY(dropped, u64, 2);

int xdp_prog(struct xdp_md *ctx)
{
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = (void *)(long)ctx->data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
    if (icmp->type == ICMP_ECHO) {
        dropped.atomic_increment(0);
        return XDP_DROP;
    }
    if (icmp->type == ICMP_ECHOREPLY) {
        dropped.atomic_increment(1);
        return XDP_DROP;
    }
    return XDP_PASS;
}
"""

# the IP header length checked, the ICMP type read through a byte pointer at the header's end
RIGHT_IHL_CHECKED = HEADERS + """
int drop_echo(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP || ip->ihl < 5)
        return XDP_PASS;
    u32 hlen = ip->ihl * 4;                  // 20 to 60 bytes: options follow the fixed part
    u8 *type = (u8 *)ip + hlen;
    if ((void *)(type + 1) > data_end)
        return XDP_PASS;
    return *type == ICMP_ECHO || *type == ICMP_ECHOREPLY ? XDP_DROP : XDP_PASS;
}
"""

# a %%bpf cell: a helper, a per-CPU count per ICMP type, and IPv6's ping dropped too
CELL = """%%bpf no_ping_cell
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>

BPF_PERCPU_ARRAY(by_type, u64, 256);

static __always_inline int is_echo(void *l4, void *data_end, u8 request, u8 reply)
{
    u8 *type = l4;
    if ((void *)(type + 1) > data_end)
        return 0;
    u32 key = *type;
    u64 *n = by_type.lookup(&key);
    if (n)
        *n += 1;
    return *type == request || *type == reply;
}

int xdp_cell(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if (data + sizeof(*eth) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = data + sizeof(*eth);
        if ((void *)ip + sizeof(*ip) > data_end)
            return XDP_PASS;
        if (ip->protocol == IPPROTO_ICMP && is_echo((void *)ip + ip->ihl * 4, data_end, 8, 0))
            return XDP_DROP;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = data + sizeof(*eth);
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        if (ip6->nexthdr == IPPROTO_ICMPV6 && is_echo(ip6 + 1, data_end, 128, 129))
            return XDP_DROP;
    }
    return XDP_PASS;
}
"""

RIGHT = [
    ("labkit_xdp_icmp_drop", "xdp_icmp_drop"),            # counts and samples events; drops ICMPv6 echo too
    ("labkit_xdp_icmp_drop_text", lambda: snippet_text("xdp_icmp_drop")),
    ("switch_offsets_ntohs", RIGHT_SWITCH),
    ("bcc_atomic_increment_htons", RIGHT_BCC_COUNTS),
    ("ihl_checked_byte_pointer", RIGHT_IHL_CHECKED),
]


def check(answer):
    """The student's verdict on ``answer`` (a lesson of its own: nothing is shared between tests)."""
    return build().q1.check(answer)


@pytest.mark.parametrize("answer,expected,failing", [w[1:] for w in WRONG], ids=[w[0] for w in WRONG])
def test_wrong_answer_is_judged_incorrect_and_told_why(lab, answer, expected, failing):
    res = check(answer)
    print(res.seconds, res.message, res.details)
    assert res.status == INCORRECT, res
    assert re.search(expected, res.message, re.S), res.message
    if failing is None:
        assert res.parts == [] and res.score == 0.0
    else:
        assert [p.name for p in res.parts] == ALL_PARTS
        assert {p.name for p in res.parts if not p.passed} == failing, res.parts
        assert res.score == round((len(ALL_PARTS) - len(failing)) / len(ALL_PARTS), 3)


@pytest.mark.parametrize("answer", [r[1] for r in RIGHT], ids=[r[0] for r in RIGHT])
def test_right_answer_is_judged_correct(lab, answer):
    res = check(answer() if callable(answer) else answer)
    print(res.seconds, res.message, res.details)
    assert res.status == CORRECT, res
    assert res.score == 1.0 and [p.name for p in res.parts] == ALL_PARTS
    assert all(p.passed for p in res.parts)
    assert res.details["ping_received"] == 0 and res.details["udp6"] == "ok"
    assert res.details["icmp_with_options_arrived"] == {"IHL 6 type 8": 0, "IHL 6 type 0": 0, "IHL 6 type 3": 2,
                                                        "IHL 15 type 8": 0, "IHL 15 type 0": 0, "IHL 15 type 3": 2}


def test_partial_credit_names_the_parts(lab):
    """The common half-fix passes seven of nine parts: grading sees which."""
    res = check(ALL_ICMP)
    assert res.status == INCORRECT and res.score == round(7 / 9, 3)
    assert [(p.name, p.passed) for p in res.parts] == [(n, n not in (OTHER_ICMP, OTHER_OPTS)) for n in ALL_PARTS]
    d = res.to_dict()
    assert d["score"] == res.score and [p["passed"] for p in d["parts"]].count(False) == 2
    assert "port unreachable" in d["parts"][ALL_PARTS.index(OTHER_ICMP)]["message"]


def test_bpf_cell_program_is_judged_correct():
    """An answer written in a %%bpf cell (a labkit.Program) loads under the checker's own name."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = student_lab = labkit.Lab()
    try:
        result = sh.run_cell(CELL)
        assert result.error_in_exec is None and result.error_before_exec is None
        prog = sh.user_ns["no_ping_cell"]
        assert isinstance(prog, labkit.Program)
        res = check(prog)
        print(res.seconds, res.message, res.details)
        assert res.status == CORRECT, res
        assert not prog.closed  # the student's program is theirs: the check did not close it
    finally:
        student_lab.close()
        sh.user_ns.clear()
        InteractiveShell.clear_instance()
    assert labkit.live_attachments() == []


def test_reference_solution_passes_its_own_check():
    ex = build()
    ref = ex.q1.check_solution()
    assert ref.status == CORRECT, ref
    assert ex.q1.status == "not attempted"


def test_two_xdp_functions_are_refused_with_a_reason(lab):
    """The classic function left next to the fix: the checker cannot know which one is the answer."""
    both = snippet_text("xdp_icmp_drop_classic") + RIGHT_SWITCH
    res = check(both)
    assert res.status == INCORRECT
    assert re.search(r"2 functions \(.*lk_xdp_classic.*no_ping.*\).*keep one function", res.message), res.message
