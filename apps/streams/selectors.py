"""The read path's queries. Keyset reads only: the cost of a page never grows with its start."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

from apps.streams import lineage, pg_read, threads
from apps.streams.models import Chunk, Stream
from apps.streams.records import ChunkRecord, StreamTail
from streamdash.core.clock import aware_datetime

# One page of chunks, bounded in chunks and in bytes by the query itself: the running byte
# count is a window over the page's rows (LENGTH of a stored value reads its size, not the
# value), so the rows past the budget are never fetched. The page before this took up to
# STREAMDASH_READ_PAGE_CHUNKS rows out of the database through a server-side cursor and cut
# them to the byte budget after: 2.2 s for the first page of a 300 MB stream of 500 KB chunks,
# which pulled the rest of the stream out of PostgreSQL with it. Raw SQL, because building
# the ORM query cost more than running it (about 1 ms of CPU; see apps/streams/rows.py).
_PAGE_SQL = (
    'SELECT "index", data, created_at, producer FROM ('
    'SELECT "index", data, created_at, producer, '
    'SUM(LENGTH(data)) OVER (ORDER BY "index") AS upto '
    f'FROM "{Chunk._meta.db_table}" WHERE stream_id = %s AND "index" >= %s AND "index" < %s '
    'ORDER BY "index" LIMIT %s) page '
    'WHERE upto <= %s OR upto = LENGTH(data) ORDER BY "index"'
)
_NO_END = 2**63 - 1


def chunks_from_index(
    *,
    stream_id: int,
    start: int,
    end: int | None = None,
    limit: int | None = None,
    max_bytes: int | None = None,
    fork_index: int = 0,
) -> list[ChunkRecord]:
    """Chunks ``start…`` in index order, at most ``limit`` of them and ``max_bytes`` (always at
    least one, so a single large chunk still moves a reader forward). A fork's chunks below its
    ``fork_index`` come from the streams it was forked from (``apps.streams.lineage``)."""
    limit = limit or settings.STREAMDASH_READ_PAGE_CHUNKS
    max_bytes = max_bytes or settings.STREAMDASH_READ_PAGE_BYTES
    stop = _NO_END if end is None else end
    if start >= fork_index:
        return _page(stream_id, start, stop, limit, max_bytes)
    records: list[ChunkRecord] = []
    position, room = start, max_bytes
    for span in lineage.spans(stream_id):
        if span.end <= position:
            continue
        upto = min(stop, span.end)
        page = _page(span.stream_id, position, upto, limit - len(records), room)
        if records and page and len(page[0].data) > room:
            page = []  # only the first chunk of a whole read may pass the byte budget
        records += page
        room -= sum(len(r.data) for r in page)
        position = records[-1].index + 1 if records else position
        if position < upto or len(records) >= limit or room <= 0 or upto >= stop:
            break
    return records


async def achunks_from_index(
    *,
    stream_id: int,
    start: int,
    end: int,
    limit: int,
    max_bytes: int,
    fork_index: int = 0,
) -> list[ChunkRecord]:
    """``chunks_from_index`` for async callers (a live reader catching up): on PostgreSQL one
    statement on the async pool (``pg_read``), no thread; elsewhere, and for a fork's prefix,
    one hop to the read pool.

    Each hop also took a Django connection out of its pool, with the health check's round
    trip. SSE from ``-1`` of 60 chunks of 500 KB (1 MiB batches, one statement each), the
    ASGI app called in process, four reads a run, two runs each way in one sitting (load 4):
    through the read pool 85 and 57 MB/s (210 and 193 MB per CPU-second), here 167 and
    87 MB/s (276 and 239)."""
    if start >= fork_index and pg_read.available():
        rows = await pg_read.fetch_all(_PAGE_SQL, [stream_id, start, end, limit, max_bytes])
        return _records(rows)
    return await threads.run_in(
        "read",
        chunks_from_index,
        stream_id=stream_id,
        start=start,
        end=end,
        limit=limit,
        max_bytes=max_bytes,
        fork_index=fork_index,
    )


def _page(stream_id: int, start: int, end: int, limit: int, max_bytes: int) -> list[ChunkRecord]:
    params = [stream_id, start, end, limit, max_bytes]
    if connection.vendor == "postgresql":
        rows = _binary_rows(_PAGE_SQL, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_PAGE_SQL, params)
            rows = cursor.fetchall()
    return _records(rows)


def _records(rows: list[Any]) -> list[ChunkRecord]:
    return [
        ChunkRecord(index, bytes(data), _timestamp(created_at), producer)
        for index, data, created_at, producer in rows
    ]


def _binary_rows(sql: str, params: list[Any]) -> list[Any]:
    """Rows in PostgreSQL's binary format, on Django's connection (its transaction, its errors).
    Django's cursors ask for text, where bytea travels hex-encoded at twice its size and is
    decoded again here: a page of 4 MiB cost 20 ms of CPU that way, 8 ms in binary."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _timestamp(value: object) -> float:
    stamp = aware_datetime(value)
    assert stamp is not None  # the column is NOT NULL
    return stamp.timestamp()


def stream_tails(stream_ids: Iterable[int]) -> dict[int, StreamTail]:
    """Current tail of each stream, in one query (the hub's safety re-check)."""
    rows = Stream.objects.filter(pk__in=list(stream_ids)).values_list(
        "pk", "first_index", "next_index", "closed", "fork_index"
    )
    return {row[0]: StreamTail(*row) for row in rows}
