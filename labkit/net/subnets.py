"""Which /30 a new sandbox gets: free in 198.18.0.0/15 and clear of everything else.

Addresses come from 198.18.0.0/15 (the benchmarking range, RFC 2544), one /30
per sandbox picked at random and checked against every address and route of
the machine and every other labkit sandbox. :func:`pick_subnet` is pure logic;
:func:`taken_networks` reads what is in use (and changes nothing).
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Iterable

from labkit._errors import SandboxError
from labkit.net.netns import off_event_loop
from labkit.net.records import list_sandboxes

__all__ = ["POOL", "pick_subnet", "taken_networks"]

#: The only addresses a sandbox ever uses: the benchmarking range.
POOL = ipaddress.IPv4Network("198.18.0.0/15")


def pick_subnet(
    taken: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
    *,
    prefixlen: int = 30,
    pool: ipaddress.IPv4Network = POOL,
    rng: random.Random | None = None,
    attempts: int = 64,
) -> ipaddress.IPv4Network:
    """Pick a random ``/prefixlen`` inside ``pool`` that overlaps nothing in ``taken``.

    Pure logic (no kernel access). Random picks spread concurrent sandboxes across
    the pool; after ``attempts`` misses every candidate is scanned from a random
    start, so a free subnet is found whenever one exists. Raises
    :class:`SandboxError` when the pool is exhausted.
    """
    if not pool.prefixlen <= prefixlen <= 30:
        raise ValueError(f"prefixlen must be between {pool.prefixlen} and 30, not {prefixlen}")
    rng = rng or random.SystemRandom()
    blockers = [
        net for net in taken if net.version == 4 and net.overlaps(pool)  # type: ignore[arg-type]
    ]
    slots = 1 << (prefixlen - pool.prefixlen)
    size = 1 << (32 - prefixlen)
    base = int(pool.network_address)

    def candidate(i: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network((base + i * size, prefixlen))

    def free(net: ipaddress.IPv4Network) -> bool:
        return not any(net.overlaps(b) for b in blockers)  # type: ignore[arg-type]

    for _ in range(attempts):
        net = candidate(rng.randrange(slots))
        if free(net):
            return net
    if any(pool.subnet_of(b) for b in blockers):  # type: ignore[arg-type]
        covering = next(b for b in blockers if pool.subnet_of(b))  # type: ignore[arg-type]
        raise SandboxError(
            f"no free subnet for a sandbox: {covering} (an address or route on this machine) "
            f"covers the whole sandbox range {pool}; remove that route or address and retry"
        )
    start = rng.randrange(slots)
    for k in range(slots):
        net = candidate((start + k) % slots)
        if free(net):
            return net
    raise SandboxError(
        f"no free /{prefixlen} left in {pool}: every one collides with an address, a route "
        "or another labkit sandbox; run `labkit sandbox status` and `labkit cleanup`"
    )


@off_event_loop
def taken_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network already in use: the current (root) namespace's addresses
    and routes (read only), the subnets recorded by other sandboxes, and the
    addresses inside ``lksb-*`` namespaces that have no state file."""
    # lazy: pyroute2 is only needed when the kernel is asked
    from pyroute2 import IPRoute

    taken: list[ipaddress.IPv4Network] = []
    with IPRoute() as ipr:
        for msg in ipr.addr("dump", family=socket.AF_INET):
            addr = msg.get("address") or msg.get("IFA_ADDRESS")
            if addr:
                taken.append(ipaddress.IPv4Network(f"{addr}/{msg['prefixlen']}", strict=False))
        for msg in ipr.route("dump", family=socket.AF_INET):
            dst = msg.get("dst")
            if dst and msg["dst_len"] > 0:  # the default route overlaps everything
                taken.append(ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}", strict=False))
    for record in list_sandboxes():
        if record.subnet:
            taken.append(ipaddress.IPv4Network(record.subnet, strict=False))
        if record.far_subnet:
            taken.append(ipaddress.IPv4Network(record.far_subnet, strict=False))
        elif record.state_file is None:  # namespaces without a record: whatever they hold
            present = {record.host_ns: record.host_ns_present, record.target_ns: record.target_ns_present,
                       **({record.far_ns: record.far_ns_present} if record.far_ns else {})}
            for ns in (ns for ns, there in present.items() if there):
                taken.extend(_netns_networks(ns))
    return taken


def _netns_networks(ns: str) -> list[ipaddress.IPv4Network]:
    # lazy: pyroute2 is only needed when the kernel is asked
    from pyroute2 import IPRoute

    try:
        with IPRoute(netns=ns, flags=0) as ipr:
            return [
                ipaddress.IPv4Network(f"{m.get('address')}/{m['prefixlen']}", strict=False)
                for m in ipr.addr("dump", family=socket.AF_INET)
                if m.get("address")
            ]
    except OSError:  # vanished while we looked
        return []
