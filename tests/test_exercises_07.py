"""Lesson 07's exercises on the real kernel: q1, a ping responder with XDP_TX;
q2, allow and block rules in an LPM trie. A catalogue of wrong answers (the
half-fixes students write), each judged incorrect with a message that names
the mistake, and of right answers written in other ways, each judged correct.
Every check builds its own sandbox and sends traffic only there."""

from __future__ import annotations

import re

import pytest
from IPython.core.interactiveshell import InteractiveShell

import labkit
from labkit.exercises.framework import snippet_text
from labkit.exercises.lessons.lesson07 import build

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

HEADERS = """\
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/in.h>
"""

# ------------------------------------------------------------------ q1: the ping responder

PARSE = """
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
"""
SWAP_MACS = """
    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
"""
SWAP_IPS = """
    __be32 a = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = a;
"""
FIX = """
    u32 sum = icmp->checksum + bpf_htons(0x0800);
    icmp->checksum = sum + (sum >> 16);
"""


def responder(body: str) -> str:
    return HEADERS + "int xdp_pong(struct xdp_md *ctx)\n{" + body + "}\n"


# the 0x0800 added in host byte order: on a little-endian CPU that is the wrong byte
HOST_ORDER_CSUM = responder(PARSE + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;
    u32 sum = icmp->checksum + 0x0800;
    icmp->checksum = sum + (sum >> 16);
    return XDP_TX;
""")

NO_MAC_SWAP = responder(PARSE + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_TX;
""")

EVERY_ICMP = responder(PARSE + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_TX;
""")

# reads the ICMP type without checking that the ICMP header is in the packet
NO_BOUNDS = responder(PARSE.replace("""    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
""", "") + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_TX;
""")

# everything rewritten, then handed to the stack instead of sent back
PASS_NOT_TX = responder(PARSE + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_PASS;
""")

# the hint without its last step: the carry out of 16 bits is lost (the field's bytes in a little-endian
# CPU's order: wrong for checksums 0xf8ff and up whose low byte is 0xff)
NO_CARRY = responder(PARSE + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;
    icmp->checksum += bpf_htons(0x0800);
    return XDP_TX;
""")

# the same in network byte order: wrong for every checksum from 0xf800 on (1 in 32 pings)
NO_CARRY_NETWORK_ORDER = responder(PARSE + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;
    icmp->checksum = bpf_htons(bpf_ntohs(icmp->checksum) + 0x0800);
    return XDP_TX;
""")

# the ICMP header right after a 20-byte IP header: requests with IP options are not recognised
FIXED_OFFSET = responder(PARSE.replace("(void *)ip + ip->ihl * 4", "(void *)(ip + 1)") + """
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_TX;
""")

# "options are rare": requests with them are left to the stack
SKIPS_OPTIONS = responder(PARSE + """
    if (ip->ihl != 5 || icmp->type != ICMP_ECHO)
        return XDP_PASS;""" + SWAP_MACS + SWAP_IPS + """
    icmp->type = ICMP_ECHOREPLY;""" + FIX + """
    return XDP_TX;
""")

Q1_WRONG = [
    ("forgot the checksum (the lesson's starting point)", snippet_text("xdp_tx_no_checksum"),
     r"bad checksum.*covers the type"),
    ("checksum fixed in host byte order", HOST_ORDER_CSUM, r"bad checksum.*network byte order"),
    ("forgot to swap the MAC addresses", NO_MAC_SWAP, r"swap the Ethernet addresses"),
    ("answers every ICMP type", EVERY_ICMP, r"echo reply \(type 0\).*answer only type 8"),
    ("no bounds check on the ICMP header", NO_BOUNDS, r"verifier refused.*bounds check"),
    ("rewrites but returns XDP_PASS", PASS_NOT_TX, r"return XDP_TX"),
    ("checksum updated without the carry", NO_CARRY,
     r"every reply to ping was accepted, but the host's kernel rejected 3 of 4 replies to echo requests whose checksum "
     r"update carries out of 16 bits.*the request's checksum 0xf8ff, the reply's 0x0000, right 0x0100.*carry out of "
     r"the top bit comes back in at the bottom"),
    ("checksum updated without the carry, network byte order", NO_CARRY_NETWORK_ORDER,
     r"4 of 4 replies.* to echo requests whose checksum update carries out of 16 bits.*the request's checksum 0xf800, "
     r"the reply's 0x0000, right 0x0001.*one's complement sum"),
    ("ICMP header at a fixed offset", FIXED_OFFSET,
     r"echo requests whose IP header carries options reached the target's stack \(Icmp InEchos: 2 of 2 with IHL 6 "
     r"\(.*\); 2 of 2 with IHL 15 .* though those without options were answered from XDP.*not at offset 34.*"
     r"ip->ihl \* 4"),
    ("leaves requests with IP options to the stack", SKIPS_OPTIONS,
     r"echo requests whose IP header carries options reached the target's stack.*a request with options is a "
     r"request too"),
]

# xdp-tutorial's way: bpf_csum_diff over the old and new first 4 bytes of the ICMP header
CSUM_DIFF = HEADERS + """
struct icmp_common {
    u8 type;
    u8 code;
    u16 cksum;
};

static __always_inline u16 fold(u32 csum)
{
    u32 sum = (csum >> 16) + (csum & 0xffff);
    sum += sum >> 16;
    return ~sum;
}

int xdp_icmp_echo(struct xdp_md *ctx)
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
    struct icmp_common *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > data_end)
        return XDP_PASS;
    if (icmp->type != ICMP_ECHO)
        return XDP_PASS;

    struct ethhdr tmp = *eth;
    __builtin_memcpy(eth->h_dest, tmp.h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, tmp.h_dest, ETH_ALEN);
    __be32 src = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = src;

    struct icmp_common old = *icmp;
    u16 old_csum = old.cksum;
    icmp->cksum = 0;
    old.cksum = 0;
    icmp->type = ICMP_ECHOREPLY;
    struct icmp_common now = *icmp;
    icmp->cksum = fold(bpf_csum_diff((__be32 *)&old, sizeof(old), (__be32 *)&now, sizeof(now), ~old_csum & 0xffff));
    return XDP_TX;
}
"""

# RFC 1624 eqn. 3 on the whole first word, folded twice, written as a %%bpf cell would be
RFC1624_WORD = HEADERS + """
static __always_inline void swap_mac(unsigned char *a, unsigned char *b)
{
#pragma unroll
    for (int i = 0; i < ETH_ALEN; i++) {
        unsigned char t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

int pong(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_ICMP)
        return XDP_PASS;
    struct icmphdr *icmp = (void *)ip + ip->ihl * 4;
    if ((void *)(icmp + 1) > end || icmp->type != ICMP_ECHO)
        return XDP_PASS;
    swap_mac(eth->h_source, eth->h_dest);
    u32 a = ip->daddr;
    ip->daddr = ip->saddr;
    ip->saddr = a;
    u16 before = *(u16 *)icmp;
    icmp->type = ICMP_ECHOREPLY;
    u16 after = *(u16 *)icmp;
    u32 sum = (u16)~icmp->checksum + (u16)~before + after;     // HC' = ~(~HC + ~m + m')
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    icmp->checksum = ~sum;
    return XDP_TX;
}
"""

Q1_RIGHT = [
    ("bpf_csum_diff over the header (xdp-tutorial)", CSUM_DIFF),
    ("RFC 1624 on the first word, byte-wise MAC swap", RFC1624_WORD),
]
ARP, ANSWERED, ACCEPTED, CARRY, UNSEEN, OPTIONS, REPLIES, UDP = (
    "ARP passes (the host finds the target's MAC address)",
    "every ping from the host is answered",
    "the host's kernel accepts every reply (ICMP checksum right)",
    "replies are right when the checksum update carries (requests with checksums 0xf800, 0xf8ff, 0xfcff, 0xfeff)",
    "the target's stack never sees the pings (Icmp InEchos unchanged)",
    "echo requests with IP options are answered from XDP too (IHL 6 and 15)",
    "echo replies to the target's own pings pass",
    "UDP passes",
)
ALL_Q1 = {ARP: True, ANSWERED: True, ACCEPTED: True, CARRY: True, UNSEEN: True, OPTIONS: True, REPLIES: True,
          UDP: True}
Q1_PARTS = {
    "forgot to swap the MAC addresses": (
        {**ALL_Q1, ANSWERED: False, ACCEPTED: False, CARRY: False, OPTIONS: False}, 4 / 8),
    "forgot the checksum (the lesson's starting point)": ({**ALL_Q1, ACCEPTED: False, CARRY: False}, 6 / 8),
    "checksum updated without the carry": ({**ALL_Q1, CARRY: False}, 7 / 8),
    "ICMP header at a fixed offset": ({**ALL_Q1, OPTIONS: False}, 7 / 8),
    "leaves requests with IP options to the stack": ({**ALL_Q1, OPTIONS: False}, 7 / 8),
}

# ------------------------------------------------------------------ q2: LPM rules

Q2_HEAD = HEADERS + """
struct rule_key {
    u32 prefixlen;
    __be32 addr;
};
"""


def rules(map_decl: str, key_init: str, decide: str) -> str:
    return Q2_HEAD + map_decl + """
int xdp_rules(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    struct rule_key key = """ + key_init + """;
    u32 *verdict = rules.lookup(&key);
""" + decide + """
}
"""


LPM = "BPF_LPM_TRIE(rules, struct rule_key, u32, 64);\n"
RIGHT_KEY = "{.prefixlen = 32, .addr = ip->saddr}"
DECIDE = "    return verdict && *verdict == 1 ? XDP_DROP : XDP_PASS;"

# "prefixlen is a length: make it a u64": the key grows to 16 bytes (with padding)
WIDE_KEY = rules(LPM, RIGHT_KEY, DECIDE).replace("    u32 prefixlen;\n    __be32 addr;", "    u64 prefixlen;\n    __be32 addr;")

# "only IPv4 matters here": everything else is dropped, ARP included
NOT_IPV4_DROPPED = rules(LPM, RIGHT_KEY, DECIDE).replace(
    "if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))\n        return XDP_PASS;",
    "if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))\n        return XDP_DROP;")

Q2_WRONG = [
    ("an exact-match hash instead of an LPM trie", rules("BPF_HASH(rules, struct rule_key, u32, 64);\n", RIGHT_KEY,
                                                         DECIDE), r"exact-match map.*BPF_LPM_TRIE"),
    ("prefixlen in bytes", rules(LPM, "{.prefixlen = 4, .addr = ip->saddr}", DECIDE),
     r"no rule ever matched.*prefixlen = 32 \(bits"),
    ("the address in host byte order", rules(LPM, "{.prefixlen = 32, .addr = bpf_ntohl(ip->saddr)}", DECIDE),
     r"no rule ever matched.*network byte order"),
    ("drops on any match (ignores the verdict)", rules(LPM, RIGHT_KEY, "    return verdict ? XDP_DROP : XDP_PASS;"),
     r"\.75 .*dropped.*longest matching rule.*0 means pass"),
    ("drops when nothing matches", rules(LPM, RIGHT_KEY, "    return verdict && *verdict == 0 ? XDP_PASS : XDP_DROP;"),
     r"\.10 \(no rule covers it\) was dropped"),
    ("drops what is not IPv4 (ARP)", NOT_IPV4_DROPPED, r"ARP.*not IPv4 must pass"),
    ("a 64-bit prefix length in the key", WIDE_KEY,
     r"key is 16 bytes; it must be 8"),
    # "a verdict is 0 or 1: a byte will do": the task says u32 (and the checker writes 4 bytes)
    ("a u8 verdict", rules("BPF_LPM_TRIE(rules, struct rule_key, u8, 64);\n", RIGHT_KEY, DECIDE).replace(
        "u32 *verdict", "u8 *verdict"), r"value is 1 byte; the task says a u32 verdict \(4 bytes"),
]

BYTES_KEY = HEADERS + """
struct v4_prefix {
    u32 bits;
    u8 octets[4];
};
BPF_F_TABLE("lpm_trie", struct v4_prefix, u32, rules, 16, BPF_F_NO_PREALLOC);  // BPF_LPM_TRIE by hand

int firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + sizeof(struct ethhdr) + sizeof(struct iphdr) > data_end)
        return XDP_PASS;
    struct ethhdr *eth = data;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct v4_prefix k = {.bits = 32};
    __builtin_memcpy(k.octets, &ip->saddr, 4);
    u32 *v = rules.lookup(&k);
    if (!v)
        return XDP_PASS;
    return *v ? XDP_DROP : XDP_PASS;
}
"""
Q2_RIGHT = [
    ("u8[4] address, BPF_TABLE by hand", BYTES_KEY),
    ("switch on the verdict", rules(LPM, RIGHT_KEY, """    if (!verdict)
        return XDP_PASS;
    switch (*verdict) {
    case 1:
        return XDP_DROP;
    default:
        return XDP_PASS;
    }""")),
]
Q2_PARTS = {
    "drops on any match (ignores the verdict)": (
        {"source .10: pass (no rule covers it)": True,
         "source .70: drop (inside the blocked /26 (.64 - .127))": True,
         "source .75: pass (inside the /29 (.72 - .79) that passes, inside the blocked /26: the longest prefix "
         "wins)": False,
         "source .200: drop (a blocked /32)": True,
         "source .130: pass (inside a /25 (.128 - .255) that passes)": False,
         "ARP and a ping from the host's own address pass": True}, 4 / 6),
}


def run(q, answer):
    res = q.check(answer)
    assert labkit.live_attachments() == []
    return res


@pytest.fixture(scope="module")
def ex():
    return build()


def judged_wrong(q, case, answer, expected, parts):
    res = run(q, answer)
    assert res.status == "incorrect", res.message
    assert re.search(expected, res.message, re.S), res.message
    if case in parts:
        want, score = parts[case]
        assert {p.name: p.passed for p in res.parts} == want
        assert res.score == pytest.approx(score, abs=1e-3)


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q1_WRONG])
def test_q1_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q1, case, answer, expected, Q1_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q1_RIGHT])
def test_q1_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q1, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)
    assert res.details["target_in_echos"] == 0 and res.details["host_in_csum_errors"] == 0
    assert res.details["carry_replies_bad"] == [] and res.details["carry_host_csum_errors"] == 0
    assert res.details["options_target_in_echos"] == {"IHL 6": 0, "IHL 15": 0}
    assert res.details["options_unanswered"] == {"IHL 6": 0, "IHL 15": 0}


@pytest.mark.parametrize("case,answer,expected", [pytest.param(*w, id=w[0]) for w in Q2_WRONG])
def test_q2_wrong_answers_are_incorrect_and_say_why(ex, case, answer, expected):
    judged_wrong(ex.q2, case, answer, expected, Q2_PARTS)


@pytest.mark.parametrize("answer", [pytest.param(a, id=i) for i, a in Q2_RIGHT])
def test_q2_right_answers_written_other_ways_are_correct(ex, answer):
    res = run(ex.q2, answer)
    assert res.status == "correct", res.message
    assert res.score == 1.0 and all(p.passed for p in res.parts)


def test_the_references_are_correct_as_the_checkers_run_them(ex):
    for q in (ex.q1, ex.q2):
        res = q.check_solution()
        assert res.correct, res.message


def test_the_references_are_refused_as_answers(ex):
    for q, name in ((ex.q1, "solution_07_ping_responder"), (ex.q2, "solution_07_lpm_rules")):
        res = q.check(snippet_text(name))
        assert res.status == "incorrect" and "reference solution, not your answer" in res.message


def test_bpf_cell_programs_are_correct(ex):
    """The student's %%bpf cells: the checkers load their own copies."""
    sh = InteractiveShell.instance()
    labkit.load_ipython_extension(sh)
    sh.user_ns["lab"] = lab = labkit.Lab()
    try:
        sh.run_cell_magic("bpf", "my_responder", RFC1624_WORD)
        sh.run_cell_magic("bpf", "my_rules", BYTES_KEY)
        assert run(ex.q1, sh.user_ns["my_responder"]).status == "correct"
        assert run(ex.q2, sh.user_ns["my_rules"]).status == "correct"
    finally:
        lab.close()
