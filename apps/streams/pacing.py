"""When to wake a stream's live readers: at once when that is cheap, spaced out when it is not.

Every wake of a stream's readers is a round of work on the one event loop that also answers the
writers: each reader's task reads the ring, frames the new chunks and writes them to its
socket, about 0.25 ms of server CPU per reader (``streambench fanout``). Woken once per
append, 200 readers cost 55 ms of CPU per append and the writer fell to 9 appends/s; every
await of the writer's own request waited behind a round.

So the pacer measures how long the last round held the loop and, when an append arrives, wakes
the readers no sooner than that long after the last round ended: the appends that arrive
meanwhile reach every reader as one batch (one frame and one write per reader instead of
one per append), and fan-out took at most about half of the loop whatever the number of
readers (until the change described below). A round shorter than ``IMMEDIATE_SECONDS``, or
of fewer than ``PACED_READERS`` readers, is not paced at all, so a single reader's latency is
what it was: a few readers cannot hold the loop for long, and what a round's timing catches
then is mostly other work (a busy writer's requests). The wait is capped at
``MAX_DELAY_SECONDS``.

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


The pause, since: counted from the end of the last round, ``SPACING`` = 9 times the round (was
1) and capped at ``MAX_DELAY_SECONDS`` = 60 ms (was 100). An append that finds the pause over
(the loop has had its share since: a writer that is not flat out, a quiet stream) starts a
round at once; appends that keep coming (a writer flat out) get rounds that leave the rest of
the loop nine tenths of it, as long as a round is under about 7 ms; a longer round is followed
by 60 ms, so no chunk waits more than that past the end of the round before it (the issue's
fan-out goal is p99 <= 100 ms at 100 chunks/s). That is the trade-off: at most 60 ms of added
latency when appends keep coming, for a writer that keeps at least 90% of the loop while rounds
are short, and (with 1,000 readers, whose rounds took 35-130 ms of wall time on this loaded
machine) about 30-60% when they are not. The old pause began when the append came, so a lone
append after a quiet spell waited a whole pause too.

A round is served in slices of ``SLICE_SECONDS`` (2 ms) with whatever became ready between
them (a writer's request, its database reply) running first, and a round known to be long
never runs inside the caller of ``soon``: an append that tells the hub of its chunks sends its
response before those readers get them. Before, a round whose pause was over ran inside the
append's request, and a writer's request that arrived during a round waited for all of it:
with 1,000 readers, py-spy showed 8% of the server's samples as rounds inside
``achunks_append``. A cheap round (fewer than ``PACED_READERS`` readers, or a last round
under ``IMMEDIATE_SECONDS``) still runs at once, inside the caller: a lone reader's latency
is what it was (``streambench latency --rates 500 --no-reference``, one reader, alternating:
p50 / p99 3.5 / 9.7 and 10.9 / 42.6 ms here, 3.6 / 9.0 and 9.1 / 50.8 ms on main, load 3-5;
with every round after the response, and the next round waiting for the last one's woken
tasks, it had been 15.8 / 13.6 / 8.9 / 17.3 ms p50 against main's 10.2 / 12.5 / 6.7 / 10.5).
A round ends when its readers are served; the time its woken tasks take is added to its
length (for the pause) when they have had their turn.

Measured with the same command (PostgreSQL 15, one process), main and this change run
alternately 10:46-10:58 UTC on 2026-12-02, on a machine shared with three other helpers'
builds and benchmarks (load average 0.3 at the start, 7.7 at the end; the server got a quarter
to half of a core; the bench's own client lagged by up to 750 ms). Every reader and viewer
got every chunk in every run. Runs 1-2: the pause and the rounds' shared batches
(``apps.streams.live``) without the slices; runs 3-5: all of it (run 4-5: also the viewers'
0.05 s ticks, ``apps.dashboard.feeds``):

| 1,000 SSE readers open, run (load) | 1 (1.8) | 2 (3.4) | 3 (3.6) | 4 (4.2) | 5 (7.7) |
|---|---|---|---|---|---|
| server CPU/append, readers only: main | 3.61 | 5.88 | 7.61 | 6.47 | 8.01 ms |
| the same, this change | 3.83 | 5.78 | 2.85 | 4.38 | 6.43 ms |
| writer, readers only / nothing open: main | 41% | 51% | 24% | 34% | 37% |
| the same, this change | 29% | 26% | 57% | 47% | 62% |
| writer, 10 viewers too / readers only: main | 42% | 96% | 110% | 44% | 101% |
| the same, this change | 125% | 101% | 78% | 97% | 78% |

(main ran each time just after the change, load 2.1-6.9.) The rates follow the machine's load
more than the code: the writer, the server, PostgreSQL and the client with its 1,000 sockets
share two cores with the other helpers' work, and the ≥ 90% goal can be neither shown nor
refuted here. The delivery latencies at 100 chunks/s (SSE p99 145-761 ms on this change,
201-562 ms on main) were bounded by the client's own loop in these sittings (see
``apps.bench.fanout``'s warnings), not by the pause.

Again with both commits, main and this change alternately 11:04-11:11 UTC, four runs each
(load 3.1-7.3; figures in run order; runs 3-4 with the measurement patch of
``apps.streams.live``): the writer with the readers open kept 73 / 20 / 33 / 41%
of the nothing-open figure on main, 56 / 38 / 44 / 31% here; with 10 viewers too, 118 / 189 /
148 / 108% and 79 / 141 / 29 / 133% of the readers-only figure; server CPU per append with
the readers open 4.43 / 8.86 / 7.95 / 6.22 ms on main, 5.56 / 5.60 / 6.21 / 8.55 ms here; SSE
p99 at 100 chunks/s 296 / 301 / 358 / 470 ms on main, 394 / 233 / 1,042 / 477 ms here (the
client's loop late by up to 608 ms in that run). Nothing in these sittings separates the two
on the writer's rate; the one steady difference is a round's CPU per reader (``apps.streams.live``).

The cap once more, 2026-12-02 15:16-15:20 UTC on a quieter machine (load 0.5-1.7, 0-3% of the
CPU time stolen), the same command alternately with ``MAX_DELAY_SECONDS`` 0.06 and 0.04, two
runs each: SSE p99 124.4 / 126.6 ms at 0.06 and 103.0 / 104.4 ms at 0.04 (viewers 233.6 /
226.0 and 94.8 / 109.1 ms); but with the readers open, the writer made 211.7 / 212.0 appends/s
at 2.99 / 3.02 ms of server CPU each at 0.06, and 162.5 / 176.5 at 3.98 / 3.78 ms at 0.04. A
shorter pause means more rounds for the same chunks, each of 1,000 sends, and the p99 stayed
above 100 ms even so: the cap stays at 0.06.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

IMMEDIATE_SECONDS = 0.002
PACED_READERS = 20
# The pause's cap: with the round itself and the reader's place in it, a chunk's wait stays
# under the 100 ms of the fan-out goal.
MAX_DELAY_SECONDS = 0.06
# The pause after a round, as a multiple of the round's own time: 9.0 leaves the rest of the
# loop's work (the writers) nine tenths of it while appends keep coming.
SPACING = 9.0
# A round serves its readers in slices of about this long; between two, whatever else is
# ready on the loop (a writer's request) runs.
SLICE_SECONDS = 0.002


class WakePacer:
    """Runs one stream's wake rounds: ``begin`` starts a round, ``serve(seconds)`` serves its
    readers for about that long and says whether the round is done. Rounds never overlap; a
    round known to be long never runs inside the caller of ``soon`` (an append's request: its
    response goes out first), nor does any round inside the caller of ``now``."""

    def __init__(self, begin: Callable[[], None], serve: Callable[[float], bool]) -> None:
        self._begin = begin
        self._serve = serve
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None  # the next step due
        self._running = False
        self._again: bool | None = None  # wanted during a round: None, soon (False), now (True)
        self._readers = 0
        self._spent = 0.0
        self.round_seconds = 0.0
        # When the last round ended (``time.perf_counter``); the next may start a pause later.
        self._ended_at = -math.inf

    def soon(self, readers: int) -> None:
        """New chunks for ``readers`` readers: a round at once or, if rounds are long and the
        last one ended a moment ago, when the pause after it is over."""
        self._readers = readers
        if self._running:
            self._again = self._again or False
            return
        if self._handle is not None:
            return  # a round is due: these chunks go with it
        if readers < PACED_READERS or self.round_seconds < IMMEDIATE_SECONDS:
            self._start()  # cheap: at once
            return
        pause = min(self.round_seconds * SPACING, MAX_DELAY_SECONDS)
        delay = max(0.0, self._ended_at + pause - time.perf_counter())
        self._handle = self._loop.call_later(delay, self._start)

    def now(self) -> None:
        """A round as soon as possible (a close, a deletion, a revocation): after the one
        running, if any."""
        if self._running:
            self._again = True
            return
        self.cancel()
        self._handle = self._loop.call_soon(self._start)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _start(self) -> None:
        self._running = True
        began = time.perf_counter()
        self._begin()
        self._spent = time.perf_counter() - began
        self._step()

    def _step(self) -> None:
        began = time.perf_counter()
        done = self._serve(SLICE_SECONDS)
        self._spent += time.perf_counter() - began
        if not done:
            # Behind whatever became ready meanwhile: timers are taken after the I/O events.
            self._handle = self._loop.call_later(0, self._step)
            return
        self._handle = None
        self._running = False
        self._ended_at, self.round_seconds = time.perf_counter(), self._spent
        # The round woke the tasks of the readers it did not serve itself; a callback queued
        # behind those, which queues one more, runs after each took its turn (one task step
        # unless its socket is full). Their time is the round's too. The next round need not
        # wait for that: its readers are served already.
        self._loop.call_soon(self._loop.call_soon, self._ended, self._ended_at, self._spent)
        again, self._again = self._again, None
        if again:
            self.now()
        elif again is not None:
            self.soon(self._readers)

    def _ended(self, tail_began: float, spent: float) -> None:
        self._ended_at = time.perf_counter()
        self.round_seconds = spent + self._ended_at - tail_began
