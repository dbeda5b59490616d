"""The checkers' helper processes: Python children that a checker starts and
drives by lines (they say "ready", wait for "go" on their stdin, do their part,
say "done", and stay until their stdin closes), with every wait bounded.

A checker must never hang on its own helper. Each read waits at most a
deadline; stderr is drained while stdout is read (a helper never blocks on a
full pipe, and the checker never blocks reading what a live process has not
closed); on any failure the helper is told to stop (stdin closed), killed if it
goes on, reaped, and the checker raises :class:`HelperFailed`, which names the
helper, what it did instead, how it ended and its last words on stderr.

    with Helper(code, "the process that calls usleep()") as h:   # waits for "ready"
        h.go()
        h.expect("done")
    # closed: stdin closed, the process ended (killed after a grace period), pipes closed
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from labkit._errors import LabkitError

__all__ = ["HELPER_TIMEOUT_S", "Helper", "HelperFailed"]

#: how long a helper may take to say its next line, or to end when told to (seconds: its work takes less than
#: one even under an emulator; a minute leaves room for a loaded machine)
HELPER_TIMEOUT_S = 60.0
_GRACE_S = 2.0          # after its stdin closes, before it is killed
_STDERR_KEPT = 2000     # bytes of a helper's stderr kept for the message


class HelperFailed(LabkitError):
    """A checker's helper process did not do its part: it said something else, said nothing in time,
    or ended early. The message says which helper, what happened and what it wrote on stderr."""


class Helper:
    """A Python process of the checker's running ``code`` (with ``python``); ``what`` names it in
    messages ("the process that calls usleep()"). Unless ``ready`` is False, waits until it says
    "ready". Reads wait at most ``timeout`` seconds (default HELPER_TIMEOUT_S); every failure stops
    the process and raises :class:`HelperFailed`. ``close()`` (or leaving a ``with``) closes its
    stdin, waits a moment for it to end, kills it otherwise, and reaps it."""

    def __init__(self, code: str, what: str, *, python: str = sys.executable, timeout: float | None = None,
                 ready: bool = True):
        self.what = what
        self.timeout = HELPER_TIMEOUT_S if timeout is None else float(timeout)
        self._out = b""
        self._err = b""
        self._open = {}            # fd -> "out" | "err", while not at end of file
        self._killed = False
        # a session of its own: what it starts (and leaves behind) is killed with it
        self.p = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        self.pid = self.p.pid
        self._open = {self.p.stdout.fileno(): "out", self.p.stderr.fileno(): "err"}
        if ready:
            try:
                self.expect("ready")
            except BaseException:
                self.close()
                raise

    # ---------------------------------------------------------------- reading
    def _pump(self, deadline: float) -> None:
        """Read what stdout and stderr have (waiting until ``deadline`` at most for something)."""
        wait = max(0.0, deadline - time.monotonic())
        if not self._open:             # both at their end: nothing to wait for but the time
            time.sleep(min(wait, 0.05))
            return
        try:
            ready, _, _ = select.select(list(self._open), [], [], wait)
        except InterruptedError:       # pragma: no cover - PEP 475 retries select itself
            return
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                del self._open[fd]
            elif self._open[fd] == "out":
                self._out += data
            else:
                self._err = (self._err + data)[-_STDERR_KEPT * 4:]

    def _out_open(self) -> bool:
        return "out" in self._open.values()

    def readline(self, timeout: float | None = None) -> str:
        """The next line it prints (without its newline); HelperFailed when none comes within ``timeout``
        seconds or its stdout ends first."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while b"\n" not in self._out:
            if not self._out_open():
                raise self.failed("ended its output" + (f" after {self._out.decode(errors='replace')[-200:]!r}"
                                                         if self._out.strip() else " without a word"))
            if time.monotonic() >= deadline:
                raise self.failed(f"printed no line for {limit:g} s")
            self._pump(deadline)
        line, self._out = self._out.split(b"\n", 1)
        return line.decode(errors="replace")

    def expect(self, word: str, timeout: float | None = None) -> None:
        """Wait for the line ``word``; HelperFailed when it says something else, or nothing in time."""
        line = self.readline(timeout).strip()
        if line != word:
            raise self.failed(f"printed {line[:200]!r} where the checker waited for {word!r}")

    def rest(self, timeout: float | None = None) -> str:
        """Everything else it prints, until its stdout ends (it has ended); HelperFailed after ``timeout``."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while self._out_open():
            if time.monotonic() >= deadline:
                raise self.failed(f"kept its output open for {limit:g} s after the checker waited for its end")
            self._pump(deadline)
        out, self._out = self._out, b""
        return out.decode(errors="replace")

    # ---------------------------------------------------------------- telling
    def go(self, line: str = "go") -> None:
        """Tell it to start (a line on its stdin); HelperFailed when it has already ended."""
        try:
            self.p.stdin.write(line.encode() + b"\n")
            self.p.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise self.failed("had ended before the checker told it to start") from None

    def send_signal(self, sig: int) -> None:
        self.p.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end (its exit status); HelperFailed when it goes on past ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._exited():
            if time.monotonic() >= deadline:
                raise self.failed(f"did not end within {limit:g} s")
            self._pump(min(deadline, time.monotonic() + 0.05))   # keep its pipes drained meanwhile
        self._reap()
        return self.p.returncode

    # ---------------------------------------------------------------- ending
    def _exited(self) -> bool:
        """Whether it has ended, without reaping it: until it is reaped its pid, which is also its
        process group's id (a session of its own), cannot be anyone else's."""
        if self.p.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:          # pragma: no cover - reaped by someone else
            return True

    def _reap(self) -> None:
        """It has ended: kill what it started and left behind (its group), then reap it."""
        if self.p.returncode is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.p.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:    # pragma: no cover - not ended after all
            pass

    def _stop(self, grace: float) -> None:
        """Close its stdin, give it ``grace`` seconds to end, kill it (and its group) otherwise; reap it."""
        try:
            self.p.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + grace
        while not self._exited() and time.monotonic() < deadline:
            self._pump(min(deadline, time.monotonic() + 0.02))
        if not self._exited():
            self._killed = True
            try:
                os.killpg(self.pid, signal.SIGKILL)     # it (alive: the group is its own) and what it started
            except OSError:
                self.p.kill()
            deadline = time.monotonic() + _GRACE_S
            while not self._exited() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._reap()

    def _ended(self) -> str:
        rc = self.p.returncode
        if rc is None:
            return "it would not die (still running)"
        if self._killed:
            return "the checker killed it"
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"it was killed by {name}"
        return f"it exited with status {rc}"

    def failed(self, happened: str) -> HelperFailed:
        """Stop it, and the error that says what happened (to raise). It gets the usual grace to end on
        its own once its stdin closes: how it ended is part of the message."""
        self._stop(grace=_GRACE_S)
        deadline = time.monotonic() + 1.0
        while "err" in self._open.values() and time.monotonic() < deadline:    # its last words
            self._pump(deadline)
        err = self._err.decode(errors="replace").strip()[-_STDERR_KEPT:]
        return HelperFailed(
            f"the checker's helper process {self.pid} ({self.what}) {happened}, and {self._ended()}. "
            "It is the checker's own process, not your program (unless your program sends signals): run the "
            "check again, and if it fails the same way, show this message to your instructor"
            + (f". Its last words on stderr:\n{err}" if err else " (it wrote nothing on stderr)"))

    def close(self, grace: float = _GRACE_S) -> None:
        """Close its stdin, give it ``grace`` seconds to end, kill it otherwise, reap it, close its pipes.
        Idempotent."""
        if self.p.returncode is None:
            self._stop(grace)
        self._open.clear()
        for f in (self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self) -> "Helper":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if not self._exited() else "ended" + (f" ({self.p.returncode})"
                                                                 if self.p.returncode is not None else "")
        return f"<labkit helper process {self.pid} ({self.what}): {state}>"
