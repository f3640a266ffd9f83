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
readers. A round shorter than ``IMMEDIATE_SECONDS``, or of fewer than ``PACED_READERS``
readers, is not paced at all, so a single reader's latency is what it was: a few readers cannot
hold the loop for long, and what a round's timing catches then is mostly other work (a busy
writer's requests). The wait is capped at ``MAX_DELAY_SECONDS``.

Measured with ``DEBUG=0 ALLOWED_HOSTS=127.0.0.1 manage.py streambench fanout --readers 1000
--viewers 50 --seconds 10`` (PostgreSQL 15, this 2-core machine shared with other work, load
average 4.0–4.6 in every run; main at 04:50, this change at 05:07), together with the direct
socket write of streamdash/core/flowserver.py, the frames shared per batch (apps/api/sse.py
``live_frames``) and a future per waiting reader in place of ``asyncio.shield``
(``StreamState.wait``):

| 1,000 SSE readers | before | after |
|---|---|---|
| server CPU per append, readers open (nothing open: 4.5 / 3.9 ms) | 286 ms | 23.2 ms |
| writer, flat out, readers open | 1.6 appends/s | 21.3 appends/s |
| the same with 10 viewers too (share of the figure with none) | 2.5 appends/s | 22.8 (107%) |
| delivery at 100 chunks/s: appends the server kept | 2/s | 29/s |
| delivery: append → SSE receive p50 / p99 | 989 / 2,928 ms | 187 / 602 ms |

Every reader and viewer got every chunk in both runs. Without the change to ``wait`` (04:48)
it was 37.3 ms of CPU per append, 13.9 appends/s, p99 995 ms. With 200 readers and 10 viewers
(``--readers 200 --viewers 10``, load 5–6, 04:33): 49.9 → 15.9 ms of server CPU per append with
the readers open, 12.8 → 27.5 appends/s. What is left per reader and round (py-spy, 1,000
readers): the ``send`` system call (18% of the samples), the ASGI send wrappers and the
reader's task (``follow`` → SSE frames → pump → send). Since, an SSE reader waiting at the tail
is served by the round itself, without its task or the wrappers (``apps.streams.live``: 25 →
10 ms of server CPU per append with 1,000 readers, same sitting, load 4–6); a round's length
is then mostly its ``send`` calls, and the pacing here still spaces rounds by it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

IMMEDIATE_SECONDS = 0.002
PACED_READERS = 20
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

    def soon(self, readers: int) -> None:
        """New chunks for ``readers`` readers: wake them now or, if rounds are long, after a
        pause."""
        if self._timer is not None:
            return  # a wake is due: these chunks go with it
        delay = min(self.round_seconds * SPACING, MAX_DELAY_SECONDS)
        if readers < PACED_READERS or delay < IMMEDIATE_SECONDS:
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
        # The wake resolves each waiting reader's future, which schedules that reader's task; a
        # callback queued behind those, which queues one more, runs after every reader took its
        # turn (a reader's turn is one task step unless its socket is full).
        self._loop.call_soon(self._loop.call_soon, self._ended, began)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ended(self, began: float) -> None:
        self.round_seconds = time.perf_counter() - began
