"""Lesson 14's diagnosis at its edges, on observations made by hand: what the dispatcher returned for each
packet and which program sits in which slot (q1); the pins, map ids and counts of the counter's two runs (q2)."""

from __future__ import annotations

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson14 import PACKETS, PROVOKED

RIGHT_RUNS = {k: {"ret": action, "counted": int(counted)} for k, (_p, action, counted, _w) in PACKETS.items()}


def dispatch(slots=None, **runs) -> dict:
    slots = {"1": "lk_on_icmp", "17": "lk_on_udp"} if slots is None else slots
    return {"dispatcher": "lk_dispatch", "slots": slots, "runs": {**RIGHT_RUNS, **runs}}


def pinned(**kw) -> dict:
    obs = {"made_first": 2000, "made_second": 100000, "first_id": 7, "first_count": 2000, "pinned_first": ["calls"],
           "second_id": 7, "second_count": 102000, "pinned": ["calls"], "through_pin": {"id": 7, "count": 102000},
           "reader": {"id": 7, "error": ""}, "control_lost": PROVOKED + 5, "rounds": 2}
    return {**obs, **kw}


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_q1_right_and_the_packets_the_task_names():
    res = lesson("14").q1.diagnose(dispatch())
    assert res.status == CORRECT and res.score == 1, res.message
    assert {k for k, v in PACKETS.items() if v[0] is None} == {"arp", "ipv6", "runt"}


def test_q1_the_dispatcher_in_its_own_prog_array():
    res = lesson("14").q1.diagnose(dispatch({"1": "lk_dispatch", "17": "lk_on_udp"}))
    assert res.status == INCORRECT
    assert "the dispatcher is in its own prog array" in failed(res)["handlers has a program at slot 1 (ICMP) and at "
                                                                    "slot 17 (UDP)"]


def test_q1_handlers_at_the_wrong_slots():
    res = lesson("14").q1.diagnose(dispatch({"6": "lk_on_icmp", "2": "lk_on_udp"}, icmp={"ret": 2, "counted": 0},
                                            **{"icmp options": {"ret": 2, "counted": 0}},
                                            udp={"ret": 2, "counted": 0}))
    why = failed(res)
    assert "handlers holds lk_on_udp at 2, lk_on_icmp at 6: the slots are the IP protocol numbers, ICMP 1 and UDP 17" \
        in why["handlers has a program at slot 1 (ICMP) and at slot 17 (UDP)"]
    assert set(why) == {"handlers has a program at slot 1 (ICMP) and at slot 17 (UDP)", "ICMP is dropped",
                        "UDP is counted and passed"}


def test_q1_an_icmp_header_with_options_is_its_own_part_of_the_message():
    res = lesson("14").q1.diagnose(dispatch(**{"icmp options": {"ret": 2, "counted": 0}}))
    assert "ICMP in a header with options: XDP_PASS" in failed(res)["ICMP is dropped"]


def test_q2_right():
    res = lesson("14").q2.diagnose(pinned())
    assert res.status == CORRECT and res.details["count"] == 102000


def test_q2_a_loss_without_a_race_is_not_called_a_race():
    res = lesson("14").q2.diagnose(pinned(through_pin={"id": 7, "count": 101000}, control_lost=0))
    why = failed(res)["counts every call exactly, on two CPUs at once"]
    assert "101000 calls counted, 102000 made" in why and "two CPUs counted at once" not in why


def test_q2_a_reused_map_whose_first_count_is_short():
    res = lesson("14").q2.diagnose(pinned(first_count=1990, through_pin={"id": 7, "count": 101990}))
    why = failed(res)["counts every call exactly, on two CPUs at once"]
    assert "10 calls of 102000 lost while two CPUs counted at once" in why and "(the first run counted 1990 of 2000)" \
        in why
