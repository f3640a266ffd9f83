"""A progress bar on stderr (stdout keeps the figures and the JSON line), redrawn at most ten
times a second so drawing it costs the benchmark nothing measurable."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_WIDTH = 30
_REDRAW_SECONDS = 0.1


class Progress:
    def __init__(self, label: str, total: float, unit: str = "", stream: TextIO | None = None):
        self.label = label
        self.total = max(total, 1e-9)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.done = 0.0
        self.note = ""
        self._drawn_at = 0.0
        self._began = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def update(self, done: float, note: str = "") -> None:
        self.done, self.note = done, note or self.note
        if time.monotonic() - self._drawn_at >= _REDRAW_SECONDS:
            self._draw()

    def advance(self, by: float = 1) -> None:
        """``update(done + by)``; safe from several threads at once (concurrent writers)."""
        with self._lock:
            self.update(self.done + by)

    def _draw(self) -> None:
        self._drawn_at = time.monotonic()
        share = min(1.0, self.done / self.total)
        bar = "#" * round(share * _WIDTH)
        elapsed = self._drawn_at - self._began
        self.stream.write(
            f"\r{self.label:<28} [{bar:<{_WIDTH}}] {share:4.0%} "
            f"{self.done:,.0f}/{self.total:,.0f}{self.unit} {elapsed:5.1f} s {self.note}\x1b[K"
        )
        self.stream.flush()


def warn(message: str) -> None:
    """A warning that must not be lost among the figures: on stderr, on its own line."""
    sys.stderr.write(f"WARNING: {message}\n")
    sys.stderr.flush()
