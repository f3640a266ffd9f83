"""Catch-up pages on PostgreSQL from async code: one statement on psycopg's async pool (the
append path's, ``pg_append``), no thread.

A catch-up GET needs the stream's row and one page of its chunks. The sync path
(``selectors.chunks_from_index`` behind ``stream_views.read``) took a thread hop, a Django
connection out of its pool (with its health-check round trip), a model instance for the row,
two statements and a ``ChunkRecord`` per chunk. Here the row and the page come back in one
round trip: the page is bounded in chunks and bytes inside the query (a running sum of the
stored sizes, as in ``selectors``), fetched in binary, so bytea is not hex-encoded on the wire
to twice its size and decoded again in Python (for a 4 MiB page: 20 ms of client CPU in hex,
8 in binary). One statement is also one snapshot: the row's tail and floor agree with the page.

What this statement does not decide — a stream that is missing, expired, deleted, has a
sliding TTL to renew, or a read of a fork's prefix (``lineage``) — comes back as
``Page.simple() == False`` (or no page) and the caller takes the sync path, which answers as
it always has. CPU per request before and after: ``stream_views.aread``.

``python manage.py streambench big --mib 50`` (500 KB chunks, PostgreSQL 15, ``DEBUG=0``; main
then this branch in one sitting, load average 1.6–1.8 on 2 shared cores): catch-up pages 47.9
-> 84.1 MB/s and SSE 55.1 -> 114.9 MB/s (COPY TO STDOUT: 443 and 488 MB/s), with this module,
binary bytea in ``selectors``, one copy per page and batch (``payloads.json_array``,
``sse.data_frame``) and live catch-up on the pool (``selectors.achunks_from_index``); server
RSS growth +10 and +6 MiB (was +23 and +9). ``big --mib 300`` (the issue's size, 630 chunks;
this branch then main in one sitting, load 2.8–4.3): pages 55.6 -> 99.2 MB/s, SSE 45.3 -> 106.2
MB/s (COPY 363 and 385 MB/s), RSS growth +22 / +14 -> +9 / +0 MiB. Pages stay short of 100
MB/s: per 4 MiB page the server spends about 21 ms of CPU (py-spy: psycopg taking the rows off
the wire about half, Twisted's copy and sends of the body most of the rest), the client (httpx)
about 13 and PostgreSQL about 9, one after another: a page is not sent before it is whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import OperationalError
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from apps.streams import pg_append
from apps.streams.models import Chunk, Stream

_S = Stream._meta.db_table
_C = Chunk._meta.db_table

# ``%(start)s`` is the index asked for (``now``: past any tail); the page starts at the lesser
# of it and the tail. ``stream_id = s.id`` keeps the page in the primary key's order (an index
# scan of ``(stream_id, "index")`` that stops at the LIMIT, no sort); a read the sync path must
# serve (a fork's prefix) fetches no chunk. The stream's columns repeat on every row of the page:
# measured against one row with the page joined by ``STRING_AGG`` (which would make no Python
# object per chunk), this costs the same CPU for 20 small chunks (0.14 ms a statement) and a
# third of the time for 8 of 500 KB (12 ms against 35: the aggregate copies each value twice).
_READ = (
    "SELECT s.id, s.content_type, s.next_index, s.first_index, s.closed, s.fork_index, "
    "s.ttl_seconds, s.expires_at, s.deleted_at, s.created_at, c.data "
    f'FROM "{_S}" s LEFT JOIN LATERAL ('
    'SELECT "index", data, SUM(LENGTH(data)) OVER (ORDER BY "index") AS upto '
    f'FROM "{_C}" WHERE stream_id = s.id AND "index" >= LEAST(%(start)s, s.next_index) '
    'AND "index" < s.next_index AND s.fork_index <= LEAST(%(start)s, s.next_index) '
    'ORDER BY "index" LIMIT %(limit)s) c ON c.upto <= %(max_bytes)s OR c.upto = LENGTH(c.data) '
    "WHERE s.project_id = %(project_id)s AND s.key = %(key)s AND s.run_id "
)
_BY_RUN = _READ + '= %(run_id)s ORDER BY c."index"'
_STANDALONE = _READ + 'IS NULL ORDER BY c."index"'


def available() -> bool:
    """True where catch-up pages are read here: where appends run on the loop."""
    return pg_append.available()


@dataclass(frozen=True)
class Page:
    """A stream's row as one read saw it, and its chunks from ``start`` (their payloads)."""

    stream_id: int
    content_type: str
    next_index: int
    first_index: int
    closed: bool
    fork_index: int
    ttl_seconds: int | None
    expires_at: dt.datetime | None
    deleted_at: dt.datetime | None
    created_at: dt.datetime
    start: int
    chunks: list[bytes]

    def simple(self, now: dt.datetime) -> bool:
        """Whether this read is the whole answer: a live stream with no TTL to renew, read at
        or past its fork point."""
        return (
            self.deleted_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.ttl_seconds is None
            and self.start >= self.fork_index
        )


async def read_page(
    *,
    project_id: int,
    run_id: str | None,
    key: str,
    start: int,
    limit: int,
    max_bytes: int,
) -> Page | None:
    """The stream's row and its page from ``start`` (bounded by the tail), at most ``limit``
    chunks and ``max_bytes`` (always at least one chunk); None when there is no such row."""
    params: dict[str, Any] = {
        "project_id": project_id,
        "key": key,
        "run_id": run_id,
        "start": start,
        "limit": limit,
        "max_bytes": max_bytes,
    }
    rows = await fetch_all(_STANDALONE if run_id is None else _BY_RUN, params)
    if not rows:
        return None
    first = rows[0]
    return Page(
        stream_id=first[0],
        content_type=first[1],
        next_index=first[2],
        first_index=first[3],
        closed=first[4],
        fork_index=first[5],
        ttl_seconds=first[6],
        expires_at=first[7],
        deleted_at=first[8],
        created_at=first[9],
        start=min(start, first[2]),
        # An empty page is one row with no chunk (the outer join's NULL).
        chunks=[row[10] for row in rows] if first[10] is not None else [],
    )


async def fetch_all(sql: str, params: dict[str, Any] | list[Any]) -> list[Any]:
    """The rows of one read-only statement, in binary, on this loop's pool."""
    pool = await pg_append.pool()
    try:
        return await _fetch(pool, sql, params)
    except PoolTimeout:
        raise  # no connection came in time: waiting as long again would not help
    except OperationalError:
        # The pooled connections died with the server they were made to (a restart, a
        # failover): drop every dead one, then read once more (a read may be repeated).
        await pool.check()
        return await _fetch(pool, sql, params)


async def _fetch(
    pool: AsyncConnectionPool[Any], sql: str, params: dict[str, Any] | list[Any]
) -> list[Any]:
    # The pool's connections are in autocommit (``pg_append``): one statement, one round trip,
    # no BEGIN and COMMIT (a catch-up read cost 0.6–1.0 ms of CPU with them, 0.34–0.42
    # without, in one sitting).
    async with pool.connection() as conn:
        cursor = await conn.execute(sql, params, binary=True)
        rows: list[Any] = await cursor.fetchall()
        return rows
