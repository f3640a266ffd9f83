"""The history page's chart: chunk rate and bytes over time, as plain SVG geometry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from apps.dashboard.selectors import RateBucket

WIDTH, HEIGHT, PAD = 600, 160, 4


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]  # chunks per second
    line: str  # bytes per second, an SVG polyline's points
    peak_rate: float
    peak_bytes: float
    start: dt.datetime
    end: dt.datetime
    chunks: int
    bytes: int
    width: int = WIDTH
    height: int = HEIGHT


def build(buckets: list[RateBucket], bins: int = 60) -> Chart | None:
    """Re-bin index-range buckets into ``bins`` equal time slices."""
    if not buckets:
        return None
    t0, t1 = buckets[0].start, max(b.end for b in buckets)
    span = max(t1 - t0, 1.0)
    slice_seconds = span / bins
    counts, sizes = [0] * bins, [0] * bins
    for bucket in buckets:
        slot = min(bins - 1, int((bucket.start - t0) / slice_seconds))
        counts[slot] += bucket.chunks
        sizes[slot] += bucket.bytes
    rates = [c / slice_seconds for c in counts]
    byte_rates = [s / slice_seconds for s in sizes]
    peak_rate, peak_bytes = max(rates) or 1.0, max(byte_rates) or 1.0
    usable = HEIGHT - 2 * PAD
    bar_width = WIDTH / bins
    bars = []
    for i, rate in enumerate(rates):
        h = usable * rate / peak_rate
        stamp = dt.datetime.fromtimestamp(t0 + i * slice_seconds, dt.UTC)
        bars.append(
            Bar(
                x=round(i * bar_width, 2),
                y=round(HEIGHT - PAD - h, 2),
                width=round(max(bar_width - 1, 1), 2),
                height=round(h, 2),
                title=f"{stamp:%H:%M:%S} · {rate:.1f} chunks/s · {byte_rates[i]:.0f} B/s",
            )
        )
    points = " ".join(
        f"{round((i + 0.5) * bar_width, 2)},{round(HEIGHT - PAD - usable * b / peak_bytes, 2)}"
        for i, b in enumerate(byte_rates)
    )
    return Chart(
        bars=bars,
        line=points,
        peak_rate=peak_rate,
        peak_bytes=peak_bytes,
        start=dt.datetime.fromtimestamp(t0, dt.UTC),
        end=dt.datetime.fromtimestamp(t1, dt.UTC),
        chunks=sum(counts),
        bytes=sum(sizes),
    )


@dataclass(frozen=True)
class ActivityChart:
    bars: list[Bar]  # appends per second, one bar a minute
    line: str  # live readers, an SVG polyline's points
    peak_rate: float
    peak_readers: int
    width: int = WIDTH
    height: int = HEIGHT


def activity(minutes: list[tuple[dt.datetime, float, int]]) -> ActivityChart:
    """The System page's hour: ``(minute, appends per second, live readers)`` oldest first."""
    bins = max(1, len(minutes))
    peak_rate = max((rate for _, rate, _ in minutes), default=0.0)
    peak_readers = max((readers for _, _, readers in minutes), default=0)
    rate_scale, readers_scale = peak_rate or 1.0, peak_readers or 1
    usable = HEIGHT - 2 * PAD
    bar_width = WIDTH / bins
    bars = [
        Bar(
            x=round(i * bar_width, 2),
            y=round(HEIGHT - PAD - usable * rate / rate_scale, 2),
            width=round(max(bar_width - 1, 1), 2),
            height=round(usable * rate / rate_scale, 2),
            title=f"{at:%H:%M} · {rate:.2f} appends/s · {readers} live readers",
        )
        for i, (at, rate, readers) in enumerate(minutes)
    ]
    line = " ".join(
        f"{round((i + 0.5) * bar_width, 2)},{round(HEIGHT - PAD - usable * r / readers_scale, 2)}"
        for i, (_, _, r) in enumerate(minutes)
    )
    return ActivityChart(bars, line, peak_rate, peak_readers)
