"""labkit.views.bins: counts per (series, time bin) with fixed memory."""

from __future__ import annotations

import numpy as np

from labkit.views.bins import Bins


def test_many_series_end_in_other_and_memory_stays_fixed():
    bins = Bins(nbins=10, bin_ns=10**9, max_series=4)
    labels = np.array([f"comm{i}" for i in range(1000)], dtype=object)
    bins.add(np.full(1000, 7), labels)
    x, series = bins.series(7)
    assert len(series) == 5 and "other" in series and sum(v.sum() for v in series.values()) == 1000
    assert bins.counts.shape == (5, 10) and len(bins.index) == 4
    assert series["other"].sum() == 996


def test_series_are_rates_per_second_on_a_seconds_ago_axis():
    bins = Bins(nbins=4, bin_ns=500_000_000, max_series=3)           # half-second bins
    bins.add(np.array([10, 10, 11, 13]), ["a", "a", "b", "a"])
    x, series = bins.series(13)
    assert list(x) == [-1.5, -1.0, -0.5, 0.0]
    assert list(series["a"]) == [4.0, 0.0, 0.0, 2.0] and list(series["b"]) == [0.0, 2.0, 0.0, 0.0]


def test_unlabelled_events_and_weights():
    bins = Bins(nbins=3, bin_ns=10**9, max_series=2)
    bins.add(np.array([5, 5, 6]))
    bins.add(np.array([6]), ["events"], weights=np.array([10.0]))
    _, series = bins.series(6)
    assert list(series) == ["events"] and list(series["events"]) == [0.0, 2.0, 11.0]


def test_old_bins_fall_out_of_the_ring():
    bins = Bins(nbins=3, bin_ns=10**9, max_series=2)
    bins.add(np.array([1, 2]), ["a", "a"])
    bins.add(np.array([5]), ["a"])                                    # reuses slot 2 (5 % 3)
    _, series = bins.series(5)
    assert list(series["a"]) == [0.0, 0.0, 1.0], "bins 1 and 2 are older than the history kept"
    bins.add(np.array([2]), ["a"])                                    # late: its slot holds bin 5
    bins.add(np.array([9, 1]), ["a", "a"])                            # bin 1 is too old for this batch
    _, series = bins.series(9)
    assert list(series["a"]) == [0.0, 0.0, 1.0] and bins.ids.shape == (3,)


def test_reset_forgets_everything_and_version_counts_changes():
    bins = Bins(nbins=3, bin_ns=10**9, max_series=2)
    v = bins.version
    bins.add(np.array([1]), ["a"])
    bins.add(np.array([], dtype=np.int64))                            # nothing added, nothing changed
    assert bins.version == v + 1
    bins.reset()
    assert bins.series(1)[1] == {} and bins.labels == [] and not bins.counts.any()
