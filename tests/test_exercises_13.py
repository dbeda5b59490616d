"""Lesson 13's exercise checkers, tried with the mistakes students make (each judged incorrect, with a
message that names the mistake) and with right answers written other ways: real kernel, children in the
lab's own cgroups a and b connecting to the checker's listeners on 127.0.0.1 (q1: connect4 on their
parent; q2: cgroup_skb ingress and egress on their parent, TCP both ways)."""

from __future__ import annotations

import re

import pytest

from labkit.exercises.lessons import lesson13

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]

HEAD1 = "#include <uapi/linux/bpf.h>\n#include <uapi/linux/in.h>\n"
PROTO = "ctx->protocol == IPPROTO_TCP"
PORT = "ctx->user_port == bpf_htons(LK13_PORT)"
CGROUP = "bpf_get_current_cgroup_id() == LK13_CGROUP"


def q1(*tests: str, refuse: str = "0", let: str = "1") -> str:
    cond = " && ".join(tests) or "1"
    return HEAD1 + f"int lk_block(struct bpf_sock_addr *ctx)\n{{\n    if ({cond})\n        return {refuse};\n" \
                   f"    return {let};\n}}\n"


Q1_WRONG = [
    ("blocks every port", q1(PROTO, CGROUP), r"port \d+ \(not the task's port\) was refused too: every port"),
    ("blocks every cgroup (as at the root)", q1(PROTO, PORT),
     r"a process in cgroup b was refused too.*on the root cgroup it would run for every process.*LK13_CGROUP"),
    ("returns 1 to refuse: nothing blocked", q1(PROTO, PORT, CGROUP, refuse="1"), r"nothing was refused.*return 0"),
    ("return values inverted", q1(PROTO, PORT, CGROUP, refuse="1", let="0"), r"return values inverted"),
    ("blocks UDP too", q1(PORT, CGROUP), r"UDP socket's connect\(\) to port \d+ was refused too.*IPPROTO_TCP"),
    ("host byte order", q1(PROTO, "ctx->user_port == LK13_PORT", CGROUP),
     r"port (\d+) was let through and port (\d+) refused instead: \2 is \1 with its two bytes swapped.*bpf_htons"),
    # the verifier keeps a connect4 program's return value in [0, 1]: -EPERM is refused at load
    ("returns -EPERM", q1(PROTO, PORT, CGROUP, refuse="-1"), r"verifier|R0"),
]
Q1_RIGHT = [
    ("nested ifs", q1(PROTO, PORT, CGROUP)),
    ("SOCK_STREAM and bpf_ntohs", HEAD1 + "int lk_block(struct bpf_sock_addr *ctx)\n{\n"
     "    if (ctx->type != 1 /* SOCK_STREAM */ || bpf_ntohs(ctx->user_port) != LK13_PORT)\n        return 1;\n"
     "    u64 cg = bpf_get_current_cgroup_id();\n    return cg == LK13_CGROUP ? 0 : 1;\n}\n"),
]

HEAD2 = "#include <uapi/linux/bpf.h>\nBPF_HASH(rx_bytes, u64, u64);\nBPF_HASH(tx_bytes, u64, u64);\n"
ADD = "u64 zero = 0, *n = {m}.lookup_or_try_init(&id, &zero); if (n) __sync_fetch_and_add(n, {what});"


def q2(ingress: str | None = "rx_bytes", egress: str | None = "tx_bytes", *, what: str = "skb->len",
       filt: str = "if (id != LK13_CGROUP) return 1;", key: str = "bpf_skb_cgroup_id(skb)", ret: str = "1") -> str:
    out = HEAD2
    for name, m in (("ingress", ingress), ("egress", egress)):
        body = ADD.format(m=m, what=what) if m else ""
        out += (f"int lk_{name}(struct __sk_buff *skb)\n{{\n    u64 id = {key};\n    {filt}\n    {body}\n"
                f"    return {ret};\n}}\n")
    return out


Q2_WRONG = [
    ("counts packets not bytes", q2(what="1"), r"counts packets, not bytes"),
    ("ingress only, both asked", q2(egress=None), r"egress counted nothing for cgroup a"),
    ("drops while counting", q2(ret="0"),
     r"transfer of cgroup a failed.*returns 1 to let a packet go.*did not get through"),
    ("counts every cgroup", q2(filt=""), r"cgroup b's bytes were counted too"),
    ("one key for all", q2(filt="if (id != LK13_CGROUP) return 1; id = 0;"), r"not cgroup ids"),
    ("directions swapped", q2(ingress="tx_bytes", egress="rx_bytes"), r"ingress and egress swapped"),
]
Q2_RIGHT = [
    ("lookup, else update, lock_xadd", HEAD2 + "".join(
        f"int lk_{d}(struct __sk_buff *skb)\n{{\n    u64 id = bpf_skb_cgroup_id(skb);\n"
        f"    if (id == LK13_CGROUP) {{\n        u64 len = skb->len, *n = {m}.lookup(&id);\n"
        f"        if (n) lock_xadd(n, len); else {m}.update(&id, &len);\n    }}\n    return 1;\n}}\n"
        for d, m in (("ingress", "rx_bytes"), ("egress", "tx_bytes")))),
    ("a shared static helper", HEAD2 + "static __always_inline int add(void *m, struct __sk_buff *skb) { return 1; }\n"
     + q2()[len(HEAD2):]),
]


@pytest.mark.parametrize("name,answer,message", Q1_WRONG, ids=[w[0] for w in Q1_WRONG])
def test_q1_wrong(name, answer, message):
    res = lesson13.build().q1.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q1_RIGHT, ids=[r[0] for r in Q1_RIGHT])
def test_q1_right(name, answer):
    res = lesson13.build().q1.check(answer)
    assert res.status == "correct", res.message


@pytest.mark.parametrize("name,answer,message", Q2_WRONG, ids=[w[0] for w in Q2_WRONG])
def test_q2_wrong(name, answer, message):
    res = lesson13.build().q2.check(answer)
    assert res.status == "incorrect", res.message
    assert re.search(message, res.message, re.S), res.message


@pytest.mark.parametrize("name,answer", Q2_RIGHT, ids=[r[0] for r in Q2_RIGHT])
def test_q2_right(name, answer):
    res = lesson13.build().q2.check(answer)
    assert res.status == "correct", res.message


def test_partial_credit():
    res = lesson13.build().q1.check(Q1_WRONG[4][1])       # blocks UDP too: 3 of 4 parts
    assert [p.passed for p in res.parts] == [True, True, True, False] and res.score == pytest.approx(0.75)


def test_references_pass_and_are_not_answers():
    lesson = lesson13.build()
    assert lesson.q1.check_solution().status == "correct"
    assert lesson.q2.check_solution().status == "correct"
    res = lesson.q2.check("solution_13_cgroup_bytes")
    assert res.status == "incorrect" and "reference solution, not your answer" in res.message
