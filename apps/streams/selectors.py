"""The read path's queries. Keyset reads only: the cost of a page never grows with its start."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from apps.streams.models import Chunk, Stream
from apps.streams.records import ChunkRecord, StreamTail


def chunks_from_index(
    *,
    stream_id: int,
    start: int,
    end: int | None = None,
    limit: int | None = None,
    max_bytes: int | None = None,
) -> list[ChunkRecord]:
    """Chunks ``start…`` in index order, at most ``limit`` of them and about ``max_bytes``
    (always at least one, so a single large chunk still moves a reader forward)."""
    limit = limit or settings.STREAMDASH_READ_PAGE_CHUNKS
    max_bytes = max_bytes or settings.STREAMDASH_READ_PAGE_BYTES
    query = Chunk.objects.filter(stream_id=stream_id, index__gte=start)
    if end is not None:
        query = query.filter(index__lt=end)
    rows = query.order_by("index").values_list("index", "data", "created_at", "producer")[:limit]
    records: list[ChunkRecord] = []
    total = 0
    for index, data, created_at, producer in rows.iterator(chunk_size=limit):
        payload = bytes(data)
        if records and total + len(payload) > max_bytes:
            break
        total += len(payload)
        records.append(ChunkRecord(index, payload, created_at.timestamp(), producer))
    return records


def stream_tails(stream_ids: Iterable[int]) -> dict[int, StreamTail]:
    """Current tail of each stream, in one query (the hub's safety re-check)."""
    rows = Stream.objects.filter(pk__in=list(stream_ids)).values_list(
        "pk", "first_index", "next_index", "closed"
    )
    return {pk: StreamTail(pk, first, nxt, closed) for pk, first, nxt, closed in rows}
