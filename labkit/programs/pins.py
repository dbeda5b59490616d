"""Pins: BPF maps (and programs, links) kept in the BPF filesystem, outliving the process that made them.

A map lives as long as something refers to it: a process's file descriptor, a program that uses it, or a
*pin*, a file in the BPF filesystem (bpffs, mounted at /sys/fs/bpf) that names it. A map declared with
``__uint(pinning, LIBBPF_PIN_BY_NAME)`` is pinned by libbpf at load, as ``<pin root>/<map name>``; a
second object loaded with the same pin root finds the file and *reuses* the map (the same map, the same
id) instead of making a new one, provided its definition is the same. ``bpftool map dump pinned PATH``
and any process with the rights can open it (``bpf_obj_get``): that is how two programs share a map.

Pins are kernel state the lab owns: ``PinDir("lesson14")`` makes ``/sys/fs/bpf/labkit-<id>-lesson14``,
a new name each run, its record written first under /run/labkit/pins (owner pid + start time);
``close()`` (also ``with``, making the same name again, interpreter exit) removes every pin in it and
the directory, and a dead owner's directory is removed by labkit.net.leftovers (:class:`PinRecords`,
asked by ``labkit cleanup`` and by every new Lab).

    with PinDir("demo") as pins:
        obj = lab.load_object("counter", pin_root=pins)     # its LIBBPF_PIN_BY_NAME maps go to pins.path
        pins.names()                                         # ["calls"]
        pins.map("calls").dataframe()                        # read through the pin, as a second program would
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any

from labkit import owners
from labkit._errors import ArgumentError, ClosedError, NotSupportedError, PrivilegeError
from labkit.owners import claim, forget
from labkit.programs.core import CoreMap
from labkit.programs.libbpf import libbpf
from labkit.programs.options import fs_type

__all__ = ["BPFFS", "PIN_RECORDS", "PREFIX", "RECORDS", "PinDir", "PinRecords", "labkit_pin_dirs", "pinned_map"]

#: where the BPF filesystem is mounted (scripts/setup.sh mounts it when it is not)
BPFFS = Path("/sys/fs/bpf")
#: one JSON record per pin directory, written before the directory is made
PIN_RECORDS = Path("/run/labkit/pins")
#: every pin directory labkit makes is /sys/fs/bpf/labkit-<id>-<name>
PREFIX = "labkit-"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


def _bpffs() -> Path:
    if fs_type(BPFFS) != "bpf":
        raise NotSupportedError(f"the BPF filesystem is not mounted at {BPFFS}: run ./lab setup (scripts/setup.sh "
                                f"mounts it), or mount -t bpf bpf {BPFFS}", feature="bpffs")
    return BPFFS


def labkit_pin_dirs() -> list[Path]:
    """Every labkit-* directory at the top of the BPF filesystem ([] when it is not mounted)."""
    try:
        return sorted(p for p in BPFFS.iterdir() if p.name.startswith(PREFIX) and p.is_dir())
    except OSError:
        return []


def _pins(path: Path) -> list[str]:
    """The pins under ``path``, as paths relative to it."""
    out = []
    for dirpath, _dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(dirpath, f), path) for f in files]
    return sorted(out)


def _remove_tree(path: Path) -> None:
    """Unlink every pin under ``path`` (a map goes when nothing else refers to it), then the directories."""
    for dirpath, dirs, files in os.walk(path, topdown=False):
        for f in files:
            try:
                os.unlink(os.path.join(dirpath, f))
            except FileNotFoundError:
                pass
        for d in dirs:
            try:
                os.rmdir(os.path.join(dirpath, d))
            except FileNotFoundError:
                pass
    try:
        path.rmdir()
    except FileNotFoundError:
        pass


def pinned_map(path: str | Path) -> CoreMap:
    """The map pinned at ``path``, opened as another program would (``bpf_obj_get``): read it with
    ``.dataframe()`` or ``.items()``; ``.id`` is the kernel's id of the map (the same for every holder).
    ``close()`` (or ``with``) closes the file descriptor it holds."""
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ArgumentError(f"a pin is a path in the BPF filesystem (/sys/fs/bpf/...), got {path!r}")
    lib = libbpf()
    if lib is None:
        raise NotSupportedError("libbpf.so.1 is not installed (apt-get install libbpf1)", feature="libbpf")
    p = Path(path)
    if not p.exists():
        raise ArgumentError(f"nothing is pinned at {p}" + (
            f" (pinned in {p.parent}: {', '.join(_pins(p.parent)) or 'nothing'})" if p.parent.is_dir() else ""))
    fd = lib.bpf_obj_get(str(p).encode())
    if fd < 0:
        raise ArgumentError(f"{p} is not a pinned BPF object: {os.strerror(-fd if fd < -1 else 22)}")
    try:
        m = CoreMap(None, fd=fd)
    except ArgumentError:
        os.close(fd)
        raise ArgumentError(f"{p} is pinned, but it is not a map (a program or a link?)") from None
    m.pin_path = str(p)
    return m


# ------------------------------------------------------------------ records
class PinRecords:
    """The lab's pin directories, for labkit.net.leftovers (a Recorder, labkit.hooks.protocol): one record
    per directory under /run/labkit/pins, written before the directory is made; found where the directory
    still is, removed with every pin in it."""

    name = "pin"

    def __init__(self, state_dir: Path = PIN_RECORDS):
        self.state_dir = state_dir

    def records(self) -> list[dict]:
        return owners.read_records(self.state_dir, "dir")

    def _found(self, d: Path, record: dict | None) -> dict:
        found = {"netns": None, "iface": d.name, "dir": str(d), "pins": _pins(d)}
        if record is not None:
            found["record"] = record
        return found

    def still_there(self, records: list[dict]) -> list[dict]:
        """The recorded directories that are still there."""
        return [self._found(Path(r["dir"]), r) for r in records if Path(r["dir"]).is_dir()]

    def everywhere(self) -> list[dict]:
        """Every labkit-* directory at the top of the BPF filesystem, with its record when it has one."""
        recorded = {r["dir"]: r for r in self.records()}
        return [self._found(p, recorded.get(str(p))) for p in labkit_pin_dirs()]

    def slot(self, found_or_record: dict) -> tuple:
        return ("pin", found_or_record.get("dir"))

    def describe(self, found: dict) -> tuple[str, str]:
        pins = found.get("pins") or []
        return (f"pin directory {found['dir']} ({', '.join(pins) if pins else 'empty'})", f"pins {found['iface']}")

    def remove(self, found: dict) -> None:
        _remove_tree(Path(found["dir"]))

    def not_removed(self, description: str, error: Exception) -> str:
        return f"could not remove {description}: {error}"


#: the one recorder of pin directories (labkit.hooks.recorders lists it beside the hook kinds')
RECORDS = PinRecords()


# ------------------------------------------------------------------ the lab's pin directories
class PinDir:
    """A directory of the BPF filesystem the lab made: ``PinDir("demo")`` is
    ``/sys/fs/bpf/labkit-<id>-demo`` (recorded for leftovers first). ``.path``; ``names()`` lists what is
    pinned in it; ``map(name)`` opens a pinned map. Give it to ``lab.load_object(..., pin_root=pins)`` (or a
    libbpf application's pin root): maps declared ``LIBBPF_PIN_BY_NAME`` are pinned, and reused, there.
    ``close()`` (also ``with``, making the same name again, interpreter exit) removes every pin in it and
    the directory: a map nothing else holds goes with its pin."""

    def __init__(self, name: str = "lab"):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ArgumentError(f"a pin directory's name is 1 to 40 letters, digits, '.', '_' or '-' (like "
                                f"'lesson14'), got {name!r}")
        root = _bpffs()
        if os.geteuid() != 0:
            raise PrivilegeError(f"pinning needs root ({root} is root's); this process is uid {os.geteuid()}. "
                                 "Start the lab with ./lab start (it runs as root)", missing=("root",))
        self.name = name
        self.uid = secrets.token_hex(4)
        self.path = root / f"{PREFIX}{self.uid}-{name}"
        self.key: tuple = ("pin dir", name)
        self._closed = False
        self._record = owners.write_record(PIN_RECORDS, self.uid, self.path)
        try:
            self.path.mkdir()
        except BaseException:
            self._record.unlink(missing_ok=True)
            raise
        claim(self, self.close)   # a directory of the same name this process made before (a re-run cell) is closed

    @property
    def closed(self) -> bool:
        return self._closed

    def names(self) -> list[str]:
        """What is pinned here (paths relative to the directory)."""
        self._check_open()
        return _pins(self.path)

    def map(self, name: str) -> CoreMap:
        """The map pinned here as ``name`` (:func:`pinned_map`)."""
        self._check_open()
        if not isinstance(name, str) or not name.strip() or name.startswith("/") or ".." in name.split("/"):
            raise ArgumentError(f"a pin's name is a file name in {self.path}, got {name!r}")
        return pinned_map(self.path / name)

    def close(self, state: str = "closed") -> None:
        """Remove every pin in the directory, and the directory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            _remove_tree(self.path)
        finally:
            forget(self)
            self._record.unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"pin directory {self.path} is closed; make a new one with labkit.PinDir()")

    def __enter__(self) -> "PinDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(_pins(self.path))} pinned"
        return f"<labkit.PinDir {self.path} ({state})>"
