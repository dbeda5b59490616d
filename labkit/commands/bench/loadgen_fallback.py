"""The load generator in Python, for machines without a C compiler (lower rates).

The same stdin/stdout protocol as ``loadgen.c`` (see its header), without the
UDP mode. :class:`labkit.commands.bench.loadgen.LoadGen` runs this file as a
script (``python -u loadgen_fallback.py``); it imports nothing from labkit, so
it starts fast.
"""

import os
import signal
import sys
import time

__all__ = ["main", "run"]

stop = False


def on_usr1(signum, frame) -> None:
    global stop
    stop = True


def run(rate: float, secs: float, limit: int) -> tuple[int, int]:
    """Call getppid() ``rate`` times a second (0: flat out) for ``secs`` seconds
    (0: no limit) or ``limit`` calls (0: no limit), or until SIGUSR1.
    Returns (calls made, nanoseconds taken)."""
    getppid, now = os.getppid, time.monotonic_ns
    n, t0 = 0, now()
    t = t0
    end = t0 + int(secs * 1e9) if secs > 0 else 0
    while True:
        batch = 256
        if rate > 0:
            due = int((t - t0) * rate / 1e9) + 1 - n
            if due <= 0:
                # ahead of schedule: sleep until 1 ms worth of calls is due, then make them in a burst
                wait = (n + max(1.0, rate / 1000) - 1) * 1e9 / rate - (t - t0)
                if wait > 20000:
                    time.sleep(wait / 1e9)
                t = now()
                if stop or (end and t >= end):
                    break
                continue
            batch = min(due, 4096)
        if limit and limit - n < batch:
            batch = limit - n
        for _ in range(batch):
            getppid()
        n += batch
        t = now()
        if stop or (end and t >= end) or (limit and n >= limit):
            break
    return n, t - t0


def main() -> None:
    global stop
    signal.signal(signal.SIGUSR1, on_usr1)
    print("READY", os.getpid(), flush=True)
    while True:
        line = sys.stdin.readline()
        if not line or line.startswith("Q"):
            break
        parts = line.split()
        if len(parts) != 4 or parts[0] != "R":
            continue
        rate, secs, limit = float(parts[1]), float(parts[2]), int(parts[3])
        stop = False
        print("S", flush=True)             # started: SIGUSR1 from now on ends this run
        n, elapsed_ns = run(rate, secs, limit)
        print("D", n, elapsed_ns, 0, flush=True)


if __name__ == "__main__":
    main()
