"""Ring buffer record decoding (labkit.events.ringbuf), on hand-made buffers."""

from __future__ import annotations

import struct

import numpy as np

from labkit.events.schemas import CLONE_DTYPE
from labkit.events.ringbuf import BUSY_BIT, DISCARD_BIT, decode_records, record_dtype, round8

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
