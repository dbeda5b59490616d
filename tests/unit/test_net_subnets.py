"""labkit.net.subnets.pick_subnet: pure logic, no kernel."""

from __future__ import annotations

import ipaddress
import random

import pytest

from labkit._errors import SandboxError
from labkit.net.subnets import POOL, pick_subnet


def test_pick_subnet_avoids_every_taken_network() -> None:
    pool = ipaddress.IPv4Network("198.18.0.0/28")  # four /30 slots
    taken = [
        ipaddress.IPv4Network("198.18.0.0/30"),
        ipaddress.IPv4Network("198.18.0.4/30"),
        ipaddress.IPv4Network("198.18.0.12/32"),  # a single address blocks its /30
        ipaddress.IPv4Network("0.0.0.0/1"),  # unrelated
    ]
    for seed in range(20):
        net = pick_subnet(taken, pool=pool, rng=random.Random(seed), attempts=2)
        assert net == ipaddress.IPv4Network("198.18.0.8/30")


def test_pick_subnet_skips_a_taken_half_of_the_pool() -> None:
    taken = [ipaddress.IPv4Network("198.18.0.0/16"), ipaddress.IPv6Network("fd00::/64")]
    picks = {pick_subnet(taken) for _ in range(50)}
    assert all(p.subnet_of(ipaddress.IPv4Network("198.19.0.0/16")) for p in picks)
    assert all(p.prefixlen == 30 for p in picks)
    assert len(picks) > 1, "picks must spread over the pool"


def test_pick_subnet_stays_in_the_benchmarking_range() -> None:
    assert POOL == ipaddress.IPv4Network("198.18.0.0/15")
    rng = random.Random(7)
    assert all(pick_subnet([], rng=rng).subnet_of(POOL) for _ in range(100))
    assert pick_subnet([], prefixlen=29, rng=rng).prefixlen == 29
    with pytest.raises(ValueError, match="prefixlen"):
        pick_subnet([], prefixlen=31)
    with pytest.raises(ValueError, match="prefixlen"):
        pick_subnet([], prefixlen=14)


def test_pick_subnet_raises_when_the_pool_is_covered() -> None:
    with pytest.raises(SandboxError, match="198.0.0.0/8"):
        pick_subnet([ipaddress.IPv4Network("198.0.0.0/8")])
    pool = ipaddress.IPv4Network("198.18.0.0/29")
    full = [ipaddress.IPv4Network("198.18.0.0/30"), ipaddress.IPv4Network("198.18.0.4/30")]
    with pytest.raises(SandboxError, match="no free /30"):
        pick_subnet(full, pool=pool, attempts=1)
