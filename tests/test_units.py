"""Pure logic, no kernel: ring buffer decoding, the window, line mapping, names."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import labkit
from labkit.programs.compile import map_diagnostics, resolve_source
from labkit.events.schemas import CLONE_DTYPE, clone_kind
from labkit.events.ringbuf import BUSY_BIT, DISCARD_BIT, decode_records, record_dtype, round8
from labkit.events.window import Window

PAYLOAD = np.dtype([("a", "<u4"), ("b", "<u8")], align=True)  # 16 bytes


def rec(a: int, b: int, flags: int = 0, length: int | None = None) -> bytes:
    body = struct.pack("<IIQ", a, 0, b)
    n = len(body) if length is None else length
    hdr = struct.pack("<II", n | flags, 0)
    raw = hdr + (body if length is None else b"\x07" * length)
    return raw + b"\0" * (round8(len(raw)) - len(raw))


def buf(*parts: bytes) -> np.ndarray:
    return np.frombuffer(b"".join(parts), dtype=np.uint8)


def test_record_dtype_rounds_to_8():
    assert record_dtype(PAYLOAD).itemsize == 24
    assert record_dtype(np.dtype("<u4")).itemsize == 16
    assert record_dtype(CLONE_DTYPE).itemsize == 56


def test_decode_fixed_size_batch():
    out, used = decode_records(buf(rec(1, 10), rec(2, 20), rec(3, 30)), PAYLOAD)
    assert list(out["a"]) == [1, 2, 3] and list(out["b"]) == [10, 20, 30]
    assert used == 72


def test_decode_stops_at_busy_record_and_leaves_it():
    out, used = decode_records(buf(rec(1, 10), rec(2, 20, BUSY_BIT), rec(3, 30)), PAYLOAD)
    assert list(out["a"]) == [1]
    assert used == 24  # the busy record and everything after it stay for the next read


def test_decode_skips_discarded_but_consumes_them():
    out, used = decode_records(buf(rec(1, 10), rec(2, 20, DISCARD_BIT), rec(3, 30)), PAYLOAD)
    assert list(out["a"]) == [1, 3]
    assert used == 72


def test_decode_mixed_sizes_takes_slow_path():
    odd = rec(0, 0, length=4)  # a 4-byte record: another size than the payload
    out, used = decode_records(buf(rec(1, 10), odd, rec(2, 20)), PAYLOAD)
    assert list(out["a"]) == [1, 2]
    assert used == 24 + 16 + 24


def test_decode_empty_and_partial_header():
    out, used = decode_records(np.zeros(0, dtype=np.uint8), PAYLOAD)
    assert len(out) == 0 and used == 0
    out, used = decode_records(buf(rec(1, 10))[:20], PAYLOAD)  # truncated record
    assert len(out) == 0 and used == 0


def test_decoded_records_are_copies():
    raw = bytearray(rec(1, 10))
    arr = np.frombuffer(raw, dtype=np.uint8)
    out, _ = decode_records(arr, PAYLOAD)
    raw[8] = 99  # the ring buffer space gets reused by the kernel
    assert out["a"][0] == 1


def test_window_keeps_newest_in_order():
    w = Window(np.dtype("<i8"), 5)
    for chunk in ([1, 2], [3, 4, 5, 6], [7]):
        w.append(np.array(chunk, dtype="<i8"))
    assert list(w.ordered()) == [3, 4, 5, 6, 7]
    assert len(w) == 5 and w.total == 7
    assert list(w.ordered(last=2)) == [6, 7]


def test_window_batch_larger_than_capacity():
    w = Window(np.dtype("<i8"), 3)
    w.append(np.arange(10, dtype="<i8"))
    assert list(w.ordered()) == [7, 8, 9] and w.total == 10
    w.append(np.array([10], dtype="<i8"))
    assert list(w.ordered()) == [8, 9, 10]


def test_window_memory_is_fixed():
    w = Window(np.dtype("<i8"), 1000)
    nbytes = w._buf.nbytes
    for _ in range(100):
        w.append(np.arange(777, dtype="<i8"))
    assert w._buf.nbytes == nbytes and len(w) == 1000 and w.total == 77_700


def test_window_rejects_bad_size():
    with pytest.raises(ValueError, match="at least 1"):
        Window(np.dtype("<i8"), 0)


SRC = """#include "labkit.h"
// a comment
int lk_x(void *ctx) {
    int a = 1
    return a;
}
"""


def test_diagnostic_on_the_right_line_is_kept():
    text = "/virtual/main.c:4:14: error: expected ';' at end of declaration\n    int a = 1\n             ^\n"
    out = map_diagnostics(text, SRC, "mine.c")
    assert out.startswith("mine.c:4:14: error: expected ';'")


def test_diagnostic_shifted_by_rewrite_is_mapped_back():
    # BCC's rewrite added lines above: clang says 9, the snippet has it on 4
    text = "/virtual/main.c:9:14: error: expected ';' at end of declaration\n    int a = 1\n             ^\n"
    assert map_diagnostics(text, SRC, "mine.c").startswith("mine.c:4:14: error")


def test_diagnostic_noise_is_dropped():
    text = "sh: 1: modprobe: not found\n/virtual/main.c:4:3: warning: w\n    int a = 1\n"
    out = map_diagnostics(text, SRC, "s.c")
    assert "modprobe" not in out and out.startswith("s.c:4:3: warning: w")


def test_verifier_log_lines_point_into_the_snippet():
    from labkit.programs.compile import map_verifier_log

    log = "0: R1=ctx()\n; int a = 1 @ main.c:40\n1: (b7) r0 = 1\n; unknown() @ main.c:7"
    out = map_verifier_log(log, SRC, "mine.c").splitlines()
    assert out[1] == "; int a = 1 @ mine.c:4"       # rewritten file's line 40 is the snippet's line 4
    assert out[3] == "; unknown() @ main.c:7"       # no such text in the snippet: left alone
    assert out[0] == "0: R1=ctx()" and out[2] == "1: (b7) r0 = 1"


def test_clone_kind_from_flags():
    flags = np.array([0x11, 0x4111, 0x3d0f00], dtype=np.uint64)  # fork, vfork, pthread_create
    assert list(clone_kind(flags)) == ["fork", "vfork", "thread"]


def test_unknown_snippet_names_close_matches():
    with pytest.raises(labkit.LabkitError, match="trace_clone"):
        resolve_source("trace_clon")


def test_public_names_are_sorted_and_exported():
    assert labkit.__all__ == sorted(labkit.__all__)
    for name in labkit.__all__:
        assert hasattr(labkit, name), name
    public = {n for n in dir(labkit) if not n.startswith("_")}
    # modules imported as a side effect are the only other public names
    stray = {n for n in public - set(labkit.__all__) if not isinstance(getattr(labkit, n), type(labkit))}
    assert not stray, f"exported but not in __all__: {stray}"
