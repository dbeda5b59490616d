"""Lesson 07's diagnoses at their edges, on observations made by hand: q1's
replies whose checksum is one off where the update carries, no ping sent at
all, echo with IP options reaching the stack; q2's rules matched exactly only."""

from __future__ import annotations

import struct

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT
from labkit.exercises.lessons.lesson07 import CARRY_CHECKSUMS, Q2_SOURCES, _echo_request, _echo_with_checksum
from labkit.net.traffic import inet_checksum


def reply(request: bytes, delta: int = 0) -> bytes:
    msg = b"\0" + request[1:2] + b"\0\0" + request[4:]
    return msg[:2] + struct.pack("!H", (inet_checksum(msg) + delta) & 0xFFFF) + msg[4:]


def pings(requests, *, answered=True, delta=0, target_saw=0) -> dict:
    reqs = {struct.unpack("!H", m[6:8])[0]: m for m in requests}
    return {"requests": [[q, m.hex()] for q, m in reqs.items()],
            "replies": [[q, reply(m, delta).hex()] for q, m in reqs.items()] if answered else [],
            "host_accepted": len(reqs) if answered and not delta else 0, "host_bad_csum": len(reqs) if delta else 0,
            "target_saw": target_saw}


def q1(**changes):
    obs = {"mode": "generic", "pings": 5, "ping_received": 5, "host_in_echo_reps": 5, "host_in_csum_errors": 0,
           "target_in_echos": 0, "target_out_echo_reps": 0, "arp_resolved": True, "target_ping_sent": 3,
           "target_ping_received": 3, "udp_sent": 5, "udp_received": 5,
           "carry": pings([_echo_with_checksum(x) for x in CARRY_CHECKSUMS]),
           "with_options": [pings([_echo_request(s, b"options") for s in (1, 2)]) for _ in range(2)]}
    obs.update(changes)
    return lesson("07").q1.diagnose(obs)


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_every_reply_right_is_correct():
    res = q1()
    assert res.status == CORRECT and res.details["carry_replies_bad"] == [] and len(res.parts) == 8


def test_q1_replies_one_off_where_the_update_carries():
    why = failed(q1(carry=pings([_echo_with_checksum(x) for x in CARRY_CHECKSUMS], delta=-1)))
    (name, message), = why.items()
    assert name.startswith("replies are right when the checksum update carries")
    assert message.startswith("every reply to ping was accepted, but the host's kernel rejected 4 of 4 replies")
    assert "(RFC 1624)" in message


def test_q1_no_ping_sent_is_not_every_ping_answered():
    assert "every ping from the host is answered" in failed(q1(pings=0, ping_received=0, host_in_echo_reps=0))


def test_q1_echo_with_options_reaching_the_stack_points_at_ihl():
    opts = [pings([_echo_request(s, b"options") for s in (1, 2)], answered=False, target_saw=2),
            pings([_echo_request(s, b"options") for s in (1, 2)])]
    why = failed(q1(with_options=opts))["echo requests with IP options are answered from XDP too (IHL 6 and 15)"]
    assert why.startswith("echo requests whose IP header carries options reached the target's stack (Icmp InEchos: "
                          "2 of 2 with IHL 6 (three no-ops and an end-of-options byte)) though those without options")


def q2(passed_hosts: set[int], ping=(2, 2)):
    return lesson("07").q2.diagnose({
        "mode": "generic", "sources": [f"198.18.7.{h}" for h, _w, _y in Q2_SOURCES],
        "received": [[h, 3 if h in passed_hosts else 0] for h, _w, _y in Q2_SOURCES], "host_ip": "198.18.7.1",
        "pings": ping[0], "ping_received": ping[1]})


def test_q2_the_rules_followed_and_only_exact_matches():
    assert q2({10, 75, 130}).status == CORRECT
    why = failed(q2({10, 70, 75, 130}))
    assert list(why) == ["source .70: drop (inside the blocked /26 (.64 - .127))"]
    assert "an exact-match map (a hash) finds only whole addresses" in next(iter(why.values()))


def test_q2_a_ping_short_of_its_count():
    assert "1 of 2 pings from 198.18.7.1" in failed(q2({10, 75, 130}, ping=(2, 1)))[
        "ARP and a ping from the host's own address pass"]
