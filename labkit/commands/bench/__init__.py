"""``labkit bench``: where labkit's event pipeline stands, measured side by side.

One run, one load generator, three ways of getting its events to Python:

* **labkit**  ``lab.trace_syscall("getppid", pid=...)``: the ring buffer is
  mmapped and decoded in batches into numpy columns (``_ringbuf.py``);
* **bcc**     what a user writes with BCC: the same ring buffer and event
  struct, ``b.ring_buffer_poll()`` and a Python callback that decodes every
  event with ``b["events"].event(data)``;
* **printk**  the classic ``bpf_trace_printk`` + ``b.trace_fields()``.

Every program is filtered (in the kernel) to the load generator's pid, and
the load generator is a small C loop compiled here with the system's C
compiler (a Python loop, at lower rates, when there is none): it calls
``getppid()`` at a set rate and reports exactly how many calls it made, so
for every method ``generated = received + lost (reported) + missing (silent)``.

Also measured: the traced process's loop rate with and without each tracer,
decode capacity on a full ring buffer, time to first event (first call and a
re-run in the same process, with where the time went), RSS growth over many
events with the default window, and XDP counters under a UDP and a ping flood
inside a :class:`labkit.Sandbox` (traffic never leaves the sandbox's
namespaces).

``labkit bench [--quick | --smoke] [--json FILE] [--plot PNG] [--readme README.md]``

The JSON holds the headline figures as flat keys -- labkit_decode_eps,
bcc_decode_eps, printk_eps (events received per second, flat out),
labkit_loss_at_500k (fraction of generated events not received),
traced_slowdown (untraced loop rate / rate under labkit), first_event_s,
rerun_first_event_s, rss_growth_mb, xdp_sent, xdp_counted, xdp_pps,
targets -- and the detail: rates[method] (one row per target rate: generated,
received, lost, missing, rates, consumer CPU and run-queue wait), capacity,
first_event, memory, xdp, machine, loadgen.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from labkit.events.schemas import SYSCALL_DTYPE
from labkit.lab import DEFAULT_RING_PAGES
from labkit.events.ringbuf import record_dtype

SYSCALL = "getppid"
VARIANT, VARIANT_PAGES = "labkit_16MiB", 4096
RING_PAGES = DEFAULT_RING_PAGES   # labkit's default; the raw BCC program gets the same size
RECORD_BYTES = record_dtype(SYSCALL_DTYPE).itemsize   # one event in the ring buffer, header included
MiB = 1024 * 1024

MODES: dict[str, dict[str, Any]] = {
    # rates: target calls per second, 0 = flat out
    "full": dict(rates=[50_000, 200_000, 500_000, 1_000_000, 0], step_s=3.0, mem_events=10_000_000,
                 udp_packets=1_000_000, ping_count=2_000, fill_events=30_000, fill_repeats=5,
                 variant_rates=[500_000, 1_000_000, 0], trace_pipe_wait_s=30),
    "quick": dict(rates=[50_000, 200_000, 500_000, 1_000_000, 0], step_s=1.0, mem_events=2_000_000,
                  udp_packets=200_000, ping_count=300, fill_events=30_000, fill_repeats=3,
                  variant_rates=[500_000, 1_000_000, 0], trace_pipe_wait_s=15),
    "smoke": dict(rates=[20_000, 0], step_s=0.3, mem_events=200_000,
                  udp_packets=5_000, ping_count=20, fill_events=5_000, fill_repeats=1,
                  variant_rates=[], trace_pipe_wait_s=5),
}

# ------------------------------------------------------------ load generator
LOADGEN_C = r"""
/* labkit bench load generator (compiled at run time by labkit bench).
 *   loadgen                     prints "READY <pid>", then reads commands on stdin:
 *     R <rate> <seconds> <limit>  prints "S", then calls getppid() <rate> times a second
 *                                 (0: flat out) for <seconds> (0: no limit) or <limit> calls
 *                                 (0: no limit), or until SIGUSR1; then prints
 *                                 "D <calls> <elapsed_ns> 0"
 *     Q                           quit
 *   loadgen udp <ip> <port> <count> <max_seconds>
 *                               sends <count> UDP datagrams as fast as it can,
 *                               prints "D <sent> <elapsed_ns> <errors>"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_usr1(int sig) { (void)sig; stop = 1; }

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void nap(long long ns) {
    struct timespec t = { ns / 1000000000LL, ns % 1000000000LL };
    nanosleep(&t, NULL);
}

static int udp_fd = -1;
static struct sockaddr_in udp_to;
static char payload[32] = "labkit bench datagram";
static long long errors;

static inline long long op(void) {
    if (udp_fd >= 0) {
        if (sendto(udp_fd, payload, sizeof payload, 0, (struct sockaddr *)&udp_to, sizeof udp_to) < 0) {
            errors++;
            return 0;
        }
        return 1;
    }
    syscall(SYS_getppid);
    return 1;
}

static long long run(double rate, double secs, long long limit, long long *elapsed) {
    long long n = 0, t0 = now_ns(), t = t0;
    long long end = secs > 0 ? t0 + (long long)(secs * 1e9) : 0;
    for (;;) {
        long long batch = 256;
        if (rate > 0) {
            long long due = (long long)((double)(t - t0) * rate / 1e9) + 1 - n;
            if (due <= 0) {
                /* ahead of schedule: sleep until 1 ms worth of calls is due, then make
                 * them in a burst (spinning between single calls would take a whole
                 * CPU away from the consumer at any rate) */
                double quantum = rate / 1000.0 < 1.0 ? 1.0 : rate / 1000.0;
                long long wait = (long long)(((double)n + quantum - 1.0) * 1e9 / rate) - (t - t0);
                if (wait > 20000)
                    nap(wait);
                t = now_ns();
                if (stop || (end && t >= end))
                    break;
                continue;
            }
            batch = due < 4096 ? due : 4096;
        }
        if (limit && limit - n < batch)
            batch = limit - n;
        for (long long i = 0; i < batch; i++)
            n += op();
        t = now_ns();
        if (stop || (end && t >= end) || (limit && n >= limit))
            break;
    }
    *elapsed = t - t0;
    return n;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    long long elapsed, n;
    if (argc == 6 && strcmp(argv[1], "udp") == 0) {
        udp_fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (udp_fd < 0) { perror("socket"); return 1; }
        udp_to.sin_family = AF_INET;
        udp_to.sin_port = htons(atoi(argv[3]));
        if (inet_pton(AF_INET, argv[2], &udp_to.sin_addr) != 1) { fprintf(stderr, "bad ip\n"); return 1; }
        n = run(0, atof(argv[5]), atoll(argv[4]), &elapsed);
        printf("D %lld %lld %lld\n", n, elapsed, errors);
        return 0;
    }
    printf("READY %d\n", getpid());
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        double rate = 0, secs = 0;
        long long limit = 0;
        if (line[0] == 'Q')
            break;
        if (sscanf(line, "R %lf %lf %lld", &rate, &secs, &limit) != 3)
            continue;
        stop = 0;
        printf("S\n");                  /* started: SIGUSR1 from now on ends this run */
        fflush(stdout);
        n = run(rate, secs, limit, &elapsed);
        printf("D %lld %lld 0\n", n, elapsed);
        fflush(stdout);
    }
    return 0;
}
"""

# The same protocol in Python, for machines without a C compiler (lower rates).
LOADGEN_PY = r"""
import os, signal, sys, time
stop = False
def on_usr1(*_):
    global stop
    stop = True
signal.signal(signal.SIGUSR1, on_usr1)
getppid, now = os.getppid, time.monotonic_ns
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
    print("S", flush=True)
    n, t0 = 0, now()
    t = t0
    end = t0 + int(secs * 1e9) if secs > 0 else 0
    while True:
        batch = 256
        if rate > 0:
            due = int((t - t0) * rate / 1e9) + 1 - n
            if due <= 0:
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
    print("D", n, t - t0, 0, flush=True)
"""


class LoadGenError(RuntimeError):
    pass


def build_loadgen(workdir: Path, prefer: str = "auto") -> tuple[str, str | None, str]:
    """Compile the C load generator; returns (kind, executable or None, description)."""
    if prefer != "python":
        for cc in ("cc", "gcc", "clang"):
            path = shutil.which(cc)
            if not path:
                continue
            src = workdir / "loadgen.c"
            exe = workdir / "loadgen"
            src.write_text(LOADGEN_C)
            r = subprocess.run([path, "-O2", "-o", str(exe), str(src)], capture_output=True, text=True)
            if r.returncode == 0:
                return "c", str(exe), f"C loop compiled with {cc} ({os.path.realpath(path)})"
            if prefer == "c":
                raise LoadGenError(f"{cc} could not compile the load generator:\n{r.stderr}")
        if prefer == "c":
            raise LoadGenError("no C compiler (cc, gcc or clang) found")
    return "python", None, f"Python loop ({sys.executable}; no C compiler used: lower rates)"


class LoadGen:
    """A load generator process that makes getppid() calls on command."""

    def __init__(self, kind: str, exe: str | None):
        self.kind = kind
        argv = [exe] if kind == "c" else [sys.executable, "-u", "-c", LOADGEN_PY]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self._buf = b""
        line = self._readline(timeout=10)
        if not line.startswith("READY"):
            raise LoadGenError(f"load generator did not start: {line!r}")
        self.pid = self.proc.pid
        self.running = False

    def _readline(self, timeout: float | None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise LoadGenError("load generator did not answer in time")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise LoadGenError(f"load generator exited (status {self.proc.poll()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def start(self, rate: float, seconds: float = 0.0, limit: int = 0) -> None:
        assert not self.running
        self.proc.stdin.write(f"R {rate:g} {seconds:g} {int(limit)}\n".encode())
        self.proc.stdin.flush()
        line = self._readline(timeout=10)
        if line != "S":
            raise LoadGenError(f"load generator did not start a run: {line!r}")
        self.running = True

    def ready(self, timeout: float = 0.0) -> bool:
        if b"\n" in self._buf:
            return True
        r, _, _ = select.select([self.proc.stdout.fileno()], [], [], timeout)
        return bool(r)

    def result(self, timeout: float | None = 600) -> tuple[int, float]:
        """(calls made, seconds taken) of the run started last."""
        line = self._readline(timeout)
        self.running = False
        parts = line.split()
        if len(parts) < 3 or parts[0] != "D":
            raise LoadGenError(f"unexpected load generator output {line!r}")
        return int(parts[1]), int(parts[2]) / 1e9

    def interrupt(self) -> None:
        os.kill(self.pid, signal.SIGUSR1)

    def run(self, rate: float, seconds: float = 0.0, limit: int = 0) -> tuple[int, float]:
        self.start(rate, seconds, limit)
        return self.result()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.running:
                    self.interrupt()
                self.proc.stdin.write(b"Q\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


# ------------------------------------------------------------------ tracers
RAW_BCC_C = r"""
// what a user writes with BCC: one event per getppid() of one process, to a ring buffer
struct sys_enter_args { u64 common; s32 syscall_nr; u32 pad; u64 args[6]; };
struct event {
    u64 ts;
    u32 pid;
    u32 tid;
    u32 uid;
    s32 nr;
    u64 args[6];
    char comm[16];
};
BPF_RINGBUF_OUTPUT(events, RING_PAGES);
BPF_PERCPU_ARRAY(lost, u64, 1);

int lk_bench_bcc(struct sys_enter_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    if ((u32)(id >> 32) != FILTER_PID)
        return 0;
    struct event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        lost.increment(0);
        return 0;
    }
    e->ts = bpf_ktime_get_ns();
    e->pid = id >> 32;
    e->tid = (u32)id;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->nr = ctx->syscall_nr;
    __builtin_memset(e->args, 0, sizeof(e->args));
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    events.ringbuf_submit(e, 0);
    return 0;
}
"""

PRINTK_C = r"""
// the classic: bpf_trace_printk, read back from trace_pipe
int lk_bench_printk(void *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (tgid != FILTER_PID)
        return 0;
    bpf_trace_printk("lkbench %u %u\n", NONCE, tgid);
    return 0;
}
"""


def _compile_bcc(text: str, cflags: list[str]):
    """BPF(text=...) with BCC's chatter on fd 2 kept out of the table."""
    import bcc

    from labkit.programs.compile import capture_fd2

    with capture_fd2() as cap:
        try:
            b = bcc.BPF(text=text.encode(), cflags=cflags)
        except Exception as e:
            raise RuntimeError(f"BCC could not compile the benchmark program: {e}\n{cap}") from None
    return b


def _bcc_cleanup(b) -> None:
    from labkit.programs.compile import capture_fd2

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
        from labkit.lab import Lab

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
        return self.stream._thread.native_id

    def counts(self) -> tuple[int, int | None]:
        return self.stream.received, self.stream.lost

    def drain(self) -> None:
        self.stream.poll()

    def close(self) -> None:
        self.lab.close()


class BccTracer(Tracer):
    name = "bcc"

    def __init__(self, lg: LoadGen):
        import bcc

        pid = lg.pid
        self.b = b = _compile_bcc(RAW_BCC_C, [f"-DFILTER_PID={pid}", f"-DRING_PAGES={RING_PAGES}"])
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
        del bcc

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


def trace_pipe_readers(exclude: int | None = None) -> list[int]:
    """Pids of processes (other than ``exclude``) that hold trace_pipe open."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == exclude:
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    if os.readlink(f"/proc/{d}/fd/{fd}").endswith("/trace_pipe"):
                        out.append(int(d))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return sorted(out)


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

    def __init__(self, lg: LoadGen):
        self.lg = lg
        self.pid = lg.pid
        self.nonce = int.from_bytes(os.urandom(3), "little")
        self.prefix = f"lkbench {self.nonce} ".encode()
        self.b = b = _compile_bcc(PRINTK_C, [f"-DFILTER_PID={self.pid}", f"-DNONCE={self.nonce}"])
        try:
            b.attach_tracepoint(tp=f"syscalls:sys_enter_{SYSCALL}".encode(), fn_name=b"lk_bench_printk")
            b.trace_open()
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


# ------------------------------------------------------------------ helpers
def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def schedstat(tid: int | None) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds waiting for one) of a thread of this process."""
    if tid is None:
        return None
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            run, wait, _ = f.read().split()
        return int(run) / 1e9, int(wait) / 1e9
    except (OSError, ValueError):
        return None


def cpu_pressure_us() -> int | None:
    """Total microseconds in which some runnable task waited for a CPU (PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fmt_rate(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_int(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def rate_label(r: float) -> str:
    return "max" if not r else fmt_rate(r).replace(".0k", "k").replace(".00M", "M")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"kernel": platform.release(), "cpus": os.cpu_count(),
                            "python": platform.python_version()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    if shutil.which("systemd-detect-virt"):
        r = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True)
        info["virt"] = r.stdout.strip() or "none"
    try:
        import bcc

        info["bcc"] = getattr(bcc, "__version__", "?")
    except Exception:
        info["bcc"] = None
    try:
        from labkit.programs.hooks import tracefs

        tf = tracefs()
        if tf is not None:
            info["trace_buffer_kb"] = (Path(tf) / "buffer_size_kb").read_text().strip()
    except Exception:
        pass
    info["loadavg_start"] = os.getloadavg()[0]
    return info


def describe_machine(m: dict[str, Any]) -> str:
    parts = [m.get("cpu", "?cpu"), f"{m.get('cpus')} CPUs", f"{m.get('mem_gib', '?')} GiB",
             f"Linux {m.get('kernel')}", m.get("os", "")]
    if m.get("virt") and m["virt"] != "none":
        parts.append(f"VM ({m['virt']})")
    parts.append(f"BCC {m.get('bcc')}, Python {m.get('python')}")
    return ", ".join(p for p in parts if p)


# ------------------------------------------------------------------ phases
def _step(lg: LoadGen, tracer: Tracer, rate: float, seconds: float, limit: int = 0,
          idle_s: float = 0.3) -> dict[str, Any]:
    """One run of the load generator at ``rate`` under ``tracer``; counts what arrived."""
    r0, l0 = tracer.counts()
    c0 = _cpu_s()
    tid = tracer.consumer_tid()
    s0 = schedstat(tid)
    p0 = cpu_pressure_us()
    gaps = getattr(tracer, "gaps", None)
    if gaps is not None:
        gaps.clear()
    t0 = time.perf_counter()
    lg.start(rate, seconds, limit)
    tracer.pump(lg)
    generated, gen_s = lg.result()
    t_gen = time.perf_counter()
    # drain: until everything is accounted for, or nothing has arrived for idle_s
    last = tracer.counts()[0]
    t_last = time.perf_counter()
    deadline = t_gen + max(5.0, 3 * seconds)
    while True:
        tracer.drain()
        rec, lost = tracer.counts()
        now = time.perf_counter()
        if rec != last:
            last, t_last = rec, now
        if rec - r0 + ((lost or 0) - (l0 or 0)) >= generated:
            break
        if now - t_last > idle_s or now > deadline:
            break
        time.sleep(0.002)
    rec, lost = tracer.counts()
    received = rec - r0
    lost_n = None if lost is None else lost - (l0 or 0)
    span = max(gen_s, t_last - t0) if received else gen_s
    cpu = _cpu_s() - c0
    s1 = schedstat(tid)
    p1 = cpu_pressure_us()
    wall = time.perf_counter() - t0
    return {
        "target_eps": rate, "generated": generated, "gen_seconds": round(gen_s, 4),
        "gen_eps": generated / gen_s if gen_s > 0 else 0.0,
        "received": received, "recv_eps": received / span if span > 0 else 0.0,
        "lost": lost_n, "missing": generated - received - (lost_n or 0),
        "loss_fraction": (generated - received) / generated if generated else 0.0,
        "drain_s": round(max(0.0, t_last - t_gen), 4),
        "cpu_ns_per_event": (cpu / received * 1e9) if received else None,
        "consumer_cpu_s": round(s1[0] - s0[0], 4) if s0 and s1 else None,
        "consumer_runqueue_wait_s": round(s1[1] - s0[1], 4) if s0 and s1 else None,
        "max_gap_between_batches_s": round(max(gaps), 4) if gaps else None,
        # share of the step's wall time in which some task on this machine waited for a CPU
        "machine_cpu_pressure": round((p1 - p0) / 1e6 / wall, 3) if p0 is not None and p1 is not None else None,
    }


def phase_untraced(lg: LoadGen, cfg: dict) -> dict[str, Any]:
    n, s = lg.run(0, cfg["step_s"])
    return {"calls": n, "seconds": s, "eps": n / s}


def phase_method(name: str, lg: LoadGen, cfg: dict, rates: list[float] | None = None,
                 **kw) -> tuple[list[dict], dict[str, Any]]:
    cls = {"labkit": LabkitTracer, "bcc": BccTracer, "printk": PrintkTracer}[name]
    extra: dict[str, Any] = {}
    if name == "printk":
        others = trace_pipe_readers(exclude=os.getpid())
        deadline = time.monotonic() + cfg["trace_pipe_wait_s"]
        if others:
            log(f"trace_pipe is open in pid(s) {others}: waiting up to {cfg['trace_pipe_wait_s']:g} s for them")
        while others and time.monotonic() < deadline:     # give someone else's reader time to finish
            time.sleep(0.5)
            others = trace_pipe_readers(exclude=os.getpid())
        extra["other_trace_pipe_readers"] = others
        if others:
            log(f"warning: trace_pipe is also open in pid(s) {others}: they and this benchmark "
                "take lines from each other, so printk figures are unreliable")
    tracer = cls(lg, **kw)
    rows = []
    try:
        for rate in rates or cfg["rates"]:
            log(f"{name}: {rate_label(rate)} calls/s for {cfg['step_s']:g} s")
            row = _step(lg, tracer, rate, cfg["step_s"], idle_s=0.5 if name == "printk" else 0.3)
            rows.append(row)
    finally:
        tracer.close()
    if name == "printk":
        extra["foreign_lines_read"] = tracer.foreign
        extra["reader_thread_stuck"] = tracer.stuck
    return rows, extra


def phase_capacity(lg: LoadGen, cfg: dict) -> dict[str, Any]:
    """Decode throughput on a full ring buffer: the consumer alone, CPU-bound."""
    from labkit.lab import Lab

    n_fill, reps = cfg["fill_events"], cfg["fill_repeats"]
    out: dict[str, Any] = {"events_per_fill": n_fill}
    lab = Lab()
    try:
        s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-fill", poll_interval=3600.0)
        s.poll()
        best, df_s = 0.0, None
        for _ in range(reps):
            lg.run(0, 0, n_fill)
            t = time.perf_counter()
            got = s.poll()
            dt = time.perf_counter() - t
            if got:
                best = max(best, got / dt)
        t = time.perf_counter()
        df = s.to_dataframe()
        df_s = time.perf_counter() - t
        out["labkit_eps"] = best
        out["labkit_lost"] = s.lost
        out["dataframe_rows"] = len(df)
        out["dataframe_s"] = df_s
        del df
    finally:
        lab.close()
    tr = BccTracer(lg)
    try:
        for mode in ("decode", "count"):
            tr.decode = mode == "decode"
            best = 0.0
            for _ in range(reps):
                lg.run(0, 0, n_fill)
                n0 = tr.n
                t = time.perf_counter()
                tr.b.ring_buffer_consume()
                dt = time.perf_counter() - t
                if tr.n > n0:
                    best = max(best, (tr.n - n0) / dt)
            out[f"bcc_{mode}_eps"] = best
        out["bcc_lost"] = tr.counts()[1]
    finally:
        tr.close()
    return out


def phase_first_event(lg: LoadGen) -> dict[str, Any]:
    """Time from lab.trace_syscall() to the first row of its table, twice in this process."""
    from labkit import lab as _lab
    from labkit.lab import Lab

    timings: dict[str, float] = {}
    real_compile, real_load = _lab.compile_c, _lab.Program.load

    def timed(key, fn):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[key] = timings.get(key, 0.0) + time.perf_counter() - t
        return wrapper

    lab = Lab()
    out: dict[str, Any] = {}
    lg.start(20_000, 60.0)
    try:
        _lab.compile_c = timed("compile", real_compile)
        _lab.Program.load = timed("verify_load", real_load)
        for label in ("first", "rerun"):
            timings.clear()
            t0 = time.perf_counter()
            s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-first")
            t_attached = time.perf_counter()
            while True:
                s.poll()
                if len(s.to_dataframe(last=1)):
                    break
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("no event within 30 s")
                time.sleep(0.0005)
            t1 = time.perf_counter()
            comp, ld = timings.get("compile", 0.0), timings.get("verify_load", 0.0)
            out[label] = {"total_s": t1 - t0, "compile_s": comp, "verify_load_s": ld,
                          "attach_other_s": (t_attached - t0) - comp - ld, "to_first_row_s": t1 - t_attached}
    finally:
        _lab.compile_c, _lab.Program.load = real_compile, real_load
        try:
            lg.interrupt()
            lg.result(timeout=10)
        finally:
            lab.close()
    return out


def phase_import_times() -> dict[str, float]:
    out = {}
    for mod in ("bcc", "labkit"):
        r = subprocess.run([sys.executable, "-c",
                            f"import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"],
                           capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[3]))
        try:
            out[f"import_{mod}_s"] = float(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out[f"import_{mod}_s"] = None
    return out


def phase_memory(lg: LoadGen, n_events: int) -> dict[str, Any]:
    from labkit.lab import Lab
    from labkit.events.stream import DEFAULT_WINDOW

    gc.collect()
    lab = Lab()
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_bytes())

    try:
        rss0 = rss_bytes()
        s = lab.trace_syscall(SYSCALL, pid=lg.pid, name="lkbench-mem")
        rss_attached = rss_bytes()
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        generated, gen_s = lg.run(0, 0, n_events)
        deadline = time.perf_counter() + 10
        while s.received + s.lost < generated and time.perf_counter() < deadline:
            s.poll()
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        stop.set()
        th.join()
        rss1 = rss_bytes()
        df = s.to_dataframe()
        rss_df = rss_bytes()
        out = {"events_generated": generated, "received": s.received, "lost": s.lost,
               "window": s.window, "default_window": DEFAULT_WINDOW, "seconds": elapsed,
               "rss_before_mb": rss0 / MiB, "rss_after_mb": rss1 / MiB,
               "growth_mb": (rss1 - rss0) / MiB, "attach_growth_mb": (rss_attached - rss0) / MiB,
               "peak_growth_mb": (max(peak[0], rss1) - rss0) / MiB,
               "with_dataframe_growth_mb": (rss_df - rss0) / MiB, "dataframe_rows": len(df)}
        del df
        return out
    finally:
        stop.set()
        lab.close()


def _link_stats(sb, side: str, iface: str) -> dict[str, int]:
    r = sb.run(["ip", "-s", "-j", "link", "show", "dev", iface], side=side)
    try:
        st = json.loads(r.stdout)[0]["stats64"]
        return {"rx_packets": st["rx"]["packets"], "rx_dropped": st["rx"]["dropped"],
                "tx_packets": st["tx"]["packets"], "tx_dropped": st["tx"]["dropped"]}
    except (ValueError, KeyError, IndexError):
        return {}


def _qdisc_drops(sb) -> int | None:
    if not shutil.which("tc"):
        return None
    r = sb.run(["tc", "-s", "-j", "qdisc", "show", "dev", sb.host_iface], side="host")
    try:
        return sum(int(q.get("drops", 0)) for q in json.loads(r.stdout))
    except (ValueError, TypeError):
        return None


def _udp_flood_python(sb, count: int, port: int) -> tuple[int, float, int]:
    import socket

    from labkit.net import netns as _netns

    sock = _netns.run_in_netns(sb.host_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with sock:
        payload, dst, sent, errors = b"labkit bench datagram".ljust(32, b"\0"), (sb.target_ip, port), 0, 0
        t = time.perf_counter()
        deadline = t + 60
        while sent < count and time.perf_counter() < deadline:
            try:
                sock.sendto(payload, dst)
                sent += 1
            except OSError:
                errors += 1
        return sent, time.perf_counter() - t, errors


def phase_xdp(lg_kind: str, lg_exe: str | None, cfg: dict) -> dict[str, Any]:
    from labkit.lab import Lab
    from labkit.net.sandbox import Sandbox
    from labkit.net.traffic import parse_ping

    out: dict[str, Any] = {}
    sb = Sandbox()
    out["sandbox_id"] = sb.id
    out["namespaces"] = [sb.host_ns, sb.target_ns]
    lab = Lab()
    try:
        x = lab.attach_xdp("xdp_icmp_drop", iface=sb.target_iface, netns=sb.target_ns)
        out["mode"] = x.mode
        out["via"] = x.via
        warm = sb.send_udp(count=3)            # resolves ARP before counting starts
        out["warmup_udp_received"] = warm.received
        port = 9                                 # discard; nothing listens in the target namespace
        # a queue on the sender's veth: when the receiving ring is full the veth then
        # pushes back (the socket blocks) instead of dropping before XDP sees the packet
        out["sender_qdisc"] = None
        if shutil.which("tc"):
            r = sb.run(["tc", "qdisc", "replace", "dev", sb.host_iface, "root", "pfifo", "limit", "1000"], side="host")
            out["sender_qdisc"] = "pfifo limit 1000" if r.returncode == 0 else f"none ({r.stderr.strip()})"
        time.sleep(0.05)
        if x.events is not None:
            x.events.poll()
        before = x.counters()
        ev0 = (x.events.received, x.events.lost) if x.events else (0, 0)
        st0 = {"host": _link_stats(sb, "host", sb.host_iface), "target": _link_stats(sb, "target", sb.target_iface)}
        n = cfg["udp_packets"]
        if lg_kind == "c":
            r = sb.run([lg_exe, "udp", sb.target_ip, str(port), str(n), "60"], side="host", timeout=90)
            parts = r.stdout.split()
            if len(parts) < 4 or parts[0] != "D":
                raise RuntimeError(f"UDP flood failed: {r.stdout!r} {r.stderr!r}")
            sent, secs, errors = int(parts[1]), int(parts[2]) / 1e9, int(parts[3])
            out["sender"] = "C loop (sendto) in the sandbox's host namespace"
        else:
            sent, secs, errors = _udp_flood_python(sb, n, port)
            out["sender"] = "Python loop (sendto) in the sandbox's host namespace"
        time.sleep(0.3)
        mid = x.counters()

        def delta(df_after, df_before, action, proto):
            def get(df):
                m = df[(df.action == action) & (df.protocol == proto)]
                return int(m.packets.sum())
            return get(df_after) - get(df_before)

        counted = delta(mid, before, "pass", "udp")
        st1 = {"host": _link_stats(sb, "host", sb.host_iface), "target": _link_stats(sb, "target", sb.target_iface)}
        out.update({"udp_sent": sent, "udp_send_errors": errors, "udp_seconds": secs,
                    "udp_counted": counted, "udp_pps": counted / secs if secs else 0.0,
                    "host_tx_dropped": st1["host"].get("tx_dropped", 0) - st0["host"].get("tx_dropped", 0),
                    "target_rx_dropped": st1["target"].get("rx_dropped", 0) - st0["target"].get("rx_dropped", 0),
                    "host_tx_packets": st1["host"].get("tx_packets", 0) - st0["host"].get("tx_packets", 0),
                    "qdisc_dropped": _qdisc_drops(sb)})
        # ping flood: every echo request is dropped by the program
        pc = cfg["ping_count"]
        r = sb.run(["ping", "-n", "-q", "-f", "-i", "0.001", "-c", str(pc), "-W", "1", sb.target_ip], side="host", timeout=120)
        ping = parse_ping(r.stdout + r.stderr, r.returncode)
        time.sleep(0.2)
        after = x.counters()
        out.update({"ping_sent": ping.transmitted, "ping_received": ping.received,
                    "ping_counted_dropped": delta(after, mid, "drop", "icmp")})
        total_after = int(after.packets.sum()) - int(before.packets.sum())
        if x.events is not None:
            deadline = time.time() + 5
            while time.time() < deadline:
                x.events.poll()
                got = x.events.received - ev0[0] + x.events.lost - ev0[1]
                if got >= total_after:
                    break
                time.sleep(0.01)
            out["events_received"] = x.events.received - ev0[0]
            out["events_lost"] = x.events.lost - ev0[1]
            out["packets_counted_all"] = total_after
        out["sent"] = sent + ping.transmitted
        out["counted"] = counted + out["ping_counted_dropped"]
        x.detach()
    finally:
        lab.close()
        sb.close()
    out["sandbox_left"] = any(os.path.exists(f"/run/netns/{ns}") for ns in out["namespaces"])
    return out


# ------------------------------------------------------------------- run all
def run_bench(mode: str = "quick", loadgen: str = "auto", skip: set[str] | None = None) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    skip = skip or set()
    cfg = MODES[mode]
    res: dict[str, Any] = {"mode": mode, "config": dict(cfg), "syscall": SYSCALL, "errors": {}}
    res["machine"] = machine_info()
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
    lg = None
    try:
        kind, exe, desc = build_loadgen(work, loadgen)
        res["loadgen"] = {"kind": kind, "description": desc}
        log(f"load generator: {desc}")
        lg = LoadGen(kind, exe)

        def phase(name: str, fn: Callable[[], Any]) -> Any:
            if name in skip:
                return None
            log(f"phase {name}")
            try:
                return fn()
            except Exception as e:  # recorded, and the rest still runs
                res["errors"][name] = f"{type(e).__name__}: {e}"
                log(f"phase {name} failed: {e}")
                if lg is not None and lg.running:
                    try:
                        lg.interrupt()
                        lg.result(timeout=10)
                    except Exception:
                        pass
                return None

        res["first_event"] = phase("first_event", lambda: phase_first_event(lg))
        res["imports"] = phase("imports", phase_import_times)
        untraced = [phase("untraced", lambda: phase_untraced(lg, cfg))]
        rates: dict[str, list] = {}
        extras: dict[str, Any] = {}
        for m in ("labkit", "bcc", "printk"):
            got = phase(m, lambda m=m: phase_method(m, lg, cfg))
            if got is not None:
                rates[m], extras[m] = got
            if m == "labkit" and cfg["variant_rates"]:
                # the same stream with a 4x larger ring buffer: how much of the loss is
                # time the consumer spent waiting for a CPU (more room = more slack)
                got = phase(VARIANT, lambda: phase_method("labkit", lg, cfg, cfg["variant_rates"],
                                                           ring_pages=VARIANT_PAGES))
                if got is not None:
                    rates[VARIANT], extras[VARIANT] = got
        untraced.append(phase("untraced", lambda: phase_untraced(lg, cfg)))
        res["rates"] = rates
        res["method_notes"] = extras
        res["untraced_runs"] = [u for u in untraced if u]
        res["capacity"] = phase("capacity", lambda: phase_capacity(lg, cfg))
        res["memory"] = phase("memory", lambda: phase_memory(lg, cfg["mem_events"]))
        lg.close()
        lg = None
        res["xdp"] = phase("xdp", lambda: phase_xdp(kind, exe, cfg))
    finally:
        if lg is not None:
            lg.close()
        shutil.rmtree(work, ignore_errors=True)
    from labkit.attach import live_attachments

    res["leftover_attachments"] = [repr(a) for a in live_attachments()]
    res["machine"]["loadavg_end"] = os.getloadavg()[0]
    res["seconds"] = time.perf_counter() - t_start
    summarize(res)
    return res


def _flat(rows: list[dict] | None) -> dict | None:
    if not rows:
        return None
    for r in rows:
        if not r["target_eps"]:
            return r
    return rows[-1]


def _at(rows: list[dict] | None, rate: float) -> dict | None:
    for r in rows or []:
        if r["target_eps"] == rate:
            return r
    return None


def summarize(res: dict[str, Any]) -> None:
    """The headline figures (flat keys) from the phase results."""
    rates = res.get("rates") or {}
    lk, bc, pk = (_flat(rates.get(m)) for m in ("labkit", "bcc", "printk"))
    res["labkit_decode_eps"] = lk["recv_eps"] if lk else None
    res["bcc_decode_eps"] = bc["recv_eps"] if bc else None
    res["printk_eps"] = pk["recv_eps"] if pk else None
    at500 = _at(rates.get("labkit"), 500_000)
    if at500 is None and rates.get("labkit"):
        at500 = min(rates["labkit"], key=lambda r: abs((r["target_eps"] or 1e12) - 500_000))
    res["labkit_loss_at_500k"] = at500["loss_fraction"] if at500 else None
    res["labkit_lost_at_500k"] = at500["lost"] if at500 else None
    res["labkit_loss_rate_eps"] = at500["target_eps"] if at500 else None
    un = [u["eps"] for u in res.get("untraced_runs") or []]
    res["untraced_eps"] = max(un) if un else None
    for m, r in (("labkit", lk), ("bcc", bc), ("printk", pk)):
        res[f"{m}_traced_eps"] = r["gen_eps"] if r else None
        res[f"{m}_slowdown"] = (res["untraced_eps"] / r["gen_eps"]) if (r and un and r["gen_eps"]) else None
    res["traced_slowdown"] = res["labkit_slowdown"]
    fe = res.get("first_event") or {}
    res["first_event_s"] = fe.get("first", {}).get("total_s")
    res["rerun_first_event_s"] = fe.get("rerun", {}).get("total_s")
    mem = res.get("memory") or {}
    res["rss_growth_mb"] = mem.get("growth_mb")
    res["rss_events"] = mem.get("events_generated")
    xdp = res.get("xdp") or {}
    res["xdp_sent"] = xdp.get("sent")
    res["xdp_counted"] = xdp.get("counted")
    res["xdp_pps"] = xdp.get("udp_pps")
    res["labkit_over_bcc"] = (res["labkit_decode_eps"] / res["bcc_decode_eps"]
                              if res["labkit_decode_eps"] and res["bcc_decode_eps"] else None)
    unreported = 0
    for r in rates.get("labkit") or []:
        unreported += abs(r["missing"])
    res["labkit_unreported_loss"] = unreported if rates.get("labkit") else None
    res["targets"] = targets(res)


def _why_loss(row: dict | None, pages: int) -> str | None:
    """Where the time went when events were lost: the consumer's CPU and waits."""
    if not row or not row.get("lost") or row.get("consumer_runqueue_wait_s") is None:
        return None
    hold = pages * 4096 // RECORD_BYTES / row["gen_eps"] * 1e3 if row["gen_eps"] else 0
    gap = row.get("max_gap_between_batches_s")
    psi = row.get("machine_cpu_pressure")
    return (f"the consumer thread was on a CPU {row['consumer_cpu_s']:.3f} s and waited for one "
            f"{row['consumer_runqueue_wait_s']:.3f} s"
            + (f" (longest gap between batches {gap * 1e3:.0f} ms" if gap else " (")
            + f"; the ring holds {hold:.0f} ms of events at this rate"
            + (f"; some task on this machine waited for a CPU {psi:.0%} of the time" if psi is not None else "")
            + ")")


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    def t(name, ok, value, why=None):
        return {"target": name, "met": None if ok is None else bool(ok), "value": value,
                "why": why if ok is False else None}

    rates = res.get("rates") or {}
    ratio = res.get("labkit_over_bcc")
    l500 = res.get("labkit_lost_at_500k")
    rate500 = res.get("labkit_loss_rate_eps") or 500_000
    rss = res.get("rss_growth_mb")
    rr = res.get("rerun_first_event_s")
    xs, xc = res.get("xdp_sent"), res.get("xdp_counted")
    unrep = res.get("labkit_unreported_loss")
    n_rss = res.get("rss_events") or 0
    row500 = _at(rates.get("labkit"), rate500)
    why500 = _why_loss(row500, RING_PAGES)
    var500 = _at(rates.get(VARIANT), rate500)
    if why500 and var500 is not None:
        why500 += f"; with a 16 MiB ring (ring_pages=4096): {var500['lost']:,} lost of {var500['generated']:,}"
    lk, bc = _flat(rates.get("labkit")), _flat(rates.get("bcc"))
    why_ratio = None
    if lk and bc and lk.get("cpu_ns_per_event") and bc.get("cpu_ns_per_event"):
        why_ratio = (f"consumer CPU per event: labkit {lk['cpu_ns_per_event']:.0f} ns, BCC {bc['cpu_ns_per_event']:.0f} ns; "
                     f"generator rates {fmt_rate(lk['gen_eps'])}/s and {fmt_rate(bc['gen_eps'])}/s")
    fe = (res.get("first_event") or {}).get("rerun") or {}
    why_rr = (f"compile {fe['compile_s']:.2f} s, verify+load {fe['verify_load_s']:.2f} s, attach+stream "
              f"{fe['attach_other_s']:.2f} s, first row {fe['to_first_row_s']:.3f} s") if fe else None
    x = res.get("xdp") or {}
    why_x = (f"dropped before XDP: sender veth {x.get('host_tx_dropped')}, qdisc {x.get('qdisc_dropped')}, "
             f"target rx {x.get('target_rx_dropped')}") if x else None
    mem = res.get("memory") or {}
    why_rss = (f"peak {mem.get('peak_growth_mb', 0):+.1f} MB; the ring buffer mapping alone is "
               f"{RING_PAGES * 4096 * 2 // MiB} MiB of address space") if mem else None
    return [
        t("labkit decodes >= 2x the raw BCC rate (flat out)", None if ratio is None else ratio >= 2,
          None if ratio is None else f"{ratio:.2f}x ({fmt_rate(res['labkit_decode_eps'])}/s vs "
                                     f"{fmt_rate(res['bcc_decode_eps'])}/s)", why_ratio),
        t(f"zero loss at {rate_label(rate500)} events/s",
          None if l500 is None else l500 == 0 and res["labkit_loss_at_500k"] == 0,
          None if l500 is None else f"{l500:,} lost of {row500['generated']:,} ({res['labkit_loss_at_500k']:.4%})",
          why500),
        t("loss always reported (labkit: received + lost == generated at every rate)",
          None if unrep is None else unrep == 0, None if unrep is None else f"{unrep:,} unaccounted"),
        t(f"RSS growth < 100 MB over {n_rss:,} events (target: 10M)",
          None if rss is None else rss < 100, None if rss is None else f"{rss:+.1f} MB", why_rss),
        t("time to first event < 1 s on a re-run", None if rr is None else rr < 1.0,
          None if rr is None else f"{rr:.2f} s (first {res['first_event_s']:.2f} s)", why_rr),
        t("XDP counted == sent", None if xs is None else xs == xc,
          None if xs is None else f"{xc:,} counted of {xs:,} sent", why_x),
    ]


# -------------------------------------------------------------------- output
def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    lg = res.get("loadgen", {})
    cfg = res["config"]
    lines = [
        f"labkit bench ({res['mode']}): {SYSCALL}() from a load generator, every program filtered to its pid; "
        f"{cfg['step_s']:g} s per rate",
        f"load generator: {lg.get('description', '?')}",
        f"machine: {describe_machine(m)}; load average {m.get('loadavg_start', 0):.2f} at start, "
        f"{m.get('loadavg_end', 0):.2f} at end",
        "",
        "Events received against generated (one method at a time, same load generator)",
        f"{'target/s':>9} {'method':<7} {'generated/s':>11} {'received/s':>10} {'generated':>11} {'received':>11} "
        f"{'lost*':>9} {'missing+':>9} {'CPU ns/ev':>9}",
    ]
    rates = res.get("rates") or {}
    targets_ = [r["target_eps"] for r in next(iter(rates.values()), [])]
    for tgt in targets_:
        first = True
        for meth in ("labkit", VARIANT, "bcc", "printk"):
            r = _at(rates.get(meth), tgt)
            if r is None:
                continue
            cpu = r["cpu_ns_per_event"]
            lines.append(
                f"{rate_label(tgt) if first else '':>9} {SHORT.get(meth, meth):<7} {fmt_rate(r['gen_eps']):>11} {fmt_rate(r['recv_eps']):>10} "
                f"{r['generated']:>11,} {r['received']:>11,} {fmt_int(r['lost']) if r['lost'] is not None else 'n/a':>9} "
                f"{r['missing']:>9,} {'-' if cpu is None else f'{cpu:,.0f}':>9}")
            first = False
    lines += [
        "  * lost: the kernel-side counter of failed ring-buffer reservations (the method reports it);"
        " printk has none" + (f" (its trace buffer, buffer_size_kb: {m['trace_buffer_kb']} per CPU, is "
                              "overwritten when full)" if m.get("trace_buffer_kb") else ""),
        "  + missing: generated - received - lost, i.e. events that vanished with nothing reporting them",
        "  CPU ns/ev: this process's CPU time (all threads) per received event; "
        "lk16M: labkit with ring_pages=4096 (16 MiB) instead of the default 1024",
        "",
        "Where the consumer's time went (thread that takes events in; run-queue wait = runnable but no CPU free):",
    ]
    for meth in ("labkit", VARIANT, "bcc", "printk"):
        for r in rates.get(meth) or []:
            if r.get("consumer_cpu_s") is None:
                continue
            gap = r.get("max_gap_between_batches_s")
            ring = ""
            if meth in ("labkit", VARIANT, "bcc") and r["gen_eps"]:
                pages = VARIANT_PAGES if meth == VARIANT else RING_PAGES
                ring = f"; ring holds {pages * 4096 // RECORD_BYTES / r['gen_eps'] * 1e3:.0f} ms of events"
            psi = r.get("machine_cpu_pressure")
            lines.append(f"  {SHORT.get(meth, meth):<7} {rate_label(r['target_eps']):>5}: on CPU {r['consumer_cpu_s']:.3f} s, "
                         f"waiting for a CPU {r['consumer_runqueue_wait_s']:.3f} s"
                         + (f", longest gap between batches {gap * 1e3:.0f} ms" if gap else "")
                         + f" (over {r['gen_seconds'] + r['drain_s']:.2f} s{ring}"
                         + (f"; machine CPU pressure {psi:.0%}" if psi is not None else "") + ")")
    cap = res.get("capacity")
    if cap:
        lines += ["", f"Decode capacity on a full ring buffer ({cap['events_per_fill']:,} events, consumer alone): "
                      f"labkit {fmt_rate(cap.get('labkit_eps'))}/s, BCC callback with decode "
                      f"{fmt_rate(cap.get('bcc_decode_eps'))}/s, BCC callback counting only "
                      f"{fmt_rate(cap.get('bcc_count_eps'))}/s; "
                      f"to_dataframe() of {cap.get('dataframe_rows', 0):,} rows: {cap.get('dataframe_s', 0) * 1e3:.0f} ms"]
    if res.get("untraced_eps"):
        parts = []
        for meth in ("labkit", "bcc", "printk"):
            if res.get(f"{meth}_traced_eps"):
                parts.append(f"{meth} {fmt_rate(res[f'{meth}_traced_eps'])}/s "
                             f"({res[f'{meth}_slowdown']:.1f}x slower)")
        lines += ["", f"Traced process, flat out: untraced {fmt_rate(res['untraced_eps'])} calls/s; "
                  + ", ".join(parts)]
    fe = res.get("first_event")
    if fe:
        def one(d):
            return (f"{d['total_s']:.2f} s (compile {d['compile_s']:.2f}, verify+load {d['verify_load_s']:.2f}, "
                    f"attach+stream {d['attach_other_s']:.2f}, to first row {d['to_first_row_s']:.3f})")
        imp = res.get("imports") or {}
        lines += ["", f"Time to first event: first call {one(fe['first'])}",
                  f"                     re-run     {one(fe['rerun'])}"]
        if imp.get("import_labkit_s") is not None:
            lines.append(f"  (before that, in a fresh interpreter: import labkit {imp['import_labkit_s']:.2f} s, "
                         f"import bcc {imp.get('import_bcc_s') or 0:.2f} s)")
    mem = res.get("memory")
    if mem:
        note = "" if mem["events_generated"] >= 10_000_000 else " (fewer than the 10M of a full run)"
        lines += ["", f"Memory: RSS {mem['growth_mb']:+.1f} MB over {mem['events_generated']:,} events{note} "
                      f"with the default window ({mem['window']:,} events); peak {mem['peak_growth_mb']:+.1f} MB, "
                      f"{mem['with_dataframe_growth_mb']:+.1f} MB with the window as a DataFrame; "
                      f"received {mem['received']:,}, lost {mem['lost']:,}"]
    x = res.get("xdp")
    if x:
        lines += ["", f"XDP (labkit.Sandbox, {x['mode']} mode via {x['via']}; {x['sender']}):",
                  f"  UDP flood: {x['udp_sent']:,} sent, {x['udp_counted']:,} counted (pass/udp) at "
                  f"{fmt_rate(x['udp_pps'])} packets/s; dropped before XDP: sender veth {x['host_tx_dropped']}, "
                  f"sender qdisc {x.get('qdisc_dropped')} ({x.get('sender_qdisc')}), target rx {x['target_rx_dropped']}",
                  f"  ping -f:   {x['ping_sent']:,} sent, {x['ping_counted_dropped']:,} counted (drop/icmp), "
                  f"{x['ping_received']} replies"]
        if "events_received" in x:
            lines.append(f"  sampled events: {x['events_received']:,} received + {x['events_lost']:,} lost "
                         f"(reported) of {x['packets_counted_all']:,} packets counted")
    lines += ["", "Targets"]
    for t in res.get("targets", []):
        mark = {True: "  ok  ", False: " MISS ", None: "  --  "}[t["met"]]
        lines.append(f"[{mark}] {t['target']}: {t['value'] if t['value'] is not None else 'not measured'}")
        if t.get("why"):
            lines.append(f"         where the time went: {t['why']}")
    if res.get("errors"):
        lines += ["", "Phases that failed:"] + [f"  {k}: {v}" for k, v in res["errors"].items()]
    if res.get("leftover_attachments"):
        lines += ["", f"LEFT ATTACHED: {res['leftover_attachments']}"]
    lines.append(f"\n({res['seconds']:.0f} s)")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6), dpi=110)
    styles = {"labkit": ("o-", "labkit stream (batch decode)"),
              "bcc": ("s-", "raw BCC ring buffer + Python callback"),
              "printk": ("^-", "bpf_trace_printk + trace_fields")}
    hi, lo = 1.0, 3e4
    for meth, (st, label) in styles.items():
        rows = (res.get("rates") or {}).get(meth)
        if not rows:
            continue
        rows = sorted(rows, key=lambda r: r["target_eps"] or math.inf)     # in the order they were run
        xs = [r["gen_eps"] for r in rows]
        ys = [max(r["recv_eps"], 1.0) for r in rows]
        hi = max(hi, *xs, *ys)
        lo = min(lo, *xs, *ys)
        ax.plot(xs, ys, st, label=label)
    lo /= 1.5
    ax.plot([lo, hi * 1.5], [lo, hi * 1.5], ":", color="grey", label="received = generated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi * 1.5)
    ax.set_ylim(lo, hi * 1.5)
    ax.set_xlabel("events generated per second (traced process)")
    ax.set_ylabel("events received per second (in Python)")
    m = res["machine"]
    ax.set_title(f"labkit bench ({res['mode']}): {m.get('cpus')} CPUs, Linux {m.get('kernel')}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


SHORT = {VARIANT: "lk16M"}

README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def readme_block(res: dict[str, Any], plot_path: str | None) -> str:
    m = res["machine"]

    def ratio(a, b):
        return f"{a / b:.1f}x" if a and b else "-"

    mem = res.get("memory") or {}
    psi = [r["machine_cpu_pressure"] for rows_ in (res.get("rates") or {}).values() for r in rows_
           if r.get("machine_cpu_pressure") is not None]
    busy = (f"Other work shared the machine: load average {m.get('loadavg_start', 0):.1f} to "
            f"{m.get('loadavg_end', 0):.1f}" + (f", some task waiting for a CPU {sum(psi) / len(psi):.0%} of the "
                                                 "time on average" if psi else "") + ".")
    rows = [
        ("labkit stream vs raw BCC callback, events decoded per second (flat out)",
         ratio(res.get("labkit_decode_eps"), res.get("bcc_decode_eps")),
         f"{fmt_rate(res.get('labkit_decode_eps'))}/s vs {fmt_rate(res.get('bcc_decode_eps'))}/s"),
        ("labkit stream vs trace_printk lines per second (flat out)",
         ratio(res.get("labkit_decode_eps"), res.get("printk_eps")),
         f"{fmt_rate(res.get('labkit_decode_eps'))}/s vs {fmt_rate(res.get('printk_eps'))}/s"),
    ]
    cap = res.get("capacity") or {}
    if cap:
        rows.append(("decode capacity on a full ring buffer, labkit vs BCC callback",
                     ratio(cap.get("labkit_eps"), cap.get("bcc_decode_eps")),
                     f"{fmt_rate(cap.get('labkit_eps'))}/s vs {fmt_rate(cap.get('bcc_decode_eps'))}/s"))
    if res.get("labkit_loss_at_500k") is not None:
        lost = res["labkit_lost_at_500k"]
        row = _at(res["rates"].get("labkit"), res.get("labkit_loss_rate_eps"))
        var = _at(res["rates"].get(VARIANT), res.get("labkit_loss_rate_eps"))
        rows.append((f"labkit events lost at {rate_label(res.get('labkit_loss_rate_eps') or 500_000)}/s",
                     "0" if not lost else f"{res['labkit_loss_at_500k']:.4%}",
                     f"{lost:,} of {row['generated']:,} (kernel counter)"
                     + (f"; 16 MiB ring: {var['lost']:,}" if var is not None else "")))
    for meth in ("labkit", "bcc", "printk"):
        if res.get(f"{meth}_slowdown"):
            rows.append((f"traced process slowdown under {meth}", f"{res[f'{meth}_slowdown']:.1f}x",
                         f"{fmt_rate(res['untraced_eps'])}/s untraced → {fmt_rate(res[f'{meth}_traced_eps'])}/s"))
    if res.get("rerun_first_event_s") is not None:
        fe = res["first_event"]
        rows.append(("time to first event, first call / re-run",
                     f"{res['first_event_s']:.2f} s / {res['rerun_first_event_s']:.2f} s",
                     f"of which BCC compile {fe['first']['compile_s']:.2f} s / {fe['rerun']['compile_s']:.2f} s"))
    if mem:
        rows.append((f"RSS growth over {mem['events_generated']:,} events (default window)",
                     f"{mem['growth_mb']:+.1f} MB", f"peak {mem['peak_growth_mb']:+.1f} MB"))
    if res.get("xdp_sent") is not None:
        rows.append(("XDP packets counted / sent (UDP + ping flood in a sandbox)",
                     ratio(res["xdp_counted"], res["xdp_sent"]).replace("x", ""),
                     f"{res['xdp_counted']:,} / {res['xdp_sent']:,} at {fmt_rate(res.get('xdp_pps'))} packets/s"))
    out = [README_START, "## Benchmark", "",
           "`labkit bench` measures, in one run and on one load generator (a C loop of `getppid()` at 50k, 200k, 500k, 1M "
           "calls/s and flat out, every program filtered to its pid), labkit's event stream against the "
           "raw BCC ring buffer with a per-event Python callback and against `bpf_trace_printk`. "
           "`--quick` takes about a minute, `--json FILE` writes every figure; "
           f"the figures below are from `labkit bench{'' if res['mode'] == 'full' else ' --' + res['mode']}`.", "",
           f"Machine: {describe_machine(m)}. {busy} "
           "Absolute rates move between runs; the ratios within one run are the point.", "",
           "| figure | ratio / value | measured |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", "Events are lost when the consumer does not get a CPU back before the ring buffer fills: "
            "per rate, the run's output shows how long the consumer waited for a CPU against how many "
            "milliseconds of events the ring buffer holds (4 MiB by default: ~90 ms at 500k events/s), "
            "and every lost event is counted by the kernel and reported as `stream.lost`."]
    out += ["", "Targets: " + "; ".join(
        f"{'✓' if t['met'] else ('✗' if t['met'] is False else '?')} {t['target']}" for t in res.get("targets", []))]
    if plot_path:
        out += ["", f"![received against generated events per second]({plot_path})"]
    out.append(README_END)
    return "\n".join(out)


def update_readme(path: str, block: str) -> None:
    text = Path(path).read_text()
    i, j = text.find(README_START), text.find(README_END)
    if i < 0 or j < i:
        raise SystemExit(f"{path} has no {README_START} ... {README_END} section")
    Path(path).write_text(text[:i] + block + text[j + len(README_END):])


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:
        pass
    return str(o)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="labkit bench",
                                description="Benchmark labkit's event stream against raw BCC and trace_printk, "
                                            "plus slowdown, time to first event, memory and XDP counters.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="about a minute: 1 s per rate, 2M events for memory")
    g.add_argument("--smoke", action="store_true", help="a few seconds of everything (used by the tests)")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--plot", metavar="PNG", help="write the received-vs-generated plot to PNG")
    p.add_argument("--readme", metavar="README", help="rewrite the bench section of README (between the markers)")
    p.add_argument("--plot-ref", default="docs/bench.png", help="the plot path written into the README section")
    p.add_argument("--loadgen", choices=("auto", "c", "python"), default="auto",
                   help="load generator: a C loop (compiled now) or a Python loop; auto: C if a compiler exists")
    p.add_argument("--skip", action="append", default=[], metavar="PHASE",
                   choices=("first_event", "imports", "labkit", "bcc", "printk", "capacity", "memory", "xdp"),
                   help="leave out a phase (repeatable)")
    p.add_argument("--from-json", metavar="FILE", help="do not measure: render/plot/readme from a saved run")
    a = p.parse_args(argv)
    if a.from_json:
        res = json.loads(Path(a.from_json).read_text())
        summarize(res)
    else:
        if os.geteuid() != 0:
            print("labkit bench loads BPF programs and builds a network sandbox: run it as root (sudo)",
                  file=sys.stderr)
            return 1
        mode = "smoke" if a.smoke else "quick" if a.quick else "full"
        res = run_bench(mode, loadgen=a.loadgen, skip=set(a.skip))
    print(render(res))
    if a.json and not a.from_json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=_json_default) + "\n")
    if a.plot:
        plot(res, a.plot)
    if a.readme:
        update_readme(a.readme, readme_block(res, a.plot_ref))
    return 1 if res.get("errors") or res.get("leftover_attachments") else 0


if __name__ == "__main__":
    sys.exit(main())
