"""Following a stream live: what every live reader (SSE, long-poll, WebSocket) consumes.

``follow`` turns the hub's shared state into one reader's ordered batches: every chunk from
``start`` exactly once, in index order, then waits for more. It ends when the stream is closed
and fully delivered, when ``idle_timeout`` seconds pass without a new chunk, or when
``max_seconds`` of connection time are used up (the protocol's periodic reconnect); it fails
with ``Unauthorized`` as soon as the reader's API key (``key_id``) is revoked. Silence
alone never looks like the end: heartbeats (``None``) keep proxies from closing the line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings

from apps.projects.credentials import is_revoked
from apps.projects.credentials import live_key as credentials_held
from apps.streams.hub import StreamGone, get_hub
from apps.streams.records import ChunkRecord
from streamdash.core import metrics
from streamdash.core.errors import Gone, StreamNotFound, Unauthorized


@dataclass(frozen=True)
class LiveBatch:
    chunks: list[ChunkRecord]
    next_index: int
    up_to_date: bool
    closed: bool


def check_retained(first_index: int, start: int) -> None:
    """A read from a position that retention removed fails loudly, naming what is left."""
    if start < first_index:
        raise Gone(
            f"Chunks before index {first_index} were removed by retention; "
            f"read from index {first_index} or later.",
            earliest_index=first_index,
        )


async def follow(
    stream_id: int,
    start: int,
    *,
    idle_timeout: float | None = None,
    max_seconds: float | None = None,
    heartbeat: float | None = None,
    page: int | None = None,
    key_id: int | None = None,
) -> AsyncIterator[LiveBatch | None]:
    hub = get_hub()
    heartbeat = heartbeat or settings.STREAMDASH_HEARTBEAT_SECONDS
    page = page or settings.STREAMDASH_READ_PAGE_CHUNKS
    began = time.monotonic()
    deadline = began + max_seconds if max_seconds is not None else None
    try:
        with credentials_held(key_id):
            async with hub.watch(stream_id) as state:
                check_retained(state.first_index, start)
                position = start
                last_chunk_at = began
                announced_up_to_date = False
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
                        yield LiveBatch(chunks, position, up_to_date, done)
                        if done:
                            return
                        continue
                    if state.closed and position >= state.next_index:
                        yield LiveBatch([], position, True, True)
                        return
                    if not announced_up_to_date:
                        announced_up_to_date = True
                        yield LiveBatch([], position, True, False)
                    now = time.monotonic()
                    limits = [heartbeat]
                    if idle_timeout is not None:
                        limits.append(last_chunk_at + idle_timeout - now)
                    if deadline is not None:
                        limits.append(deadline - now)
                    wait_for = min(limits)
                    if wait_for <= 0:
                        return
                    before = state.next_index, state.closed, state.deleted
                    await state.wait(wait_for)
                    if (state.next_index, state.closed, state.deleted) == before and (
                        time.monotonic() - now >= heartbeat * 0.99
                    ):
                        yield None
    except StreamGone:
        raise StreamNotFound("Stream not found.") from None
