"""The fixed-size event window (labkit.events.window)."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.events.window import Window


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
