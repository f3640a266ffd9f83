"""Live feeds for the dashboard's sockets: batching a stream's chunks for the viewer, and
the per-stream counters of the run page.

A ``ChunkFeed`` has two halves joined by a bounded queue. ``read`` follows the stream (from the
hub) and puts every chunk in order, sleeping between chunks when replaying with the original
timing. ``batches`` takes whatever has queued, up to ``MAX_ROWS``, at most every
``FLUSH_SECONDS``: a 5,000 chunks/s stream becomes twenty messages a second of ~250 rows,
not 5,000 messages. When the page cannot keep up, the queue fills and ``read`` waits; the hub then
serves this reader from the database when it resumes. Nothing is dropped, only batched.

Viewers flush on the same clock ticks (multiples of ``FLUSH_SECONDS`` of the loop's time), so
the viewers of a stream in one process send the same batches, and ``render_chunk_batch``
renders each batch once for all of them (a bounded cache keyed by the batch's range): the
render happens on the tick, never on an append's path, and costs the same with 1 or 50 viewers.

Why 0.05 s: a chunk waits for the hub's wake round (paced with 1,000 SSE readers open:
``apps.streams.pacing``) and then for the next tick. With ticks of 0.1 s the viewers' p99 was
179 ms at 100 chunks/s (``streambench fanout --readers 1000 --viewers 50``, SSE readers 80.5
ms); the tick alone added up to 100 ms of it. A tick of 0.05 s halves that wait for twice the
messages (still one render per tick for every viewer of the stream in the process). Measured
(same command, main and this change alternately, 11:04-11:11 UTC, load 3.1-7.3, four runs
each): the viewers' p50 was 42-70 ms above the SSE readers' on main, 9-35 ms with this; their
p99 stayed bounded by the loaded machine and the bench's client (333-665 ms on main, 339-1,108
ms here), as the SSE readers' did. This change with 0.1 and 0.05 s ticks alternately,
11:32-11:35 UTC, load 3.9-5.3: viewers' p99 350 / 288 ms and 242 / 228 ms; the delivery's
writer kept 79.7 / 57.9 and 73.2 / 59.9 appends/s: twice the viewers' messages cost the
writer nothing that shows beside the machine's noise.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.translation import get_language

from apps.dashboard import chunks
from apps.dashboard.rows import chunk_rows
from apps.streams.live import LiveBatch, follow
from apps.streams.models import Stream
from apps.streams.records import ChunkRecord
from streamdash.core.content import content_kind
from streamdash.core.errors import DomainError

FLUSH_SECONDS = 0.05
MAX_ROWS = 1000
QUEUE_CHUNKS = 20_000
# Replaying with the original timing never waits longer than this between two chunks.
MAX_REPLAY_GAP = 10.0
RATE_WINDOW = 5.0


replay_sleep = asyncio.sleep  # a seam for tests


def replay_speed(value: str) -> float | None:
    """``1``/``10``/``100`` → that speed-up; anything else (``instant``, empty) → None."""
    return float(value) if value in {"1", "10", "100"} else None


@dataclass(frozen=True)
class _Position:
    next_index: int
    up_to_date: bool
    closed: bool


@dataclass(frozen=True)
class _End:
    error: str | None = None


@dataclass
class Batch:
    records: list[ChunkRecord]
    first: int
    next_index: int
    up_to_date: bool
    closed: bool
    end: bool = False
    error: str | None = None


class ChunkFeed:
    def __init__(self, stream: Stream, start: int, speed: float | None) -> None:
        self.stream = stream
        self.kind = content_kind(stream.content_type)
        self.start = start
        self.speed = speed
        self.queue: asyncio.Queue[ChunkRecord | _Position | _End] = asyncio.Queue(QUEUE_CHUNKS)

    async def read(self) -> None:
        previous: float | None = None
        try:
            async for batch in follow(
                self.stream.pk, self.start, heartbeat=settings.STREAMDASH_HEARTBEAT_SECONDS
            ):
                if batch is None:
                    continue
                for record in batch.chunks:
                    if self.speed is not None and previous is not None:
                        gap = (record.created_at - previous) / self.speed
                        if gap > 0:
                            await replay_sleep(min(gap, MAX_REPLAY_GAP))
                    previous = record.created_at
                    await self.queue.put(record)
                await self.queue.put(_Position(batch.next_index, batch.up_to_date, batch.closed))
            await self.queue.put(_End())
        except DomainError as exc:
            await self.queue.put(_End(exc.message))

    async def batches(self) -> AsyncIterator[Batch]:
        position = _Position(self.start, False, False)
        while True:
            item = await self.queue.get()
            records: list[ChunkRecord] = []
            end: _End | None = None
            while True:
                if isinstance(item, ChunkRecord):
                    records.append(item)
                    position = _Position(item.index + 1, False, position.closed)
                elif isinstance(item, _Position):
                    position = item
                else:
                    end = item
                    break
                if len(records) >= MAX_ROWS or self.queue.empty():
                    break
                item = self.queue.get_nowait()
            first = records[0].index if records else position.next_index
            yield Batch(
                records,
                first,
                position.next_index,
                position.up_to_date,
                position.closed,
                end=end is not None,
                error=end.error if end else None,
            )
            if end is not None:
                return
            await asyncio.sleep(FLUSH_SECONDS - asyncio.get_running_loop().time() % FLUSH_SECONDS)


_SHARED_RENDERS = 32
_SHARED_RENDER_CHARS = 256 * 1024
_renders: OrderedDict[tuple[object, ...], str] = OrderedDict()


def render_chunk_batch(feed: ChunkFeed, batch: Batch) -> str:
    """The viewer's message for a batch, rendered once per process for every viewer that
    sends the same batch (chunks never change once written)."""
    key = (
        feed.stream.pk,
        feed.kind,
        batch.first,
        batch.next_index,
        len(batch.records),
        batch.up_to_date,
        batch.closed,
        batch.end,
        batch.error,
        get_language(),  # the counts are formatted for the viewer's language
    )
    html = _renders.get(key)
    if html is None:
        html = _render(feed, batch)
        if len(html) <= _SHARED_RENDER_CHARS:
            _renders[key] = html
            if len(_renders) > _SHARED_RENDERS:
                _renders.popitem(last=False)
    return html


def _render(feed: ChunkFeed, batch: Batch) -> str:
    rows = chunk_rows(feed.stream.pk, batch.records, feed.kind)
    text = "".join(
        piece
        for piece in (chunks.text_delta(r.data, feed.kind) for r in batch.records)
        if piece is not None
    )
    return render_to_string(
        "dashboard/partials.html#chunk-batch",
        {
            "stream": feed.stream,
            "batch": batch,
            "rows": rows,
            "count": len(batch.records),
            "text": text,
        },
    )


@dataclass
class StreamStat:
    """One stream's counters on the run page, kept current from the hub."""

    pk: int
    key: str
    content_type: str
    first_index: int
    next_index: int
    bytes: int
    closed: bool
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    @classmethod
    def of(cls, stream: Stream) -> StreamStat:
        return cls(
            stream.pk,
            stream.key,
            stream.content_type,
            stream.first_index,
            stream.next_index,
            stream.byte_size,
            stream.closed,
        )

    def merge(self, stream: Stream) -> None:
        """Counts read from the database are never behind what the hub showed."""
        if stream.next_index >= self.next_index:
            self.next_index, self.bytes = stream.next_index, stream.byte_size
        self.first_index = stream.first_index
        self.closed = self.closed or stream.closed

    def observe(self, batch: LiveBatch, now: float) -> None:
        if batch.chunks:
            self.bytes += sum(len(c.data) for c in batch.chunks)
            self.recent.append((now, len(batch.chunks)))
        self.next_index = max(self.next_index, batch.next_index)
        self.closed = self.closed or batch.closed

    def rate(self, now: float) -> float:
        while self.recent and self.recent[0][0] < now - RATE_WINDOW:
            self.recent.popleft()
        return sum(n for _, n in self.recent) / RATE_WINDOW

    def view(self, now: float) -> dict[str, Any]:
        return {
            "pk": self.pk,
            "key": self.key,
            "content_type": self.content_type,
            "chunks": self.next_index - self.first_index,
            "bytes": self.bytes,
            "closed": self.closed,
            "rate": self.rate(now),
        }
