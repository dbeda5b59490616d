"""What labkit processes left in the kernel when they ended, and removing it.

The one routine behind ``labkit cleanup`` (the whole machine), ``labkit
report`` (what one notebook kernel left after it ended) and the reaping every
entry point does before it makes kernel state (:func:`reap_dead_owners`).

Machine-wide (``Leftovers.find()``, ``labkit cleanup``):

* Sandboxes whose owner died (and lksb-* namespaces without a record).
* For each hook kind the kernel does not give back by itself (labkit.hooks'
  recorders, one loop for all): what it left attached anywhere. XDP: programs
  named lk_* in either slot of every interface in every namespace (one held
  by a live bpf_link belongs to a running process and is reported, not
  removed). TC: the cls_bpf filters labkit recorded (the clsact qdisc goes with
  the last one when labkit made it). What a running process recorded is kept;
  bpf_links (XDP's, tcx) need nothing: the kernel takes them off with their process.
* Records whose program is gone.

Scoped to one owner (``Leftovers.find(owner_pid=pid)``, for a process known to
have ended): the sandboxes it owned, persistent ones included, the programs it
attached through netlink that are still in their slot, and its records.

Dead owners only (``Leftovers.find_dead()``, what :func:`reap_dead_owners`
removes without being asked): only what a record says labkit made and whose
recorded owner (pid + start time) is gone: sandboxes (half-built ones too) and
netlink attaches whose program is still the recorded one. Nothing a live owner
holds, nothing without a record (that is for ``labkit cleanup`` to judge).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from labkit import owners
from labkit.hooks import Recorder, recorders
from labkit.net.records import (
    STATE_DIR,
    SandboxRecord,
    find_leftovers,
    list_sandboxes,
    remove_sandbox,
)

__all__ = ["REAP_JOURNAL", "REAP_LOCK", "Leftovers", "anything_recorded", "reap_dead_owners", "reap_journal",
           "reap_lock", "reap_summary"]

#: Held while reaping, so two processes starting at once do not both remove (and report) the same thing.
REAP_LOCK = STATE_DIR.parent / "reap.lock"
REAP_JOURNAL = STATE_DIR.parent / "reaped.log"   # one JSON line per reap that removed something
_JOURNAL_MAX = 256 * 1024                         # bytes: an older journal starts again

@dataclass
class Leftovers:
    """What :meth:`find` found: for each hook kind that records (labkit.hooks:
    netlink XDP, cls_bpf TC), what is still attached (``attached``, by kind
    name: dicts with netns and iface, as its recorder finds them) and its
    records (``records``, by kind name: dicts with their file as ``path``);
    sandbox records; ``owner_pid`` is the owner they were scoped to,
    ``machine_wide`` whether every interface was looked at. :meth:`remove`
    fills ``removed`` and ``failed`` (one short description per thing)."""

    attached: dict[str, list[dict]] = field(default_factory=dict)
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    records: dict[str, list[dict]] = field(default_factory=dict)
    owner_pid: int | None = None
    machine_wide: bool = True
    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def find(cls, owner_pid: int | None = None) -> Leftovers:
        """Every leftover on this machine, or (``owner_pid``) everything that
        process left; call that only once it has ended (owners.wait_gone)."""
        kinds = recorders()
        records = {r.name: r.records() for r in kinds}
        if owner_pid is None:
            return cls(attached={r.name: r.everywhere() for r in kinds}, sandboxes=find_leftovers(), records=records)
        records = {name: [r for r in recs if r.get("pid") == owner_pid] for name, recs in records.items()}
        return cls(attached={r.name: r.still_there(records[r.name]) for r in kinds},
                   sandboxes=[r for r in list_sandboxes() if r.owner_pid == owner_pid],
                   records=records, owner_pid=owner_pid, machine_wide=False)

    @classmethod
    def find_dead(cls) -> Leftovers:
        """What owners that are gone left, by their records only: their
        sandboxes (half-built ones too; a finished persistent one stays) and
        their netlink attaches whose program is still the recorded one. Reads
        files and /proc; asks the kernel only about a dead owner's attaches."""
        kinds = recorders()
        records = {r.name: [rec for rec in r.records() if not owners.alive(rec.get("pid"), rec.get("start_time"))]
                   for r in kinds}
        return cls(attached={r.name: r.still_there(records[r.name]) for r in kinds},
                   sandboxes=[r for r in list_sandboxes() if r.state_file is not None and r.leftover],
                   records=records, machine_wide=False)

    def __bool__(self) -> bool:
        return any(self.attached.values()) or bool(self.sandboxes) or any(self.records.values())

    def remove(self, *, dry_run: bool = False, out: Callable[[str], object] = print) -> int:
        """Remove what was found (``dry_run``: only say what would go), one line
        per thing to ``out``; returns how many remain afterwards (what a running
        owner attached is kept and not counted: it is not a leftover)."""
        leftover_ns = {ns for r in self.sandboxes for ns in r.namespaces}
        remaining = 0
        goes_with: dict[str, list[str]] = {}  # namespace -> programs that go with its leftover sandbox
        kinds = {r.name: r for r in recorders()}
        for name, found in self.attached.items():
            kind = kinds[name]
            recorded_at = {kind.slot(r): r for r in self.records.get(name, [])}
            for x in found:
                desc, short = kind.describe(x)
                rec = x.get("record") or recorded_at.get(kind.slot(x), {})
                owner = rec.get("pid")
                short += f" of pid {owner}" if owner else ""
                if (owner and owner != os.getpid() and owners.alive(owner, rec.get("start_time"))
                        and x["netns"] not in leftover_ns):
                    out(f"kept {desc}: attached by running process {owner}")
                    continue
                if x["netns"] in leftover_ns:
                    out(f"{'would remove' if dry_run else 'removing'} {desc} (with its leftover sandbox)")
                    goes_with.setdefault(x["netns"], []).append(short)
                    continue
                if dry_run:
                    out(f"would remove {desc}")
                    remaining += 1
                    continue
                try:
                    kind.remove(x)
                    out(f"removed {desc}")
                    self.removed.append(short)
                except Exception as e:
                    out(kind.not_removed(desc, e))
                    self.failed.append(f"{short}: {e}")
                    remaining += 1
        for r in self.sandboxes:
            desc = f"sandbox {r.id} ({', '.join(ns for ns in r.namespaces)}; owner pid {r.owner_pid}, {r.status})"
            short = f"sandbox {r.id}" + (f" of pid {r.owner_pid}" if r.owner_pid else "")
            if dry_run:
                out(f"would remove {desc}")
                remaining += 1
                continue
            try:
                remove_sandbox(r)
                out(f"removed {desc}")
                self.removed.append(short)
                self.removed += [p for ns in dict.fromkeys(r.namespaces) for p in goes_with.get(ns, [])]
            except Exception as e:
                out(f"could not remove {desc}: {e}")
                self.failed.append(f"{short}: {e}")
                remaining += 1
        for name, records in self.records.items():
            self._forget(kinds[name], records, dry_run, out)
        return remaining

    def _forget(self, kind: Recorder, records: list[dict], dry_run: bool, out: Callable[[str], object]) -> None:
        """Forget the records whose program is not attached any more (a running owner's stay)."""
        if not records:
            return
        live = set() if dry_run else {kind.slot(x) for x in (kind.everywhere() if self.machine_wide
                                                              else kind.still_there(records))}
        for rec in records:
            if kind.slot(rec) in live:
                continue
            if dry_run:
                # a running owner's record stays (its program is kept above); a dry run does not ask the kernel
                if not owners.alive(rec.get("pid"), rec.get("start_time")):
                    out(f"would forget record {rec['path']}")
                continue
            try:
                os.unlink(rec["path"])
            except FileNotFoundError:
                pass


def anything_recorded() -> bool:
    """Whether any ownership record exists (sandbox or netlink attach): two
    directory reads, the whole cost of a reap on a machine with nothing to reap."""
    for folder in (STATE_DIR, *(r.state_dir for r in recorders())):
        try:
            with os.scandir(folder) as entries:
                if any(e.name.endswith(".json") for e in entries):
                    return True
        except OSError:  # missing (nothing made yet) or unreadable
            continue
    return False


@contextlib.contextmanager
def reap_lock() -> Iterator[None]:
    """Hold the machine's reap lock: no reaper (any process's Lab(), Sandbox() or
    ``labkit cleanup``) runs meanwhile, and one that ran has written its journal entry."""
    fd = os.open(REAP_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_reported_failures: set[str] = set()  # said once per process: a reap retries, but does not repeat itself


def reap_summary(removed: list[str], failed: list[str]) -> str:
    """The one line a reap says: what it removed and what it could not; "" for nothing."""
    parts = []
    if removed:
        n = len(removed)
        parts.append(f"removed {n} leftover{'s' if n > 1 else ''} of dead processes ({', '.join(removed)})")
    if failed:
        parts.append(f"could not remove {'; '.join(failed)} (run `labkit cleanup` as root)")
    return f"labkit: {'; '.join(parts)}" if parts else ""


def reap_dead_owners(out: Callable[[str], object] | None = None) -> str:
    """Remove what owners that are gone left (:meth:`Leftovers.find_dead`) and
    say it in one line to ``out`` (default: stderr); returns that line, "" when
    there was nothing to say (a failure is said once per process). Quiet and safe: never raises, never touches what a live
    owner holds or what has no record. Every labkit entry point that makes
    kernel state calls this first (``Lab()``, ``Sandbox()``, ``labkit report``,
    ``./lab start`` via ``labkit cleanup --dead-owners``); a grading run should too.
    Costs two directory reads when there is no record at all."""
    if not anything_recorded():
        return ""
    try:
        with reap_lock():
            found = Leftovers.find_dead()
            if found:
                found.remove(out=lambda line: None)
            failed = [f for f in found.failed if f not in _reported_failures]
            _reported_failures.update(failed)
            line = reap_summary(found.removed, failed)
            if line:
                _journal(line)      # under the lock: whoever takes it next sees the removal and its entry
    except Exception:  # never stop the caller: e.g. not root (no lock, no namespaces to read)
        return ""
    if line:
        (out or _to_stderr)(line)
    return line


def _journal(line: str) -> None:
    """Append the line to /run/labkit/reaped.log with who reaped and when: the
    machine's record of what went without a command (never raises)."""
    try:
        if REAP_JOURNAL.exists() and REAP_JOURNAL.stat().st_size > _JOURNAL_MAX:
            REAP_JOURNAL.unlink()
        with open(REAP_JOURNAL, "a") as f:
            f.write(json.dumps({"time": time.time(), "reaper": os.getpid(), "line": line}) + "\n")
    except OSError:
        pass


def reap_journal(since: float = 0.0) -> list[dict]:
    """The journal's entries (time, reaper pid, line) written at or after ``since``."""
    try:
        text = REAP_JOURNAL.read_text()
    except OSError:
        return []
    out = []
    for raw in text.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if entry.get("time", 0) >= since:
            out.append(entry)
    return out


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
