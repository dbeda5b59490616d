"""Lesson 02's diagnosis at its edges, on observations made by hand: UDP with
nothing sent, one port unreachable with IP options short, echo with options
leaking where plain echo was dropped, IPv6 failing before or after neighbour
discovery."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT


def seen(**changes) -> dict:
    obs = {"mode": "generic", "ping_sent": 3, "ping_received": 0, "ping_from_target_sent": 3,
           "ping_from_target_received": 0, "port_unreachable": "refused", "udp_sent": 5, "udp_received": 5,
           "tcp": "ok", "icmp_with_options": [[o, t, 2 if t == 3 else 0] for o in (0, 1) for t in (8, 0, 3)],
           "neighbours_flushed": 4, "udp_after_flush_sent": 5, "udp_after_flush_received": 5, "arp_resolved": True,
           "ndp_resolved": True, "udp6": "ok"}
    obs.update(changes)
    return obs


def judge(obs):
    return lesson("02").q1.diagnose(obs)


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_everything_as_the_task_says_is_correct():
    res = judge(seen())
    assert res.status == CORRECT and len(res.parts) == 9
    assert res.details["icmp_with_options_arrived"] == {"IHL 6 type 8": 0, "IHL 6 type 0": 0, "IHL 6 type 3": 2,
                                                        "IHL 15 type 8": 0, "IHL 15 type 0": 0, "IHL 15 type 3": 2}


def test_udp_with_nothing_sent_has_not_passed():
    assert failed(judge(seen(udp_sent=0, udp_received=0))) == {
        "UDP passes": "0 of 0 UDP datagrams reached the target: UDP must pass"}


def test_one_port_unreachable_with_options_short_is_dropped():
    opts = [[o, t, (1 if o == 1 else 2) if t == 3 else 0] for o in (0, 1) for t in (8, 0, 3)]
    why = failed(judge(seen(icmp_with_options=opts)))
    assert list(why) == ["other ICMP with IP options passes (port unreachable, IHL 6 and 15)"]
    assert "with IHL 15 (a no-op and a record-route option): 1 of 2 port unreachables" in next(iter(why.values()))
    assert "the byte there is 1, no echo" in next(iter(why.values()))


def test_echo_with_options_leaking_where_plain_echo_is_dropped_points_at_offset_34():
    opts = [[o, t, 1 if (o, t) == (0, 8) else 2 if t == 3 else 0] for o in (0, 1) for t in (8, 0, 3)]
    why = failed(judge(seen(icmp_with_options=opts)))["ICMP echo with IP options is dropped (IHL 6 and 15)"]
    assert why.startswith("ICMP echo whose IP header carries options reached the target (with IHL 6 (four "
                          "end-of-options bytes): 1 of 2 echo requests) though echo without options was dropped")
    assert "with IHL 6 the byte there is 0, an echo reply's type" in why
    res = judge(seen(icmp_with_options=opts, ping_received=3))     # plain echo passed too: no offset lesson
    assert failed(res)["ICMP echo with IP options is dropped (IHL 6 and 15)"] == (
        "ICMP echo whose IP header carries options reached the target too (with IHL 6 (four end-of-options "
        "bytes): 1 of 2 echo requests)")


def test_ipv6_before_and_after_neighbour_discovery():
    assert "neighbour discovery, ICMPv6, was dropped" in \
        failed(judge(seen(ndp_resolved=False, udp6="timed out after 3 s")))["IPv6 passes (neighbour discovery and UDP)"]
    res = judge(seen(udp6="no answer within 3 s"))
    assert res.status == INCORRECT and failed(res) == {
        "IPv6 passes (neighbour discovery and UDP)": "UDP over IPv6 did not reach the target (no answer within 3 s): "
                                                     "IPv6 must pass"}
