"""The three ways of getting the load generator's events into Python.

* :class:`LabkitTracer`  ``lab.trace_syscall(...)``: labkit's own stream;
* :class:`BccTracer`     ``raw_bcc.c``: the same ring buffer and event struct
  in plain BCC, a Python callback decoding every event;
* :class:`PrintkTracer`  ``printk.c``: ``bpf_trace_printk`` read back with
  ``b.trace_fields()``.

Every program is filtered in the kernel to the load generator's pid.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

from labkit.commands.bench.config import RING_PAGES, SYSCALL
from labkit.commands.bench.loadgen import LoadGen
from labkit.lab import Lab
from labkit.programs.compile import capture_fd2
from labkit.views.tables import open_trace_pipe

__all__ = ["PRINTK_SOURCE", "RAW_BCC_SOURCE", "BccTracer", "LabkitTracer", "PrintkTracer", "Tracer"]

#: What a user writes with BCC: one event per getppid() to a ring buffer.
RAW_BCC_SOURCE = Path(__file__).with_name("raw_bcc.c")
#: The classic: bpf_trace_printk, one trace_pipe line per getppid().
PRINTK_SOURCE = Path(__file__).with_name("printk.c")


def _compile_bcc(source: Path, cflags: list[str]):
    """BPF(text=...) of one of the bench's C files, with BCC's chatter on fd 2 kept out of the table."""
    import bcc  # lazy: bcc is only needed once a phase loads a program

    with capture_fd2() as cap:
        try:
            b = bcc.BPF(text=source.read_bytes(), cflags=cflags)
        except Exception as e:
            raise RuntimeError(f"BCC could not compile the benchmark program: {e}\n{cap}") from None
    return b


def _bcc_cleanup(b) -> None:
    """Detach and close a BPF object now (not at exit), quietly."""
    with capture_fd2():
        try:
            b.cleanup()
        finally:
            atexit.unregister(b.cleanup)


class Tracer:
    """One way of getting the load generator's events into Python."""

    name = "?"
    reports_loss = True

    def counts(self) -> tuple[int, int | None]:
        raise NotImplementedError

    def pump(self, lg: LoadGen) -> None:
        """Consume events until the load generator has answered."""
        while not lg.ready(0.05):
            pass

    def drain(self) -> None:
        pass

    def consumer_tid(self) -> int | None:
        """The thread that takes events in (for its CPU time and run-queue wait)."""
        return None

    def close(self) -> None:
        pass


class LabkitTracer(Tracer):
    name = "labkit"

    def __init__(self, lg: LoadGen, **kw):
        self.lab = Lab()
        try:
            self.stream = self.lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench", **kw)
        except BaseException:
            self.lab.close()
            raise
        self.gaps: list[float] = []
        self._last = None
        self.stream.add_listener(self._batch)

    def _batch(self, batch) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    def consumer_tid(self) -> int | None:
        return self.stream.thread_id

    def counts(self) -> tuple[int, int | None]:
        return self.stream.received, self.stream.lost

    def drain(self) -> None:
        self.stream.poll()

    def close(self) -> None:
        self.lab.close()


class BccTracer(Tracer):
    name = "bcc"

    def __init__(self, lg: LoadGen):
        pid = lg.pid
        self.b = b = _compile_bcc(RAW_BCC_SOURCE, [f"-DFILTER_PID={pid}", f"-DRING_PAGES={RING_PAGES}"])
        try:
            b.attach_tracepoint(tp=f"syscalls:sys_enter_{SYSCALL}".encode(), fn_name=b"lk_bench_bcc")
            self.n = 0
            self.decode = True
            self.last_pid = 0

            def callback(ctx, data, size):
                if self.decode:
                    event = b[b"events"].event(data)   # what BCC's tools do (bytes key: no str warning per event)
                    self.last_pid = event.pid
                self.n += 1
                return 0

            self._cb = callback
            b[b"events"].open_ring_buffer(callback)
        except BaseException:
            _bcc_cleanup(b)
            raise

    def counts(self) -> tuple[int, int | None]:
        return self.n, int(sum(self.b[b"lost"][0]))

    def pump(self, lg: LoadGen) -> None:
        while not lg.ready(0):
            self.b.ring_buffer_poll(10)

    def consumer_tid(self) -> int | None:
        return threading.get_native_id()

    def drain(self) -> None:
        self.b.ring_buffer_consume()

    def close(self) -> None:
        _bcc_cleanup(self.b)


class PrintkTracer(Tracer):
    """The classic loop, ``while True: b.trace_fields()`` (blocking), in a thread.

    trace_pipe is machine-wide: it is opened only for this phase, and only lines
    with this run's nonce from the load generator's pid are counted (lines of
    anyone else read meanwhile are counted as foreign). BCC's non-blocking
    ``trace_fields(nonblocking=True)`` is not used: through Python's buffered
    reader it drops most lines (measured: ~8% of 20k lines/s arrive).
    """

    name = "printk"
    reports_loss = False

    def __init__(self, lg: LoadGen, wait_s: float = 30.0):
        self.lg = lg
        self.pid = lg.pid
        self.nonce = int.from_bytes(os.urandom(3), "little")
        self.prefix = f"lkbench {self.nonce} ".encode()
        self.b = b = _compile_bcc(PRINTK_SOURCE, [f"-DFILTER_PID={self.pid}", f"-DNONCE={self.nonce}"])
        try:
            b.attach_tracepoint(tp=f"syscalls:sys_enter_{SYSCALL}".encode(), fn_name=b"lk_bench_printk")
            # b.trace_open(), the same blocking file, but waiting for whoever else holds trace_pipe
            # on a kernel that lets one reader at a time (newer ones, Debian's 5.10 and 6.1)
            fd = open_trace_pipe(wait_s)
            os.set_blocking(fd, True)
            b.tracefile = os.fdopen(fd, "rb")
        except BaseException:
            _bcc_cleanup(b)
            raise
        self.n = 0
        self.foreign = 0
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name="lkbench-trace-pipe", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        b, prefix, mypid = self.b, self.prefix, self.pid
        while not self._stop:
            try:
                task, pid, _cpu, _flags, _ts, msg = b.trace_fields()
            except Exception:          # trace_pipe closed under us: the phase is over
                return
            if pid == mypid and isinstance(msg, bytes) and msg.startswith(prefix):
                self.n += 1
            else:
                self.foreign += 1

    def consumer_tid(self) -> int | None:
        return self.thread.native_id

    def counts(self) -> tuple[int, int | None]:
        return self.n, None

    def close(self) -> None:
        self._stop = True
        for _ in range(20):            # wake the blocked reader with one more line of ours
            if not self.thread.is_alive():
                break
            self.lg.run(0, 0, 1)
            self.thread.join(0.1)
        self.stuck = self.thread.is_alive()
        _bcc_cleanup(self.b)


