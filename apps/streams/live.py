"""Following a stream live: what every live reader (SSE, long-poll, WebSocket) consumes.

``follow`` turns the hub's shared state into one reader's ordered batches: every chunk from
``start`` exactly once, in index order, then waits for more. It ends when the stream is closed
and fully delivered, when ``idle_timeout`` seconds pass without a new chunk, or when
``max_seconds`` of connection time are used up (the protocol's periodic reconnect); it fails
with ``Unauthorized`` as soon as the reader's API key (``key_id``) is revoked. Silence
alone never looks like the end: heartbeats (``None``) keep proxies from closing the line.

A reader that waits at the tail can be served from the hub's wake round itself (``direct``):
the round frames the new chunks once per batch (``DirectWrite.frame``: SSE's shared frames)
and writes them straight to each such reader's connection (``DirectWrite.write``, which the
server gives when it can write at once), while the reader's task stays parked. The reader's
task takes over (the round resolves its wait) whenever that is not the plain case: the
connection holds unsent bytes or is paused (its task then waits on flow control and the stall
cut-off), the batch does not reach the tail or is not in the ring, the stream closed or went,
the key was revoked or the connection's time is up.

Why: with 1,000 SSE readers each wake round woke 1,000 tasks, and each went hub wake →
``follow`` → SSE frames → pump → two ASGI send wrappers → daphne's ``handle_reply`` → the
socket, with a timer per wait (py-spy: ``asyncio.timeout`` 7%, ``call_soon`` 7%, the wrappers
and the pump most of the rest beside the ``send`` system call). Served from the round, a reader
costs the frame lookup and the ``send`` (py-spy after: 60% of a round is the system call).

Since, the round reads the ring, builds the batch and frames it once per position and framing
(``DirectWrite.key``; ``hub.SharedBatch``), not once per reader, and the server frames the
HTTP chunk once per frame (``streamdash.core.flowserver._chunk_framed``): with 1,000 readers
those were ``from_ring`` 8.4%, the batch 3.8% and the chunk framing 1.2% of the server's
samples, beside 25.1% in the ``send`` itself (py-spy, ``streambench fanout``, 10:44 UTC on
2026-12-02). A reader's share of a round is now the checks, one dict lookup and the write:
the ``send`` went from 43% to 63% of a round's samples (10:52 UTC, same command). The loop
thread's CPU per round (``time.thread_time`` around each round of 500 readers or more, a
measurement patch not kept), main and this change alternately 11:08-11:11 UTC, load
4.0-7.3: main 26-36 µs per reader and round, this change 18-26 µs. Most of what is left is
the loopback ``send`` itself, which on this machine also does the receiving side's TCP work.

Measured with ``DEBUG=0 SECRET_KEY=x ALLOWED_HOSTS=127.0.0.1 manage.py streambench fanout
--readers 1000 --viewers 50 --seconds 10`` (PostgreSQL 15, one process, in-memory layer), main
and this change run alternately, twice each, 07:56–08:02 UTC on 2026-12-02; the machine was
shared with other benchmarks (load average 4.0–6.4, the server got a quarter to half a core):

| 1,000 SSE readers open | main | direct rounds |
|---|---|---|
| server CPU per append, 0 viewers (nothing open: 3.0–3.7 ms) | 26.1 / 24.4 ms | 10.2 / 10.5 ms |
| the same with 10 viewers | 18.8 / 29.3 ms | 12.2 / 8.3 ms |
| writer, flat out, 0 viewers | 17.3 / 17.0 appends/s | 24.0 / 24.8 appends/s |
| delivery at 100 chunks/s: appends the server kept | 24.9 / 14.6 /s | 18.7 / 14.3 /s |
| delivery: append → SSE receive p50 / p99 | 181 / 716, 247 / 997 ms | 179 / 545, 216 / 1,119 ms |

Every reader and viewer got every chunk in every run. Again after rebasing on main (which
now tells the local hub of an append at once and freezes the start-up heap), main and this
change alternately, 08:17–08:22 UTC, a quieter machine (load 1.6–2.4):

| 1,000 SSE readers open (branch: 4 runs) | main | direct rounds |
|---|---|---|
| server CPU/append, 0 viewers (none open: 1.6–3.1) | 6.2 / 12.3 ms | 6.2 / 6.7 / 8.1 / 9.0 ms |
| writer, flat out, appends/s, 0 viewers | 94 / 67 | 118 / 111 / 95 / 82 |
| the same with 10 viewers | 59 / 72 | 84 / 110 / 142 / 73 |
| delivery at 100 chunks/s: appends/s kept | 70 / 76 | 67 / 80 / 100 / 80 |
| delivery: SSE p50 (ms) | 127 / 114 | 56 / 49 / 36 / 57 |
| delivery: SSE p99 (ms) | 429 / 354 | 188 / 151 / 102 / 175 |
| delivery: dashboard viewers p99 (ms) | 491 / 456 | 258 / 241 / 192 / 260 |

In the first of those branch runs the 50 viewers got every chunk but lost their socket before
the stream's end message ("no close frame received or sent"); not seen in the three runs
after it, nor on main. Likely (not verified) the bench's client: its one loop, busy with
1,000 readers ending at once, did not answer the close within autobahn's 1 s close handshake,
and the server's drop of the connection discards what the client had not yet read.

In an earlier pair of sittings (07:39–07:43, load 4.3–5.4, the rounds then still counted the
metrics per reader): 12.4 / 15.3 → 8.3 / 9.1 ms of CPU per append, SSE
p99 932 / 727 → 392 / 397 ms, the delivery writer kept 16 / 24 → 43 / 68 appends/s. The
issue's p99 ≤ 100 ms is not reached (best 102 ms): the rounds are now mostly the ``send``
system call (about 1,000 a round), the pacer spaces rounds by their length
(``apps.streams.pacing``), and the bench's own client, one Python loop for all readers,
reported its loop late by up to 200–250 ms in the loaded sitting.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass

from django.conf import settings

from apps.projects.credentials import is_revoked
from apps.projects.credentials import live_key as credentials_held
from apps.streams.hub import SharedBatch, StreamGone, StreamState, get_hub
from apps.streams.records import ChunkRecord
from streamdash.core import metrics
from streamdash.core.errors import Gone, StreamNotFound, Unauthorized


@dataclass(frozen=True)
class LiveBatch:
    chunks: list[ChunkRecord]
    next_index: int
    up_to_date: bool
    closed: bool


class DirectWrite:
    """How the wake round may serve a reader itself (see the module): ``frame`` renders a
    batch as the reader's response sends it, the same bytes for every reader whose ``key`` is
    equal (the round frames a batch once per position and key); ``write``, set once the
    response has started and only by a server that can, writes bytes to the connection at
    once and says False when it cannot take them now (nothing is then written)."""

    def __init__(self, frame: Callable[[LiveBatch], bytes], key: Hashable) -> None:
        self.frame = frame
        self.key = key
        self.write: Callable[[bytes], bool] | None = None


def check_retained(first_index: int, start: int) -> None:
    """A read from a position that retention removed fails loudly, naming what is left."""
    if start < first_index:
        raise Gone(
            f"Chunks before index {first_index} were removed by retention; "
            f"read from index {first_index} or later.",
            earliest_index=first_index,
        )


def _shared_batch(
    state: StreamState,
    position: int,
    page: int,
    max_bytes: int,
    frame: Callable[[LiveBatch], bytes],
) -> SharedBatch | None:
    """What a wake round writes to the readers waiting at ``position``: the rest of the stream
    as one batch from the ring, framed; None when that is not the plain case (more than a page
    behind, or not in the ring): their tasks read on."""
    chunks = state.from_ring(position, page, max_bytes)
    if not chunks or chunks[0].index != position:
        return None
    end = chunks[-1].index + 1
    if end < state.next_index:
        return None
    return SharedBatch(frame(LiveBatch(chunks, end, True, False)), end, chunks[0].created_at)


async def follow(
    stream_id: int,
    start: int,
    *,
    idle_timeout: float | None = None,
    max_seconds: float | None = None,
    heartbeat: float | None = None,
    page: int | None = None,
    key_id: int | None = None,
    direct: DirectWrite | None = None,
) -> AsyncIterator[LiveBatch | None]:
    hub = get_hub()
    heartbeat = heartbeat or settings.STREAMDASH_HEARTBEAT_SECONDS
    page = page or settings.STREAMDASH_READ_PAGE_CHUNKS
    max_bytes = int(settings.STREAMDASH_LIVE_PAGE_BYTES)
    began = time.monotonic()
    deadline = began + max_seconds if max_seconds is not None else None
    try:
        with credentials_held(key_id):
            async with hub.watch(stream_id) as state:
                check_retained(state.first_index, start)
                position = start
                last_chunk_at = began
                # When the client last got bytes: a heartbeat follows a quiet ``heartbeat``.
                quiet_since = began
                announced_up_to_date = False

                def deliver() -> bool:
                    # This reader's share of a wake round, run by the round (hub.StreamState).
                    nonlocal position, last_chunk_at, quiet_since
                    assert direct is not None
                    write = direct.write
                    if (
                        write is None
                        or state.deleted
                        or state.closed
                        or is_revoked(key_id)
                        or (deadline is not None and state.round_now >= deadline)
                    ):
                        return False
                    if position >= state.next_index:
                        return True  # nothing new for this reader
                    slot = (position, page, max_bytes, direct.key)
                    try:
                        shared = state.round_batches[slot]
                    except KeyError:
                        shared = state.round_batches[slot] = _shared_batch(
                            state, position, page, max_bytes, direct.frame
                        )
                    if shared is None or not write(shared.frame):
                        return False
                    shared.readers += 1
                    position = shared.end
                    last_chunk_at = quiet_since = state.round_now
                    return True

                while True:
                    if state.deleted:
                        raise StreamNotFound("The stream was deleted.")
                    if is_revoked(key_id):
                        raise Unauthorized("The API key was revoked.")
                    # Retention may purge under a reader that is still behind: fail loudly.
                    check_retained(state.first_index, position)
                    chunks = await hub.read(state, position, page)
                    if chunks and is_revoked(key_id):
                        # Revoked while this page was read from the database: not one chunk
                        # goes out after the revocation.
                        raise Unauthorized("The API key was revoked.")
                    if chunks and chunks[0].index != position:
                        # Indices are dense: a gap is a purge that ran while this reader read
                        # from the database, before the hub heard of the new first index.
                        check_retained(chunks[0].index, position)
                    if chunks:
                        if announced_up_to_date:
                            # Waiting at the tail, so this is a live delivery: its lag counts.
                            metrics.lag(time.time() - chunks[0].created_at)
                        position = chunks[-1].index + 1
                        last_chunk_at = time.monotonic()
                        done = state.closed and position >= state.next_index
                        up_to_date = position >= state.next_index
                        announced_up_to_date = up_to_date
                        quiet_since = last_chunk_at
                        yield LiveBatch(chunks, position, up_to_date, done)
                        if done:
                            return
                        continue
                    if state.closed and position >= state.next_index:
                        yield LiveBatch([], position, True, True)
                        return
                    now = time.monotonic()
                    if not announced_up_to_date:
                        announced_up_to_date = True
                        quiet_since = now
                        yield LiveBatch([], position, True, False)
                    elif now - quiet_since >= heartbeat * 0.99:
                        quiet_since = now
                        yield None
                        continue
                    # The heartbeat's limit is above zero here: only these two end the read.
                    limits = [quiet_since + heartbeat - now]
                    if idle_timeout is not None:
                        limits.append(last_chunk_at + idle_timeout - now)
                    if deadline is not None:
                        limits.append(deadline - now)
                    wait_for = min(limits)
                    if wait_for <= 0:
                        return
                    await state.wait(wait_for, deliver if direct is not None else None)
    except StreamGone:
        raise StreamNotFound("Stream not found.") from None
