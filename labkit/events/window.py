"""A bounded window of the newest events, stored as one numpy structured array.

Memory is fixed at ``capacity`` records however long a stream runs; appending
a batch is two slice copies at most.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Window"]


class Window:
    def __init__(self, dtype: np.dtype, capacity: int):
        if int(capacity) < 1:
            raise ValueError(f"window size must be at least 1, got {capacity!r}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=dtype)
        self._next = 0      # index where the next record goes
        self._count = 0     # records held (<= capacity)
        self.total = 0      # records ever appended

    def __len__(self) -> int:
        return self._count

    def append(self, batch: np.ndarray) -> None:
        n = len(batch)
        if n == 0:
            return
        self.total += n
        cap = self.capacity
        if n >= cap:
            self._buf[:] = batch[n - cap:]
            self._next, self._count = 0, cap
            return
        end = self._next + n
        if end <= cap:
            self._buf[self._next:end] = batch
        else:
            first = cap - self._next
            self._buf[self._next:] = batch[:first]
            self._buf[: n - first] = batch[first:]
        self._next = end % cap
        self._count = min(cap, self._count + n)

    def ordered(self, last: int | None = None) -> np.ndarray:
        """A copy of the held records, oldest first (only the newest ``last``)."""
        if self._count < self.capacity:
            out = self._buf[: self._count]
        else:
            out = np.concatenate([self._buf[self._next:], self._buf[: self._next]])
        if last is not None:
            out = out[max(0, len(out) - int(last)):]
        return out.copy()

    def clear(self) -> None:
        self._next = self._count = 0
