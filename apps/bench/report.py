"""Figures as the benchmarks report them: percentiles, ratios to a baseline, and the JSON line
(strict JSON: no NaN) that the command prints last. The progress bar is ``progress.py``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["jsonable", "percentile", "ratio"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by nearest rank; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(figure: float, baseline: float) -> float:
    return figure / baseline if baseline else math.nan


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so the JSON line stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
