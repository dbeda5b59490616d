"""The kind of map a task names, held by the checkers: "a BPF_HASH called
counts", "BPF_HISTOGRAM(dist)", "a hash map `execs`".

What the student wrote is read from the loaded program, as the kernel has it
(``struct bpf_map_info``: the map's type, key and value sizes), never from the
C text: ``BPF_TABLE("hash", ...)`` is a BPF_HASH, and ``BPF_HISTOGRAM(dist)``
is an array of 64 u64 counters (BCC makes a BPF_HISTOGRAM an array when its
key is an int, and a hash otherwise).

    shape = map_shape(prog, "counts")          # a BCC Program's table or a CoreObject's map
    why = map_kind_problem(shape, MapKind("counts", HASH, "a BPF_HASH called counts",
                                          "BPF_HASH(counts, u32, u64)"))
    # "" when the map is of the kind the task asks for, else what it asked and what the answer declared

:func:`map_kind_problem` is pure: it decides from a :class:`MapShape`, which a
test can make by hand.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any, Mapping

from labkit._errors import LabkitError
from labkit.programs.libbpf import libbpf

__all__ = ["ARRAY", "HASH", "LPM_TRIE", "LRU_HASH", "LRU_PERCPU_HASH", "MAP_TYPES", "MapKind", "MapShape",
           "PERCPU_ARRAY", "PERCPU_HASH", "kind_words", "map_kind_problem", "map_shape"]

#: enum bpf_map_type: the kinds of map the lessons name
HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE = 1, 2, 5, 6, 9, 10, 11

#: enum bpf_map_type -> (what it is, the BCC declaration that makes it, the kernel's name)
MAP_TYPES: dict[int, tuple[str, str, str]] = {
    HASH: ("a hash", "BPF_HASH", "BPF_MAP_TYPE_HASH"),
    ARRAY: ("an array", "BPF_ARRAY", "BPF_MAP_TYPE_ARRAY"),
    3: ("a program array", "BPF_PROG_ARRAY", "BPF_MAP_TYPE_PROG_ARRAY"),
    4: ("a perf event array", "BPF_PERF_OUTPUT", "BPF_MAP_TYPE_PERF_EVENT_ARRAY"),
    PERCPU_HASH: ("a per-CPU hash", "BPF_PERCPU_HASH", "BPF_MAP_TYPE_PERCPU_HASH"),
    PERCPU_ARRAY: ("a per-CPU array", "BPF_PERCPU_ARRAY", "BPF_MAP_TYPE_PERCPU_ARRAY"),
    7: ("a stack trace map", "BPF_STACK_TRACE", "BPF_MAP_TYPE_STACK_TRACE"),
    LRU_HASH: ("an LRU hash", 'BPF_TABLE("lru_hash", ...)', "BPF_MAP_TYPE_LRU_HASH"),
    LRU_PERCPU_HASH: ("a per-CPU LRU hash", 'BPF_TABLE("lru_percpu_hash", ...)', "BPF_MAP_TYPE_LRU_PERCPU_HASH"),
    LPM_TRIE: ("a longest-prefix-match trie", "BPF_LPM_TRIE", "BPF_MAP_TYPE_LPM_TRIE"),
    22: ("a queue", "BPF_QUEUE", "BPF_MAP_TYPE_QUEUE"),
    23: ("a stack", "BPF_STACK", "BPF_MAP_TYPE_STACK"),
    27: ("a ring buffer", "BPF_RINGBUF_OUTPUT", "BPF_MAP_TYPE_RINGBUF"),
}

#: what a kind of map does that the one a task asks for may not (said when an answer declared it instead)
_DOES: dict[int, str] = {
    HASH: "a hash holds only the keys stored in it, each made on its first store",
    ARRAY: "an array has every key from 0 to its size from the start, each 0 until written: its keys are indexes",
    PERCPU_HASH: "a per-CPU hash keeps one value per CPU for every key: each CPU counts apart, and whoever reads "
                 "it must add them up",
    PERCPU_ARRAY: "a per-CPU array keeps one value per CPU for every index: each CPU counts apart, and whoever "
                  "reads it must add them up",
    LRU_HASH: "an LRU hash evicts its least recently used entry to make room when it is full: a count can vanish",
    LRU_PERCPU_HASH: "a per-CPU LRU hash keeps one value per CPU and evicts entries to make room",
}


@dataclass(frozen=True)
class MapShape:
    """A map of a loaded program as the kernel has it (``struct bpf_map_info``): its name, ``type``
    (enum bpf_map_type), key and value sizes in bytes, entries and flags."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0


@dataclass(frozen=True)
class MapKind:
    """A map as a task names it: its ``name``, the ``type`` (enum bpf_map_type) its declaration makes,
    the task's ``words`` for it ("a BPF_HASH called counts"), ``declare``: how to write it, and
    ``value_size`` when the task's words fix the value's width (BPF_HISTOGRAM's u64 counters).
    ``core``: the lesson writes CO-RE C (kinds are named BPF_MAP_TYPE_...). ``notes``: one more
    sentence for an answer that declared a given other type (by that type)."""

    name: str
    type: int
    words: str
    declare: str
    value_size: int | None = None
    core: bool = False
    notes: Mapping[int, str] = field(default_factory=dict)


def kind_words(map_type: int, core: bool = False) -> str:
    """A map type in words, with the declaration that makes it: "a per-CPU hash (BPF_PERCPU_HASH)",
    or for CO-RE C "a per-CPU hash (BPF_MAP_TYPE_PERCPU_HASH)"."""
    known = MAP_TYPES.get(map_type)
    if known is None:
        return f"a map of type {map_type} (enum bpf_map_type)"
    what, bcc, kernel = known
    return f"{what} ({kernel if core else bcc})"


def map_kind_problem(seen: MapShape, want: MapKind) -> str:
    """Why the map ``seen`` is not the one the task asks for, naming what the task asked and what the
    answer declared; "" when it is (its type, and its value's width where the task fixes it)."""
    if seen.type != want.type:
        does = want.notes.get(seen.type) or _DOES.get(seen.type, "")
        return (f"{seen.name} is {kind_words(seen.type, want.core)}, and the task asks for {want.words}"
                + (f" ({does})" if does else "") + f": declare {want.declare}")
    if want.value_size is not None and seen.value_size != want.value_size:
        return (f"{seen.name}'s values are {seen.value_size} bytes, and those of the task's map are "
                f"{want.value_size} (it asks for {want.words}): declare {want.declare}")
    return ""


class _MapInfo(ctypes.Structure):
    """The head of ``struct bpf_map_info`` (uapi/linux/bpf.h), as far as the name."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


def _fd_of(program: Any, name: str) -> int:
    maps = getattr(program, "maps", None)
    if isinstance(maps, Mapping):                  # a CoreObject: libbpf's maps by name
        if name not in maps:
            raise LabkitError(f"{getattr(program, 'name', 'the program')} has no map called {name!r}")
        return int(maps[name].fd)
    return int(program[name].map_fd)               # a labkit Program: BCC's table


def map_shape(program: Any, name: str) -> MapShape:
    """The map ``name`` of a loaded program (a labkit Program's BCC table, or a CoreObject's map) as
    the kernel reports it: ``bpf_obj_get_info_by_fd`` on the map's fd."""
    lib = libbpf()
    if lib is None:
        raise LabkitError("libbpf.so.1 is not installed: the checker reads a map's kind through it "
                          "(apt-get install libbpf1)")
    info = _MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    err = lib.bpf_obj_get_info_by_fd(_fd_of(program, name), ctypes.byref(info), ctypes.byref(size))
    if err != 0:
        raise LabkitError(f"the kernel did not describe the map {name!r} (bpf_obj_get_info_by_fd: {err})")
    return MapShape(name, int(info.type), int(info.key_size), int(info.value_size), int(info.max_entries),
                    int(info.map_flags))
