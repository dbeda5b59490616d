"""The load generator: a process that calls getppid() (or sends UDP datagrams)
at a set rate and reports exactly how many calls it made.

``loadgen.c`` is compiled here with the system's C compiler; without one, the
same protocol runs in Python (``loadgen_fallback.py``) at lower rates.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["LOADGEN_FALLBACK", "LOADGEN_SOURCE", "LoadGen", "LoadGenError", "build_loadgen"]

#: The C load generator's source (its header describes the protocol).
LOADGEN_SOURCE = Path(__file__).with_name("loadgen.c")
#: The same protocol in Python, run as a script when there is no C compiler.
LOADGEN_FALLBACK = Path(__file__).with_name("loadgen_fallback.py")


class LoadGenError(RuntimeError):
    """The load generator could not be built, did not start, or answered nonsense."""


def build_loadgen(workdir: Path, prefer: str = "auto") -> tuple[str, str | None, str]:
    """Compile the C load generator; returns (kind, executable or None, description)."""
    if prefer != "python":
        for cc in ("cc", "gcc", "clang"):
            path = shutil.which(cc)
            if not path:
                continue
            exe = workdir / "loadgen"
            r = subprocess.run([path, "-O2", "-o", str(exe), str(LOADGEN_SOURCE)], capture_output=True, text=True)
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
        argv = [exe] if kind == "c" else [sys.executable, "-u", str(LOADGEN_FALLBACK)]
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


