"""When to wake a stream's live readers: at once when that is cheap, spaced out when it is not.

Every wake of a stream's readers is a round of work on the one event loop that also answers the
writers: each reader's task reads the ring, frames the new chunks and writes them to its
socket, about 0.25 ms of server CPU per reader (``streambench fanout``). Woken once per
append, 200 readers cost 55 ms of CPU per append and the writer fell to 9 appends/s; every
await of the writer's own request waited behind a round.

So the pacer measures how long the last round held the loop and, when an append arrives, wakes
the readers no sooner than that long after the last round ended: the appends that arrive
meanwhile reach every reader as one batch (one frame and one write per reader instead of
one per append), and fan-out takes at most about half of the loop whatever the number of
readers. A round shorter than ``IMMEDIATE_SECONDS`` (a few readers) is not paced at all, so
a single reader's latency is what it was. The wait is capped at ``MAX_DELAY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

IMMEDIATE_SECONDS = 0.002
MAX_DELAY_SECONDS = 0.1
# The pause after a round, as a multiple of the round's length: 1.0 leaves the writers at
# least half of the loop.
SPACING = 1.0


class WakePacer:
    """Wakes one stream's readers through ``wake``, timing each round it starts."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.round_seconds = 0.0

    def soon(self) -> None:
        """New chunks: wake the readers now or, if rounds are long, after a pause."""
        if self._timer is not None:
            return  # a wake is due: these chunks go with it
        delay = min(self.round_seconds * SPACING, MAX_DELAY_SECONDS)
        if delay < IMMEDIATE_SECONDS:
            self.now()
        else:
            self._timer = self._loop.call_later(delay, self.now)

    def now(self) -> None:
        """Wake the readers at once (and time their round)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        began = time.perf_counter()
        self._wake()
        # The wake resolves the readers' shared future, whose callbacks schedule each reader's
        # task; a callback queued behind those, which queues one more, runs after every reader
        # took its turn (a reader's turn is one task step unless its socket is full).
        self._loop.call_soon(self._loop.call_soon, self._ended, began)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ended(self, began: float) -> None:
        self.round_seconds = time.perf_counter() - began
