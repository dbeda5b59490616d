"""Every event layout in labkit.events.schemas matches its C struct as compiled.

The C structs live in bpf_snippets/ (and the bench's raw-BCC program); the
numpy dtypes that decode them live in labkit/events/schemas.py. Each struct is
compiled by BCC as the leaf of a one-entry array map, and BCC's ctypes view of
it gives clang's offsets and sizes: the dtype must agree field by field, and a
C field the dtype leaves out may only be padding.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

import labkit
from labkit.events import schemas

REPO = Path(__file__).resolve().parent.parent
DEFINES = {"LK_RINGBUF_PAGES": 1, "LK_FILTER_PID": 0, "LK_NARGS": 6, "LK_SAMPLE_EVERY": 1,
           "FILTER_PID": 0, "RING_PAGES": 1}

LAYOUTS = [
    ("bpf_snippets/trace_clone.c", "clone_event", schemas.CLONE_DTYPE),
    ("bpf_snippets/trace_clone_kprobe.c", "clone_event", schemas.CLONE_DTYPE),
    ("bpf_snippets/trace_syscall.c", "syscall_event", schemas.SYSCALL_DTYPE),
    ("bpf_snippets/xdp_icmp_drop.c", "xdp_event", schemas.XDP_EVENT_DTYPE),
    ("labkit/commands/bench/raw_bcc.c", "event", schemas.SYSCALL_DTYPE),
]

pytestmark = [pytest.mark.kernel, pytest.mark.requires("root")]


def compiled_layout(text: str, struct: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """(sizeof, {field: (offset, size)}) of ``struct`` as BCC compiled it."""
    with labkit.Lab() as lab:
        prog = lab.load(text + f"\nBPF_ARRAY(lk_layout, struct {struct}, 1);\n", defines=DEFINES)
        leaf = prog["lk_layout"].Leaf
        fields = {name: (getattr(leaf, name).offset, ctypes.sizeof(ctype)) for name, ctype, *_ in leaf._fields_}
        return ctypes.sizeof(leaf), fields


def dtype_layout(dt: np.dtype) -> dict[str, tuple[int, int]]:
    return {name: (off, sub.itemsize) for name, (sub, off, *_) in dt.fields.items()}


@pytest.mark.parametrize("path,struct,dtype", LAYOUTS, ids=[f"{p}:{s}" for p, s, _ in LAYOUTS])
def test_dtype_matches_the_compiled_struct(path, struct, dtype):
    source = REPO / path
    if not source.exists():
        pytest.fail(f"{path} is gone: update LAYOUTS in this test to where struct {struct} lives now")
    size, c_fields = compiled_layout(source.read_text(), struct)
    py_fields = dtype_layout(dtype)
    assert dtype.itemsize == size, f"{path}: sizeof(struct {struct}) is {size}, the dtype's itemsize {dtype.itemsize}"
    for name, (off, sz) in py_fields.items():
        assert name in c_fields, f"{path}: struct {struct} has no field {name!r} (it has {sorted(c_fields)})"
        assert c_fields[name] == (off, sz), \
            f"{path}: {struct}.{name} is at offset {c_fields[name][0]} size {c_fields[name][1]}, dtype says {off}/{sz}"
    extra = sorted(set(c_fields) - set(py_fields))
    assert all(n.startswith(("pad", "__pad")) for n in extra), f"{path}: C fields the dtype does not decode: {extra}"


def test_a_drifted_dtype_is_caught():
    """The comparison itself can fail: a dtype with one field moved does not match."""
    size, c_fields = compiled_layout((REPO / "bpf_snippets/trace_clone.c").read_text(), "clone_event")
    drifted = np.dtype([("ts", "<u8"), ("pid", "<u4"), ("tid", "<u4"), ("uid", "<u4"), ("child_pid", "<u4"),
                        ("flags", "<u8"), ("comm", "S16")])
    assert dtype_layout(drifted) != {k: v for k, v in c_fields.items() if k in drifted.names}
    assert dtype_layout(schemas.CLONE_DTYPE) == c_fields and size == schemas.CLONE_DTYPE.itemsize


def test_clone_kind_from_flags():
    flags = np.array([0x11, 0x4111, 0x3d0f00], dtype=np.uint64)  # fork, vfork, pthread_create
    assert list(schemas.clone_kind(flags)) == ["fork", "vfork", "thread"]
