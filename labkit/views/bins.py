"""Time bins for live plots: counts per (series, bin) for the newest bins only,
so a plot's memory stays fixed however long a panel runs."""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Bins"]


class Bins:
    """Counts per (series, time bin) for the newest ``nbins`` bins: fixed memory.

    Series are created on first sight up to ``max_series``; later labels are
    counted under "other". Thread-safe (the stream's thread adds, the panel's
    thread reads)."""

    OTHER = "other"

    def __init__(self, nbins: int, bin_ns: int, max_series: int):
        self.nbins = int(nbins)
        self.bin_ns = int(bin_ns)
        self.max_series = int(max_series)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.ids = np.full(self.nbins, -1, dtype=np.int64)
            self.counts = np.zeros((self.max_series + 1, self.nbins), dtype=np.float64)
            self.labels: list[str] = []
            self.index: dict[str, int] = {}
            self.version = 0

    def _series(self, label: str) -> int:
        i = self.index.get(label)
        if i is None:
            if len(self.labels) >= self.max_series:
                return self.max_series     # "other" (not remembered: memory stays bounded)
            i = len(self.labels)
            self.labels.append(label)
            self.index[label] = i
        return i

    def add(self, bin_ids: np.ndarray, labels: np.ndarray | list | None = None,
            weights: np.ndarray | None = None) -> None:
        bin_ids = np.asarray(bin_ids, dtype=np.int64)
        if bin_ids.size == 0:
            return
        w = np.ones(bin_ids.size) if weights is None else np.asarray(weights, dtype=np.float64)
        with self.lock:
            if labels is None:
                rows = np.zeros(bin_ids.size, dtype=np.int64)
                if not self.labels:
                    self._series("events")
            else:
                uniq, inv = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
                rows = np.array([self._series(str(u)) for u in uniq], dtype=np.int64)[inv.reshape(-1)]
            newest = int(bin_ids.max())
            for b in np.unique(bin_ids):
                b = int(b)
                if b <= newest - self.nbins:
                    continue              # older than the history kept
                slot = b % self.nbins
                if self.ids[slot] != b:
                    if self.ids[slot] > b:
                        continue          # the slot already holds a newer bin
                    self.ids[slot] = b
                    self.counts[:, slot] = 0
                sel = bin_ids == b
                np.add.at(self.counts, (rows[sel], slot), w[sel])
            self.version += 1

    def series(self, now_bin: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """x (seconds relative to now, oldest first) and per-series counts per second."""
        wanted = np.arange(now_bin - self.nbins + 1, now_bin + 1, dtype=np.int64)
        slots = wanted % self.nbins
        with self.lock:
            valid = self.ids[slots] == wanted
            data = np.where(valid[None, :], self.counts[:, slots], 0.0)
            labels = list(self.labels)
            has_other = self.max_series < self.counts.shape[0] and data[self.max_series].any()
        scale = 1e9 / self.bin_ns
        out = {lab: data[i] * scale for i, lab in enumerate(labels)}
        if has_other:
            out[self.OTHER] = data[self.max_series] * scale
        x = (wanted - now_bin) * (self.bin_ns / 1e9)
        return x, out
