"""How the bench writes numbers, and its progress lines."""

from __future__ import annotations

import math
import sys

__all__ = ["fmt_int", "fmt_rate", "log", "rate_label"]


def fmt_rate(x: float | None) -> str:
    """A rate in a few characters: 950, 12.5k, 2.63M; "-" when unknown."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_int(x: int | None) -> str:
    """A count with thousands separators; "-" when unknown."""
    return "-" if x is None else f"{x:,}"


def rate_label(r: float) -> str:
    """A target rate as a label: 50k, 1M; 0 (flat out) is "max"."""
    return "max" if not r else fmt_rate(r).replace(".0k", "k").replace(".00M", "M")


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
