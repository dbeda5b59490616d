"""Lesson 08's exercises on the real kernel: q1, an egress filter that drops
UDP to one port and nothing else; q2, DSCP 46 set on egress with the IPv4
checksum kept right. Catalogues of wrong answers (the mistakes students make:
byte order, all UDP, the source port, XDP's verdicts, no bounds check, the UDP
header at a fixed offset, no checksum, a checksum recomputed over 20 bytes or
updated without the end-around carry, the TOS bits) each judged incorrect with
a message naming the mistake, and of right answers written in different ways,
each judged correct.
Every check builds its own sandbox and sends traffic only there."""

from __future__ import annotations

import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson08 import build

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

Q1_DROP = "UDP to port 4444 is dropped"
Q1_OTHER = "UDP to another port (5000) leaves"
Q1_SWAPPED = "UDP to port 23569 (4444 with its bytes swapped) leaves"
Q1_FROM = "UDP from source port 4444 leaves"
Q1_DROP_OPTS = "UDP to port 4444 with IP options is dropped (IHL 6 and 15)"
Q1_OTHER_OPTS = "UDP to port 5000 with IP options leaves (a stream-identifier option, stream 4444)"
Q1_TCP = "TCP to port 4444 leaves"
Q1_ARP = "ARP and ping leave"
Q1_PARTS = [Q1_DROP, Q1_OTHER, Q1_SWAPPED, Q1_FROM, Q1_DROP_OPTS, Q1_OTHER_OPTS, Q1_TCP, Q1_ARP]

Q2_ARRIVE = "the datagrams arrive (the IPv4 checksum is right)"
Q2_DSCP = "the receiver sees DSCP 46"
Q2_ECN = "the ECN bits are kept"
Q2_OPTS = "datagrams with IP options arrive (IHL 6 and 15)"
Q2_CARRY = "the checksum stays right when the update borrows (headers with checksums 0x0001, 0x0077, 0xff77)"
Q2_TCP = "TCP still connects"
Q2_ARP = "ARP and ping still work"
Q2_PARTS = [Q2_ARRIVE, Q2_DSCP, Q2_ECN, Q2_OPTS, Q2_CARRY, Q2_TCP, Q2_ARP]

HEADERS = """\
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>
"""


def port_filter(test: str, *, drop: str = "TC_ACT_SHOT", keep: str = "TC_ACT_OK", proto_check: bool = True,
                not_ip: str = "TC_ACT_OK", bounds: bool = True, udp_at: str = "(void *)ip + ip->ihl * 4") -> str:
    """A q1 answer: ``test`` decides on ``udp`` (at ``udp_at``); the rest is the usual parsing."""
    return HEADERS + f"""
int egress_filter(struct __sk_buff *skb)
{{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return {keep};
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return {not_ip};
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return {keep};
    {"if (ip->protocol != IPPROTO_UDP) return " + keep + ";" if proto_check else ""}
    struct udphdr *udp = {udp_at};
    {"if ((void *)(udp + 1) > data_end) return " + keep + ";" if bounds else ""}
    if ({test})
        return {drop};
    return {keep};
}}
"""


# ------------------------------------------------------------------ q1 wrong answers
Q1_WRONG = [
    # (id, answer, message regex, parts that must fail, whether exactly those fail)
    ("byte order", port_filter("udp->dest == 4444"), r"byte order", {Q1_DROP, Q1_SWAPPED, Q1_DROP_OPTS}, True),
    ("drops all UDP", port_filter("1"), r"not all UDP", {Q1_OTHER, Q1_SWAPPED, Q1_FROM, Q1_OTHER_OPTS}, True),
    ("source port (ingress thinking)", port_filter("udp->source == bpf_htons(4444)"), r"destination \(udp->dest\)",
     {Q1_DROP, Q1_FROM, Q1_DROP_OPTS}, True),
    ("any protocol", port_filter("udp->dest == bpf_htons(4444)", proto_check=False), r"only UDP", {Q1_TCP}, True),
    ("drops what is not IPv4", port_filter("udp->dest == bpf_htons(4444)", not_ip="TC_ACT_SHOT"), r"ARP",
     {Q1_ARP}, True),
    # XDP's verdicts: XDP_PASS is 2 = TC_ACT_SHOT, so everything else is dropped. XDP_DROP (1) is
    # TC_ACT_RECLASSIFY: tcx passes it, a cls_bpf filter (6.1) loops and drops: part 1 is kernel-dependent
    ("XDP constants", "#include <uapi/linux/bpf.h>\n" + port_filter("udp->dest == bpf_htons(4444)", drop="XDP_DROP",
                                                                    keep="XDP_PASS", not_ip="XDP_PASS"),
     r"TC_ACT_SHOT \(2\) drops it; XDP_PASS is 2", {Q1_OTHER, Q1_SWAPPED, Q1_FROM, Q1_TCP, Q1_ARP}, False),
    ("no UDP bounds check", port_filter("udp->dest == bpf_htons(4444)", bounds=False),
     r"verifier refused.*bounds check", None, True),
    # the UDP header right after a 20-byte IP header: with IP options the port is read from the options
    ("UDP header at a fixed offset", port_filter("udp->dest == bpf_htons(4444)", udp_at="(void *)(ip + 1)"),
     r"datagrams to UDP port 4444 whose IP header carries options left the host \(3 of 3 with IHL 6 \(.*\); 3 of 3 "
     r"with IHL 15 .*\) though those without options were dropped: with options the UDP header is not at offset 34 "
     r"\(14 \+ 20\).*256 with IHL 6, 9988 with IHL 15.*ip->ihl \* 4.*0 of 3 datagrams to UDP port 5000 whose IP "
     r"header carries a stream-identifier option, stream 4444 \(IHL 6\) arrived though those without options did.*"
     r"reads 4444 as the destination port", {Q1_DROP_OPTS, Q1_OTHER_OPTS}, True),
]

# ------------------------------------------------------------------ q1 right answers
Q1_LOAD_BYTES = HEADERS + """
int no_4444(struct __sk_buff *skb)
{
    if (skb->protocol != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)) < 0 || ip.protocol != IPPROTO_UDP)
        return TC_ACT_OK;
    u16 dport;
    if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + ip.ihl * 4 + __builtin_offsetof(struct udphdr, dest), &dport, 2) < 0)
        return TC_ACT_OK;
    return bpf_ntohs(dport) == 4444 ? TC_ACT_SHOT : TC_ACT_OK;
}
"""

Q1_HELPER = HEADERS + """
static __always_inline int is_blocked(struct udphdr *udp) { return bpf_ntohs(udp->dest) == 4444; }

int lk_block(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    if (ip->protocol == IPPROTO_UDP) {
        struct udphdr *udp = (void *)ip + (ip->ihl << 2);
        if ((void *)(udp + 1) <= end && is_blocked(udp))
            return TC_ACT_SHOT;
    }
    return TC_ACT_OK;
}
"""

Q1_RIGHT = [("skb_load_bytes", Q1_LOAD_BYTES), ("direct access, helper", Q1_HELPER)]

# ------------------------------------------------------------------ q2
DSCP_HEAD = HEADERS + """
#define IP_OFF sizeof(struct ethhdr)
#define CSUM_OFF (IP_OFF + __builtin_offsetof(struct iphdr, check))
"""


def dscp(new_tos: str, csum: str = "bpf_l3_csum_replace(skb, CSUM_OFF, old_word, new_word, 2);",
         ethertype: bool = True) -> str:
    """A q2 answer: ``new_tos`` from ``tos``; written with store_bytes, the checksum by ``csum``."""
    check = "|| eth->h_proto != bpf_htons(ETH_P_IP)" if ethertype else ""
    return DSCP_HEAD + f"""
int set_dscp(struct __sk_buff *skb)
{{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end {check})
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    u8 tos = ip->tos;
    u8 old_tos = tos;
    u16 old_word = *(u16 *)ip;
    u8 new_tos = {new_tos};
    u16 new_word = old_word;
    ((u8 *)&new_word)[1] = new_tos;
    bpf_skb_store_bytes(skb, IP_OFF + 1, &new_tos, 1, 0);
    {csum}
    return TC_ACT_OK;
}}
"""


RIGHT_TOS = "(tos & 3) | (46 << 2)"

Q2_DIRECT = HEADERS + """
int ef(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    u16 *word = (u16 *)ip;
    u16 old = *word;
    ip->tos = (ip->tos & 0x3) | 0xb8;          // written in place: direct packet access
    u16 now = *word;
    // RFC 1624: HC' = ~(~HC + ~m + m')
    u32 sum = (u16)~ip->check + (u16)~old + now;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip->check = ~sum;
    return TC_ACT_OK;
}
"""

# the checksum summed again over 10 words ("no options here"): wrong for a header with options
Q2_RECOMPUTE_20 = HEADERS + """
int ef_recompute(struct __sk_buff *skb)
{
    if (skb->protocol != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)) < 0)
        return TC_ACT_OK;
    ip.tos = (46 << 2) | (ip.tos & 3);
    ip.check = 0;
    u16 *w = (u16 *)&ip;
    u32 sum = 0;
    #pragma unroll
    for (int i = 0; i < 10; i++)        // the whole header (no options here), again
        sum += w[i];
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.check = ~sum;
    bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip), 0);
    return TC_ACT_OK;
}
"""


def csum_by_hand(update: str) -> str:
    """A q2 answer that writes the TOS in place and updates ``ip->check`` by ``update`` (from ``old``, ``now``:
    the header's first 16-bit word before and after, as in memory)."""
    return HEADERS + """
int ef_by_hand(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    u16 *word = (u16 *)ip;
    u16 old = *word;
    ip->tos = (ip->tos & 0x3) | 0xb8;
    u16 now = *word;
    """ + update + """
    return TC_ACT_OK;
}
"""


# "the checksum goes down by what the word went up by": two's complement arithmetic, in network byte order
# (wrong only below 0x78, the change; the same on the words as they are in memory, `ip->check -= now - old`,
# is wrong for about half of all checksums and was caught before)
Q2_TWOS_COMPLEMENT = csum_by_hand(
    "ip->check = bpf_htons(bpf_ntohs(ip->check) - (bpf_ntohs(now) - bpf_ntohs(old)));")

Q2_WRONG = [
    ("no checksum update", dscp(RIGHT_TOS, csum=""), r"checksum", {Q2_ARRIVE, Q2_DSCP, Q2_ECN}, False),
    ("checksum with the byte in the wrong half", dscp(RIGHT_TOS, csum="bpf_l3_csum_replace(skb, CSUM_OFF, "
                                                     "old_tos, new_tos, 2);"),
     r"checksum", {Q2_ARRIVE, Q2_DSCP, Q2_ECN}, False),
    ("DSCP not shifted", dscp("(tos & 3) | 46"), r"upper six bits", {Q2_DSCP}, True),
    ("ECN bits overwritten", dscp("46 << 2"), r"ECN", {Q2_ECN}, True),
    ("DSCP OR-ed in", dscp("tos | (46 << 2)"), r"DSCP 62", {Q2_DSCP}, True),
    ("no ethertype check", dscp(RIGHT_TOS, ethertype=False), r"ethertype", {Q2_ARP}, True),
    ("checksum recomputed over 20 bytes", Q2_RECOMPUTE_20,
     r"datagrams whose IP header carries options did not all arrive \(IHL 6 \(.*\): 0 of 3; IHL 15 .*: 0 of 3\) "
     r"\(the receiver's IP stack counted 6 bad headers, Ip InHdrErrors\) though those without did: the header "
     r"checksum covers the whole header, options included, ip->ihl \* 4 bytes", {Q2_OPTS}, True),
    ("RFC 1624 folded once",
     Q2_DIRECT.replace("    sum = (sum & 0xffff) + (sum >> 16);\n    ip->check", "    ip->check"),
     r"makes the update borrow past 16 bits did not all arrive \(checksum 0xff77: 0 of 3\).*though the others did.*"
     r"folded back into 16 bits.*twice \(the first fold can carry again\)", {Q2_CARRY}, True),
    ("checksum difference without the borrow", Q2_TWOS_COMPLEMENT,
     r"makes the update borrow past 16 bits did not all arrive \(checksum 0x0001: 0 of 3; checksum 0x0077: 0 of 3\)"
     r".*one's complement sum, so a carry \(or borrow\) out of the top bit comes back in", {Q2_CARRY}, True),
]

# the whole header summed again, options included (ip->ihl * 2 words)
Q2_RECOMPUTE = HEADERS + """
int ef_recompute(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    ip->tos = (46 << 2) | (ip->tos & 3);
    ip->check = 0;
    u32 words = ip->ihl * 2;
    u16 *w = (u16 *)ip;
    u32 sum = 0;
    for (int i = 0; i < 30; i++) {        // 60 bytes at most
        if (i >= words || (void *)(w + 1) > data_end)
            break;
        sum += *w++;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip->check = ~sum;
    return TC_ACT_OK;
}
"""

Q2_RIGHT = [("direct write, RFC 1624", Q2_DIRECT), ("recomputed checksum, whole header", Q2_RECOMPUTE)]

CELL = """%%bpf dscp_cell
""" + dscp(RIGHT_TOS)


@pytest.fixture(scope="module")
def ex():
    return build()


def judge(res, parts, expected, failing, exact):
    print(res.seconds, res.message, res.details)
    assert res.status == INCORRECT, res
    assert re.search(expected, res.message, re.S), res.message
    if failing is None:
        assert res.parts == [] and res.score == 0.0
        return
    assert [p.name for p in res.parts] == parts
    failed = {p.name for p in res.parts if not p.passed}
    assert (failed == failing) if exact else (failing <= failed), res.parts


@pytest.mark.parametrize("answer, expected, failing, exact", [r[1:] for r in Q1_WRONG], ids=[r[0] for r in Q1_WRONG])
def test_q1_wrong_answer_is_judged_incorrect_and_told_why(ex, answer, expected, failing, exact):
    judge(ex.q1.check(answer), Q1_PARTS, expected, failing, exact)


@pytest.mark.parametrize("answer", [r[1] for r in Q1_RIGHT], ids=[r[0] for r in Q1_RIGHT])
def test_q1_right_answer_is_judged_correct(ex, answer):
    res = ex.q1.check(answer)
    print(res.seconds, res.message, res.details)
    assert res.status == CORRECT, res
    assert res.score == 1.0 and [p.name for p in res.parts] == Q1_PARTS


@pytest.mark.parametrize("answer, expected, failing, exact", [r[1:] for r in Q2_WRONG], ids=[r[0] for r in Q2_WRONG])
def test_q2_wrong_answer_is_judged_incorrect_and_told_why(ex, answer, expected, failing, exact):
    judge(ex.q2.check(answer), Q2_PARTS, expected, failing, exact)


@pytest.mark.parametrize("answer", [r[1] for r in Q2_RIGHT], ids=[r[0] for r in Q2_RIGHT])
def test_q2_right_answer_is_judged_correct(ex, answer):
    res = ex.q2.check(answer)
    print(res.seconds, res.message, res.details)
    assert res.status == CORRECT, res
    assert res.score == 1.0 and res.details["tos_received"] == ["0xba"] * 3
    assert res.details["udp_with_options_received"] == {"IHL 6": 3, "IHL 15": 3}
    assert res.details["udp_carry_received"] == {"0x0001": 3, "0x0077": 3, "0xff77": 3}
    assert res.details["target_ip_in_hdr_errors"] == 0


def test_partial_credit_names_the_parts(ex):
    """Overwriting the ECN bits passes six of seven parts: grading sees which."""
    res = ex.q2.check(dscp("46 << 2"))
    assert res.status == INCORRECT and res.score == round(6 / 7, 3)
    assert [(p.name, p.passed) for p in res.parts] == [(n, n != Q2_ECN) for n in Q2_PARTS]


def test_bpf_cell_program_and_the_references(ex):
    """A %%bpf cell's Program is judged like C text (and stays the student's);
    each reference passes its own check without counting as the student's."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = student_lab = labkit.Lab()
    try:
        result = sh.run_cell(CELL)
        assert result.error_in_exec is None and result.error_before_exec is None
        prog = sh.user_ns["dscp_cell"]
        res = ex.q2.check(prog)
        assert res.status == CORRECT, res
        assert not prog.closed
    finally:
        student_lab.close()
        sh.user_ns.clear()
        InteractiveShell.clear_instance()
    fresh = build()
    for q in (fresh.q1, fresh.q2):
        assert q.check_solution().status == CORRECT
        assert q.status == "not attempted"
    assert labkit.live_attachments() == []


def test_a_sandbox_that_delivers_nothing_is_no_verdict():
    """The checker's baseline (before the answer is attached): a sandbox whose target side is down delivers
    nothing, and that is a SandboxError saying so, not a verdict on the answer; an intact one passes at once."""
    import time

    from labkit.exercises.lessons import lesson08
    from labkit.net.sandbox import Sandbox

    with Sandbox() as sb:
        lesson08._pin_neighbours(sb)
        t0 = time.monotonic()
        lesson08._baseline(sb, wait=1.0)
        assert time.monotonic() - t0 < 1.0
        assert sb.run(["ip", "link", "set", "dev", sb.target_iface, "down"], side="target").returncode == 0
        with pytest.raises(labkit.SandboxError, match=r"delivered none of its datagrams to port 5999 within 1 s.*"
                                                       r"run the check again"):
            lesson08._baseline(sb, wait=1.0)
    assert labkit.live_attachments() == []
