"""What the bench measures and how hard: the traced syscall, ring buffer sizes, the modes."""

from __future__ import annotations

from typing import Any

from labkit.events.ringbuf import record_dtype
from labkit.events.schemas import SYSCALL_DTYPE
from labkit.lab import DEFAULT_RING_PAGES

__all__ = ["MODES", "MiB", "RECORD_BYTES", "RING_PAGES", "SYSCALL", "VARIANT", "VARIANT_PAGES"]

SYSCALL = "getppid"
VARIANT, VARIANT_PAGES = "labkit_16MiB", 4096
RING_PAGES = DEFAULT_RING_PAGES   # labkit's default; the raw BCC program gets the same size
RECORD_BYTES = record_dtype(SYSCALL_DTYPE).itemsize   # one event in the ring buffer, header included
MiB = 1024 * 1024

MODES: dict[str, dict[str, Any]] = {
    # rates: target calls per second, 0 = flat out; soak_rounds: re-runs of the lessons' cells (soak_xdp: lesson
    # 02's among them; the smoke run leaves them to its XDP phase and to tests/test_soak.py)
    "full": dict(rates=[50_000, 200_000, 500_000, 1_000_000, 0], step_s=3.0, mem_events=10_000_000,
                 udp_packets=1_000_000, ping_count=2_000, fill_events=30_000, fill_repeats=5,
                 variant_rates=[500_000, 1_000_000, 0], trace_pipe_wait_s=30, soak_rounds=100, soak_xdp=True),
    "quick": dict(rates=[50_000, 200_000, 500_000, 1_000_000, 0], step_s=1.0, mem_events=2_000_000,
                  udp_packets=200_000, ping_count=300, fill_events=30_000, fill_repeats=3,
                  variant_rates=[500_000, 1_000_000, 0], trace_pipe_wait_s=15, soak_rounds=10, soak_xdp=True),
    "smoke": dict(rates=[20_000, 0], step_s=0.3, mem_events=200_000,
                  udp_packets=5_000, ping_count=20, fill_events=5_000, fill_repeats=1,
                  variant_rates=[], trace_pipe_wait_s=5, soak_rounds=2, soak_xdp=False),
}
