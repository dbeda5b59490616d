"""Lesson 08's diagnoses at their edges, on observations made by hand: q1's
XDP verdict constants (everything else dropped), a port read from IP options;
q2's TOS one bit off, a datagram short where the checksum update borrows."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT
from labkit.exercises.lessons.lesson08 import CARRY_CHECKSUMS, DSCP, SENT_TOS

# q1's flows: to PORT, to _OTHER, to _SWAPPED, from PORT, to PORT with two option sets, to _OTHER with an option
RIGHT_Q1 = [0, 3, 3, 3, 0, 0, 3]


def q1(udp=RIGHT_Q1, tcp="ok", ping=(2, 2)):
    return lesson("08").q1.diagnose({"via": "tcx", "udp": udp, "tcp": tcp, "ping_sent": ping[0],
                                     "ping_answered": ping[1]})


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_right_and_xdp_constants():
    assert q1().status == CORRECT
    why = failed(q1(udp=[0, 0, 0, 0, 0, 0, 0], tcp="timed out", ping=(2, 0)))
    assert "TC's verdicts are not XDP's" in why["UDP to another port (5000) leaves"]


def test_q1_a_port_read_at_offset_34():
    why = failed(q1(udp=[0, 3, 3, 3, 3, 3, 0]))
    assert set(why) == {"UDP to port 4444 with IP options is dropped (IHL 6 and 15)",
                        "UDP to port 5000 with IP options leaves (a stream-identifier option, stream 4444)"}
    assert "256 with IHL 6, 9988 with IHL 15" in why["UDP to port 4444 with IP options is dropped (IHL 6 and 15)"]


TOS = (SENT_TOS & 3) | (DSCP << 2)


def q2(udp=None, hdr_errors=0):
    udp = udp or [[3, [TOS] * 3]] * (1 + 2 + len(CARRY_CHECKSUMS))
    return lesson("08").q2.diagnose({"via": "tcx", "udp": udp, "hdr_errors": hdr_errors, "tcp": "ok",
                                     "ping_sent": 2, "ping_answered": 2})


def test_q2_right_and_an_ecn_bit_lost():
    assert q2().status == CORRECT
    why = failed(q2([[3, [TOS ^ 0b10] * 3]] * (3 + len(CARRY_CHECKSUMS))))
    assert list(why) == ["the ECN bits are kept"]


def test_q2_one_datagram_short_where_the_update_borrows():
    udp = [[3, [TOS] * 3]] * 3 + [[2, [TOS] * 2]] + [[3, [TOS] * 3]] * (len(CARRY_CHECKSUMS) - 1)
    why = failed(q2(udp, hdr_errors=1))
    (name, message), = why.items()
    assert name.startswith("the checksum stays right when the update borrows")
    assert message.startswith("datagrams whose IP header checksum makes the update borrow past 16 bits did not all "
                              "arrive (checksum 0x0001: 2 of 3) (the receiver's IP stack counted 1 bad headers")
