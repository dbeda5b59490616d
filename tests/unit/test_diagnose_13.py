"""Lesson 13's diagnosis at its edges, on observations made by hand: each connect's errno (q1), and the
bytes the maps hold at the bounds of what a transfer's packets weigh (q2)."""

from __future__ import annotations

import pytest

from labkit.exercises import lesson
from labkit.exercises.framework import CORRECT, INCORRECT
from labkit.exercises.lessons.lesson13 import BACK, SENT, swapped

A, B = 101, 202
OK_TRIES = {"a tcp port": 1, "a tcp swapped": 0, "a tcp other": 0, "a udp port": 0, "b tcp port": 0}


def connects(**tries) -> dict:
    return {"port": 41251, "swapped": swapped(41251), "other": 40561, "ids": {"a": A, "b": B},
            "tries": {**OK_TRIES, **tries}}


def failed(res) -> dict:
    return {p.name: p.message for p in res.parts if not p.passed}


def test_swapped_is_its_own_inverse_and_swaps_the_bytes():
    assert swapped(0x1F90) == 0x901F and swapped(swapped(41251)) == 41251


def test_q1_right():
    res = lesson("13").q1.diagnose(connects())
    assert res.status == CORRECT and len(res.parts) == 4


def test_q1_an_errno_other_than_eperm_is_not_a_refusal():
    res = lesson("13").q1.diagnose(connects(**{"a tcp port": 111}))   # ECONNREFUSED: nobody listened, not the program
    assert res.status == INCORRECT
    assert failed(res)["refuses TCP to the port from cgroup a"].startswith("nothing was refused: a process in cgroup "
                                                                           "a got errno 111, not EPERM (port 41251)")


def test_q1_host_order_only_when_the_other_port_went_through():
    res = lesson("13").q1.diagnose(connects(**{"a tcp port": 0, "a tcp swapped": 1}))
    assert "with its two bytes swapped" in failed(res)["refuses TCP to the port from cgroup a"]
    assert set(failed(res)) == {"refuses TCP to the port from cgroup a"}
    res = lesson("13").q1.diagnose(connects(**{"a tcp port": 0, "a tcp swapped": 1, "a tcp other": 1}))
    assert "inverted" in failed(res)["refuses TCP to the port from cgroup a"]


def transfer(tx=None, rx=None, *, ok=True, functions=("lk_ingress", "lk_egress"), extra=()) -> dict:
    t = {"ok": ok, "error": None if ok else "TimeoutError: timed out", "received": 0}
    return {"ids": {"a": A, "b": B}, "functions": dict(zip(("ingress", "egress"), functions)),
            "transfers": {"a": t, "b": {"ok": True, "error": None, "received": BACK["b"]}},
            "tx": ([[A, tx]] if tx is not None else []) + list(extra), "rx": [[A, rx]] if rx is not None else []}


@pytest.mark.parametrize("tx, rx, right", [
    (SENT["a"], BACK["a"], True),                                  # the payload exactly: no header at all counted
    (int(SENT["a"] * 1.1 + 16384), int(BACK["a"] * 1.1 + 16384), True),
    (SENT["a"] - 1, BACK["a"], False),                             # a byte short: a packet was missed
    (int(SENT["a"] * 1.1 + 16385), BACK["a"], False),
])
def test_q2_bounds_of_a_transfer(tx, rx, right):
    res = lesson("13").q2.diagnose(transfer(tx, rx))
    assert res.status == (CORRECT if right else INCORRECT), res.message


def test_q2_a_missing_function_says_which_direction():
    res = lesson("13").q2.diagnose(transfer(None, BACK["a"] + 500, functions=("lk_ingress", None)))
    assert failed(res) == {"counts cgroup a's bytes sent (egress)": "no function for sent (egress) (its name must "
                           "contain 'egress'): the task asks for both directions; nothing was counted for sent (egress)"}


def test_q2_keys_that_are_not_cgroups():
    res = lesson("13").q2.diagnose(transfer(SENT["a"] + 500, BACK["a"] + 500, extra=[[0, 5]]))
    assert failed(res) == {"only cgroup a, keyed by its id": "the maps hold keys 0, which are not cgroup ids: the key "
                           "is the cgroup of the packet's socket, bpf_skb_cgroup_id(skb)"}
